from pathlib import Path

import pytest

from kubemips import config, e2e
from kubemips.builders.e2e import context_digest
from kubemips.errors import ConfigError

DESCRIPTOR = 'content = "x"\n[smoke]\ncommand = ["/bin/sh", "-c", "uname -m"]\nexpect = "^{uname}$"\n'


def _folder(root: Path, descriptor: str) -> Path:
    d = root / "e2e-images" / "thing"
    d.mkdir(parents=True)
    (d / "VERSION").write_text("1.0\n")
    (d / "Dockerfile").write_text("ARG BASEIMAGE\nFROM ${BASEIMAGE}\n")
    (d / descriptor).write_text(DESCRIPTOR)
    return d


def test_image_toml_and_the_old_name_give_the_same_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = _folder(tmp_path / "new", "image.toml")
    old = _folder(tmp_path / "old", "kubemips.toml")
    a, b = e2e.load_folder(tmp_path / "new", new), e2e.load_folder(tmp_path / "old", old)
    assert "deprecated name, rename it to image.toml" in capsys.readouterr().err
    assert a.raw == b.raw and "--- kubemips.toml\n" in a.raw
    assert context_digest(new) == context_digest(old)
    assert a.images[0].smoke.expect == b.images[0].smoke.expect == "^{uname}$"


def test_both_descriptors_is_an_error(tmp_path: Path) -> None:
    d = _folder(tmp_path, "image.toml")
    (d / "kubemips.toml").write_text("")
    with pytest.raises(ConfigError, match="has both image.toml and kubemips.toml"):
        e2e.load_folder(tmp_path, d)


def test_an_old_descriptor_is_not_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "kubemips.toml").write_text("")
    d = _folder(tmp_path, "kubemips.toml")
    assert config.find_root(d) == tmp_path
