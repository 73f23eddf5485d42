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
def test_every_example_validates(path, tmp_path, monkeypatch):
    # resnet.yaml names examples.resnet_space, importable from the repository's root
    monkeypatch.syspath_prepend(str(EXAMPLES.parent))
    overrides = {"data.root": str(tmp_path)} if "cifar" in path.name else {}
    cfg = load_config(path, overrides)
    assert cfg.search.trials >= 1


@pytest.mark.slow
def test_hyperparameter_tuning_example_runs_brackets_and_warm_starts(tmp_path, capsys):
    import importlib.util
    import json

    from nas.sustainability import method_of
    from search import SQLiteStorage, TrialState

    spec = importlib.util.spec_from_file_location("tune_example", EXAMPLES / "tune_hyperparameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--trials", "12", "--out", str(tmp_path / "a"), "--min-fidelity", "0.3"]) == 0
    trials = SQLiteStorage(tmp_path / "a" / "study.db").trials()
    assert len(trials) == 12 and all(t.state is TrialState.COMPLETE for t in trials)
    fidelities = {round(t.fidelity, 2) for t in trials}
    assert min(fidelities) < 1.0 and 1.0 in fidelities  # successive halving over epochs
    assert all(t.metrics["train_energy_wh"] >= 0 for t in trials)
    assert (tmp_path / "a" / "emissions.csv").is_file()
    out = capsys.readouterr().out
    # codecarbon measures the CPU with RAPL and a GPU with NVML where they are readable: the method named is
    # the weakest of the parts the tracker recorded, whatever this machine has.
    components = json.loads((tmp_path / "a" / "sustainability.json").read_text())["tracker"]["components"]
    methods = {method_of(d) for d in components}
    method = "estimated" if "estimated" in methods else min(methods)
    assert "Pareto front" in out and f"energy {method})" in out

    assert (
        module.main(
            ["--trials", "3", "--out", str(tmp_path / "b"), "--warm-start", str(tmp_path / "a" / "study.db")]
        )
        == 0
    )
    best = sorted((t for t in trials if t.fidelity >= 1.0), key=lambda t: t.metrics["error"])[:3]
    warm = SQLiteStorage(tmp_path / "b" / "study.db").trials()
    assert [dict(t.params) for t in warm[: len(best)]] == [dict(t.params) for t in best]


@pytest.mark.slow
def test_resnet_example_searches_from_the_repository_root(tmp_path):
    """``hwnas search --config examples/resnet.yaml`` as a user runs it: the console script imports the
    space from the current directory; a smaller copy of the config keeps the test short."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load((EXAMPLES / "resnet.yaml").read_text())
    cfg["space"]["options"] = {"stage_channels": [8, 16], "depth_choices": [1, 2]}
    cfg.update(threads=1, out=str(tmp_path), tracking={"enabled": False})
    cfg["search"].update(trials=3, population=2)
    cfg["evaluation"] = {"calib_samples": 32}
    config = tmp_path / "resnet.yaml"
    config.write_text(yaml.safe_dump(cfg))
    hwnas = Path(sys.executable).with_name("hwnas")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(hwnas), "search", "--config", str(config), "--epochs", "1"],
        cwd=EXAMPLES.parent, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "resnet"
    assert json.loads((run / "space.json").read_text())["space"] == "examples.resnet_space:ResNetSpace"
    models = json.loads((run / "pareto.json").read_text())["models"]
    assert models and all((run / m["onnx"]).is_file() for m in models)


def test_the_classify_example_reads_preprocessing_and_classes_from_the_metadata(tmp_path):
    """examples/classify.py on an ONNX model carrying hwnas's metadata keys: bright images are 'bright'."""
    import importlib.util
    import json

    import torch
    from PIL import Image

    from nas.run._export import export_onnx

    class Brightness(torch.nn.Module):
        def forward(self, x):  # logits (dark, bright) from the mean normalised pixel
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([-m, m], dim=1)

    meta = {
        "hwnas.input_shape": json.dumps([3, 8, 8]),
        "hwnas.normalize": json.dumps({"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}),
        "hwnas.pixel_scale": json.dumps(255.0),
        "hwnas.class_names": json.dumps(["dark", "bright"]),
    }
    model = export_onnx(Brightness().eval(), tmp_path / "m.onnx", (3, 8, 8), metadata=meta)
    spec = importlib.util.spec_from_file_location("classify", Path(__file__).parents[1] / "examples" / "classify.py")
    classify = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(classify)
    for value, expected in ((230, "bright"), (20, "dark")):
        image = tmp_path / f"{value}.png"
        Image.new("RGB", (40, 24), (value, value, value)).save(image)  # not square, not 8x8: cropped, resized
        label, p = classify.classify(str(model), str(image))
        assert label == expected and p > 0.5
