"""A tiny search from the command line, checked the way a user would check its run directory."""

import csv
import json
import sqlite3

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nas import load_digits
from nas.cli import main
from search import non_dominated_mask

TINY = """
name: tiny
seed: 1
data:
  options: {val_fraction: 0.25}
supernet:
  epochs: 1
  batch_size: 128
  stage_channels: [8, 12]
  stage_strides: [1, 2]
  shift: 1
search:
  trials: 10
  population: 4
  objectives: [error, latency_ms, params]
evaluation:
  calib_samples: 64
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = out / "tiny.yaml"
    cfg.write_text(TINY)
    assert main(["search", "--config", str(cfg), "--out", str(out)]) == 0
    return out / "tiny"


def test_run_directory_has_every_output(run):
    for name in ("study.db", "pareto.json", "trials.csv", "pareto.png", "config.yaml", "supernet.pt"):
        assert (run / name).is_file(), name
    assert (run / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run / "tmp").exists()


def test_the_default_strategy_picks_by_the_budget_and_the_report_says_what_it_picked(run):
    md = (run / "report.md").read_text()
    assert (
        "**Strategy:** auto: bayes (a budget of 10 evaluations is at most 500 for 3 objectives; no unordered choice)"
        in md
    )


def test_the_supernet_was_trained_on_shifted_images_with_a_black_border(run):
    config = torch.load(run / "supernet.pt", weights_only=True)["config"]
    assert config["shift"] == 1 and config["flip"] is False
    black = load_digits(seed=1, val_fraction=0.25).black  # the run's data: its seed and data.options
    assert config["fill"] == pytest.approx(list(black)) and black[0] < 0


def test_trials_are_stored_and_listed(run):
    with sqlite3.connect(run / "study.db") as c:
        states = [r[0] for r in c.execute("SELECT state FROM trials ORDER BY number")]
    assert len(states) == 10 and set(states) == {"COMPLETE"}
    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert len(rows) == 10 and all(float(r["latency_ms"]) > 0 for r in rows)
    assert all(json.loads(r["arch"])["depth"] for r in rows)
    # Scored on the validation split data.options asked for: a quarter of the digits, 449 images.
    val = len(load_digits(seed=1, val_fraction=0.25).val)
    assert val == 449
    wrong = [e for e in (float(r["error"]) * val / 100 for r in rows) if abs(e - round(e)) > 1e-3]
    assert not wrong, wrong


def test_pareto_models_are_non_dominated_and_their_metrics_measured(run):
    pareto = json.loads((run / "pareto.json").read_text())
    names = [o["name"] for o in pareto["objectives"]]
    assert names == ["error", "latency_ms", "params"]
    assert [o["unit"] for o in pareto["objectives"]] == ["%", "ms", "count"]
    rows = {int(r["number"]): r for r in csv.DictReader((run / "trials.csv").open())}
    all_points = np.array([[float(r[n]) for n in names] for r in rows.values()])
    models = pareto["models"]
    assert models
    front = np.array([[m["metrics"][n] for n in names] for m in models])
    # no evaluated trial dominates an exported model
    for point in front:
        dominated = np.all(all_points <= point, axis=1) & np.any(all_points < point, axis=1)
        assert not dominated.any()
    assert non_dominated_mask(front).all()
    for m in models:
        assert m["metrics"]["latency_ms"] == pytest.approx(float(rows[m["id"]]["latency_ms"]), rel=1e-5)
        assert 0 <= m["test_error"] <= 100 and m["max_abs_diff"] < 1e-4


def test_every_model_loads_runs_and_carries_its_arch(run):
    pareto = json.loads((run / "pareto.json").read_text())
    for m in pareto["models"]:
        path = run / m["onnx"]
        onnx.checker.check_model(str(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        assert json.loads(meta["hwnas.arch"]) == m["arch"]
        x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
        (logits,) = session.run(None, {"input": x})
        assert logits.shape == (3, 10) and np.isfinite(logits).all()


def test_export_command_reproduces_a_front_model(run, tmp_path, capsys):
    model = json.loads((run / "pareto.json").read_text())["models"][0]
    target = tmp_path / "again.onnx"
    assert main(["export", str(run), "--id", str(model["id"]), "--out", str(target)]) == 0
    assert "exported trial" in capsys.readouterr().out
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
    a = ort.InferenceSession(str(run / model["onnx"])).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(target)).run(None, {"input": x})[0]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_export_of_a_missing_trial_is_a_usage_error(run, capsys):
    assert main(["export", str(run), "--id", "999"]) == 2
    assert "has no trial 999" in capsys.readouterr().err
