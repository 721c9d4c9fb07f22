"""The coverage report's renderers, from rows as conformance.coverage returns them."""

from __future__ import annotations

import html.parser
import json

from kubemips import coverage
from kubemips.arch import parse_arch
from kubemips.conformance import CoverageRow, Entry

AMD64, MIPS = parse_arch("amd64"), parse_arch("mips64el")
REDIS = Entry("Redis", "dockerLibraryRegistry", "redis", "5.0.5-alpine", "redis", "")
PAUSE = Entry("Pause", "gcRegistry", "pause", "3.1", "pause", "")
CUDA = Entry("Cuda", "e2eRegistry", "cuda-vector-add", "1.0", "", "out of scope: CUDA GPU test image")
LATER = Entry("Later", "e2eRegistry", "later", "1.0", "later", "")


def rows() -> list[CoverageRow]:
    digest = "sha256:" + "ab" * 32
    return [
        CoverageRow(REDIS, AMD64, True, digest, 2048, "pass", "redis-server=7.0"),
        CoverageRow(REDIS, MIPS, True, digest, 2048, "not run here", "redis-server=7.0"),
        CoverageRow(PAUSE, AMD64, True, digest, 512, "pass", "pause 3.1"),
        CoverageRow(PAUSE, MIPS, False),
        CoverageRow(CUDA, AMD64, False, content=CUDA.note),
        CoverageRow(CUDA, MIPS, False, content=CUDA.note),
        CoverageRow(LATER, AMD64, False, content="not buildable yet: no project image 'later'"),
        CoverageRow(LATER, MIPS, False, content="not buildable yet: no project image 'later'"),
    ]


def test_one_line_per_image_and_a_mark_per_arch() -> None:
    lines = coverage.lines(rows())
    assert [ln.name for ln in lines] == ["redis:5.0.5-alpine", "pause:3.1", "cuda-vector-add:1.0", "later:1.0"]
    marks = {ln.name: [coverage.mark(ln, a) for a in ("amd64", "mips64el")] for ln in lines}
    assert marks == {
        "redis:5.0.5-alpine": ["✅", "✅"],
        "pause:3.1": ["✅", "❌"],
        "cuda-vector-add:1.0": ["—", "—"],
        "later:1.0": ["—", "—"],
    }
    assert coverage.counts(rows()) == (3, 4)


def test_terminal_table_aligns_wide_marks() -> None:
    text = coverage.terminal(rows())
    table = text.split("\n\n")[0].splitlines()
    assert table[0].split() == ["image", "amd64", "mips64el", "provided", "by", "/", "why", "not"]
    redis = next(line for line in table if line.startswith("redis"))
    pause = next(line for line in table if line.startswith("pause"))
    assert "✅ smoke passed" in redis and "✅ smoke not run here" in redis
    # The third column starts at the same terminal column on every row (✅ takes two).
    from kubemips.log import width

    assert width(redis[: redis.index("✅ smoke not")]) == width(pause[: pause.index("❌")])
    assert "3 of 4 provided (image, arch) pairs are in the registry (1 missing)" in text
    assert "2 catalog images are not provided" in text


def test_markdown_grid_and_details() -> None:
    md = coverage.markdown(rows(), kubernetes="v1.16.2", registry="127.0.0.1:5000")
    assert md.startswith("# Conformance image coverage: Kubernetes v1.16.2\n")
    assert "| image | amd64 | mips64el | provided by / why not |" in md
    assert "| `pause:3.1` | ✅ smoke passed | ❌ | pause |" in md
    assert "| `cuda-vector-add:1.0` | — | — | out of scope: CUDA GPU test image |" in md
    details = md.split("## Details")[1]
    assert details.count("| `redis:5.0.5-alpine` |") == 2 and "pause:3.1` | mips64el" not in details


def test_html_page_is_self_contained_and_escaped() -> None:
    evil = Entry("X", "e2eRegistry", "x", "1", "", "<script>alert(1)</script>")
    page = coverage.html_page([*rows(), CoverageRow(evil, AMD64, False)], kubernetes="v1.16.2", registry="r:5000")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert '<td class="missing">❌</td>' in page and '<td class="present">✅ smoke passed</td>' in page

    class Checker(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in ("meta", "br"):
                self.open.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.open.pop() == tag

    checker = Checker()
    checker.feed(page)
    assert checker.open == []


def test_json_is_the_same_data() -> None:
    data = coverage.as_json(rows(), kubernetes="v1.16.2", registry="127.0.0.1:5000")
    json.dumps(data)
    assert (data["present"], data["provided"], data["arches"]) == (3, 4, ["amd64", "mips64el"])
    pause = next(i for i in data["images"] if i["image"] == "pause:3.1")
    assert pause["arches"]["mips64el"]["status"] == "missing" and pause["arches"]["amd64"]["smoke"] == "pass"
    cuda = next(i for i in data["images"] if i["image"] == "cuda-vector-add:1.0")
    assert cuda["provided_by"] == "" and cuda["why_not"].startswith("out of scope")
    later = next(i for i in data["images"] if i["image"] == "later:1.0")
    assert later["arches"]["amd64"]["status"] == "not provided" and later["why_not"].startswith("not buildable yet")
