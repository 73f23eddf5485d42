"""Driving hwnas strategies and Optuna samplers on a problem with a known front, one trial at a time.

Shared by ``strategies.py`` and ``nb201.py``. Needs numpy, ``search`` and (for Optuna's samplers) optuna,
never torch or ``nas``, so that the table benchmarks run where those are absent or being changed.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import search
from search import (
    Choice,
    Float,
    Integer,
    Objective,
    Space,
    StrategyExhausted,
    Study,
    hypervolume,
    non_dominated_mask,
)

REFERENCE_MARGIN = 0.1  # reference point: nadir of the true front + 10 % of its range


@dataclass(frozen=True)
class Problem:
    """A benchmark problem with a known true front.

    Attributes:
        name: short name.
        description: one line for the report.
        space: what the strategies search.
        objectives: objective names, all minimised.
        evaluate: params -> objective values.
        key: params -> a hashable identity of the point (the canonical arch for the tabular problem), to
            count distinct evaluations.
        front: the true front (``k x m``).
        front_note: how the true front was obtained.
        reference: the hypervolume reference point.
        true_hv: hypervolume of the true front.
        network: params -> the params of the network they compute, handed to hwnas studies (the
            ``network`` of :class:`search.Study`); ``None`` for none. Optuna's samplers have no such input.
        of_network: per objective, whether it is a property of the network (:attr:`search.Objective.of_network`).
    """

    name: str
    description: str
    space: Space
    objectives: tuple[str, ...]
    evaluate: Callable[[Mapping[str, Any]], tuple[float, ...]]
    key: Callable[[Mapping[str, Any]], Hashable]
    front: np.ndarray
    front_note: str
    reference: tuple[float, ...]
    true_hv: float
    network: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    of_network: tuple[bool, ...] | None = None


def reference_for(front: np.ndarray) -> tuple[float, ...]:
    lo, hi = front.min(axis=0), front.max(axis=0)
    return tuple(float(v) for v in hi + REFERENCE_MARGIN * (hi - lo))


# -- Optuna ---------------------------------------------------------------------------------------------


def optuna_space(space: Space) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    """Our space as Optuna distributions, each with a decoder of Optuna's value back to ours.

    A ``Choice`` of increasing numbers is given as the integer index of its value (ordinal, the encoding
    our strategies use too); any other ``Choice`` as a categorical distribution.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
    for name, p in space.items():
        if isinstance(p, Choice):
            vals = p.values
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
            if numeric and all(a < b for a, b in itertools.pairwise(vals)) and len(vals) > 1:
                out[name] = (IntDistribution(0, len(vals) - 1), lambda i, vals=vals: vals[int(i)])
            else:
                out[name] = (CategoricalDistribution(list(vals)), lambda v: v)
        elif isinstance(p, Integer):
            out[name] = (IntDistribution(p.low, p.high, step=p.step), int)
        elif isinstance(p, Float):
            out[name] = (FloatDistribution(p.low, p.high, log=p.log), float)
        else:
            raise TypeError(f"no Optuna distribution for {type(p).__name__}")
    return out


def optuna_sampler(name: str, seed: int) -> Any:
    """Optuna's sampler called ``name`` (``optuna-nsga2``, ``-tpe``, ``-random``, ``-gp``, ``-default``), seeded."""
    import optuna

    if name == "optuna-default":  # what optuna.create_study picks when no sampler is given (5.x: TPE)
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "optuna-nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed)
    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown Optuna sampler {name!r}")


# -- one run --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """What one run leaves: the values of every evaluation and the time of every step."""

    F: list[tuple[float, ...]]
    keys: list[Hashable]
    overhead_s: list[float]  # ask + tell of each trial
    objective_s: list[float]
    wall_s: float
    status: str
    low_fidelity: int = 0


def drive(problem: Problem, strategy: str, seed: int, n_trials: int) -> Trace:
    """Runs ``strategy`` (a key of ``search.STRATEGIES`` or of ``OPTUNA``) for ``n_trials`` evaluations."""
    F: list[tuple[float, ...]] = []
    keys: list[Hashable] = []
    overhead: list[float] = []
    objective: list[float] = []
    status = "ok"
    low = 0
    t_start = time.perf_counter()
    if strategy.startswith("optuna-"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        dists = optuna_space(problem.space)
        fixed = {n: d for n, (d, _) in dists.items()}
        ostudy = optuna.create_study(
            directions=["minimize"] * len(problem.objectives), sampler=optuna_sampler(strategy, seed)
        )
        try:
            for _ in range(n_trials):
                t0 = time.perf_counter()
                trial = ostudy.ask(fixed)
                params = {n: dec(trial.params[n]) for n, (_, dec) in dists.items()}
                t1 = time.perf_counter()
                values = problem.evaluate(params)
                t2 = time.perf_counter()
                ostudy.tell(trial, list(values))
                t3 = time.perf_counter()
                F.append(values)
                keys.append(problem.key(params))
                overhead.append((t1 - t0) + (t3 - t2))
                objective.append(t2 - t1)
        except Exception as e:  # noqa: BLE001 - reported, never fatal to the benchmark
            status = f"error after {len(F)} evaluations: {_describe(e)}"
    else:
        try:
            of_network = problem.of_network or (True,) * len(problem.objectives)
            study = Study(
                space=problem.space,
                objectives=[Objective(n, "minimize", of_network=o) for n, o in zip(problem.objectives, of_network)],
                strategy=make(strategy, problem.space, seed, n_trials),
                network=problem.network,
            )
        except ValueError as e:
            return Trace([], [], [], [], time.perf_counter() - t_start, f"refused: {e}")
        try:
            for _ in range(n_trials):
                t0 = time.perf_counter()
                trial = study.ask()
                t1 = time.perf_counter()
                if trial is None:
                    status = f"proposed nothing with no trial pending, after {len(F)} evaluations"
                    break
                if trial.fidelity < 1.0:
                    low += 1  # evaluated at full fidelity all the same, and counted as one evaluation
                values = problem.evaluate(trial.params)
                t2 = time.perf_counter()
                study.tell(trial, dict(zip(problem.objectives, values)))
                t3 = time.perf_counter()
                F.append(values)
                keys.append(problem.key(trial.params))
                overhead.append((t1 - t0) + (t3 - t2))
                objective.append(t2 - t1)
        except StrategyExhausted as e:
            status = f"exhausted after {len(F)} evaluations: {e}"
        except Exception as e:  # noqa: BLE001 - reported, never fatal to the benchmark
            status = f"error after {len(F)} evaluations: {_describe(e)}"
    return Trace(F, keys, overhead, objective, time.perf_counter() - t_start, status, low)


def make(strategy: str, space: Space, seed: int, budget: int) -> search.Strategy:
    """An hwnas strategy by name, with its defaults and ``seed`` (through ``search.make_strategy`` where
    the package has it, so that ``auto`` and ``optuna:NAME`` are covered too)."""
    name, options = parse_variant(strategy)
    factory = getattr(search, "make_strategy", None)
    if factory is not None:
        return factory(name, seed=seed, budget=budget, **options)  # type: ignore[no-any-return]
    return search.STRATEGIES[name](seed=seed, **options)  # type: ignore[call-arg]


def parse_variant(strategy: str) -> tuple[str, dict[str, Any]]:
    """``"bayes[scaling=minmax,n_initial=5]"`` -> ``("bayes", {"scaling": "minmax", "n_initial": 5})``:
    a strategy with options, for ablations (values read as JSON where they parse, else as strings)."""
    if not strategy.endswith("]") or "[" not in strategy:
        return strategy, {}
    name, _, rest = strategy[:-1].partition("[")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return name, options


def format_variant(name: str, options: Mapping[str, Any]) -> str:
    """The inverse of :func:`parse_variant`: ``("bayes", {"ehvi_many": True})`` -> ``"bayes[ehvi_many=true]"``."""
    if not options:
        return name
    return name + "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in options.items()) + "]"


def _describe(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {Path(tb[0].filename).name}:{tb[0].lineno})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def front_hv(F: np.ndarray, reference: Sequence[float]) -> float:
    if len(F) == 0:
        return 0.0
    return hypervolume(F[non_dominated_mask(F)], reference)


def summarise_run(
    problem: Problem, strategy: str, seed: int, trace: Trace, budgets: Sequence[int]
) -> dict[str, Any]:
    F = np.array(trace.F, dtype=float).reshape(-1, len(problem.objectives))
    hv, regret, distinct, mean_ms, window_ms = {}, {}, {}, {}, {}
    for b in budgets:
        k = min(b, len(F))
        h = front_hv(F[:k], problem.reference)
        hv[str(b)] = h
        regret[str(b)] = 1.0 - h / problem.true_hv
        distinct[str(b)] = len(set(trace.keys[:k]))
        if k:
            mean_ms[str(b)] = 1e3 * float(np.mean(trace.overhead_s[:k]))
            lo = max(0, k - max(1, k // 10))
            window_ms[str(b)] = 1e3 * float(np.mean(trace.overhead_s[lo:k]))
    return {
        "problem": problem.name,
        "strategy": strategy,
        "seed": seed,
        "status": trace.status,
        "evaluations": len(F),
        "low_fidelity_proposals": trace.low_fidelity,
        "hv": hv,
        "regret": regret,
        "distinct": distinct,
        "overhead_mean_ms": mean_ms,  # mean ask+tell over the first b trials
        "overhead_last10pct_ms": window_ms,  # mean ask+tell over trials (0.9 b, b]
        "overhead_max_ms": 1e3 * max(trace.overhead_s, default=0.0),
        "objective_s": float(sum(trace.objective_s)),
        "wall_s": trace.wall_s,
    }


def quartiles(values: Sequence[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": len(values)}


def cell(q: Mapping[str, float] | None, fmt: str = ".3g") -> str:
    if q is None:
        return "n/a"
    return f"{q['median']:{fmt}} [{q['q1']:{fmt}}, {q['q3']:{fmt}}]"


# -- the record every result file carries, without torch -----------------------------------------------


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the Markdown report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are shown as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path


def header() -> dict[str, Any]:
    """The exact command, the date (UTC) and the machine (CPU model, cores, load, library versions)."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    versions = {"numpy": np.__version__}
    try:
        import optuna
        import scipy

        versions |= {"optuna": optuna.__version__, "scipy": scipy.__version__}
    except ImportError:
        pass
    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    return {
        "command": shlex.join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu_model": model,
            "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "load_average_1_5_15min": load,
            "platform": platform.platform(),
            "python": platform.python_version(),
            **versions,
        },
    }


def machine_line(info: Mapping[str, Any]) -> str:
    m = info["machine"]
    libs = ", ".join(f"{k} {m[k]}" for k in ("numpy", "scipy", "optuna") if k in m)
    return f"{m['cpu_model']}, {m['usable_cores']} cores, {libs}, load average at start {m['load_average_1_5_15min']}"
