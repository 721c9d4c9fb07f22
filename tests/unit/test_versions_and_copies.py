"""Per-version source pins (``[versions."X".source]``, what ``--version X`` builds) and
files copied from another project image (``copy``, upstream's ``COPY --from``)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kubemips import app, components, config
from kubemips.arch import parse_arch, parse_arches
from kubemips.build import file_in_image
from kubemips.catalog import load_catalog
from kubemips.errors import BuildError, ConfigError
from kubemips.plan import make_plan

from .helpers import go_component, simple, write_component

REPO = Path(__file__).resolve().parents[2]
H1 = "h1:k0f/OVp6Yfv+UMTm6VYKhqjRgcvHh4QhN9coanjrito="
H2 = "h1:onP3PO47wdSDZylBpjrqJCZ9mx4g7KpgfGBRTMJtUI0="


def two_versions(extra: str = "") -> str:
    return go_component(f'version = "v1.16.2"\nsum = "{H1}"\n{extra}')


OTHER = f"""
[versions."v1.16.3".source]
kind = "go-module"
module = "k8s.io/kubernetes"
version = "v1.16.3"
sum = "{H2}"
"""


def test_another_version_has_its_own_pin_and_version_switches_to_it(tmp_path: Path) -> None:
    comp = components.load_component(write_component(tmp_path, "x", two_versions(OTHER)))
    assert comp.pinned_versions == ("v1.16.2", "v1.16.3")
    assert comp.sources["main"].label == "k8s.io/kubernetes@v1.16.2"
    assert comp.pinned["v1.16.3"]["main"].label == "k8s.io/kubernetes@v1.16.3"
    cat = load_catalog(tmp_path)
    newer = cat.with_version("x", "v1.16.3").components["x"]
    assert (newer.version, newer.tag, newer.sources["main"].version) == ("v1.16.3", "v1.16.3", "v1.16.3")
    assert newer.sources["main"].sum == H2 and newer.pinned_versions == ("v1.16.3", "v1.16.2")
    back = cat.with_version("x", "v1.16.3").with_version("x", "v1.16.2").components["x"]
    assert back.sources == comp.sources and back.pinned_versions == comp.pinned_versions
    unpinned = cat.with_version("x", "v1.17.0").components["x"]
    assert unpinned.sources == comp.sources  # a local tree (--source) stands in for it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (OTHER.replace('"v1.16.3".source]', '"v1.16.2".source]'), "v1.16.2 is the component's own version"),
        (OTHER.replace('"v1.16.3"', '"v1.16"'), "version 'v1.16' is not valid semver"),
        (OTHER.replace(f'sum = "{H2}"', ""), r'\[versions."v1.16.3".source\]: a go-module source needs sum'),
        (OTHER.replace(".source]", ".sources.node]"), "pins the sources node; the component builds from main"),
        ('[versions."v1.16.3"]\nbuild = 1', r'\[versions."v1.16.3"\]: unknown key \'build\''),
        ('[versions."v1.16.3"]', 'needs a \\[versions."v1.16.3".source\\] table'),
    ],
)
def test_a_version_table_is_checked_like_the_source(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        components.load_component(write_component(tmp_path, "x", two_versions(extra)))


def test_version_flag_builds_pinned_versions_and_refuses_others_without_a_tree(tmp_path: Path) -> None:
    write_component(tmp_path, "x", two_versions(OTHER))
    s = config.load(root=tmp_path, env={})
    plan, _ = app.plan_for(s, "x", version="v1.16.3")
    assert {n.comp.sources["main"].version for n in plan.nodes} == {"v1.16.3"}
    with pytest.raises(ConfigError, match=r"pins its source for x v1\.16\.2 and v1\.16\.3; to build v1\.17\.0"):
        app.plan_for(s, "x", version="v1.17.0")
    plan, given = app.plan_for(s, "x", version="v1.17.0", source=str(tmp_path))
    assert given == {"x": {"main": tmp_path.resolve()}} and plan.nodes[0].comp.tag == "v1.17.0"


def test_repo_coredns_pins_1_6_2_and_1_6_5_with_their_own_fixes() -> None:
    cat = load_catalog(REPO)
    comp = cat.components["coredns"]
    assert comp.pinned_versions == ("1.6.2", "1.6.5")
    newer = cat.with_version("coredns", "1.6.5").components["coredns"]
    src = newer.sources["main"]
    assert src.label == "github.com/coredns/coredns@v1.6.5"
    assert src.sum == "h1:nA7qAYy/kf6UlAH/GGyWurTUiUCfCX3GTEDDc4dq8Ms="
    assert [(r.module, r.version) for r in src.replaces] == [("github.com/modern-go/reflect2", "v1.0.2")]
    assert all(r.why for r in src.replaces)
    assert newer.sources["main"].pin != comp.sources["main"].pin


def test_coredns_smoke_wants_its_version_its_ca_bundle_an_answer_and_health() -> None:
    cat = load_catalog(REPO)
    _, image = cat.image("coredns")
    assert [(c.image, c.path) for c in image.copies] == [("ca-certificates", "/etc/ssl/certs/ca-certificates.crt")]
    out = "CoreDNS-{v}\nlinux/mips64le, go1.19.8, v{v}\n142\n192.0.2.10      www.example.org\nOK\n"
    mips = parse_arch("mips64el")
    assert image.smoke.pattern("1.6.5", mips).search(out.format(v="1.6.5"))
    assert not image.smoke.pattern("1.6.5", mips).search(out.format(v="1.6.2"))
    assert not image.smoke.pattern("1.6.5", parse_arch("amd64")).search(out.format(v="1.6.5"))
    assert not image.smoke.pattern("1.6.5", mips).search(out.format(v="1.6.5").replace("142\n", "0\n"))
    plan = make_plan(["coredns"], parse_arches("amd64,mips64el"), cat)
    assert plan.deps["coredns/mips64el"] == ["debian-base/mips64el", "ca-certificates/mips64el"]
    assert plan.deps["ca-certificates/mips64el"] == ["debian-base/mips64el"]


def test_copy_is_checked_and_its_image_is_an_edge(tmp_path: Path) -> None:
    write_component(tmp_path, "stage", simple("stage"))
    body = simple("app").replace("[image]", '[image]\ncopy = [{ from = "stage", path = "/etc/x.crt" }]')
    write_component(tmp_path, "app", body)
    cat = load_catalog(tmp_path)
    plan = make_plan(["app"], parse_arches("amd64"), cat)
    assert [n.id for n in plan.nodes] == ["stage/amd64", "stage/list", "app/amd64", "app/list"]
    assert plan.deps["app/amd64"] == ["stage/amd64"]
    write_component(tmp_path, "app", body.replace('"stage"', '"stag"'))
    with pytest.raises(ConfigError, match="copies /etc/x.crt from 'stag', which is not an image of this project"):
        make_plan(["app"], parse_arches("amd64"), load_catalog(tmp_path))
    for bad, message in (('path = "etc/x"', "must be the absolute path of a file"), ('to = "/x"', "unknown key 'to'")):
        path = write_component(tmp_path, "app", body.replace('path = "/etc/x.crt"', bad))
        with pytest.raises(ConfigError, match=message):
            components.load_component(path)


def layer(*members: tuple[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


class FakeRegistry:
    def __init__(self, layers: list[bytes]) -> None:
        self.blobs = {f"sha256:{i}": data for i, data in enumerate(layers)}
        self.fetched: list[str] = []

    def get_manifest(self, name: str, ref: str) -> Any:
        doc = {"layers": [{"digest": d} for d in self.blobs]}
        return type("M", (), {"doc": doc, "raw": json.dumps(doc).encode()})()

    def get_blob(self, name: str, digest: str) -> bytes:
        self.fetched.append(digest)
        return self.blobs[digest]

    def ref(self, name: str, ref: str) -> str:
        return f"127.0.0.1:5000/{name}@{ref}"


def test_file_in_image_reads_the_top_layer_holding_it_and_honours_whiteouts() -> None:
    path = "/etc/ssl/certs/ca-certificates.crt"
    old = layer(("etc", None), ("./etc/ssl/certs/ca-certificates.crt", b"old"))
    new = layer(("etc/ssl/certs/ca-certificates.crt", b"new"))
    reg = FakeRegistry([old, new, layer(("usr/bin/x", b"x"))])
    assert file_in_image(reg, "stage", "sha256:m", path) == (b"new", 0o644)  # type: ignore[arg-type]
    assert reg.fetched == ["sha256:2", "sha256:1"]  # top first; the base layer not read
    hidden = FakeRegistry([old, layer(("etc/ssl/certs/.wh.ca-certificates.crt", b""))])
    with pytest.raises(BuildError, match="has no /etc/ssl/certs/ca-certificates.crt"):
        file_in_image(hidden, "stage", "sha256:m", path)  # type: ignore[arg-type]
    directory = FakeRegistry([layer(("etc/ssl/certs/ca-certificates.crt", None))])
    with pytest.raises(BuildError, match="is not a regular file"):
        file_in_image(directory, "stage", "sha256:m", path)  # type: ignore[arg-type]
