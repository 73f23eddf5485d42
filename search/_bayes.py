"""Bayesian multi-objective, multi-fidelity search: GP surrogates inside Hyperband brackets."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from search._base import Strategy, Suggestion
from search._encoding import Encoder
from search._gp import GaussianProcess, normal_cdf, normal_quantile
from search._hyperband import Bracket, hyperband_schedule
from search._operators import mutate, point_key, sample_many, sample_new
from search._pareto import non_dominated_mask
from search._ranking import TIE_BREAKS, feasible_first_order
from search._space import Choice, Integer, Space
from search._trial import Objective, Trial, TrialState

__all__ = ["BayesStrategy"]

BACKENDS = ("numpy", "botorch")
SCALINGS = ("auto", "rank", "robust", "minmax")
CATEGORICAL = ("shared", "per-value")
ACQUISITIONS = ("ehvi", "parego")
_RHO = 0.05  # augmentation of the Chebyshev scalarisation (ParEGO)
_N_MC = 64  # posterior samples per candidate for the expected improvement
_EHVI_TOP = 128  # candidates whose expected hypervolume improvement is estimated from draws
_MC_SAMPLES = 4096  # uniform samples of the box that estimate the improvement for three objectives or more
_REF_MARGIN = 0.1  # EHVI reference: the worst observed value of each objective + 10 % of its range
_FRONT = 10  # best observed configurations whose mutants join the candidate set (at least)
_MAX_PARENTS = 40  # at most this many observed configurations have their neighbourhood scored
_REFIT_GROWTH = 0.1  # hyperparameters are re-estimated when the data has grown by this share
_MAX_CACHED_NETWORKS = 100_000  # points whose network is kept (the cache starts again beyond)


class BayesStrategy(Strategy):
    """Gaussian-process Bayesian optimisation of several objectives, inside Hyperband brackets.

    **Fidelity.** With ``min_fidelity < 1`` new configurations start in Hyperband brackets (Li et al.
    2018) of successive halving: bracket ``s`` runs its configurations at fidelity ``eta**-s`` and, each
    time a rung has been told, promotes its best ``1 / eta`` to the next rung (``eta`` times the
    fidelity, up to 1): best means feasible first, then lower non-dominated rank, then larger crowding
    distance (or hypervolume contribution, ``promotion="hypervolume"``). The others are pruned. A promotion
    is a suggestion with the same params at the higher fidelity; ``attrs`` carry ``bracket``, ``rung`` and
    ``config`` (the configuration's number in its bracket). Brackets overlap: while a rung waits for its
    last members, the next bracket starts, so ``ask`` never returns ``None``. With ``min_fidelity=1``
    (the default) every bracket is a single configuration at fidelity 1: plain Bayesian optimisation;
    ``min_fidelity=1/9, eta=3`` gives brackets of 9, 5 and 3 configurations, as in BOHB.

    **Surrogates.** One GP per objective (Matern-5/2 kernel, hyperparameters by maximum marginal
    likelihood with weak priors, see :class:`search._gp.GaussianProcess`) over the encoded space in
    ``[0, 1]^d``: ``Integer`` and ``Float`` (log-scaled when ``log``) min-max scaled, a ``Choice`` as its
    index when its values are increasing numbers (or it has two values), one-hot otherwise. Each input has
    its own lengthscale, except that the one-hot columns of a ``Choice`` share one
    (``categorical="shared"``, the default; ``"per-value"`` gives each value its own): the kernel then sees
    whether two points take the same value of that choice, a Hamming-type kernel with one lengthscale per
    parameter. The GPs take fidelity as one more input (``log`` fidelity scaled to ``[0, 1]``) and learn
    from every observation, at every fidelity; they are queried at fidelity 1. FAILED trials never reach
    the objective GPs; as soon as some trial is infeasible or FAILED, a further GP of ``log1p(violation)``
    (FAILED counting as the worst seen) gives the probability that a candidate is feasible.

    **Objective scaling** (``scaling``). The GPs model the minimized objectives after a monotone transform
    that keeps the Pareto order: ``"rank"`` replaces each objective by the normal scores of its ranks
    (``Phi^-1((rank - 1/2) / n)``), insensitive to outliers such as untrainable candidates at 90 %
    error; ``"robust"`` lowers values above ``Q3 + 3 IQR`` to that fence and leaves the rest as measured;
    ``"minmax"`` uses the values as they are. ``"auto"`` (the default) is ``"rank"`` where the acquisition
    is the hypervolume improvement (two objectives, or three or more with ``ehvi_many``) and ``"robust"``
    otherwise: with ParEGO on DTLZ2 (3 objectives, smooth) ranks cost regret against ``robust``; with the
    hypervolume improvement on NAS-Bench-201 (degenerate cells) they win, with two objectives and with
    three (BENCHMARKS.md (l)).

    **Acquisition** (``backend="numpy"``, the default). Two objectives, ``acquisition="ehvi"`` (the
    default): the expected hypervolume improvement over the front of the posterior means of the feasible
    observed configurations, reference at the worst value of each (transformed) objective plus 10 % of
    its range. Every candidate is screened by the improvement of its optimistic point (mean minus two
    standard deviations); the 128 most promising get the expectation from 64 posterior draws, times the
    probability of feasibility. With two objectives the improvement is exact. With three or more,
    ``ehvi_many=True`` estimates it from ``mc_samples`` (4,096) uniform samples of the box between the
    optimistic points and the reference, the same samples for every candidate of one proposal (4,096
    rather than 1,024 lowered the regret at 100 and 200 evaluations on one 3-objective NAS-Bench-201
    problem and was level on the other, BENCHMARKS.md (l)): on the 3-objective NAS-Bench-201
    problems it lowers the regret at every budget measured (50 to 500 evaluations), on DTLZ2 it raises
    it, so it is not the default (its time per trial is about 2.5 times ParEGO's); ``auto`` picks it for
    three objectives or more in a space with unordered choices (BENCHMARKS.md (l)). Otherwise (one objective,
    ``acquisition="parego"``, three or more objectives without ``ehvi_many``), or when no candidate improves
    the front: ParEGO (Knowles 2006),
    weights drawn uniformly from the simplex and candidates scored by the expected improvement of the
    augmented Chebyshev scalarisation of the normalised objectives over the best feasible observed
    configuration, from 64 posterior draws, times the probability of feasibility (that probability alone
    until something feasible has been seen). ``backend="botorch"`` fits BoTorch ``SingleTaskGP`` models
    (Matern-5/2, ARD) and scores candidates with qLogNEHVI (qLogNEI for one objective), constraints as an
    outcome; it needs ``pip install hwnas[bayes]``.

    **Candidates**: ``n_candidates`` uniform draws; every point one gene away from each parent (another
    value of a ``Choice``, a step of one or two of an ``Integer``; at most ``2 n_candidates`` of them, drawn
    at random when there are more); and about ``n_candidates / 2`` mutants of the parents. Parents are every
    non-dominated feasible observed configuration, at least the ten best and at most forty. All are allowed
    by the space and not proposed before (by :meth:`Strategy.key`); the first ``n_initial``
    configurations are uniform draws.

    **Networks.** Where the study has a ``network`` map (params -> the params of the network they compute,
    every choice that cannot change it at a fixed value) the GP of each objective that is
    :attr:`Objective.of_network` sees every point as the point of its network: two cells that differ only
    on dead paths are one input, so what one taught the model about its network holds for the other, and
    inputs that cannot matter do not dilute the kernel (inactive parameters imputed, as SMAC does). An
    objective with ``of_network=False`` (a latency that also pays for the dead paths) keeps the point as
    given, as does the feasibility GP. On NAS-Bench-201 it lowered the regret in 25 of 28 cells (7 problems,
    50 to 500 evaluations; ``pixel2`` at 100 from 5.98 to 3.76 %, BENCHMARKS.md (l)). The ``botorch``
    backend models the points as given.

    **Cost**: see BENCHMARKS.md (l) for the current figures. Before the scaling, kernel, acquisition and
    candidate changes, measured on a shared 2-core machine (one thread; two objectives; 10 parameters, 12
    encoded inputs; 512 random candidates), the numpy backend ran 500 trials in 77 s, 0.15 s per trial on
    average (0.07 s around 100 observations, 0.28 s around 500). Its hyperparameters are re-estimated each time
    the data has grown by 10% (from two starts when it has doubled), on at most 200 observations (see
    :meth:`GaussianProcess.fit`); in between the GPs are only conditioned. On NAS-Bench-201 (six choices, two
    objectives, 500 trials, load average 3 on 2 cores) that bounds the slowest ask at 0.77 s, where estimating
    on every observation took up to 9.5 s. The BoTorch backend refits its models at every new configuration and
    scores the candidates with qLogNEHVI: 3 to 4 s per new configuration at 50 to 100 observations, 7 to 9
    s at 200 and 27 to 31 s at 500, so it is not the default.

    Args:
        min_fidelity: lowest fidelity a bracket starts at, in (0, 1]; 1 turns brackets off.
        eta: successive-halving rate (keep ``1 / eta`` of a rung, ``eta`` times the fidelity), at least 2.
        n_initial: configurations drawn uniformly before the surrogates take over.
        n_candidates: uniform candidates scored per new configuration.
        backend: ``"numpy"`` (EHVI / ParEGO, numpy and scipy) or ``"botorch"`` (qLogNEHVI).
        promotion: ``"crowding"`` or ``"hypervolume"``, the tie-break within a non-dominated front.
        scaling: ``"auto"``, ``"rank"``, ``"robust"`` or ``"minmax"``: how objectives reach the GPs.
        categorical: ``"shared"`` (one lengthscale per unordered ``Choice``) or ``"per-value"``.
        acquisition: ``"ehvi"`` (ParEGO for one objective) or ``"parego"``.
        ehvi_many: the expected hypervolume improvement for three objectives or more too (else ParEGO).
        mc_samples: uniform samples of the box that estimate that improvement (three objectives or more).
        seed: seed of the strategy's random state.

    Example:
        >>> from search import BayesStrategy, Float, Integer, Space, optimize
        >>> space = Space({"x": Float(0, 1), "n": Integer(0, 4)})
        >>> study = optimize(lambda p: (p["x"] + p["n"], (1 - p["x"]) ** 2), space, ["minimize", "minimize"],
        ...                  BayesStrategy(n_initial=4, seed=0), budget=8)
        >>> len(study.trials)
        8
    """

    name = "bayes"

    def __init__(
        self,
        *,
        min_fidelity: float = 1.0,
        eta: int = 3,
        n_initial: int = 10,
        n_candidates: int = 512,
        backend: str = "numpy",
        promotion: str = "crowding",
        scaling: str = "auto",
        categorical: str = "shared",
        acquisition: str = "ehvi",
        ehvi_many: bool = False,
        mc_samples: int = _MC_SAMPLES,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < min_fidelity <= 1.0:
            raise ValueError(f"min_fidelity must be in (0, 1], got {min_fidelity}")
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
        if n_initial < 1:
            raise ValueError(f"n_initial must be at least 1, got {n_initial}")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be at least 1, got {n_candidates}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if categorical not in CATEGORICAL:
            raise ValueError(f"categorical must be one of {CATEGORICAL}, got {categorical!r}")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        if not isinstance(ehvi_many, bool):
            raise ValueError(f"ehvi_many must be True or False, got {ehvi_many!r}")
        if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
            raise ValueError(f"mc_samples must be a positive integer, got {mc_samples!r}")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        if promotion not in TIE_BREAKS:
            raise ValueError(f"promotion must be one of {TIE_BREAKS}, got {promotion!r}")
        if backend == "botorch":
            from search._botorch import require_botorch

            require_botorch()
        self.min_fidelity = min_fidelity
        self.eta = eta
        self.n_initial = n_initial
        self.n_candidates = n_candidates
        self.backend = backend
        self.promotion = promotion
        self.scaling = scaling
        self.categorical = categorical
        self.acquisition = acquisition
        self.ehvi_many = ehvi_many
        self.mc_samples = mc_samples
        self._seed = seed
        self._schedule = hyperband_schedule(min_fidelity, eta)
        self._reset()

    def _reset(self) -> None:
        self._rng = np.random.default_rng(self._seed)
        self._brackets: dict[int, Bracket] = {}
        self._n_brackets = 0
        self._newest: Bracket | None = None
        self._n_new = 0
        self._seen: set[Hashable] = set()
        # observations: encoded params (fidelity column included), minimized values, violation
        self._X: list[np.ndarray] = []
        self._Xn: list[np.ndarray] = []  # the same, of each point's network (see Study's ``network``)
        self._networks: dict[Hashable, dict[str, Any]] = {}  # point -> its network, as mapped once
        self._F: list[np.ndarray] = []
        self._violation: list[float] = []
        self._obs: list[tuple[dict[str, Any], float]] = []
        self._failed_X: list[np.ndarray] = []
        self._gps: list[GaussianProcess] = []
        self._fitted_n: list[int] = []
        self._restarted_n: list[int] = []

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        self._reset()
        self._encoder = Encoder(space, self.min_fidelity)
        groups = self._encoder.groups if self.categorical == "shared" else self._encoder.per_column
        self._gps = [GaussianProcess(self._encoder.dim, groups) for _ in range(len(objectives) + 1)]
        self._fitted_n = [0] * len(self._gps)
        self._restarted_n = [0] * len(self._gps)
        #: which objective GPs see each point's network (the study's ``network`` map) instead of the point
        self._of_network = [
            self.network is not None and self.backend == "numpy" and o.of_network for o in objectives
        ]

    @property
    def brackets(self) -> list[Bracket]:
        """The brackets still running, oldest first."""
        return list(self._brackets.values())

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> Suggestion:
        for bracket in self._brackets.values():
            nxt = bracket.next_promotion()
            if nxt is not None:
                rung, config = nxt
                return self._suggest(bracket, rung, config)
        if self._newest is None or self._newest.slots_left <= 0:
            fidelities, sizes = self._schedule[self._n_brackets % len(self._schedule)]
            self._newest = Bracket(self._n_brackets, fidelities, sizes, tie_break=self.promotion)
            self._brackets[self._n_brackets] = self._newest
            self._n_brackets += 1
        params = self._propose()
        self._n_new += 1
        self._seen.add(self.key(params))
        return self._suggest(self._newest, 0, self._newest.add(params))

    def _suggest(self, bracket: Bracket, rung: int, config: int) -> Suggestion:
        attrs = {"bracket": bracket.index, "rung": rung, "config": config}
        return Suggestion(dict(bracket.configs[config]), fidelity=bracket.fidelities[rung], attrs=attrs)

    def tell(self, trial: Trial) -> None:
        complete = trial.state is TrialState.COMPLETE and trial.values is not None
        values = np.asarray(trial.minimized(self.objectives), dtype=float) if complete else None
        violation = float(trial.violation or 0.0) if complete else math.inf
        index, rung, config = (trial.attrs.get(k) for k in ("bracket", "rung", "config"))
        if all(isinstance(v, int) for v in (index, rung, config)) and index in self._brackets:
            bracket = self._brackets[index]
            bracket.record(rung, config, values, violation)  # type: ignore[arg-type]
            if bracket.finished:
                del self._brackets[bracket.index]
        if trial.state is TrialState.PRUNED:
            return
        try:
            x = self._encoder.encode([trial.params], [trial.fidelity])[0]
            xn = self._encode_networks([trial.params], [trial.fidelity])[0] if any(self._of_network) else x
            self._seen.add(self.key(trial.params))
        except (KeyError, ValueError, TypeError):
            return  # not a point of this space
        if values is not None:
            self._X.append(x)
            self._Xn.append(xn)
            self._F.append(values)
            self._violation.append(violation)
            self._obs.append((dict(trial.params), trial.fidelity))
        else:
            self._failed_X.append(x)

    # -- proposals -----------------------------------------------------------------------------------
    def _propose(self) -> dict[str, Any]:
        space = self.space
        seen = () if self.repeats else self._seen
        if self._n_new < self.n_initial or len(self._F) < 2:
            return sample_new(space, self._rng, seen, key=self.key)
        candidates = self._candidates()
        if not candidates:
            return sample_new(space, self._rng, seen, key=self.key, tries=1000)
        Xc = self._encoder.encode(candidates, [1.0] * len(candidates))
        if self.backend == "botorch":
            index = self._acquire_botorch(Xc)
        else:
            Xcn = self._encode_networks(candidates, [1.0] * len(candidates)) if any(self._of_network) else Xc
            index = self._acquire_numpy(Xc, Xcn)
        return candidates[index]

    def _encode_networks(self, points: Sequence[Mapping[str, Any]], fidelities: Sequence[float]) -> np.ndarray:
        """Encoded rows of the networks ``points`` compute (the study's ``network`` map). The map's results
        are kept by point: the front's neighbours and the observations come back at every proposal."""
        network = self.network
        assert network is not None
        cache = self._networks
        if len(cache) > _MAX_CACHED_NETWORKS:
            cache.clear()
        mapped = []
        for p in points:
            key = point_key(self.space, p)
            net = cache.get(key)
            if net is None:
                net = cache[key] = dict(network(p))
            mapped.append(net)
        return self._encoder.encode(mapped, fidelities)

    def _candidates(self) -> list[dict[str, Any]]:
        space, rng = self.space, self._rng
        out: list[dict[str, Any]] = []
        keys: set[Hashable] = set()

        def add(params: dict[str, Any] | None) -> None:
            if params is None:
                return
            key = self.key(params)
            if (self.repeats or key not in self._seen) and key not in keys:
                keys.add(key)
                out.append(params)

        for params in sample_many(space, rng, self.n_candidates):
            add(params)
        front = self._front()
        # the whole neighbourhood (one gene changed) of every parent when it is small enough, and mutants
        # (several genes changed) of each: the acquisition then searches around the whole front
        neighbours = [q for parent in front for q in _neighbours(space, parent)]
        if len(neighbours) > 2 * self.n_candidates:
            keep = rng.choice(len(neighbours), size=2 * self.n_candidates, replace=False)
            neighbours = [neighbours[i] for i in sorted(keep.tolist())]
        for q in neighbours:
            add(q)
        per = max(1, self.n_candidates // (2 * max(1, len(front))))
        for parent in front:
            for _ in range(per):
                add(mutate(space, parent, rng, tries=3))
        return out

    def _front(self) -> list[dict[str, Any]]:
        """Parents of the local candidates: every non-dominated feasible configuration (each at its highest
        observed fidelity) and at least the ten best, best first, at most 40."""
        best: dict[tuple[Any, ...], int] = {}
        for i, (params, fidelity) in enumerate(self._obs):
            key = point_key(self.space, params)
            if key not in best or fidelity >= self._obs[best[key]][1]:
                best[key] = i
        rows = sorted(best.values())
        F = np.array([self._F[i] for i in rows])
        violation = [self._violation[i] for i in rows]
        order = feasible_first_order(F, violation)
        feasible = np.array(violation) == 0.0
        first = int(np.sum(non_dominated_mask(F[feasible]))) if np.any(feasible) else 0
        n = min(max(_FRONT, first), _MAX_PARENTS)
        return [self._obs[rows[i]][0] for i in order[:n]]

    def _fit(self, j: int, X: np.ndarray, y: np.ndarray) -> GaussianProcess:
        """Conditions GP ``j``; re-estimates its hyperparameters when the data has grown by 10% (at least
        2 points), from the defaults too each time the data has doubled."""
        n, last, restarted = len(y), self._fitted_n[j], self._restarted_n[j]
        refit = n - last >= max(2, int(_REFIT_GROWTH * last)) or last == 0
        restart = refit and n >= 2 * restarted
        if refit:
            self._fitted_n[j] = n
        if restart:
            self._restarted_n[j] = n
        return self._gps[j].fit(X, y, optimize=refit, restart=restart)

    def _feasibility(self) -> tuple[np.ndarray, float] | None:
        """Targets of the feasibility GP (``log1p(violation)``, FAILED as the worst seen) and the threshold
        below which a prediction counts as feasible; ``None`` while every trial has been feasible."""
        v = np.array(self._violation)
        if not self._failed_X and not np.any(v > 0):
            return None
        t = np.log1p(np.minimum(v, 1e12))
        worst = 1.0 + (float(t[np.isfinite(t)].max()) if len(t) else 0.0)
        t = np.where(np.isfinite(t), t, worst)
        t = np.concatenate([t, np.full(len(self._failed_X), worst)])
        positive = t[t > 0]
        tau = 0.5 * float(positive.min()) if len(positive) else 0.5
        return t, tau

    def _scaled(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The observed inputs and the objectives as the surrogates see them (see ``scaling``)."""
        scaling = self.scaling
        if scaling == "auto":
            m = F.shape[1]
            scaling = "rank" if m == 2 or self._hypervolume_acquisition(m) else "robust"
        if scaling == "rank":
            F = _normal_scores(F)
        elif scaling == "robust":
            F = _clip_outliers(F)
        return np.array(self._X), F

    def _hypervolume_acquisition(self, m: int) -> bool:
        """Whether proposals for ``m`` objectives score candidates by the hypervolume improvement."""
        return (
            self.backend == "numpy" and self.acquisition == "ehvi" and (m == 2 or (m > 2 and self.ehvi_many))
        )

    def _acquire_numpy(self, Xc: np.ndarray, Xcn: np.ndarray) -> int:
        """Index of the candidate to propose; ``Xc`` are the candidates encoded, ``Xcn`` their networks."""
        X, F = self._scaled(np.array(self._F))
        m = F.shape[1]
        mu, var = np.empty((len(Xc), m)), np.empty((len(Xc), m))
        net = self._of_network
        Xn = np.array(self._Xn) if any(net) else X
        gps = [self._fit(j, Xn if net[j] else X, F[:, j]) for j in range(m)]
        for j, gp in enumerate(gps):
            mu[:, j], var[:, j] = gp.predict(Xcn if net[j] else Xc)
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        w = self._rng.dirichlet(np.ones(m))

        def scalarise(G: np.ndarray) -> np.ndarray:
            g = (G - lo) / span
            scalarised: np.ndarray = np.max(w * g, axis=-1) + _RHO * np.sum(w * g, axis=-1)
            return scalarised

        feasible = np.array(self._violation) == 0.0
        mb: np.ndarray | None = None  # posterior means of the feasible observed configurations
        if np.any(feasible):
            if self._encoder.has_fidelity:  # the observed configurations at fidelity 1
                configs = [p for (p, _), ok in zip(self._obs, feasible) if ok]
                Xb = self._encoder.encode(configs, [1.0] * len(configs))
                Xbn = self._encode_networks(configs, [1.0] * len(configs)) if any(net) else Xb
            else:  # their rows as stored
                Xb, Xbn = X[feasible], Xn[feasible]
            mb = np.column_stack([gp.predict_mean(Xbn if net[j] else Xb) for j, gp in enumerate(gps)])
        pof = np.ones(len(Xc))
        feas = self._feasibility()
        if feas is not None:
            t, tau = feas
            Xf = np.vstack([X, np.array(self._failed_X)]) if self._failed_X else X
            mc, vc = self._fit(m, Xf, t).predict(Xc)
            pof = normal_cdf((tau - mc) / np.sqrt(vc))
        if mb is None:
            return int(np.argmax(pof))
        sd = np.sqrt(var)
        if self._hypervolume_acquisition(m):
            front = (mb - lo) / span
            front = front[non_dominated_mask(front)]
            ref = 1.0 + _REF_MARGIN
            low = (mu - 2.0 * sd - lo) / span
            improvement: Callable[[np.ndarray], np.ndarray]
            if m == 2:
                improvement = functools.partial(_hypervolume_improvement_2d, front=front, reference=ref)
            else:
                improvement = _MonteCarloImprovement(front, ref, low.min(axis=0), self._rng, self.mc_samples)
            # screen every candidate by the improvement of its optimistic point (mean - 2 sd), then estimate
            # the expected improvement of the most promising ones from posterior draws
            optimistic = improvement(low) * pof
            top = np.argsort(-optimistic, kind="stable")[:_EHVI_TOP]
            top = top[optimistic[top] > 0]
            if len(top):
                Z = self._rng.standard_normal((_N_MC, len(top), m))
                draws = (mu[top] + sd[top] * Z - lo) / span
                acq = improvement(draws).mean(axis=0) * pof[top]
                if np.any(acq > 0):
                    return int(top[int(np.argmax(acq))])
        Z = self._rng.standard_normal((_N_MC, len(Xc), m))
        best = float(scalarise(mb).min())
        acq = np.maximum(best - scalarise(mu + sd * Z), 0.0).mean(axis=0) * pof
        if not np.any(acq > 0):  # flat acquisition: the lowest expected scalarisation
            return int(np.argmin(scalarise(mu) - pof))
        return int(np.argmax(acq))

    def _acquire_botorch(self, Xc: np.ndarray) -> int:
        from search._botorch import select

        X, F = self._scaled(np.array(self._F))
        constraint = None
        feas = self._feasibility()
        if feas is not None:
            t, tau = feas
            Xf = np.vstack([X, np.array(self._failed_X)]) if self._failed_X else X
            constraint = (Xf, t, tau)
        feasible = np.array(self._violation) == 0.0
        configs = [p for (p, _), ok in zip(self._obs, feasible) if ok] or [p for p, _ in self._obs]
        X_baseline = self._encoder.encode(configs, [1.0] * len(configs))
        return select(X, F, Xc, X_baseline, constraint=constraint, seed=int(self._rng.integers(2**31)))


def _hypervolume_improvement_2d(points: np.ndarray, front: np.ndarray, reference: float) -> np.ndarray:
    """Hypervolume that each of ``points`` (``... x 2``, minimized) adds to ``front`` (``k x 2``,
    non-dominated), within the box below ``(reference, reference)``; shape ``...``.

    The region the front dominates is a staircase: over ``[f1_i, f1_{i+1})`` (front sorted by ``f1``) it
    starts at height ``f2_i``; left of the first point nothing is dominated. A point adds, over each step,
    its width right of the point times its height above the point.
    """
    front = front[np.all(front < reference, axis=1)]
    front = front[np.argsort(front[:, 0], kind="stable")]
    starts = np.concatenate([[-np.inf], front[:, 0]])
    ends = np.concatenate([front[:, 0], [reference]])
    heights = np.concatenate([[reference], front[:, 1]])
    p1, p2 = points[..., 0:1], points[..., 1:2]
    width = np.clip(ends - np.maximum(starts, p1), 0.0, None)
    height = np.clip(heights - p2, 0.0, None)
    improvement: np.ndarray = np.sum(width * height, axis=-1)
    return improvement


class _MonteCarloImprovement:
    """Hypervolume improvement over ``front`` (``k x m``, minimized) within the box from ``low`` to
    ``reference`` in every objective, estimated from uniform samples of the box: the share of the samples the
    front does not dominate and a point does, times the box's volume. Any number of objectives; the samples
    are drawn once, so every point of one acquisition is measured against the same ones."""

    def __init__(
        self,
        front: np.ndarray,
        reference: float,
        low: np.ndarray,
        rng: np.random.Generator,
        n_samples: int = _MC_SAMPLES,
    ) -> None:
        m = front.shape[1]
        low = np.minimum(np.minimum(low, front.min(axis=0)), reference - 1e-9)
        samples = rng.uniform(low, reference, size=(n_samples, m))
        # a sample is dominated when some front point is at or below it everywhere
        self._free = samples[~_at_or_below(front, samples.T).any(axis=0)]
        self._cell = float(np.prod(reference - low)) / n_samples

    def __call__(self, points: np.ndarray) -> np.ndarray:
        shape, m = points.shape[:-1], points.shape[-1]
        flat = points.reshape(-1, m)
        counts = np.zeros(len(flat))
        free = self._free.T  # m x samples
        for start in range(0, len(flat), 256):  # bounded memory: 256 points x the free samples at a time
            block = flat[start : start + 256]
            counts[start : start + 256] = np.count_nonzero(_at_or_below(block, free), axis=1)
        improvement: np.ndarray = (counts * self._cell).reshape(shape)
        return improvement


def _at_or_below(points: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``[i, s]``: point ``i`` (rows of ``points``, ``k x m``) is at or below sample ``s`` (columns of
    ``samples``, ``m x n``) in every objective; compared objective by objective, which is faster than a
    reduction over a short last axis."""
    below: np.ndarray = points[:, 0:1] <= samples[0]
    for j in range(1, points.shape[1]):
        below &= points[:, j : j + 1] <= samples[j]
    return below


def _clip_outliers(F: np.ndarray) -> np.ndarray:
    """Each column of ``F`` (minimized) with its values above ``Q3 + 3 IQR`` lowered to that fence: bad
    outliers (a degenerate candidate) no longer stretch the range, good values are never touched, and a
    column without outliers is left as it is."""
    q1, q3 = np.percentile(F, [25, 75], axis=0)
    clipped: np.ndarray = np.minimum(F, np.where(q3 > q1, q3 + 3.0 * (q3 - q1), np.inf))
    return clipped


def _normal_scores(F: np.ndarray) -> np.ndarray:
    """Each column of ``F`` (``n x m``) replaced by the normal scores of its ranks,
    ``Phi^-1((rank - 1/2) / n)`` (ties share their mean rank): monotone, so the Pareto order is kept, and
    insensitive to outliers (a degenerate candidate at 90 % error is one rank above the next, not a
    stretch that flattens every difference among good ones)."""
    n = len(F)
    out = np.empty(F.shape, dtype=float)
    for j in range(F.shape[1]):
        _, inverse, counts = np.unique(F[:, j], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        out[:, j] = (ends - (counts - 1) / 2.0)[inverse]  # mean rank of each group of ties, from 1
    return normal_quantile((out - 0.5) / n)


def _neighbours(space: Space, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every allowed point one gene away from ``params``: another value of a ``Choice``, a step of one or
    two up or down of an ``Integer`` (``Float`` genes are left to random mutation)."""
    out: list[dict[str, Any]] = []
    for name, p in space.items():
        if isinstance(p, Choice):
            own = p.index(params[name])
            values = [v for i, v in enumerate(p.values) if i != own]
        elif isinstance(p, Integer):
            values = [params[name] + k * p.step for k in (-2, -1, 1, 2)]
            values = [v for v in values if p.low <= v <= p.high]
        else:
            continue
        for v in values:
            q = {**params, name: v}
            if not space.is_forbidden(q):
                out.append(q)
    return out
