import shutil
from pathlib import Path

import pytest
import yaml

from kubemips import k8sschema, manifests
from kubemips.catalog import load_catalog
from kubemips.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return manifests.render(REPO, "registry.test:5000/k8s", "v1.16.2", load_catalog(REPO))


def docs(rendered: dict[str, str]) -> list[manifests.Doc]:
    out = []
    for name, text in rendered.items():
        for i, body in enumerate(yaml.safe_load_all(text)):
            if body:
                out.append(manifests.Doc(Path(name), i, body))
    return out


def test_every_template_renders_valid_documents(rendered: dict[str, str]) -> None:
    assert set(rendered) == {"kubeadm.yaml", "calico.yaml", "coredns.yaml", "metrics-server.yaml", "conformance.yaml"}
    problems = [p for d in docs(rendered) for p in k8sschema.validate(d.body, d.where)]
    assert problems == []
    assert "{{" not in "".join(rendered.values())


def test_every_image_points_into_the_registry(rendered: dict[str, str]) -> None:
    images = sorted({ref for d in docs(rendered) for ref in manifests.images_of(d)})
    assert images == [
        f"registry.test:5000/k8s/{name}"
        for name in (
            "calico-cni:v3.8.0", "calico-kube-controllers:v3.8.0", "calico-node:v3.8.0", "conformance:v1.16.2",
            "coredns:1.6.2", "etcd:3.4.23", "hyperkube:v1.16.2", "metrics-server:v0.3.6-5fcf6956", "pause:3.1",
        )
    ]  # fmt: skip
    configmap = next(d for d in yaml.safe_load_all(rendered["conformance.yaml"]) if d and d["kind"] == "ConfigMap")
    repo_list = yaml.safe_load(configmap["data"]["repo-list.yaml"])
    assert set(repo_list.values()) == {"registry.test:5000/k8s"} and "e2eRegistry" in repo_list


def test_schema_errors_name_the_field() -> None:
    container = {"name": "c", "imagePullPolcy": "x"}
    spec = {"selector": {}, "template": {"spec": {"containers": [container]}}}
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": spec}
    (problem,) = k8sschema.validate(bad, "d")
    assert "spec.template.spec.containers.0.imagePullPolcy" in problem
    kubeadm = {
        "apiVersion": "kubeadm.k8s.io/v1beta2",
        "kind": "ClusterConfiguration",
        "etcd": {"local": {"imageTg": "1"}},
    }
    assert k8sschema.validate(kubeadm, "k") == ["k.etcd.local: unknown field 'imageTg'"]
    assert k8sschema.validate({"apiVersion": "example.io/v1", "kind": "Widget"}, "w") == [
        "w: no schema known for example.io/v1 Widget"
    ]


def test_unknown_placeholder(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "x.yaml.in").write_text("image: {{image:nope}}\n")
    shutil.copytree(REPO / "e2e-images" / "catalogs", tmp_path / "e2e-images" / "catalogs")
    with pytest.raises(ConfigError, match=r"x.yaml.in:1: \{\{image:nope\}\} names 'nope'"):
        manifests.render(tmp_path, "r", "v1.16.2", load_catalog(tmp_path))
