"""Picking a model of a run's front within bounds, and loading it as a PyTorch module equal to its ONNX file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import nas
from nas.cli import main
from nas.deploy import NoModelMeetsBounds, PickError, parse_bound
from nas.deploy._pick import Front, FrontModel, pick

TINY = {
    "seed": 0,
    "threads": 1,
    "supernet.epochs": 1,
    "supernet.stage_channels": [8, 12],
    "supernet.stage_strides": [1, 2],
    "search.trials": 5,
    "search.population": 4,
    "search.objectives": ["error", "latency_ms", "energy_mj"],
    "evaluation.calib_samples": 32,
    "tracking.enabled": False,
}


def front(rows: list[tuple[int, float, float, float]]) -> Front:
    models = tuple(
        FrontModel(
            i, {}, {"error": e, "latency_ms": lat, "energy_mj": mj, "params": 100.0 * i}, Path(f"{i}.onnx")
        )
        for i, e, lat, mj in rows
    )
    objectives = (
        ("error", "minimize", "%"),
        ("latency_ms", "minimize", "ms"),
        ("energy_mj", "minimize", "mJ"),
    )
    return Front(objectives, models)


FRONT = front([(0, 9.0, 1.0, 5.0), (1, 4.0, 3.0, 2.0), (2, 2.0, 6.0, 8.0), (3, 1.0, 12.0, 20.0)])


def test_pick_gives_the_most_accurate_model_within_every_bound() -> None:
    assert pick(FRONT).id == 3  # no bound: the lowest error
    assert pick(FRONT, max={"latency_ms": 5}).id == 1
    assert pick(FRONT, max={"latency_ms": 6}).id == 2  # a bound is inclusive
    assert pick(FRONT, max={"latency_ms": 7, "energy_mj": 4}).id == 1
    assert pick(FRONT, max={"latency_ms": 7}, by="energy_mj").id == 1
    assert pick(FRONT, by="latency_ms").id == 0
    assert pick(FRONT, max={"params": 150}).id == 1  # any metric every model records


def test_a_bound_no_model_meets_is_named_with_the_closest_model() -> None:
    with pytest.raises(NoModelMeetsBounds) as info:
        pick(FRONT, max={"latency_ms": 0.5, "energy_mj": 30})
    assert info.value.unmet == ("latency_ms <= 0.5",)
    assert info.value.closest is not None and info.value.closest.id == 0
    assert "no model meets latency_ms <= 0.5" in str(info.value) and "lowest latency_ms is 1" in str(
        info.value
    )
    with pytest.raises(NoModelMeetsBounds) as info:  # each bound is met alone, not both together
        pick(FRONT, max={"latency_ms": 2, "energy_mj": 3})
    assert info.value.unmet == () and "together" in str(info.value)
    # Model 1 exceeds latency by 1/11 of its spread, model 0 energy by 2/18 of its spread: model 1 is closer.
    assert info.value.closest is not None and info.value.closest.id == 1


def test_unknown_metrics_and_bad_values_name_the_valid_metrics() -> None:
    with pytest.raises(PickError, match="unknown metric 'latency'.*error, latency_ms, energy_mj, params"):
        pick(FRONT, max={"latency": 5})
    with pytest.raises(PickError, match="unknown metric 'accuracy'"):
        pick(FRONT, by="accuracy")
    with pytest.raises(PickError, match="finite number"):
        pick(FRONT, max={"latency_ms": float("nan")})
    assert parse_bound("latency_ms=5") == ("latency_ms", 5.0)
    assert parse_bound("latency_ms<=0.5") == ("latency_ms", 0.5)
    for bad in ("latency_ms", "=5", "latency_ms=fast", "latency_ms=inf"):
        with pytest.raises(PickError):
            parse_bound(bad)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    cfg = nas.load_config(overrides={**TINY, "name": "tiny", "out": str(out)})
    return nas.Experiment(cfg).run().run_dir


@pytest.mark.slow
def test_load_run_lists_the_front_of_pareto_json(tiny_run: Path) -> None:
    run = nas.load_run(tiny_run)
    pareto = json.loads((tiny_run / "pareto.json").read_text())
    assert [m.id for m in run.front] == [m["id"] for m in pareto["models"]]
    assert run.metrics[:3] == ["error", "latency_ms", "energy_mj"]
    for m in run.front:
        assert m.onnx.is_file() and m.onnx == (tiny_run / f"models/{m.id}.onnx").resolve()
        assert m.metrics["latency_ms"] > 0 and 0 <= m.metrics["error"] <= 100
    best = run.pick(max={"latency_ms": max(m.metrics["latency_ms"] for m in run.front)})
    assert best.metrics["error"] == min(m.metrics["error"] for m in run.front)
    with pytest.raises(nas.RunError, match="no front model 999; its models are"):
        run.load_model(999)


@pytest.mark.slow
def test_a_loaded_model_gives_the_outputs_of_its_onnx_file(tiny_run: Path) -> None:
    run = nas.load_run(tiny_run)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    for m in run.front:
        net = run.load_model(m.id)
        assert isinstance(net, torch.nn.Module) and not net.training
        session = ort.InferenceSession(str(m.onnx), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        expected = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
        with torch.no_grad():
            got = net(torch.from_numpy(x)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_a_module_without_recalibration_would_differ(tiny_run: Path) -> None:
    """The check above can fail: the raw subnet of the supernet (batch norms not recalibrated) differs."""
    run = nas.load_run(tiny_run)
    m = run.front[0]
    raw = run._load_evaluator().members[m.member].subnet(dict(m.arch)).eval()
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32))
    with torch.no_grad():
        assert not torch.allclose(raw(x), run.load_model(m.id)(x), atol=1e-4)


@pytest.mark.slow
def test_hwnas_pick_prints_the_model_or_the_unmet_bound(
    tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = nas.load_run(tiny_run)
    slowest = max(m.metrics["latency_ms"] for m in run.front)
    assert main(["pick", str(tiny_run), "--max", f"latency_ms={slowest}"]) == 0
    out = capsys.readouterr().out
    best = run.pick(max={"latency_ms": slowest})
    assert out.startswith(f"model {best.id}: error=") and f"onnx: {best.onnx}" in out
    assert main(["pick", str(tiny_run), "--max", "latency_ms=1e-9"]) == 1
    err = capsys.readouterr().err
    assert "no model meets latency_ms <= 1e-09" in err and "closest is model" in err
    for bad in (["--max", "speed=3"], ["--max", "latency_ms=fast"], ["--by", "speed"]):
        assert main(["pick", str(tiny_run), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error, latency_ms, energy_mj" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_pick_and_load_example_runs_on_a_real_run(tiny_run: Path) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "pick_and_load.py"
    slowest = max(m.metrics["latency_ms"] for m in nas.load_run(tiny_run).front)
    proc = subprocess.run(
        [sys.executable, str(example), str(tiny_run), str(slowest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    diff = float(proc.stdout.split("max |torch - onnx| = ")[1])
    assert diff < 1e-4 and "ONNX file: " in proc.stdout
