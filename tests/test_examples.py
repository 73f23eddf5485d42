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


def test_hyperparameter_tuning_example_runs_brackets_and_warm_starts(tmp_path, capsys):
    import importlib.util

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
    assert "Pareto front" in out and "estimated" in out

    assert (
        module.main(
            ["--trials", "3", "--out", str(tmp_path / "b"), "--warm-start", str(tmp_path / "a" / "study.db")]
        )
        == 0
    )
    best = sorted((t for t in trials if t.fidelity >= 1.0), key=lambda t: t.metrics["error"])[:3]
    warm = SQLiteStorage(tmp_path / "b" / "study.db").trials()
    assert [dict(t.params) for t in warm[: len(best)]] == [dict(t.params) for t in best]
