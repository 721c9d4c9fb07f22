"""nox sessions: thin wrappers over kubemips.app.  `nox -l` lists them.

Sessions run in the environment nox itself runs in (.venv from scripts/setup-host.sh):
the project is installed there once, and the builds need root-owned host tools, not a
fresh virtualenv per session.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import nox

from kubemips import app, components, config

nox.options.sessions = ["lint", "tests"]
# nox logs at debug level; keep the HTTP clients' request logs out of build output.
for _noisy in ("urllib3", "docker"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
nox.options.default_venv_backend = "none"

PY = sys.executable


@nox.session(python=False, tags=["check"])
def lint(session: nox.Session) -> None:
    """Lint and type-check: ruff, mypy, shell syntax, and the workflows (schema, zizmor's audits)."""
    session.run(PY, "-m", "ruff", "check", ".", external=True)
    session.run(PY, "-m", "ruff", "format", "--check", ".", external=True)
    session.run(PY, "-m", "mypy", external=True)
    for script in ("scripts/setup-host.sh", ".ci/run"):
        session.run("bash", "-n", script, external=True)
    workflows = sorted(str(p) for p in Path(".github/workflows").glob("*.yml"))
    session.run(PY, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows, external=True)
    # zizmor's offline audits (injection, credentials, pinning...); a deliberate finding is
    # ignored in the workflow itself, on its line, with the reason.
    session.run(str(Path(PY).parent / "zizmor"), "--offline", "--no-progress", *workflows, external=True)


@nox.session(python=False, tags=["check"])
def tests(session: nox.Session) -> None:
    """Run the whole test suite (unit, then integration against the real daemon, registry, QEMU).

    Extra arguments go to pytest: `nox -s tests -- -k pause`.
    """
    session.run(PY, "-m", "pytest", *session.posargs, external=True)


@nox.session(python=False, tags=["kubernetes"])
def kubernetes(session: nox.Session) -> None:
    """Kubernetes v1.16.2 from its module, both arches, and every Go test image (by hand: ~1 h on 2 cores).

    The tests marked `kubernetes`: hyperkube, the node bundle, the conformance image and
    the Go e2e images, each checked by running the real programs (mips64el under QEMU).
    """
    session.run(PY, "-m", "pytest", "-m", "kubernetes", *session.posargs, external=True)


@nox.session(python=False, tags=["cluster"])
def cluster(session: nox.Session) -> None:
    """A real single-node cluster from the registry's images: up, a pod behind a Service, down (root, minutes).

    The tests marked `cluster` (tests/integration/test_cluster.py); they need hyperkube,
    etcd, pause, kubernetes-node and agnhost in the registry (REGISTRY, or the embedded one).
    """
    session.run(PY, "-m", "pytest", "-m", "cluster", *session.posargs, external=True)


@nox.session(python=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """The benchmark: cold, warm, incremental and serial builds, time per phase (by hand: ~15 min on 2 cores).

    Arguments go to `kubemips bench`: `nox -s bench -- --what pause --cases cold,warm`.
    """
    session.run(str(Path(PY).parent / "kubemips"), "bench", *session.posargs, external=True)


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """Build images: `nox -s build -- debian-base pause` (the default set without arguments)."""
    with app.edge():
        app.build(app.settings(), list(session.posargs))


@nox.session(python=False, tags=["e2e"])
def e2e_images(session: nox.Session) -> None:
    """Build the conformance e2e image catalog: `nox -s e2e_images -- [NAME ...] [--source K8S_TREE]`."""
    args = list(session.posargs)
    source = ""
    if "--source" in args:
        i = args.index("--source")
        if i + 1 >= len(args):
            session.error("Usage: nox -s e2e_images -- [NAME ...] [--source KUBERNETES_TREE]")
        source = args[i + 1]
        del args[i : i + 2]
    with app.edge():
        settings = app.settings()
        app.build(settings, app.e2e_what(settings, config.KUBERNETES_VERSION, args), k8s_source=source)


def _component_session(comp: components.Component) -> None:
    def run(session: nox.Session) -> None:
        with app.edge():
            app.build(app.settings(), [img.name for img in comp.images], force="--force" in session.posargs)

    images = ", ".join(f"{img.name}:{comp.tag}" for img in comp.images)
    run.__doc__ = f"Build {images} for every configured arch ({comp.description})"
    nox.session(python=False, name=comp.name, tags=["components"])(run)


_loaded, _broken = components.load_each(config.find_root())
for _comp in _loaded:
    _component_session(_comp)
for _problem in _broken.values():  # a broken component file must not hide the other sessions
    print(f"warning: {_problem}", file=sys.stderr)
