"""The edge between the front ends (cli.py's tasks, noxfile.py's sessions) and the package.

Each command is a short sequence of named steps over :class:`Settings`: load the
catalog, resolve the request, open the registry, call the module that owns the work,
show its result.  The work itself, its printing included, lives in those modules
(``request``, ``build``, ``report``, ``localregistry``, ``verify``, ``shard``,
``conformance``, ``coverage``, ``manifests``, ``mirror``, ``bundle``, ``bench``), where
it can be tested without a front end.  ``edge`` is the one place errors are caught: it
prints the message and exits with the error's code, so every command fails the same way.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from . import bench as benchmark
from . import config, conformance, coverage, interrupt, localregistry, log, manifests, oci, request, shard
from . import report as build_report
from .arch import parse_arches
from .build import Report, run_plan
from .bundle import export_bundles
from .catalog import IMAGE_COLUMNS, Catalog, load_catalog
from .config import Settings
from .errors import Interrupted, KubemipsError
from .localregistry import open_registry
from .mirror import copy_missing
from .outputs import output_dir, output_file, output_file_or
from .plan import Plan
from .request import SourceMap
from .verify import verify_published


@contextmanager
def edge(progress: str = "") -> Iterator[None]:
    """Turn a KubemipsError into one message on stderr and a non-zero exit.

    ``progress`` is the progress mode (`--progress`; empty: $KUBEMIPS_PROGRESS or auto)."""
    try:
        log.configure(progress)
        with interrupt.handled():
            yield
            interrupt.check("stopped after the work was done")
    except Interrupted as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", Interrupted.exit_code)
    except KubemipsError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as exc:
        # A file-system fault (an output path that is a directory, a full disk, ...).
        _fail(f"error: {f'{exc.filename}: ' if exc.filename else ''}{exc.strerror or exc}", 1)
    except Exception:  # a bug: say so, keep the details out of the way
        sys.stdout.flush()
        fd, name = tempfile.mkstemp(prefix="kubemips-internal-error-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            traceback.print_exc(file=out)
        _fail(f"internal error (a bug in kubemips); details in {name}", 70)


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code) from None


def settings(*, arch: str = "", registry: str = "", jobs: int = 0, config_file: str = "") -> Settings:
    """The settings a command runs with: the flags given over the environment, file and defaults."""
    flags: dict[str, Any] = {
        "build.architectures": list(a.name for a in parse_arches(arch)) if arch else None,
        "registry.address": registry or None,
        "build.jobs": jobs or None,
    }
    return config.load(config_file=Path(config_file) if config_file else None, flags=flags)


def embedded_server(s: Settings) -> localregistry.RegistryServer:
    return localregistry.embedded(s)


def catalog(s: Settings) -> Catalog:
    """The catalog a command works from (broken e2e folders named as warnings)."""
    return load_catalog(s.root, warn=True)


def plan_for(s: Settings, what: str | Sequence[str], *, version: str = "", source: str = "") -> tuple[Plan, SourceMap]:
    """The plan for WHAT; ``version``/``source`` override the one component requested."""
    return request.plan(catalog(s), what, s.default_what, s.arches, version=version, source=source)


def build(
    s: Settings,
    what: str | Sequence[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    smoke: bool = True,
    report_path: str = "",
    version: str = "",
    source: str = "",
    digests_dir: str = "",
    k8s_source: str = "",
    as_json: bool = False,
) -> Report | None:
    """Build WHAT.  With ``digests_dir`` (sharded mode) the requested images are pushed by
    digest only, a record per image is written there, and no tag or list moves: bases
    come from records already in that directory, or from the registry.

    ``as_json``: stdout gets only JSON (the plan with ``dry_run``, else the report)."""
    plan, given = plan_for(s, what, version=version, source=source)
    sources = request.checked_sources(plan, given, k8s_source)
    records = Path(digests_dir) if digests_dir else None
    plan = shard.requested_nodes(plan) if records is not None else plan
    if dry_run:
        build_report.show_plan(plan, s.registry, as_json=as_json)
        return None
    # Where the results go is checked before anything is built or pushed.
    path = output_file_or("--report", report_path, build_report.default_path(s))
    if records is not None:
        output_dir("--digests-dir", records)
    arches = ", ".join(a.name for a in s.arches)
    mode = " (push by digest)" if records is not None else ""
    with log.step(f"build {', '.join(plan.requested)} for {arches} into {s.registry}{mode}"):
        reg = open_registry(s)
        preset = shard.provided_bases(reg, catalog(s), plan, records, s.registry) if records else {}
        tag = records is None
        report = run_plan(s, reg, plan, sources=sources, force=force, smoke=smoke, tag_images=tag, preset=preset)
        if records is not None:
            shard.write_records(records, report, s.registry)
    build_report.conclude(report, reg, path, as_json=as_json)
    return report


def verify(s: Settings, what: str | Sequence[str], *, as_json: bool = False) -> None:
    """Re-verify the published lists of WHAT (no building)."""
    plan, _ = plan_for(s, what)
    verify_published(open_registry(s, start=False), plan, s.arches, as_json=as_json)


def show_config(s: Settings) -> None:
    log.print_block(s.describe())


def list_images(s: Settings, *, as_json: bool = False) -> None:
    rows = catalog(s).image_rows()
    if as_json:
        log.print_json([dict(zip(IMAGE_COLUMNS, row, strict=True)) for row in rows])
    else:
        log.print_block(log.table(IMAGE_COLUMNS, rows))


def bundle(settings: Settings, what: str, out: Path) -> list[Path]:
    """Export the .deb bundle a debian-packages component keeps, per arch, checksums verified."""
    return export_bundles(open_registry(settings, start=False), catalog(settings), what, settings.arches, out)


def matrix(s: Settings, what: str, *, stage: int | None = None) -> dict[str, Any]:
    """The GitHub Actions matrix for WHAT: one entry per image and arch, with its stage."""
    cat = catalog(s)
    return shard.matrix(cat, cat.resolve(what, s.default_what), s.arches, stage=stage, runners=s.runners)


def write_github_output(s: Settings, what: str, path: Path, stages: int) -> None:
    """``stageN=<matrix json>`` lines for a workflow with ``stages`` build stages."""
    output_file("--github-output", path)
    shard.write_github_output(path, matrix(s, what), stages)


def merge(s: Settings, digests_dir: Path, *, allow_partial: bool = False, complete_only: bool = False) -> None:
    """Publish the lists of a sharded build from the digest records in ``digests_dir``."""
    reg = open_registry(s, start=False)
    records = shard.read_records(digests_dir)
    results, skipped = shard.merge(
        s, reg, catalog(s), records, allow_partial=allow_partial, complete_only=complete_only
    )
    shard.show_merge(reg, results, skipped)


def e2e_catalog(s: Settings, k8s: str) -> conformance.ConformanceCatalog:
    return conformance.load(s.root, k8s, catalog(s))


def e2e_list(s: Settings, k8s: str) -> None:
    """Each image the run pulls, its local name and what builds it (or why nothing does)."""
    log.print_block(conformance.image_list(e2e_catalog(s, k8s), catalog(s), s.registry))


def e2e_repo_list(s: Settings, k8s: str, out: Path | None) -> Path:
    """Write the KUBE_TEST_REPO_LIST that points the run at the registry; its path."""
    path = output_file_or("--out", out, s.cache_dir / f"kube-test-repo-list-{k8s}.yaml")
    return conformance.write_repo_list(e2e_catalog(s, k8s), s.registry, path)


def e2e_what(s: Settings, k8s: str, names: Sequence[str]) -> list[str]:
    """The catalog's buildable images (all, or those named) for `nox -s e2e_images`."""
    return conformance.buildable(e2e_catalog(s, k8s), catalog(s), names)


def e2e_coverage(
    s: Settings, k8s: str, *, markdown: Path | None = None, html: Path | None = None, as_json: bool = False
) -> None:
    """The image x arch coverage: terminal table (or JSON), Markdown and HTML files, and
    GitHub's job summary ($GITHUB_STEP_SUMMARY) when set."""
    md_path = output_file_or("--markdown", markdown, s.reports_dir / f"e2e-coverage-{k8s}.md")
    html_path = output_file_or("--html", html, s.reports_dir / f"e2e-coverage-{k8s}.html")
    cc = e2e_catalog(s, k8s)
    rows = conformance.coverage(cc, catalog(s), open_registry(s, start=False), s.arches, s.smoke_dir)
    coverage.publish(rows, cc.kubernetes, s.registry, md_path, html_path, json_output=as_json)


def render_manifests(s: Settings, k8s: str, out: Path) -> list[Path]:
    """Write the cluster manifests of Kubernetes ``k8s``, naming this registry's images."""
    output_dir("--out", out)
    return manifests.write(manifests.render(s.root, s.registry, k8s, catalog(s)), out)


def verify_manifests(s: Settings, directory: Path) -> None:
    """Schema-check every document and check every image it references is a full list."""
    manifests.verify_dir(directory, open_registry(s, start=False), s.registry, s.arches)


def cluster_images(s: Settings, k8s: str) -> list[str]:
    """Every image a cluster of that version needs, as the rendered manifests name them."""
    return manifests.cluster_images(s.root, s.registry, k8s, catalog(s))


def mirror(settings: Settings, source: str, k8s: str, what: Sequence[str]) -> None:
    """Copy the cluster's images that the registry lacks from ``source``, digests checked."""
    dest = open_registry(settings)
    src = open_registry(settings, source, start=False)
    store = oci.BlobStore(settings.blob_dir)
    rows = copy_missing(dest, src, source, settings.registry, cluster_images(settings, k8s), store, only=what)
    log.print_block(log.table(["image", "result"], rows))


def bench(
    s: Settings,
    what: Sequence[str],
    cases: str,
    *,
    touch: str = "",
    out: str = "",
    keep: bool = False,
    compare: Sequence[str] = (),
) -> None:
    """Run the benchmark (or compare two result files) and print its tables."""
    if compare:
        benchmark.show_comparison(compare)
        return
    chosen = benchmark.parse_cases(cases)
    names = benchmark.names(s, what)
    plan_for(s, names)  # unknown names fail here, before anything starts
    benchmark.run_and_report(s, names, chosen, touch=touch, out=out, keep=keep)
