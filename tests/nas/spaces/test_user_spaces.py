"""A user's own space by 'module:Class' (config, --space, Python), and ``hwnas spaces``."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from nas.cli import main
from nas.spaces import SpaceError, builtin_space_names, resolve_space, space_variants

INCOMPLETE = '''
from nas.spaces import SearchSpace


class HalfSpace(SearchSpace):
    """Has no arch_from_params nor num_subnets."""

    @classmethod
    def for_input(cls, in_channels, image_size, num_classes, **options):
        return cls()

    def to_dict(self): return {}
    @classmethod
    def from_dict(cls, data): return cls()
    def build_supernet(self, *, seed=0, **options): raise NotImplementedError
    def search_space(self): raise NotImplementedError
    def params_from_arch(self, arch): return {}
    def validate_arch(self, arch): pass
    def largest_arch(self): return {}
    def smallest_arch(self): return {}
'''


@pytest.fixture
def in_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory is ``tmp_path``, holding the user's module; sys.path and PYTHONPATH restored."""
    (tmp_path / "half_space.py").write_text(INCOMPLETE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    yield tmp_path
    sys.modules.pop("half_space", None)


def test_spaces_lists_every_builtin_with_sizes_and_subnets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in builtin_space_names():
        (line,) = [line for line in lines if line.split()[0] == name]
        try:
            variants = space_variants(name)
        except SpaceError:
            assert "unavailable" in line
            continue
        for v in variants:
            assert f"{v.image_size}x{v.image_size} ({v.subnets:.2e} subnets)" in line
    (mobilenet,) = [line for line in lines if line.startswith("mobilenet")]
    for preset, size in (("digits", 8), ("cifar", 32), ("imagenet", 224)):
        found = re.search(rf"{preset} {size}x{size} \(([0-9.e+]+) subnets\)", mobilenet)
        assert found and float(found.group(1)) >= 1e12


def test_a_class_missing_methods_is_named_on_the_command_line(
    in_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--space", "half_space:HalfSpace", "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "lacks arch_from_params, num_subnets" in err


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no_such_module:Space", "cannot import module 'no_such_module'"),
        ("half_space:Nothing", "has no attribute 'Nothing'"),
        ("nospace", "unknown space 'nospace'; built-in: mobilenet"),
    ],
)
def test_a_space_that_cannot_be_found_is_one_line_exit_2(
    in_folder: Path, capsys: pytest.CaptureFixture[str], ref: str, message: str
) -> None:
    assert main(["search", "--space", ref]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert main(["profile-device", "--space", ref, "--out", str(in_folder / "t.json")]) == 2
    assert message in capsys.readouterr().err


def test_the_current_directory_is_importable_for_user_spaces(in_folder: Path) -> None:
    with pytest.raises(SpaceError, match="cannot import module 'half_space'"):
        resolve_space("half_space:HalfSpace")  # not importable until the command line adds the folder
    assert main(["spaces"]) == 0
    assert str(in_folder) in sys.path and str(in_folder) in os.environ["PYTHONPATH"].split(os.pathsep)
    with pytest.raises(SpaceError, match="lacks arch_from_params, num_subnets"):
        resolve_space("half_space:HalfSpace")


def test_a_config_names_a_user_space_with_options(tmp_path: Path) -> None:
    from nas import load_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    try:
        cfg = load_config(
            None,
            {"space.name": "examples.resnet_space:ResNetSpace", "space.options": {"depth_choices": [1, 2]}},
        )
        from nas.spaces import space_for_input

        space = space_for_input(cfg.space.name, 1, 8, 10, cfg.space_options())
        assert type(space).__name__ == "ResNetSpace" and space.depth_choices == (1, 2)
        with pytest.raises(SpaceError, match="ResNetSpace"):
            space_for_input(cfg.space.name, 1, 8, 10, {"depth": 3})
    finally:
        sys.path.remove(str(Path(__file__).resolve().parents[3]))
