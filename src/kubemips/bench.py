"""The benchmark (`invoke bench`, `nox -s bench`): where a build's time goes, measured.

Not a timed test: it builds a named set the way a user does (one `kubemips build` process
per case) into a throwaway registry and cache, and reads each build report's per-image
phases (:mod:`kubemips.timing`), so the emulated share of a cold build is visible and an
optimisation is judged by numbers, with the digests beside them to show it changed none.

Cases, in the order they run:

- ``cold``: a fresh cache (no sources, packages, smoke results), an empty registry, and
  ``--force``, so no RUN step comes from the Docker engine's layer cache either.  The Go
  module and build caches stay shared (``paths.go-cache``): a cold Kubernetes build is
  `nox -s kubernetes`, not this.
- ``warm``: the same again with nothing changed: every image is found in the registry.
- ``incremental``: one input file changed (``--touch``, appended to, in the benchmark's
  own copy of the project files): only its image and their dependents may rebuild.
- ``serial``: cold again, with ``--jobs 1``: the reference the parallel engine must beat.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cmd, log, timing
from .config import CONFIG_NAME, Settings
from .engine import Engine
from .errors import BuildError, ConfigError, PrerequisiteError
from .localregistry import RegistryServer
from .outputs import output_file_or

DEFAULT_EXTRA = ("redis", "perl", "httpd-2.4.38", "dnsutils")
"""Debian-package e2e images measured beside the default set: apt-get under QEMU."""

DEFAULT_TOUCH = "components/pause/pause.c"
"""The incremental case's changed input: pause's source (no image builds on pause)."""

PROJECT_FILES = (CONFIG_NAME, "components", "e2e-images")
"""What a build reads from the project: copied, so ``--touch`` never edits the checkout."""


@dataclass(frozen=True)
class Case:
    name: str
    fresh: bool
    """A new cache directory and an empty registry namespace."""
    force: bool
    jobs: int = 0
    touch: bool = False


CASES = {
    "cold": Case("cold", fresh=True, force=True),
    "warm": Case("warm", fresh=False, force=False),
    "incremental": Case("incremental", fresh=False, force=False, touch=True),
    "serial": Case("serial", fresh=True, force=True, jobs=1),
}


def parse_cases(text: str) -> list[Case]:
    names = [n for n in text.replace(",", " ").split() if n] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ConfigError(f"--cases: unknown case {', '.join(unknown)} (known: {', '.join(CASES)})")
    if ("warm" in names or "incremental" in names) and "cold" not in names:
        raise ConfigError("--cases: warm and incremental reuse what cold built; include cold")
    return [CASES[n] for n in CASES if n in names]  # always in the table's order


def _kubemips() -> str:
    exe = Path(sys.executable).parent / "kubemips"
    if not exe.is_file():
        raise PrerequisiteError(f"{exe} is missing: install the project (scripts/setup-host.sh) first")
    return str(exe)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    docker_version = Engine().server_version()
    return {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": docker_version,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _copy_project(src: Path, dest: Path, touch: str) -> Path:
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        path = src / name
        if path.is_dir():
            shutil.copytree(path, dest / name, symlinks=True)
        elif path.is_file():
            shutil.copy2(path, dest / name)
    touched = dest / touch
    if not touched.is_file() or not touched.resolve().is_relative_to(dest.resolve()):
        raise ConfigError(f"--touch {touch}: not a file of the project ({', '.join(PROJECT_FILES)})")
    return touched


def _run_case(
    case: Case, what: Sequence[str], arches: str, root: Path, cache: Path, registry: str, go_cache: Path
) -> dict[str, Any]:
    work = cache.parent
    report = work / f"{case.name}.json"
    argv = [_kubemips(), "build", "--what", ",".join(what), "--arch", arches, "--report", str(report)]
    argv += ["--progress", "plain"]
    if case.force:
        argv.append("--force")
    if case.jobs:
        argv += ["--jobs", str(case.jobs)]
    env = {"REGISTRY": registry, "KUBEMIPS_CACHE": str(cache), "KUBEMIPS_GO_CACHE": str(go_cache)}
    env["KUBEMIPS_CONFIG"] = str(root / CONFIG_NAME)
    began = time.monotonic()
    proc = cmd.run(argv, what=f"bench case {case.name}", cwd=root, env=env, echo=False, check=False)
    wall = time.monotonic() - began
    (work / f"{case.name}.log").write_text(proc.stdout)
    if proc.returncode != 0 or not report.is_file():
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise BuildError(f"bench case {case.name}: the build failed (log {work / (case.name + '.log')}):\n{tail}")
    data = json.loads(report.read_text())
    return {
        "wall": round(wall, 3),
        "seconds": data["seconds"],
        "fetch_seconds": data.get("fetch_seconds", 0.0),
        "images": [
            {k: img[k] for k in ("name", "arch", "status", "digest", "seconds", "phases") if k in img}
            for img in data["images"]
        ],
    }


def run(
    s: Settings,
    what: Sequence[str],
    arches: str,
    cases: Sequence[Case],
    *,
    touch: str = DEFAULT_TOUCH,
    keep: bool = False,
) -> dict[str, Any]:
    """Run ``cases`` over ``what``; the benchmark's JSON document."""
    base = s.cache_dir / "bench"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    result: dict[str, Any] = {"machine": machine(), "what": list(what), "arches": arches, "cases": {}}
    server = RegistryServer(f"127.0.0.1:{_free_port()}", work / "registry")
    try:
        root = work / "project"
        touched = _copy_project(s.root, root, touch)
        server.start()
        slot = ""
        for case in cases:
            if case.fresh or not slot:
                slot = case.name  # its own cache and registry namespace; the next cases reuse them
            if case.touch:
                note = "changed by the benchmark's incremental case"
                with touched.open("a") as f:
                    f.write(f"\n/* {note} */\n" if touched.suffix in {".c", ".h", ".go"} else f"\n# {note}\n")
                result["touched"] = touch
            registry = f"{server.listen}/{slot}"
            with log.step(f"bench {case.name}: {', '.join(what)} for {arches}"):
                result["cases"][case.name] = _run_case(
                    case, what, arches, root, work / f"cache-{slot}", registry, s.go_cache_dir
                )
            log.info(f"[bench] {case.name}: {result['cases'][case.name]['wall']:.1f}s")
    finally:
        server.stop()
        if keep:
            log.info(f"[bench] kept {work} (logs, reports, registry)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _phase_totals(case: dict[str, Any]) -> dict[str, float]:
    totals = {"fetch": float(case.get("fetch_seconds", 0.0))}
    for img in case["images"]:
        for name, seconds in (img.get("phases") or {}).items():
            totals[name] = totals.get(name, 0.0) + float(seconds)
    return totals


def _secs(value: float) -> str:
    return f"{value:.1f}s"


def table(doc: dict[str, Any]) -> str:
    """The cases side by side, then per image and arch of the first case: where time went.

    Phase columns sum each image's own time; images build two at a time, so a column can
    exceed the wall time."""
    cases: dict[str, Any] = doc["cases"]
    rows = []
    for name, case in cases.items():
        statuses = [img["status"] for img in case["images"]]
        totals = _phase_totals(case)
        rows.append(
            [name, _secs(case["wall"]), str(statuses.count("built")), str(statuses.count("cached"))]
            + [_secs(totals.get(p, 0.0)) for p in timing.PHASES]
        )
    text = log.table(["case", "wall", "built", "cached", *timing.PHASES], rows)
    first = next(iter(cases.values()), None)
    if first is not None:
        per_image = [
            [img["name"], img["arch"], img["status"], _secs(img["seconds"])]
            + [_secs(img.get("phases", {}).get(p, 0.0)) for p in timing.PHASES if p != "fetch"]
            for img in first["images"]
        ]
        heads = ["image", "arch", "status", "time", *(p for p in timing.PHASES if p != "fetch")]
        text += f"\n\n{next(iter(cases))}, per image:\n" + log.table(heads, per_image)
    if "incremental" in cases:
        rebuilt = [f"{i['name']}/{i['arch']}" for i in cases["incremental"]["images"] if i["status"] == "built"]
        text += f"\n\nincremental ({doc.get('touched', '?')} changed) rebuilt: {', '.join(rebuilt) or 'nothing'}"
    m = doc.get("machine", {})
    text += f"\nmachine: {m.get('cores')} cores, kernel {m.get('kernel')}, Docker {m.get('docker')}, {m.get('date')}"
    return text


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Wall time per case of two benchmark files, and whether the cold digests agree."""
    rows = []
    for name in CASES:
        if name in before["cases"] and name in after["cases"]:
            a, b = before["cases"][name]["wall"], after["cases"][name]["wall"]
            rows.append([name, _secs(a), _secs(b), f"{a / b:.2f}x" if b else "-"])
    text = log.table(["case", "before", "after", "speed-up"], rows)
    if "cold" in before["cases"] and "cold" in after["cases"]:

        def digests(doc: dict[str, Any]) -> dict[str, str]:
            return {f"{i['name']}/{i['arch']}": i.get("digest", "") for i in doc["cases"]["cold"]["images"]}

        old, new = digests(before), digests(after)
        differ = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
        text += "\n\ncold digests: " + (f"differ for {', '.join(differ)}" if differ else "identical")
    return text


def load(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--compare {path}: not a benchmark result ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), dict):
        raise ConfigError(f"--compare {path}: not a benchmark result (no cases)")
    return doc


def show_comparison(files: Sequence[str]) -> None:
    """``--compare BEFORE,AFTER``: print how two result files differ."""
    if len(files) != 2:
        raise ConfigError("--compare takes two result files: BEFORE,AFTER")
    before, after = (load(p) for p in files)
    log.print_block(compare(before, after))


def names(s: Settings, what: Sequence[str]) -> list[str]:
    """The images measured: those named, else the default set and :data:`DEFAULT_EXTRA`."""
    return list(what) or [*s.default_what, *DEFAULT_EXTRA]


def run_and_report(
    s: Settings,
    what: Sequence[str],
    cases: Sequence[Case],
    *,
    touch: str = "",
    out: str = "",
    keep: bool = False,
) -> None:
    """Run ``cases`` over ``what``, write the results (``out``, checked before the first
    case starts, else the cache's reports/bench.json) and print their table."""
    path = output_file_or("--out", out, s.reports_dir / "bench.json")
    arches = ",".join(a.name for a in s.arches)
    doc = run(s, what, arches, cases, touch=touch or DEFAULT_TOUCH, keep=keep)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    log.print_block(table(doc) + f"\nresults: {path}")
