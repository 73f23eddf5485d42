"""Bad input on the command line: one clear line on stderr, exit status 2, no traceback, nothing lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(tmp_path):
    def write(text):
        p = tmp_path / "c.yaml"
        p.write_text(text)
        return str(p)

    return write


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["search", "--trials", "0"], "must be at least 1"),
        (["search", "--trials", "many"], "expected a whole number"),
        (["search", "--seed", "-3"], "must be 0 or more"),
        (["search", "--members", "0"], "must be at least 1"),
        (["search", "--bogus"], "unrecognized arguments: --bogus"),
        (["search", "--strategy", "annealing"], "valid: nsga2, random"),
        (["search", "--objectives", "error,speed"], "unknown objective 'speed'; valid: error, latency_ms"),
        (["search", "--objectives", "error,error"], "repeated"),
        (["search", "--constraint", "latency_ms < 2"], "METRIC <= NUMBER"),
        (["search", "--constraint", "accuracy >= 0.9"], "unknown metric 'accuracy'"),
        (["search", "--profile", "raspberry-pi-9"], "local-cpu"),
        (["search", "--profile", "/nonexistent/profile.yaml"], "profile.yaml"),
        (["search", "--dataset", "imagenet"], "valid: digits, digits-hard, cifar10"),
        (["search", "--dataset", "cifar10"], "needs 'root'"),
        (["search", "--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "is not a folder"),
        (["search", "--config", "/nonexistent/config.yaml"], "does not exist"),
        (["search", "--name", "../escape"], "may hold only letters"),
        (["export", "/nonexistent/run", "--id", "3"], "not an hwnas run directory"),
        (["export", "/tmp", "--id", "x"], "expected a whole number"),
        (["search", "--resume", "/nonexistent/run"], "nothing to resume"),
        (["search", "--resume", "/tmp", "--config", "c.yaml"], "leave out --config"),
        (["search", "--max-time", "soon"], "a duration is a number with an optional unit"),
        (["search", "--max-time", "0s"], "must be above 0"),
        (["search", "--max-energy-kwh", "-1"], "must be above 0"),
        (["search", "--max-co2-kg", "lots"], "expected a number"),
        (["search", "--scheduler", "localhost:8786"], "tcp://HOST:8786"),
        (["search", "--workers", "-2"], "must be 0 or more"),
        (["search", "--trial-timeout", "never"], "a duration"),
        (["search", "--country", "FRANCE"], "tracking.country_iso_code"),
        (["profile-device", "--out", "table.txt"], "must end in .json"),
        (["profile-device", "--out", "t.json", "--profile", "nope"], "local-cpu"),
        (["report", "/nonexistent/run"], "/nonexistent/run"),
        ([], ""),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, expected, capsys, tmp_path):
    argv = [*argv, "--out", str(tmp_path)] if argv[:1] == ["search"] and "--resume" not in argv else argv
    code, _out, err = run(argv, capsys)
    assert code == 2
    if expected:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert expected in lines[0], err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("serach:\n  trials: 3\n", "unknown key 'serach'; did you mean 'search'?"),
        ("search:\n  trails: 3\n", "unknown key 'search.trails'; did you mean 'trials'?"),
        ("search:\n  trials: -5\n", "search.trials"),
        ("search:\n  trials: lots\n", "search.trials"),
        ("supernet: [1, 2]\n", "supernet"),
        ("supernet:\n  distill: 2\n", "supernet.distill: Input should be less than or equal to 1 (got 2)"),
        (
            "supernet:\n  average_last: -1\n",
            "supernet.average_last: Input should be greater than or equal to 0",
        ),
        ("supernet:\n  shift: -1\n", "supernet.shift: Input should be greater than or equal to 0"),
        (
            "supernet:\n  shift: 8\n",
            "supernet.shift must be smaller than the images (8 pixels for digits), got 8",
        ),
        ("supernet:\n  flip: sometimes\n", "supernet.flip"),
        ("supernet:\n  members: 17\n", "supernet.members: Input should be less than or equal to 16"),
        ("supernet:\n  zero_init_residual: maybe\n", "supernet.zero_init_residual"),
        (
            "data:\n  name: digits-hard\n  options: {copys: 4}\n",
            (
                "dataset 'digits-hard' has no option 'copys'; did you mean 'copies'? "
                "(valid: val_fraction, test_fraction, copies, noise)"
            ),
        ),
        ("data:\n  options: {copies: 4}\n", "dataset 'digits' has no option 'copies'"),
        ("data:\n  name: digits-hard\n  options: {copies: 0}\n", "copies must be an integer >= 1, got 0"),
        ("data:\n  options: {val_fraction: many}\n", "data.options.val_fraction"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("search: {trials: 3\n", "not valid YAML"),
        ("evaluation:\n  exporter: tflite\n", "evaluation.exporter"),
        ("evaluation:\n  latency: guess\n", "evaluation.latency"),
        ("budget:\n  max_energy_kwh: -0.5\n", "budget.max_energy_kwh"),
        ("budget:\n  max_time: forever\n", "budget.max_time"),
        ("budget:\n  max_kwh: 1\n", "unknown key 'budget.max_kwh'; did you mean 'max_energy_kwh'?"),
        ("tracking:\n  enable: false\n", "did you mean 'enabled'?"),
        ("execution:\n  scheduler: 8786\n", "execution.scheduler"),
        ("search:\n  objectives: [error, energy]\n", "valid: error, latency_ms, energy_mj, peak_memory_mb"),
        ("evaluation:\n  latency: predict\n", "has none; measure one with: hwnas profile-device"),
    ],
)
def test_bad_config_files(text, expected, cfg, capsys, tmp_path):
    code, _out, err = run(["search", "--config", cfg(text), "--out", str(tmp_path)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_existing_run_directory_is_never_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "taken"
    run_dir.mkdir()
    keep = run_dir / "pareto.json"
    keep.write_text("{}")
    code, _out, err = run(["search", "--name", "taken", "--out", str(tmp_path)], capsys)
    assert code == 2 and "already exists" in err
    assert keep.read_text() == "{}" and sorted(p.name for p in run_dir.iterdir()) == ["pareto.json"]


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _out, err = run(["search", "--out", str(blocker / "sub"), "--name", "x"], capsys)
    assert code == 2 and "cannot write" in err


def test_console_script_prints_no_traceback():
    exe = Path(sys.executable).with_name("hwnas")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nas.cli"]
    proc = subprocess.run([*cmd, "search", "--strategy", "nope"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown strategy 'nope'" in proc.stderr


@pytest.mark.slow
def test_resume_of_a_run_with_a_corrupt_study_is_refused_and_the_file_kept(tmp_path, capsys, cfg):
    config = "supernet:\n  epochs: 1\nsearch:\n  trials: 2\n  population: 2\ntracking:\n  enabled: false\n"
    code = main(["search", "--config", cfg(config), "--out", str(tmp_path), "--name", "r"])
    assert code == 0
    capsys.readouterr()
    db = tmp_path / "r" / "study.db"
    db.write_bytes(b"this is not a database at all" * 100)
    code, _out, err = run(["search", "--resume", str(tmp_path / "r"), "--trials", "4"], capsys)
    assert code == 2 and "not a readable SQLite study file" in err and len(err.strip().splitlines()) == 1
    assert db.read_bytes() == b"this is not a database at all" * 100


@pytest.mark.parametrize("command", ["search", "profile-device"])
def test_help_names_every_objective_and_dataset(command, capsys):
    from nas.data import AVAILABLE_DATASETS as DATASET_NAMES  # those a name loads ("python" is Python-only)
    from nas.run._config import OBJECTIVE_UNITS

    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps help lines
    for dataset in DATASET_NAMES:
        assert dataset in text, f"--dataset help of {command!r} misses {dataset!r}"
    if command == "search":
        for objective in OBJECTIVE_UNITS:
            assert objective in text, f"--objectives help misses {objective!r}"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--workers", "500"], "add --oversubscribe to insist"),
        (["--threads", "4096"], "more than the"),
        (["--population", "1000000"], "would not fit in memory"),
        (["--population", "0"], "must be 2 or more"),
        (["--population", "1"], "must be 2 or more"),
        (["--country", "XYZ"], "ISO 3166 alpha-3"),
        (["--name", "n" * 300], "at most 100"),
        (["--seed", "18446744073709551616"], "less than or equal to 4294967295"),
        (["--strategy", "nsga2", "--strategy-option", "population_size=abc"], "wrong type"),
        (["--strategy", "grid"], "more than max_points"),
        (["--profile", "local-cuda"], "CUDAExecutionProvider"),
        (["--scheduler", "tcp://127.0.0.1:{port}"], "no Dask scheduler answers"),
    ],
)
def test_settings_are_checked_before_any_work_and_a_failed_start_leaves_nothing(argv, expected, tmp_path, capsys):
    if expected == "CUDAExecutionProvider":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("CUDA is here")
    if expected == "more than the" and os.cpu_count() and os.cpu_count() >= 4096:
        pytest.skip("a machine with 4096 cores")
    argv = [a.format(port=_closed_port()) for a in argv]
    out = tmp_path / "runs"
    code, _out, err = run(["search", *argv, "--out", str(out), *([] if "--name" in argv else ["--name", "x"])], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and expected in lines[0], err
    assert not out.exists() or not any(out.iterdir())  # no run folder left behind to block a retry


@pytest.mark.parametrize(
    "text, expected",
    [
        ("search:\n  trials: true\n", "trials must be a number, got true"),
        ("search:\n  population: 2.5\n", "search.population"),
        ("execution:\n  workers: 1\n  scheduler: tcp://h:8786\n", "not both"),
    ],
)
def test_strict_types_in_config_files(text, expected, cfg, capsys, tmp_path):
    code, _out, err = run(["search", "--config", cfg(text), "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_config_that_is_a_folder_or_binary_is_one_line(tmp_path, capsys):
    code, _out, err = run(["search", "--config", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81binary")
    code, _out, err = run(["search", "--config", str(binary)], capsys)
    assert code == 2 and "not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_resume_with_name_or_out_is_refused(tmp_path, capsys):
    for extra in (["--name", "other"], ["--out", str(tmp_path)]):
        code, _out, err = run(["search", "--resume", str(tmp_path), *extra], capsys)
        assert code == 2 and "leave out --name and --out" in err


def test_export_to_a_folder_is_a_usage_error(tmp_path, capsys):
    code, _out, err = run(["export", str(tmp_path), "--id", "0", "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "error, code",
    [
        (OSError(28, "No space left on device", "/runs/a/pareto.json"), 3),
        (PermissionError(13, "Permission denied", "/read-only/model.onnx"), 3),
        (MemoryError(), 3),
    ],
)
def test_environment_faults_are_one_line_with_the_runtime_status(error, code, monkeypatch, capsys):
    import nas.cli as cli

    def fail(args):
        raise error

    monkeypatch.setattr(cli, "_cmd_profiles", fail)
    got, _out, err = run(["profiles"], capsys)
    assert got == code and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    if error.filename if isinstance(error, OSError) else False:
        assert error.filename in err and error.strerror in err


def test_report_comparing_runs_into_one_of_them_is_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    code, _out, err = run(["report", str(a), str(b), "--out", str(a)], capsys)
    assert code == 2 and "would be replaced" in err
