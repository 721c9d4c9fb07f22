"""The coverage report at a glance: one row per conformance image, one column per arch.

Each cell is ✅ (in the registry, verified), ❌ (this project provides it, the registry
lacks it) or — (not provided, with the catalog's reason), followed by the smoke result of
that image on that arch.  Rendered for the terminal, as Markdown (a file, and GitHub's
job summary) and as a self-contained HTML page; the same data as JSON for scripts.

Pure functions over :class:`~kubemips.conformance.CoverageRow` lists, unit-tested
directly; :func:`write_files` puts the Markdown and HTML where they go, and
:func:`publish` is what the command leaves (the files and its stdout).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import log
from .conformance import CoverageRow, Entry
from .sizes import human_size

PRESENT, MISSING, NOT_PROVIDED = "✅", "❌", "—"
SMOKE_TEXT = {"pass": "smoke passed", "not run here": "smoke not run here", "fail": "smoke failed", "-": ""}


@dataclass
class Line:
    """One catalog image across the arches."""

    entry: Entry
    cells: dict[str, CoverageRow] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.entry.name}:{self.entry.tag}"

    @property
    def provided(self) -> bool:
        return bool(self.entry.build) and not self.reason.startswith("not buildable yet")

    @property
    def reason(self) -> str:
        """Why nothing is provided (the catalog's note), or the providing project image."""
        if not self.entry.build:
            return self.entry.note
        first = next(iter(self.cells.values()), None)
        if first is not None and first.content.startswith("not buildable yet"):
            return first.content
        return self.entry.build


def lines(rows: Sequence[CoverageRow]) -> list[Line]:
    """Group rows (catalog order, then arch) into one line per catalog entry."""
    grouped: dict[tuple[str, str, str], Line] = {}
    for row in rows:
        key = (row.entry.registry_key, row.entry.name, row.entry.tag)
        grouped.setdefault(key, Line(row.entry)).cells[row.arch.name] = row
    return list(grouped.values())


def arches_of(rows: Sequence[CoverageRow]) -> list[str]:
    return list(dict.fromkeys(r.arch.name for r in rows))


def mark(line: Line, arch: str) -> str:
    row = line.cells.get(arch)
    if not line.provided or row is None:
        return NOT_PROVIDED
    return PRESENT if row.present else MISSING


def cell(line: Line, arch: str) -> str:
    """The mark and, for an image present, its smoke result."""
    row = line.cells.get(arch)
    symbol = mark(line, arch)
    if symbol == PRESENT and row is not None and SMOKE_TEXT.get(row.smoke, row.smoke):
        return f"{symbol} {SMOKE_TEXT.get(row.smoke, row.smoke)}"
    return symbol


def counts(rows: Sequence[CoverageRow]) -> tuple[int, int]:
    """(pairs present, pairs provided) over every (image, arch)."""
    provided = [ln.cells[a] for ln in lines(rows) if ln.provided for a in ln.cells]
    return sum(1 for r in provided if r.present), len(provided)


def summary(rows: Sequence[CoverageRow]) -> str:
    present, provided = counts(rows)
    missing = provided - present
    not_provided = sum(1 for ln in lines(rows) if not ln.provided)
    return (
        f"{present} of {provided} provided (image, arch) pairs are in the registry"
        f" ({missing} missing); {not_provided} catalog images are not provided by this project"
    )


def terminal(rows: Sequence[CoverageRow]) -> str:
    arches = arches_of(rows)
    table_rows = [[ln.name, *(cell(ln, a) for a in arches), _short(ln.reason, 50)] for ln in lines(rows)]
    legend = f"{PRESENT} in the registry, verified   {MISSING} missing   {NOT_PROVIDED} not provided"
    return log.table(["image", *arches, "provided by / why not"], table_rows) + f"\n\n{legend}\n{summary(rows)}"


def markdown(rows: Sequence[CoverageRow], *, kubernetes: str, registry: str) -> str:
    arches = arches_of(rows)
    out = [
        f"# Conformance image coverage: Kubernetes {kubernetes}",
        "",
        f"Registry `{registry}`. {PRESENT} in the registry and verified, {MISSING} missing, "
        f"{NOT_PROVIDED} not provided; then the smoke check's result on that arch.",
        "",
        "| image | " + " | ".join(arches) + " | provided by / why not |",
        "|---|" + "---|" * len(arches) + "---|",
    ]
    for ln in lines(rows):
        cells = " | ".join(cell(ln, a) for a in arches)
        out.append(f"| `{ln.name}` | {cells} | {_md(ln.reason)} |")
    out += ["", summary(rows) + ".", "", "## Details", ""]
    out += ["| image | arch | digest | size | smoke | content |", "|---|---|---|---|---|---|"]
    for ln in lines(rows):
        for arch, row in ln.cells.items():
            if ln.provided and row.present:
                size = human_size(row.size)
                out.append(
                    f"| `{ln.name}` | {arch} | `{row.digest[:19]}` | {size} | {row.smoke} | {_md(row.content)} |"
                )
    return "\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.present { background: #dafbe1; } td.missing { background: #ffebe9; } td.none { color: #656d76; }
code { font-size: 90%; } .why { color: #656d76; }
"""


def html_page(rows: Sequence[CoverageRow], *, kubernetes: str, registry: str) -> str:
    """A self-contained page (inline style, no scripts, nothing fetched)."""
    arches = arches_of(rows)
    esc = html.escape
    css_class = {PRESENT: "present", MISSING: "missing", NOT_PROVIDED: "none"}
    head = "".join(f"<th>{esc(a)}</th>" for a in arches)
    body = []
    for ln in lines(rows):
        tds = "".join(f'<td class="{css_class[mark(ln, a)]}">{esc(cell(ln, a))}</td>' for a in arches)
        body.append(f'<tr><td><code>{esc(ln.name)}</code></td>{tds}<td class="why">{esc(ln.reason)}</td></tr>')
    details = []
    for ln in lines(rows):
        for arch, row in ln.cells.items():
            if ln.provided and row.present:
                details.append(
                    f"<tr><td><code>{esc(ln.name)}</code></td><td>{esc(arch)}</td><td><code>{esc(row.digest)}</code>"
                    f"</td><td>{esc(human_size(row.size))}</td><td>{esc(row.smoke)}</td>"
                    f"<td>{esc(row.content)}</td></tr>"
                )
    title = f"Conformance image coverage: Kubernetes {kubernetes}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_CSS}</style></head>\n'
        f"<body><h1>{esc(title)}</h1>\n"
        f"<p>Registry <code>{esc(registry)}</code>. {PRESENT} in the registry and verified, {MISSING} missing, "
        f"{NOT_PROVIDED} not provided; then the smoke check's result on that arch.</p>\n"
        f"<p><strong>{esc(summary(rows))}.</strong></p>\n"
        f"<table><thead><tr><th>image</th>{head}<th>provided by / why not</th></tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>\n<h2>Details</h2>\n"
        "<table><thead><tr><th>image</th><th>arch</th><th>digest</th><th>size</th><th>smoke</th><th>content</th>"
        "</tr></thead>\n<tbody>\n" + "\n".join(details) + "\n</tbody></table>\n</body></html>\n"
    )


def as_json(rows: Sequence[CoverageRow], *, kubernetes: str, registry: str) -> dict[str, Any]:
    present, provided = counts(rows)
    images = []
    for ln in lines(rows):
        per_arch: dict[str, Any] = {}
        for arch, row in ln.cells.items():
            status = {PRESENT: "present", MISSING: "missing", NOT_PROVIDED: "not provided"}[mark(ln, arch)]
            per_arch[arch] = {
                "status": status,
                "digest": row.digest,
                "size": row.size,
                "smoke": row.smoke,
                "content": row.content if ln.provided else "",
            }
        images.append(
            {
                "image": ln.name,
                "registry_key": ln.entry.registry_key,
                "provided_by": ln.entry.build if ln.provided else "",
                "why_not": "" if ln.provided else ln.reason,
                "arches": per_arch,
            }
        )
    return {
        "kubernetes": kubernetes,
        "registry": registry,
        "arches": arches_of(rows),
        "present": present,
        "provided": provided,
        "images": images,
    }


def write_files(
    rows: Sequence[CoverageRow], *, kubernetes: str, registry: str, markdown_path: Path, html_path: Path
) -> str:
    """Write the Markdown and HTML pages, and append the Markdown to GitHub's job summary
    when ``$GITHUB_STEP_SUMMARY`` is set; returns the Markdown."""
    md = markdown(rows, kubernetes=kubernetes, registry=registry)
    for path, text in (
        (markdown_path, md), (html_path, html_page(rows, kubernetes=kubernetes, registry=registry))
    ):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY", "")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(md + "\n")
    return md


def publish(
    rows: Sequence[CoverageRow],
    kubernetes: str,
    registry: str,
    markdown_path: Path,
    html_path: Path,
    *,
    json_output: bool = False,
) -> None:
    """What `e2e-coverage` leaves: the files (:func:`write_files`), and on stdout the
    terminal table or, with ``json_output``, :func:`as_json`'s document; both name the
    files, so a reader or a script finds the pages without knowing where they default to."""
    write_files(rows, kubernetes=kubernetes, registry=registry, markdown_path=markdown_path, html_path=html_path)
    if json_output:
        doc = as_json(rows, kubernetes=kubernetes, registry=registry)
        log.print_json({**doc, "markdown": str(markdown_path), "html": str(html_path)})
    else:
        log.print_block(terminal(rows) + f"\n\nmarkdown: {markdown_path}\nhtml: {html_path}")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
