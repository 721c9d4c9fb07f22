"""A running step shows the last line its child printed: a command, a Dockerfile build."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubemips import cmd, log
from kubemips.arch import parse_arch
from kubemips.engine import Engine


def test_a_running_step_shows_its_childs_last_line() -> None:
    tracker = log.Tracker(8)
    name = "debian-base/mips64el"
    outputs: list[str] = []

    def step() -> None:  # as a build's worker thread runs a node
        tracker.start(name)
        outputs.append(cmd.run(["sh", "-c", "echo one; echo two; sleep 2"], echo=False).stdout)
        tracker.finish(name, "built", 2.0)

    worker = threading.Thread(target=step)
    worker.start()
    deadline = time.monotonic() + 10
    while "(two)" not in tracker.status_line() and time.monotonic() < deadline:
        time.sleep(0.05)
    began = tracker.running[name]
    assert tracker.status_line(now=began + 41) == f"[0/8] running: {name} 41s (two)"
    assert tracker.heartbeats(now=began + 61) == [f"[0/8] {name}: still running (61s): two"]
    worker.join()
    assert outputs == ["one\ntwo\n"]  # the caller still gets the whole output
    assert tracker.last_line == {} and tracker.status_line() == "[1/8] waiting"
    assert log._current_step.get() is None  # the main thread ran no step


def test_a_dockerfile_build_shows_its_latest_line(tmp_path: Path) -> None:
    tracker = log.Tracker(1)
    seen: list[str] = []

    class Api:
        def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            yield {"stream": "Step 2/3 : RUN apt-get install -y iptables\n"}
            yield {"stream": " ---> Running in 0123abcd\n"}
            yield {"stream": "\x1b[1mSetting up iptables (1.8.2-4) ...\x1b[0m\r\n\n"}
            seen.append(tracker.status_line(now=tracker.running["iptables/mips64el"] + 3))
            yield {"aux": {"ID": "sha256:feed"}}

    engine = Engine()
    engine._client = type("Client", (), {"api": Api()})()
    tracker.start("iptables/mips64el")
    image = engine.build(
        tmp_path, dockerfile="Dockerfile", buildargs={}, arch=parse_arch("mips64el"), log_path=tmp_path / "l", what="x"
    )
    tracker.finish("iptables/mips64el", "built", 3.0)
    assert image == "sha256:feed"
    assert seen == ["[0/1] running: iptables/mips64el 3s (Setting up iptables (1.8.2-4) ...)"]


def test_a_line_is_sanitized_before_it_is_shown() -> None:
    assert log.sanitize("\x1b[31mE:\x1b[0m\tbroken\x07 \x1b]0;title\x07pipe\x00\u200b ") == "E: broken pipe"
    assert log.sanitize("x" * 500) == "x" * (log.LAST_LINE_CHARS - 3) + "..."
    tracker = log.Tracker(1)
    tracker.start("go/amd64")
    log.child_output("10%\r55%\r\n \x1b[2K\n")  # a progress meter redrawn in place
    assert tracker.last_line == {"go/amd64": "55%"}
    log.child_output("\x1b[0m\n")  # nothing to show: the last line stays
    assert tracker.last_line == {"go/amd64": "55%"}
    tracker.finish("go/amd64", "built", 1.0)
    log.child_output("after the step\n")  # no step: dropped
    assert tracker.last_line == {}
