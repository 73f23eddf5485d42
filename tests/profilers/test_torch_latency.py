"""TorchLatency specifics: the caller's module is left alone, threads, torch.export files, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hardware_profiles import HardwareProfile
from profilers import TorchLatency, latency_profiler_from_profile

FAST = {"warmup_runs": 1, "timed_runs": 30}


class DropoutNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.drop = torch.nn.Dropout(p=0.5)
        self.bn = torch.nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.drop(self.fc(x)))


def test_module_in_training_mode_is_measured_in_eval_mode_on_a_copy() -> None:
    model = DropoutNet().train()
    running_mean = model.bn.running_mean.clone()
    run = TorchLatency(**FAST).runner(model, (8,), batch_size=4)
    first, second = run(), run()
    torch.testing.assert_close(first, second)  # dropout off, batch statistics frozen: eval mode
    assert model.training  # the caller's module is untouched
    torch.testing.assert_close(model.bn.running_mean, running_mean)


def test_module_in_eval_mode_is_not_copied() -> None:
    model = torch.nn.Linear(4, 2).eval()
    out = TorchLatency(**FAST).runner(model, (4,))()
    x = torch.from_numpy(__import__("numpy").random.default_rng(0).standard_normal((1, 4), dtype="float32"))
    torch.testing.assert_close(out, model(x).detach())


def test_threads_apply_during_inference_only() -> None:
    seen: list[int] = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return x

    before = torch.get_num_threads()
    profiler = TorchLatency(intra_op_threads=1, **FAST)
    result = profiler.measure(Spy(), (4,))
    assert set(seen) == {1} and torch.get_num_threads() == before
    assert result.intra_op_threads == 1 and result.provider == "torch:cpu"


def test_float64_modules_get_a_float64_input() -> None:
    model = torch.nn.Linear(4, 2).double().eval()
    assert TorchLatency(**FAST).runner(model, (4,))().dtype == torch.float64


@pytest.mark.filterwarnings("ignore::FutureWarning")  # raised inside torch.export
def test_torch_export_file_is_measured(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval()
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 4),)), str(path))
    result = TorchLatency(**FAST).measure(path, (4,))
    assert result.median_ms > 0


def test_onnx_files_and_other_objects_are_refused(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="OnnxRuntimeLatency"):
        TorchLatency(**FAST).measure(tiny_model, (4,))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchLatency(**FAST).measure(object(), (4,))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"device": "tpu"}, "device must be"),
        ({"timed_runs": 10}, "timed_runs must be an integer >= 30"),
        ({"warmup_runs": -1}, "warmup_runs"),
        ({"intra_op_threads": 0}, "intra_op_threads"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TorchLatency(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here")
def test_cuda_without_a_gpu_is_explained() -> None:
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        TorchLatency(device="cuda")


def test_peak_memory_needs_a_gpu() -> None:
    with pytest.raises(ValueError, match="estimate_peak_memory"):
        TorchLatency(**FAST).peak_memory(torch.nn.Linear(4, 2), (4,))


def test_profile_with_torch_runtime() -> None:
    profile = HardwareProfile(name="pt", runtime="torch", intra_op_threads=2, warmup_runs=3, timed_runs=40)
    profiler = latency_profiler_from_profile(profile)
    assert isinstance(profiler, TorchLatency)
    assert (profiler.device, profiler.intra_op_threads, profiler.warmup_runs, profiler.timed_runs) == (
        "cpu",
        2,
        3,
        40,
    )
    with pytest.raises(ValueError, match="not 'torch'"):
        TorchLatency.from_profile(HardwareProfile(name="ort"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA build of torch and a GPU")
def test_cuda_peak_memory_is_close_to_the_analytic_estimate(tmp_path: Path) -> None:
    from profiler_models import matmul_chain, torch_matmul_chain

    from profilers import estimate_peak_memory

    width, depth, batch = 1024, 4, 64
    measured = TorchLatency(device="cuda:0", **FAST).peak_memory(
        torch_matmul_chain(width=width, depth=depth), (width,), batch_size=batch
    )
    analytic = estimate_peak_memory(
        matmul_chain(tmp_path / "m.onnx", width=width, depth=depth), (width,), batch_size=batch
    )
    assert measured.method == "measured-cuda"
    assert measured.weights_bytes == analytic.weights_bytes
    # PyTorch fuses matmul+relu into no extra buffer and rounds allocations; within a factor of 2.
    assert 0.5 * analytic.activation_bytes <= measured.activation_bytes <= 2 * analytic.activation_bytes
