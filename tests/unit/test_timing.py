"""Phase accounting: nested phases count once, and the phases add up to the wall time."""

import threading
import time

from kubemips import timing


def test_nested_phases_count_for_the_innermost_only() -> None:
    record = timing.Phases()
    with timing.recording(record):
        with timing.phase("emulated"):
            time.sleep(0.05)
            with timing.phase("layers"):
                time.sleep(0.1)
        time.sleep(0.02)
    assert 0.1 <= record.seconds["layers"] < 0.15
    assert 0.05 <= record.seconds["emulated"] < 0.1  # not 0.15: layers counted once
    rounded = record.rounded(0.2)
    assert list(rounded) == ["emulated", "layers", "other"]
    assert abs(sum(rounded.values()) - 0.2) < 0.002


def test_outside_a_recording_nothing_is_kept_and_threads_keep_their_own() -> None:
    with timing.phase("push"):
        pass  # no recording: a no-op

    records = [timing.Phases(), timing.Phases()]

    def work(i: int) -> None:
        with timing.recording(records[i]), timing.phase("smoke" if i else "push"):
            time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert list(records[0].seconds) == ["push"] and list(records[1].seconds) == ["smoke"]
