"""What the report computes from a run: hypervolume over trials and energy, the front over time, and the cost of training every front model from scratch."""


from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.report._load import Run, number, opt, submap
from nas.report._plots import (
    FrontSeries,
    HypervolumeCurve,
)
from nas.spaces._mobilenet import arch_key
from search import (
    Trial,
    TrialState,
    hypervolume,
    non_dominated_mask,
)

__all__ = ["FromScratchEstimate", "estimate_from_scratch"]


@dataclass(frozen=True)
class FromScratchEstimate:
    """What training every distinct evaluated arch from scratch would have cost, against the supernet.

    Each arch ``a`` is charged ``energy_kwh_per_epoch * epochs * macs(a) / macs_per_step_sample``: the
    measured energy of one supernet epoch, scaled by the arch's forward MACs relative to the MACs the
    supernet trains per sample per step (the sum over the subnets of the sandwich rule).

    Attributes:
        n_archs: distinct archs with known MACs that were evaluated.
        n_without_macs: distinct archs left out because their MACs were not recorded.
        epochs: training epochs, the same as the supernet's.
        energy_kwh_per_epoch: measured (or estimated) supernet energy per epoch.
        macs_per_step_sample: MACs of one forward pass summed over the subnets trained per sample per step.
        energy_kwh: total from-scratch training energy of the ``n_archs`` archs.
        supernet_energy_kwh: energy of training the supernet once.
        kg_per_kwh: emission intensity used for the CO2e figures (``None`` when not recorded).
    """

    n_archs: int
    n_without_macs: int
    epochs: int
    energy_kwh_per_epoch: float
    macs_per_step_sample: float
    energy_kwh: float
    supernet_energy_kwh: float
    kg_per_kwh: float | None = None

    @property
    def saved_kwh(self) -> float:
        """Energy the supernet saved: from-scratch training minus training the supernet once."""
        return self.energy_kwh - self.supernet_energy_kwh

    @property
    def ratio(self) -> float:
        """From-scratch training energy over supernet training energy (``inf`` for a free supernet)."""
        return self.energy_kwh / self.supernet_energy_kwh if self.supernet_energy_kwh > 0 else math.inf

    @property
    def emissions_kg(self) -> float | None:
        return None if self.kg_per_kwh is None else self.energy_kwh * self.kg_per_kwh

    @property
    def saved_kg(self) -> float | None:
        return None if self.kg_per_kwh is None else self.saved_kwh * self.kg_per_kwh


def estimate_from_scratch(
    trials: Sequence[Trial],
    *,
    epochs: int,
    energy_kwh_per_epoch: float,
    macs_per_step_sample: float,
    supernet_energy_kwh: float | None = None,
    kg_per_kwh: float | None = None,
) -> FromScratchEstimate:
    """Estimates the energy of training every distinct evaluated arch from scratch for ``epochs`` epochs.

    Archs are told apart by ``attrs["arch"]`` (the params when a trial has no arch); each counts once,
    with the ``macs`` metric of its first trial that reports one.

    Args:
        trials: trials of the search.
        epochs: epochs of the supernet training, used for every arch.
        energy_kwh_per_epoch: energy of one supernet training epoch (kWh).
        macs_per_step_sample: forward MACs summed over the subnets trained per sample per step.
        supernet_energy_kwh: energy of the whole supernet training; ``epochs * energy_kwh_per_epoch`` if None.
        kg_per_kwh: emission intensity (kg CO2e per kWh) for the CO2e figures, if known.

    Example:
        >>> from search import Trial, TrialState
        >>> trials = [Trial(i, {"w": w}, state=TrialState.COMPLETE, metrics={"macs": m})
        ...           for i, (w, m) in enumerate([(1, 100.0), (2, 300.0), (1, 100.0)])]
        >>> e = estimate_from_scratch(trials, epochs=10, energy_kwh_per_epoch=0.002, macs_per_step_sample=400.0)
        >>> e.n_archs, round(e.energy_kwh, 6), round(e.ratio, 3)
        (2, 0.02, 1.0)
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    if not (math.isfinite(energy_kwh_per_epoch) and energy_kwh_per_epoch >= 0):
        raise ValueError(f"energy_kwh_per_epoch must be a finite number >= 0, got {energy_kwh_per_epoch!r}")
    if not (math.isfinite(macs_per_step_sample) and macs_per_step_sample > 0):
        raise ValueError(f"macs_per_step_sample must be a finite number > 0, got {macs_per_step_sample!r}")
    macs: dict[str, float] = {}
    without: set[str] = set()
    for t in trials:
        if t.state is TrialState.RUNNING:
            continue
        key = arch_key(t.attrs.get("arch", t.params))
        value = t.metrics.get("macs")
        if number(value) and value >= 0:
            macs.setdefault(key, float(value))
        else:
            without.add(key)
    total = sum(energy_kwh_per_epoch * epochs * m / macs_per_step_sample for m in macs.values())
    supernet = epochs * energy_kwh_per_epoch if supernet_energy_kwh is None else float(supernet_energy_kwh)
    return FromScratchEstimate(
        n_archs=len(macs),
        n_without_macs=len(without - set(macs)),
        epochs=epochs,
        energy_kwh_per_epoch=float(energy_kwh_per_epoch),
        macs_per_step_sample=float(macs_per_step_sample),
        energy_kwh=float(total),
        supernet_energy_kwh=supernet,
        kg_per_kwh=kg_per_kwh,
    )


def _finish_order(run: Run) -> list[Trial]:
    done = [t for t in run.trials if t.state.finished]
    return sorted(done, key=lambda t: (t.finished_at if t.finished_at is not None else math.inf, t.number))


def hypervolume_curve(run: Run, reference: Sequence[float], name: str) -> tuple[HypervolumeCurve, int]:
    """Hypervolume after each finished trial; also the number of trials without a recorded energy."""
    signs = np.array([o.sign for o in run.objectives])
    ref = signs * np.asarray(reference, dtype=float)
    front = np.empty((0, len(ref)))
    hv, hvs, energy, missing = 0.0, [], [], 0
    spent = 0.0
    for t in _finish_order(run):
        e = t.attrs.get("energy_kwh")
        if number(e):
            spent += float(e)
        else:
            missing += 1
        energy.append(spent)
        # Lower-fidelity results are estimates of a multi-fidelity search, not points of the front.
        if t.state is TrialState.COMPLETE and t.violation == 0.0 and t.fidelity >= 1.0 and run._has_values(t):
            p = signs * np.array([float(t.metrics[n]) for n in run.names])
            if not np.any(np.all(front <= p, axis=1)):
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                hv = _hv(front, ref)
        hvs.append(hv)
    n = len(hvs)
    recorded = n > 0 and missing < n
    curve = HypervolumeCurve(
        name=name,
        trials=np.arange(1, n + 1),
        hypervolume=np.array(hvs),
        energy_kwh=np.array(energy) if recorded else None,
    )
    return curve, missing


def _hv(front: np.ndarray, ref: np.ndarray) -> float:
    if front.shape[1] == 1:
        return float(max(0.0, ref[0] - front[:, 0].min()))
    return hypervolume(front, ref)


def front_series(run: Run, name: str) -> FrontSeries:
    done = run.complete
    values = np.array([[float(t.metrics[n]) for n in run.names] for t in done]).reshape(-1, len(run.names))
    feasible = np.array([t.violation == 0.0 for t in done], dtype=bool)
    on_front = np.zeros(len(done), dtype=bool)
    # The front is made of full-fidelity results when there are any (lower fidelities are estimates).
    top = 1.0 if any(t.fidelity >= 1.0 for t in done) else max((t.fidelity for t in done), default=1.0)
    eligible = feasible & np.array([t.fidelity >= top for t in done], dtype=bool)
    if eligible.any():  # values are read by name, so the objectives' order in the study does not matter
        signs = np.array([o.sign for o in run.objectives])
        on_front[eligible] = non_dominated_mask(values[eligible] * signs)
    exported = {int(m["id"]) for m in run.models if number(m.get("id"))}
    return FrontSeries(
        name=name,
        values=values,
        feasible=feasible,
        on_front=on_front,
        exported=np.array([t.number in exported for t in done], dtype=bool),
        ids=np.array([t.number for t in done], dtype=int),
    )


def reference_box(runs: Sequence[Run], reference: Sequence[float]) -> tuple[tuple[float, ...], float | None]:
    """The box a normalised hypervolume is a share of: its best corner and its volume (in the objectives'
    own units), or ``None`` for the volume when the box is empty.

    The best corner is 0 for a minimized objective whose values are never negative (error, latency, energy,
    sizes): a front at that corner would score 1. Otherwise it is the best value any trial reached.
    """
    objectives = runs[0].objectives
    corner, volume = [], 1.0
    for k, o in enumerate(objectives):
        seen = [float(t.metrics[o.name]) for r in runs for t in r.complete if number(t.metrics.get(o.name))]
        ref = float(reference[k])
        if o.direction == "minimize" and ref > 0 and all(v >= 0 for v in seen):
            best = 0.0
        else:
            best = (min if o.direction == "minimize" else max)(seen, default=ref)
        corner.append(best)
        volume *= abs(ref - best)
    return tuple(corner), (volume if volume > 0 and math.isfinite(volume) else None)


def scratch(run: Run) -> tuple[FromScratchEstimate | None, str]:
    """The from-scratch estimate of a run, or why there is none."""
    s = run.sustainability
    if s is None:
        return None, "Energy was not recorded for this run (no sustainability.json): no estimate can be made."
    training = s.get("training")
    if not isinstance(training, Mapping):
        return None, "sustainability.json records no training energy: no estimate can be made."
    epochs = training.get("epochs")
    per_epoch = opt(training.get("energy_kwh_per_epoch"))
    total = opt(training.get("energy_kwh"))
    if per_epoch is None and total is not None and isinstance(epochs, int) and epochs > 0:
        per_epoch = total / epochs
    macs = opt(training.get("macs_per_step_sample"))
    if not isinstance(epochs, int) or epochs < 1 or per_epoch is None or macs is None or macs <= 0:
        return None, (
            "sustainability.json lacks training epochs, energy per epoch or macs_per_step_sample: "
            "no estimate can be made."
        )
    estimate = estimate_from_scratch(
        run.trials,
        epochs=epochs,
        energy_kwh_per_epoch=per_epoch,
        macs_per_step_sample=macs,
        supernet_energy_kwh=total,
        kg_per_kwh=_intensity(s),
    )
    if estimate.n_archs == 0:
        return None, "No evaluated arch recorded its MACs: no estimate can be made."
    return estimate, ""


def _intensity(s: Mapping[str, Any]) -> float | None:
    """kg CO2e per kWh of the supernet training phase, else of the whole run."""
    for phase in s.get("phases") or []:
        if isinstance(phase, Mapping) and phase.get("name") == "supernet_training":
            e, kg = opt(phase.get("energy_kwh")), opt(phase.get("emissions_kg"))
            if e and kg is not None:
                return kg / e
    total = submap(s, "total")
    e, kg = opt(total.get("energy_kwh")), opt(total.get("emissions_kg"))
    return kg / e if e and kg is not None else None
