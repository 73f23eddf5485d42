"""``--workers`` against the memory available: refused in one line, before any work, unless insisted on."""

import pytest

from nas.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def memory(monkeypatch):
    """Fakes the memory available (``psutil.virtual_memory().available``) and gives the check 64 cores, so that
    only memory can refuse; a refused start must load no data."""
    import psutil

    import nas.run._checks as checks
    import nas.run._experiment as experiment

    monkeypatch.setattr(checks, "available_cores", lambda: 64)

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the memory check")

    monkeypatch.setattr(experiment, "load_dataset", no_data)
    real = psutil.virtual_memory()

    def available(n_bytes):
        monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=n_bytes))

    return available


def test_workers_that_do_not_fit_in_memory_are_refused_in_one_line_before_any_work(
    tmp_path, capsys, memory, monkeypatch
):
    import nas.run._checks as checks

    one = checks.WorkerFootprint(process=300 * 2**20, supernet=2**20)  # 557 MiB with the margin
    monkeypatch.setattr(checks, "worker_footprint", lambda config, space: one)
    memory(1200 * 2**20)
    out = tmp_path / "runs"
    code, _out, err = run(["search", "--workers", "3", "--out", str(out), "--name", "x"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    for part in (
        "is 3",
        "557 MiB per worker",
        "1.17 GiB of memory available",
        "use at most 2",
        "--oversubscribe",
    ):
        assert part in lines[0], err
    assert not out.exists() or not any(out.iterdir())
    from nas.run._config import SearchConfig

    two = SearchConfig.model_validate({"execution": {"workers": 2}})
    checks.check_worker_memory(two, None, available_bytes=1200 * 2**20, footprint=one)  # two fit


def test_the_worker_footprint_is_measured_and_no_worker_fitting_says_to_leave_out_workers(
    tmp_path, capsys, memory
):
    from nas.run._checks import EVALUATION_MARGIN_BYTES, check_worker_memory, worker_footprint
    from nas.run._config import SearchConfig
    from nas.spaces import space_for_input

    config = SearchConfig.model_validate({"execution": {"workers": 1}})
    space = space_for_input(config.space.name, 1, 8, 10, config.space_options())
    one = worker_footprint(config, space)
    params = sum(p.numel() * 4 for p in space.build_supernet(seed=0).parameters())
    assert one.process > 50 * 2**20 and one.supernet >= params > 0 and one.margin == EVALUATION_MARGIN_BYTES
    memory(one.margin)  # less than any worker needs
    out = tmp_path / "runs"
    code, _out, err = run(["search", "--workers", "1", "--out", str(out), "--name", "x"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert (
        code == 2 and len(lines) == 1 and "leave out --workers" in lines[0] and "--oversubscribe" in lines[0]
    ), err
    assert not out.exists() or not any(out.iterdir())
    insisting = SearchConfig.model_validate({"execution": {"workers": 8, "oversubscribe": True}})
    check_worker_memory(insisting, space, available_bytes=1)  # insisted: not refused
