"""Does the supernet rank subnets as training them alone would? Kendall tau on the demo's supernet.

For random subnets of the demo's search space (seeded, spread over model size), compares

- the *inherited* validation error: weights sliced from the trained supernet, batch-norm statistics
  re-estimated on training images, scored on the validation split, exactly as the search scores a
  candidate (``CandidateEvaluator.score``), with
- the *stand-alone* validation error: the same architecture (``supernet.subnet(arch)``) re-initialised and
  trained from scratch on the same training split (SGD with Nesterov momentum, cosine learning rate, plain
  cross-entropy, the supernet's epochs, batch size, peak learning rate, weight decay and augmentation),
  averaged over several training seeds.

Reports Kendall's tau (with its p-value) and Spearman's rho between the two, the seed-to-seed agreement of
the stand-alone errors (the ceiling that training noise puts on any ranking), and the per-subnet table.

The supernet is trained once with the demo config and cached under ``OUT/cache``; stand-alone results are
cached there too, so a rerun only computes what is missing.

    .venv/bin/python benchmarks/ranking_fidelity.py [--quick] [--out benchmarks/out]
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

# As the hwnas command line does, before torch loads: OpenMP threads that spin while they wait slow
# training down several times over as soon as another process shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from nas import (
    CandidateEvaluator,
    Supernet,
    SupernetSpec,
    arch_key,
    augment_batch,
    evaluate_error,
    load_digits_hard,
)
from nas.run._config import DATASET_OPTIONS
from nas.spaces import SearchSpace, VitSpace, space_from_dict, space_ref
from nas.spaces._vit import mlp_hidden

NAME = "ranking_fidelity"
#: Supernet training settings ``--supernet-option`` may change.
SUPERNET_OPTIONS = (
    "num_random",
    "distill",
    "average_last",
    "shift",
    "flip",
    "lr",
    "weight_decay",
    "batch_size",
    "zero_init_residual",
)
#: Stand-alone training settings ``--standalone-option`` may change.
STANDALONE_OPTIONS = ("shift", "flip", "epochs", "lr", "weight_decay")
#: Stand-alone settings that join a job's cache key only when set (older caches stay valid).
AUGMENT_FIELDS = ("shift", "flip")
MOMENTUM = 0.9
#: Training settings a space other than the demo's MobileNet starts from, for the supernet and the stand-alone
#: nets alike (those of its example config: examples/vit.yaml).
SPACE_TRAINING: dict[str, dict[str, Any]] = {"vit": {"supernet.batch_size": 32, "supernet.lr": 0.03}}


# -- which subnets ---------------------------------------------------------------------------------------


def select_archs(spec: SearchSpace, n: int, seed: int, pool: int = 400) -> list[dict[str, Any]]:
    """``n`` distinct random archs spread over model size.

    Draws ``pool`` distinct archs uniformly over the choices (as the sandwich rule samples them), sorts them
    by the weight count of their convolutions and takes the ones at the quantiles ``(i + 0.5) / n``: every
    size band is represented, and none is the largest or smallest arch (which the sandwich rule trains
    directly).
    """
    rng = np.random.default_rng(seed)
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < pool:
        arch = spec.random_arch(rng)
        seen.setdefault(arch_key(arch), arch)
    sized = sorted(seen.values(), key=lambda a: (arch_size(spec, a), arch_key(a)))
    return [sized[int((i + 0.5) * len(sized) / n)] for i in range(n)]


def arch_size(spec: SearchSpace, arch: dict[str, Any]) -> int:
    """A cheap size measure of an arch: :func:`conv_weights` or, for the ViT, :func:`vit_weights`."""
    if isinstance(spec, VitSpace):
        return vit_weights(spec, arch)
    assert isinstance(spec, SupernetSpec), f"no size measure for {type(spec).__name__}"
    return conv_weights(spec, arch)


def vit_weights(spec: VitSpace, arch: dict[str, Any]) -> int:
    """Weights of the encoder layers' linear maps (query/key/value, projection, MLP)."""
    d = int(arch["embed"])
    return sum(
        4 * d * heads * spec.head_dim + 2 * d * mlp_hidden(d, ratio)
        for heads, ratio in zip(arch["heads"], arch["mlp_ratio"], strict=True)
    )


def arch_cells(arch: dict[str, Any]) -> tuple[str, str]:
    """Two short columns describing an arch: width and depths, or embedding and heads / MLP ratios."""
    if "embed" in arch:
        ratios = "-".join(f"{r:g}" for r in arch["mlp_ratio"])
        return str(arch["embed"]), f"{'-'.join(map(str, arch['heads']))} / {ratios}"
    return str(arch["width"]), "-".join(map(str, arch["depth"]))


def conv_weights(spec: SupernetSpec, arch: dict[str, Any]) -> int:
    """Weights of the inverted-residual blocks' convolutions: a cheap size measure (building every subnet
    to count its parameters takes a fifth of a second each)."""
    stem, stages, _ = spec.channels(float(arch["width"]))
    total, c_in = 0, stem
    for s, c_out in enumerate(stages):
        for k, e in zip(arch["kernel"][s], arch["expand"][s]):
            hidden = c_in * e
            total += c_in * hidden + hidden * k * k + hidden * c_out
            c_in = c_out
    return total


# -- stand-alone training --------------------------------------------------------------------------------


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh weights with the supernet's scheme: He normal (fan-out) convolutions, identity batch norms
    with reset statistics, classifier N(0, 0.01^2) with zero bias."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                w = torch.empty(m.weight.shape)
                nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.01)
                m.bias.zero_()


def crop_unreachable_taps(model: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """Crops every "same"-padded kernel larger than its feature map to the taps the map can reach.

    A 7x7 depthwise kernel on a 2x2 map only ever uses its central 3x3 taps: the other taps see padding,
    get no gradient and never change the output. Cropping them after initialisation gives the same
    function and the same training trajectory for inputs of ``input_shape`` (the evaluation code crops the
    same way for speed), and makes CPU training much faster.
    """
    sides: dict[nn.Conv2d, int] = {}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks = [
        c.register_forward_pre_hook(lambda m, a: sides.__setitem__(m, max(a[0].shape[-2:]))) for c in convs
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    for conv, side in sides.items():
        k = conv.kernel_size[0]
        reach = 2 * side - 1
        if reach >= k or conv.padding != (k // 2, k // 2) or conv.dilation != (1, 1):
            continue
        start = (k - reach) // 2
        conv.weight = nn.Parameter(
            conv.weight.detach()[..., start : start + reach, start : start + reach].clone()
        )
        conv.kernel_size = (reach, reach)
        conv.padding = (reach // 2, reach // 2)


_DATA: dict[tuple[str, int], Any] = {}


def train_standalone(job: dict[str, Any]) -> dict[str, Any]:
    """Trains one arch from scratch; returns its validation error (%), final loss and seconds.

    Runs in a worker process (or in-process); everything it needs is in the JSON-ready ``job``.
    """
    torch.set_num_threads(job["threads"])
    key = (
        job["dataset"],
        json.dumps(job.get("data_options", {}), sort_keys=True),
        job["data_seed"],
        job["train_fraction"],
    )
    if key not in _DATA:
        cfg = common.demo_config(
            {
                "data.name": job["dataset"],
                "data.options": job.get("data_options", {}),
                "seed": job["data_seed"],
            }
        )
        _DATA[key] = common.load_data(cfg, job["train_fraction"])
    data = _DATA[key]
    net = fresh_net(job)
    crop_unreachable_taps(net, data.input_shape)
    x_all, y_all = data.train.tensors
    y_all = y_all.long()
    n, bs, epochs = len(y_all), job["batch_size"], job["epochs"]
    drop_last = n > bs and n % bs == 1  # a lone sample would break batch norm (as in supernet training)
    steps = epochs * (n // bs if drop_last else math.ceil(n / bs))
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": job["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=job["lr"],
        momentum=MOMENTUM,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    gen = torch.Generator().manual_seed(job["seed"])
    shift, flip = job.get("shift", 0), job.get("flip", False)
    augment_gen = torch.Generator().manual_seed(
        int(np.random.SeedSequence([job["seed"], 1]).generate_state(1)[0])
    )
    t0 = time.perf_counter()
    net.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job["seed"])  # dropout
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            total = seen = 0.0
            for i in range(0, n, bs):
                idx = order[i : i + bs]
                if drop_last and len(idx) < bs:
                    break
                x = x_all[idx]
                if shift or flip:
                    x = augment_batch(x, augment_gen, shift=shift, flip=flip, fill=data.black)
                loss = F.cross_entropy(net(x), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                seen += len(idx)
    seconds = time.perf_counter() - t0
    Path(job["weights"]).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), job["weights"])
    return {"val_error": evaluate_error(net, data.val), "final_loss": total / seen, "seconds": seconds}


def fresh_net(job: dict[str, Any]) -> nn.Module:
    """The job's arch with fresh weights seeded by the job: the MobileNet re-initialised by
    :func:`reinitialise`; another space's subnet taken from a supernet it builds from seed ``1000 + seed``
    (its own initialisation scheme, apart from the seeds the benchmark's supernets are trained from)."""
    space = space_from_dict({"space": job.get("space", "mobilenet"), "options": job["spec"]})
    if isinstance(space, SupernetSpec):
        net = Supernet(space, seed=0).subnet(job["arch"])  # only the architecture is used: weights are reset
        reinitialise(net, job["seed"])
        return net
    return space.build_supernet(seed=1000 + job["seed"]).subnet(job["arch"]).train()


def load_standalone(job: dict[str, Any], input_shape: tuple[int, int, int]) -> nn.Module:
    """The net ``train_standalone`` trained for ``job``, rebuilt from its saved weights (in eval mode)."""
    net = fresh_net(job)
    crop_unreachable_taps(net, input_shape)  # the saved weights are the cropped ones
    net.load_state_dict(torch.load(job["weights"], weights_only=True))
    return net.eval()


def held_out_renders(seed: int, renders: int, data: Any) -> TensorDataset:
    """A large held-out set of ``digits-hard``: every validation and test source digit rendered ``renders``
    times (fresh offsets, clutter and noise), normalised with the statistics of the training split ``data``.

    None of these source digits is in the training split, so this measures the same generalisation as the
    validation split, with far less sampling noise: 718 validation images put one image at 0.14 pp, and two
    models that disagree on a fifth of them differ by 1.7 pp from sampling alone.
    """
    many = load_digits_hard(seed=seed, copies=renders)
    images = torch.cat([many.val.tensors[0], many.test.tensors[0]]) * many.std[0] + many.mean[0]
    labels = torch.cat([many.val.tensors[1], many.test.tensors[1]])
    return TensorDataset(((images - data.mean[0]) / data.std[0]).float(), labels)


def held_out_standalone(
    jobs: list[dict[str, Any]], big: TensorDataset, cache_path: Path, input_shape: tuple[int, int, int]
) -> list[float]:
    """Each job's stand-alone net's error on the held-out renders ``big``, cached by the job's recipe and a
    fingerprint of ``big`` (rescoring every net on every run costs minutes)."""
    images, labels = big.tensors
    fingerprint = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()[:16]
    cache: dict[str, float] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    errors = []
    for job in jobs:
        key = f"{_recipe_hash(job)}-{fingerprint}"
        if key not in cache:
            error = evaluate_error(load_standalone(job, input_shape), big)
            # Other runs may have added to the file meanwhile: merge, do not overwrite.
            cache = {
                **(json.loads(cache_path.read_text()) if cache_path.is_file() else {}),
                **cache,
                key: error,
            }
            common.write_json(cache_path, cache)
        errors.append(cache[key])
    return errors


def _recipe_hash(job: dict[str, Any]) -> str:
    return hashlib.sha256(_recipe_key(job).encode()).hexdigest()[:16]


def _recipe_key(job: dict[str, Any]) -> str:
    fields = ("dataset", "data_seed", "train_fraction", "epochs", "batch_size", "lr", "weight_decay", "seed")
    key = [arch_key(job["arch"]), json.dumps(job["spec"], sort_keys=True), [job[f] for f in fields]]
    optional = {f: job[f] for f in (*AUGMENT_FIELDS, "data_options") if job.get(f)}
    return json.dumps([*key, optional] if optional else key)


def run_standalone(jobs: list[dict[str, Any]], cache_path: Path, workers: int) -> list[dict[str, Any]]:
    """Results of every job, from the cache or computed (in ``workers`` processes), cached as they come."""
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    todo = [j for j in jobs if _recipe_key(j) not in cache or not Path(j["weights"]).is_file()]
    common.log(
        f"stand-alone training: {len(jobs) - len(todo)} cached, {len(todo)} to train ({workers} workers)"
    )

    def store(job: dict[str, Any], result: dict[str, Any]) -> None:
        cache[_recipe_key(job)] = result
        common.write_json(cache_path, cache)
        done = sum(_recipe_key(j) in cache for j in jobs)
        common.log(
            f"  [{done}/{len(jobs)}] subnet {job['index']} seed {job['seed']}: "
            f"val error {result['val_error']:.2f}%  ({result['seconds']:.0f}s)"
        )

    if workers <= 1:
        for job in todo:
            store(job, train_standalone(job))
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch has started its threads
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(train_standalone, j): j for j in todo}
            for fut in cf.as_completed(futures):
                store(futures[fut], fut.result())
    return [cache[_recipe_key(j)] for j in jobs]


# -- the figures -----------------------------------------------------------------------------------------


def agreement(inherited: np.ndarray, per_seed: np.ndarray, resamples: int = 2000) -> dict[str, Any]:
    """How well ``inherited`` errors (one per subnet) rank the subnets as their stand-alone errors
    (``subnets x seeds``, averaged over seeds) do, and how well single seeds agree with each other.

    ``kendall_tau_90ci`` is a percentile bootstrap over subnets: with 15 subnets one tau is uncertain by
    about +-0.15, which matters when it is read against a target.
    """
    from scipy.stats import kendalltau, spearmanr

    alone = per_seed.mean(axis=1)
    tau = kendalltau(inherited, alone)
    rho = spearmanr(inherited, alone)
    seeds = per_seed.shape[1]
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(resamples):
        pick = rng.integers(0, len(alone), len(alone))
        t = kendalltau(inherited[pick], alone[pick]).statistic
        if np.isfinite(t):
            boot.append(t)
    return {
        "kendall_tau": float(tau.statistic),
        "kendall_p": float(tau.pvalue),
        # No finite resample (errors all tied, as after a very short training): no interval either.
        "kendall_tau_90ci": [float(np.percentile(boot, q)) if boot else math.nan for q in (5, 95)],
        "spearman_rho": float(rho.statistic),
        "spearman_p": float(rho.pvalue),
        "seed_to_seed_kendall_tau": [
            float(kendalltau(per_seed[:, a], per_seed[:, b]).statistic)
            for a in range(seeds)
            for b in range(a + 1, seeds)
        ],
        "mean_seed_std_pct": float(per_seed.std(axis=1, ddof=1).mean()) if seeds > 1 else float("nan"),
        "standalone_spread_std_pct": float(alone.std(ddof=1)),
        "inherited_spread_std_pct": float(inherited.std(ddof=1)),
    }


# -- the benchmark ---------------------------------------------------------------------------------------


def _space_fields(name: str) -> tuple[str, ...]:
    """The options ``--space-option`` may set: the space's ``for_input`` options (its dataclass fields)."""
    import dataclasses

    from nas.spaces import resolve_space

    cls = resolve_space(name)
    fields = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
    return tuple(f for f in fields if f not in ("in_channels", "image_size", "num_classes"))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--subnets", type=int, default=None, help="random subnets (default 15, quick 5)")
    p.add_argument(
        "--seeds", type=int, default=None, help="stand-alone training seeds per subnet (default 2)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes for stand-alone training, one thread each (default 2)",
    )
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the subnet sample (default 0)")
    p.add_argument(
        "--dataset",
        default="digits",
        help="built-in dataset: digits (the demo's) or digits-hard (shifted, cluttered, noisy digits, "
        "where subnets differ in accuracy; default digits)",
    )
    p.add_argument(
        "--space",
        default="mobilenet",
        help="search space: mobilenet (the demo's, default) or vit (trained with batch 32 and learning rate "
        "0.03, as examples/vit.yaml, supernet and stand-alone nets alike)",
    )
    p.add_argument(
        "--space-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the space (space.options), e.g. depth_choices=[2,3] (repeatable; VALUE is read as YAML)",
    )
    p.add_argument(
        "--data-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="variant: an option of the dataset's loader (data.options), for the supernet and the "
        "stand-alone nets alike, e.g. copies=8: eight renders of each digits-hard digit (repeatable)",
    )
    p.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="harder variant: train the supernet and every stand-alone net on this stratified share of "
        "the training split only (default 1: all of it)",
    )
    p.add_argument(
        "--calib-samples",
        type=int,
        default=None,
        help="harder variant: training images for batch-norm recalibration (default: the config's)",
    )
    p.add_argument(
        "--supernet-epochs",
        type=int,
        default=None,
        help="variant: train the supernet for this many epochs; stand-alone nets keep the config's "
        "(default: the config's)",
    )
    p.add_argument(
        "--finetune-steps",
        type=int,
        default=0,
        help="variant: fine-tune each inherited subnet for this many seeded steps before scoring, as "
        "evaluation.finetune_steps does in a search (default 0)",
    )
    p.add_argument(
        "--supernet-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"variant: change one supernet training setting ({', '.join(SUPERNET_OPTIONS)}); stand-alone "
        "nets keep the config's (repeatable; VALUE is read as YAML)",
    )
    p.add_argument(
        "--standalone-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"variant: change one stand-alone training setting ({', '.join(STANDALONE_OPTIONS)}) from the "
        "config's; the supernet keeps the config's (repeatable; VALUE is read as YAML)",
    )
    p.add_argument(
        "--supernet-seed",
        type=int,
        default=None,
        help="variant: seed of the supernet's initialisation and training only; the data split and the "
        "stand-alone nets keep the config's seed (default: the config's)",
    )
    p.add_argument(
        "--supernet-members",
        type=int,
        default=1,
        help="variant: rank on the mean error of this many supernets trained alike from seeds S, S+1, ... "
        "(S: --supernet-seed, else the config's), as supernet.members does in a search (default 1)",
    )
    p.add_argument(
        "--export-finetune-steps",
        type=int,
        default=0,
        help="with --eval-renders: also fine-tune each subnet of the best-scoring member for this many steps, "
        "as evaluation.export_finetune_steps does to a front model before export, and score it on the "
        "held-out renders (default 0: not done)",
    )
    p.add_argument(
        "--eval-renders",
        type=int,
        default=0,
        help="digits-hard only: also score every model on the validation and test source digits rendered "
        "this many times each (e.g. 8: 5744 images), a held-out set with far less sampling noise than the "
        "validation split (default 0: validation split only)",
    )
    args = p.parse_args()
    if args.export_finetune_steps < 0 or (args.export_finetune_steps and not args.eval_renders):
        p.error("--export-finetune-steps needs --eval-renders and a count >= 0")
    if args.supernet_members < 1:
        p.error(f"--supernet-members must be at least 1, got {args.supernet_members}")
    if args.eval_renders < 0 or (args.eval_renders and args.dataset != "digits-hard"):
        p.error(f"--eval-renders needs --dataset digits-hard and a count >= 1, got {args.eval_renders}")
    options = common.key_values(p, "--supernet-option", args.supernet_option, SUPERNET_OPTIONS)
    supernet_changes: dict[str, Any] = {f"supernet.{k}": v for k, v in options.items()}
    standalone_options = common.key_values(
        p, "--standalone-option", args.standalone_option, STANDALONE_OPTIONS
    )
    if args.supernet_epochs:
        supernet_changes["supernet.epochs"] = args.supernet_epochs
    if not 0.0 < args.train_fraction <= 1.0:
        p.error(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
    common.apply_threads(args.threads)
    info = common.header()
    started = time.perf_counter()

    overrides: dict[str, Any] = {"data.name": args.dataset}
    if args.space != "mobilenet":
        overrides |= {"space.name": args.space, **SPACE_TRAINING.get(args.space, {})}
    space_options = dict(common.key_values(p, "--space-option", args.space_option, _space_fields(args.space)))
    if space_options:
        overrides["space.options"] = space_options
    data_options = common.key_values(
        p, "--data-option", args.data_option, DATASET_OPTIONS.get(args.dataset, ())
    )
    if data_options:
        overrides["data.options"] = data_options
    if args.quick:
        overrides["supernet.epochs"] = 2
    standalone = common.demo_config(
        {**overrides, **{f"supernet.{k}": v for k, v in standalone_options.items()}}
    ).supernet
    cfg = common.demo_config({**overrides, **supernet_changes})
    n_subnets = args.subnets or (5 if args.quick else 15)
    n_seeds = args.seeds or (1 if args.quick else 2)
    calib = args.calib_samples or cfg.evaluation.calib_samples
    data, supernet, sn_record = common.trained_supernet(
        cfg, args.out, train_fraction=args.train_fraction, supernet_seed=args.supernet_seed
    )
    members, member_records = [supernet], [sn_record]
    first_seed = cfg.seed if args.supernet_seed is None else args.supernet_seed
    for k in range(1, args.supernet_members):  # member k: seed S + k, as Experiment.run trains it
        _, net, record = common.trained_supernet(
            cfg, args.out, train_fraction=args.train_fraction, supernet_seed=first_seed + k
        )
        members.append(net)
        member_records.append(record)
    spec = supernet.spec
    variant = "".join(
        [
            f"-{args.space}" if args.space != "mobilenet" else "",
            *(f"-{o.replace('=', '')}" for o in args.space_option),
            f"-{args.dataset}" if args.dataset != "digits" else "",
            *(f"-{o.replace('=', '')}" for o in args.data_option),
            "-quick" if args.quick else "",
            f"-train{args.train_fraction:g}" if args.train_fraction < 1.0 else "",
            f"-calib{calib}" if calib != cfg.evaluation.calib_samples else "",
            f"-se{args.supernet_epochs}" if args.supernet_epochs else "",
            *(f"-{o.replace('=', '')}" for o in args.supernet_option),
            *(f"-sa{o.replace('=', '')}" for o in args.standalone_option),
            f"-ft{args.finetune_steps}" if args.finetune_steps else "",
            f"-sseed{args.supernet_seed}" if args.supernet_seed is not None else "",
            f"-m{args.supernet_members}" if args.supernet_members > 1 else "",
            f"-xft{args.export_finetune_steps}" if args.export_finetune_steps else "",
            f"-r{args.eval_renders}" if args.eval_renders else "",
        ]
    )

    archs = select_archs(spec, n_subnets, args.arch_seed)
    evaluator = CandidateEvaluator.from_config(
        cfg,
        supernet=members,
        data=data,
        measuring=False,
        calib_samples=calib,
        finetune_steps=args.finetune_steps,
        export_finetune_steps=args.export_finetune_steps,
        work_dir=args.out / "tmp",
    )
    common.log(
        f"inherited errors of {len(archs)} subnets (BN recalibration on {min(calib, len(data.train))} images)"
    )
    t0 = time.perf_counter()
    inherited = [evaluator.score(a) for a in archs]
    inherited_seconds = time.perf_counter() - t0

    jobs = [
        {
            "index": i,
            "arch": arch,
            "spec": spec.to_dict(),
            **({"space": space_ref(spec)} if space_ref(spec) != "mobilenet" else {}),
            "seed": seed,
            "dataset": cfg.data.name,
            **({"data_options": dict(cfg.data.options)} if cfg.data.options else {}),
            "data_seed": cfg.seed,
            "train_fraction": args.train_fraction,
            "epochs": standalone.epochs,
            "batch_size": standalone.batch_size,
            "lr": standalone.lr,
            "weight_decay": standalone.weight_decay,
            **{f: getattr(standalone, f) for f in AUGMENT_FIELDS if getattr(standalone, f)},
            "threads": 1 if args.workers > 1 else torch.get_num_threads(),
        }
        for i, arch in enumerate(archs)
        for seed in range(n_seeds)
    ]
    for job in jobs:
        job["weights"] = str(args.out / "cache" / "standalone" / f"{_recipe_hash(job)}.pt")
    t0 = time.perf_counter()
    results = run_standalone(jobs, args.out / "cache" / "standalone.json", args.workers)
    standalone_seconds = time.perf_counter() - t0

    per_seed = np.array(
        [[r["val_error"] for r in results[i * n_seeds : (i + 1) * n_seeds]] for i in range(len(archs))]
    )
    alone = per_seed.mean(axis=1)
    inh = np.array([m["error"] for m in inherited])
    val_size = len(data.val)  # type: ignore[arg-type]
    figures = {**agreement(inh, per_seed), "val_images": val_size, "one_val_image_pct": 100.0 / val_size}
    held_out: dict[str, Any] | None = None
    if args.eval_renders:
        big = held_out_renders(cfg.seed, args.eval_renders, data)
        common.log(f"scoring every model on {len(big)} held-out renders")
        by_member = np.array([evaluator.member_errors(a, big)[1] for a in archs])  # subnets x members
        big_inh = by_member.mean(axis=1)
        big_alone = np.array(
            held_out_standalone(jobs, big, args.out / "cache" / "standalone_held_out.json", data.input_shape)
        )
        big_per_seed = big_alone.reshape(len(archs), n_seeds)
        held_out = {
            **agreement(big_inh, big_per_seed),
            "images": len(big),
            "renders": args.eval_renders,
            "inherited_errors": big_inh.tolist(),
            **({"member_inherited_errors": by_member.T.tolist()} if len(members) > 1 else {}),
            "standalone_errors": big_per_seed.tolist(),
        }
        if args.export_finetune_steps:
            common.log(f"fine-tuning each subnet for {args.export_finetune_steps} steps, as before an export")
            best = [int(m.get("member", 0)) for m in inherited]
            held_out["export_finetune_steps"] = args.export_finetune_steps
            held_out["best_member_errors"] = [float(by_member[i, b]) for i, b in enumerate(best)]
            held_out["exported_errors"] = [
                evaluate_error(evaluator.export_subnet(a, member=b), big)
                for a, b in zip(archs, best, strict=True)
            ]

    rows = []
    subnets = []
    for i, arch in enumerate(archs):
        m = inherited[i]
        subnets.append(
            {
                "arch": arch,
                "params": m["params"],
                "flops": m["flops"],
                "latency_ms": m["latency_ms"],
                "inherited_error": m["error"],
                "standalone_errors": per_seed[i].tolist(),
                "standalone_mean": float(alone[i]),
            }
        )
        rows.append(
            [
                i,
                *arch_cells(arch),
                f"{m['params'] / 1e3:.1f}k",
                f"{m['error']:.2f}",
                " / ".join(f"{e:.2f}" for e in per_seed[i]),
                f"{alone[i]:.2f}",
            ]
        )
    payload = {
        **info,
        "benchmark": NAME,
        "quick": args.quick,
        "config": cfg.model_dump(mode="json"),
        "supernet": sn_record,
        **({"supernet_members": member_records} if len(members) > 1 else {}),
        "standalone_recipe": {
            "optimizer": f"SGD, Nesterov momentum {MOMENTUM}, cosine to 0 per step",
            "epochs": standalone.epochs,
            "batch_size": standalone.batch_size,
            "lr": standalone.lr,
            "weight_decay": standalone.weight_decay,
            "shift": standalone.shift,
            "flip": standalone.flip,
            "loss": "cross-entropy",
            "seeds": n_seeds,
        },
        "arch_seed": args.arch_seed,
        "train_fraction": args.train_fraction,
        "train_images": len(data.train),
        "calib_samples": calib,
        "figures": figures,
        "held_out_renders": held_out,
        "subnets": subnets,
        "seconds": {
            "inherited_scoring": round(inherited_seconds, 1),
            "standalone_training": round(standalone_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    path = common.write_json(args.out / f"{NAME}{variant}.json", payload)

    described = [
        *([f"space {args.space}"] if args.space != "mobilenet" else []),
        *([f"space {o}" for o in args.space_option]),
        *(["quick"] if args.quick else []),
        *([f"data {o}" for o in args.data_option]),
        *(
            [f"harder variant: {args.train_fraction:.0%} of the training images"]
            if args.train_fraction < 1.0
            else []
        ),
        *([f"{calib} calibration images"] if calib != cfg.evaluation.calib_samples else []),
        *([f"supernet trained {args.supernet_epochs} epochs"] if args.supernet_epochs else []),
        *([f"supernet {o}" for o in args.supernet_option]),
        *([f"stand-alone {o}" for o in args.standalone_option]),
        *([f"{args.finetune_steps} fine-tuning steps per subnet"] if args.finetune_steps else []),
        *([f"supernet seed {args.supernet_seed}"] if args.supernet_seed is not None else []),
        *(
            [
                f"mean of {args.supernet_members} supernets (seeds {first_seed}-{first_seed + args.supernet_members - 1})"
            ]
            if args.supernet_members > 1
            else []
        ),
        *([f"held-out renders x{args.eval_renders}"] if args.eval_renders else []),
    ]
    print(f"## Ranking fidelity{' (' + ', '.join(described) + ')' if described else ''}\n")
    print(f"- command: `{info['command']}`\n- date: {info['date']}\n- machine: {common.machine_line(info)}")
    print(
        f"- supernet: demo config on {cfg.data.name}, {cfg.supernet.epochs} epochs on {len(data.train)} training images "
        f"({'cached' if sn_record['cached'] else 'trained now'}, {sn_record['training_seconds']:.0f}s of "
        f"training); BN recalibration on {min(calib, len(data.train))} images; {len(archs)} subnets, "
        f"{n_seeds} stand-alone seed(s) each, {standalone.epochs} epochs\n"
    )
    sets = [("validation split", figures, val_size)]
    if held_out is not None:
        sets.append((f"held-out renders (x{args.eval_renders})", held_out, held_out["images"]))
    print(
        common.table(
            ["figure", *(name for name, _, _ in sets)],
            [
                [label, *(show(f) for _, f, _ in sets)]
                for label, show in [
                    (
                        "Kendall tau (inherited vs stand-alone mean)",
                        lambda f: f"{f['kendall_tau']:.3f} (p = {f['kendall_p']:.2g})",
                    ),
                    (
                        "bootstrap 90 % interval of tau (over subnets)",
                        lambda f: "{:.2f} - {:.2f}".format(*f["kendall_tau_90ci"]),
                    ),
                    ("Spearman rho", lambda f: f"{f['spearman_rho']:.3f} (p = {f['spearman_p']:.2g})"),
                    (
                        "Kendall tau between stand-alone seeds",
                        lambda f: ", ".join(f"{t:.3f}" for t in f["seed_to_seed_kendall_tau"]) or "n/a",
                    ),
                    (
                        "mean std of stand-alone error over seeds",
                        lambda f: f"{f['mean_seed_std_pct']:.2f} pp",
                    ),
                    (
                        "std of stand-alone mean error over subnets",
                        lambda f: f"{f['standalone_spread_std_pct']:.2f} pp",
                    ),
                    (
                        "std of inherited error over subnets",
                        lambda f: f"{f['inherited_spread_std_pct']:.2f} pp",
                    ),
                ]
            ]
            + [["one image", *(f"{100.0 / n:.3f} pp ({n} images)" for _, _, n in sets)]],
        )
    )
    print()
    print(
        common.table(
            [
                "#",
                *(("embed", "heads / mlp ratio per layer") if "embed" in archs[0] else ("width", "depth")),
                "params",
                "inherited err %",
                "stand-alone err % (per seed)",
                "stand-alone mean %",
            ],
            rows,
        )
    )
    if held_out is not None:
        print(f"\non the held-out renders ({held_out['images']} images):\n")
        print(
            common.table(
                ["#", "inherited err %", "stand-alone err % (per seed)", "stand-alone mean %"],
                [
                    [
                        i,
                        f"{held_out['inherited_errors'][i]:.2f}",
                        " / ".join(f"{e:.2f}" for e in held_out["standalone_errors"][i]),
                        f"{np.mean(held_out['standalone_errors'][i]):.2f}",
                    ]
                    for i in range(len(archs))
                ],
            )
        )
    if held_out is not None and "exported_errors" in held_out:
        print(
            f"\nexported models ({args.export_finetune_steps} fine-tuning steps), held-out error: mean "
            f"{np.mean(held_out['exported_errors']):.2f} % against {np.mean(held_out['best_member_errors']):.2f} % "
            f"before fine-tuning and {np.mean(held_out['standalone_errors']):.2f} % trained alone"
        )
    print(
        f"\nrun time: {payload['seconds']['total']:.0f}s (inherited scoring {inherited_seconds:.0f}s, "
        f"stand-alone training {standalone_seconds:.0f}s); figures in {path}"
    )


if __name__ == "__main__":
    main()
