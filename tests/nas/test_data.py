"""Tests of nas.data: the digits and CIFAR-10 loaders, custom datasets and the name dispatch (image folders:
test_folder_data.py)."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from nas.data import (
    AVAILABLE_DATASETS,
    DatasetError,
    DataSplits,
    from_datasets,
    load_cifar10,
    load_dataset,
    load_digits,
    load_digits_hard,
)

# ------------------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def _labels(dataset: Dataset) -> np.ndarray:
    return np.array([dataset[i][1] for i in range(len(dataset))])


def test_digits_shape_and_sizes(digits: DataSplits) -> None:
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8)
    assert (digits.in_channels, digits.image_size, digits.num_classes) == (1, 8, 10)
    assert digits.class_names == tuple(str(i) for i in range(10))
    assert digits.pixel_scale == 16.0  # digits' pixels are 0..16
    info = digits.describe()
    assert info["class_names"] == list(digits.class_names) and info["pixel_scale"] == 16.0
    assert info["sizes"] == {"train": len(digits.train), "val": len(digits.val), "test": len(digits.test)}
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == 1797
    assert sizes == (1079, 359, 359)  # about 60/20/20
    image, label = digits.train[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (1, 8, 8)
    assert type(label) is int and 0 <= label < 10


def test_digits_splits_are_disjoint_and_cover_everything(digits: DataSplits) -> None:
    train, val, test = (set(s.indices.tolist()) for s in (digits.train, digits.val, digits.test))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(1797))


def test_digits_split_is_stratified(digits: DataSplits) -> None:
    from sklearn.datasets import load_digits as sklearn_load_digits

    overall = Counter(sklearn_load_digits().target.tolist())
    for split, fraction in ((digits.train, 0.6), (digits.val, 0.2), (digits.test, 0.2)):
        counts = Counter(_labels(split).tolist())
        for cls, total in overall.items():
            assert abs(counts[cls] - fraction * total) <= 2, (cls, counts[cls], fraction * total)


def test_digits_labels_match_the_source(digits: DataSplits) -> None:
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    for split in (digits.train, digits.val, digits.test):
        np.testing.assert_array_equal(_labels(split), bunch.target[split.indices])
    # Un-normalising gives back the original pixels.
    image, _ = digits.val[3]
    pixels = (image.numpy() * digits.std[0] + digits.mean[0]) * 16
    np.testing.assert_allclose(pixels.reshape(64), bunch.data[digits.val.indices[3]], atol=1e-4)


def test_digits_is_normalised_with_training_statistics(digits: DataSplits) -> None:
    train = digits.train.tensors[0]
    assert abs(train.mean().item()) < 1e-4
    assert abs(train.std(unbiased=False).item() - 1.0) < 1e-4
    # The statistics come from the training split alone, so the other splits are only roughly centred.
    assert abs(digits.val.tensors[0].mean().item()) < 0.1
    assert len(digits.mean) == len(digits.std) == 1 and 0 < digits.mean[0] < 1
    # A black pixel (the digits' background, 0 before normalisation) becomes ``black``.
    assert train.min().item() == pytest.approx(digits.black[0], abs=1e-6) and digits.black[0] < 0


def test_digits_split_is_deterministic_per_seed(digits: DataSplits) -> None:
    again = load_digits(seed=0)
    for a, b in ((digits.train, again.train), (digits.val, again.val), (digits.test, again.test)):
        np.testing.assert_array_equal(a.indices, b.indices)
        assert torch.equal(a.tensors[0], b.tensors[0])
    other = load_digits(seed=1)
    assert set(other.val.indices.tolist()) != set(digits.val.indices.tolist())
    assert len(other.val) == len(digits.val)


def test_digits_fractions() -> None:
    splits = load_digits(val_fraction=0.1, test_fraction=0.3)
    assert (len(splits.val), len(splits.test)) == (180, 539)
    for bad in (0.0, 1.0, -0.1, 1.5, True):
        with pytest.raises(DatasetError, match="val_fraction"):
            load_digits(val_fraction=bad)
    with pytest.raises(DatasetError, match="must be below 1"):
        load_digits(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DatasetError, match="empty"):
        load_digits(test_fraction=1e-4)


# ------------------------------------------------------------------------------------------- digits-hard


@pytest.fixture(scope="module")
def hard() -> DataSplits:
    return load_digits_hard(seed=0)


def test_digits_hard_shape_sizes_and_sources(hard: DataSplits, digits: DataSplits) -> None:
    assert hard.name == "digits-hard" and hard.input_shape == (1, 10, 10) and hard.num_classes == 10
    for split in ("train", "val", "test"):
        made, source = getattr(hard, split), getattr(digits, split)
        assert len(made) == 2 * len(source)
        # every source digit of a split appears there twice, and nowhere else: the split is that of digits
        assert Counter(made.indices.tolist()) == Counter(2 * source.indices.tolist())
    from sklearn.datasets import load_digits as sk_digits

    target = sk_digits().target
    assert np.array_equal(_labels(hard.val), target[hard.val.indices])


def test_digits_hard_images_hold_their_digit_shifted(hard: DataSplits) -> None:
    """Without noise each image holds its source digit at some offset (clutter only raises pixels)."""
    from sklearn.datasets import load_digits as sk_digits

    clean = load_digits_hard(seed=0, noise=0.0)
    pixels = sk_digits().data.reshape(-1, 8, 8) / 16.0
    x, _ = clean.test.tensors
    images = x[:, 0].numpy() * clean.std[0] + clean.mean[0]  # back to [0, 1]
    offsets = Counter()
    for image, src in zip(images[:200], clean.test.indices[:200]):
        fits = [
            (dy, dx)
            for dy in range(3)
            for dx in range(3)
            if np.all(image[dy : dy + 8, dx : dx + 8] >= pixels[src] - 1e-5)
        ]
        assert fits, "the source digit is not in its image"
        offsets.update(fits[:1])
    assert len(offsets) >= 5  # digits really move around the canvas
    # noise makes the same placement differ, and the default images are not the clean ones
    assert not torch.allclose(hard.test.tensors[0], x)


def test_digits_hard_is_deterministic_and_normalised(hard: DataSplits) -> None:
    again = load_digits_hard(seed=0)
    assert torch.equal(again.train.tensors[0], hard.train.tensors[0])
    other = load_digits_hard(seed=1)
    assert not np.array_equal(other.train.indices, hard.train.indices)
    x, _ = hard.train.tensors
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3
    assert abs(float(hard.val.tensors[0].mean())) > 1e-4  # validation statistics were not used


def test_digits_hard_options() -> None:
    assert len(load_digits_hard(copies=1).train) == 1079
    assert len(load_dataset("digits-hard", copies=3).val) == 3 * 359
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DatasetError, match="copies must be an integer >= 1"):
            load_digits_hard(copies=bad)
    for bad in (-0.1, "0.2", float("nan")):
        with pytest.raises(DatasetError, match="noise must be a number"):
            load_digits_hard(noise=bad)
    with pytest.raises(DatasetError, match="must be below 1"):
        load_digits_hard(val_fraction=0.5, test_fraction=0.5)


# ---------------------------------------------------------------------------------------------- CIFAR-10

_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _random_batch(rng: np.random.Generator, n: int) -> dict[bytes, object]:
    return {
        b"batch_label": b"fake",
        b"labels": [int(i % 10) for i in range(n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _write_fake_cifar(folder: Path, *, per_batch: int = 20, protocol: int = 2) -> Path:
    """A tiny CIFAR-10 in the standard format; test_batch[0] is pure red (R=255, G=B=0)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _random_batch(rng, per_batch), protocol)
    test = _random_batch(rng, per_batch)
    red = np.zeros(3072, dtype=np.uint8)
    red[:1024] = 255  # rows are channel-major: the first 1024 values are the red plane
    test[b"data"][0] = red
    test[b"labels"][0] = 7
    _dump(folder / "test_batch", test, protocol)
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in _NAMES], b"num_vis": 3072}, protocol)
    return folder


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return _write_fake_cifar(tmp_path / "cifar-10-batches-py")


def _unnormalise(splits: DataSplits, image: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(splits.mean).view(3, 1, 1)
    std = torch.tensor(splits.std).view(3, 1, 1)
    return ((image * std + mean) * 255).numpy()


def test_cifar_shapes_labels_and_names(cifar_dir: Path) -> None:
    splits = load_cifar10(cifar_dir, seed=0)
    assert splits.name == "cifar10"
    assert splits.input_shape == (3, 32, 32) and splits.num_classes == 10
    assert splits.class_names == tuple(_NAMES)
    assert splits.pixel_scale == 255.0
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    image, label = splits.train[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 32, 32)
    assert type(label) is int
    # Validation holds one image per class: stratified.
    assert sorted(_labels(splits.val).tolist()) == list(range(10))
    train, val = set(splits.train.indices.tolist()), set(splits.val.indices.tolist())
    assert not train & val and train | val == set(range(100))


def test_cifar_pixels_round_trip(cifar_dir: Path) -> None:
    splits = load_cifar10(cifar_dir)
    image, label = splits.test[0]
    assert label == 7
    pixels = _unnormalise(splits, image)
    np.testing.assert_allclose(pixels[0], 255.0, atol=1e-3)
    np.testing.assert_allclose(pixels[1:], 0.0, atol=1e-3)
    # A random training image round-trips exactly, plane by plane and row by row.
    with (cifar_dir / "data_batch_3").open("rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    position = int(np.flatnonzero(splits.train.indices == 2 * 20 + 5)[0])  # batch 3, image 5
    expected = raw[5].reshape(3, 32, 32).astype(np.float64)
    np.testing.assert_allclose(_unnormalise(splits, splits.train[position][0]), expected, atol=1e-3)


def test_cifar_is_normalised_per_channel_with_training_statistics(cifar_dir: Path) -> None:
    splits = load_cifar10(cifar_dir)
    train = torch.stack([splits.train[i][0] for i in range(len(splits.train))])
    per_channel = train.transpose(0, 1).reshape(3, -1)
    np.testing.assert_allclose(per_channel.mean(dim=1).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(dim=1, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert all(0.4 < m < 0.6 for m in splits.mean)  # uniform random pixels


def test_cifar_parent_folder_and_deterministic_split(cifar_dir: Path) -> None:
    from_child = load_cifar10(cifar_dir, seed=3)
    from_parent = load_cifar10(cifar_dir.parent, seed=3)
    np.testing.assert_array_equal(from_child.val.indices, from_parent.val.indices)
    assert from_child.mean == from_parent.mean
    other = load_cifar10(cifar_dir, seed=4)
    assert set(other.val.indices.tolist()) != set(from_child.val.indices.tolist())


def test_cifar_limit_caps_every_split(cifar_dir: Path) -> None:
    full = load_cifar10(cifar_dir, seed=0, val_fraction=0.2)
    splits = load_cifar10(cifar_dir, seed=0, val_fraction=0.2, limit=10)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 10, 10)
    assert sorted(_labels(splits.test).tolist()) == list(range(10))
    assert set(splits.val.indices.tolist()) <= set(full.val.indices.tolist())
    with pytest.raises(DatasetError, match="limit"):
        load_cifar10(cifar_dir, limit=0)


def test_cifar_reads_modern_pickles(tmp_path: Path) -> None:
    folder = _write_fake_cifar(tmp_path / "c", protocol=pickle.HIGHEST_PROTOCOL)
    assert len(load_cifar10(folder).train) == 90


def test_cifar_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="folder not found") as info:
        load_cifar10(tmp_path / "nowhere")
    assert "data_batch_1" in str(info.value) and "downloads nothing" in str(info.value)
    with pytest.raises(DatasetError, match="missing.*data_batch_1"):
        load_cifar10(tmp_path)  # exists, but holds nothing


def test_cifar_missing_batch(cifar_dir: Path) -> None:
    (cifar_dir / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="missing") as info:
        load_cifar10(cifar_dir.parent)
    assert "data_batch_4" in str(info.value) and "data_batch_3" not in str(info.value).split(";")[0]


def test_cifar_corrupt_file(cifar_dir: Path) -> None:
    (cifar_dir / "data_batch_2").write_bytes(b"\x80\x02this is not a pickle")
    with pytest.raises(DatasetError, match="data_batch_2.*corrupt"):
        load_cifar10(cifar_dir)
    content = (cifar_dir / "test_batch").read_bytes()
    (cifar_dir / "data_batch_2").write_bytes(content[: len(content) // 2])  # truncated
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_cifar10(cifar_dir)


def test_cifar_refuses_pickles_that_run_code(cifar_dir: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    _dump(cifar_dir / "batches.meta", {b"label_names": Evil()})
    with pytest.raises(DatasetError, match="refusing.*batches.meta.*print"):
        load_cifar10(cifar_dir)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, "N x 3072"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "uint8"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "one int per image"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}, "0..9"),
        ({b"labels": [0]}, "data"),
        ([1, 2, 3], "not a dict"),
    ],
)
def test_cifar_wrong_contents(cifar_dir: Path, batch: object, message: str) -> None:
    _dump(cifar_dir / "data_batch_5", batch)
    with pytest.raises(DatasetError, match=message) as info:
        load_cifar10(cifar_dir)
    assert "data_batch_5" in str(info.value)


# ------------------------------------------------------------------------------------- custom datasets


class _Squares(Dataset):
    """A custom dataset of constant 2 x 6 x 6 images; its label is the index modulo 3."""

    def __init__(self, n: int, *, label_type: type = int) -> None:
        self.n = n
        self.label_type = label_type

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, object]:
        return torch.full((2, 6, 6), float(index)), self.label_type(index % 3)


def test_from_datasets_custom() -> None:
    splits = from_datasets(_Squares(12), _Squares(6), name="squares")
    assert splits.name == "squares" and splits.input_shape == (2, 6, 6)
    assert splits.num_classes == 3 and splits.test is None
    assert splits.mean == (0.0, 0.0) and splits.std == (1.0, 1.0)
    assert splits.class_names == ("0", "1", "2")
    assert splits.pixel_scale == 1.0  # images taken as given
    assert "squares" in repr(splits) and "train=12" in repr(splits)
    assert from_datasets(_Squares(12), _Squares(6), _Squares(6), num_classes=5).num_classes == 5


def test_from_datasets_tensor_dataset_with_tensor_labels() -> None:
    images = torch.zeros(10, 1, 4, 4)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    splits = from_datasets(TensorDataset(images, labels), TensorDataset(images, labels))
    assert splits.num_classes == 5 and splits.input_shape == (1, 4, 4)


class _Bad(Dataset):
    def __init__(self, item: object) -> None:
        self.item = item

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> object:
        return self.item


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (torch.zeros(1, 4, 4), "not an \\(image, label\\) pair"),
        ((np.zeros((1, 4, 4), np.float32), 0), "not a torch.Tensor"),
        ((torch.zeros(1, 4, 4, dtype=torch.float64), 0), "float32"),
        ((torch.zeros(4, 4), 0), "shape is \\(4, 4\\)"),
        ((torch.zeros(1, 4, 5), 0), "H == W"),
        ((torch.zeros(1, 4, 4), 0.5), "not a non-negative int"),
        ((torch.zeros(1, 4, 4), "cat"), "not a non-negative int"),
        ((torch.zeros(1, 4, 4), -1), "not a non-negative int"),
    ],
)
def test_from_datasets_rejects_bad_items(item: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        from_datasets(_Bad(item), _Squares(3))


def test_from_datasets_rejects_inconsistent_splits() -> None:
    with pytest.raises(DatasetError, match="val\\[0\\] has image shape"):
        from_datasets(_Squares(6), _Bad((torch.zeros(2, 5, 5), 0)))
    with pytest.raises(DatasetError, match="empty"):
        from_datasets(_Squares(6), _Squares(0))
    with pytest.raises(DatasetError, match="map-style"):
        from_datasets(_Squares(6), [(torch.zeros(2, 6, 6), 0)])  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="label 5 .* out of range for num_classes=2"):
        from_datasets(_Squares(6), _Bad((torch.zeros(2, 6, 6), 5)), num_classes=2)
    with pytest.raises(DatasetError, match="label 0.0 is not a non-negative int"):
        from_datasets(_Squares(6, label_type=float), _Squares(6))


# ------------------------------------------------------------------------------------------- dispatch


def test_load_dataset_dispatch(cifar_dir: Path) -> None:
    assert AVAILABLE_DATASETS == ("digits", "digits-hard", "cifar10", "folder")
    digits = load_dataset("digits", seed=2, val_fraction=0.25)
    assert len(digits.val) == round(0.25 * 1797)
    cifar = load_dataset("CIFAR10", root=cifar_dir.parent, limit=5)
    assert cifar.input_shape == (3, 32, 32) and len(cifar.train) == 5


def test_load_dataset_errors() -> None:
    with pytest.raises(
        DatasetError, match="unknown dataset 'mnist'; valid names: digits, digits-hard, cifar10, folder"
    ):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="needs root"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match="takes no root"):
        load_dataset("digits", root="/tmp")
    with pytest.raises(DatasetError, match="unknown option.*limit.*valid: val_fraction, test_fraction"):
        load_dataset("digits", limit=10)
    with pytest.raises(DatasetError, match="takes no root"):
        load_dataset("digits-hard", root="/tmp")


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def test_digits_hard_is_known_to_the_config_and_shapes() -> None:
    from nas import load_config
    from nas.data import dataset_shape

    assert dataset_shape("digits-hard") == (1, 10, 10)
    assert load_config(None, {"data.name": "digits-hard"}).data.name == "digits-hard"


def test_config_dataset_options_are_exactly_the_loaders() -> None:
    import inspect

    from nas.data._registry import _LOADERS, PYTHON_DATASET
    from nas.run._config import DATASET_NAMES, DATASET_OPTIONS

    # every loader has its name and options; "python" (data passed from Python) has no loader and no options
    assert set(DATASET_OPTIONS) == set(DATASET_NAMES) == set(_LOADERS) | {PYTHON_DATASET}
    assert DATASET_OPTIONS[PYTHON_DATASET] == ()
    for name, options in DATASET_OPTIONS.items():
        if name == PYTHON_DATASET:
            continue
        # limit, image_size and workers have keys of their own in the data section
        params = set(inspect.signature(_LOADERS[name]).parameters) - {
            "root",
            "seed",
            "limit",
            "image_size",
            "workers",
        }
        assert set(options) == params, name


def test_data_options_reach_the_loader_a_search_uses() -> None:
    from nas import load_config
    from nas.run._config import loader_options as _loader_options

    cfg = load_config(None, {"data.name": "digits-hard", "data.options": {"copies": 1, "noise": 0.0}})
    data = load_dataset(cfg.data.name, seed=cfg.seed, **_loader_options(cfg))
    assert len(data.train) == len(load_digits(seed=cfg.seed).train)  # one render per training digit
    assert data.train.tensors[0].shape[0] == len(data.train)
    plain = load_config(None, {"data.name": "digits-hard"})
    assert _loader_options(plain) == {}
    assert len(load_dataset(plain.data.name, seed=plain.seed, **_loader_options(plain)).train) == 2 * len(
        data.train
    )
    cifar = load_config(None, {"data.name": "cifar10", "data.root": "/tmp", "data.limit": 7})
    assert _loader_options(cifar) == {"limit": 7}
