"""Tests of the training device and precision (nas.training._device), checkpoints across devices, the
``--device`` flag and the one-line note about estimated energy.

CUDA paths are tested here with ``torch.cuda`` patched; tests marked ``gpu`` run them for real where a GPU is.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nas.cli import main
from nas.run._config import load_config
from nas.run._progress import estimated_energy_note as _estimated_energy_note
from nas.spaces._mobilenet import SupernetSpec
from nas.spaces._mobilenet_net import Supernet
from nas.training._checkpoint import load_checkpoint, to_cpu
from nas.training._device import (
    DeviceError,
    autocast,
    grad_scaler,
    resolve_device,
    resolve_precision,
    use_channels_last,
)
from nas.training._train import train_supernet
from profilers import EstimatedEnergy

SPEC = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32, num_classes=4)
has_gpu = torch.cuda.is_available()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, *, bf16: bool = True) -> None:
    """Makes torch believe it sees ``count`` GPUs (current: 0)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")


def data(n: int = 48) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=gen), torch.arange(n) % 4)


# -- device resolution ----------------------------------------------------------------------------------
def test_auto_takes_the_gpu_when_torch_sees_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_gpu_that_is_not_there_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    with pytest.raises(DeviceError, match="no CUDA GPU") as e:
        resolve_device("cuda")
    assert "\n" not in str(e.value)
    fake_gpus(monkeypatch, 2)
    with pytest.raises(DeviceError, match=r"has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:7")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "mps", ""])
def test_malformed_device_names_list_the_valid_ones(name: str) -> None:
    with pytest.raises(DeviceError, match="valid: auto, cpu, cuda, cuda:N"):
        resolve_device(name)


def test_precision_defaults_to_bf16_fp16_or_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    fake_gpus(monkeypatch, 1, bf16=True)
    assert resolve_precision("auto", gpu) == "bf16"
    fake_gpus(monkeypatch, 1, bf16=False)
    assert resolve_precision("auto", gpu) == "fp16"
    with pytest.raises(DeviceError, match="Fake GPU does not support bf16"):
        resolve_precision("bf16", gpu)
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision("fp8", gpu)


def test_a_grad_scaler_only_for_fp16_and_channels_last_only_for_convnets_on_cuda() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert grad_scaler(cpu, "fp32") is None and grad_scaler(gpu, "bf16") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without CUDA the scaler warns that it disables itself
        assert isinstance(grad_scaler(gpu, "fp16"), torch.amp.GradScaler)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert use_channels_last(conv, gpu, "bf16") and use_channels_last(conv, gpu, "fp16")
    assert not use_channels_last(conv, gpu, "fp32")
    assert not use_channels_last(conv, cpu, "bf16")
    assert not use_channels_last(nn.Linear(3, 4), gpu, "bf16")


def test_autocast_runs_matmuls_in_the_reduced_precision() -> None:
    layer = nn.Linear(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(torch.randn(2, 4)).dtype == torch.float32


# -- training in a precision, checkpoints on any device ----------------------------------------------------
def test_bf16_training_on_the_cpu_changes_the_weights_and_stays_finite() -> None:
    nets = {p: Supernet(SPEC, seed=0) for p in ("fp32", "bf16")}
    results = {p: train_supernet(n, data(), epochs=1, batch_size=16, precision=p) for p, n in nets.items()}
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in results.values())
    a, b = (dict(n.named_parameters()) for n in nets.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)  # autocast did something
    assert all(p.dtype == torch.float32 for p in nets["bf16"].parameters())  # master weights stay fp32


def test_checkpoints_hold_cpu_tensors_and_load_onto_the_asked_device(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    net = Supernet(SPEC, seed=0)
    train_supernet(net, data(), epochs=1, batch_size=16, checkpoint_path=path, device="cpu")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    tensors = [t for t in _leaves(raw) if isinstance(t, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    loaded = load_checkpoint(path, torch.device("cpu"))
    assert loaded is not None
    fresh = Supernet(SPEC, seed=1)
    fresh.load_state_dict(loaded["model"])
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in net.state_dict().items())


def test_to_cpu_keeps_the_structure_of_a_state() -> None:
    state = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": {"c": torch.arange(3)}, "d": "x"}
    out = to_cpu(state)
    assert isinstance(out["a"], list) and isinstance(out["a"][1], tuple) and out["d"] == "x"
    assert torch.equal(out["b"]["c"], torch.arange(3)) and out["a"][1][1] == 3


def _leaves(obj: object) -> Iterator[object]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


@pytest.mark.gpu
@pytest.mark.skipif(not has_gpu, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_training_on_the_gpu_resumes_on_the_cpu(tmp_path: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    path = tmp_path / "supernet.pt"
    net = Supernet(SPEC, seed=0)
    result = train_supernet(net, data(), epochs=1, batch_size=16, checkpoint_path=path, device="cuda")
    assert next(net.parameters()).device.type == "cuda"
    assert torch.isfinite(torch.tensor(result.loss))
    # the same checkpoint, on a machine without a GPU: the finished training loads on the CPU
    cpu_net = Supernet(SPEC, seed=0)
    again = train_supernet(cpu_net, data(), epochs=1, batch_size=16, checkpoint_path=path, device="cpu")
    assert again.resumed_from == 1
    for (k, a), b in zip(net.state_dict().items(), cpu_net.state_dict().values()):
        assert torch.equal(a.cpu(), b), k


# -- the command line ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("count", "device"), [(0, "cuda"), (0, "cuda:0"), (1, "cuda:7")])
def test_search_on_a_missing_gpu_fails_in_one_line_with_status_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    count: int,
    device: str,
) -> None:
    fake_gpus(monkeypatch, count)
    code = main(["search", "--device", device, "--out", str(tmp_path), "--name", "run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and device in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_device_and_precision_flags_reach_the_config() -> None:
    cfg = load_config(overrides={"supernet.device": "cuda:1", "supernet.precision": "fp16"})
    assert cfg.supernet.device == "cuda:1" and cfg.supernet.train_kwargs()["precision"] == "fp16"
    assert load_config().supernet.device == "auto"


# -- what energy_mj means when it can only be estimated ----------------------------------------------------
def test_the_search_says_when_energy_is_latency_in_other_units() -> None:
    estimate = EstimatedEnergy(tdp_w=20.0, idle_w=5.0, utilisation=0.5)
    evaluator = SimpleNamespace(energy_profiler=lambda: estimate)
    cfg = load_config(overrides={"search.objectives": ["error", "energy_mj"]})
    note = _estimated_energy_note(cfg, evaluator)  # type: ignore[arg-type]
    assert note is not None and "\n" not in note
    assert "ranks models exactly as latency_ms" in note and f"{estimate.power_w:.3g} W" in note
    assert _estimated_energy_note(load_config(), evaluator) is None  # energy not an objective
    metered = SimpleNamespace(energy_profiler=lambda: object())  # a meter (NVML, RAPL) measures
    assert _estimated_energy_note(cfg, metered) is None  # type: ignore[arg-type]
