"""Tune an ordinary PyTorch training loop with hwnas's Bayesian multi-fidelity search.

Learning rate, batch size, weight decay and epochs of a small convolutional network on the 8x8 digits
images are tuned for two objectives: validation error (%) and the energy the training took (Wh, tracked by
codecarbon; an estimate on machines without RAPL or NVML, and labelled so). Fidelity is a share of the
epochs: the ``bayes`` strategy's successive-halving brackets train most configurations for a few epochs and
only the promising ones for all of them. At the end: the Pareto front, the importance of each
hyperparameter per objective, and where the study is stored, so a later run can warm-start from it.

    python examples/tune_hyperparameters.py                      # 40 trials, a minute or two on 2 cores
    python examples/tune_hyperparameters.py --trials 60 --warm-start runs/tune/study.db --out runs/tune2
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from nas import SearchTracker, load_digits, param_importance
from search import (
    BayesStrategy,
    Choice,
    Float,
    Integer,
    Objective,
    Space,
    SQLiteStorage,
    Study,
    Trial,
    TrialState,
)

SPACE = Space(
    {
        "lr": Float(1e-3, 0.5, log=True),
        "batch_size": Choice([16, 32, 64, 128]),
        "weight_decay": Float(1e-6, 1e-2, log=True),
        "epochs": Integer(2, 24),
    }
)


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def train_and_score(params: dict, fidelity: float, data, seed: int) -> float:
    """Trains for ``fidelity x epochs`` epochs (at least one) and returns the validation error in %."""
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.SGD(
        model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"], nesterov=True
    )
    epochs = max(1, round(fidelity * params["epochs"]))
    x, y = data.train.tensors
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), params["batch_size"]):
            idx = order[i : i + params["batch_size"]]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    vx, vy = data.val.tensors
    with torch.no_grad():
        wrong = (model(vx).argmax(1) != vy).float().mean().item()
    return 100.0 * wrong


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("runs/tune"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--min-fidelity", type=float, default=1 / 9, help="lowest share of the epochs (1: no brackets)"
    )
    p.add_argument(
        "--warm-start", type=Path, help="study.db of an earlier tuning run: its best trials go first"
    )
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    data = load_digits(seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "study.db").exists():
        print(f"{args.out}/study.db exists; choose another --out", file=sys.stderr)
        return 2
    tracker = SearchTracker(args.out, project="tune")
    tracker.start()
    study = Study(
        space=SPACE,
        objectives=[Objective("error", unit="%"), Objective("train_energy_wh", unit="Wh")],
        strategy=BayesStrategy(min_fidelity=args.min_fidelity, eta=3, n_initial=8, seed=args.seed),
        storage=SQLiteStorage(args.out / "study.db"),
    )
    if args.warm_start:  # a person's (or an earlier run's) best candidates are evaluated first
        earlier = SQLiteStorage(args.warm_start)
        best = sorted(
            (t for t in earlier.trials() if t.state is TrialState.COMPLETE and t.fidelity >= 1.0),
            key=lambda t: t.metrics["error"],
        )[:3]
        for t in best:
            study.enqueue(dict(t.params))
        print(f"warm start: {len(best)} configurations from {args.warm_start}")

    def objective(trial: Trial) -> dict[str, float]:
        before = tracker.energy_kwh
        t0 = time.perf_counter()
        with tracker.phase("candidate_evaluation"):
            error = train_and_score(dict(trial.params), trial.fidelity, data, args.seed)
        return {
            "error": error,
            "train_energy_wh": (tracker.energy_kwh - before) * 1000.0,
            "train_s": time.perf_counter() - t0,
        }

    def progress(study: Study, trial: Trial) -> None:
        full = [t for t in study.trials if t.state is TrialState.COMPLETE and t.fidelity >= 1.0]
        best = min((t.metrics["error"] for t in full), default=math.nan)
        print(
            f"trial {trial.number:>3}  fidelity {trial.fidelity:.2f}  error {trial.metrics.get('error', math.nan):6.2f}%"
            f"  best at full fidelity {best:6.2f}%  spent {tracker.energy_kwh * 1000:.3f} Wh ({tracker.method})",
            flush=True,
        )

    study.optimize(objective, n_trials=args.trials, callbacks=[progress])
    tracker.stop()

    print(f"\nPareto front (validation error, training energy; energy {tracker.method}):")
    for t in sorted(study.best_trials, key=lambda t: t.values or ()):
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        print(f"  error {t.metrics['error']:5.2f}%  {t.metrics['train_energy_wh']:.4f} Wh  {shown}")
    full = [t for t in study.trials if t.state is TrialState.COMPLETE and t.fidelity >= 1.0]
    for name in ("error", "train_energy_wh"):
        try:
            imp = param_importance(full, name, space=SPACE)
        except ValueError as e:
            print(f"importance for {name}: {e}")
            continue
        print(f"importance for {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items()))
    print(f"\nstudy: {args.out / 'study.db'}; emissions: {args.out / 'emissions.csv'}")
    study.storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
