"""cmd.run: the whole merged output, failures and timeouts as CommandError, input fed."""

from __future__ import annotations

import time

import pytest

from kubemips import cmd, log
from kubemips.errors import CommandError, Interrupted


def test_returns_stdout_and_stderr_merged_whole() -> None:
    proc = cmd.run(["sh", "-c", "echo out; echo err >&2; printf 'no newline'"], echo=False)
    assert proc.returncode == 0
    assert proc.stdout == "out\nerr\nno newline"
    many = cmd.run(["seq", "1", "200000"], echo=False).stdout  # many reads, lines cut across them
    assert many == "".join(f"{i}\n" for i in range(1, 200001))


def test_a_failure_raises_with_the_output_unless_unchecked() -> None:
    with pytest.raises(CommandError) as failed:
        cmd.run(["sh", "-c", "echo 'E: broken'; exit 3"], what="apt-get", echo=False)
    assert failed.value.returncode == 3 and failed.value.output == "E: broken\n"
    assert str(failed.value).startswith("apt-get: command failed with exit code 3")
    assert cmd.run(["sh", "-c", "echo x; exit 3"], check=False, echo=False).returncode == 3


def test_a_timeout_kills_the_child_and_keeps_what_it_printed() -> None:
    began = time.monotonic()
    with pytest.raises(CommandError) as late:
        # The background sleep keeps the output pipe open after sh is killed: not waited for.
        cmd.run(["sh", "-c", "echo started; sleep 5 & sleep 30"], timeout=0.5, echo=False)
    assert time.monotonic() - began < 4
    assert late.value.returncode == -1
    assert late.value.output == "started\n\n(timed out after 0.5s)"


def test_input_is_fed_while_the_output_is_read() -> None:
    data = b"line\n" * 200_000  # more than a pipe holds both ways: written and read at once
    assert cmd.run(["cat"], input_bytes=data, echo=False).stdout == data.decode()
    assert cmd.run(["cat"], input_bytes=b"", echo=False).stdout == ""


def test_an_interrupt_while_reading_kills_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(text: str) -> None:
        raise Interrupted("interrupted again (SIGINT): stopping now")

    monkeypatch.setattr(log, "child_output", interrupted)
    began = time.monotonic()
    with pytest.raises(Interrupted):
        cmd.run(["sh", "-c", "echo one; exec sleep 30"], echo=False)
    assert time.monotonic() - began < 4  # killed, not waited for
