"""MobileNet presets: sized for 8x8 digits, 32x32 (CIFAR-like) and 224x224 (ImageNet-like) inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

from nas.spaces import SpaceError, SupernetSpec, space_for_input, space_from_dict, space_to_dict
from nas.spaces._mobilenet import PRESET_SIZES, PRESETS, preset_for_size

#: The spec of the digits demo exactly as runs made before presets stored it (space.json, study.db, ONNX).
STORED_DIGITS_SPEC = {
    "in_channels": 1, "num_classes": 10, "image_size": 8, "stem_channels": 16, "stem_stride": 1,
    "stage_channels": [16, 24, 32, 48], "stage_strides": [1, 2, 2, 1], "depth_choices": [1, 2, 3],
    "kernel_choices": [3, 5, 7], "expand_choices": [3, 4, 6], "width_choices": [0.5, 0.75, 1.0],
    "head_channels": 128, "dropout": 0.1,
}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_has_at_least_a_trillion_subnets(preset: str) -> None:
    size = PRESET_SIZES[preset]
    spec = SupernetSpec.for_input(3, size, 10, preset=preset)
    assert spec.num_subnets() >= 10**12
    assert preset_for_size(size) == preset  # each is the one picked for the size it is designed for


def test_the_image_size_picks_the_preset() -> None:
    assert SupernetSpec.for_input(1, 8, 10) == SupernetSpec()
    cifar = SupernetSpec.for_input(3, 32, 10)
    imagenet = SupernetSpec.for_input(3, 224, 1000)
    assert (cifar.preset, imagenet.preset) == ("cifar", "imagenet")
    assert cifar.stem_stride == 1 and imagenet.stem_stride == 2
    assert imagenet.num_stages == 5 and max(imagenet.depth_choices) == 4
    assert imagenet.kernel_choices == (3, 5, 7) and imagenet.expand_choices == (3, 4, 6)
    # five stride-2 steps: a 224-pixel image ends at 7x7 before the head, as in MobileNet and Once-for-All
    head = imagenet.arch_parts(imagenet.largest_arch(), (3, 224, 224))[-1]
    assert head.endswith("hw=7x7")
    # a preset named by the config wins over the image size
    assert SupernetSpec.for_input(3, 224, 10, preset="cifar").preset == "cifar"


def test_digits_and_older_specs_keep_their_stored_form() -> None:
    assert SupernetSpec.for_input(1, 8, 10).to_dict() == STORED_DIGITS_SPEC
    assert SupernetSpec.from_dict(STORED_DIGITS_SPEC) == SupernetSpec()
    assert space_from_dict(STORED_DIGITS_SPEC) == SupernetSpec()  # runs stored without a "space" key
    # configs that shape the stages themselves keep the layout they were written for, at any size
    old = SupernetSpec.for_input(3, 32, 10, stage_channels=[24, 32, 64, 96])
    assert old.preset is None and old.stage_strides == (1, 2, 2, 1) and old.stem_stride == 2
    assert "preset" not in old.to_dict()


def test_a_preset_is_recorded_and_options_override_it() -> None:
    spec = space_for_input("mobilenet", 3, 224, 10, {"preset": "imagenet", "width_choices": [0.5, 1.0]})
    assert spec.preset == "imagenet" and spec.width_choices == (0.5, 1.0)
    assert spec.stage_channels == PRESETS["imagenet"]["stage_channels"]
    stored = json.loads(json.dumps(space_to_dict(spec)))
    assert stored["options"]["preset"] == "imagenet" and space_from_dict(stored) == spec
    assert "imagenet preset" in spec.describe()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"preset": "huge"}, "unknown preset 'huge'.*valid: digits, cifar, imagenet"),
        ({"widths": [1]}, "'widths'"),
    ],
)
def test_unknown_presets_and_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space_for_input("mobilenet", 3, 32, 10, options)


def test_an_older_run_resumes_on_the_space_it_had(tmp_path: Path) -> None:
    from nas import load_config
    from nas.run._config import resume_config

    cfg = load_config(None, {"name": "old"})
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    before_presets = SupernetSpec(in_channels=3, image_size=32, stem_stride=2)  # what 32x32 images got then
    (run / "space.json").write_text(json.dumps({"supernet": before_presets.to_dict()}))
    resumed = resume_config(run)
    assert space_for_input("mobilenet", 3, 32, 10, resumed.space_options()) == before_presets
    # a run that recorded its preset resumes on it, as a new one would be built
    (run / "space.json").write_text(json.dumps({"supernet": SupernetSpec.for_input(3, 32, 10).to_dict()}))
    assert resume_config(run).space.options == {}


@pytest.mark.slow
def test_a_224_pixel_search_runs_end_to_end(tmp_path: Path) -> None:
    """The imagenet preset, with fewer choices, on a handful of random 224x224 images."""
    from nas import Experiment, load_config
    from nas.data import from_datasets

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, 224, 224, generator=gen), torch.arange(10) % 2
    data = from_datasets(TensorDataset(x[:6], y[:6]), TensorDataset(x[6:], y[6:]), name="random224")
    cfg = load_config(
        overrides={
            "name": "big",
            "out": str(tmp_path),
            "threads": 1,
            "supernet.epochs": 1,
            "supernet.batch_size": 3,
            "search.trials": 3,
            "search.population": 2,
            "evaluation.calib_samples": 16,
            "tracking.enabled": False,
            # the preset's layout with one width, depth and expand ratio: 4**5 archs, a small supernet
            "space.options": {"width_choices": [0.5], "depth_choices": [2], "expand_choices": [3]},
        }
    )
    result = Experiment(cfg, data=data).run()
    stored = json.loads((result.run_dir / "space.json").read_text())
    assert stored["supernet"]["preset"] == "imagenet" and stored["supernet"]["stem_stride"] == 2
    assert result.n_trials == 3 and result.n_failed == 0 and result.models
    for model in result.models:
        assert (result.run_dir / model.onnx).is_file() and model.max_abs_diff < 1e-3
