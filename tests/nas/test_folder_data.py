"""Tests of nas.data's image folders: layouts, preprocessing, augmentation, workers, bad folders, the command line."""

from __future__ import annotations

import json
import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nas.data import DatasetError, DataSplits, dataset_shape, load_dataset, load_folder

CLASSES = ("cat", "dog", "owl")


def _image(rng: np.random.Generator, cls: int, *, gray: bool = False) -> Image.Image:
    """A random image of a random size, brighter for higher classes."""
    w, h = int(rng.integers(14, 48)), int(rng.integers(14, 48))
    shape = (h, w) if gray else (h, w, 3)
    return Image.fromarray((rng.random(shape) * 80 + cls * 80).astype(np.uint8))


def make_folder(
    root: Path, per_class: int = 10, classes: tuple[str, ...] = CLASSES, *, seed: int = 0, gray: bool = False
) -> Path:
    """``root/<class>/<i>.png`` (every fourth a JPEG), images of different sizes."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = "jpg" if i % 4 == 3 else "png"
            _image(rng, c, gray=gray).save(root / name / f"{i}.{suffix}")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "pets")


def _labels(dataset: object) -> list[int]:
    return [dataset[i][1] for i in range(len(dataset))]  # type: ignore[index, arg-type]


# ----------------------------------------------------------------------------------------- loading


def test_folder_shapes_classes_and_split(folder: Path) -> None:
    splits = load_folder(folder, image_size=16, val_fraction=0.2, test_fraction=0.2)
    assert isinstance(splits, DataSplits) and splits.name == "folder"
    assert splits.input_shape == (3, 16, 16) and splits.num_classes == 3
    assert splits.class_names == CLASSES and splits.pixel_scale == 255.0
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 6, 6)
    # stratified: two images of each class in val and in test
    assert Counter(_labels(splits.val)) == Counter(_labels(splits.test)) == {0: 2, 1: 2, 2: 2}
    seen = [set(getattr(splits, s).paths) for s in ("train", "val", "test")]
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]
    assert len(seen[0] | seen[1] | seen[2]) == 30
    for split in (splits.train, splits.val):
        for path, label in zip(split.paths, split.targets):
            assert Path(path).parent.name == CLASSES[label]
    image, label = splits.train[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 16, 16) and type(label) is int


def test_folder_split_is_fixed_by_the_seed(folder: Path) -> None:
    a, b, c = (load_folder(folder, image_size=8, seed=s) for s in (0, 0, 1))
    assert a.val.paths == b.val.paths and a.mean == b.mean
    assert set(a.val.paths) != set(c.val.paths)


def test_folder_pixels_and_normalisation(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", per_class=6)
    # a pure red image of an odd size: its centre square, resized, is still pure red
    Image.new("RGB", (40, 23), (255, 0, 0)).save(root / "cat" / "red.png")
    splits = load_folder(root, image_size=12, val_fraction=0.2, test_fraction=0.2, stats_images=1000)
    train = torch.stack([splits.train[i][0] for i in range(len(splits.train))])
    per_channel = train.transpose(0, 1).reshape(3, -1)
    # statistics of every training image (stats_images covers them all): the training split is centred
    np.testing.assert_allclose(per_channel.mean(dim=1).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(dim=1, unbiased=False).numpy(), 1.0, atol=1e-3)
    mean, std = torch.tensor(splits.mean).view(3, 1, 1), torch.tensor(splits.std).view(3, 1, 1)
    for split in (splits.train, splits.val, splits.test):
        if any(p.endswith("red.png") for p in split.paths):
            index = [p.endswith("red.png") for p in split.paths].index(True)
            pixels = (split[index][0] * std + mean) * splits.pixel_scale
            np.testing.assert_allclose(pixels[0].numpy(), 255.0, atol=0.01)
            np.testing.assert_allclose(pixels[1:].numpy(), 0.0, atol=0.01)
            break
    else:
        pytest.fail("red.png is in no split")


def test_folder_images_are_decoded_when_read_and_cached_within_budget(folder: Path) -> None:
    splits = load_folder(folder, image_size=8, cache_mb=0)
    assert splits.val._cache == {}
    first = splits.val[0][0]
    assert splits.val._cache == {}  # no budget: nothing kept
    assert torch.equal(splits.val[0][0], first)  # evaluation images are deterministic
    cached = load_folder(folder, image_size=8)
    cached.val[0]
    assert list(cached.val._cache) == [0]
    copy = pickle.loads(pickle.dumps(cached))  # what a worker process receives: no cache
    assert copy.val._cache == {} and torch.equal(copy.val[0][0], cached.val[0][0])
    assert copy.class_names == CLASSES


def test_grayscale_folder_has_one_channel(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "g", per_class=5, gray=True)
    splits = load_folder(root, image_size=8, val_fraction=0.2, test_fraction=0.2)
    assert splits.input_shape == (1, 8, 8) and len(splits.mean) == 1
    assert dataset_shape("folder", root=root, image_size=8) == (1, 8, 3)


def test_mixed_grayscale_and_colour_is_read_as_rgb_with_a_warning(folder: Path) -> None:
    _image(np.random.default_rng(5), 1, gray=True).save(folder / "dog" / "gray.png")
    Image.new("RGBA", (20, 20), (0, 0, 255, 128)).save(folder / "owl" / "alpha.png")
    with pytest.warns(UserWarning, match=r"1 of 32 images .* grayscale.*read as RGB.*dog/gray\.png"):
        splits = load_folder(folder, image_size=8)
    assert splits.in_channels == 3
    everything = [splits.train, splits.val, splits.test]
    assert all(s[i][0].shape == (3, 8, 8) for s in everything for i in range(len(s)))


def test_given_train_and_val_folders(tmp_path: Path) -> None:
    make_folder(tmp_path / "data" / "train", per_class=6)
    make_folder(tmp_path / "data" / "val", per_class=2, seed=1)
    splits = load_folder(tmp_path / "data", image_size=8)
    assert (len(splits.train), len(splits.val), splits.test) == (18, 6, None)
    assert all("/val/" in p for p in splits.val.paths) and all("/train/" in p for p in splits.train.paths)
    make_folder(tmp_path / "data" / "test", per_class=3, classes=("dog", "owl"), seed=2)
    splits = load_folder(tmp_path / "data", image_size=8, limit=4)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 4, 4)
    assert set(_labels(splits.test)) == {1, 2}  # test/ may lack a class; labels are train/'s


def test_limit_keeps_a_stratified_subset(folder: Path) -> None:
    splits = load_folder(folder, image_size=8, limit=3, val_fraction=0.3, test_fraction=0.3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 3, 3)
    assert sorted(_labels(splits.val)) == [0, 1, 2]


# ------------------------------------------------------------------------------------ augmentation


def test_training_view_augments_and_is_seeded(folder: Path) -> None:
    splits = load_folder(folder, image_size=16)
    train = splits.train.for_training
    assert train is not splits.train and train.augment and not splits.train.augment
    assert train.paths == splits.train.paths and train.targets == splits.train.targets
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(torch.stack([train[i][0] for i in range(6)]))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    plain = torch.stack([splits.train[i][0] for i in range(6)])
    assert not torch.equal(draws[0], plain)
    assert torch.equal(plain, torch.stack([splits.train[i][0] for i in range(6)]))  # evaluation: fixed
    off = load_folder(folder, image_size=16, augment=0)
    assert off.train.for_training is off.train


def test_worker_processes_decode_reproducibly(folder: Path) -> None:
    splits = load_folder(folder, image_size=8, workers=2)
    train = splits.train.for_training
    assert train.workers == 2

    def epoch(seed: int) -> list[torch.Tensor]:
        loader = DataLoader(
            train, batch_size=5, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(seed)
        )
        return [x for x, _ in loader]

    first, again = epoch(3), epoch(3)
    assert sum(len(x) for x in first) == len(train)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


# -------------------------------------------------------------------------------------- bad folders


def test_missing_root_and_file_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"image folder not found: .*nowhere; expected root/<class>/<image>"
    ):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"file\.png is a file, not a folder"):
        load_folder(tmp_path / "file.png")


def test_empty_folder_and_loose_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no class folders in .*empty: it is empty"):
        load_folder(tmp_path / "empty")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("RGB", (8, 8)).save(loose / "a.png")
    with pytest.raises(
        DatasetError, match=r"no class folders in .*loose: its images are not sorted into class"
    ):
        load_folder(loose)


def test_single_class(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(DatasetError, match=r"one class folder \(cat\); a classifier needs at least two"):
        load_folder(root)


def test_class_without_images(folder: Path) -> None:
    (folder / "yak").mkdir()
    (folder / "yak" / "notes.txt").write_text("no images here")
    (folder / ".hidden").mkdir()  # hidden folders are not classes
    with pytest.raises(DatasetError, match=r"class folder .*pets/yak holds no images"):
        load_folder(folder)


def test_unreadable_image_is_named(folder: Path) -> None:
    (folder / "dog" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*dog/broken\.png"):
        load_folder(folder)


def test_truncated_image_is_named_when_decoded(folder: Path) -> None:
    data = (folder / "owl" / "0.png").read_bytes()
    (folder / "owl" / "0.png").write_bytes(data[: len(data) // 2])  # the header is intact, the pixels are not
    with pytest.raises(DatasetError, match=r"cannot decode image .*owl/0\.png"):
        load_folder(folder, stats_images=1000)  # every training image is decoded for the statistics
    splits = load_folder(folder, stats_images=1, limit=None)
    index = next(
        (s, i)
        for s in ("train", "val", "test")
        for i, p in enumerate(getattr(splits, s).paths)
        if "owl/0." in p
    )
    with pytest.raises(DatasetError, match=r"cannot decode image .*owl/0\.png"):
        getattr(splits, index[0])[index[1]]


def test_sixteen_bit_image_is_refused_with_its_name(folder: Path) -> None:
    Image.fromarray(np.full((10, 10), 40000, dtype=np.uint16)).save(folder / "cat" / "deep.png")
    with pytest.raises(DatasetError, match=r"image .*cat/deep\.png has I;16 pixels"):
        load_folder(folder)


def test_split_folder_problems(tmp_path: Path) -> None:
    make_folder(tmp_path / "a" / "train", per_class=2)
    with pytest.raises(DatasetError, match="holds train/ but no val/"):
        load_folder(tmp_path / "a")
    make_folder(tmp_path / "a" / "val", per_class=1, classes=("cat", "emu"))
    with pytest.raises(
        DatasetError, match=r"class folder .*val/emu has no counterpart in the training folder"
    ):
        load_folder(tmp_path / "a")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"image_size": 2}, "image_size must be an integer >= 4"),
        ({"workers": -1}, "workers must be an integer >= 0"),
        ({"augment": 2}, "augment must be 1"),
        ({"min_scale": 0.0}, r"min_scale must be a number in \(0, 1\]"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_options(folder: Path, option: dict[str, object], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_folder(folder, **option)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ registry and config


def test_folder_by_name_and_its_shape(folder: Path) -> None:
    splits = load_dataset("folder", root=folder, image_size=10, limit=2)
    assert splits.input_shape == (3, 10, 10) and len(splits.train) == 2
    assert dataset_shape("folder", root=folder, image_size=20) == (3, 20, 3)
    with pytest.raises(DatasetError, match="dataset 'folder' needs root"):
        load_dataset("folder")
    with pytest.raises(DatasetError, match="unknown option.*copies"):
        load_dataset("folder", root=folder, copies=2)


def test_config_passes_image_size_workers_and_limit(folder: Path) -> None:
    from nas import ConfigError, load_config
    from nas.run._config import loader_options

    cfg = load_config(
        None,
        {
            "data.name": "folder",
            "data.root": str(folder),
            "data.image_size": 16,
            "data.workers": 2,
            "data.limit": 5,
        },
    )
    assert loader_options(cfg) == {"image_size": 16, "workers": 2, "limit": 5}
    cfg = load_config(None, {"data.name": "folder", "data.root": str(folder), "data.options": {"augment": 0}})
    assert loader_options(cfg) == {"augment": 0, "workers": 0}
    with pytest.raises(ConfigError, match="image_size applies to the folder dataset"):
        load_config(None, {"data.image_size": 16})
    with pytest.raises(ConfigError, match="dataset folder needs 'root'"):
        load_config(None, {"data.name": "folder"})
    with pytest.raises(ConfigError, match="has no option 'copies'"):
        load_config(None, {"data.name": "folder", "data.root": str(folder), "data.options": {"copies": 2}})


# ------------------------------------------------------------------------------------ command line


def _hwnas(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from nas.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_cli_bad_folders_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "runs")
    code, err = _hwnas(capsys, "search", "--dataset", "folder", "--data-root", "/nonexistent", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "/nonexistent" in err
    (tmp_path / "empty").mkdir()
    code, err = _hwnas(
        capsys,
        "search",
        "--dataset",
        "folder",
        "--data-root",
        str(tmp_path / "empty"),
        "--out",
        out,
        "--name",
        "e",
    )
    assert code == 2 and err.count("\n") == 1 and "no class folders" in err
    root = make_folder(tmp_path / "pets", per_class=4)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, err = _hwnas(
        capsys, "search", "--dataset", "folder", "--data-root", str(root), "--out", out, "--name", "b"
    )
    assert code == 2 and err.count("\n") == 1 and "dog/broken.jpg" in err
    code, err = _hwnas(capsys, "search", "--dataset", "digits", "--image-size", "16", "--out", out)
    assert code == 2 and "image_size applies to the folder dataset" in err


def test_cli_refuses_batch_augmentation_on_top_of_the_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_folder(tmp_path / "pets", per_class=4)
    config = tmp_path / "c.yaml"
    config.write_text("supernet:\n  flip: true\n")
    code, err = _hwnas(
        capsys, "search", "--config", str(config), "--dataset", "folder", "--data-root", str(root),
        "--out", str(tmp_path / "runs"), "--name", "x",
    )  # fmt: skip
    assert code == 2 and "already augments training images" in err and err.count("\n") == 1


@pytest.mark.slow
def test_search_on_a_folder_exports_models_that_name_the_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    root = make_folder(tmp_path / "pets", per_class=8)
    out = tmp_path / "runs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, err = _hwnas(
            capsys, "search", "--dataset", "folder", "--data-root", str(root), "--image-size", "12",
            "--data-workers", "1", "--trials", "4", "--population", "4", "--epochs", "1", "--name", "f",
            "--out", str(out),
        )  # fmt: skip
    assert code == 0, err
    run = out / "f"
    data = json.loads((run / "data.json").read_text())
    assert data["class_names"] == list(CLASSES) and data["input_shape"] == [3, 12, 12]
    models = json.loads((run / "pareto.json").read_text())["models"]
    assert models
    for model in models:
        meta = {p.key: p.value for p in onnx.load(run / model["onnx"]).metadata_props}
        assert json.loads(meta["hwnas.class_names"]) == list(CLASSES)
        assert json.loads(meta["hwnas.pixel_scale"]) == 255.0
        assert json.loads(meta["hwnas.input_shape"]) == [3, 12, 12]


def test_an_image_broken_in_a_worker_process_is_named_in_one_line(folder: Path) -> None:
    splits = load_folder(folder, image_size=8, stats_images=1, workers=1)
    path = Path(splits.train.paths[-1])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # broken after loading: found when a worker decodes it
    loader = DataLoader(splits.train.for_training, batch_size=4, num_workers=1)
    with pytest.raises(DatasetError) as info:
        list(loader)
    message = str(info.value)
    assert message.startswith("cannot decode image") and path.name in message and "\n" not in message


def test_names_beyond_ascii(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "données", per_class=4, classes=("chat", "hibou", "éléphant"))
    Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "chat" / "ça.png")
    splits = load_folder(root, image_size=8, val_fraction=0.2, test_fraction=0.2)
    assert splits.class_names == ("chat", "hibou", "éléphant")
    paths = [p for s in (splits.train, splits.val, splits.test) for p in s.paths]
    assert str(root / "chat" / "ça.png") in paths and all(Path(p).is_file() for p in paths)
