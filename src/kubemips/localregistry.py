"""The embedded registry: Debian's docker-registry (CNCF distribution) with our own config.

Debian's stock config enables htpasswd auth against a directory, so every request would
get 401; we always start it with a config we write (loopback only, no auth, deletes
enabled, data under the project cache).  The same code starts the throwaway registries
the integration tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import cmd, log
from .config import Settings
from .errors import PrerequisiteError, RegistryError
from .registry import Registry


@dataclass(frozen=True)
class RegistryServer:
    """Files of one registry instance: its config, data, pid file and log."""

    listen: str
    state_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "config.yml"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "registry.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "registry.log"

    def client(self) -> Registry:
        return Registry(self.listen, plain_http=True)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def answers(self) -> bool:
        try:
            self.client().ping()
        except RegistryError:
            return False
        return True

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # YAML is a superset of JSON: no YAML library needed to write the config.
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": self.listen, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")

    def start(self, *, timeout: float = 20.0) -> bool:
        """Start unless already answering; returns True when this call started it."""
        if self.answers():
            return False
        exe = cmd.which("docker-registry", hint="apt-get install docker-registry")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log_file.open("ab") as logf:
            proc = subprocess.Popen(
                [exe, "serve", str(self.config_file)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise PrerequisiteError(
                    f"registry on {self.listen} exited at start (code {proc.returncode}); log {self.log_file}:\n{tail}"
                )
            if self.answers():
                return True
            time.sleep(0.1)
        self.stop()
        raise PrerequisiteError(f"registry on {self.listen} did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self) -> bool:
        """Stop the instance this state dir started; returns True when one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def describe(self) -> str:
        pid = self.pid()
        state = "answering" if self.answers() else "not answering"
        owner = f"pid {pid}" if pid else "not started by this project"
        return f"registry {self.listen}: {state} ({owner}); data {self.data_dir}"


def embedded(s: Settings) -> RegistryServer:
    """The embedded registry of these settings: its address, its data under the cache."""
    return RegistryServer(s.embedded_listen, s.cache_dir / "registry")


def ensure_running(server: RegistryServer) -> None:
    if server.start():
        log.info(f"started embedded registry on {server.listen} (data in {server.data_dir})")


def open_registry(s: Settings, address: str | None = None, *, start: bool = True) -> Registry:
    """A client for the configured registry (or for ``address``, a mirror's source) that
    has answered, so a command fails on an unreachable registry before it does any work.
    The embedded registry is started first when it is the one opened, unless ``start`` is
    False: a stopped one then fails the check, and the message names `invoke registry-start`."""
    if start and s.embedded and (address or s.registry) == s.registry:
        ensure_running(embedded(s))
    reg = Registry.configured(s, address)
    reg.ping()
    return reg
