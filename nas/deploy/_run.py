"""A finished run as a user holds it: its front, a pick within bounds, and any front model as a PyTorch module."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas._errors import RunError
from nas.deploy._pick import Front, FrontModel, pick, read_front

if TYPE_CHECKING:
    import torch

__all__ = ["LoadedRun", "load_run"]


class LoadedRun:
    """The exported front of a run directory, with :meth:`pick` and :meth:`load_model`.

    Reading the front needs only ``pareto.json``; the supernet checkpoint, config and data are read the first
    time a model is loaded, and kept for the next ones.
    """

    def __init__(self, path: str | Path, *, data: Any = None) -> None:
        self.path = Path(path)
        self._front: Front = read_front(self.path)
        self._evaluator: Any = None
        #: the run's data when it was given from Python (``nas.search(data=...)``); else read by name
        self._data = data

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.path)!r}, {len(self.front)} models)"

    @property
    def front(self) -> tuple[FrontModel, ...]:
        """The exported models of the Pareto front, in the order of ``pareto.json``."""
        return self._front.models

    @property
    def objectives(self) -> tuple[tuple[str, str, str], ...]:
        """``(name, direction, unit)`` of each objective of the search."""
        return self._front.objectives

    @property
    def metrics(self) -> list[str]:
        """Metric names :meth:`pick` accepts: the objectives, then the metrics every model records."""
        return self._front.metric_names

    def model(self, id: int) -> FrontModel:
        """The front model with this trial number; :class:`RunError` listing the ids otherwise."""
        for m in self.front:
            if m.id == id:
                return m
        ids = ", ".join(str(m.id) for m in self.front) or "none"
        raise RunError(f"{self.path} has no front model {id!r}; its models are: {ids}")

    def pick(self, *, max: Mapping[str, float] | None = None, by: str | None = None) -> FrontModel:
        """The best model by ``by`` (default: ``error``) whose metrics are at most the bounds of ``max``.

        Raises:
            PickError: a metric this run does not record, or a bound that is not a number.
            NoModelMeetsBounds: no model meets them all; ``.unmet`` and ``.closest`` say how near the front came.

        Example:
            >>> run = load_run("runs/demo")  # doctest: +SKIP
            >>> best = run.pick(max={"latency_ms": 5})  # doctest: +SKIP
            >>> best.id, best.metrics["error"], best.onnx  # doctest: +SKIP
        """
        return pick(self._front, max=max, by=by)

    def load_model(self, id: int) -> torch.nn.Module:
        """The PyTorch module of front model ``id``, made as its ONNX file was: the subnet of the trained
        supernet (of the ensemble member it came from), batch norms recalibrated on the training data, then
        fine-tuned as the run's ``evaluation.export_finetune_steps`` says. In eval mode, on the CPU.

        Its input is what the ONNX model takes: ``1 x C x H x W`` images, scaled and normalised as the model's
        ONNX metadata says; its output the class logits.
        """
        model = self.model(id)
        evaluator = self._load_evaluator()
        if model.member >= len(evaluator.members):
            raise RunError(
                f"model {id} came from supernet member {model.member}, and {self.path} has "
                f"{len(evaluator.members)} member(s)"
            )
        return evaluator.export_subnet(dict(model.arch), member=model.member)

    def _load_evaluator(self) -> Any:
        if self._evaluator is None:
            from nas.run._evaluator import CandidateEvaluator
            from nas.run._front import load_trained_members

            config, data, members = load_trained_members(self.path, data=self._data)
            self._evaluator = CandidateEvaluator.from_config(
                config, supernet=members, data=data, measuring=False
            )
        return self._evaluator


def load_run(path: str | Path, *, data: Any = None) -> LoadedRun:
    """Opens a finished run directory: its front of exported models, ready to pick from and load.

    ``data`` (:class:`~nas.DataSplits`) is needed to load a model of a run whose data was given from Python;
    a run of a named dataset reads it again by itself.

    Example:
        >>> import nas
        >>> run = nas.load_run("runs/demo")  # doctest: +SKIP
        >>> best = run.pick(max={"latency_ms": 5}, by="error")  # doctest: +SKIP
        >>> net = run.load_model(best.id)  # doctest: +SKIP
    """
    return LoadedRun(path, data=data)
