"""Tests of data-parallel supernet training (nas.training._distributed_train) on the CPU: two processes, gloo."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from nas.spaces._mobilenet import SupernetSpec
from nas.spaces._mobilenet_net import Supernet
from nas.training._distributed_train import (
    ShardedBatchSampler,
    TrainingStopped,
    init_distributed,
    launched_distributed,
    shutdown_distributed,
)
from nas.training._train import train_supernet

SPEC = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32, num_classes=4)


def data(n: int = 40) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=gen), torch.arange(n) % 4)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: joins the group as torchrun would set it up, trains, saves what it ended with."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    ctx, device = init_distributed("cpu")
    record: dict[str, Any] = {"rank": ctx.rank, "world": ctx.world_size, "device": str(device)}
    try:
        net = Supernet(SPEC, seed=rank)  # other initial weights on every rank: rank 0's must win
        epochs_seen: list[int] = []
        batches_seen: list[int] = []
        result = train_supernet(
            net,
            data(),
            epochs=1,
            batch_size=8,
            seed=3,
            checkpoint_path=Path(out) / "supernet.pt",
            on_epoch=lambda e, *_: epochs_seen.append(e),
            on_batch=lambda p: batches_seen.append(p.images),
        )
        record |= {"state": net.state_dict(), "loss": result.loss, "epochs_seen": epochs_seen}
        record["batches_seen"] = batches_seen

        def stop(epoch: int, *_: Any) -> None:
            raise KeyboardInterrupt  # as a budget or Ctrl-C on rank 0 would

        try:
            train_supernet(Supernet(SPEC, seed=0), data(), epochs=3, batch_size=8, seed=4, on_epoch=stop)
            record["stopped"] = "no"
        except TrainingStopped:
            record["stopped"] = "TrainingStopped"
        except KeyboardInterrupt:
            record["stopped"] = "KeyboardInterrupt"
    finally:
        shutdown_distributed()
    torch.save(record, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.slow
def test_both_ranks_end_with_identical_weights_and_a_finite_loss(
    two_ranks: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, r1) = two_ranks
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2) and r0["device"] == "cpu"
    assert r0["state"].keys() == r1["state"].keys()
    for key, value in r0["state"].items():
        assert torch.equal(value, r1["state"][key]), key
    assert torch.isfinite(torch.tensor(r0["loss"])) and r0["loss"] == r1["loss"]  # averaged over the ranks
    start = Supernet(SPEC, seed=0).state_dict()
    assert any(not torch.equal(start[k], v) for k, v in r0["state"].items())  # it trained


@pytest.mark.slow
def test_only_rank_0_writes_the_checkpoint_and_reports(two_ranks: tuple[Path, list[dict[str, Any]]]) -> None:
    out, (r0, r1) = two_ranks
    assert r0["epochs_seen"] == [1] and r1["epochs_seen"] == []
    assert r1["batches_seen"] == [] and r0["batches_seen"] == [8, 16, 24, 32, 40]  # images over both ranks
    saved = torch.load(out / "supernet.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(v, r0["state"][k]) for k, v in saved["model"].items())
    assert not list(out.glob(".supernet.pt.*"))  # no temporary file left by any rank


@pytest.mark.slow
def test_a_stop_on_rank_0_stops_every_rank(two_ranks: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = two_ranks
    assert r0["stopped"] == "KeyboardInterrupt" and r1["stopped"] == "TrainingStopped"


def test_ranks_split_each_global_batch_between_them() -> None:
    per_rank = [
        list(ShardedBatchSampler(10, 4, seed=7, rank=r, world_size=2, drop_last=False)) for r in (0, 1)
    ]
    single = list(ShardedBatchSampler(10, 4, seed=7, rank=0, world_size=1, drop_last=False))
    assert len(per_rank[0]) == len(per_rank[1]) == len(single) == 3
    for step, batch in enumerate(single):
        assert sorted(per_rank[0][step] + per_rank[1][step]) == sorted(batch)
        assert not set(per_rank[0][step]) & set(per_rank[1][step])
    assert len(list(ShardedBatchSampler(10, 4, seed=7, rank=0, world_size=2, drop_last=True))) == 2


def test_a_global_batch_too_small_for_every_rank_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.training import _train
    from nas.training._distributed_train import DistributedContext

    monkeypatch.setattr(_train, "current_context", lambda: DistributedContext(0, 4, 0))
    with pytest.raises(ValueError, match="at least 8 images"):
        train_supernet(Supernet(SPEC), data(), epochs=1, batch_size=4)


def test_torchrun_is_recognised_from_its_environment() -> None:
    assert launched_distributed({"WORLD_SIZE": "2", "RANK": "0"})
    assert not launched_distributed({"WORLD_SIZE": "1"}) and not launched_distributed({})
    ctx, device = init_distributed("cpu", env={})
    assert not ctx.active and ctx.is_main and device == torch.device("cpu")
