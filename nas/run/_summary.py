"""Lines the command line prints after a search about the fronts per profile, INT8 twins and latency transfer."""

from __future__ import annotations

from pathlib import Path

from nas._schemas import ParetoFile, RunFileError

__all__ = ["summary_lines", "undertrained_warning"]


def undertrained_warning(largest_error: float, num_classes: int) -> str | None:
    """One line when the supernet's largest subnet is closer to guessing than to a trained model: its error
    is above half of chance level (45 % with 10 classes). Every inherited error is then rough, and the front
    ranks barely trained networks.

    Example:
        >>> undertrained_warning(10.0, 10) is None, undertrained_warning(65.0, 10)[:32]
        (True, 'the supernet looks undertrained:')
    """
    chance = 100.0 * (1.0 - 1.0 / max(2, num_classes))
    if largest_error <= chance / 2:
        return None
    return (
        f"the supernet looks undertrained: its largest subnet has {largest_error:.1f}% validation error where "
        f"guessing gives {chance:.0f}%; treat the front's errors as rough, and train longer (--epochs) or check "
        "the data"
    )


def summary_lines(run_dir: str | Path) -> list[str]:
    """What ``pareto.json`` says beyond the joint front: each profile's front and the models on all of them,
    each INT8 twin's error, latency and whether it was flagged, and the error of a transfer fit."""
    path = Path(run_dir) / "pareto.json"
    try:
        pareto = ParetoFile.read_text(path.read_text(), name=str(path))
    except (OSError, RunFileError):
        return []
    lines = [f"warning: {w}" for w in pareto.warnings]
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
