"""Tests of nas.report._report and nas.report._importance: the run report (HTML + Markdown) and choice importance."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.report import ReportError, ReportFiles, estimate_from_scratch, write_report
from nas.report._importance import MIN_IMPORTANCE_TRIALS, group_importance, param_group, param_importance
from nas.report._units import energy_text, mass_text
from search import (
    Choice,
    Float,
    Objective,
    Space,
    SQLiteStorage,
    Trial,
    TrialState,
    hypervolume,
    pareto_trials,
)

DEMO = Path(__file__).resolve().parents[2] / "runs" / "demo"
DEMO_FILES = ("config.yaml", "pareto.json", "space.json", "study.db", "timings.json", "trials.csv", "models")

SPACE = Space({
    "width": Choice([0.5, 0.75, 1.0]),
    "depth_0": Choice([1, 2, 3]),
    "kernel_0_0": Choice([3, 5, 7]),
    "expand_0_0": Choice([3, 4, 6]),
})  # fmt: skip

SUSTAINABILITY: dict[str, Any] = {
    "tracker": {
        "tool": "codecarbon", "version": "3.3.2", "mode": "offline", "country_iso_code": "USA", "region": None,
        "components": {"CPU(Cpu Load)": "estimated", "RAM()": "estimated"},
        "fallbacks": ["no RAPL counters: CPU power estimated from TDP of the CPU model"],
    },
    "sessions": 2,
    "hardware": {"cpu_model": "Test CPU 9000", "cpu_count": 2, "gpu_model": None, "ram_gb": 24.0,
                 "profile": "local-cpu"},
    "phases": [
        {"name": "supernet_training", "duration_s": 120.0, "energy_kwh": 0.004, "emissions_kg": 0.0016,
         "method": "measured-rapl", "cpu_energy_kwh": 0.003, "gpu_energy_kwh": 0.0, "ram_energy_kwh": 0.001},
        {"name": "candidate_evaluation", "duration_s": 60.0, "energy_kwh": 0.001, "emissions_kg": 0.0004,
         "method": "estimated", "cpu_energy_kwh": 0.0008, "gpu_energy_kwh": 0.0, "ram_energy_kwh": 0.0002},
    ],
    "total": {"duration_s": 180.0, "energy_kwh": 0.005, "emissions_kg": 0.002},
    "training": {"epochs": 4, "completed_epochs": 4, "energy_kwh": 0.004, "energy_kwh_per_epoch": 0.001,
                 "macs_per_step_sample": 5000.0},
    "inference_energy": {"method": "estimated", "fallback_reason": "no NVML device"},
    "stopped_by": {"budget": "max_energy_kwh", "limit": 0.005, "value": 0.0051},
}  # fmt: skip


def synthetic_metrics(p: Mapping[str, Any]) -> dict[str, float]:
    """Objectives of a synthetic arch: error falls with width, latency grows with kernel and depth."""
    macs = 1000.0 * p["width"] * p["depth_0"] + 50.0 * p["kernel_0_0"] + 10.0 * p["expand_0_0"]
    return {
        "error": 10.0 - 6.0 * p["width"] + 0.1 * p["expand_0_0"],
        "latency_ms": 0.1 * p["kernel_0_0"] + 0.2 * p["depth_0"],
        "params": 100.0 * p["depth_0"] * p["expand_0_0"],
        "macs": macs,
    }


def make_run(
    root: Path,
    name: str,
    *,
    objectives: tuple[str, ...] = ("error", "latency_ms"),
    n_trials: int = 30,
    seed: int = 0,
    failed: int = 0,
    energy: bool = False,
    sustainability: Mapping[str, Any] | None = None,
    emissions: bool = False,
    reference: Mapping[str, float] | None = None,
) -> Path:
    """A run directory as a search leaves it, written with SQLiteStorage and json files."""
    run = root / name
    (run / "models").mkdir(parents=True)
    units = {"error": "%", "latency_ms": "ms", "params": "count"}
    reference = reference or {"error": 20.0, "latency_ms": 2.0, "params": 4000.0}
    objs = [Objective(n, "minimize", units[n], reference[n]) for n in objectives]
    (run / "config.yaml").write_text(
        f"name: {name}\nprofile: local-cpu\ndata:\n  name: digits\nsupernet:\n  epochs: 4\n"
        "search:\n  strategy: random\n  population: 8\n"
    )
    storage = SQLiteStorage(run / "study.db")
    storage.set_meta("objectives", [o.to_dict() for o in objs])
    storage.set_meta("space", SPACE.to_dict())
    storage.set_meta("strategy", "random")
    storage.set_meta("profile", "local-cpu")
    storage.set_meta("constraints", [])
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n_trials):
        params = SPACE.sample(rng)
        attrs: dict[str, Any] = {"arch": dict(params)}
        if energy:
            attrs |= {"energy_kwh": 1e-4 * (1 + i % 3), "energy_method": "estimated"}
        t = Trial(i, params, started_at=1.7e9 + 10 * i, finished_at=1.7e9 + 10 * i + 5, attrs=attrs)
        if i < failed:
            t = t.replace(state=TrialState.FAILED, error=f"RuntimeError: synthetic failure number {i}")
        else:
            metrics = synthetic_metrics(params)
            t = t.replace(
                state=TrialState.COMPLETE, metrics=metrics, values=tuple(metrics[n] for n in objectives),
                violation=0.0,
            )  # fmt: skip
        storage.add_trial(t)
        trials.append(t)
    storage.close()
    front = pareto_trials(trials, objs)
    models = [
        {"id": t.number, "arch": dict(t.params), "metrics": dict(t.metrics), "onnx": f"models/{t.number}.onnx",
         "test_error": t.metrics["error"] + 0.5, "max_abs_diff": 1e-6}
        for t in front
    ]  # fmt: skip
    for m in models:
        (run / m["onnx"]).write_bytes(b"onnx")
    pareto = {"objectives": [o.to_dict() for o in objs], "reference": dict(reference), "models": models}
    (run / "pareto.json").write_text(json.dumps(pareto))
    (run / "timings.json").write_text(json.dumps({"data": 1.0, "supernet_training": 120.0, "search": 60.0}))
    if sustainability is not None:
        (run / "sustainability.json").write_text(json.dumps(sustainability))
    if emissions:
        from codecarbon.output_methods.emissions_data import EmissionsData

        columns = [f.name for f in dataclasses.fields(EmissionsData)]  # codecarbon's own columns, in order
        row = {"timestamp": "2026-01-01T00:00:00", "project_name": name, "duration": 180.0, "emissions": 0.002,
               "energy_consumed": 0.005, "cpu_energy": 0.0038, "gpu_energy": 0.0, "ram_energy": 0.0012,
               "country_iso_code": "USA", "tracking_mode": "machine", "cpu_model": "Test CPU 9000"}  # fmt: skip
        with (run / "emissions.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, columns)
            w.writeheader()
            w.writerow({c: row.get(c, "") for c in columns})
    return run


def images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    ]


def model_rows(page: str) -> set[int]:
    return {int(m) for m in re.findall(r'<tr data-model="(\d+)"', page)}


def phase_row(page: str, phase: str) -> str:
    m = re.search(rf'<tr data-phase="{phase}">(.*?)</tr>', page)
    assert m, f"no row for phase {phase}"
    return m.group(1)


def section(page: str, title: str) -> str:
    """The HTML from a heading to the next heading of the same level."""
    start = page.index(f">{title}</h2>")
    end = page.find("<h2", start)
    return page[start : end if end >= 0 else None]


# -- the demo run ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReportFiles]:
    if not (DEMO / "study.db").is_file():
        pytest.skip("the demo run (runs/demo) is not here")
    run = tmp_path_factory.mktemp("runs") / "demo"
    run.mkdir()
    for name in DEMO_FILES:
        src = DEMO / name
        if src.is_dir():
            shutil.copytree(src, run / name)
        elif src.is_file():
            shutil.copy2(src, run / name)
    return run, write_report([run])


def test_demo_report_is_written_into_the_run_directory(demo_report: tuple[Path, ReportFiles]) -> None:
    run, files = demo_report
    assert files.html == run / "report.html" and files.md == run / "report.md"
    assert files.figures and all(f.parent == run / "report_figures" for f in files.figures)
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files.figures)


def test_demo_html_embeds_its_figures_and_lists_exactly_the_pareto_models(
    demo_report: tuple[Path, ReportFiles],
) -> None:
    run, files = demo_report
    page = files.html.read_text()
    pngs = images(page)
    assert len(pngs) == len(files.figures) >= 3
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    pareto = json.loads((run / "pareto.json").read_text())
    assert model_rows(page) == {m["id"] for m in pareto["models"]}
    for m in pareto["models"]:
        assert f'href="{m["onnx"]}"' in page  # relative link from the report next to the models


def test_demo_html_needs_nothing_from_the_network(demo_report: tuple[Path, ReportFiles]) -> None:
    page = demo_report[1].html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert "http://" not in page and "https://" not in page


def test_demo_report_says_energy_was_not_recorded_and_shows_final_hypervolume(
    demo_report: tuple[Path, ReportFiles],
) -> None:
    run, files = demo_report
    page = files.html.read_text()
    energy = section(page, "Energy and CO2e")
    assert "not recorded" in energy and "sustainability.json" in energy
    assert "The energy spent on each trial was not recorded" in page
    assert "not recorded" in section(page, "Without weight sharing (estimate)")
    expected = json.loads((run / "pareto.json").read_text())["hypervolume"]
    m = re.search(r"Final hypervolume: ([0-9.eE+-]+)\.", page)
    assert m and float(m.group(1)) == pytest.approx(expected, rel=1e-5)


def test_demo_markdown_holds_the_tables_and_links_existing_figures(
    demo_report: tuple[Path, ReportFiles],
) -> None:
    run, files = demo_report
    md = files.md.read_text()
    ids = {m["id"] for m in json.loads((run / "pareto.json").read_text())["models"]}
    rows = {int(r) for r in re.findall(r"^\| (\d+) \|", md, re.MULTILINE)}
    assert rows == ids
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert links and all((run / link).is_file() for link in links)
    assert "| choice |" in md  # grouped importance table
    assert "validation error (%)" not in md  # one supernet, no fine-tuning: the ranked error is the model's


# -- synthetic runs: sustainability, estimate, importance -------------------------------------------------


def test_phase_rows_carry_their_method_labels_and_fallbacks_are_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path, "green", sustainability=SUSTAINABILITY, energy=True, emissions=True)
    page = write_report([run]).html.read_text()
    assert "measured-rapl" in phase_row(page, "supernet_training")
    assert "estimated" in phase_row(page, "candidate_evaluation")
    total = phase_row(page, "total")
    assert "5 Wh" in total and "2 g" in total  # 0.005 kWh and 0.002 kg, in units chosen for the magnitude
    assert "no RAPL counters: CPU power estimated from TDP" in page
    assert "Test CPU 9000" in page and "max_energy_kwh" in page and "no NVML device" in page
    assert "emissions.csv" in page and "energy spent on each trial was not recorded" not in page
    assert "2 sessions" in page and "CPU (from cpu load): estimated" in page
    assert "attrs" not in page and "RAM()" not in page and "(Cpu Load)" not in page
    assert "stopped by a budget" not in page  # the training finished all of its epochs
    assert "not recorded" not in phase_row(page, "supernet_training")


def test_energy_is_not_recorded_without_sustainability_json(tmp_path: Path) -> None:
    run = make_run(tmp_path, "plain")
    page = write_report([run]).html.read_text()
    energy = section(page, "Energy and CO2e")
    assert "not recorded" in energy and "data-phase=" not in energy
    assert "The energy spent on each trial was not recorded" in page


def test_from_scratch_estimate_follows_its_formula(tmp_path: Path) -> None:
    run = make_run(tmp_path, "green", sustainability=SUSTAINABILITY)
    storage = SQLiteStorage(run / "study.db")
    trials = storage.trials()
    storage.close()
    distinct = {json.dumps(t.attrs["arch"], sort_keys=True): t.metrics["macs"] for t in trials}
    assert len(distinct) < len(trials)  # some archs repeat and must count once
    tr = SUSTAINABILITY["training"]
    expected = sum(
        tr["energy_kwh_per_epoch"] * tr["epochs"] * m / tr["macs_per_step_sample"] for m in distinct.values()
    )
    kg_per_kwh = 0.0016 / 0.004
    est = estimate_from_scratch(
        trials, epochs=tr["epochs"], energy_kwh_per_epoch=tr["energy_kwh_per_epoch"],
        macs_per_step_sample=tr["macs_per_step_sample"], supernet_energy_kwh=tr["energy_kwh"], kg_per_kwh=kg_per_kwh,
    )  # fmt: skip
    assert est.n_archs == len(distinct) and est.n_without_macs == 0
    assert est.energy_kwh == pytest.approx(expected)
    assert est.saved_kwh == pytest.approx(expected - tr["energy_kwh"])
    assert est.ratio == pytest.approx(expected / tr["energy_kwh"])
    assert est.saved_kg == pytest.approx((expected - tr["energy_kwh"]) * kg_per_kwh)
    page = section(write_report([run]).html.read_text(), "Without weight sharing (estimate)")
    assert "estimate" in page and "E_scratch(a) = E_epoch × epochs × MACs(a) / MACs_step" in page
    assert energy_text(expected) in page and mass_text((expected - tr["energy_kwh"]) * kg_per_kwh) in page
    assert f"{len(distinct)} distinct evaluated archs" in page


def test_from_scratch_estimate_rejects_impossible_inputs() -> None:
    with pytest.raises(ValueError, match="macs_per_step_sample must be"):
        estimate_from_scratch([], epochs=3, energy_kwh_per_epoch=0.1, macs_per_step_sample=0.0)
    with pytest.raises(ValueError, match="epochs must be"):
        estimate_from_scratch([], epochs=0, energy_kwh_per_epoch=0.1, macs_per_step_sample=1.0)


def plain_trials(n: int, seed: int = 0) -> list[Trial]:
    """A plain hyperparameter study whose loss depends on lr only."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = {"lr": float(rng.uniform(-4, -1)), "batch_size": int(rng.choice([16, 32, 64])),
             "weight_decay": float(rng.uniform(0, 1)), "optimizer": str(rng.choice(["sgd", "adam"]))}  # fmt: skip
        out.append(Trial(i, p, state=TrialState.COMPLETE, metrics={"loss": (p["lr"] + 2.5) ** 2}))
    return out


def test_importance_ranks_first_the_parameter_that_determines_the_objective() -> None:
    trials = plain_trials(40)
    imp = param_importance(trials, "loss", seed=1)
    assert next(iter(imp)) == "lr" and imp["lr"] > 0.8
    assert sum(imp.values()) == pytest.approx(1.0) and all(v >= 0 for v in imp.values())
    space = Space({"lr": Float(-4, -1), "batch_size": Choice([16, 32, 64]), "weight_decay": Float(0, 1),
                   "optimizer": Choice(["sgd", "adam"])})  # fmt: skip
    assert next(iter(param_importance(trials, "loss", space=space))) == "lr"


def test_importance_of_a_supernet_space_groups_by_kind() -> None:
    rng = np.random.default_rng(2)
    trials = []
    for i in range(30):
        p = SPACE.sample(rng)
        trials.append(Trial(i, p, state=TrialState.COMPLETE, metrics={"latency_ms": 0.3 * p["kernel_0_0"]}))
    imp = param_importance(trials, "latency_ms", space=SPACE)
    assert next(iter(imp)) == "kernel_0_0"
    grouped = group_importance({"kernel_0_0": 0.5, "kernel_1_2": 0.2, "depth_3": 0.3})
    assert grouped == pytest.approx({"kernel": 0.7, "depth": 0.3}) and list(grouped) == ["kernel", "depth"]
    assert [param_group(n) for n in ("expand_3_2", "width", "weight_decay")] == [
        "expand",
        "width",
        "weight_decay",
    ]


def test_importance_refuses_too_few_trials_and_constant_objectives() -> None:
    few = plain_trials(MIN_IMPORTANCE_TRIALS - 1)
    with pytest.raises(ValueError, match=f"at least {MIN_IMPORTANCE_TRIALS} complete trials"):
        param_importance(few, "loss")
    flat = [t.replace(metrics={"loss": 1.0}) for t in plain_trials(20)]
    with pytest.raises(ValueError, match="same value in every trial"):
        param_importance(flat, "loss")


def test_report_ranks_importance_and_notes_too_few_trials(tmp_path: Path) -> None:
    page = write_report([make_run(tmp_path, "many", n_trials=40)]).html.read_text()
    imp = section(page, "Importance of the searched choices")
    rows = re.findall(r"<tr><td>(\w+)</td><td class=num>([0-9.e-]+)</td>", imp)
    assert rows[0][0] == "width"  # error is driven by width in the synthetic run
    few = write_report([make_run(tmp_path, "few", n_trials=6)]).html.read_text()
    assert f"at least {MIN_IMPORTANCE_TRIALS} complete trials, this run has 6" in few


def test_three_objectives_add_parallel_coordinates_and_failures_are_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path, "three", objectives=("error", "latency_ms", "params"), failed=2)
    files = write_report([run])
    page = files.html.read_text()
    assert "Parallel coordinates" in page and (run / "report_figures" / "parallel.png").is_file()
    assert "synthetic failure number 0" in page and "synthetic failure number 1" in page
    assert "2 failed" in page
    pareto = json.loads((run / "pareto.json").read_text())
    assert model_rows(page) == {m["id"] for m in pareto["models"]}


# -- several runs ------------------------------------------------------------------------------------------


def test_overlay_of_two_runs_compares_hypervolume_at_a_common_reference(tmp_path: Path) -> None:
    a = make_run(tmp_path, "alpha", seed=1, sustainability=SUSTAINABILITY)
    b = make_run(
        tmp_path, "beta", seed=2, n_trials=12, reference={"error": 30.0, "latency_ms": 1.5, "params": 1.0}
    )
    c = make_run(
        tmp_path, "gamma", seed=3, objectives=("latency_ms", "error")
    )  # same objectives, other order
    out = tmp_path / "compare"
    files = write_report([a, b, c], out_dir=out)
    assert files.html == out / "report.html" and files.md.is_file()
    page = files.html.read_text()
    assert "alpha" in page and "beta" in page
    common = [30.0, 2.0]  # the worst of the two references, objective by objective
    for run, name in ((a, "alpha"), (b, "beta"), (c, "gamma")):
        storage = SQLiteStorage(run / "study.db")
        done = [t for t in storage.trials() if t.state is TrialState.COMPLETE]
        storage.close()
        expected = hypervolume(
            np.array([[t.metrics["error"], t.metrics["latency_ms"]] for t in done]), common
        )
        row = re.search(rf'<tr data-run="{name}">(.*?)</tr>', page)
        assert row, name
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
        # normalised to the common box: error 0 to 30 %, latency 0 to 2 ms
        assert float(cells[9]) == pytest.approx(expected / (30.0 * 2.0), abs=6e-4)
        assert 0 < float(cells[9]) < 1 and 0 < float(cells[10]) < 1
    assert "error = 30, latency_ms = 2" in page
    assert len(images(page)) >= 2
    assert "5 Wh" in re.search(r'<tr data-run="alpha">(.*?)</tr>', page).group(1)
    assert "not recorded" in re.search(r'<tr data-run="beta">(.*?)</tr>', page).group(1)
    for m in json.loads((a / "pareto.json").read_text())["models"]:
        assert f'href="../alpha/{m["onnx"]}"' in page


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_inputs_raise_one_clear_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist; give a run directory"):
        write_report([tmp_path / "nowhere"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ReportError, match="is a file, not a run directory"):
        write_report([tmp_path / "file.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no study.db"):
        write_report([tmp_path / "empty"])
    broken = make_run(tmp_path, "broken")
    (broken / "study.db").write_bytes(b"this is not an SQLite file at all" * 100)
    with pytest.raises(ReportError, match=r"study\.db.*(not a readable SQLite|cannot be read)"):
        write_report([broken])
    with pytest.raises(ReportError, match="at least one run directory"):
        write_report([])
    good = make_run(tmp_path, "good")
    with pytest.raises(ReportError, match="given twice"):
        write_report([good, good], out_dir=tmp_path / "cmp")


def test_runs_with_different_objectives_or_no_out_dir_cannot_be_overlaid(tmp_path: Path) -> None:
    a = make_run(tmp_path, "two")
    b = make_run(tmp_path, "three", objectives=("error", "latency_ms", "params"))
    with pytest.raises(ReportError, match="--out DIR"):
        write_report([a, b])
    with pytest.raises(
        ReportError, match=r"same objectives.*two.*error \(minimize\), latency_ms \(minimize\);"
    ):
        write_report([a, b], out_dir=tmp_path / "cmp")


def test_a_run_without_energy_per_epoch_or_stopped_early_says_so(tmp_path: Path) -> None:
    stopped = {**SUSTAINABILITY, "training": {**SUSTAINABILITY["training"], "completed_epochs": None}}
    page = write_report([make_run(tmp_path, "stopped", sustainability=stopped)]).html.read_text()
    assert "stopped by a budget" in section(page, "Without weight sharing (estimate)")
    no_macs = {**SUSTAINABILITY, "training": {"epochs": 4, "energy_kwh": 0.004}}
    page = write_report([make_run(tmp_path, "no-macs", sustainability=no_macs)]).html.read_text()
    scratch = section(page, "Without weight sharing (estimate)")
    assert "macs_per_step_sample" in scratch and "E_scratch" not in scratch
    assert "measured-rapl" in phase_row(page, "supernet_training")  # the rest of the energy is still shown


def test_unreadable_optional_files_are_noted_not_fatal(tmp_path: Path) -> None:
    run = make_run(tmp_path, "odd")
    (run / "sustainability.json").write_text("{not json")
    (run / "pareto.json").unlink()
    page = write_report([run]).html.read_text()
    assert "sustainability.json cannot be read" in page
    assert "pareto.json is missing" in page and not model_rows(page)
    assert "Final hypervolume" in page  # reference point then comes from study.db or the trials


def test_a_warning_of_the_search_is_shown_first_in_the_report(tmp_path):
    run = make_run(tmp_path, "warned")
    pareto = json.loads((run / "pareto.json").read_text())
    pareto["warnings"] = ["the supernet looks undertrained: its largest subnet has 65.0% validation error"]
    (run / "pareto.json").write_text(json.dumps(pareto))
    files = write_report([run])
    md = files.md.read_text()
    assert "Warning: The supernet looks undertrained" in md
