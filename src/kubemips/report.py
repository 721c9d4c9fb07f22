"""A build's report: the summary table on stdout, the JSON file (``--report``), and the
exit status a failed step gives the command; for a dry run, the plan in its place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import interrupt, log
from .build import Report
from .config import Settings
from .errors import BuildError, file_error
from .plan import Plan
from .registry import Registry
from .sizes import human_size


def default_path(settings: Settings) -> Path:
    """Where the report goes without ``--report``."""
    return settings.reports_dir / "last-build.json"


def show_plan(plan: Plan, registry: str, *, as_json: bool = False) -> None:
    """What `build --dry-run` prints in place of a report: the plan (stdout's one JSON
    document with ``as_json``) and, for a reader, that nothing was built, pushed or started."""
    if as_json:
        log.print_json(plan.as_json(registry))
    else:
        log.print_block(plan.describe(registry))
        log.print_block("dry run: nothing built, pushed or started")


def conclude(report: Report, registry: Registry, path: Path, *, as_json: bool = False) -> None:
    """The end of a build: the report written and shown first, so that it exists whatever
    the outcome; then a stop requested during the run ends the command as interrupted,
    and otherwise a failed step fails it."""
    write_and_show(report, registry, path, as_json=as_json)
    interrupt.check("stopped at a safe point; no tag moved and no list was published after the signal")
    raise_for_failures(report)


def write_and_show(report: Report, registry: Registry, path: Path, *, as_json: bool = False) -> None:
    """Write the JSON report to ``path`` and print the summary (or, with ``as_json``, the
    report and its path as stdout's one JSON document).

    A report that cannot be written fails the command, unless a fault already stopped the
    run: that fault is then the message, and the report is only printed."""
    data = report_json(report, registry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        error = file_error(exc, path, doing="writing the build report")
        if report.fault is None:
            raise error from None
        log.warn(f"no report: {error}")
    if as_json:
        log.print_json({**data, "report": str(path)})
    else:
        log.print_block("\n" + summary(report, registry) + f"\nreport: {path}")


def summary(report: Report, registry: Registry) -> str:
    rows = []
    for r in report.images():
        rows.append(
            [
                r.node.image.name,
                r.node.arch.name,
                r.digest[:19] if r.digest else "-",
                human_size(r.size) if r.size else "-",
                r.status,
                r.smoke,
                f"{r.seconds:.1f}s",
            ]
        )
    text = log.table(["image", "arch", "digest", "size", "status", "smoke", "time"], rows)
    list_rows = [
        [registry.ref(r.node.image.repo, r.node.tag), r.digest[:19] if r.digest else "-", r.status]
        for r in report.lists()
    ]
    text += "\n\n" + log.table(["manifest list", "digest", "status"], list_rows)
    problems = [f"  {r.node.id}: {r.error}" for r in report.failures]
    if problems:
        text += "\n\nfailures:\n" + "\n".join(problems)
    counts = f"{len(report.images())} images, {len(report.lists())} lists, {len(report.failures)} failed"
    text += f"\n\n{counts}, {report.seconds:.1f}s"
    return text


def report_json(report: Report, registry: Registry) -> dict[str, Any]:
    """The machine-readable form of the summary (what CI jobs and tests read)."""
    return {
        "registry": registry.address,
        "seconds": round(report.seconds, 3),
        "fetch_seconds": round(report.fetch_seconds, 3),
        "images": [
            {
                "name": r.node.image.name,
                "arch": r.node.arch.name,
                "platform": r.node.arch.platform,
                "ref": registry.ref(r.node.image.repo, r.node.tag),
                "digest": r.digest,
                "size": r.size,
                "status": r.status,
                "smoke": r.smoke,
                "seconds": round(r.seconds, 3),
                "phases": r.phases,
                "error": r.error,
            }
            for r in report.images()
        ],
        "lists": [
            {
                "name": r.node.image.name,
                "ref": registry.ref(r.node.image.repo, r.node.tag),
                "digest": r.digest,
                "status": r.status,
                "error": r.error,
            }
            for r in report.lists()
        ],
    }


def raise_for_failures(report: Report) -> None:
    if report.fault is not None:
        names = ", ".join(r.node.id for r in report.failures)
        raise type(report.fault)(
            f"{report.fault}\nThe build stopped there: {len(report.failures)} step(s) did not complete ({names}); "
            "no tag or list was moved to anything unverified."
        )
    if report.failures:
        names = ", ".join(r.node.id for r in report.failures)
        raise BuildError(f"{len(report.failures)} step(s) did not complete: {names} (details above)")
