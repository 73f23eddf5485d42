"""Supernet structures the config does not offer, ranked against the stand-alone nets of ranking_fidelity.py.

Each structure is trained with the demo's settings on ``digits-hard`` and scored exactly as
``ranking_fidelity.py --eval-renders`` scores the demo's supernet (batch-norm recalibration on training
images, error on the held-out renders), against the same stand-alone nets:

- ``few-shot-width``: one supernet per width choice, each trained on its own width only (the split of
  few-shot NAS, Zhao et al. 2021, along the choice that decides how every layer is sliced); a subnet inherits
  from the supernet of its width. Costs about three times the training of one supernet.
- ``label-smoothing``: the demo's supernet with the largest arch's cross-entropy smoothed (``--smoothing``),
  so that the targets the smaller archs distil from keep some of the teacher's doubt on training images it
  has memorised. The product has no such setting; this script wraps the loss for the run.

Run ``ranking_fidelity.py --dataset digits-hard --seeds 5 --eval-renders 16`` first: this script reads the
subnets and the stand-alone nets' held-out errors from the JSON it wrote. Supernets are cached under
``OUT/cache/structures``.

    .venv/bin/python benchmarks/ranking_structures.py --structure few-shot-width [--supernet-seed N]
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from scipy.stats import kendalltau, spearmanr
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from ranking_draws import scale_and_scatter
from ranking_fidelity import held_out_renders

import nas.training._train
from nas import CandidateEvaluator, Supernet, SupernetSpec, evaluate_error, train_supernet

NAME = "ranking_structures"
STRUCTURES = ("few-shot-width", "label-smoothing")


class WidthSplit(nn.Module):
    """Supernets of one width each, behind the two calls scoring needs: ``spec`` and ``subnet(arch)``."""

    def __init__(self, spec: SupernetSpec, members: Mapping[float, Supernet]) -> None:
        super().__init__()
        self.spec = spec
        self.widths = [float(w) for w in members]
        self.members = nn.ModuleList(members.values())

    def subnet(self, arch: Mapping[str, Any]) -> nn.Module:
        member = self.members[self.widths.index(float(arch["width"]))]
        return member.subnet(arch)  # type: ignore[operator]


def smoothed_largest_loss(smoothing: float) -> types.SimpleNamespace:
    """``torch.nn.functional`` as ``nas.training._train`` sees it, with cross-entropy (the largest arch's loss, the
    only one it computes with that function) smoothed."""
    functions = {k: getattr(F, k) for k in dir(F) if not k.startswith("__")}
    functions["cross_entropy"] = lambda logits, y: F.cross_entropy(logits, y, label_smoothing=smoothing)
    return types.SimpleNamespace(**functions)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--structure", choices=STRUCTURES, required=True, help="what to train (see above)")
    p.add_argument(
        "--supernet-seed", type=int, default=0, help="seed of initialisation and training (default 0)"
    )
    p.add_argument("--smoothing", type=float, default=0.1, help="label-smoothing: its factor (default 0.1)")
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="ranking_fidelity JSON with the subnets and stand-alone errors "
        "(default: OUT/ranking_fidelity-digits-hard-r16.json)",
    )
    args = p.parse_args()
    reference = args.reference or args.out / "ranking_fidelity-digits-hard-r16.json"
    if not reference.is_file():
        p.error(
            f"{reference} does not exist: run ranking_fidelity.py --dataset digits-hard --seeds 5 "
            "--eval-renders 16 first (or name its JSON with --reference)"
        )
    ref = json.loads(reference.read_text())
    if not ref.get("held_out_renders"):
        p.error(f"{reference} has no held-out scores: it was written without --eval-renders")
    if not 0.0 <= args.smoothing < 1.0:
        p.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
    common.apply_threads(args.threads)
    info = common.header()
    cfg = common.demo_config({"data.name": "digits-hard"})
    data = common.load_data(cfg)
    spec = common.supernet_spec(cfg, data)
    seed = args.supernet_seed
    variant = f"label-smoothing{args.smoothing:g}" if args.structure == "label-smoothing" else args.structure
    tag = f"{variant}-sseed{seed}"

    def trained(member_spec: SupernetSpec, name: str) -> Supernet:
        net = Supernet(member_spec, seed=seed)
        train_supernet(
            net,
            data.train,
            **cfg.supernet.train_kwargs(),
            fill=data.black,
            seed=seed,
            checkpoint_path=args.out / "cache" / "structures" / f"{name}.pt",
            on_epoch=lambda e, n, loss, sec: common.log(
                f"  {name} epoch {e}/{n}  loss {loss:.4f}  {sec:.1f}s"
            ),
        )
        return net.eval()

    t0 = time.perf_counter()
    model: nn.Module
    if args.structure == "few-shot-width":
        members = {
            float(w): trained(dataclasses.replace(spec, width_choices=(w,)), f"{tag}-w{w:g}")
            for w in spec.width_choices
        }
        model = WidthSplit(spec, members)
    else:
        plain_functional = nas.training._train.F
        nas.training._train.F = smoothed_largest_loss(args.smoothing)  # type: ignore[assignment]
        try:
            model = trained(spec, tag)
        finally:
            nas.training._train.F = plain_functional
    training_seconds = time.perf_counter() - t0

    archs = [s["arch"] for s in ref["subnets"]]
    alone = np.array(ref["held_out_renders"]["standalone_errors"]).mean(axis=1)
    evaluator = CandidateEvaluator.from_config(
        cfg,
        supernet=model,  # type: ignore[arg-type]
        data=data,
        measuring=False,
        work_dir=args.out / "tmp",
    )
    renders = held_out_renders(cfg.seed, ref["held_out_renders"]["renders"], data)
    common.log(f"scoring {len(archs)} subnets on {len(renders)} held-out renders")
    inherited = np.array([evaluate_error(evaluator.calibrated_subnet(a), renders) for a in archs])
    tau = kendalltau(inherited, alone)
    slope, scatter = scale_and_scatter(inherited, alone)
    figures = {
        "kendall_tau": float(tau.statistic),
        "kendall_p": float(tau.pvalue),
        "spearman_rho": float(spearmanr(inherited, alone).statistic),
        "mean_inherited_error": float(inherited.mean()),
        "slope_on_standalone": slope,
        "scatter_standalone_pp": scatter,
    }
    payload = {
        **info,
        "benchmark": NAME,
        "structure": args.structure,
        "smoothing": args.smoothing if args.structure == "label-smoothing" else None,
        "supernet_seed": seed,
        "reference": str(reference),
        "figures": figures,
        "inherited_errors": inherited.tolist(),
        "standalone_means": alone.tolist(),
        "training_seconds": round(training_seconds, 1),
    }
    path = common.write_json(args.out / f"{NAME}-{tag}.json", payload)
    print(f"## Ranking fidelity of {args.structure} (supernet seed {seed})\n")
    print(common.machine_line(info) + "\n")
    rows = [
        [
            "Kendall tau (inherited vs stand-alone mean, held-out renders)",
            f"{tau.statistic:.3f} (p = {tau.pvalue:.2g})",
        ],
        ["Spearman rho", f"{figures['spearman_rho']:.3f}"],
        ["mean inherited error", f"{inherited.mean():.2f} %"],
        ["slope on stand-alone error / scatter", f"{slope:.2f} / {scatter:.2f} pp"],
        ["training (this run; 0 when cached)", f"{training_seconds:.0f} s"],
    ]
    print(common.table(["figure", "value"], rows))
    print(f"\nfigures in {path}")


if __name__ == "__main__":
    main()
