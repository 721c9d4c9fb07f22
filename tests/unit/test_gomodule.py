"""Go-module sources: pins checked at load, the toolchain chosen by range."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubemips import components, gotool
from kubemips.arch import parse_arch
from kubemips.builders import builder_for
from kubemips.builders.golang import source_version
from kubemips.catalog import load_catalog
from kubemips.errors import ConfigError, PrerequisiteError

from .helpers import go_component, write_component

REPO = Path(__file__).resolve().parents[2]
H1 = "h1:k0f/OVp6Yfv+UMTm6VYKhqjRgcvHh4QhN9coanjrito="


def test_go_module_source_is_pinned_and_defaults_to_the_component_version(tmp_path: Path) -> None:
    body = go_component(
        f'sum = "{H1}"\nlayout = "gopath"\ngenerate = ["openapi"]\n'
        f'replace = [{{ module = "vbom.ml/util", with = "github.com/fvbommel/util", version = "v0.0.0-1", '
        f'sum = "{H1}", go-mod-sum = "{H1}", why = "moved" }}]'
    )
    comp = components.load_component(write_component(tmp_path, "x", body))
    src = comp.sources["main"]
    assert (src.kind, src.module, src.version, src.sum, src.gopath) == (
        "go-module",
        "k8s.io/kubernetes",
        "v1.16.2",
        H1,
        True,
    )
    assert src.replaces[0].with_ == "github.com/fvbommel/util" and src.label == "k8s.io/kubernetes@v1.16.2"
    assert src.pin.startswith("gomod-")
    # The pin covers every replacement: changing one changes the source id.
    other = components.load_component(write_component(tmp_path, "x", body.replace("v0.0.0-1", "v0.0.0-2")))
    assert other.sources["main"].pin != src.pin


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "needs sum"),
        ('sum = "sha256:abc"', "go.sum hash"),
        (f'sum = "{H1}"\ngenerate = ["openapy"]', "Perhaps you meant 'openapi'"),
        (f'sum = "{H1}"\nlayout = "flat"', "layout must be"),
        (f'sum = "{H1}"\nreplace = [{{ module = "a", version = "v1", sum = "{H1}" }}]', "go-mod-sum"),
        (f'sum = "{H1}"\nreplace = [{{ module = "a", version = "v1", sum = "x", go-mod-sum = "{H1}" }}]', "h1:"),
    ],
)
def test_go_module_source_refuses_unpinned_or_malformed(tmp_path: Path, source: str, message: str) -> None:
    path = write_component(tmp_path, "x", go_component(source))
    with pytest.raises(ConfigError, match=message) as err:
        components.load_component(path)
    assert str(path) in str(err.value)


def test_hyperkube_is_pinned_to_the_kubernetes_module() -> None:
    comp = load_catalog(REPO).components["hyperkube"]
    src = comp.sources["main"]
    assert (src.module, src.version, src.gopath) == ("k8s.io/kubernetes", "v1.16.2", True)
    staging = {r.module for r in src.replaces if r.module.startswith("k8s.io/")}
    assert {"k8s.io/api", "k8s.io/apimachinery", "k8s.io/client-go", "k8s.io/component-base"} <= staging
    assert {r.module for r in src.replaces} >= {"github.com/modern-go/reflect2", "github.com/mindprince/gonvml"}


def test_e2e_go_images_build_from_the_kubernetes_module_at_its_version() -> None:
    cat = load_catalog(REPO)
    agnhost, _ = cat.image("agnhost")
    assert agnhost.sources == cat.components["hyperkube"].sources
    assert source_version(agnhost) == "v1.16.2" and agnhost.version == "2.6"
    go = builder_for(agnhost).go_options(agnhost)
    assert go is not None
    # the Kubernetes build's ldflags first, then the folder's own
    hyperkube = cat.components["hyperkube"]
    own = builder_for(hyperkube).opts(hyperkube).ldflags
    assert own and go.ldflags[: len(own)] == own
    # porter's test certificate comes from the same tree (the Proxy test's TLS ports)
    assert [f["name"] for f in go.tree_files] == ["localhost.crt", "localhost.key"]
    mounttest, _ = cat.image("mounttest")
    mounttest_go = builder_for(mounttest).go_options(mounttest)
    assert mounttest_go is not None and mounttest_go.tree_files == ()


def fake_go(tmp_path: Path, name: str, version: str) -> Path:
    go = tmp_path / name
    go.write_text(f'#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo {version}\n')
    go.chmod(0o755)
    return go


def test_toolchain_honours_kubemips_go_and_refuses_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gotool.toolchain.cache_clear()
    monkeypatch.setenv("KUBEMIPS_GO", str(fake_go(tmp_path, "go", "go1.21.5")))
    assert gotool.toolchain().version == "go1.21.5"
    gotool.toolchain.cache_clear()
    monkeypatch.setenv("KUBEMIPS_GO", str(tmp_path / "missing"))
    with pytest.raises(PrerequisiteError, match="not a working go binary"):
        gotool.toolchain()
    gotool.toolchain.cache_clear()


def test_toolchain_on_path_outside_the_range_is_not_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gotool.toolchain.cache_clear()
    monkeypatch.delenv("KUBEMIPS_GO", raising=False)
    fake_go(tmp_path, "go", "go1.26.8")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(gotool, "_DEBIAN_GLOB", str(tmp_path / "none" / "go-1.*"))
    with pytest.raises(PrerequisiteError, match=r"no Go toolchain in >=1\.19\.0,<1\.24\.0.*go1\.26\.8"):
        gotool.toolchain()
    gotool.toolchain.cache_clear()


def test_environment_keeps_the_users_proxy_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gotool.toolchain.cache_clear()
    monkeypatch.setenv("KUBEMIPS_GO", str(fake_go(tmp_path, "go", "go1.19.8")))
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.delenv("GOSUMDB", raising=False)
    env = gotool.environment(tmp_path)
    assert env["GOPROXY"] == "off" and "GOSUMDB" not in env
    assert env["GOFLAGS"] == "-mod=mod -modcacherw"
    assert env["GOMODCACHE"] == str(tmp_path / "mod")
    gotool.toolchain.cache_clear()


def test_coredns_smoke_runs_a_client_and_depends_on_it() -> None:
    from kubemips.arch import parse_arches
    from kubemips.plan import make_plan

    cat = load_catalog(REPO)
    comp, image = cat.image("coredns")
    assert comp.sources["main"].label == "github.com/coredns/coredns@v1.6.2"
    assert image.smoke.client == "debian-base" and "/etc/coredns/Corefile" in image.smoke.files
    plan = make_plan(["coredns"], parse_arches("amd64,mips64el"), cat)
    # FROM scratch: the edges are the smoke client and the image its CA bundle comes from
    assert plan.deps["coredns/mips64el"] == ["debian-base/mips64el", "ca-certificates/mips64el"]


def test_smoke_client_needs_its_command(tmp_path: Path) -> None:
    body = go_component(f'sum = "{H1}"').replace('expect = "ok"', 'expect = "ok"\nclient = "debian-base"')
    with pytest.raises(ConfigError, match="client and client-command go together"):
        components.load_component(write_component(tmp_path, "x", body))


def test_requirements_drops_and_go_sum_lines_are_pinned_and_in_the_pin(tmp_path: Path) -> None:
    base = f'sum = "{H1}"'
    extra = (
        f'{base}\ndrop = [{{ module = "k8s.io/kubernetes/pkg/x", why = "vendored" }}]\n'
        f'require = [{{ module = "k8s.io/kubernetes", version = "v1.17.3", sum = "{H1}", go-mod-sum = "{H1}", '
        'why = "has pkg/x" }]\ngo-sum = "graph.go.sum"'
    )
    plain = components.load_component(write_component(tmp_path / "a", "x", go_component(base))).sources["main"]
    path = write_component(tmp_path / "b", "x", go_component(extra))
    (path.parent / "graph.go.sum").write_text(f"# comment\n\nexample.com/m v1.0.0/go.mod {H1}\n")
    src = components.load_component(path).sources["main"]
    assert [(r.module, r.version, r.why) for r in src.requires] == [("k8s.io/kubernetes", "v1.17.3", "has pkg/x")]
    assert [d.module for d in src.drops] == ["k8s.io/kubernetes/pkg/x"]
    assert src.go_sum == (f"example.com/m v1.0.0/go.mod {H1}",)
    assert src.pin != plain.pin
    # The go.sum lines are part of the pin: another hash there is another source.
    (path.parent / "graph.go.sum").write_text(f"example.com/m v1.0.1/go.mod {H1}\n")
    assert components.load_component(path).sources["main"].pin != src.pin


def test_pins_without_the_newer_keys_are_unchanged() -> None:
    """Sources that use no require/drop/go-sum keep the pin they had before those keys
    existed (the pin names cached trees and is an input of every image built from them)."""
    src = components.Source(
        name="main", kind="go-module", url="", ref="", commit="", sha256="", strip=0, patches=(),
        module="github.com/coredns/coredns", version="v1.6.2", sum=H1,
    )  # fmt: skip
    assert src.pin == "gomod-d6d2608b1edba2006bc6acef"  # as computed before those keys


REQ = f'module = "a", version = "v1", sum = "{H1}"'


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (f'sum = "{H1}"\ndrop = [{{ module = "a" }}]', "missing required key 'why'"),
        (f'sum = "{H1}"\nrequire = [{{ {REQ}, go-mod-sum = "{H1}" }}]', "missing required key 'why'"),
        (f'sum = "{H1}"\nrequire = [{{ {REQ}, go-mod-sum = "x", why = "y" }}]', "h1:"),
        (f'sum = "{H1}"\nrequire = ["a@v1"]', "must be a table"),
        (f'sum = "{H1}"\ngo-sum = "missing.go.sum"', "go-sum file .*missing.go.sum not found"),
    ],
)
def test_requirements_and_drops_refuse_unpinned_or_unexplained(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        components.load_component(write_component(tmp_path, "x", go_component(source)))


@pytest.mark.parametrize(
    "line",
    [
        "example.com/m v1.0.0 sha256:abc",
        "example.com/m h1:" + "A" * 43 + "=",
        f"example.com/m v1.0.0/go.mod {H1} extra",
    ],
)
def test_go_sum_file_lines_are_checked(line: str) -> None:
    with pytest.raises(ConfigError, match=r"graph.go.sum:2: not a go.sum line"):
        components.go_sum_lines("graph.go.sum", f"# header\n{line}\n")


def test_paths_in_go_mod_names_requirements_and_replaced_paths() -> None:
    doc = """{
        "Module": {"Path": "sigs.k8s.io/metrics-server"},
        "Go": "1.13",
        "Require": [{"Path": "k8s.io/api", "Version": "v0.17.3"},
                    {"Path": "k8s.io/kubernetes/pkg/kubelet/apis/stats/v1alpha1", "Version": "v0.0.0"}],
        "Replace": [{"Old": {"Path": "k8s.io/kubernetes/pkg/kubelet/apis/stats/v1alpha1"},
                     "New": {"Path": "./vendor/k8s.io/kubernetes/pkg/kubelet/apis/stats/v1alpha1"}},
                    {"Old": {"Path": "vbom.ml/util", "Version": "v0.0.0-1"}, "New": {"Path": "x", "Version": "v1"}}]
    }"""
    assert gotool.paths_in_go_mod(doc) == {
        "k8s.io/api",
        "k8s.io/kubernetes/pkg/kubelet/apis/stats/v1alpha1",
        "vbom.ml/util",
    }
    assert gotool.paths_in_go_mod('{"Module": {"Path": "m"}, "Require": null, "Replace": null}') == set()


def test_metrics_server_is_pinned_to_a_served_revision_and_named_by_it() -> None:
    comp = load_catalog(REPO).components["metrics-server"]
    src = comp.sources["main"]
    assert (src.module, src.version) == ("sigs.k8s.io/metrics-server", "v0.0.0-20200406215547-5fcf6956a533")
    assert src.sum == "h1:540Q0iT8PVI3b9hY8+cGNjLLosvoYLeyBaqZdvNTxPM="
    # Not v0.3.6: the tag says which commit after it the code is.
    assert (comp.version, comp.tag) == ("0.3.6-5fcf6956", "v0.3.6-5fcf6956")
    assert src.version.endswith(src.commit) and comp.version.endswith(src.commit[:8])
    # The dropped vendored package is provided by the required module, and every
    # replacement and requirement says why.
    (drop,) = src.drops
    (kubernetes,) = src.requires
    assert drop.module.startswith(kubernetes.module + "/")
    assert all(r.why for r in src.replaces) and kubernetes.why and drop.why
    staging = {r.module: r.version for r in src.replaces if r.module.startswith("k8s.io/")}
    assert len(staging) == 21 and set(staging.values()) == {"v0.17.3"}
    # The graph's go.sum lines are go.mod hashes only: nothing compiled comes from them.
    assert len(src.go_sum) > 300 and all(" " in line and "/go.mod h1:" in line for line in src.go_sum)
    assert not src.generate and not src.gopath


def test_metrics_server_smoke_wants_its_own_error_its_flags_and_status_2() -> None:
    comp, image = load_catalog(REPO).image("metrics-server")
    smoke = image.smoke
    assert smoke.exit_code == 2 and "--kubelet-insecure-tls" in smoke.command
    error = (
        "Error: failed to get delegated authentication kubeconfig: failed to get delegated authentication "
        "kubeconfig: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be defined\n"
    )
    usage = (
        "Usage:\n   [flags]\n\nFlags:\n"
        "      --kubelet-insecure-tls                                    Do not verify CA ...\n"
        "      --kubelet-port int                                        The port ...\n"
        "      --kubelet-preferred-address-types strings                 The priority ...\n"
    )
    started = "I1127 serving.go:306] Generated self-signed cert (/tmp/apiserver.crt, /tmp/apiserver.key)\n"
    pattern = smoke.pattern(comp.version, parse_arch("mips64el"))
    assert pattern.search(started + error + usage + "panic: ...\n")
    assert not pattern.search("Launch metrics-server\n\n" + usage)  # --help alone is not a start
    assert not pattern.search(started + error)  # an error without its flags: not this program


def test_a_patch_for_the_product_leaves_the_test_images_tree_alone() -> None:
    """client-go's Common Name fallback is for kube-apiserver (hyperkube's images); the e2e
    images that share the Kubernetes source build from the tree without it."""
    from kubemips.arch import parse_arch

    cat = load_catalog(REPO)
    src = cat.components["hyperkube"].sources["main"]
    (patch,) = [p for p in src.patches if p.file.name == "client-go-common-name-fallback.patch"]
    amd64 = parse_arch("amd64")
    assert patch.components == ("hyperkube",)
    assert patch.applies(amd64, "v1.16.2", "hyperkube")
    assert not patch.applies(amd64, "v1.16.2", cat.image("conformance")[0].name)
    assert not patch.applies(amd64, "v1.16.2", cat.image("agnhost")[0].name)


def test_a_patch_scoped_to_an_unknown_component_is_refused(tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "project"
    shutil.copytree(REPO / "components", project / "components")
    shutil.copytree(REPO / "e2e-images", project / "e2e-images")
    toml = project / "components" / "hyperkube" / "component.toml"
    toml.write_text(toml.read_text().replace('components = ["hyperkube"]', 'components = ["hyperkub"]'))
    with pytest.raises(ConfigError) as err:
        load_catalog(project)
    assert str(err.value) == (
        f"{toml}: patch client-go-common-name-fallback.patch is scoped to unknown component 'hyperkub'. "
        "Perhaps you meant 'hyperkube'?"
    )
