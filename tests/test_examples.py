"""The example configs stay valid, and demo.yaml stays exactly the built-in demo."""

from pathlib import Path

import pytest

from nas import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_yaml_is_the_default_config():
    demo = load_config(EXAMPLES / "demo.yaml")
    default = load_config(None, {"name": "demo"})
    assert demo == default


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path, tmp_path):
    overrides = {"data.root": str(tmp_path)} if "cifar" in path.name else {}
    cfg = load_config(path, overrides)
    assert cfg.search.trials >= 1
