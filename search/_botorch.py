"""The optional BoTorch backend of ``BayesStrategy``: qLogNEHVI over a candidate set.

BoTorch (and so torch) is imported inside the functions only, so ``import search`` never needs it.
Arrays cross this boundary as numpy; tensors stay inside.
"""

from __future__ import annotations

import numpy as np

__all__ = ["require_botorch", "select"]

_N_MC = 64
_BATCH = 256


def require_botorch() -> None:
    """Raises ``ImportError`` naming the extra to install when BoTorch cannot be imported."""
    try:
        import botorch  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "BayesStrategy(backend='botorch') needs BoTorch: pip install hwnas[bayes] "
            "(or use the default backend='numpy')"
        ) from e


def _no_kernel_compilation() -> None:
    """Keeps BoTorch (0.17 and later) from compiling its fused qLogEHVI C++ kernel in this process.

    That kernel is built on first use with the system's C++ compiler and a lock file under
    ``~/.cache/torch_extensions``: minutes of compilation inside a search, a failure without a compiler,
    and a wait without end when an earlier process was killed while holding the lock. The pure-Python
    path it falls back to computes the same values.
    """
    import importlib

    try:
        logei = importlib.import_module("botorch.acquisition.multi_objective.logei")
    except ImportError:  # pragma: no cover - an older BoTorch without the module
        return
    if hasattr(logei, "_load_attempted"):
        setattr(logei, "_load_attempted", True)  # noqa: B010 - a private flag, not typed


def select(
    X: np.ndarray,
    F: np.ndarray,
    candidates: np.ndarray,
    X_baseline: np.ndarray,
    *,
    constraint: tuple[np.ndarray, np.ndarray, float] | None = None,
    seed: int,
) -> int:
    """Index of the candidate with the largest qLogNEHVI (qLogNEI for one objective).

    Args:
        X: ``n x d`` observed inputs in ``[0, 1]``.
        F: ``n x m`` observed values, minimized.
        candidates: ``k x d`` inputs to score.
        X_baseline: ``b x d`` inputs of the observed configurations, at the fidelity to optimise.
        constraint: ``(Xc, c, tau)``: inputs and values of a constraint outcome, feasible when ``c <= tau``.
        seed: seeds torch (forked, so the caller's torch state is untouched) and the QMC sampler.
    """
    require_botorch()
    import torch
    from botorch.acquisition.acquisition import AcquisitionFunction
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.exceptions.errors import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from botorch.sampling.normal import SobolQMCNormalSampler
    from gpytorch.mlls import SumMarginalLogLikelihood

    _no_kernel_compilation()
    m = F.shape[1]
    d = X.shape[1]

    def gp(x: np.ndarray, y: np.ndarray) -> SingleTaskGP:
        return SingleTaskGP(
            torch.tensor(x, dtype=torch.double),
            torch.tensor(y, dtype=torch.double).unsqueeze(-1),
            # Matern-5/2 with ARD and BoTorch's dimension-scaled log-normal lengthscale prior
            covar_module=get_covar_module_with_dim_scaled_prior(ard_num_dims=d, use_rbf_kernel=False),
            outcome_transform=Standardize(m=1),
        )

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        models = [gp(X, -F[:, j]) for j in range(m)]  # BoTorch maximizes
        if constraint is not None:
            models.append(gp(constraint[0], constraint[1]))
        model = ModelListGP(*models)
        try:
            fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        except ModelFittingError:  # keep the prior's hyperparameters: a poorer model, not a stopped search
            model.eval()
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([_N_MC]), seed=seed)
        constraints = None
        if constraint is not None:
            tau = float(constraint[2])
            constraints = [lambda Z: Z[..., m] - tau]
        baseline = torch.tensor(X_baseline, dtype=torch.double)
        acqf: AcquisitionFunction
        if m == 1:

            def _first_output(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
                return Z[..., 0]

            acqf = qLogNoisyExpectedImprovement(
                model,
                baseline,
                sampler=sampler,
                objective=GenericMCObjective(_first_output),
                constraints=constraints,
                prune_baseline=True,
            )
        else:
            Y = -F
            ref = Y.min(axis=0) - 0.1 * np.maximum(Y.max(axis=0) - Y.min(axis=0), 1e-9)
            acqf = qLogNoisyExpectedHypervolumeImprovement(
                model,
                ref_point=ref.tolist(),
                X_baseline=baseline,
                sampler=sampler,
                objective=IdentityMCMultiOutputObjective(outcomes=list(range(m))),
                constraints=constraints,
                prune_baseline=True,
            )
        C = torch.tensor(candidates, dtype=torch.double).unsqueeze(1)
        with torch.no_grad():
            values = torch.cat([acqf(C[i : i + _BATCH]) for i in range(0, len(C), _BATCH)])
    return int(torch.argmax(values).item())
