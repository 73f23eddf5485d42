"""Runs tests under hostile conditions and reports every test whose outcome changes.

Usage (from the repository root):

    .venv/bin/python scripts/hostile_check.py                      # the timing-sensitive tests
    .venv/bin/python scripts/hostile_check.py tests/profilers tests/search
    .venv/bin/python scripts/hostile_check.py --speed 50 -- tests/profilers -k quiet
    .venv/bin/python scripts/hostile_check.py -- tests              # the default test run (slow ones left out)
    .venv/bin/python scripts/hostile_check.py -- -m slow tests      # the heavy end-to-end tests CI adds

The tests run three times, each in a fresh pytest process with its own JUnit XML report:

1. normal: as the README runs them;
2. loaded: beside ``--burners`` processes (2 by default) that keep a CPU core busy each, as on a shared
   machine;
3. fast clock: with ``HWNAS_TEST_CLOCK_SPEED=<--speed>`` (20 by default), which ``tests/conftest.py`` reads to
   make ``time.perf_counter`` and ``time.monotonic`` run that many times faster, as on a machine that much
   slower.

A test's outcome is passed, failed, error or skipped. Every test whose outcome in a hostile run differs
from the normal run is listed, and the exit status is 1; 0 when every outcome is the same; 2 when pytest
could not run at all. Arguments after the options (or after ``--``) go to pytest unchanged.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEED_VARIABLE = "HWNAS_TEST_CLOCK_SPEED"

#: Tests that time, wait or run threads: latency and energy measurement, the quiet gate, the locks and
#: caches shared by threads, and the study storage written from several threads.
TIMING_SENSITIVE = (
    "tests/profilers/test_quiet_gate.py",
    "tests/profilers/test_energy.py",
    "tests/profilers/test_nvml_energy.py",
    "tests/profilers/test_rapl_energy.py",
    "tests/profilers/test_estimated_energy.py",
    "tests/profilers/test_onnxruntime_latency.py",
    "tests/profilers/test_latency_conformance.py",
    "tests/profilers/test_torch_latency.py",
    "tests/profilers/test_measurement_cache.py",
    "tests/search/test_study.py",
)


def _burn() -> None:  # pragma: no cover - runs in a child process until it is terminated
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def _outcomes(report: Path) -> dict[str, str]:
    """Test id (file::name) -> passed / failed / error / skipped, from a JUnit XML report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{classname.replace('.', '/')}.py::{name}" if classname else name
        if case.find("error") is not None:
            outcome = "error"
        elif case.find("failure") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test that failed and then errored in teardown reports both: the worse one stays.
        previous = outcomes.get(test_id)
        outcomes[test_id] = outcome if previous in (None, "passed", "skipped") else previous
    return outcomes


def _run(label: str, pytest_args: Sequence[str], report: Path, env: dict[str, str]) -> dict[str, str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *pytest_args,
    ]
    started = time.monotonic()
    print(f"[{label}] {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    tail = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"[{label}] {tail} ({time.monotonic() - started:.0f} s, exit {done.returncode})", flush=True)
    if done.returncode not in (0, 1) or not report.is_file():
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"hostile_check: pytest could not run in the {label} run (exit {done.returncode})")
    return _outcomes(report)


def _compare(normal: dict[str, str], other: dict[str, str], label: str) -> list[str]:
    changes = []
    for test_id in sorted(set(normal) | set(other)):
        before, after = normal.get(test_id, "absent"), other.get(test_id, "absent")
        if before != after:
            changes.append(f"{label}: {test_id}: {before} -> {after}")
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run tests normally, beside CPU burners, and with a faster clock; report changed outcomes."
    )
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes in the loaded run (2)")
    parser.add_argument(
        "--speed", type=float, default=20.0, help="clock speed factor in the fast-clock run (20)"
    )
    parser.add_argument("--skip-load", action="store_true", help="leave out the run beside CPU burners")
    parser.add_argument("--skip-clock", action="store_true", help="leave out the fast-clock run")
    options, pytest_args = parser.parse_known_args(argv)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    if not pytest_args:
        pytest_args = list(TIMING_SENSITIVE)
    if options.burners < 1 or not options.speed > 0:
        parser.error("--burners must be >= 1 and --speed > 0")

    env = {k: v for k, v in os.environ.items() if k != SPEED_VARIABLE}
    changes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hwnas-hostile-") as tmp:
        reports = Path(tmp)
        normal = _run("normal", pytest_args, reports / "normal.xml", env)
        if not options.skip_load:
            burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(options.burners)]
            for burner in burners:
                burner.start()
            try:
                loaded = _run(f"{options.burners} CPU burners", pytest_args, reports / "loaded.xml", env)
            finally:
                for burner in burners:
                    burner.terminate()
                for burner in burners:
                    burner.join()
            changes += _compare(normal, loaded, f"{options.burners} CPU burners")
        if not options.skip_clock:
            fast_env = {**env, SPEED_VARIABLE: f"{options.speed:g}"}
            fast = _run(f"clock x{options.speed:g}", pytest_args, reports / "fast.xml", fast_env)
            changes += _compare(normal, fast, f"clock x{options.speed:g}")

    counts = {o: sum(v == o for v in normal.values()) for o in ("passed", "failed", "error", "skipped")}
    print(f"normal run: {', '.join(f'{n} {o}' for o, n in counts.items())} ({len(normal)} tests)")
    for test_id, outcome in sorted(normal.items()):
        if outcome in ("failed", "error"):
            print(f"  {outcome} already in the normal run: {test_id}")
    if changes:
        print(f"{len(changes)} outcome(s) changed under hostile conditions:")
        for line in changes:
            print(f"  {line}")
        return 1
    print("no test changed its outcome under hostile conditions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
