"""The workflows run third-party actions only at a pinned commit: a moved tag cannot
change what CI executes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = []
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for line in workflow.read_text().splitlines():
            found = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)", line)
            if found and not found.group(1).startswith("./"):
                uses.append((workflow.name, found.group(1), line))
    assert uses, "no workflow uses an action: the pattern is wrong"
    unpinned = [(name, ref) for name, ref, _ in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref)]
    assert unpinned == []
    # The tag each commit stands for is written beside it, for whoever updates it.
    assert all(re.search(r"#\s*v\d", line) for _, _, line in uses)
