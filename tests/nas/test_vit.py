"""The elastic vision-transformer space: sizing, canonical archs, weight sharing, ONNX, training, lookup tables,
and searches end to end on digits and on 32x32 images."""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nas.data import from_datasets, load_digits
from nas.run._export import export_onnx, verify_onnx
from nas.run._lut import arch_parts, measure_table
from nas.spaces import SpaceError, VitSpace, resolve_space, space_for_input, space_from_dict, space_to_dict
from nas.spaces._vit import VIT_PRESETS, mlp_hidden
from nas.spaces._vit_net import Attention, EncoderLayer, PatchEmbed, VitHead, VitSubnet, VitSupernet
from nas.training import recalibrate_bn, train_supernet
from profilers import count_params_and_flops, estimate_peak_memory

#: A small space for quick tests: 40 archs.
TINY = {
    "embed_choices": (16, 24), "depth_choices": (1, 2), "heads_choices": (1, 2), "mlp_ratio_choices": (1.0, 2.0),
    "head_dim": 8,
}  # fmt: skip
DIGITS = (1, 8, 8)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_like(space: VitSpace, seed: int = 0) -> VitSupernet:
    """A supernet whose weights are no longer at their initial values (layer norms and biases included)."""
    net = space.build_supernet(seed=seed)
    assert isinstance(net, VitSupernet)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return net.eval()


# -- the space -------------------------------------------------------------------------------------------


def test_the_registry_resolves_vit_and_the_image_size_picks_a_preset() -> None:
    assert resolve_space("vit") is VitSpace
    digits = space_for_input("vit", 1, 8, 10)
    assert digits == VitSpace() and digits.patch_size == 2 and digits.preset == "digits"
    assert digits.num_tokens == 16  # 4x4 patches, mean pooling
    cifar = VitSpace.for_input(3, 32, 10)
    assert (cifar.preset, cifar.patch_size, cifar.num_tokens) == ("cifar", 4, 64)
    imagenet = VitSpace.for_input(3, 224, 1000)
    assert (imagenet.preset, imagenet.patch_size, imagenet.num_tokens) == ("tiny", 16, 197)  # + class token
    assert imagenet.embed_choices == (192, 216, 240) and imagenet.head_dim == 64  # AutoFormer-T
    small = VitSpace.for_input(3, 224, 1000, preset="small")
    assert small.embed_choices == (320, 384, 448) and small.patch_size == 16
    assert "small preset" in small.describe() and "16x16 patches" in small.describe()
    # a preset's patch keeps its number of patches per side on other sizes, and always divides the image
    assert VitSpace.for_input(3, 28, 10).patch_size == 3 or 28 % VitSpace.for_input(3, 28, 10).patch_size == 0
    assert VitSpace.for_input(1, 28, 10).grid * VitSpace.for_input(1, 28, 10).patch_size == 28


def test_options_override_the_preset_and_round_trip_through_json() -> None:
    space = space_for_input(
        "vit", 3, 32, 10,
        {"embed_choices": [64, 96], "heads_choices": [2, 4], "mlp_ratio_choices": [3, 4], "patch_size": 8, "pool": "cls"},
    )  # fmt: skip
    assert space.embed_choices == (64, 96) and space.mlp_ratio_choices == (3.0, 4.0)
    assert (
        space.patch_size == 8
        and space.num_tokens == 17
        and space.depth_choices == VIT_PRESETS["cifar"]["depth_choices"]
    )
    stored = json.loads(json.dumps(space_to_dict(space)))
    assert stored["space"] == "vit"
    assert space_from_dict(stored) == space
    assert VitSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(
    "options, message",
    [
        ({"embeds": [32]}, "unknown vit option 'embeds'.*embed_choices"),
        ({"preset": "huge"}, "unknown vit preset 'huge'.*digits, cifar, tiny, small"),
        ({"patch_size": 3}, "patch_size 3 does not divide image_size 8"),
        ({"embed_choices": [64, 32]}, "embed_choices must be strictly increasing"),
        ({"embed_choices": []}, "embed_choices must be a non-empty list"),
        ({"heads_choices": [1.5]}, "heads_choices must hold integers"),
        ({"mlp_ratio_choices": [0, 1]}, "mlp_ratio_choices must hold positive numbers"),
        ({"pool": "max"}, "pool must be one of"),
        ({"head_dim": 0}, "head_dim must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space_for_input("vit", 1, 8, 10, options)


def test_num_subnets_counts_distinct_canonical_archs() -> None:
    space = VitSpace(**TINY)
    search = space.search_space()
    names = list(search)
    seen = {
        json.dumps(space.arch_from_params(dict(zip(names, values))), sort_keys=True)
        for values in itertools.product(*(search[n].values for n in names))
    }
    assert len(seen) == space.num_subnets() == 2 * (4 + 16)
    assert VitSpace().num_subnets() == 3 * (9**2 + 9**3 + 9**4)


def test_archs_are_canonical() -> None:
    space = VitSpace()
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = space.search_space().sample(rng)
        arch = space.arch_from_params(params)
        assert len(arch["heads"]) == len(arch["mlp_ratio"]) == arch["depth"]
        assert all(isinstance(r, float) for r in arch["mlp_ratio"]) and json.loads(json.dumps(arch)) == arch
        # the choices of layers beyond the depth do not change the arch
        inactive = {f"heads_{i}": 4 for i in range(arch["depth"], space.max_depth)}
        inactive |= {f"mlp_ratio_{i}": 3.0 for i in range(arch["depth"], space.max_depth)}
        assert space.arch_from_params({**params, **inactive}) == arch
        assert space.arch_from_params(space.params_from_arch(arch)) == arch
    with pytest.raises(ValueError, match="heads needs 2 values"):
        space.validate_arch({"embed": 32, "depth": 2, "heads": [1], "mlp_ratio": [1.0, 1.0]})
    with pytest.raises(ValueError, match="embed 40 is not one of"):
        space.validate_arch({"embed": 40, "depth": 2, "heads": [1, 1], "mlp_ratio": [1.0, 1.0]})
    with pytest.raises(ValueError, match="unknown keys"):
        space.validate_arch({**space.smallest_arch(), "width": 1.0})


# -- weight sharing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_subnets_compute_what_the_supernet_does(pool: str) -> None:
    space = VitSpace(pool=pool, dropout=0.1)
    net = trained_like(space)
    x = torch.randn(5, *DIGITS, generator=torch.Generator().manual_seed(2))
    rng = np.random.default_rng(1)
    for arch in [space.largest_arch(), space.smallest_arch()] + [space.random_arch(rng) for _ in range(6)]:
        sub = net.subnet(arch)
        assert isinstance(sub, VitSubnet) and not sub.training
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x, arch), atol=1e-5, rtol=0)
        plain = (nn.Conv2d, nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout, nn.Sequential)
        mine = (VitSubnet, PatchEmbed, EncoderLayer, Attention, VitHead)
        assert all(isinstance(m, plain + mine) for m in sub.modules())
        assert len(sub.layers) == arch["depth"]
        # the largest arch holds every weight of the supernet (the class token folded into the positions)
        every = sum(p.numel() for p in net.parameters()) - (space.max_embed if pool == "cls" else 0)
        assert (sum(p.numel() for p in sub.parameters()) == every) == (arch == space.largest_arch())


def test_subnets_keep_the_leading_features_and_heads() -> None:
    space = VitSpace()
    net = trained_like(space)
    arch = {"embed": 48, "depth": 2, "heads": [2, 4], "mlp_ratio": [3.0, 1.0]}
    sub = net.subnet(arch)
    layer = net.layers[0]
    width = 2 * space.head_dim
    qkv = sub.layers[0].attn.qkv.weight
    assert qkv.shape == (3 * width, 48)
    for block in range(3):  # query, key, value: the first two heads of each
        rows = slice(
            block * space.max_heads * space.head_dim, block * space.max_heads * space.head_dim + width
        )
        torch.testing.assert_close(qkv[block * width : (block + 1) * width], layer.qkv.weight[rows, :48])
    torch.testing.assert_close(sub.layers[0].attn.proj.weight, layer.proj.weight[:48, :width])
    assert sub.layers[0].mlp[0].out_features == mlp_hidden(48, 3.0) == 144
    torch.testing.assert_close(sub.layers[0].norm1.weight, layer.norm1.weight[:48])
    torch.testing.assert_close(sub.patch_embed.pos_embed, net.patch_embed.pos_embed[..., :48])  # mean pooling
    # the subnet shares no storage with the supernet
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert not torch.equal(sub.layers[0].norm1.weight, layer.norm1.weight[:48])


def test_weights_are_seeded_and_zero_init_makes_layers_the_identity() -> None:
    space = VitSpace(**TINY)
    a, b, c = (space.build_supernet(seed=s) for s in (3, 3, 4))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    net = space.build_supernet(seed=0, zero_init_residual=True).eval()
    x = torch.randn(3, *DIGITS)
    shallow = {"embed": 24, "depth": 1, "heads": [1], "mlp_ratio": [1.0]}
    deep = {"embed": 24, "depth": 2, "heads": [1, 2], "mlp_ratio": [1.0, 2.0]}
    with torch.no_grad():
        torch.testing.assert_close(net(x, shallow), net(x, deep))


# -- ONNX ------------------------------------------------------------------------------------------------

#: Operators a subnet may export to: standard ONNX, no custom domain, no fused attention.
ALLOWED_OPS = {
    "Conv", "MatMul", "Gemm", "Add", "Mul", "Div", "Softmax", "LayerNormalization", "Erf", "Reshape", "Transpose",
    "Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Identity", "Slice", "ReduceMean", "Expand", "Where",
    "Equal", "ConstantOfShape", "Squeeze", "Flatten", "Sub", "Sqrt", "Pow", "Cast",
}  # fmt: skip


@pytest.mark.parametrize("shape, options", [(DIGITS, {}), ((3, 32, 32), {**TINY, "pool": "cls"})])
def test_subnets_export_to_onnx_and_run_in_onnx_runtime(tmp_path: Path, shape: tuple, options: dict) -> None:
    space = VitSpace.for_input(shape[0], shape[1], 10, **options)
    net = trained_like(space)
    rng = np.random.default_rng(3)
    for i, arch in enumerate([space.largest_arch(), space.random_arch(rng)]):
        model = net.subnet(arch)
        path = export_onnx(model, tmp_path / f"{i}.onnx", shape)
        ops = {(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node}
        assert {d for d, _ in ops} <= {"", "ai.onnx"}
        assert {op for _, op in ops} <= ALLOWED_OPS, {op for _, op in ops} - ALLOWED_OPS
        result = verify_onnx(model, path, shape, batch_size=3)
        assert result.checker_ok, result.checker_message
        assert result.ort_output_shape == (3, 10) and result.ok(atol=1e-4), result.max_abs_diff
        # the evaluator's static analyses need every shape inferred from the input's
        cost = count_params_and_flops(path, shape)
        assert cost.macs > sum(
            m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)
        )
        assert estimate_peak_memory(path, shape).peak_memory_mb > 0


# -- training --------------------------------------------------------------------------------------------


def test_sandwich_training_on_digits_and_recalibration_without_batch_norm() -> None:
    data = load_digits()
    space = VitSpace.for_input(*data.input_shape[:2], data.num_classes, **TINY)
    net = space.build_supernet(seed=0)
    result = train_supernet(net, data.train, epochs=1, batch_size=128, seed=0)
    assert result.epochs == 1 and np.isfinite(result.loss) and np.isfinite(result.distill_loss)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    sub = net.subnet(space.smallest_arch())
    before = {k: v.clone() for k, v in sub.state_dict().items()}
    x = data.val.tensors[0][:8]
    with torch.no_grad():
        out = sub.eval()(x)
    recalibrate_bn(sub, data.train, num_samples=64)
    assert not sub.training
    assert all(torch.equal(v, before[k]) for k, v in sub.state_dict().items())
    with torch.no_grad():
        assert torch.equal(sub(x), out)


# -- lookup-table parts ----------------------------------------------------------------------------------


def test_every_arch_is_made_of_known_parts_with_the_shapes_it_really_runs_at() -> None:
    space = VitSpace()
    parts = space.distinct_parts(DIGITS)
    assert len(parts) == 3 * (1 + 9 + 1)
    net = space.build_supernet(seed=0).eval()
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = space.random_arch(rng)
        keys = arch_parts(space, arch, DIGITS)
        assert all(k in parts for k in keys) and len(keys) == arch["depth"] + 2
        sub = net.subnet(arch)
        seen: list[tuple[int, ...]] = []
        modules = [sub.patch_embed, *sub.layers, sub.head]
        hooks = [
            m.register_forward_hook(lambda m, i, o, seen=seen: seen.append(tuple(i[0].shape[1:])))
            for m in modules
        ]
        sub(torch.zeros(1, *DIGITS))
        for h in hooks:
            h.remove()
        assert [parts[k][-1] for k in keys] == seen
    with pytest.raises(ValueError, match="sized for inputs"):
        space.arch_parts(space.smallest_arch(), (1, 16, 16))


def test_built_parts_are_the_modules_the_subnet_holds() -> None:
    space = VitSpace(**TINY)
    net = trained_like(space)
    arch = {"embed": 24, "depth": 2, "heads": [2, 1], "mlp_ratio": [2.0, 1.0]}
    sub = net.subnet(arch)
    keys = space.arch_parts(arch, DIGITS)
    distinct = space.distinct_parts(DIGITS)
    x = torch.randn(2, *DIGITS)
    patch, shape = space.build_part(net, distinct[keys[0]])
    assert shape == DIGITS
    tokens = sub.patch_embed(x)
    torch.testing.assert_close(patch(x), tokens)
    layer, shape = space.build_part(net, distinct[keys[1]])  # the first layer's weights stand for every layer
    assert shape == (space.num_tokens, 24)
    torch.testing.assert_close(layer(tokens), sub.layers[0](tokens))
    head, shape = space.build_part(net, distinct[keys[-1]])
    torch.testing.assert_close(head(tokens), sub.head(tokens))
    # parameters of the parts add up to the model's
    total = sum(sum(p.numel() for p in space.build_part(net, distinct[k])[0].parameters()) for k in keys)
    assert total == sum(p.numel() for p in sub.parameters())


def test_lookup_table_predictions_are_exact_when_latency_is_additive(monkeypatch) -> None:
    """With a fake runtime whose latency is a sum of per-operator costs, the parts sum to each whole arch."""
    from hardware_profiles import load_profile
    from profilers import OnnxRuntimeLatency

    class Result:
        def __init__(self, ms: float) -> None:
            self.median_ms, self.iqr_ms = ms, 0.0

    def fake_measure(self, path, input_shape, *, batch_size=1):
        nodes = onnx.load(str(path)).graph.node
        cost = collections.Counter(n.op_type for n in nodes if n.op_type not in ("Constant", "Identity"))
        weights = {"MatMul": 0.004, "Conv": 0.006, "Softmax": 0.003, "LayerNormalization": 0.002}
        return Result(0.01 + sum(weights.get(op, 0.001) * k for op, k in cost.items()))

    monkeypatch.setattr(OnnxRuntimeLatency, "measure", fake_measure)
    space = VitSpace(**TINY)
    table, records = measure_table(
        space, load_profile("local-cpu"), DIGITS, calibration_archs=5, seed=1, rounds=1
    )
    assert set(table.entries) == set(space.distinct_parts(DIGITS)) and table.meta["space"] == "vit"
    for rec in records:
        assert rec["predicted_ms"] == pytest.approx(rec["measured_ms"], rel=1e-6)


# -- end to end ------------------------------------------------------------------------------------------

VIT_CONFIG = """
seed: 0
space:
  name: vit
  options: {embed_choices: [16, 24], depth_choices: [1, 2], heads_choices: [1, 2], mlp_ratio_choices: [1, 2], head_dim: 8}
supernet:
  epochs: 1
  lr: 0.05
search:
  trials: 6
  population: 4
  objectives: [error, latency_ms]
evaluation:
  calib_samples: 32
tracking:
  enabled: false
"""


def _stored_space(run: Path) -> VitSpace:
    stored = json.loads((run / "space.json").read_text())
    assert stored["space"] == "vit"
    space = space_from_dict({"space": stored["space"], "options": stored["supernet"]})
    assert isinstance(space, VitSpace)
    return space


def _check_front(run: Path, shape: tuple[int, ...]) -> None:
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["models"]
    space = _stored_space(run)
    for model in pareto["models"]:
        assert model["max_abs_diff"] < 1e-4
        path = run / model["onnx"]
        onnx.checker.check_model(str(path), full_check=True)
        space.validate_arch(model["arch"])
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"input": np.zeros((2, *shape), np.float32)})
        assert out.shape == (2, 10)


@pytest.mark.slow
def test_search_and_profile_device_on_digits_from_the_command_line(tmp_path: Path) -> None:
    from nas.cli import main

    cfg = tmp_path / "vit.yaml"
    cfg.write_text(VIT_CONFIG)
    assert main(["search", "--config", str(cfg), "--out", str(tmp_path), "--name", "v"]) == 0
    _check_front(tmp_path / "v", DIGITS)
    out = tmp_path / "lut" / "vitcpu.json"
    assert main(["profile-device", "--config", str(cfg), "--out", str(out), "--calibration", "3"]) == 0
    from profilers import LatencyTable

    table = LatencyTable.load(out)
    assert table.meta["space"] == "vit" and len(table.entries) == len(VitSpace(**TINY).distinct_parts(DIGITS))


@pytest.mark.slow
def test_search_on_32x32_images(tmp_path: Path) -> None:
    from nas import Experiment, load_config

    gen = torch.Generator().manual_seed(0)
    images = torch.randn(160, 3, 32, 32, generator=gen)
    labels = torch.arange(160) % 10
    data = from_datasets(
        TensorDataset(images[:96], labels[:96]),
        TensorDataset(images[96:128], labels[96:128]),
        TensorDataset(images[128:], labels[128:]),
        name="random32",
    )
    cfg = load_config(
        overrides={
            "name": "v32",
            "out": str(tmp_path),
            "threads": 1,
            "supernet.epochs": 1,
            "supernet.batch_size": 32,
            "search.trials": 4,
            "search.population": 2,
            "search.objectives": ["error", "params"],
            "evaluation.calib_samples": 32,
            "tracking.enabled": False,
            "space.name": "vit",
            "space.options": {
                **{k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()},
                "pool": "cls",
            },
        }
    )
    result = Experiment(cfg, data=data).run()
    space = _stored_space(result.run_dir)
    assert space.patch_size == 4 and space.in_channels == 3
    _check_front(result.run_dir, (3, 32, 32))


@pytest.mark.slow
def test_the_imagenet_preset_runs_at_full_size() -> None:
    space = VitSpace.for_input(3, 224, 1000)  # AutoFormer-T-like: 14x14 patches of 16 pixels and a class token
    net = space.build_supernet(seed=0).eval()
    arch = space.random_arch(np.random.default_rng(0))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net.subnet(arch)(x), net(x, arch), atol=1e-5, rtol=0)
    parts = space.arch_parts(arch, (3, 224, 224))
    assert parts[1].endswith("tokens=197") and len(space.distinct_parts((3, 224, 224))) == 3 * (1 + 4 + 1)
