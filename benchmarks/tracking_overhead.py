"""What does codecarbon's tracking cost? The same supernet training with and without a SearchTracker.

Trains the demo's supernet for ``--epochs`` epochs, alternately without and with energy tracking (one
codecarbon task around the training, as a search runs it), ``--repeats`` times each, and prints the seconds.

    .venv/bin/python benchmarks/tracking_overhead.py [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from nas import SearchTracker, Supernet, train_supernet


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], threads=False)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    if args.quick:
        args.epochs, args.repeats = 1, 1
    info = common.header()
    cfg = common.demo_config()
    data = common.load_data(cfg)
    spec = common.supernet_spec(cfg, data)
    rows, seconds = [], {"plain": [], "tracked": []}
    for _ in range(args.repeats):
        for tracked in (False, True):
            tracker = SearchTracker(tempfile.mkdtemp(), project="overhead", enabled=tracked)
            tracker.start()
            t0 = time.perf_counter()
            with tracker.phase("supernet_training"):
                train_supernet(
                    Supernet(spec, seed=0),
                    data.train,
                    **cfg.supernet.train_kwargs() | {"epochs": args.epochs},
                    seed=0,
                )
            elapsed = time.perf_counter() - t0
            tracker.stop()
            seconds["tracked" if tracked else "plain"].append(elapsed)
            rows.append(["tracked" if tracked else "plain", f"{elapsed:.1f}"])
    out = common.write_json(
        args.out / "tracking_overhead.json", {**info, "epochs": args.epochs, "seconds": seconds}
    )
    print(common.machine_line(info))
    print()
    print(common.table([f"training, {args.epochs} epochs", "seconds"], rows))
    common.log(f"figures: {out}")


if __name__ == "__main__":
    main()
