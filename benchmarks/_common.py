"""Helpers shared by the benchmark scripts: machine record, Markdown tables, JSON output, a cached supernet.

Not part of the installed package: the scripts put this folder on ``sys.path`` by being run from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import TensorDataset

from nas import DataSplits, SearchConfig, load_config, load_dataset, train_supernet
from nas.run._config import loader_options as _loader_options
from nas.spaces import ElasticSupernet, SearchSpace, space_for_input, space_ref
from nas.training._train import _LATER_SETTINGS as LATER_TRAINING_SETTINGS

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the Markdown report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parser(description: str, *, threads: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small, fast version to check the script works")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for the JSON figures and caches (default: %(default)s)",
    )
    if threads:
        p.add_argument(
            "--threads",
            type=int,
            default=0,
            help="torch threads in this process (default 0: torch's default)",
        )
    return p


def key_values(
    p: argparse.ArgumentParser, flag: str, items: Sequence[str], allowed: Sequence[str]
) -> dict[str, Any]:
    """``KEY=VALUE`` strings of a repeatable ``flag`` as a dict, each value read as YAML.

    A string without ``=`` or with a key outside ``allowed`` ends the script with a usage error naming the
    valid keys.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            p.error(f"{flag} wants KEY=VALUE with KEY one of {', '.join(allowed)}; got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def apply_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def machine() -> dict[str, Any]:
    """CPU model, cores, load and library versions of the machine the benchmark runs on."""
    import numpy
    import onnxruntime

    from profilers import cpu_model_name

    model = cpu_model_name() or "unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1_5_15min": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
    }


def header() -> dict[str, Any]:
    """What every result file records: the exact command, the date (UTC) and the machine."""
    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    return {
        "command": shlex.join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
    }


def machine_line(info: dict[str, Any]) -> str:
    m = info["machine"]
    return (
        f"{m['cpu_model']}, {m['usable_cores']} cores, torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
        f"load average at start {m['load_average_1_5_15min']}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are shown as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes sharing a cache never share a tmp
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path


# -- the demo's supernet, trained once and cached ------------------------------------------------------


def demo_config(overrides: dict[str, Any] | None = None) -> SearchConfig:
    """The config ``hwnas search`` runs with no arguments, plus ``overrides`` (dotted keys)."""
    return load_config(None, {"name": "benchmark", **(overrides or {})})


def load_data(cfg: SearchConfig, train_fraction: float = 1.0) -> DataSplits:
    """The splits an experiment with ``cfg`` uses (built-in datasets without a root only).

    With ``train_fraction`` < 1 the training split is cut to its first ``train_fraction`` share; the
    built-in splits are in a stratified random order, so every prefix keeps the class balance.
    """
    if cfg.data.root is not None:
        raise SystemExit("the benchmarks use the built-in digits demo; a dataset root is not supported")
    data = load_dataset(cfg.data.name, seed=cfg.seed, **_loader_options(cfg))
    if train_fraction < 1.0:
        x, y = data.train.tensors  # type: ignore[attr-defined]
        keep = max(1, round(train_fraction * len(y)))
        data = dataclasses.replace(data, train=TensorDataset(x[:keep], y[:keep]))
    return data


def supernet_spec(cfg: SearchConfig, data: DataSplits) -> SearchSpace:
    """The config's space sized for ``data`` (the MobileNet of the demo unless ``space.name`` says otherwise)."""
    return space_for_input(
        cfg.space.name, data.in_channels, data.image_size, data.num_classes, cfg.space_options()
    )


def training_settings(cfg: SearchConfig, spec: SearchSpace, train_fraction: float = 1.0) -> dict[str, Any]:
    """Everything the trained weights depend on: the key of the cache."""
    s = cfg.supernet
    extra: dict[str, Any] = {"train_fraction": train_fraction} if train_fraction < 1.0 else {}
    if cfg.data.options:  # only when set, so older caches stay valid
        extra["data_options"] = dict(cfg.data.options)
    # Settings added later join the key only when they differ from what older trainings used, so older
    # caches stay valid.
    kwargs = s.train_kwargs()
    kwargs["zero_init_residual"] = s.zero_init_residual
    extra |= {k: kwargs[k] for k, old in LATER_TRAINING_SETTINGS.items() if kwargs.get(k, old) != old}
    if space_ref(spec) != "mobilenet":  # only for other spaces, so older caches stay valid
        extra["space"] = space_ref(spec)
    return {
        **extra,
        "dataset": cfg.data.name,
        "seed": cfg.seed,
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        "num_random": s.num_random,
        "spec": spec.to_dict(),
        "torch": torch.__version__.split("+")[0],
    }


def trained_supernet(
    cfg: SearchConfig, out: Path, *, train_fraction: float = 1.0, supernet_seed: int | None = None
) -> tuple[DataSplits, ElasticSupernet, dict[str, Any]]:
    """Data and the supernet trained exactly as ``Experiment.run`` trains it, cached under ``out/cache``.

    ``train_fraction`` < 1 trains on a stratified share of the training split only (see :func:`load_data`).
    ``supernet_seed`` seeds the supernet's initialisation and training apart from the data (default: the
    config's seed, which also draws the split), to see how much one training draw matters.
    The checkpoint is named by a hash of the training settings; an existing complete checkpoint is only
    loaded, an interrupted one is resumed (``train_supernet`` does both).

    Returns:
        The data, the trained supernet (eval mode) and a record: settings, checkpoint path, whether it was
        cached, and training seconds (those of the original training when cached).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_data(cfg, train_fraction)
    spec = supernet_spec(cfg, data)
    settings = training_settings(cfg, spec, train_fraction)
    seed = cfg.seed if supernet_seed is None else supernet_seed
    if supernet_seed is not None:
        settings["supernet_seed"] = supernet_seed
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    tag = f"-train{train_fraction:g}" if train_fraction < 1.0 else ""
    path = out / "cache" / f"supernet-{cfg.data.name}{tag}-e{cfg.supernet.epochs}-{digest}.pt"
    log(
        f"supernet: {'loading or resuming' if path.is_file() else 'training'} {path} ({cfg.supernet.epochs} epochs)"
    )
    supernet = spec.build_supernet(seed=seed, zero_init_residual=cfg.supernet.zero_init_residual)
    t0 = time.perf_counter()
    result = train_supernet(
        supernet,
        data.train,
        **cfg.supernet.train_kwargs(),
        fill=data.black,
        seed=seed,
        checkpoint_path=path,
        on_epoch=lambda e, n, loss, sec: log(f"  epoch {e}/{n}  loss {loss:.4f}  {sec:.1f}s"),
    )
    supernet.eval()
    record = {
        "settings": settings,
        "checkpoint": str(path),
        "cached": result.resumed_from == cfg.supernet.epochs,
        "resumed_from_epoch": result.resumed_from,
        "seconds_this_run": round(time.perf_counter() - t0, 2),
        "training_seconds": round(result.seconds, 2),
        "final_loss": result.loss,
    }
    return data, supernet, record
