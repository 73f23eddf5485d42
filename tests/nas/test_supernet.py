"""Tests of nas.spaces._ops and nas.spaces._mobilenet_net: dynamic layers, the supernet and its static subnets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces._mobilenet import SupernetSpec
from nas.spaces._mobilenet_net import InvertedResidual, Subnet, Supernet
from nas.spaces._ops import DynamicBatchNorm2d, DynamicConv2d, DynamicDepthwiseConv2d, DynamicLinear

TINY = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Nets this small gain nothing from a second thread, and spinning threads crawl on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_like(spec: SupernetSpec, seed: int = 0) -> Supernet:
    """A supernet whose BN statistics, BN affine parameters and kernel transforms are all non-trivial, so
    that copying any of them wrongly into a subnet changes its output."""
    net = Supernet(spec, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if ".bn." in name or ".transforms." in name or "classifier.bias" in name:
                param.add_(0.2 * torch.randn(param.shape, generator=gen))
    net.train()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(16, spec.in_channels, spec.image_size, spec.image_size, generator=gen)
            net(x * 2 + 1, spec.random_arch(rng))
    return net.eval()


def some_archs(spec: SupernetSpec, count: int = 8) -> list[dict]:
    rng = np.random.default_rng(7)
    archs = [spec.largest_arch(), spec.smallest_arch()] + [spec.random_arch(rng) for _ in range(count)]
    for width in spec.width_choices:  # make sure every width is covered
        arch = spec.random_arch(rng)
        arch["width"] = float(width)
        archs.append(arch)
    return archs


# -- dynamic ops -----------------------------------------------------------------------------------------


def test_dynamic_conv_uses_the_leading_slice_of_the_largest_weight() -> None:
    conv = DynamicConv2d(8, 16, kernel_size=3, stride=2)
    nn.init.normal_(conv.weight)
    x = torch.randn(2, 5, 7, 7)
    out = conv(x, out_channels=11)
    assert out.shape == (2, 11, 4, 4)
    expected = F.conv2d(x, conv.weight[:11, :5], stride=2, padding=1)
    assert torch.equal(out, expected)
    static = conv.static(5, 11)
    assert isinstance(static, nn.Conv2d) and static.weight.shape == (11, 5, 3, 3)
    assert torch.allclose(static(x), out, atol=1e-6)
    with pytest.raises(ValueError, match="exceed"):
        conv(torch.randn(1, 9, 4, 4), out_channels=4)


def test_depthwise_kernels_start_as_centre_crops_and_transforms_change_them() -> None:
    conv = DynamicDepthwiseConv2d(12, (3, 5, 7))
    nn.init.normal_(conv.weight)
    assert set(conv.transforms) == {"7to5", "5to3"}
    full = conv.weight[:6]
    assert torch.equal(conv.active_weight(6, 7), full)
    assert torch.allclose(conv.active_weight(6, 5), full[..., 1:6, 1:6])
    assert torch.allclose(conv.active_weight(6, 3), full[..., 2:5, 2:5])
    with torch.no_grad():
        conv.transforms["5to3"].add_(0.1)
    assert not torch.allclose(conv.active_weight(6, 3), full[..., 2:5, 2:5])
    assert torch.allclose(conv.active_weight(6, 5), full[..., 1:6, 1:6])  # larger kernels unaffected
    plain = DynamicDepthwiseConv2d(12, (3, 5, 7), transform=False)
    assert len(plain.transforms) == 0
    with pytest.raises(ValueError, match="kernel size 4"):
        conv.active_weight(6, 4)


@pytest.mark.parametrize(
    ("size", "kernel", "stride"),
    [((2, 2), 7, 1), ((2, 2), 3, 1), ((1, 1), 5, 1), ((2, 2), 5, 2), ((1, 2), 3, 2)],
)
def test_depthwise_small_map_path_matches_conv2d_with_gradients(
    size: tuple[int, int], kernel: int, stride: int
) -> None:
    torch.manual_seed(0)
    conv = DynamicDepthwiseConv2d(16, (3, 5, 7), stride)
    nn.init.normal_(conv.weight)
    with torch.no_grad():
        for matrix in conv.transforms.values():
            matrix.add_(0.1 * torch.randn_like(matrix))
    x = torch.randn(3, 10, *size, requires_grad=True)
    params = [x, conv.weight, *conv.transforms.values()]
    out = conv(x, kernel)
    reference = F.conv2d(x, conv.active_weight(10, kernel), None, stride, kernel // 2, 1, 10)
    assert out.shape == reference.shape
    assert torch.allclose(out, reference, atol=1e-5)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad((out * grad_out).sum(), params, allow_unused=True)
    expected = torch.autograd.grad((reference * grad_out).sum(), params, allow_unused=True)
    for got, want in zip(grads, expected):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.allclose(got, want, atol=1e-5)


def test_dynamic_bn_updates_only_its_slice_and_supports_cumulative_average() -> None:
    bn = DynamicBatchNorm2d(8, momentum=None)
    batches = [torch.randn(4, 5, 3, 3) * 3 + 2 for _ in range(3)]
    for x in batches:
        bn(x)
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches])
    assert torch.allclose(bn.running_mean[:5], means.mean(dim=0), atol=1e-5)
    assert torch.equal(bn.running_mean[5:], torch.zeros(3))
    assert torch.equal(bn.running_var[5:], torch.ones(3))
    assert int(bn.num_batches_tracked) == 3
    bn.eval()
    x = torch.randn(2, 5, 3, 3)
    expected = (x - bn.running_mean[:5, None, None]) / torch.sqrt(bn.running_var[:5, None, None] + bn.eps)
    assert torch.allclose(bn(x), expected, atol=1e-5)
    static = bn.static(5)
    assert type(static) is nn.BatchNorm2d and torch.equal(static.running_mean, bn.running_mean[:5])
    assert torch.allclose(static.eval()(x), bn(x), atol=1e-6)


def test_dynamic_linear_slices_input_features() -> None:
    linear = DynamicLinear(32, 10)
    nn.init.normal_(linear.weight)
    x = torch.randn(3, 20)
    assert torch.allclose(linear(x), x @ linear.weight[:, :20].T + linear.bias)
    assert torch.allclose(linear.static(20)(x), linear(x), atol=1e-6)


def test_ops_keep_no_active_size_state() -> None:
    conv = DynamicConv2d(8, 16)
    before = set(vars(conv))
    conv(torch.randn(1, 4, 2, 2), out_channels=8)
    assert set(vars(conv)) == before
    assert not [name for name in vars(conv) if name.startswith("active")]


# -- supernet and static subnets -------------------------------------------------------------------------


# The second spec has 2x2 maps (small-map depthwise path) and a width set without 0.75.
DEEPER = SupernetSpec(
    stem_channels=8,
    stage_channels=(8, 12, 16),
    stage_strides=(2, 1, 2),
    head_channels=24,
    width_choices=(0.5, 1.0),
)


@pytest.mark.parametrize("spec", [TINY, DEEPER])
def test_subnet_equals_supernet_on_many_archs(spec: SupernetSpec) -> None:
    net = trained_like(spec)
    x = torch.randn(5, spec.in_channels, spec.image_size, spec.image_size)
    archs = some_archs(spec)
    assert {a["width"] for a in archs} == set(spec.width_choices)
    with torch.no_grad():
        for arch in archs:
            sub = net.subnet(arch)
            assert not sub.training
            diff = (sub(x) - net(x, arch)).abs().max().item()
            assert diff < 1e-5, (arch, diff)


def test_subnet_in_train_mode_matches_too() -> None:
    spec = SupernetSpec(stage_channels=(8, 12), stage_strides=(1, 2), head_channels=32, dropout=0.0)
    net = trained_like(spec).train()
    x = torch.randn(6, 1, 8, 8)
    arch = some_archs(spec)[3]
    sub = net.subnet(arch)
    assert sub.training
    assert torch.allclose(sub(x), net(x, arch), atol=1e-5)


def test_forward_without_arch_runs_the_largest() -> None:
    net = trained_like(TINY)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net(x, TINY.largest_arch()))
        assert not torch.allclose(net(x), net(x, TINY.smallest_arch()))


def test_subnet_is_static_and_holds_only_active_channels() -> None:
    net = trained_like(TINY)
    arch = {"width": 0.5, "depth": [2, 1], "kernel": [[5, 3], [7]], "expand": [[4, 6], [3]]}
    sub = net.subnet(arch)
    assert isinstance(sub, Subnet) and sub.arch == arch and sub.spec == TINY
    assert sub.arch is not arch
    allowed = (Subnet, InvertedResidual, nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.ReLU6, nn.Linear)
    allowed += (nn.AdaptiveAvgPool2d, nn.Dropout)
    assert all(isinstance(m, allowed) for m in sub.modules())
    stem, stages, head = TINY.channels(0.5)
    assert sub.stem[0].weight.shape == (stem, 1, 3, 3)
    blocks = list(sub.blocks)
    assert len(blocks) == sum(arch["depth"])
    in_channels = stem
    flat = [(s, b) for s, d in enumerate(arch["depth"]) for b in range(d)]
    for block, (s, b) in zip(blocks, flat):
        hidden = in_channels * arch["expand"][s][b]
        k = arch["kernel"][s][b]
        assert block.expand[0].weight.shape == (hidden, in_channels, 1, 1)
        assert block.depthwise[0].weight.shape == (hidden, 1, k, k)
        assert block.depthwise[0].groups == hidden
        assert block.project[0].weight.shape == (stages[s], hidden, 1, 1)
        stride = TINY.stage_strides[s] if b == 0 else 1
        assert block.depthwise[0].stride == (stride, stride)
        assert block.residual == (stride == 1 and in_channels == stages[s])
        in_channels = stages[s]
    assert sub.head[0].weight.shape == (head, stages[-1], 1, 1)
    assert sub.classifier.weight.shape == (TINY.num_classes, head)
    # Smaller than the supernet and sharing no storage with it.
    assert sum(p.numel() for p in sub.parameters()) < sum(p.numel() for p in net.parameters()) / 3
    before = net.stem.conv.weight.detach().clone()
    with torch.no_grad():
        sub.stem[0].weight.add_(1.0)
    assert torch.equal(net.stem.conv.weight, before)


def test_residual_blocks_follow_the_rule() -> None:
    net = Supernet(TINY)
    sub = net.subnet(TINY.largest_arch())
    flags = [block.residual for block in sub.blocks]
    # stage 0: 16 -> 8 channels (no skip), then 8 -> 8; stage 1: stride 2 (no skip), then 12 -> 12.
    assert flags == [False, True, True, False, True, True]


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
def test_subnet_exports_to_onnx_and_matches(tmp_path: Path) -> None:
    net = trained_like(TINY)
    sub = net.subnet(some_archs(TINY)[4])
    x = torch.randn(3, 1, 8, 8)
    path = tmp_path / "subnet.onnx"
    torch.onnx.export(sub, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert np.abs(onnx_out - sub(x).numpy()).max() < 1e-4
    torch.jit.trace(sub, (x,))  # traceable with images as the only input


def test_init_is_seeded_and_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    a, b, c = Supernet(TINY, seed=3), Supernet(TINY, seed=3), Supernet(TINY, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["stem.conv.weight"], sc["stem.conv.weight"])
    net = trained_like(TINY)
    state = torch.get_rng_state()
    net.subnet(TINY.largest_arch())
    assert torch.equal(torch.get_rng_state(), state)


def test_zero_init_residual_makes_every_later_block_the_identity() -> None:
    plain, zeroed = Supernet(TINY, seed=2), Supernet(TINY, seed=2, zero_init_residual=True)
    sp, sz = plain.state_dict(), zeroed.state_dict()
    later_scales = {f"stages.{s}.{b}.project.bn.weight" for s in range(2) for b in range(1, TINY.max_depth)}
    assert all(torch.count_nonzero(sz[k]) == 0 and torch.count_nonzero(sp[k]) > 0 for k in later_scales)
    assert all(torch.equal(sp[k], sz[k]) for k in sp if k not in later_scales)  # nothing else changes
    x = torch.randn(4, TINY.in_channels, TINY.image_size, TINY.image_size)
    deep = TINY.largest_arch()
    shallow = {**deep, "depth": [1, 1], "kernel": [k[:1] for k in deep["kernel"]]}
    shallow["expand"] = [e[:1] for e in deep["expand"]]
    for net, train in ((zeroed, False), (zeroed, True), (plain, False)):
        outputs = []
        for arch in (deep, shallow):
            torch.manual_seed(0)  # the same dropout mask in train mode
            with torch.no_grad():
                outputs.append(net.train(train)(x, arch))
        assert torch.equal(*outputs) == (net is zeroed)
    zeroed.reset_parameters(5)  # re-initialising keeps the setting
    assert all(torch.count_nonzero(zeroed.state_dict()[k]) == 0 for k in later_scales)


def test_invalid_arch_is_rejected() -> None:
    net = Supernet(TINY)
    bad = TINY.largest_arch()
    bad["kernel"][0][0] = 4
    with pytest.raises(ValueError, match="kernel"):
        net(torch.randn(1, 1, 8, 8), bad)
    with pytest.raises(ValueError, match="width"):
        net.subnet({**TINY.smallest_arch(), "width": 0.3})


def test_sample_arch_is_valid_and_seeded() -> None:
    net = Supernet(TINY)
    first = [net.sample_arch(np.random.default_rng(5)) for _ in range(2)]
    assert first[0] == first[1]
    TINY.validate_arch(first[0])
