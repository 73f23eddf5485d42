"""REINFORCE over a factorised categorical policy (a controller in the style of Zoph & Le 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search._base import Strategy, Suggestion
from search._operators import sample_new
from search._pareto import hypervolume, non_dominated_mask
from search._space import Choice, Space
from search._trial import Objective, Trial, TrialState

__all__ = ["RLStrategy"]

REWARDS = ("chebyshev", "hypervolume")
_RHO = 0.05  # augmentation of the Chebyshev scalarisation
_MAX_DRAWS = 100  # policy draws before a forbidden-heavy space falls back to a uniform draw


class RLStrategy(Strategy):
    """A policy of one softmax per parameter, trained by REINFORCE with a moving-average baseline.

    Every parameter becomes a categorical action: a ``Choice`` over its values, an ``Integer`` with more
    than ``bins`` values and a ``Float`` over ``bins`` values evenly spaced in their encoding (log-spaced
    for ``Float(log=True)``), so proposals lie on those bins. Each told trial updates the logits ``theta``
    of every parameter by ``lr * (advantage * grad log pi(action) + entropy * grad H(pi))``, where the
    advantage is the reward minus an exponential moving average of past rewards (``baseline_decay``).

    Rewards, with objectives normalised by the smallest and largest values seen so far:

    - ``"chebyshev"``: minus the augmented Chebyshev scalarisation ``max_i w_i f_i + 0.05 sum_i w_i f_i``
      with weights ``w`` drawn uniformly from the simplex for each trial (one objective: minus its
      normalised value), in about ``[-1.05, 0]``;
    - ``"hypervolume"``: the hypervolume the trial adds to the front seen so far (reference 1.1), or for
      a dominated trial minus its additive-epsilon distance to that front, in about ``[-1, 1.2]``.

    An infeasible trial gets a reward below every feasible one (lower the larger its violation), a FAILED
    trial the lowest; PRUNED trials (no values) teach nothing. Trials this strategy did not propose are
    learned from too, their values mapped to the nearest bins.

    A draw of the policy that was proposed or told before is drawn again (up to 100 times, then a
    uniform draw of an unseen point), so no evaluation is spent twice on one point.

    Args:
        lr: learning rate of the logits.
        entropy: weight of the entropy bonus (keeps the policy from collapsing too early).
        baseline_decay: weight of the past in the moving-average baseline, in [0, 1).
        bins: actions per ``Float`` parameter, and at most per ``Integer`` parameter.
        reward: ``"chebyshev"`` or ``"hypervolume"``.
        seed: seed of the strategy's random state.

    Example:
        >>> from search import Choice, Objective, RLStrategy, Space
        >>> s = RLStrategy(seed=0)
        >>> s.setup(Space({"k": Choice([3, 5, 7])}), [Objective("error")])
        >>> s.policy()["k"]
        {3: 0.3333333333333333, 5: 0.3333333333333333, 7: 0.3333333333333333}
    """

    name = "rl"

    def __init__(
        self,
        *,
        lr: float = 0.2,
        entropy: float = 0.01,
        baseline_decay: float = 0.9,
        bins: int = 10,
        reward: str = "chebyshev",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if entropy < 0:
            raise ValueError(f"entropy must be >= 0, got {entropy}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.lr, self.entropy, self.baseline_decay, self.bins, self.reward = (
            lr,
            entropy,
            baseline_decay,
            bins,
            reward,
        )
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._actions: list[list[Any]] = []
        self._encoded: list[np.ndarray] = []
        self._theta = np.zeros(0)
        self._starts = self._segment = np.zeros(0, dtype=int)
        self._baseline: float | None = None
        self._lo = self._hi = np.zeros(0)
        self._front = np.zeros((0, 0))
        self._seen: set[Any] = set()

    def setup(self, space: Space, objectives: Sequence[Objective]) -> None:
        super().setup(space, objectives)
        self._rng = np.random.default_rng(self._seed)
        self._actions = [p.grid(None if isinstance(p, Choice) else self.bins) for p in space.values()]
        self._encoded = [
            np.array([p.encode(a) for a in acts]) for p, acts in zip(space.values(), self._actions)
        ]
        # All logits in one vector, parameter j owning theta[starts[j]:starts[j + 1]]: one numpy call per
        # step whatever the number of parameters.
        sizes = np.array([len(a) for a in self._actions])
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        self._segment = np.repeat(np.arange(len(sizes)), sizes)
        self._theta = np.zeros(int(sizes.sum()))
        self._baseline = None
        m = len(objectives)
        self._lo, self._hi = np.full(m, np.inf), np.full(m, -np.inf)
        self._front = np.zeros((0, m))
        self._seen = set()

    def _probabilities(self) -> np.ndarray:
        theta, starts, seg = self._theta, self._starts, self._segment
        e = np.exp(theta - np.maximum.reduceat(theta, starts)[seg])
        return e / np.add.reduceat(e, starts)[seg]

    def policy(self) -> dict[str, dict[Any, float]]:
        """The current probability of every action of every parameter."""
        p = self._probabilities().tolist()
        return {
            name: dict(zip(actions, p[start : start + len(actions)]))
            for name, actions, start in zip(self.space, self._actions, self._starts.tolist())
        }

    def ask(self) -> Suggestion:
        space = self.space
        # Each parameter's probabilities sum to 1, so the running sum over all of them reaches j + 1 at the
        # end of parameter j: drawing u_j in [0, 1) and finding j + u_j in it samples every parameter at once.
        cdf = np.cumsum(self._probabilities())
        n = len(self._starts)
        last = np.append(self._starts[1:], len(cdf)) - 1
        allowed: dict[str, Any] | None = None  # the last allowed draw of the policy
        for _ in range(_MAX_DRAWS):
            target = np.arange(n) + self._rng.random(n)
            index = np.clip(np.searchsorted(cdf, target, side="right"), self._starts, last) - self._starts
            params = {name: actions[k] for name, actions, k in zip(space, self._actions, index.tolist())}
            if not space.is_forbidden(params):
                if self.repeats or self.key(params) not in self._seen:
                    self._seen.add(self.key(params))
                    return Suggestion(params)
                allowed = params
        params = sample_new(space, self._rng, () if self.repeats else self._seen, key=self.key, tries=1000)
        if allowed is not None and self.key(params) in self._seen:
            params = allowed  # nothing unseen is left: the policy's own choice, evaluated again
        self._seen.add(self.key(params))
        return Suggestion(params)

    def tell(self, trial: Trial) -> None:
        if trial.state is TrialState.PRUNED or (trial.state is TrialState.COMPLETE and trial.values is None):
            return
        try:
            actions = [
                self._nearest(p, i, trial.params[name]) for i, (name, p) in enumerate(self.space.items())
            ]
        except (KeyError, ValueError, TypeError):
            return  # not a point of this space
        self._seen.add(self.key(trial.params))
        r = self._reward(trial)
        advantage = 0.0 if self._baseline is None else r - self._baseline
        self._baseline = (
            r
            if self._baseline is None
            else self.baseline_decay * self._baseline + (1 - self.baseline_decay) * r
        )
        # d log pi(a) / d theta = onehot(a) - p per parameter; d H / d theta = -p (log p + H)
        p = self._probabilities()
        grad = -advantage * p
        grad[self._starts + np.array(actions, dtype=int)] += advantage
        if self.entropy:
            logp = np.log(np.maximum(p, 1e-300))
            entropy = -np.add.reduceat(p * logp, self._starts)
            grad += self.entropy * (-p * (logp + entropy[self._segment]))
        self._theta += self.lr * grad

    def _nearest(self, p: Any, i: int, value: Any) -> int:
        if isinstance(p, Choice):
            return p.index(value)
        return int(np.argmin(np.abs(self._encoded[i] - p.encode(value))))

    def _reward(self, trial: Trial) -> float:
        floor = -1.0 - _RHO - 0.1 if self.reward == "chebyshev" else -1.1  # below every feasible reward
        if trial.state is not TrialState.COMPLETE or trial.values is None:
            return floor - 1.0
        f = np.asarray(trial.minimized(self.objectives), dtype=float)
        violation = float(trial.violation or 0.0)
        if violation > 0:
            return floor - (1.0 if math.isinf(violation) else violation / (1.0 + violation))
        self._lo, self._hi = np.minimum(self._lo, f), np.maximum(self._hi, f)
        span = np.where(self._hi > self._lo, self._hi - self._lo, 1.0)
        g = (f - self._lo) / span
        if self.reward == "chebyshev":
            w = self._rng.dirichlet(np.ones(len(f)))
            return -float(np.max(w * g) + _RHO * np.sum(w * g))
        # hypervolume: what this point adds to the front seen so far, in today's normalisation; a dominated
        # point gets minus its additive-epsilon distance to the front instead, so it still teaches something
        front = (self._front - self._lo) / span if len(self._front) else self._front
        F = np.vstack([self._front, f])
        self._front = F[non_dominated_mask(F)]
        if len(front):
            epsilon = float(np.min(np.max(g - front, axis=1)))
            if epsilon >= 0.0:
                return -epsilon
        ref = [1.1] * len(f)
        return float(
            hypervolume(np.vstack([front, g]), ref) - (hypervolume(front, ref) if len(front) else 0.0)
        )
