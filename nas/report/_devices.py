"""Report sections for what ``pareto.json`` holds beyond the joint front: one front per profile (and the
models good on every profile), the INT8 twins of the models, and the error of a latency transfer fit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas._schemas import ParetoFile, RunFileError
from nas.report._doc import Doc, Table, fmt
from nas.report._load import Run

__all__ = ["section_devices"]


def section_devices(doc: Doc, run: Run, *, level: int = 2) -> None:
    """Fronts per profile side by side, INT8 figures, and latency transfer errors, where the run has them."""
    path = run.path / "pareto.json"
    try:
        pareto = ParetoFile.read_text(path.read_text(), name=str(path))
    except (OSError, RunFileError):
        return
    models = {m.id: m for m in pareto.models}
    if pareto.fronts:
        _fronts(doc, pareto.fronts, pareto.front_costs or {}, models, level)
    if any(m.int8 for m in pareto.models):
        _int8(doc, pareto, level)
    if pareto.latency_transfer:
        _transfer(doc, pareto.latency_transfer, level)


def _fronts(
    doc: Doc, fronts: Mapping[str, list[int]], costs: Mapping[str, str], models: Mapping[int, Any], level: int
) -> None:
    doc.heading("Fronts per profile", level)
    labels = list(fronts)
    ids = sorted({i for front in fronts.values() for i in front}, key=lambda i: _error(models.get(i)))
    headers = [
        "id",
        "error (%)",
        *(f"{costs.get(label, 'latency_ms@' + label)}" for label in labels),
        "fronts",
    ]
    rows = []
    for i in ids:
        metrics = models[i].metrics if i in models else {}
        cells = [str(i), fmt(metrics.get("error"))]
        on = 0
        for label in labels:
            value = fmt(metrics.get(costs.get(label, f"latency_ms@{label}")))
            member = i in fronts[label]
            on += member
            cells.append(f"{value} ✓" if member else value)
        cells.append(f"{on} of {len(labels)}")
        rows.append(cells)
    doc.table(Table(headers, rows, (), [False] + [True] * (len(headers) - 2) + [False]))
    everywhere = sorted(set.intersection(*(set(f) for f in fronts.values()))) if fronts else []
    if everywhere:
        doc.para(
            f"Good everywhere: model{'s' if len(everywhere) > 1 else ''} {', '.join(map(str, everywhere))} "
            f"{'are' if len(everywhere) > 1 else 'is'} on every profile's front (error against that profile's cost)."
        )
    else:
        doc.para("No model is on every profile's front: the profiles trade error for cost differently.")
    doc.para(
        "✓: on that profile's front. Each model is exported once, whatever the number of fronts it is on."
    )


def _int8(doc: Doc, pareto: ParetoFile, level: int) -> None:
    doc.heading("INT8 models", level)
    headers = [
        "id", "float error (%)", "int8 error (%)", "drop (points)", "float latency (ms)", "int8 latency (ms)",
        "int8 size (bytes)", "flagged",
    ]  # fmt: skip
    rows = []
    flagged = []
    bound = None
    for m in pareto.models:
        q = m.int8
        if not q:
            continue
        bound = q.get("max_drop_pct", bound)
        if q.get("flagged"):
            flagged.append(m.id)
        rows.append([
            str(m.id), fmt(q.get("float_error")), fmt(q.get("error")), fmt(q.get("drop_pct")),
            fmt(q.get("float_latency_ms")), fmt(q.get("latency_ms")), str(q.get("size_bytes")),
            "yes" if q.get("flagged") else "no",
        ])  # fmt: skip
    doc.table(Table(headers, rows, (), [False] + [True] * 6 + [False]))
    doc.para(
        "Each front model statically quantized (QDQ, per-channel int8 weights, calibrated on training images), "
        "its validation error measured beside the float model's and both timed on the profile, one after the "
        f"other. Flagged: INT8 lost more than {fmt(bound)} points of accuracy"
        + (f" (models {', '.join(map(str, flagged))})." if flagged else "; none was.")
    )


def _transfer(doc: Doc, transfer: Mapping[str, Mapping[str, Any]], level: int) -> None:
    doc.heading("Latency by transfer", level)
    items = []
    for name, fit in transfer.items():
        weights = ", ".join(f"{k} {float(v):.2f}" for k, v in (fit.get("source_weights") or {}).items() if v)
        rho = fit.get("loo_spearman")
        items.append(
            f"{name}: predicted from {weights or 'no source'} after {fit.get('n_points')} archs measured on the "
            f"device; leave-one-out error against measurement: mean {fmt(fit.get('loo_mape_pct'))}% off, "
            f"{fmt(100 * float(fit.get('loo_within_10pct') or 0))}% within ±10 %, Spearman "
            + ("n/a" if rho is None else fmt(rho))
        )
    doc.bullets(items)


def _error(model: Any) -> float:
    value = model.metrics.get("error") if model is not None else None
    return float(value) if isinstance(value, (int, float)) else float("inf")
