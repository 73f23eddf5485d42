"""Lines the command line prints after a search about the fronts per profile, INT8 twins and latency transfer."""

from __future__ import annotations

from pathlib import Path

from nas._schemas import ParetoFile, RunFileError

__all__ = ["summary_lines"]


def summary_lines(run_dir: str | Path) -> list[str]:
    """What ``pareto.json`` says beyond the joint front: each profile's front and the models on all of them,
    each INT8 twin's error, latency and whether it was flagged, and the error of a transfer fit."""
    path = Path(run_dir) / "pareto.json"
    try:
        pareto = ParetoFile.read_text(path.read_text(), name=str(path))
    except (OSError, RunFileError):
        return []
    lines = []
    if pareto.fronts:
        for label, ids in pareto.fronts.items():
            cost = (pareto.front_costs or {}).get(label, f"latency_ms@{label}")
            lines.append(f"front of {label} (error vs {cost}): models {', '.join(map(str, ids)) or 'none'}")
        common = sorted(set.intersection(*(set(ids) for ids in pareto.fronts.values())))
        lines.append(f"on every profile's front: {', '.join(map(str, common)) or 'none'}")
    for m in pareto.models:
        q = m.int8
        if not q:
            continue
        latency = q.get("latency_ms")
        shown = "n/a" if latency is None else f"{latency:.4g} ms (float {q.get('float_latency_ms'):.4g} ms)"
        flag = f"  FLAGGED: drop above {q.get('max_drop_pct')} points" if q.get("flagged") else ""
        lines.append(
            f"  id {m.id:>4} int8: error {q['error']:.2f}% (float {q.get('float_error', float('nan')):.2f}%, "
            f"drop {q['drop_pct']:+.2f} points), latency {shown}, {q['size_bytes']} bytes{flag}"
        )
    for name, fit in (pareto.latency_transfer or {}).items():
        lines.append(
            f"latency of {name} by transfer: leave-one-out mean abs error {fit.get('loo_mape_pct', float('nan')):.1f}% "
            f"on {fit.get('n_points')} measured archs"
        )
    return lines
