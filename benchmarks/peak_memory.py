"""Peak resident memory of the default demo (`hwnas search` with no arguments): benchmark (h), target <= 2 GiB.

Runs the command line in a child process (in a temporary run folder that is removed afterwards) and reads
the child's peak resident set size from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` once it has
exited: the largest resident size any one of its processes reached (the demo runs in one process).
Extra arguments are passed to ``hwnas search`` (e.g. ``--epochs 1`` for a quicker check; the figure is then
not the demo's).

    nice -n 10 .venv/bin/python benchmarks/peak_memory.py [--out benchmarks/out] [-- EXTRA HWNAS ARGS]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

NAME = "peak_memory"
TARGET_GIB = 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for the JSON figures")
    p.add_argument("extra", nargs="*", help="further arguments of hwnas search (after --)")
    args = p.parse_args()
    info = common.header()
    hwnas = Path(sys.executable).with_name("hwnas")
    runs = Path(tempfile.mkdtemp(prefix="hwnas-peak-"))
    command = [str(hwnas), "search", "--out", str(runs), "--name", "demo", *args.extra]
    common.log(f"running {' '.join(command)}")
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"hwnas search failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    peak_gib = peak_kib / 2**20
    payload = {
        **info,
        "benchmark": NAME,
        "hwnas_args": ["search", *args.extra],
        "peak_rss_kib": peak_kib,
        "peak_rss_gib": round(peak_gib, 3),
        "target_gib": TARGET_GIB,
        "seconds": round(seconds, 1),
    }
    path = common.write_json(args.out / f"{NAME}.json", payload)
    print("## Peak memory of the demo\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(f"- measured: `{' '.join(['hwnas', 'search', *args.extra])}`, {seconds:.0f} s\n")
    print(
        f"peak resident memory {peak_gib:.2f} GiB ({peak_kib / 1024:.0f} MiB); target <= {TARGET_GIB} GiB: "
        f"{'met' if peak_gib <= TARGET_GIB else 'NOT met'}"
    )
    print(f"\nfigures in {path}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
