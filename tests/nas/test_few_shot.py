"""A new device from a few measurements: hwnas profile-device --few N --from TABLE..., and a search using it."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from hardware_profiles import load_profile
from nas.cli import main
from nas.run._config import load_config
from nas.run._few import fit_few_shot, load_source, load_transfer_table
from nas.spaces import arch_key, space_for_input
from profilers import LatencyTable, LutError

SPACE = {"supernet.stage_channels": [8, 12], "supernet.stage_strides": [1, 2]}
SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def spec():
    return space_for_input("mobilenet", 1, 8, 10, load_config(overrides=SPACE).space_options())


def _lut(spec, path, weight):
    """A lookup table of every part of the space, latencies made from the numbers in each part's key."""
    entries = {}
    for key in spec.distinct_parts(SHAPE):
        numbers = [int(n) for n in re.findall(r"=(\d+)", key)]
        entries[key] = {"latency_ms": 0.002 + 1e-5 * sum(n**weight for n in numbers)}
    LatencyTable(entries, empty_ms=0.001, meta={"profile": path.stem}).save(path)
    return path


def _profile(folder):
    path = folder / "fast.yaml"
    path.write_text("name: fast\ndevice: cpu\ntimed_runs: 30\nwarmup_runs: 2\n")
    return load_profile(path)


def test_a_device_proportional_to_a_source_is_recovered_from_six_archs(spec, tmp_path):
    a = _lut(spec, tmp_path / "a.json", 1.0)
    b = _lut(spec, tmp_path / "b.json", 1.7)
    table_a = LatencyTable.load(a)

    def measure(arch):  # the new device: 2.5 times device a
        return 2.5 * table_a.predict(spec.arch_parts(arch, SHAPE))

    table, profile_path = fit_few_shot(
        spec, _profile(tmp_path), SHAPE, [a, b], tmp_path / "new.json", n=6, seed=3, measure=measure
    )
    assert table.weights["a"] == pytest.approx(1.0, abs=1e-6)
    assert table.weights["b"] == pytest.approx(0.0, abs=1e-6)
    assert table.fit["loo_mape_pct"] == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(11)
    for _ in range(5):  # archs never measured: predicted through the table of parts
        arch = spec.random_arch(rng)
        assert arch_key(arch) not in table.measured
        assert table.predict_arch(spec, arch, SHAPE) == pytest.approx(measure(arch), rel=1e-6)
    # the profile a search uses: its table is the transfer table; its description states the fit's error
    profile = load_profile(profile_path)
    assert profile.name == "new"
    assert profile.lut == tmp_path / "new.json"
    assert "leave-one-out on 6 measured archs" in profile.description
    assert "leave-one-out" in profile_path.read_text().splitlines()[0]
    # an earlier --few table is a source like any other
    again, _ = fit_few_shot(
        spec, _profile(tmp_path), SHAPE, [tmp_path / "new.json"], tmp_path / "newer.json", n=4, seed=5,
        measure=lambda arch: 2.0 * measure(arch),
    )  # fmt: skip
    arch = spec.random_arch(rng)
    assert again.predict_arch(spec, arch, SHAPE) == pytest.approx(2.0 * measure(arch), rel=1e-6)


def test_measured_tables_of_whole_archs_are_sources_for_their_archs(spec, tmp_path):
    rng = np.random.default_rng(0)
    archs = [spec.random_arch(rng) for _ in range(12)]
    x = {arch_key(a): 0.1 + 0.01 * i for i, a in enumerate(archs)}
    (tmp_path / "x.json").write_text(json.dumps(x))  # a plain JSON object: arch key -> ms
    y = {"format": "hwnas-arch-latency", "version": 1, "latency_ms": {k: 3 * v for k, v in x.items()}}
    (tmp_path / "y.json").write_text(json.dumps(y))
    measured_archs = []

    def measure(arch):
        measured_archs.append(arch_key(arch))
        return 4.0 * x[arch_key(arch)]

    table, _ = fit_few_shot(
        spec, _profile(tmp_path), SHAPE, [tmp_path / "x.json", tmp_path / "y.json"], tmp_path / "n.json",
        n=5, seed=0, measure=measure,
    )  # fmt: skip
    assert len(set(measured_archs)) == 5 and set(measured_archs) <= set(x)  # drawn among the tables' archs
    assert set(table.latency_ms) == set(x) - set(measured_archs)  # the others predicted once, in the file
    for key, ms in x.items():
        assert table.predict_arch(spec, json.loads(key), SHAPE) == pytest.approx(4.0 * ms, rel=1e-6)
    outside = spec.random_arch(np.random.default_rng(99))
    assert arch_key(outside) not in x
    with pytest.raises(LutError, match="lookup tables of parts"):
        table.predict_arch(spec, outside, SHAPE)
    with pytest.raises(LutError, match="share 12 archs; --few 20 needs"):
        fit_few_shot(
            spec, _profile(tmp_path), SHAPE, [tmp_path / "x.json"], tmp_path / "m.json", n=20, measure=measure
        )


def test_tables_that_cannot_be_used_are_named(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"arch": -1}))
    with pytest.raises(LutError, match="not an arch key with a positive latency"):
        load_source(tmp_path / "bad.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(LutError, match="not valid JSON"):
        load_source(tmp_path / "text.json")


def test_few_without_from_is_a_usage_error(tmp_path, capsys):
    code = main(["profile-device", "--few", "4", "--out", str(tmp_path / "t.json")])
    assert code == 2
    assert "--few N and --from TABLE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_search_predicts_latency_from_a_few_shot_profile(spec, tmp_path, capsys):
    source = _lut(spec, tmp_path / "edge.json", 1.0)
    config = tmp_path / "space.yaml"
    config.write_text("supernet:\n  stage_channels: [8, 12]\n  stage_strides: [1, 2]\n")
    (tmp_path / "fast.yaml").write_text("name: fast\ndevice: cpu\ntimed_runs: 30\nwarmup_runs: 2\n")
    out = tmp_path / "here.json"
    code = main([
        "profile-device", "--few", "4", "--from", str(source), "--out", str(out), "--config", str(config),
        "--profile", str(tmp_path / "fast.yaml"),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "leave-one-out on 4 measured archs" in capsys.readouterr().out
    table = load_transfer_table(out)
    assert len(table.measured) == 4 and all(ms > 0 for ms in table.measured.values())

    from nas import Experiment

    cfg = load_config(
        overrides={
            **SPACE,
            "seed": 0,
            "threads": 1,
            "name": "few",
            "out": str(tmp_path),
            "profile": str(tmp_path / "here.profile.yaml"),
            "supernet.epochs": 1,
            "search.trials": 4,
            "search.population": 4,
            "evaluation.calib_samples": 32,
            "evaluation.latency": "predict",
            "tracking.enabled": False,
        }
    )
    result = Experiment(cfg).run()
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    for m in pareto["models"]:
        assert m["metrics"]["latency_predicted"] == 1.0
        assert m["metrics"]["latency_ms"] == pytest.approx(
            table.predict_arch(spec, m["arch"], SHAPE), rel=1e-9
        )
    fit = pareto["latency_transfer"]["here"]
    assert fit["n_points"] == 4
    assert fit["loo_mape_pct"] == pytest.approx(table.fit["loo_mape_pct"])
    md = (result.run_dir / "report.md").read_text()
    assert "Latency by transfer" in md
    assert f"mean {fit['loo_mape_pct']:.4g}% off" in md or math.isnan(fit["loo_mape_pct"])
