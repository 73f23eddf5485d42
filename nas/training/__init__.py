"""Supernet training (sandwich rule, in-place distillation, checkpoints) and scoring of subnets."""

from nas.training._evaluate import ImageDataset, evaluate_error, evaluate_subnet, finetune, recalibrate_bn
from nas.training._train import TrainResult, augment_batch, train_supernet

__all__ = [
    "augment_batch",
    "evaluate_error",
    "evaluate_subnet",
    "finetune",
    "ImageDataset",
    "recalibrate_bn",
    "train_supernet",
    "TrainResult",
]
