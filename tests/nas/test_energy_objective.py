"""energy_mj and peak_memory_mb as search objectives: every energy figure names how it was obtained."""

from __future__ import annotations

import csv
import json
import os

import pytest

from nas import Experiment, load_config

TINY = {
    "seed": 0,
    "threads": 1,
    "supernet.epochs": 1,
    "supernet.stage_channels": [8, 12],
    "supernet.stage_strides": [1, 2],
    "search.trials": 5,
    "search.population": 4,
    "search.objectives": ["error", "energy_mj", "peak_memory_mb"],
    "evaluation.calib_samples": 32,
    "tracking.enabled": False,
}


@pytest.mark.slow
def test_a_search_on_energy_labels_every_figure_with_its_method(tmp_path, monkeypatch):
    # energy: estimate, so that the figures come from the profile's power model on every machine, RAPL
    # readable or not; 4 logical cores, so that one thread is a known share of them.
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    profile = tmp_path / "mycpu.yaml"
    profile.write_text(
        "name: mycpu\ndevice: cpu\nenergy: estimate\nidle_w: 5.0\ntdp_w: 45.0\nintra_op_threads: 1\n"
    )
    cfg = load_config(overrides={**TINY, "name": "e", "out": str(tmp_path), "profile": str(profile)})
    result = Experiment(cfg).run()
    rows = list(csv.DictReader((result.run_dir / "trials.csv").open()))
    assert len(rows) == 5
    watts = 5.0 + (45.0 - 5.0) * 1 / 4  # idle + (tdp - idle) x utilisation, 1 thread of 4 cores
    for r in rows:
        assert r["energy_method"] == "estimated"
        # the profile's power model times the measured latency: W x ms = mJ
        assert float(r["energy_mj"]) == pytest.approx(watts * float(r["latency_ms"]))
        assert 0 < float(r["peak_memory_mb"]) < 10
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert [o["unit"] for o in pareto["objectives"]] == ["%", "mJ", "MiB"]
    assert all(m["energy_method"] == "estimated" for m in pareto["models"])
    assert "idle 5 W" in pareto["energy"]["detail"] and "tdp 45 W" in pareto["energy"]["detail"]


def test_unknown_objective_lists_the_energy_and_memory_ones():
    from nas import ConfigError

    with pytest.raises(ConfigError, match="energy_mj, peak_memory_mb"):
        load_config(overrides={"search.objectives": ["error", "joules"]})
