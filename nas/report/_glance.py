"""The top of a run's report, read at a glance: what the search cost (time, energy, CO2e, with their methods),
how good its front is, and which models it gave; and codecarbon's warnings summarised by what they concern."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from nas.report._analysis import hypervolume_curve, reference_box
from nas.report._doc import Doc, plural
from nas.report._load import NOT_RECORDED, Run, number, opt, submap
from nas.report._units import axis_scale, duration_text, energy_text, mass_text
from search import TrialState

__all__ = ["hypervolume_share", "section_glance", "warning_summary"]


def hypervolume_share(run: Run) -> float | None:
    """The final hypervolume as a share (0..1) of the reference box; ``None`` without a box or a trial."""
    curve, _ = hypervolume_curve(run, run.reference, run.name)
    _, volume = reference_box([run], run.reference)
    if volume is None or not len(curve.hypervolume):
        return None
    return float(curve.hypervolume[-1]) / volume


def _time(run: Run) -> str:
    s = run.sustainability or {}
    total = submap(s, "total")
    elapsed = opt(total.get("elapsed_s")) or opt(total.get("duration_s"))
    if elapsed is not None:
        return f"{duration_text(elapsed)} (wall clock, measured)"
    if run.timings:
        return (
            f"{duration_text(sum(v for k, v in run.timings.items() if '.' not in k))} (wall clock, measured)"
        )
    return NOT_RECORDED


def _cost(run: Run) -> tuple[str, str]:
    s = run.sustainability or {}
    energy, kg, source = run.total_energy
    total = submap(s, "total")
    method = str(total.get("method") or ("codecarbon records" if source == "emissions.csv" else NOT_RECORDED))
    tracker = submap(s, "tracker")
    tool = " ".join(str(tracker[k]) for k in ("tool", "version") if tracker.get(k))
    how = f"{method}, by {tool}" if tool else method
    if energy is None:
        return NOT_RECORDED, NOT_RECORDED
    grid = tracker.get("country_iso_code") or tracker.get("region")
    intensity = f", {kg / energy:.3g} kg CO2e per kWh" if kg is not None and energy > 0 else ""
    co2 = NOT_RECORDED if kg is None else f"{mass_text(kg)} CO2e (grid {grid or NOT_RECORDED}{intensity})"
    return f"{energy_text(energy)} ({how})", co2


def section_glance(doc: Doc, run: Run) -> None:
    """Totals, the front's quality and its models, before any detail."""
    energy, co2 = _cost(run)
    share = hypervolume_share(run)
    reference = ", ".join(
        f"{axis_scale(o)[0].split(' (')[0].lower()} {r:.4g}{'' if o.unit in ('', 'count') else ' ' + o.unit}"
        for o, r in zip(run.objectives, run.reference)
    )
    done = run.count(TrialState.COMPLETE)
    facts = [
        ("Time", _time(run)),
        ("Energy", energy),
        ("Emissions", co2),
        ("Trials", f"{done} complete of {len(run.trials)}"),
        (
            "Hypervolume",
            NOT_RECORDED
            if share is None
            else f"{share:.3f} of the reference box (0 = nothing, 1 = ideal; reference point: {reference})",
        ),
    ]
    if run.models:
        facts.append(("Models", _models(run)))
    doc.heading("At a glance", anchor="glance")
    doc.facts(facts)


def _models(run: Run) -> str:
    """The exported models, and the best one on each objective."""
    parts = [
        plural(len(run.models), "model")
        + " exported (ids "
        + ", ".join(str(m["id"]) for m in run.models)
        + ")"
    ]
    for o in run.objectives:
        scored = [
            m
            for m in run.models
            if isinstance(m.get("metrics"), Mapping) and number(m["metrics"].get(o.name))
        ]
        if not scored:
            continue
        pick = (min if o.direction == "minimize" else max)(scored, key=lambda m: m["metrics"][o.name])
        label, factor, _ = axis_scale(o, [m["metrics"][o.name] for m in scored])
        title, _, unit = label.partition(" (")
        value = pick["metrics"][o.name] * factor
        parts.append(
            f"best {title.lower()}: model {pick['id']} ({value:.4g}{' ' + unit.rstrip(')') if unit else ''})"
        )
    return "; ".join(parts)


_TOPICS = (
    ("CPU power", ("cpu", "rapl", "tdp")),
    ("GPU power", ("gpu", "nvml", "nvidia")),
    ("RAM power", ("ram", "memory")),
    ("grid carbon intensity", ("region", "grid", "country", "carbon intensity")),
)


def warning_summary(warnings: Sequence[str]) -> str:
    """``"5 warnings: CPU power (3), grid carbon intensity (1), other (1)"``.

    Example:
        >>> warning_summary(["No CPU tracking mode found", "no carbon region given", "We saw a AMD EPYC"])
        '3 warnings: CPU power (1), grid carbon intensity (1), other (1)'
    """
    counts: Counter[str] = Counter()
    for text in warnings:
        low = text.lower()
        topic = next((name for name, words in _TOPICS if any(w in low for w in words)), "other")
        counts[topic] += 1
    order = [name for name, _ in _TOPICS] + ["other"]
    parts = [f"{name} ({counts[name]})" for name in order if counts[name]]
    return f"{plural(len(warnings), 'warning')}: {', '.join(parts)}"
