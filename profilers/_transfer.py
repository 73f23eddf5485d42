"""Latency of a new device from a few measurements and the latency tables of other devices.

Latency tables of different devices rank architectures much alike (a GPU at batch 256 and a server CPU
rank NAS-Bench-201 cells with a Spearman correlation near 0.98), and their logarithms are close to linear
in each other. So the new device's log-latency is regressed on the other devices' log-latencies:

    log(latency_ms) = intercept + sum_d weight_d * log(source_d latency_ms)      with every weight_d >= 0

fitted by non-negative least squares on the N measured archs. Non-negative weights need no tuning and
cannot overfit the way free weights do with more devices than points: at N = 10 on NAS-Bench-201 they keep
a few related devices and give a mean Spearman correlation of about 0.97 on the left-out archs, above what
HELP's meta-learned predictor reports (0.93) for the same budget; see ``BENCHMARKS.md``, section (i).

Per-arch feature vectors (e.g. a one-hot encoding of the operations) can be given beside the tables or
instead of them. Their weights are free (either sign) and shrunk by a ridge penalty whose strength is
chosen by leave-one-out error on the N points; beside tables, "no feature term" is one of the choices, and
tables and features are then fitted together in one non-negative least squares problem.

Every fit states its leave-one-out error on the N points (:class:`TransferFit`): each point predicted by a
model fitted to the other N - 1. Without features nothing is chosen, so this is an honest estimate of the
error on new archs; with features it is the error of the ridge strength that the same figures chose, a
little optimistic, as for any model picked by cross-validation.

This module needs NumPy, and SciPy (installed with scikit-learn) for non-negative least squares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MIN_TRANSFER_POINTS", "LatencyTransfer", "TransferError", "TransferFit", "fit_latency_transfer"]

MIN_TRANSFER_POINTS = 3
"""Fewest measured archs a fit accepts: two to fit a line, one more for a leave-one-out error."""

# Ridge strengths tried for feature weights (features are standardised first).
_RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


class TransferError(ValueError):
    """Measurements or tables that a transfer fit cannot use, or an arch it cannot predict."""


@dataclass(frozen=True)
class TransferFit:
    """What a transfer fit did and how well it predicts its own measurements, left out one at a time.

    Attributes:
        method: ``"sources"`` (tables of other devices), ``"features"`` (arch features alone) or
            ``"sources+features"``.
        n_points: Measured archs of the new device the fit used (N).
        source_weights: Source device -> weight on its log-latency (>= 0; zero for unused devices).
        intercept: Constant of the fit, in log-milliseconds.
        feature_alpha: Ridge strength chosen for the features (``None``: no feature term).
        loo_mape_pct: Mean absolute percentage error of the leave-one-out predictions, %.
        loo_within_10pct: Share (0..1) of the N points whose leave-one-out prediction is within +-10 %.
        loo_spearman: Spearman correlation of the leave-one-out predictions with the measurements (``nan``
            when either is constant).
        loo_rms_log: Root mean square of the leave-one-out errors of the log-latency (about a relative error).
    """

    method: str
    n_points: int
    source_weights: Mapping[str, float]
    intercept: float
    feature_alpha: float | None
    loo_mape_pct: float
    loo_within_10pct: float
    loo_spearman: float
    loo_rms_log: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (``nan`` becomes ``None``).

        Example:
            >>> fit = TransferFit("sources", 3, {"a": 1.0}, 0.0, None, 0.0, 1.0, 1.0, 0.0)
            >>> fit.to_dict()["loo_within_10pct"]
            1.0
        """
        out: dict[str, object] = {
            "method": self.method,
            "n_points": self.n_points,
            "source_weights": dict(self.source_weights),
            "intercept": self.intercept,
            "feature_alpha": self.feature_alpha,
        }
        for name in ("loo_mape_pct", "loo_within_10pct", "loo_spearman", "loo_rms_log"):
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        return out


@dataclass(frozen=True)
class LatencyTransfer:
    """A fitted latency predictor for a new device; build it with :func:`fit_latency_transfer`.

    Attributes:
        fit: How it was fitted and its leave-one-out error on the measured points.
        archs: The arch keys it can predict, in the order of the first table (or of the features).
        sources: The source tables with a non-zero weight (device -> arch key -> latency, ms).
        features: Arch key -> feature vector, when the fit uses features.
        feature_mean: Mean of the features over the measured archs (standardisation).
        feature_scale: Standard deviation of the features over the measured archs (1 where constant).
        feature_weights: Weight of each standardised feature (log-ms per standard deviation).
    """

    fit: TransferFit
    archs: tuple[str, ...] = field(repr=False)
    sources: Mapping[str, Mapping[str, float]] = field(repr=False)
    features: Mapping[str, Sequence[float]] | None = field(default=None, repr=False)
    feature_mean: tuple[float, ...] = ()
    feature_scale: tuple[float, ...] = ()
    feature_weights: tuple[float, ...] = ()

    def known(self, arch: str) -> bool:
        """Whether :meth:`predict` can predict ``arch``: every table it uses (and the features) have it."""
        return all(arch in table for table in self.sources.values()) and (
            self.features is None or arch in self.features
        )

    def predict(self, arch: str) -> float:
        """Predicted latency of ``arch`` on the new device, ms.

        Raises:
            TransferError: A table the fit uses, or the feature map, lacks ``arch``.
        """
        return float(self.predict_many([arch])[0])

    def predict_many(self, archs: Iterable[str]) -> np.ndarray:
        """Predicted latencies of several archs on the new device (ms), shape ``(len(archs),)``.

        Raises:
            TransferError: A table the fit uses, or the feature map, lacks one of ``archs``.
        """
        keys = list(archs)
        log_ms = np.full(len(keys), self.fit.intercept)
        for device, table in self.sources.items():
            missing = [k for k in keys if k not in table]
            if missing:
                raise TransferError(
                    f"cannot predict {_some(missing)}: the table of {device!r} (weight "
                    f"{self.fit.source_weights[device]:.3g}) has no such arch; predict only archs that every "
                    "table with a non-zero weight covers (see LatencyTransfer.known)"
                )
            log_ms += self.fit.source_weights[device] * np.log([table[k] for k in keys])
        if self.features is not None and self.feature_weights:
            missing = [k for k in keys if k not in self.features]
            if missing:
                raise TransferError(f"cannot predict {_some(missing)}: no feature vector for it")
            x = (np.array([self.features[k] for k in keys], dtype=float) - self.feature_mean) / np.array(
                self.feature_scale
            )
            log_ms += x @ np.array(self.feature_weights)
        return np.exp(log_ms)

    def predict_table(self, archs: Iterable[str] | None = None) -> dict[str, float]:
        """Predicted latency (ms) of every arch the predictor knows, or of ``archs``: a full table for the new device.

        Example:
            >>> t = fit_latency_transfer({"a": 2.0, "b": 4.0, "c": 8.0},
            ...                          sources={"x": {"a": 1.0, "b": 2.0, "c": 4.0, "d": 3.0}})
            >>> round(t.predict_table()["d"], 6)
            6.0
        """
        keys = self.archs if archs is None else list(archs)
        return dict(zip(keys, (float(v) for v in self.predict_many(keys)), strict=True))


def fit_latency_transfer(
    measured: Mapping[str, float],
    *,
    sources: Mapping[str, Mapping[str, float]] | None = None,
    features: Mapping[str, Sequence[float]] | None = None,
) -> LatencyTransfer:
    """Fits a latency predictor for a new device from N measured archs and other devices' tables.

    Args:
        measured: Arch key -> latency (ms) measured on the new device; at least :data:`MIN_TRANSFER_POINTS`.
        sources: Device name -> latency table of that device (arch key -> ms). Each must cover every measured
            arch; the archs the predictor can predict are those that every table given a non-zero weight
            covers.
        features: Arch key -> feature vector (equal lengths), e.g. a one-hot encoding of the operations;
            must cover every measured arch. Alone: ridge regression of the log-latency; with ``sources``:
            fitted with the tables, and kept only when they lower the leave-one-out error.

    Returns:
        The predictor; its :attr:`~LatencyTransfer.fit` holds the weights and the leave-one-out error.

    Raises:
        TransferError: Fewer than :data:`MIN_TRANSFER_POINTS` measurements, a latency that is not a positive
            finite number, neither sources nor features, or a table or feature map lacking a measured arch.

    Example:
        >>> gpu = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
        >>> cpu = {"a": 9.0, "b": 1.0, "c": 4.0, "d": 6.0, "e": 7.0}
        >>> new = {"a": 2.5, "b": 5.0, "c": 7.5, "d": 10.0}  # measured: 2.5 x the GPU
        >>> t = fit_latency_transfer(new, sources={"gpu": gpu, "cpu": cpu})
        >>> round(t.predict("e"), 6), round(t.fit.source_weights["cpu"], 6), round(t.fit.loo_mape_pct, 6)
        (12.5, 0.0, 0.0)
    """
    if not sources and not features:
        raise TransferError(
            "give the latency tables of other devices (sources), per-arch feature vectors (features), or both"
        )
    keys = list(measured)
    if len(keys) < MIN_TRANSFER_POINTS:
        raise TransferError(
            f"a transfer fit needs at least {MIN_TRANSFER_POINTS} measured archs (two to fit, one more for the "
            f"leave-one-out error), got {len(keys)}; measure more archs on the new device"
        )
    y = np.log(_positive("measured", {k: measured[k] for k in keys}, keys))
    tables = {str(d): t for d, t in (sources or {}).items()}
    columns = []
    for device, table in tables.items():
        missing = [k for k in keys if k not in table]
        if missing:
            raise TransferError(
                f"the table of {device!r} lacks measured arch(s) {_some(missing)}; every source table must "
                "cover the archs measured on the new device"
            )
        columns.append(np.log(_positive(f"the table of {device!r}", table, keys)))
    s = np.stack(columns, axis=1) if columns else np.zeros((len(keys), 0))
    x = _feature_matrix(features, keys) if features else None

    fitted, loo = _fit_with_loo(s, x, y)
    ratio = np.exp(loo - y)
    method = "+".join(part for part, on in (("sources", columns), ("features", x is not None)) if on)
    fit = TransferFit(
        method=method,
        n_points=len(keys),
        source_weights={d: float(w) for d, w in zip(tables, fitted.weights, strict=True)},
        intercept=float(fitted.intercept),
        feature_alpha=fitted.alpha,
        loo_mape_pct=float(np.mean(np.abs(ratio - 1.0)) * 100.0),
        loo_within_10pct=float(np.mean(np.abs(ratio - 1.0) <= 0.1 + 1e-12)),
        loo_spearman=_spearman(loo, y),
        loo_rms_log=float(np.sqrt(np.mean((loo - y) ** 2))),
    )
    used = {d: tables[d] for d, w in fit.source_weights.items() if w > 0.0}
    with_features = x is not None and fitted.alpha is not None
    covering = list((used or tables).values())
    if covering:
        archs = [k for k in covering[0] if all(k in t for t in covering[1:])]
        if with_features:
            archs = [k for k in archs if k in features]  # type: ignore[operator]
    else:
        archs = list(features or {})
    return LatencyTransfer(
        fit=fit,
        archs=tuple(archs),
        sources=used,
        features=features if with_features else None,
        feature_mean=tuple(float(v) for v in fitted.x_mean) if with_features else (),
        feature_scale=tuple(float(v) for v in fitted.x_scale) if with_features else (),
        feature_weights=tuple(float(v) for v in fitted.x_weights) if with_features else (),
    )


@dataclass(frozen=True)
class _Model:
    weights: np.ndarray  # per source column, >= 0
    intercept: float
    alpha: float | None  # None: no feature term
    x_mean: np.ndarray
    x_scale: np.ndarray
    x_weights: np.ndarray

    def predict(self, s_row: np.ndarray, x_row: np.ndarray | None) -> float:
        value = self.intercept + float(s_row @ self.weights)
        if self.alpha is not None and x_row is not None:
            value += float(((x_row - self.x_mean) / self.x_scale) @ self.x_weights)
        return value


def _fit_with_loo(s: np.ndarray, x: np.ndarray | None, y: np.ndarray) -> tuple[_Model, np.ndarray]:
    """The fitted model and its leave-one-out predictions of ``y`` (log-ms), shape ``(N,)``.

    ``s``: N x devices source log-latencies; ``x``: N x features or ``None``. With features, every ridge
    strength is scored by its leave-one-out error and the best is kept; among equal errors the stronger
    (or no feature term) wins. The leave-one-out predictions returned are those of the kept strength.
    """
    n = len(y)
    empty = np.zeros(0)

    def loo_of(alpha: float | None, z: np.ndarray | None) -> np.ndarray:
        keep = ~np.eye(n, dtype=bool)
        return np.array(
            [
                _fit_one(s[keep[i]], None if z is None else z[keep[i]], y[keep[i]], alpha).predict(
                    s[i], None if z is None else z[i]
                )
                for i in range(n)
            ]
        )

    if x is None:
        model = _fit_one(s, None, y, None)
        return _Model(model.weights, model.intercept, None, empty, empty, empty), loo_of(None, None)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    z = (x - mean) / scale  # standardised over all N points: uses no latency, so no leak into the error
    alphas: list[float | None] = list(_RIDGE_ALPHAS)
    if s.shape[1]:
        alphas.append(None)  # beside tables, "no feature term" is a candidate too
    loos = [loo_of(a, z) for a in alphas]
    errors = np.array([np.mean((p - y) ** 2) for p in loos])
    tolerance = errors.min() * (1.0 + 1e-9) + 1e-24
    best = max(i for i, e in enumerate(errors) if e <= tolerance)  # the strongest among equals
    alpha = alphas[best]
    model = _fit_one(s, z, y, alpha)
    if alpha is None:
        return _Model(model.weights, model.intercept, None, empty, empty, empty), loos[best]
    intercept = model.intercept  # in terms of the standardised z: x enters as (x - mean) / scale
    return _Model(model.weights, intercept, alpha, mean, scale, model.x_weights), loos[best]


def _fit_one(s: np.ndarray, z: np.ndarray | None, y: np.ndarray, alpha: float | None) -> _Model:
    """One fit: min ||y - b - s w - z v||^2 + alpha ||v||^2 over free b and v and w >= 0.

    Without features (``alpha`` None) this is non-negative least squares with an intercept. With features
    and tables it is one non-negative least squares problem on an augmented system: v = v+ - v-, both
    >= 0, and the rows sqrt(alpha) I below each half add the ridge penalty (at the optimum one of v+, v-
    is zero, so the penalty is exactly alpha ||v||^2). Centring removes the free intercept exactly.
    """
    empty = np.zeros(0)
    ym = float(y.mean())
    sm = s.mean(axis=0)
    sc = s - sm
    yc = y - ym
    k = s.shape[1]
    if z is None or alpha is None:
        w = _nnls(sc, yc) if k else empty
        return _Model(w, ym - float(sm @ w), None, empty, empty, empty)
    zm = z.mean(axis=0)
    zc = z - zm
    p = z.shape[1]
    if not k:
        v = np.linalg.solve(zc.T @ zc + alpha * np.eye(p), zc.T @ yc)
        return _Model(empty, ym - float(zm @ v), alpha, np.zeros(p), np.ones(p), v)
    root = math.sqrt(alpha) * np.eye(p)
    a = np.block(
        [
            [sc, zc, -zc],
            [np.zeros((p, k)), root, np.zeros((p, p))],
            [np.zeros((p, k)), np.zeros((p, p)), root],
        ]
    )
    solution = _nnls(a, np.concatenate([yc, np.zeros(2 * p)]))
    w = solution[:k]
    v = solution[k : k + p] - solution[k + p :]
    return _Model(w, ym - float(sm @ w) - float(zm @ v), alpha, np.zeros(p), np.ones(p), v)


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ||a x - b|| over x >= 0, with weights at rounding level set to exactly zero."""
    # SciPy comes with scikit-learn; imported here so that `import profilers` stays cheap.
    from scipy.optimize import nnls

    x, _ = nnls(a, b, maxiter=50 * a.shape[1])
    x[x <= 1e-10 * max(1.0, float(x.max(initial=0.0)))] = 0.0
    return np.asarray(x, dtype=float)


def _nnls_with_intercept(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """min ||y - b - s w|| over free b and w >= 0 (weights, intercept): the transfer fit without features."""
    model = _fit_one(s, None, y, None)
    return model.weights, model.intercept


def _feature_matrix(features: Mapping[str, Sequence[float]], keys: Sequence[str]) -> np.ndarray:
    missing = [k for k in keys if k not in features]
    if missing:
        raise TransferError(f"no feature vector for measured arch(s) {_some(missing)}")
    rows = [np.asarray(features[k], dtype=float).ravel() for k in keys]
    if len({len(r) for r in rows}) != 1 or not len(rows[0]):
        raise TransferError("feature vectors must be non-empty and of one length for every arch")
    x = np.stack(rows)
    if not np.all(np.isfinite(x)):
        raise TransferError("feature vectors must hold finite numbers")
    return x


def _positive(what: str, table: Mapping[str, float], keys: Sequence[str]) -> np.ndarray:
    values = np.array([table[k] for k in keys], dtype=float)
    bad = [k for k, v in zip(keys, values, strict=True) if not (math.isfinite(v) and v > 0.0)]
    if bad:
        raise TransferError(
            f"{what}: latency of {_some(bad)} is {table[bad[0]]!r}; latencies must be positive finite ms"
        )
    return values


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _some(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
