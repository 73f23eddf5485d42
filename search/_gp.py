"""A small exact Gaussian process in numpy and scipy: Matern-5/2 ARD kernel, type-II maximum likelihood.

Written for the few hundred points of a search. Linear algebra (Cholesky, triangular solves), the
optimiser (L-BFGS-B) and the normal CDF come from scipy. Shapes: ``X`` is ``n x d`` with inputs in
``[0, 1]``, ``y`` has ``n`` entries.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize
from scipy.special import ndtr, ndtri

__all__ = ["GaussianProcess", "normal_cdf", "normal_quantile"]

_SQRT5 = math.sqrt(5.0)
# Bounds of the log-hyperparameters (inputs in [0, 1], targets standardised).
_LOG_LS = (math.log(1e-2), math.log(20.0))
_LOG_SF2 = (math.log(0.05), math.log(20.0))
_LOG_SN2 = (math.log(1e-6), math.log(1.0))
#: Most points the hyperparameters are estimated on (see :meth:`GaussianProcess.fit`).
MAX_FIT_POINTS = 200


class GaussianProcess:
    """Exact GP regression on standardised targets with a Matern-5/2 kernel with one lengthscale per input,
    or per group of inputs.

    ``groups`` (``dim`` integers, ``0 .. k-1``) ties the lengthscales of inputs in the same group: the
    one-hot columns of an unordered choice share one, so the kernel sees only whether two points take the
    same value (``r^2`` grows by ``2 / ls^2`` when they differ), a Hamming-type categorical kernel with one
    lengthscale per parameter instead of one per value.

    Hyperparameters (lengthscales, signal and noise variance) maximise the log marginal likelihood plus
    weak log-priors (MAP-II): lengthscales log-normal with a mean growing with the dimension (as BoTorch's
    default), signal variance Gamma(2, 0.15), noise variance log-normal around 2.5e-3, all within bounds.
    The optimiser is scipy's L-BFGS-B with analytic gradients, started from the previous fit and from the
    default.

    Example:
        >>> X = np.linspace(0, 1, 8)[:, None]
        >>> gp = GaussianProcess(1).fit(X, np.sin(6 * X[:, 0]))
        >>> mean, var = gp.predict(np.array([[0.5]]))
        >>> bool(abs(mean[0] - np.sin(3.0)) < 0.05 and var[0] < 0.01)
        True
    """

    def __init__(self, dim: int, groups: np.ndarray | list[int] | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.dim = dim
        g = np.arange(dim) if groups is None else np.asarray(groups, dtype=int)
        if g.shape != (dim,) or g.min() != 0 or set(g.tolist()) != set(range(int(g.max()) + 1)):
            raise ValueError(f"groups must give each of the {dim} inputs a group 0..k-1, got {groups!r}")
        self._groups = g
        self.n_ls = int(g.max()) + 1
        self._prior_mu = math.sqrt(2.0) + 0.5 * math.log(self.n_ls)
        self.theta = self._default()
        self._X = np.zeros((0, dim))
        self._alpha = np.zeros(0)
        self._L = np.zeros((0, 0))
        self._y_mean, self._y_std = 0.0, 1.0

    def _default(self) -> np.ndarray:
        log_ls = float(np.clip(self._prior_mu - 3.0, *_LOG_LS))  # the prior's mode, exp(mu - sigma^2)
        return np.array([log_ls] * self.n_ls + [0.0, math.log(1e-3)])

    @property
    def lengthscales(self) -> np.ndarray:
        """One lengthscale per input (tied within a group)."""
        lengthscales: np.ndarray = np.exp(self.theta[: self.n_ls])[self._groups]
        return lengthscales

    # -- fitting -------------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        optimize: bool = True,
        restart: bool = True,
        max_iter: int = 60,
        max_fit_points: int | None = MAX_FIT_POINTS,
    ) -> GaussianProcess:
        """Conditions on ``(X, y)``; with ``optimize``, re-estimates the hyperparameters first, starting from
        the current ones and (with ``restart``) from the defaults too.

        With more than ``max_fit_points`` points, the hyperparameters are estimated on that many of them
        (a subset drawn with the number of points as seed, so a fit is reproducible), and the GP is then
        conditioned on all of them: each likelihood evaluation costs a cubic in the points, so this bounds
        the cost of a re-estimation, while a few hundred points fix a handful of lengthscales as well as
        more would. ``None`` uses every point."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.dim or len(X) != len(y) or len(y) == 0:
            raise ValueError(
                f"expected X of shape (n, {self.dim}) and y of shape (n,), got {X.shape} and {y.shape}"
            )
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("X and y must be finite")
        self._y_mean = float(y.mean())
        std = float(y.std())
        self._y_std = std if std > 1e-12 else 1.0
        z = (y - self._y_mean) / self._y_std
        self._X = X
        if optimize and len(y) >= 2:
            lo = np.array([_LOG_LS[0]] * self.n_ls + [_LOG_SF2[0], _LOG_SN2[0]])
            hi = np.array([_LOG_LS[1]] * self.n_ls + [_LOG_SF2[1], _LOG_SN2[1]])
            Xf, zf = X, z
            if max_fit_points is not None and len(y) > max_fit_points:
                keep = np.sort(np.random.default_rng(len(y)).choice(len(y), max_fit_points, replace=False))
                Xf, zf = X[keep], z[keep]
            best: tuple[float, np.ndarray] | None = None
            for start in (self.theta, self._default()) if restart else (self.theta,):
                theta, value = _lbfgs(lambda t: self._objective(t, Xf, zf), start, lo, hi, max_iter)
                if best is None or value < best[0]:
                    best = (value, theta)
            self.theta = best[1]  # type: ignore[index]
        K = self._kernel(X, X, self.theta) + np.exp(self.theta[-1]) * np.eye(len(X))
        self._L = _cholesky(K)
        self._alpha = cho_solve((self._L, True), z, check_finite=False)
        return self

    def predict_mean(self, Xs: np.ndarray) -> np.ndarray:
        """Posterior mean alone at ``Xs`` (as :meth:`predict`, without the cost of the variance)."""
        mean: np.ndarray = self._y_mean + self._y_std * (
            self._kernel(np.asarray(Xs, dtype=float), self._X, self.theta) @ self._alpha
        )
        return mean

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at ``Xs`` (``k x d``), in the units of ``y``."""
        Xs = np.asarray(Xs, dtype=float)
        Ks = self._kernel(Xs, self._X, self.theta)
        mean = Ks @ self._alpha
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        var = np.maximum(np.exp(self.theta[-2]) - np.einsum("ij,ij->j", v, v), 1e-12)
        return self._y_mean + self._y_std * mean, var * self._y_std**2

    # -- internals -----------------------------------------------------------------------------------
    def _kernel(self, A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
        ls = np.exp(theta[: self.n_ls])[self._groups]
        r = np.sqrt(_sqdist(A / ls, B / ls))
        K: np.ndarray = np.exp(theta[-2]) * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r**2) * np.exp(-_SQRT5 * r)
        return K

    def _objective(self, theta: np.ndarray, X: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood minus log-priors, and its gradient in ``theta``."""
        n = len(X)
        k = self.n_ls
        ls, sf2, sn2 = np.exp(theta[:k])[self._groups], math.exp(theta[-2]), math.exp(theta[-1])
        Xs = X / ls
        r = np.sqrt(_sqdist(Xs, Xs))
        e = np.exp(-_SQRT5 * r)
        Kf = sf2 * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r**2) * e
        try:
            L = _cholesky(Kf + sn2 * np.eye(n))
        except np.linalg.LinAlgError:
            return math.inf, np.zeros_like(theta)
        Kinv = cho_solve((L, True), np.eye(n), check_finite=False)
        alpha = cho_solve((L, True), z, check_finite=False)
        value = 0.5 * float(z @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
        W = Kinv - np.outer(alpha, alpha)  # d value / d K = W / 2
        grad = np.empty_like(theta)
        # d K / d log(ls_j) = sf2 * 5/3 * (1 + sqrt5 r) * exp(-sqrt5 r) * (x_ij - x_kj)^2 / ls_j^2
        B = W * (sf2 * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * e)
        b = B.sum(axis=1)
        per_input = 0.5 * (2.0 * (Xs**2).T @ b - 2.0 * np.einsum("ij,ij->j", Xs, B @ Xs))
        grad[:k] = np.bincount(self._groups, weights=per_input, minlength=k)
        grad[-2] = 0.5 * float(np.sum(W * Kf))
        grad[-1] = 0.5 * sn2 * float(np.trace(W))
        # log-priors (densities over the log-parameters, Jacobian included)
        sigma2 = 3.0
        u = theta[:k]
        value += float(np.sum((u - self._prior_mu) ** 2) / (2 * sigma2))
        grad[:k] += (u - self._prior_mu) / sigma2
        value -= 2.0 * theta[-2] - 0.15 * sf2  # Gamma(2, 0.15)
        grad[-2] -= 2.0 - 0.15 * sf2
        value += (theta[-1] - math.log(2.5e-3)) ** 2 / (2 * 4.0)  # log-normal, sd 2 in log space
        grad[-1] += (theta[-1] - math.log(2.5e-3)) / 4.0
        return value, grad


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
    clipped: np.ndarray = np.maximum(d, 0.0)
    return clipped


def _cholesky(K: np.ndarray) -> np.ndarray:
    jitter = 0.0
    scale = float(np.mean(np.diag(K)))
    for _ in range(6):
        try:
            return np.linalg.cholesky(K + jitter * np.eye(len(K)))
        except np.linalg.LinAlgError:
            jitter = scale * 1e-9 if jitter == 0.0 else jitter * 10.0
    return np.linalg.cholesky(K + jitter * np.eye(len(K)))


def _lbfgs(fun, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """scipy's L-BFGS-B on the box ``[lo, hi]``; ``fun`` returns the value and its gradient."""
    x0 = np.clip(np.asarray(x0, dtype=float), lo, hi)
    f0, _ = fun(x0)
    if not math.isfinite(f0):
        return x0, f0

    def safe(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun(x)
        return (f, g) if math.isfinite(f) else (1e25, np.zeros_like(x))

    res = minimize(
        safe, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)), options={"maxiter": max_iter}
    )
    if not math.isfinite(res.fun) or res.fun > f0:
        return x0, f0
    return np.asarray(res.x, dtype=float), float(res.fun)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (scipy's ``ndtr``)."""
    cdf: np.ndarray = ndtr(np.asarray(z, dtype=float))  # scipy has no type information
    return cdf


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """Inverse of the standard normal CDF (scipy's ``ndtri``)."""
    quantile: np.ndarray = ndtri(np.asarray(p, dtype=float))  # scipy has no type information
    return quantile
