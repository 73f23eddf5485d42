"""Supernet training (sandwich rule, in-place distillation, checkpoints, devices, precision, data-parallel)
and scoring of subnets."""

from nas.training._device import DeviceError, resolve_device, resolve_precision
from nas.training._distributed_train import DistributedContext, init_distributed, shutdown_distributed
from nas.training._evaluate import ImageDataset, evaluate_error, evaluate_subnet, finetune, recalibrate_bn
from nas.training._log import BatchProgress, TrainLog
from nas.training._train import TrainResult, augment_batch, sandwich_step, train_supernet

__all__ = [
    "BatchProgress",
    "DeviceError",
    "DistributedContext",
    "ImageDataset",
    "TrainLog",
    "TrainResult",
    "augment_batch",
    "evaluate_error",
    "evaluate_subnet",
    "finetune",
    "init_distributed",
    "recalibrate_bn",
    "resolve_device",
    "resolve_precision",
    "sandwich_step",
    "shutdown_distributed",
    "train_supernet",
]
