"""Progress modes: where lines go, the [done/total] count, heartbeats, the tty status line."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from kubemips import log
from kubemips.errors import ConfigError


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_mode() -> Iterator[None]:
    before = log.mode()
    yield
    log._mode = before


def test_auto_is_tty_on_a_terminal_and_plain_otherwise() -> None:
    assert log.resolve_mode("auto", stream=Tty(), env={"TERM": "xterm"}) == "tty"
    assert log.resolve_mode("auto", stream=Tty(), env={"TERM": "dumb"}) == "plain"
    assert log.resolve_mode("", stream=io.StringIO(), env={}) == "plain"
    assert log.resolve_mode("", stream=Tty(), env={"KUBEMIPS_PROGRESS": "quiet"}) == "quiet"
    assert log.resolve_mode("plain", stream=Tty(), env={"KUBEMIPS_PROGRESS": "quiet"}) == "plain"  # a flag wins
    with pytest.raises(ConfigError, match="--progress 'fancy': expected one of auto, tty, plain, quiet"):
        log.resolve_mode("fancy", env={})


def test_progress_on_stderr_results_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log._mode = "plain"
    with log.step("build pause"):
        log.info("[pause/amd64] building")
    log.print_block("the table")
    out, err = capsys.readouterr()
    assert out == "the table\n"
    assert "==> build pause" in err and "] [pause/amd64] building" in err and "<== build pause (" in err
    assert err.startswith("[") and "s] " in err.splitlines()[0]  # timestamped


def test_quiet_keeps_warnings_and_results(capsys: pytest.CaptureFixture[str]) -> None:
    log._mode = "quiet"
    log.info("progress")
    with log.step("a step"):
        pass
    log.warn("careful")
    log.result("wrote x")
    out, err = capsys.readouterr()
    assert out == "wrote x\n"
    assert "progress" not in err and "a step" not in err and "warning: careful" in err


def test_tracker_counts_finished_steps(capsys: pytest.CaptureFixture[str]) -> None:
    log._mode = "plain"
    with log.Tracker(3) as tracker:
        tracker.start("pause/amd64")
        tracker.start("pause/mips64el")
        assert tracker.status_line().startswith("[0/3] running: pause/amd64 0s, pause/mips64el 0s")
        tracker.finish("pause/amd64", "built", 1.25)
        tracker.finish("pause/mips64el", "failed", 2.0, ok=False)
        assert tracker.status_line() == "[2/3, 1 failed] waiting"
        tracker.finish("pause/list", "not published", 0.0, ok=False)
    err = capsys.readouterr().err
    assert "[1/3] pause/amd64: built (1.2s)" in err
    assert "[2/3] pause/mips64el: failed (2.0s)" in err
    assert "[3/3] pause/list: not published (0.0s)" in err


def test_heartbeat_once_per_period() -> None:
    tracker = log.Tracker(2)
    tracker.running["hyperkube/mips64el"] = 100.0
    tracker._beats["hyperkube/mips64el"] = 0
    assert tracker.heartbeats(now=100.0 + 30) == []
    assert tracker.heartbeats(now=100.0 + 61) == ["[0/2] hyperkube/mips64el: still running (61s)"]
    assert tracker.heartbeats(now=100.0 + 90) == []
    assert tracker.heartbeats(now=100.0 + 125) == ["[0/2] hyperkube/mips64el: still running (125s)"]


def test_tty_status_line_is_cleared_before_other_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    log._mode = "tty"
    with log.Tracker(1) as tracker:
        tracker.start("pause/amd64")
        log.info("a line")
        tracker.finish("pause/amd64", "built", 0.5)
    err = capsys.readouterr().err
    assert "[0/1] running: pause/amd64" in err
    assert "\r\x1b[2K[" in err  # the status line is wiped before the next line is written
    assert "\x1b[1m" not in err  # NO_COLOR
    assert err.endswith("\r\x1b[2K") or err.endswith("\n")


def test_table_width_counts_wide_characters() -> None:
    assert log.width("✅ ok") == 5 and log.width("—") == 1
    text = log.table(["a", "b"], [["✅", "x"], ["—", "y"]])
    rows = text.splitlines()[2:]
    assert [log.width(r[: r.index(c)]) for r, c in zip(rows, "xy", strict=True)] == [4, 4]
