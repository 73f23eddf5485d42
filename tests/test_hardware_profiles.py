"""Tests of hardware_profiles: the shipped profiles, loading by name or path, and validation."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import hardware_profiles
from hardware_profiles import (
    DEFAULT_PROFILE,
    HardwareProfile,
    ProfileError,
    available_profiles,
    load_profile,
    profile_path,
)

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ shipped profiles


def test_local_cpu_is_shipped_and_is_the_default() -> None:
    assert {"local-cpu", "local-cuda"} <= set(available_profiles())
    assert DEFAULT_PROFILE == "local-cpu"
    assert load_profile() == load_profile("local-cpu")


def test_local_cpu_describes_this_machine_without_invented_numbers() -> None:
    profile = load_profile("local-cpu")
    assert profile.name == "local-cpu"
    assert profile.device == "cpu" and profile.runtime == "onnxruntime"
    assert profile.providers == ("CPUExecutionProvider",)
    assert profile.provider_options == ()
    assert (profile.intra_op_threads, profile.inter_op_threads, profile.batch_size) == (1, 1, 1)
    assert profile.input_shape is None
    assert profile.timed_runs >= 30
    assert profile.idle_w is None and profile.tdp_w is None and not profile.has_power_model
    assert profile.lut is None
    assert profile.description
    assert profile.energy == "auto" and profile.energy_min_duration_s == 1.0 and not profile.subtract_idle


def test_local_cuda_is_gpu_0_through_cuda_with_nvml_and_no_invented_numbers() -> None:
    profile = load_profile("local-cuda")
    assert profile.device == "cuda" and profile.runtime == "onnxruntime"
    assert profile.providers == ("CUDAExecutionProvider",)
    assert profile.provider_options == ({"device_id": 0},) and profile.device_id == 0
    assert profile.energy == "nvml" and profile.energy_min_duration_s >= 1.0
    assert profile.idle_w is None and profile.tdp_w is None
    assert profile.timed_runs >= 30 and profile.lut is None


@pytest.mark.parametrize("name", available_profiles())
def test_every_shipped_profile_loads_and_carries_no_unbacked_power_numbers(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    # local-* profiles describe the machine hwnas runs on and are measured live. Any other device, or any power
    # model, is only useful with numbers measured on it (a lookup table).
    if not name.startswith("local-") or profile.has_power_model:
        assert profile.lut is not None and profile.lut.is_file()


def test_profiles_are_frozen_and_hashable() -> None:
    profile = load_profile("local-cpu")
    with pytest.raises(ValidationError, match="frozen"):
        profile.batch_size = 8  # type: ignore[misc]
    assert {profile: 1}[load_profile("local-cpu")] == 1
    gpu = load_profile("local-cuda")
    assert hash(gpu) == hash(load_profile("local-cuda")) and len({profile, gpu}) == 2


# ------------------------------------------------------------------------------------- name or path


def test_unknown_name_lists_the_available_profiles() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("local-cpuu")
    message = str(info.value)
    assert "local-cpuu" in message and "did you mean 'local-cpu'" in message
    for name in available_profiles():
        assert name in message


def test_path_with_separator_or_yaml_suffix_loads_that_file(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, "batch_size: 4\ntimed_runs: 40\n")
    by_path = load_profile(path)
    assert by_path.name == "custom" and by_path.batch_size == 4 and by_path.timed_runs == 40
    assert load_profile(str(path)) == by_path
    monkeypatch.chdir(tmp_path)
    assert load_profile("custom.yaml") == by_path  # suffix alone makes it a path
    assert load_profile("./custom.yaml") == by_path
    with pytest.raises(ProfileError, match="unknown hardware profile 'custom'"):
        load_profile("custom")  # a bare name only looks among the shipped profiles


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "absent.yaml")


def test_profile_path_of_a_shipped_name() -> None:
    assert profile_path("local-cpu") == hardware_profiles.PROFILES_DIR / "local-cpu.yaml"


def test_explicit_name_and_relative_lut(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    path = write(tmp_path, "name: my-box\nlut: tables/lut.json\ninput_shape: [3, 32, 32]\n")
    profile = load_profile(path)
    assert profile.name == "my-box"
    assert profile.lut == tmp_path / "tables" / "lut.json"
    assert profile.input_shape == (3, 32, 32)


def test_full_profile_with_power_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: gpu-box
device: cuda
providers: [CUDAExecutionProvider, CPUExecutionProvider]
provider_options: [{device_id: 1}, {}]
idle_w: 30
tdp_w: 300.5
carbon_region: DE
""",
    )
    profile = load_profile(path)
    assert profile.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert profile.provider_options == ({"device_id": 1}, {})
    assert profile.idle_w == 30.0 and isinstance(profile.idle_w, float)
    assert profile.tdp_w == 300.5 and profile.has_power_model
    assert profile.carbon_region == "DE"


def test_energy_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "energy: rapl\nenergy_min_duration_s: 2\nsubtract_idle: true\nidle_w: 3.5\n")
    profile = load_profile(path)
    assert profile.energy == "rapl" and profile.subtract_idle and profile.idle_w == 3.5
    assert profile.energy_min_duration_s == 2.0 and isinstance(profile.energy_min_duration_s, float)


def test_torch_runtime_and_gpu_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "runtime: torch\ndevice: cuda\nproviders: [CUDAExecutionProvider]\nprovider_options: [{device_id: 2}]\n",
    )
    profile = load_profile(path)
    assert profile.runtime == "torch" and profile.device_id == 2
    assert load_profile(write(tmp_path, "runtime: torch\n", "cpu.yaml")).device_id == 0


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, ""))
    assert profile == HardwareProfile(name="custom")


# ------------------------------------------------------------------------------------------ validation


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown key 'timed_run'; did you mean 'timed_runs'\?"):
        load_profile(write(tmp_path, "timed_run: 50\n"))
    with pytest.raises(ProfileError, match="unknown key 'colour'.*Valid keys: name"):
        load_profile(write(tmp_path, "colour: red\n"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("timed_runs: 10\n", "timed_runs must be an integer >= 30 for a stable median and IQR, got 10"),
        ("timed_runs: 29\n", "timed_runs must be an integer >= 30"),
        ("intra_op_threads: two\n", "intra_op_threads must be an integer >= 1, got 'two'"),
        ("batch_size: 0\n", "batch_size must be an integer >= 1"),
        ("batch_size: true\n", "batch_size must be an integer"),
        ("warmup_runs: 1.5\n", "warmup_runs must be an integer >= 0"),
        ("device: tpu\n", r"device must be one of \['cpu', 'cuda'\], got 'tpu'"),
        ("runtime: tensorrt\n", "runtime must be one of"),
        ("device: cuda\n", "device 'cuda' needs a GPU execution provider first"),
        ("providers: [CUDAExecutionProvider]\n", "runs on a GPU; set device: cuda"),
        ("provider_options: [{device_id: -1}]\n", "device_id must be a GPU index"),
        ("energy: joulemeter\n", r"energy must be one of \['auto', 'nvml', 'rapl', 'estimate'\]"),
        ("energy: nvml\n", "energy 'nvml' measures NVIDIA GPUs"),
        (
            "device: cuda\nproviders: [CUDAExecutionProvider]\nenergy: rapl\n",
            "energy 'rapl' measures CPUs",
        ),
        ("energy_min_duration_s: 0\n", "energy_min_duration_s must be a positive number"),
        ("energy_min_duration_s: soon\n", "energy_min_duration_s must be a positive number"),
        ("subtract_idle: maybe\n", "subtract_idle must be true or false"),
        ("providers: CPUExecutionProvider\n", "providers must be a non-empty list"),
        ("providers: []\n", "non-empty list"),
        ("provider_options: [{}, {}]\n", "one mapping per provider"),
        ("provider_options: {device_id: 0}\n", "provider_options must be a list"),
        ("input_shape: [32, 32]\n", r"input_shape must be \[C, H, W\]"),
        ("input_shape: [3, 0, 32]\n", r"input_shape must be \[C, H, W\]"),
        ("idle_w: -1\n", "idle_w must be a non-negative number"),
        ("tdp_w: lots\n", "tdp_w must be a non-negative number"),
        ("idle_w: 50\ntdp_w: 20\n", "idle_w .* is above tdp_w"),
        ("description: 3\n", "description must be a string"),
        ("lut: 3\n", "lut must be a file path"),
        ("- a\n- b\n", "must be a mapping"),
        ("timed_runs: [\n", "not valid YAML at line 2"),
        # one error per rule the model enforces
        ("name: ''\n", "non-empty string 'name', got ''"),
        ("inter_op_threads: 0\n", "inter_op_threads must be an integer >= 1, got 0"),
        ("warmup_runs: -1\n", "warmup_runs must be an integer >= 0, got -1"),
        ("timing_rounds: 0\n", "timing_rounds must be an integer >= 1, got 0"),
        ("quiet_retries: -1\n", "quiet_retries must be an integer >= 0, got -1"),
        ("provider_options: [{device_id: [1]}]\n", "from option names to strings or numbers, got"),
        ("provider_options: [{1: 2}]\n", "from option names to strings or numbers, got"),
        ("provider_options: [{device_id: true}]\n", "device_id must be a GPU index >= 0, got True"),
        ("providers: [CPUExecutionProvider, '']\n", "providers must be a non-empty list"),
        (
            "device: cuda\nproviders: [CUDAExecutionProvider]\nquiet_gate: true\n",
            "quiet_gate watches the CPU .* for device 'cuda'",
        ),
        ("quiet_tolerance: 0\n", r"quiet_tolerance must be in \(0, 10\], got 0"),
        ("quiet_tolerance: 10.5\n", r"quiet_tolerance must be in \(0, 10\], got 10.5"),
        ("quiet_max_s: 0\n", "quiet_max_s must be a positive number of seconds, got 0"),
        ("energy_min_duration_s: -1\n", "energy_min_duration_s must be a positive number"),
        ("input_shape: [3, 32, 32, 1]\n", r"input_shape must be \[C, H, W\]"),
        ("input_shape: 32\n", r"input_shape must be \[C, H, W\]"),
        ("carbon_region: 49\n", "carbon_region must be a string .* got 49"),
        # strict types: YAML's true is not a count, a quoted number is not a number
        ("timed_runs: '50'\n", "timed_runs must be an integer >= 30 for a stable median and IQR, got '50'"),
        ("timed_runs: 50.0\n", "timed_runs must be an integer >= 30"),
        ("warmup_runs: true\n", "warmup_runs must be an integer >= 0, got True"),
        ("input_shape: [3, 32, '32']\n", r"input_shape must be \[C, H, W\]"),
        ("input_shape: [3, true, 32]\n", r"input_shape must be \[C, H, W\]"),
        ("energy_min_duration_s: '2'\n", "energy_min_duration_s must be a positive number of seconds"),
        ("idle_w: true\n", "idle_w must be a non-negative number of watts or null, got True"),
        ("quiet_gate: 1\n", "quiet_gate must be true or false, got 1"),
        ("subtract_idle: 'yes'\n", "subtract_idle must be true or false, got 'yes'"),
        ("name: 5\n", "non-empty string 'name', got 5"),
    ],
)
def test_invalid_values_are_rejected_clearly(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(write(tmp_path, text))
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)  # one line, no traceback or pydantic report


def test_values_at_the_edges_of_the_rules_are_accepted(tmp_path: Path) -> None:
    text = (
        "warmup_runs: 0\ntimed_runs: 30\nquiet_retries: 0\nquiet_tolerance: 10\nidle_w: 0\ntdp_w: 0\n"
        "provider_options: [{device_id: '0', arena_extend_strategy: kSameAsRequested}]\n"
    )
    profile = load_profile(write(tmp_path, text))
    assert (profile.warmup_runs, profile.timed_runs, profile.quiet_tolerance) == (0, 30, 10.0)
    assert profile.idle_w == 0.0 and profile.tdp_w == 0.0 and profile.has_power_model
    # ONNX Runtime takes its options as strings: a GPU index may be given as one.
    cuda = load_profile(
        write(
            tmp_path,
            "device: cuda\nproviders: [CUDAExecutionProvider]\nprovider_options: [{device_id: '3'}]\n",
        )
    )
    assert cuda.device_id == 3
    # The GPU-provider rule is ONNX Runtime's; PyTorch on a GPU needs no provider.
    assert load_profile(write(tmp_path, "runtime: torch\ndevice: cuda\n")).device == "cuda"


def test_an_unknown_key_is_reported_before_other_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="unknown key 'batchsize'; did you mean 'batch_size'") as info:
        load_profile(write(tmp_path, "timed_runs: 5\nbatchsize: 4\n"))
    assert "\n" not in str(info.value)


def test_binary_file_is_one_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(
        ProfileError, match=r"binary.yaml is not a UTF-8 text file \(byte 0x89 at offset 0\)"
    ) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_unreadable_file_is_one_profile_error(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, "batch_size: 2\n")
    original = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ProfileError, match="custom.yaml cannot be read: Permission denied") as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "timed_runs: 5\n")
    with pytest.raises(ProfileError, match="custom.yaml"):
        load_profile(path)


def test_constructor_validates_and_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        HardwareProfile("positional")  # type: ignore[misc]
    with pytest.raises(ProfileError, match="non-empty string 'name'"):
        HardwareProfile(name="")
    with pytest.raises(ProfileError, match="profile 'x': batch_size must be an integer >= 1, got True"):
        HardwareProfile(name="x", batch_size=True)
    with pytest.raises(ProfileError, match="profile 'x': unknown key 'batch'; did you mean 'batch_size'"):
        HardwareProfile(name="x", batch=2)
    assert HardwareProfile(name="x", tdp_w=65).tdp_w == 65.0 and isinstance(
        HardwareProfile(name="x", tdp_w=65).tdp_w, float
    )
    profile = HardwareProfile(
        name="x",
        providers=["CPUExecutionProvider"],
        input_shape=[1, 8, 8],  # type: ignore[arg-type]
    )
    assert profile.providers == ("CPUExecutionProvider",) and profile.input_shape == (1, 8, 8)


def test_replace_validates_the_copy_and_leaves_the_original() -> None:
    profile = load_profile("local-cpu")
    faster = profile.replace(timed_runs=100, quiet_gate=False)
    assert (faster.timed_runs, faster.quiet_gate, faster.name) == (100, False, "local-cpu")
    assert profile.timed_runs == 300 and profile.quiet_gate and faster != profile
    assert profile.replace() == profile
    gpu = profile.replace(device="cuda", providers=("CUDAExecutionProvider",), quiet_gate=False)
    assert gpu.replace(provider_options=({"device_id": 1},)).device_id == 1
    with pytest.raises(ProfileError, match="timed_runs must be an integer >= 30"):
        profile.replace(timed_runs=5)
    with pytest.raises(ProfileError, match="quiet_gate watches the CPU"):
        profile.replace(device="cuda", providers=("CUDAExecutionProvider",))
    with pytest.raises(ProfileError, match="unknown key 'timed'"):
        profile.replace(timed=100)


def test_profiles_survive_pickling_for_workers() -> None:
    profile = load_profile("local-cuda")
    assert pickle.loads(pickle.dumps(profile)) == profile


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "description: !!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(path)


def test_package_imports_only_yaml_pydantic_and_the_standard_library() -> None:
    code = (
        "import hardware_profiles, sys\n"
        "bad = sorted(m for m in ('numpy', 'torch', 'onnx', 'onnxruntime', 'search', 'nas', 'profilers') "
        "if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
