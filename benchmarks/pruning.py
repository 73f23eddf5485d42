"""Multi-objective pruning: hypervolume against evaluation cost on a learning-curve table.

Does promoting non-dominated configurations through Hyperband brackets (``bayes`` with ``min_fidelity < 1``)
find a better front for the same training cost than ``bayes`` without brackets, random search and Optuna's
multi-objective TPE?

**The table** (``benchmarks/data/lcurve_digits.csv``, with ``lcurve_digits.json`` beside it: how it was
built). A real training problem with its real learning curves: a fully connected network (ReLU, dropout
after each hidden layer) trained with Adam (constant learning rate, L2 weight decay, cross-entropy) on
scikit-learn's digits (8x8 images scaled to [0, 1]; a stratified split of 60 % training, 1,078 images, and
40 % validation, 719 images, ``random_state=0``), for every point of a grid of six hyperparameters:

- ``lr``: 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2;
- ``width`` (units per hidden layer): 16, 32, 64, 128, 256;
- ``depth`` (hidden layers): 1, 2, 3;
- ``batch_size``: 32, 128;
- ``weight_decay``: 0, 1e-3;
- ``dropout``: 0, 0.3.

That is 720 configurations, each trained once (seed = its row number, one torch thread) for ``E = 27``
epochs, recording the number of misclassified validation images after every epoch (columns ``e1`` ..
``e27``), the network's parameter count (``params``) and the training time (``train_s``). The learning
rate is constant, so the row's error after ``e`` epochs is exactly what a run of ``e`` epochs gives.

**The problem.** Objectives, both minimised: validation error (%) after ``round(f * E)`` epochs at fidelity
``f``, and the parameter count (independent of epochs). Cost is counted two ways. *Charged*: an evaluation
at fidelity ``f`` costs ``f * E`` epochs, a promoted configuration training again from the start (the
primary figure). *Resumed*: a promotion continues from its lower rung's checkpoint and pays only the
further epochs (exact with this table: the learning rate is constant and a row is one continuous run).
Cost levels are in full-evaluation equivalents: ``C`` means ``C * E`` epochs. The true front is the
non-dominated set of the table at ``E`` epochs; the hypervolume (pymoo's ``HV``) of a run at cost ``C`` is
that of the non-dominated set of its **full-fidelity** evaluations finished within ``C * E`` epochs (a
low-fidelity error is not a result), with the reference point at the true front's nadir plus 10 % of its
range (as in ``strategies.py`` and ``nb201.py``); regret is ``1 - HV / HV(true front)``.

**Strategies**, each seeded, driven one trial at a time through ask/tell until its cost reaches the
largest level (counted resumed, which is at most the charged count):
``bayes[min_fidelity=0.1111111111111111]`` (brackets of 9 configurations at 3 epochs, 3 at 9, 1 at 27; of 5
at 9 and 1 at 27; of 3 at 27, as in BOHB), ``bayes[min_fidelity=0.037037037037037035]`` (one more rung, at
1 epoch), the same two with ``n_initial=1000000`` (every new configuration a uniform draw: Hyperband over
random configurations, the promotion without the model), ``bayes`` (``min_fidelity=1``: no brackets, every
trial at 27 epochs), ``random`` (full fidelity) and Optuna's ``TPESampler(multivariate=True)``
(``optuna-tpe``, full fidelity: Optuna's pruners work through ``Trial.report`` / ``should_prune``, which
raise ``NotImplementedError`` in a multi-objective study; the script checks that this still holds at every
start and records the message). A configuration pruned at a low rung is never proposed again by ``bayes``
(it proposes no configuration twice), so the front counts below show what pruning cost.
One process runs everything, one run after another.

Figures, per cost level (10, 25, 50, 100 full evaluations) and way of counting, over ``--seeds`` seeds
(default 10): regret in % (median [Q1, Q3]); full-fidelity evaluations and all evaluations (medians); how
many of the true front's configurations were trained to the end, and how many were proposed but pruned; the
measured training time the evaluations took (the table's seconds); and a one-sided Mann-Whitney U p-value
(scipy) that each bracketed strategy has a higher hypervolume than each strategy without brackets. The
report also gives the Kendall tau between the error after 1, 3 and 9 epochs and after 27, over the whole
table and over its 100 best configurations: how well the low rungs order what full training gives.

    nice -n 10 .venv/bin/python benchmarks/pruning.py [--quick] [--out benchmarks/out] [--seeds N]
        [--levels C ...] [--strategies S ...] [--data CSV] [--rebuild] [--tag T]
    .venv/bin/python benchmarks/pruning.py --report benchmarks/out/pruning.json   # re-print a report

The table is built when missing (``--rebuild`` forces it): about 8 minutes on a shared 2-core machine; the
searches take about 3 more.
``--quick`` builds a tiny table of 8 configurations at 9 epochs in ``--out`` and runs 2 seeds; its figures
mean nothing.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import itertools
import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _driving as sb
from nb201 import _fmt  # median [Q1, Q3] in %

from search import Choice, Objective, Space, Study, non_dominated_mask

NAME = "pruning"
DATA = Path(__file__).resolve().parent / "data" / "lcurve_digits.csv"
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
PARAMS = ("lr", "width", "depth", "batch_size", "weight_decay", "dropout")
GRID: dict[str, tuple[float | int, ...]] = {
    "lr": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "width": (16, 32, 64, 128, 256),
    "depth": (1, 2, 3),
    "batch_size": (32, 128),
    "weight_decay": (0.0, 1e-3),
    "dropout": (0.0, 0.3),
}
EPOCHS = 27
QUICK_GRID: dict[str, tuple[float | int, ...]] = {
    "lr": (1e-3, 1e-2),
    "width": (16, 64),
    "depth": (1, 2),
    "batch_size": (128,),
    "weight_decay": (0.0,),
    "dropout": (0.0,),
}
QUICK_EPOCHS = 9
LEVELS = (10, 25, 50, 100)
QUICK_LEVELS = (5, 10)
STRATEGIES = (
    "bayes[min_fidelity=0.1111111111111111]",
    "bayes[min_fidelity=0.037037037037037035]",
    "bayes[min_fidelity=0.1111111111111111,n_initial=1000000]",
    "bayes[min_fidelity=0.037037037037037035,n_initial=1000000]",
    "bayes",
    "random",
    "optuna-tpe",
)
QUICK_STRATEGIES = (
    "bayes[min_fidelity=0.1111111111111111]",
    "bayes[min_fidelity=0.1111111111111111,n_initial=1000000]",
    "bayes",
    "random",
    "optuna-tpe",
)
OBJECTIVES = ("error", "params")


# -- the table --------------------------------------------------------------------------------------------


def digits_split() -> tuple[Any, Any, Any, Any]:
    """Digits scaled to [0, 1], stratified 60/40 split (``random_state=0``), as float32 / int64 tensors."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(X / 16.0, y, test_size=0.4, stratify=y, random_state=0)
    return (
        torch.tensor(xtr, dtype=torch.float32),
        torch.tensor(ytr, dtype=torch.int64),
        torch.tensor(xva, dtype=torch.float32),
        torch.tensor(yva, dtype=torch.int64),
    )


def param_count(width: int, depth: int, inputs: int = 64, classes: int = 10) -> int:
    return (inputs + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes


def train_curve(config: Mapping[str, Any], epochs: int, seed: int, data: tuple[Any, ...]) -> list[int]:
    """Misclassified validation images after each epoch of one training run."""
    import torch
    from torch import nn

    xtr, ytr, xva, yva = data
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    fan_in = xtr.shape[1]
    for _ in range(int(config["depth"])):
        layers += [nn.Linear(fan_in, int(config["width"])), nn.ReLU(), nn.Dropout(float(config["dropout"]))]
        fan_in = int(config["width"])
    layers.append(nn.Linear(fan_in, 10))
    model = nn.Sequential(*layers)
    assert sum(p.numel() for p in model.parameters()) == param_count(
        int(config["width"]), int(config["depth"])
    )
    opt = torch.optim.Adam(
        model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"])
    )
    bs, n = int(config["batch_size"]), len(xtr)
    wrong: list[int] = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            wrong.append(int((model(xva).argmax(1) != yva).sum()))
    return wrong


def build_table(path: Path, grid: Mapping[str, Sequence[Any]], epochs: int) -> None:
    """Trains every configuration of ``grid`` and writes the learning-curve table and its description."""
    import torch

    torch.set_num_threads(1)
    data = digits_split()
    configs = [dict(zip(PARAMS, values)) for values in itertools.product(*(grid[p] for p in PARAMS))]
    info = sb.header()
    info["machine"]["torch"] = torch.__version__
    info["machine"]["torch_threads"] = torch.get_num_threads()
    started = time.perf_counter()
    rows = []
    for i, config in enumerate(configs):
        t0 = time.perf_counter()
        wrong = train_curve(config, epochs, seed=i, data=data)
        seconds = time.perf_counter() - t0
        rows.append(
            [
                *(config[p] for p in PARAMS),
                param_count(config["width"], config["depth"]),
                f"{seconds:.3f}",
                *wrong,
            ]
        )
        if (i + 1) % 20 == 0 or i + 1 == len(configs):
            sb.log(f"table: {i + 1}/{len(configs)} configurations, {time.perf_counter() - started:.0f}s")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*PARAMS, "params", "train_s", *(f"e{e + 1}" for e in range(epochs))])
        w.writerows(rows)
    os.replace(tmp, path)
    meta = {
        **info,
        "description": "learning curves of an MLP trained with Adam on scikit-learn's digits, one row per "
        "configuration of the grid: misclassified validation images after every epoch",
        "grid": {p: list(grid[p]) for p in PARAMS},
        "epochs": epochs,
        "train_images": len(data[0]),
        "validation_images": len(data[2]),
        "split": "sklearn.model_selection.train_test_split(test_size=0.4, stratify=y, random_state=0), X / 16",
        "seed": "row number (torch.manual_seed and the shuffling generator)",
        "seconds": round(time.perf_counter() - started, 1),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


@dataclass(frozen=True)
class Table:
    space: Space
    epochs: int
    validation_images: int
    index: dict[tuple[Any, ...], int]
    error: np.ndarray  # rows x epochs, in %
    params: np.ndarray  # rows
    train_s: np.ndarray  # rows

    def row(self, params: Mapping[str, Any]) -> int:
        return self.index[tuple(params[p] for p in PARAMS)]

    def values(self, params: Mapping[str, Any], epochs: int) -> tuple[float, float]:
        r = self.row(params)
        return float(self.error[r, epochs - 1]), float(self.params[r])


def load_table(path: Path) -> Table:
    meta = json.loads(path.with_suffix(".json").read_text())
    grid = meta["grid"]
    epochs = int(meta["epochs"])
    n_val = int(meta["validation_images"])
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cast = {p: type(grid[p][0]) for p in PARAMS}
    keys = [tuple(cast[p](r[p]) if cast[p] is int else float(r[p]) for p in PARAMS) for r in rows]
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(rows) or len(rows) != int(np.prod([len(grid[p]) for p in PARAMS])):
        raise SystemExit(f"{path}: {len(rows)} rows, {len(index)} distinct, not the whole grid")
    wrong = np.array([[int(r[f"e{e + 1}"]) for e in range(epochs)] for r in rows], dtype=float)
    space = Space({p: Choice(list(grid[p])) for p in PARAMS})
    return Table(
        space,
        epochs,
        n_val,
        index,
        100.0 * wrong / n_val,
        np.array([float(r["params"]) for r in rows]),
        np.array([float(r["train_s"]) for r in rows]),
    )


def table_path(args: argparse.Namespace) -> Path:
    if args.data is not None:
        return Path(args.data)
    return args.out / "cache" / "lcurve_digits-quick.csv" if args.quick else DATA


def front_rows(table: Table) -> list[int]:
    """Rows of the table on its true front (configurations that tie on a front point are all there)."""
    F = np.column_stack([table.error[:, -1], table.params])
    return [int(i) for i in np.flatnonzero(non_dominated_mask(F))]


def fidelity_ranking(table: Table, epochs: Sequence[int], best: int = 100) -> dict[str, dict[str, float]]:
    """Kendall tau between the error after ``e`` epochs and after the last, over all rows and over the
    ``best`` rows at the last epoch: how well a low rung orders what the full training gives."""
    from scipy.stats import kendalltau

    top = np.argsort(table.error[:, -1], kind="stable")[:best]
    return {
        str(e): {
            "all": float(kendalltau(table.error[:, e - 1], table.error[:, -1])[0]),
            f"best_{best}": float(kendalltau(table.error[top, e - 1], table.error[top, -1])[0]),
        }
        for e in epochs
    }


def true_front(table: Table) -> np.ndarray:
    F = np.column_stack([table.error[:, -1], table.params])
    front = F[non_dominated_mask(F)]
    return np.unique(front, axis=0)


def hv(F: np.ndarray, reference: Sequence[float]) -> float:
    """pymoo's hypervolume of the non-dominated points of ``F`` that dominate the reference."""
    from pymoo.indicators.hv import HV

    if len(F) == 0:
        return 0.0
    F = F[np.all(F < np.asarray(reference), axis=1)]
    return float(HV(ref_point=np.asarray(reference, dtype=float))(F)) if len(F) else 0.0


def optuna_cannot_prune() -> str:
    """The message Optuna gives when a multi-objective trial reports an intermediate value."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], pruner=optuna.pruners.MedianPruner())
    trial = study.ask()
    try:
        trial.report(1.0, step=1)
    except NotImplementedError as e:
        report = f"Trial.report: NotImplementedError: {e}"
    else:
        raise SystemExit("Optuna accepted Trial.report in a multi-objective study: update this benchmark")
    try:
        trial.should_prune()
    except NotImplementedError as e:
        return f"{report}; Trial.should_prune: NotImplementedError: {e}"
    raise SystemExit("Optuna accepted Trial.should_prune in a multi-objective study: update this benchmark")


# -- one run ------------------------------------------------------------------------------------------------

COSTS = ("charged", "resumed")


def drive(table: Table, strategy: str, seed: int, max_cost: int) -> dict[str, Any]:
    """Runs ``strategy`` until it has spent ``max_cost`` epochs, counted as if promotions resumed.

    Returns, per evaluation in order: the epochs it trained (``epochs``: its cost when every evaluation
    trains from the start), the epochs beyond the configuration's previous rung in its bracket (``new``: its
    cost when a promotion resumes the lower rung's checkpoint), the objective values and the table row.
    Counted as resumed, a run spends at most what it spends counted in full, so it reaches ``max_cost`` both
    ways.
    """
    epochs_run: list[int] = []
    new_epochs: list[int] = []
    values: list[tuple[float, float]] = []
    rows: list[int] = []
    overhead: list[float] = []
    status = "ok"
    cost = 0
    started = time.perf_counter()
    E = table.epochs
    if strategy.startswith("optuna-"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        dists = sb.optuna_space(table.space)
        fixed = {n: d for n, (d, _) in dists.items()}
        ostudy = optuna.create_study(directions=["minimize"] * 2, sampler=sb.optuna_sampler(strategy, seed))
        while cost < max_cost:
            t0 = time.perf_counter()
            trial = ostudy.ask(fixed)
            params = {n: dec(trial.params[n]) for n, (_, dec) in dists.items()}
            t1 = time.perf_counter()
            v = table.values(params, E)
            t2 = time.perf_counter()
            ostudy.tell(trial, list(v))
            overhead.append((t1 - t0) + time.perf_counter() - t2)
            epochs_run.append(E)
            new_epochs.append(E)
            values.append(v)
            rows.append(table.row(params))
            cost += E
    else:
        study = Study(
            space=table.space,
            objectives=[Objective(n, "minimize") for n in OBJECTIVES],
            strategy=sb.make(strategy, table.space, seed, max_cost // E),
        )
        trained: dict[tuple[Any, Any], int] = {}  # (bracket, config) -> epochs of its last rung
        try:
            while cost < max_cost:
                t0 = time.perf_counter()
                trial = study.ask()
                t1 = time.perf_counter()
                if trial is None:
                    status = f"proposed nothing with no trial pending, after {len(values)} evaluations"
                    break
                e = round(trial.fidelity * E)
                if not 1 <= e <= E or abs(e - trial.fidelity * E) > 1e-6:
                    raise ValueError(f"fidelity {trial.fidelity} is not a whole number of the {E} epochs")
                v = table.values(trial.params, e)
                t2 = time.perf_counter()
                study.tell(trial, dict(zip(OBJECTIVES, v)))
                overhead.append((t1 - t0) + time.perf_counter() - t2)
                key = (trial.attrs.get("bracket"), trial.attrs.get("config"))
                before = trained.get(key, 0) if key != (None, None) else 0
                if before:  # a promotion: same params as the lower rung
                    assert e > before, (key, e, before)
                trained[key] = e
                epochs_run.append(e)
                new_epochs.append(e - before)
                values.append(v)
                rows.append(table.row(trial.params))
                cost += e - before
        except Exception as e:  # noqa: BLE001 - reported, never fatal to the benchmark
            status = f"error after {len(values)} evaluations: {sb._describe(e)}"
    return {
        "epochs": epochs_run,
        "new": new_epochs,
        "values": values,
        "rows": rows,
        "overhead_s": overhead,
        "status": status,
        "wall_s": time.perf_counter() - started,
    }


def summarise_run(
    table: Table,
    strategy: str,
    seed: int,
    run: Mapping[str, Any],
    levels: Sequence[int],
    reference: Sequence[float],
    true_hv: float,
    front: Sequence[int] = (),
) -> dict[str, Any]:
    E = table.epochs
    epochs = np.asarray(run["epochs"], dtype=int)
    full = epochs == E
    F = np.asarray(run["values"], dtype=float).reshape(-1, 2)
    out: dict[str, Any] = {"strategy": strategy, "seed": seed, "status": run["status"]}
    for kind, spent in zip(COSTS, (epochs, np.asarray(run["new"], dtype=int))):
        cum = np.cumsum(spent)
        fig: dict[str, Any] = {
            "reached": {},
            "hv": {},
            "regret": {},
            "full_evaluations": {},
            "evaluations": {},
        }
        fig["distinct_full"] = {}
        for c in levels:
            done = cum <= c * E
            key = str(c)
            fig["reached"][key] = bool(len(cum) and cum[-1] >= c * E)
            h = hv(F[done & full], reference)
            fig["hv"][key] = h
            fig["regret"][key] = 1.0 - h / true_hv
            fig["full_evaluations"][key] = int((done & full).sum())
            fig["evaluations"][key] = int(done.sum())
            fig["distinct_full"][key] = len({r for r, d, f in zip(run["rows"], done, full) if d and f})
        top = max(levels) * E
        reached: dict[int, int] = {}
        for r, e, c in zip(run["rows"], epochs, cum):
            if c <= top and r in front:
                reached[r] = max(reached.get(r, 0), int(e))
        # true-front configurations evaluated at full fidelity, and proposed but never trained to the end
        fig["front_full"] = sum(e == E for e in reached.values())
        fig["front_pruned"] = sum(e < E for e in reached.values())
        fig["epochs_total"] = int(cum[-1]) if len(cum) else 0
        out[kind] = fig
    out["fidelities"] = {str(e): int(n) for e, n in zip(*np.unique(epochs, return_counts=True))}
    out["overhead_mean_ms"] = 1e3 * float(np.mean(run["overhead_s"])) if run["overhead_s"] else None
    out["overhead_total_s"] = float(np.sum(run["overhead_s"]))
    out["wall_s"] = run["wall_s"]
    # what the evaluations within the largest level took in measured training time (the table's seconds,
    # prorated by epochs)
    out["train_s_total"] = {}
    for kind, field in zip(COSTS, ("epochs", "new")):
        spent = np.asarray(run[field], dtype=int)
        within = np.cumsum(spent) <= max(levels) * E
        out["train_s_total"][kind] = float(
            sum(table.train_s[r] * e / E for r, e, w in zip(run["rows"], spent, within) if w)
        )
    return out


# -- summary and report ----------------------------------------------------------------------------------


def bracketed(strategy: str) -> bool:
    name, options = sb.parse_variant(strategy)
    return name == "bayes" and float(options.get("min_fidelity", 1.0)) < 1.0


def label(strategy: str) -> str:
    name, options = sb.parse_variant(strategy)
    random_configs = int(options.get("n_initial", 10)) >= 100_000
    if "min_fidelity" in options:
        f = f"min_fidelity=1/{round(1 / float(options['min_fidelity']))}"
        return f"Hyperband, random configurations, {f}" if random_configs else f"{name}, {f}"
    if name == "bayes":
        return "bayes, min_fidelity=1 (no brackets)"
    return name


def summarise(
    runs: Sequence[Mapping[str, Any]], strategies: Sequence[str], levels: Sequence[int]
) -> dict[str, Any]:
    from scipy.stats import mannwhitneyu

    summary: dict[str, Any] = {}
    top = str(max(levels))
    for kind in COSTS:
        summary[kind] = {}
        for s in strategies:
            mine = [r[kind] for r in runs if r["strategy"] == s]
            entry: dict[str, Any] = {"regret": {}, "full_evaluations": {}, "evaluations": {}}
            for c in levels:
                key = str(c)
                here = [r for r in mine if r["reached"][key]]
                entry["regret"][key] = sb.quartiles([r["regret"][key] for r in here]) if here else None
                for field in ("full_evaluations", "evaluations"):
                    entry[field][key] = float(np.median([r[field][key] for r in here])) if here else None
            reached = [r for r in mine if r["reached"][top]]
            entry["front_full"] = float(np.median([r["front_full"] for r in mine]))
            entry["front_pruned"] = float(np.median([r["front_pruned"] for r in mine]))
            entry["distinct_full"] = (
                float(np.median([r["distinct_full"][top] for r in reached])) if reached else None
            )
            summary[kind][s] = entry
    for s in strategies:
        mine = [r for r in runs if r["strategy"] == s]
        summary.setdefault("statuses", {})[s] = sorted({r["status"] for r in mine})
        summary.setdefault("overhead_mean_ms", {})[s] = float(
            np.median([r["overhead_mean_ms"] for r in mine if r["overhead_mean_ms"]])
        )
        summary.setdefault("train_s_total", {})[s] = {
            kind: float(np.median([r["train_s_total"][kind] for r in mine])) for kind in COSTS
        }
    tests: dict[str, Any] = {}
    for s in strategies:
        if not bracketed(s):
            continue
        for t in strategies:
            if bracketed(t):
                continue
            row: dict[str, Any] = {}
            for kind in COSTS:
                row[kind] = {}
                for c in levels:
                    key = str(c)
                    x = [r[kind]["hv"][key] for r in runs if r["strategy"] == s and r[kind]["reached"][key]]
                    y = [r[kind]["hv"][key] for r in runs if r["strategy"] == t and r[kind]["reached"][key]]
                    row[kind][key] = (
                        float(mannwhitneyu(x, y, alternative="greater").pvalue)
                        if len(x) > 1 and len(y) > 1
                        else None
                    )
            tests[f"{s} > {t}"] = {"better": s, "other": t, "p": row}
    summary["p_higher_hv"] = tests
    return summary


def _pfmt(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def report(payload: Mapping[str, Any], path: Path) -> str:
    levels = payload["levels"]
    summary = payload["summary"]
    t = payload["table"]
    quick = " (quick)" if payload["quick"] else ""
    lines = [f"## Multi-objective pruning: hypervolume against evaluation cost{quick}\n"]
    lines.append(f"- command: `{payload['command']}`")
    lines.append(f"- date: {payload['date']}")
    lines.append(f"- machine: {payload['machine_line']}")
    lines.append(
        f"- table: {t['path']} ({t['rows']} configurations x {t['epochs']} epochs, {t['validation_images']} "
        f"validation images; built in {t['build_seconds']} s); true front {t['front_size']} points "
        f"({'; '.join(f'{e:.2f} % at {n:.0f} params' for e, n in t['front'])}), reference "
        f"({', '.join(f'{v:.4g}' for v in t['reference'])}), true HV {t['true_hv']:.6g}"
    )
    lines.append(
        "- true-front configurations: "
        + "; ".join(", ".join(f"{k}={v:g}" for k, v in c.items() if k != "row") for c in t["front_configs"])
    )
    lines.append(
        "- Kendall tau of the error after e epochs against the error after the last, all configurations / "
        "the 100 best at the last epoch: "
        + "; ".join(f"e={e}: {v['all']:.3f} / {v['best_100']:.3f}" for e, v in t["fidelity_ranking"].items())
    )
    lines.append(f"- seeds: {len(payload['seeds'])}; cost levels in full evaluations of {t['epochs']} epochs")
    lines.append(f"- Optuna: {payload['optuna_pruning']}")
    titles = {
        "charged": "every evaluation trains from the start (a promotion pays its full epochs)",
        "resumed": "a promotion resumes its lower rung's checkpoint (pays only the further epochs)",
    }
    for kind in COSTS:
        lines.append(f"\n### Cost: {titles[kind]}\n")
        lines.append(
            "Regret in % (100 x (1 - HV / HV true)) of the full-fidelity evaluations finished within the cost, "
            "median [Q1, Q3] over seeds; `full/all`: median full-fidelity evaluations / all evaluations; "
            "`distinct full`: median distinct configurations among the full-fidelity evaluations; `front full / "
            f"pruned`: median number of the {len(t['front_rows'])} true-front configurations evaluated at full "
            "fidelity / proposed but pruned before it; `train s`: "
            f"median measured training time of the evaluations within {max(levels)} full evaluations (the table's "
            "seconds prorated by epochs); `ask+tell ms`: median over seeds of the mean per trial.\n"
        )
        rows = []
        for s in payload["strategies"]:
            e = summary[kind][s]
            row = [label(s)]
            row += [_fmt(e["regret"][str(c)]) for c in levels]
            for c in levels:
                fe, ev = e["full_evaluations"][str(c)], e["evaluations"][str(c)]
                row.append("n/a" if fe is None else f"{fe:.0f}/{ev:.0f}")
            row.append("n/a" if e["distinct_full"] is None else f"{e['distinct_full']:.0f}")
            row.append(f"{e['front_full']:g} / {e['front_pruned']:g}")
            row.append(f"{summary['train_s_total'][s][kind]:.0f}")
            row.append(f"{summary['overhead_mean_ms'][s]:.0f}")
            row.append("; ".join(st[:80] for st in summary["statuses"][s] if st != "ok"))
            rows.append(row)
        top = max(levels)
        lines.append(
            sb.table(
                [
                    "strategy",
                    *[f"regret % @{c}" for c in levels],
                    *[f"full/all @{c}" for c in levels],
                    f"distinct full @{top}",
                    f"front full / pruned @{top}",
                    "train s",
                    "ask+tell ms",
                    "note",
                ],
                rows,
            )
        )
    lines.append(
        "\nOne-sided Mann-Whitney U p-value that the bracketed strategy reaches a higher hypervolume than the "
        "other, cost charged in full / cost with resumed promotions:\n"
    )
    prow = []
    for test in summary["p_higher_hv"].values():
        cells = [
            f"{_pfmt(test['p']['charged'][str(c)])} / {_pfmt(test['p']['resumed'][str(c)])}" for c in levels
        ]
        prow.append([f"{label(test['better'])} > {label(test['other'])}", *cells])
    lines.append(sb.table(["comparison", *[f"p @{c}" for c in levels]], prow))
    lines.append(f"\nrun time: {payload['seconds']:.0f}s; figures in {path}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny table and 2 seeds: checks the script works")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON figures")
    p.add_argument("--data", type=Path, default=None, help=f"the table (default {DATA}; quick: in --out)")
    p.add_argument("--rebuild", action="store_true", help="train the table again even if it exists")
    p.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default 10, quick 2)")
    p.add_argument("--levels", type=int, nargs="+", default=None, help="cost levels in full evaluations")
    p.add_argument("--strategies", nargs="+", default=None, help="default: the five described above")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument(
        "--report", type=Path, default=None, help="only print the report of an earlier result file"
    )
    args = p.parse_args()
    if args.report is not None:
        payload = json.loads(args.report.read_text())
        payload["summary"] = summarise(payload["runs"], payload["strategies"], payload["levels"])
        print(report(payload, args.report))
        return
    info = sb.header()
    started = time.perf_counter()
    path = table_path(args)
    if args.rebuild or not path.is_file():
        sb.log(f"building the table {path}")
        build_table(path, QUICK_GRID if args.quick else GRID, QUICK_EPOCHS if args.quick else EPOCHS)
    table = load_table(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    front = true_front(table)
    reference = sb.reference_for(front)
    true_hv = hv(front, reference)
    rows_on_front = front_rows(table)
    E = table.epochs
    rungs = sorted({E // 27, E // 9, E // 3} - {0, E})
    ranking = fidelity_ranking(table, rungs)
    sb.log(
        f"table: {len(table.error)} rows, front {len(front)} points, reference {reference}, true HV {true_hv:.6g}"
    )
    levels = tuple(args.levels or (QUICK_LEVELS if args.quick else LEVELS))
    n_seeds = args.seeds or (2 if args.quick else 10)
    strategies = list(args.strategies or (QUICK_STRATEGIES if args.quick else STRATEGIES))
    optuna_note = optuna_cannot_prune()
    stem = f"{NAME}{'-quick' if args.quick else ''}{args.tag}"
    partial = args.out / f"{stem}.runs.jsonl"
    runs: list[dict[str, Any]] = []
    jobs = [(s, seed) for s in strategies for seed in range(n_seeds)]
    if partial.is_file():  # a rerun of the same command takes the runs already finished
        done = {}
        for line in partial.read_text().splitlines():
            r = json.loads(line)
            if (
                r["levels"] == list(levels)
                and r["table"] == str(path)
                and "front_full" in r.get("resumed", {})
            ):
                done[(r["strategy"], r["seed"])] = r
        runs = [done[j] for j in jobs if j in done]
        jobs = [j for j in jobs if j not in done]
        sb.log(f"{len(runs)} runs taken from {partial}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a") as sink:
        for i, (s, seed) in enumerate(jobs):
            run = drive(table, s, seed, max(levels) * table.epochs)
            r = summarise_run(table, s, seed, run, levels, reference, true_hv, rows_on_front)
            r |= {"levels": list(levels), "table": str(path), "load_average": list(os.getloadavg())}
            runs.append(r)
            sink.write(json.dumps(r) + "\n")
            sink.flush()
            top = str(max(levels))
            sb.log(
                f"[{i + 1}/{len(jobs)}] {s} seed {seed}: regret@{top} {r['charged']['regret'][top]:.4f} "
                f"(resumed {r['resumed']['regret'][top]:.4f}), {r['charged']['evaluations'][top]} evaluations "
                f"({r['charged']['full_evaluations'][top]} full), {r['wall_s']:.1f}s, "
                f"load {os.getloadavg()[0]:.1f}, {r['status'][:80]}"
            )
    runs.sort(key=lambda r: (strategies.index(r["strategy"]), r["seed"]))
    payload = {
        "benchmark": NAME,
        "command": info["command"],
        "date": info["date"],
        "machine": info["machine"],
        "machine_line": sb.machine_line(info),
        "quick": args.quick,
        "levels": list(levels),
        "seeds": list(range(n_seeds)),
        "strategies": strategies,
        "optuna_pruning": optuna_note,
        "table": {
            "path": str(path),
            "rows": len(table.error),
            "epochs": table.epochs,
            "validation_images": table.validation_images,
            "build_seconds": meta.get("seconds"),
            "front": front.tolist(),
            "front_size": len(front),
            "front_rows": rows_on_front,
            "front_configs": [
                {**dict(zip(PARAMS, k)), "row": i} for k, i in table.index.items() if i in rows_on_front
            ],
            "fidelity_ranking": ranking,
            "reference": list(reference),
            "true_hv": true_hv,
        },
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    payload["summary"] = summarise(runs, strategies, levels)
    out = sb.write_json(args.out / f"{stem}.json", payload)
    print(report(payload, out))


if __name__ == "__main__":
    main()
