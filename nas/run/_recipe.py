"""What a worker needs to build a candidate evaluator, sent once: the space, the weights, the data, the profile, the settings."""


from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hardware_profiles import HardwareProfile
from nas.data import DataSplits
from nas.run._evaluator import CandidateEvaluator
from nas.run._export import EXPORTERS
from nas.run._locks import MeasureLock
from nas.spaces import ElasticSupernet, space_from_dict, space_to_dict

__all__ = ["EvaluatorRecipe"]


@dataclass(frozen=True, repr=False)
class EvaluatorRecipe:
    """Everything a worker needs to build a :class:`~nas.CandidateEvaluator`: picklable, sent once per worker.

    Attributes:
        spec: The supernet's space as JSON-ready data (:func:`nas.spaces.space_to_dict`).
        state_dict: The trained supernet's weights and buffers, on the CPU.
        member_states: Those of the further members of an ensemble (``supernet.members``), if any.
        data: The dataset splits (batch-norm recalibration uses ``train``, scoring uses ``val``).
        profile: The hardware profile latency is measured with.
        calib_samples: Training images used to recalibrate batch norm.
        exporter: ONNX exporter, ``"torchscript"`` or ``"dynamo"``.

    Example:
        >>> from hardware_profiles import load_profile
        >>> from nas import Supernet, SupernetSpec, load_dataset
        >>> spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)
        >>> recipe = EvaluatorRecipe.from_supernet(
        ...     Supernet(spec), data=load_dataset("digits"), profile=load_profile("local-cpu"), calib_samples=64)
        >>> evaluator = recipe.build()
        >>> 0.0 <= evaluator.score(spec.smallest_arch())["error"] <= 100.0
        True
    """

    spec: Mapping[str, Any]
    state_dict: Mapping[str, torch.Tensor]
    data: DataSplits
    profile: HardwareProfile
    calib_samples: int = 512
    exporter: str = "torchscript"
    #: further keyword arguments of :class:`CandidateEvaluator` (lookup table, latency mode, energy, fine-tuning)
    options: Mapping[str, Any] = field(default_factory=dict)
    member_states: tuple[Mapping[str, torch.Tensor], ...] = ()

    def __post_init__(self) -> None:
        try:
            space_from_dict(self.spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"spec must be a space_to_dict() dict: {e}") from None
        if (
            not isinstance(self.calib_samples, int)
            or isinstance(self.calib_samples, bool)
            or self.calib_samples < 1
        ):
            raise ValueError(f"calib_samples must be an integer >= 1, got {self.calib_samples!r}")
        if self.exporter not in EXPORTERS:
            raise ValueError(f"exporter must be one of {list(EXPORTERS)}, got {self.exporter!r}")
        if not isinstance(self.profile, HardwareProfile):
            raise TypeError(
                f"profile must be a HardwareProfile (see load_profile), got {type(self.profile).__name__}"
            )
        if not isinstance(self.data, DataSplits):
            raise TypeError(f"data must be a DataSplits (see load_dataset), got {type(self.data).__name__}")

    def __repr__(self) -> str:
        return (
            f"EvaluatorRecipe(dataset={self.data.name!r}, profile={self.profile.name!r}, "
            f"tensors={len(self.state_dict)}, members={1 + len(self.member_states)}, calib_samples={self.calib_samples}, exporter={self.exporter!r})"
        )

    @classmethod
    def from_supernet(
        cls,
        supernet: ElasticSupernet | Sequence[ElasticSupernet],
        *,
        data: DataSplits,
        profile: HardwareProfile,
        calib_samples: int = 512,
        exporter: str = "torchscript",
        options: Mapping[str, Any] | None = None,
    ) -> EvaluatorRecipe:
        """The recipe of an evaluator of ``supernet``, or of the members of an ensemble (weights copied to the
        CPU)."""
        members = (supernet,) if isinstance(supernet, ElasticSupernet) else tuple(supernet)
        states = [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in members]
        return cls(
            spec=space_to_dict(members[0].space),
            state_dict=states[0],
            member_states=tuple(states[1:]),
            data=data,
            profile=profile,
            calib_samples=calib_samples,
            exporter=exporter,
            options=dict(options or {}),
        )

    @classmethod
    def from_evaluator(cls, evaluator: CandidateEvaluator) -> EvaluatorRecipe:
        """The recipe of an evaluator like ``evaluator`` (same supernet, data, profile and settings)."""
        return cls.from_supernet(
            evaluator.members,
            data=evaluator.data,
            profile=evaluator.profile,
            calib_samples=evaluator.calib_samples,
            exporter=evaluator.exporter,
            options=evaluator.settings(),
        )

    def build(
        self,
        *,
        measure_lock: Callable[[], AbstractContextManager[Any]] | None = None,
        work_dir: str | Path | None = None,
    ) -> CandidateEvaluator:
        """A fresh evaluator in this process.

        Args:
            measure_lock: Held around every on-device measurement; by default the :class:`MeasureLock` of
                the profile's device (cluster-wide inside a Dask worker, process-wide elsewhere). Its
                ``working`` method, where it has one, is held around scoring and exporting.
            work_dir: Folder for temporary ONNX files; a new temporary folder by default.
        """
        lock = measure_lock if measure_lock is not None else MeasureLock.for_profile(self.profile)
        space = space_from_dict(self.spec)
        members = []
        for state in (self.state_dict, *self.member_states):
            supernet = space.build_supernet(seed=0)
            supernet.load_state_dict(dict(state))
            members.append(supernet.eval())
        return CandidateEvaluator(
            supernet=members,
            data=self.data,
            profile=self.profile,
            calib_samples=self.calib_samples,
            exporter=self.exporter,
            work_dir=work_dir,
            measure_lock=lock,
            work_lock=getattr(lock, "working", None),
            **dict(self.options),
        )
