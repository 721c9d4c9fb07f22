"""Offline validation of Kubernetes documents against the API's schema.

Core API kinds are checked with the Kubernetes Python client's generated models (pydantic,
extra fields forbidden): a typo is an error naming its path, scalar types must match,
and required fields must be there.  The
kubeadm configuration is not part of the API; its fields are kept here for the version
the project deploys.
"""

from __future__ import annotations

from typing import Any

# kubeadm.k8s.io/v1beta2 (Kubernetes 1.15-1.21): the fields the project's template may use.
_KUBEADM_V1BETA2: dict[str, Any] = {
    "InitConfiguration": {
        "apiVersion": str, "kind": str, "bootstrapTokens": list, "certificateKey": str,
        "localAPIEndpoint": {"advertiseAddress": str, "bindPort": int},
        "nodeRegistration": {
            "name": str, "criSocket": str, "taints": list, "kubeletExtraArgs": {"*": str},
            "ignorePreflightErrors": list,
        },
    },
    "ClusterConfiguration": {
        "apiVersion": str, "kind": str, "kubernetesVersion": str, "imageRepository": str,
        "useHyperKubeImage": bool, "controlPlaneEndpoint": str, "clusterName": str,
        "certificatesDir": str, "featureGates": {"*": bool},
        "etcd": {
            "local": {"imageRepository": str, "imageTag": str, "dataDir": str, "extraArgs": {"*": str},
                      "serverCertSANs": list, "peerCertSANs": list},
            "external": {"endpoints": list, "caFile": str, "certFile": str, "keyFile": str},
        },
        "dns": {"type": str, "imageRepository": str, "imageTag": str},
        "networking": {"serviceSubnet": str, "podSubnet": str, "dnsDomain": str},
        "apiServer": {"extraArgs": {"*": str}, "certSANs": list, "timeoutForControlPlane": str},
        "controllerManager": {"extraArgs": {"*": str}},
        "scheduler": {"extraArgs": {"*": str}},
    },
}  # fmt: skip


def validate(body: dict[str, Any], where: str) -> list[str]:
    """Problems with one document (empty when it is valid)."""
    api, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return [f"{where}: needs apiVersion and kind"]
    if api == "kubeadm.k8s.io/v1beta2":
        spec = _KUBEADM_V1BETA2.get(kind)
        if spec is None:
            return [f"{where}: unknown kubeadm kind {kind}"]
        return _check_fields(body, spec, where)
    import kubernetes.client as k8s
    from pydantic import ValidationError

    cls = getattr(k8s, _model_name(api, kind), None)
    if cls is None or not hasattr(cls, "model_validate"):
        return [f"{where}: no schema known for {api} {kind}"]
    try:
        cls.model_validate(body)
    except ValidationError as exc:
        return [f"{where}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
    return []


def _model_name(api: str, kind: str) -> str:
    """apps/v1 Deployment -> V1Deployment; batch/v1 Job -> V1Job; v1 Service -> V1Service."""
    version = api.rpartition("/")[2]
    return version[:1].upper() + version[1:] + kind


def _check_fields(node: Any, spec: Any, path: str) -> list[str]:
    if isinstance(spec, type):
        ok = isinstance(node, spec) and not (spec is int and isinstance(node, bool))
        return [] if ok else [f"{path}: expected {spec.__name__}, got {node!r}"]
    if not isinstance(node, dict):
        return [f"{path}: expected a mapping"]
    problems = []
    for key, value in node.items():
        sub = spec.get(key, spec.get("*"))
        if sub is None:
            problems.append(f"{path}: unknown field '{key}'")
        else:
            problems += _check_fields(value, sub, f"{path}.{key}")
    return problems
