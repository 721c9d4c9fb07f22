"""The container engine, behind one small class: pulling and running images.

Only the Docker Engine API (through the Docker SDK) is used, so the CLI on PATH does not
matter.  Smoke checks pull the per-arch image by digest and run it with no network but
its own loopback: servers under test listen on 127.0.0.1 inside the container, so two
checks running at once never compete for a port.  Dockerfile builds use the classic
builder with host networking (the daemon runs with --bridge=none) so RUN steps reach the
package mirror.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from . import log
from .arch import Arch, host_arch
from .auth import CredentialLookup, Credentials, engine_config
from .config import Settings
from .errors import BuildError, PrerequisiteError, SmokeError
from .host import pid_alive


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output: str


SMOKE_LABEL = "org.kubemips.smoke"
"""Label of every container a smoke check creates: ``HOSTNAME:PID`` of the run that made it."""


class RegistryAuth:
    """What the engine sends one registry when it pulls from it (smoke checks, ``FROM``).

    ``lookup`` gives the credentials for ``host`` (looked up once, at the first pull or
    build); no other host gets them.
    """

    def __init__(self, host: str, lookup: Callable[[], Credentials | None]) -> None:
        self.host = host
        self._lookup = lookup

    def config_for(self, host: str) -> dict[str, str] | None:
        """The Docker SDK's ``auth_config`` for ``host``, or None (then the engine is anonymous
        or uses the Docker config, as ``docker pull`` would)."""
        if host != self.host:
            return None
        creds = self._lookup()
        return engine_config(creds, host) if creds is not None else None

    def __repr__(self) -> str:
        return f"RegistryAuth({self.host!r})"


class Engine:
    """A Docker daemon reached through DOCKER_HOST (or the default socket)."""

    _lock = threading.Lock()

    def __init__(
        self, base_url: str | None = None, *, registry_auth: RegistryAuth | None = None, layer_cache: bool = True
    ) -> None:
        self.base_url = base_url
        self.registry_auth = registry_auth
        self.layer_cache = layer_cache
        """False for a forced build: every RUN step runs again, none is taken from the
        engine's cache of earlier builds (what a cold machine would do)."""
        self._client: Any = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import docker
                import docker.errors

                try:
                    client = docker.DockerClient(base_url=self.base_url) if self.base_url else docker.from_env()
                    client.ping()
                except docker.errors.DockerException as exc:
                    where = self.base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
                    raise PrerequisiteError(
                        f"no Docker daemon answers at {where} ({exc}); run scripts/setup-host.sh"
                    ) from None
                self._client = client
            return self._client

    def _auth_config(self, ref: str) -> dict[str, str] | None:
        if self.registry_auth is None:
            return None
        return self.registry_auth.config_for(ref.split("/", 1)[0])

    def pull(self, ref: str, arch: Arch) -> None:
        import docker.errors

        repo, _, digest = ref.partition("@")
        try:
            # The low-level stream reports pull errors (a malformed image, say) in-band.
            for event in self.client.api.pull(
                repo,
                tag=digest or None,
                platform=arch.platform,
                stream=True,
                decode=True,
                auth_config=self._auth_config(ref),
            ):
                if "error" in event:
                    raise SmokeError(f"docker could not pull {ref}: {event['error']}")
        except docker.errors.APIError as exc:
            raise SmokeError(f"docker could not pull {ref}: {exc.explanation or exc}") from None

    def run(
        self,
        ref: str,
        arch: Arch,
        command: Sequence[str],
        *,
        env: Sequence[str] = (),
        entrypoint: Sequence[str] | None = None,
        timeout: int = 120,
        files: Mapping[str, str] | None = None,
        client: tuple[str, Sequence[str]] | None = None,
    ) -> RunResult:
        """Run ``ref`` to completion (no network but its loopback, removed afterwards) and
        collect its output.  With ``client`` (an image ref and a command), ``ref`` runs in
        the background as a server and the result is the client's, run in its network and
        PID namespaces (the server is PID 1 there: ``/proc/1/root`` is its filesystem)."""
        import docker.errors

        container = None
        try:
            container = self.client.containers.create(
                ref,
                command=list(command) or None,
                entrypoint=list(entrypoint) if entrypoint is not None else None,
                environment=list(env),
                network_mode="none",
                platform=arch.platform,
                labels={SMOKE_LABEL: _owner()},
            )
            if files:
                container.put_archive("/", _tar(files))
            container.start()
            if client is not None:
                return self._client_run(container, client, arch, timeout)
            try:
                status = container.wait(timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                container.kill()
                output = container.logs().decode(errors="replace")
                raise SmokeError(
                    f"{ref} ({arch}) did not finish within {timeout}s; output:\n{output[-2000:]}"
                ) from None
            output = container.logs().decode(errors="replace")
            return RunResult(int(status.get("StatusCode", -1)), output)
        except docker.errors.APIError as exc:
            raise SmokeError(f"docker could not run {ref} ({arch}): {exc.explanation or exc}") from None
        finally:
            if container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)

    def _client_run(self, server: Any, client: tuple[str, Sequence[str]], arch: Arch, timeout: int) -> RunResult:
        import docker.errors

        ref, command = client
        self.pull(ref, arch)
        box = None
        try:
            box = self.client.containers.create(
                ref,
                command=list(command),
                network_mode=f"container:{server.id}",
                pid_mode=f"container:{server.id}",
                platform=arch.platform,
                labels={SMOKE_LABEL: _owner()},
            )
            box.start()
            try:
                status = box.wait(timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                box.kill()
                status = {"StatusCode": -1}
            output = box.logs().decode(errors="replace")
            code = int(status.get("StatusCode", -1))
            if code != 0:
                server_log = server.logs().decode(errors="replace")
                output += f"\n--- server log ---\n{server_log[-1500:]}"
            return RunResult(code, output)
        finally:
            if box is not None:
                with contextlib.suppress(docker.errors.APIError):
                    box.remove(force=True)

    def remove_orphans(self) -> list[str]:
        """Remove smoke-check containers left by runs of this machine that are gone (killed
        before they could clean up); returns their ids.  Those of live runs are kept."""
        import docker.errors

        host = socket.gethostname()
        removed = []
        for container in self.client.containers.list(all=True, filters={"label": SMOKE_LABEL}):
            owner_host, _, pid = str(container.labels.get(SMOKE_LABEL, "")).rpartition(":")
            if owner_host != host or not pid.isdigit() or pid_alive(int(pid)):
                continue
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
                removed.append(container.id)
        return removed

    def server_version(self) -> str:
        return str(self.client.version().get("Version", "unknown"))

    def build(
        self,
        context: Path,
        *,
        dockerfile: str,
        buildargs: Mapping[str, str],
        arch: Arch,
        log_path: Path,
        what: str,
    ) -> str:
        """Classic-builder build for ``arch`` (RUN steps under QEMU); returns the image id.

        The build log goes to ``log_path`` and its latest line to the step's progress; a
        failing step raises BuildError with its tail.
        """
        import docker.errors

        image_id = ""
        lines: list[str] = []
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._send_registry_auth(buildargs)
        try:
            with log_path.open("w") as logf:
                stream = self.client.api.build(
                    path=str(context),
                    dockerfile=dockerfile,
                    buildargs=dict(buildargs),
                    platform=arch.platform,
                    network_mode="host",
                    rm=True,
                    forcerm=True,
                    decode=True,
                    pull=False,
                    nocache=not self.layer_cache,
                )
                for chunk in stream:
                    if "stream" in chunk:
                        text = chunk["stream"]
                        logf.write(text)
                        log.child_output(text)  # a RUN step under QEMU can take many minutes
                        lines.extend(text.splitlines())
                        for line in text.splitlines():
                            if line.startswith("Step "):
                                log.info(f"[{what}] {line}")
                    if "error" in chunk:
                        logf.write(chunk["error"] + "\n")
                        tail = "\n".join([*lines, chunk["error"]][-30:])
                        raise BuildError(f"[{what}] Dockerfile build failed (log: {log_path}):\n{tail}")
                    aux = chunk.get("aux") or {}
                    if "ID" in aux:
                        image_id = aux["ID"]
        except docker.errors.APIError as exc:
            raise BuildError(f"[{what}] docker build failed: {exc.explanation or exc} (log: {log_path})") from None
        if not image_id:
            raise BuildError(f"[{what}] docker build produced no image (log: {log_path})")
        return image_id

    def _send_registry_auth(self, buildargs: Mapping[str, str]) -> None:
        """Give a build that pulls its base (``FROM ${BASEIMAGE}``) the registry's credentials.

        The SDK sends every auth config it holds with a build (``X-Registry-Config``), read
        from the Docker config; the registry's, which may come from the environment, is added
        to them."""
        base = buildargs.get("BASEIMAGE", "")
        config = self._auth_config(base) if base and base != "scratch" else None
        if config is None:
            return
        api = self.client.api
        with self._lock:
            if not api._auth_configs or api._auth_configs.is_empty:
                api.reload_config()
            api._auth_configs.add_auth(config["serveraddress"], config)

    def save(self, image_id: str, dest: Path) -> None:
        """``docker save`` of one image into ``dest`` (a tar of config and layer tars)."""
        import docker.errors

        try:
            chunks = self.client.images.get(image_id).save(named=False)
            with dest.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
        except docker.errors.APIError as exc:
            raise BuildError(f"docker could not export {image_id}: {exc.explanation or exc}") from None

    def load(self, archive: Path, *, what: str) -> None:
        """``docker load`` of a ``docker save``-format tar (its tags come with it)."""
        import docker.errors

        try:
            with archive.open("rb") as data:
                self.client.images.load(data)
        except docker.errors.APIError as exc:
            raise BuildError(f"[{what}] docker could not load {archive}: {exc.explanation or exc}") from None

    def untag(self, ref: str) -> None:
        """Drop a local tag (the image stays while something uses it)."""
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):  # already gone: nothing to clean
            self.client.images.remove(ref, noprune=True)


class Engines:
    """The engine for each architecture: a remote (native) one where configured, else local.

    A mips64el machine running dockerd can build and run mips64el natively instead of
    under QEMU: point the arch at it with ``[build] engines`` in kubemips.toml.
    ``registry_auth``: the credentials every engine sends the registry it pulls from.
    """

    def __init__(
        self, endpoints: Mapping[Arch, str], *, registry_auth: RegistryAuth | None = None, layer_cache: bool = True
    ) -> None:
        self._endpoints = dict(endpoints)
        self._engines: dict[str, Engine] = {}
        self._guard = threading.Lock()
        self.registry_auth = registry_auth
        self.layer_cache = layer_cache

    @classmethod
    def configured(cls, settings: Settings, *, layer_cache: bool = True) -> Engines:
        """The engines of a build, sending the configured registry its credentials when
        they pull from it (the embedded registry asks for none)."""
        if settings.embedded:
            return cls(settings.engines, layer_cache=layer_cache)
        host = settings.registry_host
        auth = RegistryAuth(host, CredentialLookup(host))
        return cls(settings.engines, registry_auth=auth, layer_cache=layer_cache)

    def for_arch(self, arch: Arch) -> Engine:
        url = self._endpoints.get(arch, "")
        with self._guard:
            if url not in self._engines:
                self._engines[url] = Engine(url or None, registry_auth=self.registry_auth, layer_cache=self.layer_cache)
            return self._engines[url]

    def is_native(self, arch: Arch) -> bool:
        return arch in self._endpoints

    def emulates(self, arch: Arch) -> bool:
        """Whether ``arch``'s programs run under QEMU here: neither this machine's arch nor
        served by an engine of its own."""
        return arch != host_arch() and not self.is_native(arch)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _tar(files: Mapping[str, str]) -> bytes:
    """A tar of text files by absolute path, for ``put_archive``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
