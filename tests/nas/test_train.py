"""Tests of nas.training._train (sandwich-rule training, checkpoints) and nas.training._evaluate (BN recalibration, error)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from nas.spaces._mobilenet import SupernetSpec
from nas.spaces._mobilenet_net import Supernet
from nas.training._evaluate import _trimmed_kernels, evaluate_error, evaluate_subnet, recalibrate_bn
from nas.training._log import BatchProgress, TrainLog
from nas.training._train import TrainResult, _WeightAverage, augment_batch, train_supernet

SPEC = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32, num_classes=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Nets this small gain nothing from a second thread, and spinning threads crawl on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def easy_task(n: int, seed: int = 0, noise: float = 0.6) -> TensorDataset:
    """Four classes, each a fixed random 8x8 pattern plus Gaussian noise: learnable in a few epochs."""
    gen = torch.Generator().manual_seed(100)  # the same class patterns for every split
    patterns = torch.randn(4, 1, 8, 8, generator=gen)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = patterns[labels] + noise * torch.randn(n, 1, 8, 8, generator=gen)
    return TensorDataset(images, labels)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class ItemDataset(Dataset):
    """A plain map-style dataset (not a TensorDataset) with int labels."""

    def __init__(self, data: TensorDataset) -> None:
        self.x, self.y = data.tensors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def interrupted_after(epoch: int, data: Dataset, **kwargs: Any) -> list[tuple[int, int, float, float]]:
    """Trains a fresh supernet with ``kwargs`` and interrupts it (KeyboardInterrupt) after ``epoch``
    epochs; returns the ``on_epoch`` calls seen until then."""
    calls: list[tuple[int, int, float, float]] = []

    def stop(done: int, total: int, loss: float, seconds: float) -> None:
        calls.append((done, total, loss, seconds))
        if done == epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(Supernet(SPEC), data, on_epoch=stop, **kwargs)
    return calls


@pytest.fixture(scope="module")
def trained() -> tuple[Supernet, TrainResult]:
    net = Supernet(SPEC, seed=0)
    result = train_supernet(net, easy_task(256), epochs=3, batch_size=32, lr=0.1, seed=0)
    return net, result


# -- training --------------------------------------------------------------------------------------------


def test_training_reduces_loss_and_beats_chance(trained: tuple[Supernet, TrainResult]) -> None:
    net, result = trained
    assert result.epochs == 3 and len(result.epoch_losses) == 3 and result.resumed_from == 0
    assert result.loss == result.epoch_losses[-1]
    assert result.epoch_losses[-1] < 0.5 * result.epoch_losses[0]
    assert result.seconds == pytest.approx(sum(result.epoch_seconds)) and result.seconds > 0
    assert np.isfinite(result.distill_loss) and result.distill_loss >= 0
    assert not net.training
    calib, val = easy_task(128, seed=1), easy_task(200, seed=2)
    assert evaluate_subnet(net, SPEC.largest_arch(), calib, val) < 20.0  # chance is 75%


def test_sandwich_rule_trains_the_smallest_and_random_subnets(trained: tuple[Supernet, TrainResult]) -> None:
    net, _ = trained
    calib, val = easy_task(128, seed=1), easy_task(200, seed=2)
    assert evaluate_subnet(net, SPEC.smallest_arch(), calib, val) < 35.0  # chance is 75%
    rng = np.random.default_rng(3)
    errors = [evaluate_subnet(net, SPEC.random_arch(rng), calib, val) for _ in range(3)]
    assert max(errors) < 35.0
    untrained = Supernet(SPEC, seed=0)
    assert evaluate_subnet(untrained, SPEC.smallest_arch(), calib, val) > 40.0


def test_same_seed_gives_bit_identical_weights() -> None:
    data = easy_task(40)
    nets = [Supernet(SPEC, seed=0) for _ in range(3)]
    results = [train_supernet(net, data, epochs=1, batch_size=16, seed=s) for net, s in zip(nets, (5, 5, 6))]
    assert same_weights(nets[0], nets[1])
    assert results[0].loss == results[1].loss
    assert not same_weights(nets[0], nets[2])


def test_training_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    train_supernet(Supernet(SPEC), easy_task(20), epochs=1, batch_size=16)
    assert torch.equal(torch.get_rng_state(), state)


def test_generic_datasets_with_int_labels_work() -> None:
    a, b = Supernet(SPEC), Supernet(SPEC)
    data = easy_task(24)
    train_supernet(a, data, epochs=1, batch_size=8, seed=1)
    train_supernet(b, ItemDataset(data), epochs=1, batch_size=8, seed=1)
    assert same_weights(a, b)


def test_interrupted_training_resumes_bit_identically(tmp_path: Path) -> None:
    data = easy_task(40)
    straight = Supernet(SPEC)
    expected = train_supernet(straight, data, epochs=3, batch_size=16, seed=2)

    path = tmp_path / "ckpt" / "supernet.pt"
    calls = interrupted_after(2, data, epochs=3, batch_size=16, seed=2, checkpoint_path=path)
    assert [c[:2] for c in calls] == [(1, 3), (2, 3)]
    assert calls[0][2] == expected.epoch_losses[0] and calls[0][3] > 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["supernet.pt"]  # and no temporary file left
    assert torch.load(path, weights_only=True)["epoch"] == 2

    resumed_net = Supernet(SPEC, seed=9)  # a different start: the checkpoint must overwrite it
    resumed = train_supernet(resumed_net, data, epochs=3, batch_size=16, seed=2, checkpoint_path=path)
    assert resumed.resumed_from == 2
    assert resumed.epoch_losses == expected.epoch_losses
    assert same_weights(resumed_net, straight)

    # A finished training only loads the weights and returns, without running an epoch.
    again_net = Supernet(SPEC, seed=9)
    seen: list[int] = []
    again = train_supernet(
        again_net,
        data,
        epochs=3,
        batch_size=16,
        seed=2,
        checkpoint_path=path,
        on_epoch=lambda e, *_: seen.append(e),
    )
    assert again.resumed_from == 3 and seen == [] and again.epoch_losses == expected.epoch_losses
    assert same_weights(again_net, straight)


def test_checkpoint_from_other_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    data = easy_task(20)
    train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    with pytest.raises(ValueError, match="lr"):
        train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, lr=0.2, checkpoint_path=path)


def test_unreadable_checkpoint_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint"):
        result = train_supernet(Supernet(SPEC), easy_task(20), epochs=1, batch_size=16, checkpoint_path=path)
    assert result.resumed_from == 0
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="epochs"):
        train_supernet(Supernet(SPEC), easy_task(8), epochs=0)
    with pytest.raises(ValueError, match="distill=1.5"):
        train_supernet(Supernet(SPEC), easy_task(8), epochs=1, distill=1.5)


def test_distill_mixes_the_labels_into_the_smaller_archs_loss() -> None:
    data = easy_task(48)
    nets = {d: Supernet(SPEC, seed=0) for d in (1.0, 0.5, 0.0)}
    results = {
        d: train_supernet(n, data, epochs=2, batch_size=16, seed=1, distill=d) for d, n in nets.items()
    }
    assert not same_weights(nets[1.0], nets[0.5])
    assert not same_weights(nets[0.5], nets[0.0])
    # The smaller archs' loss moves the shared weights, and with them the largest's loss.
    assert len({r.epoch_losses[-1] for r in results.values()}) == 3
    # The reported distillation loss is the KL divergence whatever the mix, so runs stay comparable.
    assert all(np.isfinite(r.distill_loss) and r.distill_loss >= 0 for r in results.values())


def test_with_distill_zero_every_arch_learns_from_the_labels() -> None:
    net = Supernet(SPEC, seed=0)
    train_supernet(net, easy_task(256), epochs=3, batch_size=32, lr=0.1, seed=0, distill=0.0)
    calib, val = easy_task(128, seed=1), easy_task(200, seed=2)
    assert evaluate_subnet(net, SPEC.smallest_arch(), calib, val) < 35.0  # chance is 75%


def test_checkpoints_written_before_distill_existed_count_as_pure_distillation(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    data = easy_task(20)
    train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    state = torch.load(path, weights_only=True)
    del state["config"]["distill"]  # as versions without the setting wrote it
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"\(distill: 1.0 there, 0.5 now\)"):
        train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, distill=0.5, checkpoint_path=path)
    loaded = train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    assert loaded.resumed_from == 1


def test_weight_average_is_the_mean_over_its_window() -> None:
    model = nn.Linear(3, 2)
    average = _WeightAverage(model, first_step=2)
    for step in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(step))
            model.bias.fill_(float(step * step))
        average.update(step)
    average.copy_to_model()
    assert torch.allclose(model.weight, torch.full((2, 3), 4.0))  # steps 3, 4, 5
    assert torch.allclose(model.bias, torch.full((2,), (9 + 16 + 25) / 3))
    idle = _WeightAverage(nn.Linear(3, 2), first_step=10)
    idle.update(5)
    assert not idle.active


def test_average_last_ends_with_the_mean_of_the_last_steps() -> None:
    data = easy_task(64)  # 4 steps per epoch at batch 16: 8 steps in all
    plain, last_step, last_half = (Supernet(SPEC, seed=0) for _ in range(3))
    train_supernet(plain, data, epochs=2, batch_size=16, seed=3)
    # Averaging over the last step only is no averaging at all ...
    train_supernet(last_step, data, epochs=2, batch_size=16, seed=3, average_last=1 / 8)
    assert same_weights(plain, last_step)
    # ... while over the last four it is not, and it lies among the weights it averages: closer to the
    # end than the start of training.
    train_supernet(last_half, data, epochs=2, batch_size=16, seed=3, average_last=0.5)
    assert not same_weights(plain, last_half)
    start = Supernet(SPEC, seed=0)
    for name, p in last_half.named_parameters():
        final, initial = dict(plain.named_parameters())[name], dict(start.named_parameters())[name]
        assert (p - final).norm() <= (initial - final).norm() + 1e-6, name


def test_interrupted_averaging_resumes_bit_identically(tmp_path: Path) -> None:
    data = easy_task(64)
    straight = Supernet(SPEC)
    train_supernet(straight, data, epochs=3, batch_size=16, seed=2, average_last=0.6)
    path = tmp_path / "supernet.pt"
    interrupted_after(2, data, epochs=3, batch_size=16, seed=2, average_last=0.6, checkpoint_path=path)
    resumed = Supernet(SPEC, seed=9)
    train_supernet(resumed, data, epochs=3, batch_size=16, seed=2, average_last=0.6, checkpoint_path=path)
    assert same_weights(resumed, straight)
    # The finished checkpoint holds the averaged weights themselves (what a re-export of the run loads).
    stored = Supernet(SPEC, seed=9)
    stored.load_state_dict(torch.load(path, weights_only=True)["model"])
    assert same_weights(stored, straight)
    loaded = Supernet(SPEC, seed=9)
    train_supernet(loaded, data, epochs=3, batch_size=16, seed=2, average_last=0.6, checkpoint_path=path)
    assert same_weights(loaded, straight)
    with pytest.raises(ValueError, match="average_last"):
        train_supernet(Supernet(SPEC), data, epochs=1, average_last=1.5)


# -- augmentation ----------------------------------------------------------------------------------------


def test_shift_translates_each_image_on_its_own_and_fills_the_border() -> None:
    images = torch.rand(200, 2, 5, 6) + 1.0  # every real pixel is >= 1; the fills are below
    fill = (-1.0, -2.0)
    moved = augment_batch(images, torch.Generator().manual_seed(0), shift=2, fill=fill)
    assert moved.shape == images.shape
    offsets = set()
    for original, out in zip(images, moved):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(out, translated(original, dy, dx, fill))
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) == 25  # every offset in [-2, 2] x [-2, 2] occurs among 200 images


def translated(image: torch.Tensor, dy: int, dx: int, fill: tuple[float, ...]) -> torch.Tensor:
    """``image`` (C x H x W) moved down by ``dy`` and right by ``dx`` pixels, the border set to ``fill``."""
    c, h, w = image.shape
    out = torch.tensor(fill).reshape(c, 1, 1).expand(c, h, w).clone()
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_flip_mirrors_about_half_the_images_and_nothing_else() -> None:
    images = torch.rand(400, 1, 4, 4)
    out = augment_batch(images, torch.Generator().manual_seed(1), flip=True)
    same = [torch.equal(o, i) for o, i in zip(out, images)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))  # each image exactly one of the two
    assert 150 < sum(mirrored) < 250


def test_augmentation_is_drawn_from_its_generator_alone() -> None:
    images = torch.rand(16, 3, 6, 6)
    first, again, other = (
        augment_batch(images, torch.Generator().manual_seed(s), shift=1, flip=True, fill=0.0)
        for s in (3, 3, 4)
    )
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(augment_batch(images, torch.Generator().manual_seed(3)), images)  # nothing asked
    with pytest.raises(ValueError, match="fill has 2 values for 3 channels"):
        augment_batch(images, torch.Generator(), shift=1, fill=(0.0, 1.0))


def test_augmented_training_differs_and_resumes_bit_identically(tmp_path: Path) -> None:
    data = easy_task(64)
    plain, augmented, flipped = (Supernet(SPEC, seed=0) for _ in range(3))
    train_supernet(plain, data, epochs=2, batch_size=16, seed=2)
    train_supernet(augmented, data, epochs=2, batch_size=16, seed=2, shift=1, fill=-3.0)
    train_supernet(flipped, data, epochs=2, batch_size=16, seed=2, flip=True)
    assert not same_weights(plain, augmented)
    assert not same_weights(plain, flipped)
    path = tmp_path / "supernet.pt"
    settings: dict[str, Any] = {"epochs": 2, "batch_size": 16, "seed": 2, "shift": 1, "fill": -3.0}
    interrupted_after(1, data, checkpoint_path=path, **settings)
    resumed = Supernet(SPEC, seed=7)
    train_supernet(resumed, data, checkpoint_path=path, **settings)
    assert same_weights(resumed, augmented)
    with pytest.raises(ValueError, match=r"fill: \[-3.0\] there, \[0.0\] now"):
        train_supernet(Supernet(SPEC), data, checkpoint_path=path, **(settings | {"fill": 0.0}))


def test_checkpoints_written_before_augmentation_existed_count_as_unaugmented(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    data = easy_task(20)
    train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    state = torch.load(path, weights_only=True)
    for key in ("shift", "flip", "fill"):
        del state["config"][key]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"shift: 0 there, 2 now\)"):
        train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, shift=2, fill=0.0, checkpoint_path=path)
    loaded = train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    assert loaded.resumed_from == 1


def test_the_checkpoint_records_how_the_weights_began(tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    data = easy_task(20)
    zeroed = Supernet(SPEC, zero_init_residual=True)
    train_supernet(zeroed, data, epochs=1, batch_size=16, checkpoint_path=path)
    assert torch.load(path, weights_only=True)["config"]["zero_init_residual"] is True
    with pytest.raises(ValueError, match="zero_init_residual: True there, False now"):
        train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path)
    # Checkpoints written before the setting existed began with the plain initialisation.
    state = torch.load(path, weights_only=True)
    del state["config"]["zero_init_residual"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="zero_init_residual: False there, True now"):
        train_supernet(
            Supernet(SPEC, zero_init_residual=True), data, epochs=1, batch_size=16, checkpoint_path=path
        )
    assert (
        train_supernet(Supernet(SPEC), data, epochs=1, batch_size=16, checkpoint_path=path).resumed_from == 1
    )


def test_a_shift_as_large_as_the_images_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shift must be smaller than the images \(\(8, 8\) pixels\), got 8"):
        train_supernet(Supernet(SPEC), easy_task(20), epochs=1, shift=8)
    with pytest.raises(ValueError, match="shift >= 0"):
        train_supernet(Supernet(SPEC), easy_task(20), epochs=1, shift=-1)
    with pytest.raises(ValueError, match="fill has 3 values for 1 channels"):
        train_supernet(Supernet(SPEC), easy_task(20), epochs=1, shift=1, fill=(0.0, 0.0, 0.0))


# -- evaluation ------------------------------------------------------------------------------------------


def test_recalibrate_bn_estimates_statistics_of_the_data() -> None:
    net = Supernet(SPEC).subnet(SPEC.largest_arch())
    data = easy_task(64)
    bn = net.stem[1]
    bn.momentum = 0.3
    recalibrate_bn(net, data, num_samples=64, batch_size=32)
    assert not net.training and bn.momentum == 0.3
    with torch.no_grad():
        conv_out = net.stem[0](data.tensors[0])
    assert torch.allclose(bn.running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-4)
    # Cumulative average of two equal batches' unbiased variances.
    halves = (conv_out[:32], conv_out[32:])
    expected_var = torch.stack([h.transpose(0, 1).reshape(h.shape[1], -1).var(dim=1) for h in halves]).mean(0)
    assert torch.allclose(bn.running_var, expected_var, rtol=1e-3)
    assert int(bn.num_batches_tracked) == 2


def test_recalibration_uses_an_evenly_spread_subset() -> None:
    net = Supernet(SPEC).subnet(SPEC.smallest_arch())
    data = easy_task(100)
    recalibrate_bn(net, data, num_samples=10, batch_size=10)
    with torch.no_grad():
        conv_out = net.stem[0](data.tensors[0][::10])
    assert torch.allclose(net.stem[1].running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-5)


class Constant(nn.Module):
    """Always predicts class ``label``; counts the images it saw."""

    def __init__(self, label: int, classes: int = 4) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.logits = torch.nn.functional.one_hot(torch.tensor(label), classes).float()
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.scale * self.logits.expand(len(x), -1)


def test_evaluate_error_counts_mistakes_and_honours_fraction() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
    data = TensorDataset(torch.zeros(10, 1, 8, 8), labels)
    model = Constant(0)
    assert evaluate_error(model, data, batch_size=3) == pytest.approx(70.0)
    assert model.seen == 10
    model.seen = 0
    # Half of the data, evenly spread: indices 0, 2, 4, 6, 8 -> labels 0, 0, 1, 2, 3.
    assert evaluate_error(model, data, fraction=0.5) == pytest.approx(60.0)
    assert model.seen == 5
    assert evaluate_error(model, ItemDataset(data), fraction=0.5) == pytest.approx(60.0)
    model.train()
    evaluate_error(model, data)
    assert model.training
    with pytest.raises(ValueError, match="fraction"):
        evaluate_error(model, data, fraction=0.0)


def test_evaluate_subnet_leaves_the_supernet_unchanged(trained: tuple[Supernet, TrainResult]) -> None:
    net, _ = trained
    before = copy.deepcopy(net.state_dict())
    calib, val = easy_task(64, seed=1), easy_task(100, seed=2)
    low = evaluate_subnet(net, SPEC.smallest_arch(), calib, val, fraction=0.3)
    assert 0.0 <= low <= 100.0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_kernel_trimming_is_exact_and_temporary() -> None:
    spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(2, 2), head_channels=16, num_classes=4)
    net = Supernet(spec).subnet(spec.largest_arch()).eval()  # 7x7 kernels on 4x4 and 2x2 maps
    x = torch.randn(5, 1, 8, 8)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    weights = [c.weight for c in convs]
    with torch.no_grad():
        expected = net(x)
        with _trimmed_kernels(net, x):
            assert {c.kernel_size for c in convs if c.groups > 1} == {(7, 7), (3, 3)}
            trimmed = net(x)
    assert torch.allclose(trimmed, expected, atol=1e-5)
    assert all(c.weight is w for c, w in zip(convs, weights))
    assert {c.kernel_size for c in convs if c.groups > 1} == {(7, 7)}


# -- per-batch progress and the training log ----------------------------------------------------------------
def test_on_batch_reports_every_step_with_images_and_a_shrinking_eta() -> None:
    seen: list[BatchProgress] = []
    train_supernet(Supernet(SPEC), easy_task(40), epochs=2, batch_size=16, on_batch=seen.append)
    assert [(p.epoch, p.step, p.steps) for p in seen] == [(e, s, 3) for e in (1, 2) for s in (1, 2, 3)]
    assert [p.images for p in seen[:3]] == [16, 32, 40]  # the last batch holds the rest
    assert all(p.epochs == 2 and p.seconds > 0 for p in seen)
    assert seen[2].epoch_eta_s == 0 and seen[-1].eta_s == 0


def test_batch_progress_figures() -> None:
    p = BatchProgress(epoch=2, epochs=3, step=10, steps=40, images=1280, seconds=20.0)
    assert p.images_per_s == 64.0
    assert p.epoch_eta_s == 60.0  # 30 steps left at 2 s each
    assert p.eta_s == 60.0 + 80.0  # and one more epoch of 40 steps
    assert "64 img/s" in p.line() and "epoch ETA 1 min 0 s" in p.line() and "ETA 2 min 20 s" in p.line()


def test_train_log_writes_a_batch_line_at_most_every_few_seconds(tmp_path: Path) -> None:
    now = [100.0]
    log = TrainLog(tmp_path / "train.log", every_s=30, clock=lambda: now[0], stamp=lambda: "T")
    written = []
    for step in range(1, 11):
        now[0] += 7.0  # a step every 7 s, at 107 s to 170 s
        written.append(log.batch(BatchProgress(1, 1, step, 10, 16 * step, 7.0 * step)))
    log.epoch(1, 1, 0.5, 70.0, images=160)
    assert [i + 1 for i, w in enumerate(written) if w] == [1, 6]  # at 107 s and 142 s (>= 30 s apart)
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert len(lines) == written.count(True) + 1
    assert (
        lines[0].startswith("T  epoch 1/1  step 1/10")
        and lines[-1] == "T  epoch 1/1 done  loss 0.5000  70.0 s  2 img/s"
    )


def test_the_terminal_reporter_rate_limits_batch_lines_off_a_terminal() -> None:
    import io

    from rich.console import Console

    from nas.run._progress import ProgressReporter

    out = io.StringIO()
    now = [0.0]
    reporter = ProgressReporter(
        Console(file=out, force_terminal=False), batch_every_s=10, clock=lambda: now[0]
    )
    with reporter:
        reporter.start_training(1)
        for step in range(1, 7):
            now[0] += 4.0  # lines at 4, 16 (12 s later), not at 8, 12, 20, 24
            reporter.batch(BatchProgress(1, 1, step, 6, 8 * step, 4.0 * step))
    lines = [line for line in out.getvalue().splitlines() if "img/s" in line]
    assert [line.split()[3] for line in lines] == ["1/6", "4/6"]
