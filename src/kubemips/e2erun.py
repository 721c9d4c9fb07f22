"""Running the conformance suite against the local cluster, and reading its results.

The project's conformance image (ginkgo, e2e.test, kubectl and upstream's run_e2e.sh) runs
as one container on the local Docker engine with host networking, the cluster's kubeconfig
and the KUBE_TEST_REPO_LIST mounted, so e2e.test reaches the API server on the node
address and every test image comes from the project's registry.  Its resolv.conf names
only the cluster DNS.  The results directory receives what sonobuoy collects (e2e.log,
junit_*.xml, e2e.tar.gz) plus the runner's own output; :func:`parse_junit` turns the junit
files into passed/failed/skipped counts and a list of failures.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import interrupt, log
from .arch import Arch
from .engine import Engine
from .errors import ClusterError, ConfigError

CONTAINER_NAME = "kubemips-conformance"
_INSIDE = Path("/kubemips")

SERIAL_COMMAND = (
    'set -o pipefail; mkdir -p "$RESULTS_DIR"; '
    'e2e.test --ginkgo.focus="$E2E_FOCUS" --ginkgo.skip="$E2E_SKIP" --ginkgo.noColor '
    '--disable-log-dump --repo-root=/kubernetes --provider="$E2E_PROVIDER" --report-dir="$RESULTS_DIR" '
    '--kubeconfig="$KUBECONFIG" -v="$E2E_VERBOSITY" 2>&1 | tee "$RESULTS_DIR/e2e.log"; rc=$?; '
    'cd "$RESULTS_DIR" && tar -czf e2e.tar.gz e2e.log junit_*.xml 2>/dev/null; exit $rc'
)
"""A serial run calls e2e.test itself rather than the image's run_e2e.sh (ginkgo): ginkgo
always passes -test.timeout, which an e2e.test built without the e2e-flags-in-testmain
patch rejects.  Parallel runs need ginkgo (it runs the nodes and their sync server)."""


QUICK_TESTS = (
    r"Pods should be submitted and removed",
    r"Docker Containers should use the image defaults if command and args are blank",
    r"ConfigMap should be consumable from pods in volume \[NodeConformance\]",
    r"Secrets should be consumable from pods in volume \[NodeConformance\]",
    r"DNS should provide DNS for services\s",
    r"Services should serve a basic endpoint from pods\s",
)
"""`invoke conformance --quick`: one [Conformance] test each of pods, containers,
configmaps, secrets, DNS and services, a few minutes (the cluster tests run it)."""
QUICK_FOCUS = "(" + "|".join(QUICK_TESTS) + r").*\[Conformance\]"


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    image: str
    arch: Arch
    kubeconfig: Path
    repo_list: Path
    resolv_conf: Path
    results: Path
    focus: str
    skip: str
    parallel: int
    timeout: int


@dataclass(frozen=True)
class Failure:
    name: str
    message: str


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    junit_files: list[Path] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    """Images the kubelet could not pull during the run (e2e.log's events)."""
    incomplete: str = ""
    """Why the run ended early (timeout, interrupt); empty when it ran to the end."""

    @property
    def ran(self) -> int:
        return self.passed + self.failed

    def render(self) -> str:
        lines = [f"passed {self.passed}, failed {self.failed}, skipped {self.skipped} (ran {self.ran})"]
        if self.incomplete:
            lines.append(f"INCOMPLETE: {self.incomplete}; the counts are partial")
        lines += [f"  FAILED {f.name}\n         {f.message}" for f in self.failures]
        if self.missing_images:
            lines.append("images the run could not pull (see `invoke e2e-coverage`, build with `invoke e2e-images`):")
            lines += [f"  {ref}" for ref in self.missing_images]
        return "\n".join(lines)


_LOCATION = re.compile(r"^\S+\.go:\d+$")
_STAMP = re.compile(r"^[A-Z][a-z]{2} +\d+ [\d:.]+: (?:FAIL: )?")
_PULL_FAILED = re.compile(r'Failed to pull image \\?"([^"\\]+)\\?"')


def failure_message(text: str) -> str:
    """The gist of a ginkgo failure: its text without source locations and timestamps."""
    words: list[str] = []
    for line in text.splitlines():
        line = _STAMP.sub("", line.strip())
        if line and not _LOCATION.match(line):
            words.append(line)
    return " ".join(" ".join(words).split())[:240]


def missing_images(e2e_log: str) -> list[str]:
    return sorted(set(_PULL_FAILED.findall(e2e_log)))


def parse_junit(paths: Iterable[Path]) -> Summary:
    """Counts and failures from ginkgo's junit files (one per parallel node)."""
    summary = Summary()
    for path in sorted(paths):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise ClusterError(f"{path}: not a junit XML file ({exc})") from None
        summary.junit_files.append(path)
        for case in root.iter("testcase"):
            name = case.get("name", "?")
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is not None:
                text = (failure.get("message") or failure.text or "").strip()
                summary.failed += 1
                summary.failures.append(Failure(name, failure_message(text)))
            elif case.find("skipped") is not None:
                summary.skipped += 1
            else:
                summary.passed += 1
    return summary


def check_regex(flag: str, pattern: str) -> None:
    """Ginkgo takes Go regular expressions; catch the common mistakes before a long run."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--{flag} {pattern!r}: not a regular expression ({exc})") from None


def run(req: RunRequest) -> Summary:
    """Run the suite to completion (or until ``timeout``), then parse and return its results."""
    import docker.errors

    check_regex("focus", req.focus)
    if req.skip:
        check_regex("skip", req.skip)
    if req.parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {req.parallel}")
    for stale in [*req.results.glob("junit_*.xml"), req.results / "e2e.log", req.results / "done"]:
        stale.unlink(missing_ok=True)
    engine = Engine()
    client = engine.client
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(CONTAINER_NAME).remove(force=True)
    runner_log = req.results / "runner.log"
    began = time.monotonic()
    with log.step(f"conformance: {req.image} (focus {req.focus!r}, skip {req.skip!r}, {req.parallel} node(s))"):
        engine.pull(req.image, req.arch)
        env = {
            "KUBECONFIG": str(_INSIDE / "kubeconfig"),
            "KUBE_TEST_REPO_LIST": str(_INSIDE / "repo-list.yaml"),
            "E2E_FOCUS": req.focus,
            "E2E_SKIP": req.skip,
            "E2E_PARALLEL": str(req.parallel),
            "E2E_PROVIDER": "skeleton",
            "RESULTS_DIR": "/tmp/results",
            "E2E_VERBOSITY": "4",
        }
        volumes = {
            str(req.kubeconfig): {"bind": str(_INSIDE / "kubeconfig"), "mode": "ro"},
            str(req.repo_list.resolve()): {"bind": str(_INSIDE / "repo-list.yaml"), "mode": "ro"},
            str(req.resolv_conf): {"bind": "/etc/resolv.conf", "mode": "ro"},
            str(req.results.resolve()): {"bind": "/tmp/results", "mode": "rw"},
        }
        try:
            container = client.containers.run(
                req.image,
                command=["/bin/bash", "-c", SERIAL_COMMAND] if req.parallel == 1 else None,
                name=CONTAINER_NAME,
                environment=env,
                volumes=volumes,
                network_mode="host",
                platform=req.arch.platform,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise ClusterError(f"conformance: docker could not start {req.image}: {exc.explanation or exc}") from None
        stopped = ""
        try:
            deadline = began + req.timeout
            while True:
                try:
                    container.wait(timeout=30)
                    break
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                    log.info(f"  e2e: {_progress(req.results / 'e2e.log')}")
                    if interrupt.requested():
                        stopped = "interrupted"
                        log.warn("interrupted: stopping the conformance run, keeping partial results")
                        container.stop(timeout=60)
                        break
                    if time.monotonic() > deadline:
                        stopped = f"stopped after {req.timeout}s"
                        log.warn(f"conformance run exceeded {req.timeout}s: stopping it, keeping partial results")
                        container.stop(timeout=60)
                        break
            runner_log.write_bytes(container.logs())
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    junit = sorted(req.results.glob("junit_*.xml"))
    if not junit:
        raise ClusterError(
            f"conformance: the run left no junit results in {req.results} "
            f"(see {req.results / 'e2e.log'} and {runner_log}):\n{_tail(runner_log)}"
        )
    summary = parse_junit(junit)
    with contextlib.suppress(OSError):
        summary.missing_images = missing_images((req.results / "e2e.log").read_text(errors="replace"))
    summary.incomplete = stopped
    return summary


def _progress(e2e_log: Path) -> str:
    """The last line of e2e.log worth showing while the suite runs."""
    try:
        lines = e2e_log.read_text(errors="replace").splitlines()
    except OSError:
        return "starting"
    done = sum(1 for line in lines if line.startswith(("•", "S [SKIPPING]")) or line.startswith("• Failure"))
    last = next((line.strip() for line in reversed(lines) if line.strip() and not line.startswith("-")), "")
    return f"{done} specs reported; {last[:150]}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- the results page and a certification submission ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What a results page says about a run besides its counts: enough to reproduce it."""

    kubernetes: str
    node: Arch
    workloads: Arch
    focus: str
    skip: str
    parallel: int
    started: str
    """UTC, ISO 8601."""
    seconds: float
    images: dict[str, str]
    """Every image the run used (the cluster's, the runner's, each test image) -> its digest."""


def report_markdown(summary: Summary, rec: RunRecord) -> str:
    """The run as a Markdown page: counts, every failure, and the images by digest."""
    arches = str(rec.node) if rec.node == rec.workloads else f"node {rec.node}, workloads {rec.workloads} (QEMU)"
    minutes = rec.seconds / 60
    lines = [
        f"# Conformance run: Kubernetes {rec.kubernetes}, {arches}",
        "",
        f"Started {rec.started}, took {minutes:.1f} min; focus `{rec.focus}`"
        + (f", skip `{rec.skip}`" if rec.skip else "")
        + f", {rec.parallel} ginkgo node(s). Written by `invoke conformance`.",
        "",
        "| arch (workloads) | passed | failed | skipped | ran | time |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {rec.workloads} | {summary.passed} | {summary.failed} | {summary.skipped} | {summary.ran} "
        f"| {minutes:.1f} min |",
        "",
    ]
    if summary.incomplete:
        lines += [f"**Incomplete:** {summary.incomplete}; the counts are partial.", ""]
    if summary.failures:
        lines += ["## Failures", ""]
        lines += [f"- **{f.name}**: {f.message}" for f in summary.failures]
        lines.append("")
    if summary.missing_images:
        lines += ["## Images the kubelet could not pull", ""]
        lines += [f"- `{ref}`" for ref in summary.missing_images]
        lines.append("")
    lines += ["## Images used", "", "| image | digest |", "|---|---|"]
    lines += [f"| `{ref}` | `{digest}` |" for ref, digest in sorted(rec.images.items())]
    return "\n".join(lines) + "\n"


def report_html(markdown: str) -> str:
    """The same page as self-contained HTML (tables, lists, headings; nothing fetched)."""

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

    body: list[str] = []
    rows: list[list[str]] = []

    def flush_table() -> None:
        if rows:
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            body.extend("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest)
            body.append("</table>")
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                rows.append(cells)
            continue
        flush_table()
        if line.startswith("## "):
            body.append(f"<h2>{inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.startswith("- "):
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line:
            body.append(f"<p>{inline(line)}</p>")
    flush_table()
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
        "code{font-size:90%}"
    )
    title = html.escape(markdown.splitlines()[0].lstrip("# "))
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{style}</style>'
        f"</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(results: Path, summary: Summary, rec: RunRecord) -> tuple[Path, Path]:
    md = report_markdown(summary, rec)
    page, web = results / "report.md", results / "report.html"
    page.write_text(md)
    web.write_text(report_html(md))
    return page, web


PRODUCT_YAML = """\
# PRODUCT.yaml of a k8s-conformance submission: fill in the fields marked FILL IN.
vendor: FILL IN (your organisation)
name: FILL IN (the product's name)
version: {kubernetes}
website_url: FILL IN
repo_url: FILL IN (where this project's sources are)
documentation_url: FILL IN
product_logo_url: FILL IN
type: installer
description: >-
  Kubernetes {kubernetes} built from its upstream Go modules for amd64 and mips64el, with
  every cluster component and conformance test image rebuilt by kubemips.
"""


def write_submission(dest: Path, results: Path, summary: Summary, rec: RunRecord) -> list[Path]:
    """Lay the results out as a k8s-conformance submission directory (one product, one
    version): e2e.log, junit_01.xml, PRODUCT.yaml and README.md to complete by hand.

    Certification wants one serial run of the whole suite; a partial or parallel run is
    laid out all the same but its README says so."""
    if summary.junit_files and len(summary.junit_files) != 1:
        raise ClusterError(
            f"--submission needs one junit file (a serial run, --parallel 1); this run wrote {len(summary.junit_files)}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src, name in ((results / "e2e.log", "e2e.log"), (summary.junit_files[0], "junit_01.xml")):
        target = dest / name
        target.write_bytes(src.read_bytes())
        written.append(target)
    product = dest / "PRODUCT.yaml"
    product.write_text(PRODUCT_YAML.format(kubernetes=rec.kubernetes))
    caveats = []
    if rec.focus != r"\[Conformance\]" or rec.skip:
        caveats.append(f"- This run's focus was `{rec.focus}`, skip `{rec.skip}`: not the whole suite.")
    if summary.failed or summary.incomplete:
        caveats.append(f"- {summary.failed} test(s) failed{'; ' + summary.incomplete if summary.incomplete else ''}.")
    readme = dest / "README.md"
    readme.write_text(
        f"# Kubernetes {rec.kubernetes} on {rec.workloads} (kubemips)\n\n"
        "## How to reproduce the results\n\n"
        "On a Debian 12 machine, as root, from a clone of the kubemips repository:\n\n"
        "```sh\n./scripts/setup-host.sh && . .venv/bin/activate\n"
        f"invoke cluster-up --arch {rec.workloads}\n"
        "invoke conformance --results results --submission submission\n"
        "invoke cluster-down\n```\n\n"
        f"Result of this run: passed {summary.passed}, failed {summary.failed}, skipped {summary.skipped}; "
        f"{rec.seconds / 60:.0f} minutes; node {rec.node}, workloads {rec.workloads}.\n"
        + ("\n## Before submitting\n\n" + "\n".join(caveats) + "\n" if caveats else "")
    )
    return [*written, product, readme]
