"""The sections of a single run's report: header, models, energy and CO2e, training from scratch, importance."""


from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from nas.report._analysis import hypervolume_curve, reference_box, scratch
from nas.report._devices import section_devices
from nas.report._doc import Cell, Doc, Link, Table, count, fmt, plural
from nas.report._glance import warning_summary
from nas.report._importance import MIN_IMPORTANCE_TRIALS, group_importance, param_group, param_importance
from nas.report._load import NOT_RECORDED, PHASES, Run, number, opt, submap
from nas.report._plots import (
    energy_figure,
    hypervolume_figure,
    importance_figure,
)
from nas.report._units import (
    axis_scale,
    duration_text,
    energy_text,
    mass_text,
    objective_title,
    plain_component,
)
from search import (
    Objective,
    TrialState,
)

__all__ = ["ROUGH_IMPORTANCE_TRIALS"]


_MAX_FAILURES_SHOWN = 50


#: Fewer complete trials than this make the importance figures rough; the report says so.
ROUGH_IMPORTANCE_TRIALS = 50


#: what each phase of sustainability.json did, in the reader's words
PHASE_TITLES = {
    "supernet_training": "Supernet training",
    "candidate_evaluation": "Scoring candidates",
    "profiling": "Measuring latency and energy",
    "search_overhead": "Search overhead",
    "export": "Exporting the front",
}


def _objective_header(o: Objective, values: Sequence[float] = ()) -> tuple[str, float]:
    """A column header with its unit chosen for ``values``, and the factor the values are multiplied by."""
    arrow = "↓" if o.direction == "minimize" else "↑"
    label, factor, _ = axis_scale(o, values)
    return f"{label.removesuffix(', higher is better')} {arrow}", factor


def _counts(run: Run) -> str:
    parts = [
        f"{len(run.trials)} in all",
        f"{run.count(TrialState.COMPLETE)} complete",
        f"{run.count(TrialState.FAILED)} failed",
        f"{run.count(TrialState.PRUNED)} pruned",
    ]
    if run.count(TrialState.RUNNING):
        parts.append(f"{run.count(TrialState.RUNNING)} unfinished")
    return ", ".join(parts)


def _hardware(run: Run) -> str:
    s = run.sustainability
    hw = s.get("hardware") if s is not None and isinstance(s.get("hardware"), Mapping) else None
    if hw is None and run.emissions:
        last = run.emissions[-1]
        hw = {
            "cpu_model": last.get("cpu_model"),
            "cpu_count": last.get("cpu_count"),
            "gpu_model": last.get("gpu_model"),
            "ram_gb": last.get("ram_total_size"),
        }
    if hw is None:
        return NOT_RECORDED
    parts = []
    if hw.get("cpu_model"):
        cores = hw.get("cpu_count")
        parts.append(f"CPU {hw['cpu_model']}" + (f" ({int(cores)} cores)" if number(cores) else ""))
    parts.append(f"GPU {hw['gpu_model']}" if hw.get("gpu_model") else "no GPU")
    if number(hw.get("ram_gb")):
        parts.append(f"{float(hw['ram_gb']):.3g} GB RAM")
    return ", ".join(parts)


def _section_header(doc: Doc, run: Run, *, level: int = 2) -> None:
    cfg_search = submap(run.config, "search")
    strategy = run.strategy
    if strategy == "nsga2" and cfg_search.get("population"):
        strategy = f"nsga2 (population {cfg_search['population']})"
    epochs = (
        (run.config.get("supernet") or {}).get("epochs")
        if isinstance(run.config.get("supernet"), Mapping)
        else None
    )
    objectives = ", ".join(
        f"{objective_title(o.name)} {'↓' if o.direction == 'minimize' else '↑'} ({o.name})" for o in run.objectives
    )
    facts = [
        ("Run", f"{run.name} ({run.path})"),
        ("Started", run.started),
        ("Dataset", run.dataset),
        ("Strategy", strategy),
        ("Trials", _counts(run)),
        ("Objectives", objectives),
        ("Constraints", ", ".join(run.constraints) or "none"),
        ("Hardware profile", run.profile),
        ("Hardware", _hardware(run)),
    ]
    if epochs:
        facts.insert(4, ("Supernet training", plural(int(epochs), "epoch")))
    if run.timings:
        wall = sum(v for k, v in run.timings.items() if "." not in k)
        facts.append(("Wall-clock time", f"{duration_text(wall)} (measured)"))
    doc.facts(facts)
    for note in run.notes:
        doc.para(note, note=True)
    failed = [t for t in run.trials if t.state is TrialState.FAILED]
    if failed:
        doc.heading(f"Failed trials ({len(failed)})", level + 1)
        shown = failed[:_MAX_FAILURES_SHOWN]
        doc.table(
            Table(["trial", "error"], [[str(t.number), t.error or "no error text recorded"] for t in shown])
        )
        if len(failed) > len(shown):
            doc.para(f"{len(failed) - len(shown)} more failed trials are listed in trials.csv.", note=True)


def _section_models(doc: Doc, run: Run, *, level: int = 2) -> None:
    doc.heading(f"Pareto models ({len(run.models)})" if level == 2 else f"Pareto models of {run.name}", level)
    if not run.models:
        doc.para(
            "No model was exported."
            if run.pareto_recorded
            else "pareto.json is missing: no model was exported.",
            note=True,
        )
        return
    extra = [k for k in ("params", "flops") if k not in run.names]
    columns = [
        _objective_header(o, [float(m["metrics"][o.name]) for m in run.models if number((m.get("metrics") or {}).get(o.name))])
        for o in run.objectives
    ]
    factors = {o.name: f for o, (_, f) in zip(run.objectives, columns)}
    headers = ["id", *(h for h, _ in columns)]
    headers += [{"params": "params", "flops": "FLOPs"}[k] for k in extra]
    # The model's own validation error, where it differs from the ranked one (an ensemble's mean, or a
    # model fine-tuned before export).
    own = any(
        number(m.get("validation_error"))
        and isinstance(m.get("metrics"), Mapping)
        and number(m["metrics"].get("error"))
        and abs(m["validation_error"] - m["metrics"]["error"]) > 1e-9
        for m in run.models
    )
    headers += [
        *(["model's validation error (%)"] if own else []),
        "test error (%)",
        "max |onnx − torch|",
        "ONNX",
    ]
    rows, attrs = [], []
    for m in run.models:
        metrics = submap(m, "metrics")
        row: list[Cell] = [str(m["id"])]
        row += [
            fmt(metrics[n] * factors[n] if number(metrics.get(n)) else None)
            if n not in ("params", "flops")
            else count(metrics.get(n))
            for n in run.names
        ]
        row += [count(metrics.get(k)) for k in extra]
        if own:
            row.append("n/a" if not number(m.get("validation_error")) else fmt(m.get("validation_error")))
        row += [
            "n/a" if m.get("test_error") is None else fmt(m.get("test_error")),
            f"{m['max_abs_diff']:.1e}" if number(m.get("max_abs_diff")) else "n/a",
        ]
        onnx = m.get("onnx")
        if isinstance(onnx, str) and onnx:
            target = run.path / onnx
            href = Path(os.path.relpath(target, doc.out_dir)).as_posix()
            row.append(Link(onnx, href))
        else:
            row.append("not exported")
        rows.append(row)
        attrs.append(f'data-model="{html.escape(str(m["id"]), quote=True)}"')
    numeric = [False] + [True] * (len(headers) - 2) + [False]
    doc.table(Table(headers, rows, attrs, numeric))
    doc.para("↓: lower is better, ↑: higher is better. Test error is measured on the held-out test split.")
    section_devices(doc, run, level=level + 1)  # fronts per profile, INT8 twins, latency transfer


def _section_energy(doc: Doc, run: Run, *, level: int = 2, figures: bool = True, prefix: str = "") -> None:
    doc.heading("Energy and CO2e" if level == 2 else f"Energy and CO2e of {run.name}", level)
    s = run.sustainability
    if s is None:
        doc.para(
            "Energy and CO2e: not recorded (this run has no sustainability.json)."
            + (" The codecarbon records of emissions.csv are listed below." if run.emissions else ""),
            note=True,
        )
        rows = [[k, f"{v:.1f}", NOT_RECORDED, NOT_RECORDED, NOT_RECORDED] for k, v in run.timings.items()]
        if rows:
            doc.para("Measured wall-clock time of each phase (timings.json):")
            doc.table(
                Table(
                    ["phase", "duration (s)", "energy (kWh)", "CO2e (kg)", "method"],
                    rows,
                    numeric=[False, True, True, True, False],
                )
            )
    else:
        tracker = submap(s, "tracker")
        where = (
            ", ".join(str(tracker[k]) for k in ("country_iso_code", "region") if tracker.get(k))
            or NOT_RECORDED
        )
        tool = " ".join(str(tracker[k]) for k in ("tool", "version") if tracker.get(k)) or NOT_RECORDED
        hw = submap(s, "hardware")
        sessions = f", {plural(int(s['sessions']), 'session')}" if number(s.get("sessions")) else ""
        parts = submap(tracker, "components")
        components = ", ".join(f"{plain_component(str(k))}: {v}" for k, v in parts.items()) or NOT_RECORDED
        doc.facts([
            ("Tracker", f"{tool}, mode {tracker.get('mode') or NOT_RECORDED}{sessions}"),
            ("Grid region", where),
            ("Measured components", components),
            ("Hardware", _hardware(run)),
            ("Profile", str(hw.get("profile") or run.profile)),
        ])  # fmt: skip
        phases = [p for p in s.get("phases") or [] if isinstance(p, Mapping)]
        order = {name: i for i, name in enumerate(PHASES)}
        phases.sort(key=lambda p: order.get(str(p.get("name")), len(order)))
        rows, names = [], []
        for p in phases:
            names.append(str(p.get("name", "?")))
            rows.append([
                PHASE_TITLES.get(names[-1], names[-1]), duration_text(opt(p.get("duration_s"))),
                energy_text(opt(p.get("energy_kwh"))), mass_text(opt(p.get("emissions_kg"))),
                str(p.get("method") or NOT_RECORDED), _part(p.get("cpu_energy_kwh")),
                _part(p.get("gpu_energy_kwh")), _part(p.get("ram_energy_kwh")),
            ])  # fmt: skip
        total = submap(s, "total")
        methods = sorted({str(p.get("method")) for p in phases if p.get("method")})
        names.append("total")
        rows.append([
            "Total", duration_text(opt(total.get("duration_s"))), energy_text(opt(total.get("energy_kwh"))),
            mass_text(opt(total.get("emissions_kg"))), str(total.get("method") or " + ".join(methods) or NOT_RECORDED), "", "", "",
        ])  # fmt: skip
        headers = ["phase", "duration", "energy", "CO2e", "method", "CPU", "GPU", "RAM"]
        numeric = [False, True, True, True, False, True, True, True]
        attrs = [f'data-phase="{html.escape(n, quote=True)}"' for n in names]
        doc.table(Table(headers, rows, attrs, numeric))
        fallbacks = [str(f) for f in tracker.get("fallbacks") or []]
        if fallbacks:
            doc.para(
                f"codecarbon estimated what it could not measure ({warning_summary(fallbacks)}); "
                "its messages are listed below."
            )
            doc.details("codecarbon's messages", fallbacks)
        else:
            doc.para("codecarbon recorded no fallback.")
        inference = submap(s, "inference_energy")
        method = inference.get("method") or NOT_RECORDED
        text = f"Energy per inference: {method}."
        reason = str(inference.get("fallback_reason") or "")
        if reason:  # its first sentence here, the whole explanation folded away below
            text += f" {reason.split('. ')[0].rstrip('.')}."
        if "estimated" in str(method).split(", "):
            text += (
                " Estimated energy is a constant power times the latency: it is the latency in other units, "
                "and ranks models exactly as latency does."
            )
        doc.para(text)
        if ". " in reason:
            doc.details("Why energy per inference was estimated", [s.strip() for s in reason.split(". ") if s.strip()])
        stopped = s.get("stopped_by")
        if isinstance(stopped, Mapping):
            doc.para(
                f"The search was stopped by its {stopped.get('budget')} budget: "
                f"{fmt(opt(stopped.get('value')))} reached the limit {fmt(opt(stopped.get('limit')))}.",
                note=True,
            )
        if figures:
            bars = [
                (PHASE_TITLES.get(str(p.get("name")), str(p.get("name"))), opt(p.get("energy_kwh")),
                 str(p.get("method") or NOT_RECORDED))
                for p in phases
            ]
            bars_known = [(a, b, c) for a, b, c in bars if b is not None]
            if bars_known:
                doc.figure(
                    f"{prefix}energy.png",
                    energy_figure(bars_known),
                    "Energy of each phase, with its method",
                )
    if run.emissions:
        _emissions_table(doc, run)


def _part(kwh: object) -> str:
    """Energy of one component; a component codecarbon did not see (0 kWh) is left blank."""
    value = opt(kwh)
    return "" if not value else energy_text(value)


def _emissions_table(doc: Doc, run: Run) -> None:
    rows = []
    for i, r in enumerate(run.emissions or ()):
        label = r.get("task_name") or f"session {i + 1}"
        rows.append([
            str(r.get("timestamp") or ""), PHASE_TITLES.get(str(label), str(label)),
            duration_text(opt(r.get("duration"))), energy_text(opt(r.get("energy_consumed"))),
            mass_text(opt(r.get("emissions"))), _part(r.get("cpu_energy")), _part(r.get("gpu_energy")),
            _part(r.get("ram_energy")), str(r.get("tracking_mode") or ""), str(r.get("country_iso_code") or ""),
        ])  # fmt: skip
    headers = ["timestamp", "record", "duration", "energy", "CO2e", "CPU", "GPU", "RAM", "tracking mode",
               "country"]  # fmt: skip
    doc.table(
        Table(headers, rows, numeric=[False, False, True, True, True, True, True, True, False, False]),
        details=f"codecarbon records (emissions.csv, {plural(len(rows), 'row')})",
    )


def _section_scratch(doc: Doc, run: Run, *, level: int = 2) -> None:
    title = "Without weight sharing (estimate)"
    doc.heading(title if level == 2 else f"{title}: {run.name}", level)
    estimate, reason = scratch(run)
    if estimate is None:
        doc.para(reason, note=True)
        return
    doc.para(
        "Estimate of what training every distinct evaluated arch from scratch, for the same number of epochs "
        "as the supernet, would have cost. Evaluating the candidates costs the same either way and is left out."
    )
    doc.pre(
        "E_scratch(a) = E_epoch × epochs × MACs(a) / MACs_step\n"
        f"E_epoch   = {energy_text(estimate.energy_kwh_per_epoch)} per supernet epoch (measured during training)\n"
        f"epochs    = {estimate.epochs}\n"
        f"MACs_step = {estimate.macs_per_step_sample:.4g} (forward MACs of the subnets trained per sample "
        "per step, sandwich rule)\n"
        f"MACs(a)   = forward MACs of arch a, for each of the {estimate.n_archs} distinct evaluated archs"
    )
    kg = estimate.kg_per_kwh

    def co2(kwh: float) -> str:
        return NOT_RECORDED if kg is None else mass_text(kwh * kg)

    rows = [
        [
            f"train {estimate.n_archs} archs from scratch (estimate)",
            energy_text(estimate.energy_kwh),
            co2(estimate.energy_kwh),
        ],
        ["train the supernet once", energy_text(estimate.supernet_energy_kwh), co2(estimate.supernet_energy_kwh)],
        ["saved by weight sharing", energy_text(estimate.saved_kwh), co2(estimate.saved_kwh)],
    ]
    doc.table(Table(["", "energy", "CO2e"], rows, numeric=[False, True, True]))
    if math.isfinite(estimate.ratio) and estimate.ratio > 0:
        doc.para(
            f"Training from scratch would have cost {estimate.ratio:.3g}× the energy of training the supernet "
            f"once: weight sharing saved {energy_text(estimate.saved_kwh)}"
            + ("" if kg is None else f" and {mass_text(estimate.saved_kwh * kg)} CO2e")
            + f" ({100 * estimate.saved_kwh / estimate.energy_kwh:.3g}% of the from-scratch energy)."
        )
    else:
        doc.para("The supernet training recorded no energy: no ratio can be given.", note=True)
    if kg is not None:
        doc.para(f"CO2e uses the emission intensity of the supernet training: {kg:.4g} kg CO2e per kWh.")
    if estimate.n_without_macs:
        doc.para(
            f"{plural(estimate.n_without_macs, 'arch')} without recorded MACs (failed trials, or no MACs "
            "measured) are not counted.",
            note=True,
        )
    training = (run.sustainability or {}).get("training") or {}
    if "completed_epochs" in training and training.get("completed_epochs") != estimate.epochs:
        doc.para(
            f"The supernet training finished {training.get('completed_epochs') or 'fewer'} of its "
            f"{estimate.epochs} epochs (stopped by a budget): the estimate uses the recorded energy per epoch.",
            note=True,
        )


def _section_importance(doc: Doc, run: Run, *, prefix: str = "") -> None:
    doc.heading("Importance of the searched choices", 2)
    done = run.complete
    top = max((t.fidelity for t in done), default=1.0)
    done = [t for t in done if t.fidelity == top]
    per_param: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    if len(done) < MIN_IMPORTANCE_TRIALS:
        doc.para(
            f"Too few trials: importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials, "
            f"this run has {len(done)}.",
            note=True,
        )
        return
    for o in run.objectives:
        try:
            per_param[o.name] = param_importance(done, o.name, space=run.space)
        except ValueError as e:
            problems.append(f"{o.name}: {e}")
    for p in problems:
        doc.para(p, note=True)
    if not per_param:
        return
    grouped = {name: group_importance(imp) for name, imp in per_param.items()}
    trivial = all(len(g) == len(per_param[n]) for n, g in grouped.items())
    doc.para(
        f"First-order functional ANOVA of a random forest (64 trees, seed 0) fitted on the encoded choices of "
        f"the {len(done)} complete trials: each figure is the share of an objective's variance that a choice "
        "explains alone; the figures of one objective sum to 1."
        + (
            ""
            if trivial
            else f" Choices are grouped by kind ({', '.join(sorted(next(iter(grouped.values()))))}): a group's "
            "figure is the sum over its per-stage and per-block choices."
        )
    )
    if len(done) < ROUGH_IMPORTANCE_TRIALS:
        doc.para(
            f"With {len(done)} trials the forest is a rough model (below {ROUGH_IMPORTANCE_TRIALS}): "
            "read the order of the large figures, not small differences.",
            note=True,
        )
    shown = per_param if trivial else grouped
    doc.figure(f"{prefix}importance.png", importance_figure(shown), "Importance of each choice per objective")
    names = list(next(iter(shown.values())))
    objectives = list(shown)
    rows = [[n, *(fmt(shown[o].get(n, 0.0), 3) for o in objectives)] for n in names]
    doc.table(Table(["choice", *objectives], rows, numeric=[False] + [True] * len(objectives)))
    if not trivial:
        params = list(next(iter(per_param.values())))
        rows = [[p, param_group(p), *(fmt(per_param[o].get(p, 0.0), 3) for o in objectives)] for p in params]
        doc.table(
            Table(
                ["parameter", "group", *objectives], rows, numeric=[False, False] + [True] * len(objectives)
            ),
            details="Importance of each single parameter",
        )


def _section_hypervolume(
    doc: Doc, runs: Sequence[Run], names: Sequence[str], reference: Sequence[float]
) -> None:
    doc.heading("Hypervolume")
    curves, missing = [], []
    corner, volume = reference_box(runs, reference)
    for run, name in zip(runs, names):
        curve, n_missing = hypervolume_curve(run, reference, name)
        if volume is not None:
            curve = replace(curve, hypervolume=curve.hypervolume / volume)
        curves.append(curve)
        missing.append((name, n_missing, len(curve.trials), curve.energy_kwh is not None))
    objectives = runs[0].objectives
    source = runs[0].reference_source if len(runs) == 1 else "the worst of the runs' references"
    box = ", ".join(
        f"{objective_title(o.name).lower()} {lo:.4g} to {r:.4g}{'' if o.unit in ('', 'count') else ' ' + o.unit}"
        for o, lo, r in zip(objectives, corner, reference)
    )
    doc.para(
        "Hypervolume is shown as the share of the reference box that the front dominates: 0 when no trial "
        "beats the reference point, 1 for a model that reaches the best corner on every objective. "
        f"The box: {box} (reference point {source}). Only feasible trials count."
    )
    if volume is None:
        doc.para("The reference box is empty: hypervolume is shown unnormalised.", note=True)
    if any(len(c.trials) for c in curves):
        doc.figure(
            "hypervolume.png", hypervolume_figure(curves), "Hypervolume over finished trials and over energy"
        )
    for name, n_missing, n, recorded in missing:
        who = "" if len(runs) == 1 else f"{name}: "
        if not recorded:
            doc.para(
                f"{who}The energy spent on each trial was not recorded: hypervolume over energy cannot be "
                "shown.",
                note=True,
            )
        elif n_missing:
            doc.para(f"{who}{n_missing} of {n} trials have no recorded energy and count as none spent.", note=True)
    methods = sorted(
        {str(t.attrs["energy_method"]) for r in runs for t in r.trials if t.attrs.get("energy_method")}
    )
    if methods:
        doc.para(f"Energy spent on each trial: {', '.join(methods)}.")
    if len(runs) == 1 and len(curves[0].hypervolume):
        share = " of the reference box" if volume is not None else ""
        doc.para(f"Final hypervolume: {curves[0].hypervolume[-1]:.3f}{share}.")
