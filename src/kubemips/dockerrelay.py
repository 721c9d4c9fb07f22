"""A relay between the kubelet's dockershim and the Docker engine, for machines whose
capability bounding set withholds capabilities (some VMs and sandboxes lack CAP_SYS_RESOURCE).

Two things the kubelet asks of Docker then fail in runc, so no pod would ever start:

- a negative ``oom_score_adj`` (-998 for every pod sandbox, node-critical and Guaranteed
  pods' containers) needs CAP_SYS_RESOURCE: "can't get final child's PID from pipe";
- a privileged container (kube-proxy) gets every capability, withheld ones included:
  "unable to apply caps: operation not permitted".

This relay listens on a socket of the cluster's own and passes every request and response
through unchanged, except the body of ``POST /containers/create``: ``OomScoreAdj`` is raised
to the lowest value the machine allows (``--floor``), and ``Privileged`` becomes every
capability the machine grants (``CapAdd: [ALL]`` minus ``--withhold``) with seccomp and
AppArmor unconfined, nothing masked or read-only under /proc, and every device allowed by
the device cgroup (not the host's device nodes, nor a writable /sys).  Upgraded
connections (exec, attach) become plain pipes.

Run by cluster-up as a supervised process, like the kubelet, only where it is needed:
``python -m kubemips.dockerrelay --listen SOCKET --floor 0 --withhold SYS_RESOURCE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import sys
import threading
from pathlib import Path

CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)  # fmt: skip
"""Linux capabilities by number (capability.h), as Docker names them without CAP_."""
_CREATE = re.compile(r"^POST (/v[0-9.]+)?/containers/create(\?\S*)? HTTP/1\.[01]$")


def withheld_capabilities(status_text: str, last_cap: int) -> list[str]:
    """Capabilities up to ``last_cap`` missing from the bounding set in a /proc/PID/status."""
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
            top = min(last_cap, len(CAPABILITIES) - 1)
            return [CAPABILITIES[n] for n in range(top + 1) if not (bounding >> n) & 1]
    return []


def rewrite_create(body: bytes, floor: int, withhold: list[str]) -> tuple[bytes, list[str]]:
    """The create request's body made startable here, and what was changed (empty: the
    body is returned as it was)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body, []
    host = doc.get("HostConfig") if isinstance(doc, dict) else None
    if not isinstance(host, dict):
        return body, []
    changes = []
    asked = host.get("OomScoreAdj")
    if isinstance(asked, int) and asked < floor:
        host["OomScoreAdj"] = floor
        changes.append(f"OomScoreAdj {asked} -> {floor}")
    if host.get("Privileged") and withhold:
        host["Privileged"] = False
        host["CapAdd"] = ["ALL"]
        host["CapDrop"] = list(withhold)
        host["SecurityOpt"] = [
            *(o for o in host.get("SecurityOpt") or [] if not o.startswith(("seccomp", "apparmor"))),
            "seccomp=unconfined",
            "apparmor=unconfined",
        ]
        host["MaskedPaths"] = []
        host["ReadonlyPaths"] = []
        host["DeviceCgroupRules"] = [*(host.get("DeviceCgroupRules") or []), "a *:* rwm"]
        changes.append(f"Privileged -> every capability but {', '.join(withhold)}")
    if not changes:
        return body, []
    return json.dumps(doc).encode(), changes


def _headers(block: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = block.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
    return lines[0], fields


def _get(fields: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in fields if k.lower() == name), "")


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self.fill():
                return None
        head, _, self.buf = self.buf.partition(marker)
        return head + marker

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise ConnectionError("client closed mid-body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy until ``src`` ends, then half-close ``dst`` (the other direction may go on)."""
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        with contextlib.suppress(OSError):
            src.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _client_to_daemon(client: socket.socket, daemon: socket.socket, floor: int, withhold: list[str], log: Log) -> None:
    reader = _Reader(client)
    try:
        while True:
            head = reader.until(b"\r\n\r\n")
            if head is None:
                break
            request, fields = _headers(head)
            chunked = "chunked" in _get(fields, "transfer-encoding").lower()
            length = int(_get(fields, "content-length") or 0)
            upgrade = bool(_get(fields, "upgrade")) or "upgrade" in _get(fields, "connection").lower()
            if _CREATE.match(request) and not chunked:
                body, changes = rewrite_create(reader.exactly(length), floor, withhold)
                if changes:
                    log(f"{request.split()[1]}: {'; '.join(changes)}")
                    fields = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in fields]
                daemon.sendall(_render(request, fields) + body)
            elif chunked:
                daemon.sendall(head)
                while True:  # chunk-size line, data, CRLF; a zero-size chunk ends (then trailers)
                    size_line = reader.until(b"\r\n")
                    if size_line is None:
                        return
                    daemon.sendall(size_line)
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        trailer = reader.until(b"\r\n")
                        while trailer not in (None, b"\r\n"):
                            daemon.sendall(trailer or b"")
                            trailer = reader.until(b"\r\n")
                        daemon.sendall(b"\r\n")
                        break
                    daemon.sendall(reader.exactly(size + 2))
            else:
                daemon.sendall(head + reader.exactly(length))
            if upgrade:  # exec/attach: the connection is a raw stream from here on
                if reader.buf:
                    daemon.sendall(reader.buf)
                _pipe(client, daemon)
                return
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            daemon.shutdown(socket.SHUT_WR)


def _render(request: str, fields: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([request, *(f"{k}: {v}" for k, v in fields)]) + "\r\n\r\n").encode("latin-1")


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def serve(listen: Path, target: str, floor: int, withhold: list[str]) -> None:
    log = Log()
    listen.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(listen))
    os.chmod(listen, 0o660)
    server.listen(64)
    log(f"relaying {listen} -> {target}: OomScoreAdj at least {floor}; privileged without {', '.join(withhold)}")

    def handle(client: socket.socket) -> None:
        daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            daemon.connect(target)
        except OSError as exc:
            log(f"cannot reach {target}: {exc}")
            client.close()
            return
        back = threading.Thread(target=_pipe, args=(daemon, client), daemon=True)
        back.start()
        _client_to_daemon(client, daemon, floor, withhold, log)
        back.join()
        client.close()
        daemon.close()

    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kubemips.dockerrelay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=Path)
    parser.add_argument("--target", default="/var/run/docker.sock")
    parser.add_argument("--floor", type=int, default=0, help="lowest OomScoreAdj passed on")
    parser.add_argument("--withhold", default="", help="comma-separated capabilities the machine withholds")
    args = parser.parse_args(argv)
    serve(args.listen, args.target, args.floor, [c for c in args.withhold.split(",") if c])


if __name__ == "__main__":
    main()
