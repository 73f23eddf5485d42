"""nas.search: a search from Python on one's own torch datasets, recorded so that the run can be used later."""

import json

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

import nas
from nas.data import DatasetError


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 8, 8, generator=gen)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()  # a learnable label
    train = TensorDataset(x[:64], y[:64])
    train.classes = ["dark", "bright"]  # torchvision's attribute for class names
    return nas.from_datasets(train, TensorDataset(x[64:80], y[64:80]), TensorDataset(x[80:], y[80:]), name="toy")


def test_unknown_keywords_name_the_valid_ones():
    with pytest.raises(TypeError, match="valid: .*epochs"):
        nas.search(_data(), epoch=1)


@pytest.mark.slow
def test_search_from_python_records_the_data_and_reexports_only_with_it(tmp_path):
    seen = []
    data = _data()
    result = nas.search(
        data,
        space="mobilenet",
        objectives=["error", "params"],
        trials=3,
        epochs=1,
        population=2,
        batch_size=32,
        name="toy",
        out=tmp_path,
        progress=seen.append,
        overrides={"evaluation.calib_samples": 32, "tracking.enabled": False},
    )
    assert result.n_trials == 3 and len(seen) == 3 and result.models
    run = result.run_dir
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["name"] == "python"
    described = json.loads((run / "data.json").read_text())
    assert described["class_names"] == ["dark", "bright"] and described["input_shape"] == [3, 8, 8]
    model_id = result.models[0].id
    with pytest.raises(DatasetError, match="given from Python"):
        nas.reexport(run, model_id, out=tmp_path / "again.onnx")
    path, diff = nas.reexport(run, model_id, out=tmp_path / "again.onnx", data=data)
    assert path.is_file() and diff < 1e-3
    loaded = nas.load_run(run, data=data).load_model(model_id)
    assert loaded(data.val[0][0][None]).shape == (1, 2)
