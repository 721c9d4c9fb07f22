"""Go programs cross-compiled on the host: ``CGO_ENABLED=0 GOARCH=<oci> go build``.

Never compiled under QEMU.  Each binary is built once per component and arch, then the
component's images pick their files from the results (``files = { "/path" = "binary" }``).
Version ldflags are written as upstream's Makefiles set them, with placeholders
(:mod:`kubemips.placeholders`) filled from the component: ``{version}`` ``{major}``
``{minor}`` ``{commit}`` ``{date}`` and the arch's spellings.
Binaries and extra files can be limited to a version range (hyperkube is one binary up
to v1.16 and a wrapper over the server binaries from v1.17).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import cmd, generate, gotool, log, placeholders, sources, versions
from ..arch import Arch
from ..components import Component, ImageDef, Source
from ..errors import BuildError, ConfigError
from ..oci import FileEntry, FilesLayer, canonical_json, iso_time
from ..schema import check_table
from .base import BaseImage, BuildContext, Builder, BuildOutput, Options
from .dockerfile import tree_digest

BINARY_KEYS = {"name": str, "package": str, "source": str, "versions": str, "ldflags": list, "test": bool}
"""One Go binary: ``test = true`` compiles a package's tests (``go test -c``, e2e.test)."""
_EXTRA = {"name": str, "file": str, "versions": str}
_TREE_FILE = {"name": str, "path": str, "source": str}
"""A data file the upstream image copies from the source tree (a test certificate, say),
put beside the binaries: ``path`` in the tree of ``source`` (default main) -> ``name``."""


@dataclass(frozen=True, kw_only=True)
class GoOptions(Options):
    """What a ``go`` component compiles; an e2e folder's ``[go]`` comes to the same (see
    :meth:`kubemips.builders.e2e.E2EDockerfileBuilder.go_options`)."""

    binaries: tuple[Mapping[str, Any], ...]
    """Each ``{ name, package }`` (:data:`BINARY_KEYS`)."""
    ldflags: tuple[str, ...] = ()
    """For every binary, before its own; placeholders filled per binary and arch."""
    tags: tuple[str, ...] = ()
    import_path: str = ""
    """Where a source without go.mod builds in GOPATH mode."""
    extra_files: tuple[Mapping[str, Any], ...] = ()
    """Files of the component directory put beside the binaries (``{ name, file }``)."""
    tree_files: tuple[Mapping[str, Any], ...] = ()
    """Files of a source tree put beside the binaries (:data:`_TREE_FILE`)."""
    bundle: str = ""
    """Where an image keeps its binaries with their SHA256SUMS; '' keeps none."""


def wanted_binaries(comp: Component, go: GoOptions) -> list[dict[str, Any]]:
    """The ``binaries`` entries that apply to the component's version, each naming its
    source (``main`` unless it says).  Go components and e2e folders with ``[go]`` both
    list binaries; the build and the up-front source check read them through this."""
    return [
        {"source": "main", **entry}
        for entry in go.binaries
        if not entry.get("versions") or versions.in_range(comp.version, entry["versions"])
    ]


def source_names(comp: Component, go: GoOptions) -> list[str]:
    """The sources the component's applicable binaries compile from, or its tree-files
    come from, sorted."""
    files = {f.get("source", "main") for f in go.tree_files}
    return sorted({b["source"] for b in wanted_binaries(comp, go)} | files)


class GoBuilder(Builder[GoOptions]):
    kind: ClassVar[str] = "go"
    options = GoOptions

    def __init__(self) -> None:
        super().__init__()
        self._done: dict[str, Path] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- declaration ------------------------------------------------------------------------
    def check(self, comp: Component) -> GoOptions:
        opts = super().check(comp)
        for i, entry in enumerate(opts.binaries):
            where = f"{comp.file}: [build] binaries[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: must be a table {{ name = ..., package = ... }}")
            b = check_table(where, entry, BINARY_KEYS, required=("name", "package"))
            if b.get("source", "main") not in comp.sources and comp.sources:
                raise ConfigError(f"{where}: source '{b['source']}' is not one of {', '.join(comp.sources)}")
            if b.get("versions"):
                versions.check_range(b["versions"], where=where)
        for i, entry in enumerate(opts.extra_files):
            where = f"{comp.file}: [build] extra-files[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: must be a table {{ name = ..., file = ... }}")
            e = check_table(where, entry, _EXTRA, required=("name", "file"))
            if not (comp.directory / e["file"]).is_file():
                raise ConfigError(f"{where}: file {comp.directory / e['file']} not found")
        for image in comp.images:
            if not image.files:
                raise ConfigError(f'{comp.file}: image \'{image.name}\' needs files = {{ "/path" = "binary" }}')
        return opts

    def go_options(self, comp: Component) -> GoOptions:
        return self.opts(comp)

    def bundle(self, comp: Component) -> str:
        return self.opts(comp).bundle

    def _extras(self, comp: Component, go: GoOptions) -> list[Mapping[str, Any]]:
        return [e for e in go.extra_files if not e.get("versions") or versions.in_range(comp.version, e["versions"])]

    def _local(self, comp: Component, name: str, ctx: BuildContext) -> Path | None:
        return (ctx.sources.get(comp.name) or {}).get(name)

    def _source_id(self, comp: Component, go: GoOptions, name: str, ctx: BuildContext) -> str:
        local = self._local(comp, name, ctx)
        if local is not None:
            return "local-" + hashlib.sha256(canonical_json(tree_digest(local))).hexdigest()[:16]
        source = comp.sources.get(name)
        if source is None:
            raise ConfigError(
                f"{comp.file}: no pinned source '{name}' for {comp.name} {comp.version}; "
                f"give a local tree with --source {name + '=' if len(source_names(comp, go)) > 1 else ''}DIR"
            )
        return source.pin

    def _commit(self, comp: Component, go: GoOptions, name: str, ctx: BuildContext) -> str:
        """What ``{commit}`` stamps: the source's commit when pinned, else its id."""
        source = comp.sources.get(name)
        if self._local(comp, name, ctx) is None and source is not None:
            if source.commit:
                return source.commit
            if source.kind == "go-module":
                return source.version  # what the module proxy knows it by
        return self._source_id(comp, go, name, ctx)[:12]

    def fetch(self, comp: Component, ctx: BuildContext) -> None:
        self.fetch_sources(comp, self.opts(comp), ctx)

    def fetch_sources(self, comp: Component, go: GoOptions, ctx: BuildContext) -> None:
        """Fetch and prepare every pinned source this component compiles from, up front."""
        for name in source_names(comp, go):
            source = comp.sources.get(name)
            if source is not None and self._local(comp, name, ctx) is None:
                sources.fetch(
                    source, ctx.settings.cache_dir, ctx.settings.go_cache_dir, what=f"{comp.name} {comp.version}"
                )

    def inputs(self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext) -> dict[str, Any]:
        return self.go_inputs(comp, self.opts(comp), image, arch, ctx)

    def go_inputs(
        self, comp: Component, go: GoOptions, image: ImageDef, arch: Arch, ctx: BuildContext
    ) -> dict[str, Any]:
        """What the compiled binaries and the image's files of them depend on."""
        srcs = {}
        for name in source_names(comp, go):
            source = comp.sources.get(name)
            patches = [
                p for p in (source.patches if source else ()) if p.applies(arch, source_version(comp), comp.name)
            ]
            srcs[name] = {
                "id": self._source_id(comp, go, name, ctx),
                "patches": {p.file.name: hashlib.sha256(p.file.read_bytes()).hexdigest() for p in patches},
            }
        extras = {
            e["name"]: hashlib.sha256((comp.directory / e["file"]).read_bytes()).hexdigest()
            for e in self._extras(comp, go)
        }
        doc = {
            "go": gotool.toolchain().version,
            "sources": srcs,
            "binaries": wanted_binaries(comp, go),
            "extras": extras,
            "files": dict(image.files),
            "links": dict(image.links),
        }
        if go.tree_files:  # only when used: other images keep their input digests
            doc["tree-files"] = list(go.tree_files)
        return doc

    # -- build ------------------------------------------------------------------------------
    def _placeholders(self, comp: Component, arch: Arch, commit: str, epoch: int) -> dict[str, str]:
        return {**placeholders.values(source_version(comp), arch), "commit": commit, "date": iso_time(epoch)}

    def compile(self, comp: Component, go: GoOptions, arch: Arch, ctx: BuildContext) -> Path:
        """Build every binary of ``comp`` for ``arch`` once; returns the artifacts dir."""
        ids = ",".join(self._source_id(comp, go, n, ctx) for n in source_names(comp, go))
        key = f"{comp.name}/{comp.version}/{arch.name}/{ids}"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._done:
                return self._done[key]
            work = ctx.workdir(comp, arch)
            out = work / "artifacts"
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            cache = ctx.settings.cache_dir
            go_cache = ctx.settings.go_cache_dir
            go_command = gotool.toolchain().go
            trees: dict[str, Path] = {}
            for name in source_names(comp, go):
                local = self._local(comp, name, ctx)
                trees[name] = sources.prepare(
                    comp, comp.sources.get(name), local, arch, cache, go_cache, source_version(comp)
                )
            vcs_flag = "-buildvcs" in cmd.output([go_command, "help", "build"])
            for binary in wanted_binaries(comp, go):
                tree = trees[binary["source"]]
                source = comp.sources.get(binary["source"])
                values = self._placeholders(
                    comp, arch, self._commit(comp, go, binary["source"], ctx), ctx.settings.source_date_epoch
                )
                flags = [*go.ldflags, *binary.get("ldflags", [])]
                where = f"{comp.file}: ldflags of {binary['name']}"
                ldflags = " ".join(
                    ["-s", "-w", "-buildid=", *(placeholders.fill(f, values, where=where) for f in flags)]
                )
                env, build_dir = self._layout(go, source, tree, binary["package"], work, go_cache)
                env.update({"GOOS": "linux", "GOARCH": arch.oci, "CGO_ENABLED": "0"})
                verb = ["test", "-c"] if binary.get("test") else ["build"]
                argv = [go_command, *verb, "-trimpath", "-ldflags", ldflags, "-o", str(out / binary["name"])]
                if go.tags:
                    argv += ["-tags", ",".join(go.tags)]
                if vcs_flag:
                    argv.insert(len(verb) + 1, "-buildvcs=false")
                argv.append(binary["package"])
                started = time.monotonic()
                cmd.run(
                    argv,
                    cwd=build_dir,
                    env=env,
                    what=f"go build {binary['name']} ({comp.name} {comp.version} {arch}) in {tree}",
                )
                log.info(f"[{comp.name} {arch}] {binary['name']}: {time.monotonic() - started:.0f}s")
            for i, entry in enumerate(go.tree_files):
                spec = check_table(f"{comp.file}: tree-files[{i}]", entry, _TREE_FILE, required=("name", "path"))
                src = trees[spec.get("source", "main")] / spec["path"]
                if not src.is_file():
                    raise BuildError(f"{comp.name}: tree-files[{i}]: {spec['path']} is not a file in {src.parent}")
                shutil.copyfile(src, out / spec["name"])
            for extra in self._extras(comp, go):
                target = out / extra["name"]
                shutil.copyfile(comp.directory / extra["file"], target)
                os.chmod(target, 0o755)
            self._done[key] = out
            return out

    def _layout(
        self, go: GoOptions, source: Source | None, tree: Path, package: str, work: Path, go_cache: Path
    ) -> tuple[dict[str, str], Path]:
        """Environment and directory to build ``package`` in: GOPATH or module mode.

        A GOPATH-layout source (Kubernetes v1.16, vendored) builds its own packages in
        GOPATH mode; a package outside it that its vendor/ lacks (k8s.io/sample-apiserver's
        main) builds in module mode from the same go.mod, so the same pinned versions.
        """
        if source is not None and source.gopath:
            if package.startswith("."):
                return generate.gopath_env(source, tree, go_cache)
            # The go command may add to go.mod/go.sum here: give it copies, so the shared
            # tree stays as prepared (and the same for every build).
            modfile = work / "modfile" / "go.mod"
            modfile.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / "go.mod", modfile)
            shutil.copyfile(tree / "go.sum", modfile.with_suffix(".sum"))
            return gotool.environment(go_cache, GOFLAGS=f"-mod=mod -modfile={modfile}"), tree
        if not (tree / "go.mod").exists() and go.import_path:
            return gotool.gopath_layout(go_cache, work / "gopath", go.import_path, tree)
        env = gotool.environment(go_cache)
        if (tree / "vendor" / "modules.txt").exists():
            env["GOFLAGS"] = "-mod=vendor"
        return env, tree

    def build(
        self, comp: Component, image: ImageDef, arch: Arch, ctx: BuildContext, base: BaseImage | None
    ) -> BuildOutput:
        opts = self.opts(comp)
        artifacts = self.compile(comp, opts, arch, ctx)
        entries = []
        for path, wanted in sorted(image.files.items()):
            artifact = wanted.removesuffix("?")
            source = artifacts / artifact
            if not source.is_file() and wanted.endswith("?"):
                continue  # optional: not built at this version
            if not source.is_file():
                available = ", ".join(sorted(p.name for p in artifacts.iterdir()))
                raise BuildError(
                    f"{comp.file}: image '{image.name}' wants '{artifact}', which {comp.name} {comp.version} "
                    f"does not build (built: {available})"
                )
            entries.append(FileEntry(path, source.read_bytes(), 0o755))
        inside = opts.bundle.rstrip("/")
        bundled = sorted((e for e in entries if inside and e.path.startswith(inside + "/")), key=lambda e: e.path)
        if bundled:
            # The bundle's checksums, as `invoke bundle` verifies them on export.
            sums = "".join(f"{hashlib.sha256(e.data).hexdigest()}  {e.path.rsplit('/', 1)[1]}\n" for e in bundled)
            entries.append(FileEntry(f"{inside}/SHA256SUMS", sums.encode(), 0o644))
        entries += [FileEntry(path, b"", 0o777, link=target) for path, target in sorted(image.links.items())]
        layer = ctx.store.write_layer(FilesLayer(entries, ctx.settings.source_date_epoch))
        return BuildOutput([layer], [f"go build (GOARCH={arch.oci}) -> {', '.join(sorted(image.files))}"])


def source_version(comp: Component) -> str:
    """The version of the source tree: the component's, or for an e2e image built from
    the Kubernetes tree, that tree's (agnhost 2.6 compiles from Kubernetes v1.16.2, whose
    patches and version stamps apply)."""
    return comp.provider.version if comp.provider is not None else comp.version
