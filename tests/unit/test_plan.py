from pathlib import Path

import pytest

from kubemips.arch import parse_arches
from kubemips.catalog import Catalog, load_catalog
from kubemips.errors import ConfigError
from kubemips.plan import ImageNode, ListNode, make_plan

from .helpers import simple, write_component


def catalog(tmp_path: Path, **bases: str) -> Catalog:
    for name, base in bases.items():
        write_component(tmp_path, name, simple(name, base=base))
    return load_catalog(tmp_path)


def test_parents_first_and_lists_after_children(tmp_path: Path) -> None:
    cat = catalog(tmp_path, base="scratch", mid="base", leaf="mid", other="scratch")
    plan = make_plan(["leaf", "other"], parse_arches("amd64,mips64el"), cat)
    ids = [n.id for n in plan.nodes]
    assert ids == [
        "base/amd64", "base/mips64el", "base/list",
        "mid/amd64", "mid/mips64el", "mid/list",
        "leaf/amd64", "leaf/mips64el", "leaf/list",
        "other/amd64", "other/mips64el", "other/list",
    ]  # fmt: skip
    assert plan.deps["leaf/mips64el"] == ["mid/mips64el"]
    assert plan.deps["leaf/list"] == ["leaf/amd64", "leaf/mips64el"]
    assert plan.deps["base/amd64"] == []
    # every dependency appears before its dependant
    pos = {node_id: i for i, node_id in enumerate(ids)}
    assert all(pos[d] < pos[n] for n, deps in plan.deps.items() for d in deps)


def test_tags(tmp_path: Path) -> None:
    cat = catalog(tmp_path, a="scratch")
    plan = make_plan(["a"], parse_arches("mips64le"), cat)
    image, lst = plan.nodes
    assert isinstance(image, ImageNode) and image.tag == "1.0.0-linux-mips64le"
    assert isinstance(lst, ListNode) and lst.tag == "1.0.0"
    text = plan.describe("127.0.0.1:5000")
    assert "127.0.0.1:5000/a:1.0.0-linux-mips64le [c-static, linux/mips64le]" in text


def test_cycle_is_named(tmp_path: Path) -> None:
    cat = catalog(tmp_path, a="b", b="c", c="a")
    with pytest.raises(ConfigError, match="FROM cycle between images: a -> b -> c -> a"):
        make_plan(["a"], parse_arches("amd64"), cat)


def test_unknown_base(tmp_path: Path) -> None:
    cat = catalog(tmp_path, a="alpine")
    with pytest.raises(ConfigError, match="has base 'alpine', which is not an image of this project"):
        make_plan(["a"], parse_arches("amd64"), cat)


def test_chain_lengths_put_the_heaviest_chain_first(tmp_path: Path) -> None:
    cat = catalog(tmp_path, base="scratch", mid="base", leaf="mid", other="scratch")
    plan = make_plan(["leaf", "other"], parse_arches("amd64,mips64el"), cat)

    def weight(node: object) -> float:  # mips64el builds cost 4, amd64 1, lists nothing
        if isinstance(node, ListNode):
            return 0.0
        assert isinstance(node, ImageNode)
        return 4.0 if node.arch.name == "mips64el" else 1.0

    lengths = plan.chain_lengths(weight)
    assert lengths["leaf/mips64el"] == 4.0 and lengths["leaf/list"] == 0.0
    assert lengths["base/mips64el"] == 12.0  # base, mid, leaf on mips64el
    assert lengths["base/amd64"] == 3.0
    assert lengths["other/mips64el"] == 4.0
    # what a scheduler with two free slots starts first: both mips64el chains' heads
    first = sorted((n for n in plan.nodes if not plan.deps.get(n.id)), key=lambda n: -lengths[n.id])
    assert [n.id for n in first[:2]] == ["base/mips64el", "other/mips64el"]
