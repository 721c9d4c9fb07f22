"""The container engine, behind one small class: pulling and running images.

Only the Docker Engine API (through the Docker SDK) is used, so the CLI on PATH does not
matter.  Smoke checks pull the per-arch image by digest and run it with host networking
(the daemon runs with --bridge=none; every test talks to 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .arch import Arch
from .errors import PrerequisiteError, SmokeError


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output: str


class Engine:
    """A Docker daemon reached through DOCKER_HOST (or the default socket)."""

    _lock = threading.Lock()

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url
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
                    where = self.base_url or "DOCKER_HOST / /var/run/docker.sock"
                    raise PrerequisiteError(
                        f"no Docker daemon answers at {where} ({exc}); run scripts/setup-host.sh"
                    ) from None
                self._client = client
            return self._client

    def pull(self, ref: str, arch: Arch) -> None:
        import docker.errors

        try:
            self.client.images.pull(ref, platform=arch.platform)
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
        detach_check: bool = False,
    ) -> RunResult:
        """Run ``ref`` to completion (host network, removed afterwards) and collect output."""
        import docker.errors
        import requests

        container = None
        try:
            container = self.client.containers.create(
                ref,
                command=list(command) or None,
                entrypoint=list(entrypoint) if entrypoint is not None else None,
                environment=list(env),
                network_mode="host",
                platform=arch.platform,
            )
            container.start()
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
