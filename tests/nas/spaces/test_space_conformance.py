"""The contract of :class:`nas.spaces.SearchSpace`, checked for every built-in space and the example ResNet space.

A space added to ``nas.spaces.BUILTIN_SPACES`` is covered here automatically; a built-in space whose module
does not import yet is skipped with the reason. Each space is built tiny (8x8 grayscale images, 10 classes).
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import TensorDataset

from hardware_profiles import load_profile
from nas.data import from_datasets
from nas.run._evaluator import CandidateEvaluator
from nas.run._experiment import count_macs
from nas.run._export import ARCH_METADATA_KEY, export_onnx, read_metadata, verify_onnx
from nas.run._recipe import EvaluatorRecipe
from nas.spaces import (
    ElasticSupernet,
    SearchSpace,
    SpaceError,
    builtin_space_names,
    network_map,
    resolve_space,
    space_for_input,
    space_from_dict,
    space_ref,
    space_to_dict,
)
from nas.training import recalibrate_bn
from search import BayesStrategy, Objective, Study

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = "examples.resnet_space:ResNetSpace"
IN_CHANNELS, SIZE, CLASSES = 1, 8, 10

#: Options that keep a space tiny; a space not named here is built with its own defaults for 8x8 images.
TINY_OPTIONS: dict[str, dict] = {
    "mobilenet": {"stage_channels": [8, 12], "stage_strides": [1, 2], "head_channels": 32},
    EXAMPLE: {"stage_channels": [8, 16], "depth_choices": [1, 2]},
}
CASES = [*builtin_space_names(), EXAMPLE]


@pytest.fixture(scope="module", autouse=True)
def example_importable() -> Iterator[None]:
    """The example lives in ``examples/`` at the repository's root, as a user's module in their directory."""
    sys.path.insert(0, str(REPO))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    sys.path.remove(str(REPO))


@dataclass
class Case:
    ref: str
    space: SearchSpace
    supernet: ElasticSupernet


def trained_like(space: SearchSpace, seed: int = 0) -> ElasticSupernet:
    """A supernet whose weights and normalisation statistics are all non-trivial, so that copying any of
    them wrongly into a subnet changes its output."""
    net = space.build_supernet(seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
        net.train()
        rng = np.random.default_rng(seed)
        for _ in range(3):
            x = torch.randn(16, IN_CHANNELS, SIZE, SIZE, generator=gen)
            net(x * 2 + 1, space.random_arch(rng))
    return net.eval()


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> Case:
    ref = request.param
    try:
        resolve_space(ref)
    except SpaceError as e:
        if ref in builtin_space_names() and "import" in str(e):
            pytest.skip(f"built-in space {ref!r} does not import yet: {e}")
        raise
    space = space_for_input(ref, IN_CHANNELS, SIZE, CLASSES, TINY_OPTIONS.get(ref))
    return Case(ref, space, trained_like(space))


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(96, IN_CHANNELS, SIZE, SIZE, generator=gen) * 2 + 0.5
    labels = torch.arange(96) % CLASSES
    return from_datasets(
        TensorDataset(images[:64], labels[:64]), TensorDataset(images[64:], labels[64:]), name="random"
    )


def archs(space: SearchSpace, count: int = 4, seed: int = 7) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [space.largest_arch(), space.smallest_arch()] + [space.random_arch(rng) for _ in range(count)]


def images(n: int = 4, seed: int = 5) -> torch.Tensor:
    return torch.randn(n, IN_CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def outputs(case: Case, arch: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return case.supernet.subnet(arch).eval()(x)


# -- the network ---------------------------------------------------------------------------------------


def test_subnet_computes_what_the_supernet_does(case: Case) -> None:
    x = images()
    for arch in archs(case.space):
        with torch.no_grad():
            expected = case.supernet(x, arch)
            got = case.supernet.subnet(arch).eval()(x)
        assert got.shape == (len(x), CLASSES)
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (arch, (got - expected).abs().max())


def test_subnet_is_standalone(case: Case) -> None:
    arch = case.space.largest_arch()
    x = images()
    with torch.no_grad():
        before = case.supernet(x, arch).clone()
        sub = case.supernet.subnet(arch)
        assert not any(isinstance(m, ElasticSupernet) for m in sub.modules())
        for param in sub.parameters():  # shares no storage: changing the copy leaves the supernet alone
            param.add_(1.0)
        assert torch.equal(case.supernet(x, arch), before)


def test_weights_are_seeded(case: Case) -> None:
    a, b = case.space.build_supernet(seed=3), case.space.build_supernet(seed=3)
    c = case.space.build_supernet(seed=4)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a)


# -- the archs -----------------------------------------------------------------------------------------


def test_archs_are_canonical_json_and_round_trip(case: Case) -> None:
    space = case.space
    search = space.search_space()
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = search.sample(rng)
        arch = space.arch_from_params(params)
        space.validate_arch(arch)
        assert json.loads(json.dumps(arch)) == arch
        back = space.params_from_arch(arch)
        assert set(back) == set(search)
        assert space.arch_from_params(back) == arch
        assert space.params_from_arch(space.arch_from_params(back)) == back  # one canonical point per arch


def test_the_network_map_a_search_hands_its_study_sends_each_point_to_its_arch(case: Case) -> None:
    space = case.space
    network = network_map(space)
    # the study's own check (idempotent, a point of the space) passes
    Study(space=space.search_space(), objectives=[Objective("error")], strategy=BayesStrategy(), network=network)
    rng = np.random.default_rng(2)
    moved = 0
    for _ in range(20):
        params = space.search_space().sample(rng)
        mapped = network(params)
        assert space.arch_from_params(mapped) == space.arch_from_params(params)
        moved += mapped != params
    assert moved > 0  # some drawn points had inactive choices away from their fixed value


def test_inactive_choices_do_not_change_the_arch_and_active_ones_change_the_network(case: Case) -> None:
    space = case.space
    search = space.search_space()
    rng = np.random.default_rng(1)
    x = images()
    compared = 0
    for _ in range(3):
        params = search.sample(rng)
        arch = space.arch_from_params(params)
        active, inactive = [], []
        for name in search:
            other = [v for v in getattr(search[name], "values", ()) if v != params[name]]
            if other:
                changed = space.arch_from_params({**params, name: other[0]}) != arch
                (active if changed else inactive).append((name, other[0]))
        # every inactive choice changed at once still gives the same arch
        assert space.arch_from_params({**params, **dict(inactive)}) == arch
        # two different archs are two different networks
        base = outputs(case, arch, x)
        for name, value in active[:3]:
            other_arch = space.arch_from_params({**params, name: value})
            assert not torch.allclose(outputs(case, other_arch, x), base, atol=1e-6), (name, value)
            compared += 1
    assert compared > 0


def test_extremes_validation_and_seeded_sampling(case: Case) -> None:
    space = case.space
    for arch in (space.largest_arch(), space.smallest_arch()):
        space.validate_arch(arch)
        assert space.arch_from_params(space.params_from_arch(arch)) == arch
    assert space.num_subnets() >= 2 and space.largest_arch() != space.smallest_arch()
    with pytest.raises((ValueError, TypeError, KeyError)):
        space.validate_arch({})
    one = [space.random_arch(np.random.default_rng(11)) for _ in range(2)]
    assert one[0] == one[1]
    assert isinstance(space.describe(), str) and space.describe()


# -- what runs, resumes, exports and workers rely on -----------------------------------------------------


def test_onnx_export_checks_and_matches(case: Case, tmp_path: Path) -> None:
    for i, arch in enumerate(archs(case.space, count=1)[1:]):
        model = case.supernet.subnet(arch).eval()
        path = export_onnx(
            model,
            tmp_path / f"{i}.onnx",
            (IN_CHANNELS, SIZE, SIZE),
            metadata={ARCH_METADATA_KEY: json.dumps(arch)},
        )
        result = verify_onnx(model, path, (IN_CHANNELS, SIZE, SIZE), batch_size=3)
        assert result.checker_ok, result.checker_message
        assert result.ort_output_shape == (3, CLASSES) and result.ok(atol=1e-4), result.max_abs_diff
        assert json.loads(read_metadata(path)[ARCH_METADATA_KEY]) == arch


def test_batch_norm_recalibration(case: Case, data) -> None:
    model = case.supernet.subnet(case.space.smallest_arch()).eval()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    before = copy.deepcopy(model.state_dict())
    x = images()
    with torch.no_grad():
        out_before = model(x)
    recalibrate_bn(model, data.train, num_samples=32)
    assert not model.training
    after = model.state_dict()
    stats = {n for n, m in model.named_modules() if isinstance(m, _BatchNorm)}
    for key, value in after.items():
        if key.rpartition(".")[0] not in stats:  # only batch-norm statistics may change
            assert torch.equal(value, before[key]), key
    with torch.no_grad():
        out_after = model(x)
    if norms:
        assert any(not torch.equal(after[k], before[k]) for k in after if k.endswith("running_mean"))
        assert torch.isfinite(out_after).all()
    else:
        assert torch.equal(out_after, out_before)


def test_recalibration_changes_nothing_without_batch_norm(data) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(IN_CHANNELS * SIZE * SIZE, CLASSES), nn.LayerNorm(CLASSES))
    before = copy.deepcopy(model.state_dict())
    recalibrate_bn(model, data.train, num_samples=32)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_json_round_trip_rebuilds_the_space_and_its_supernet(case: Case) -> None:
    stored = json.loads(json.dumps(space_to_dict(case.space)))
    assert stored["space"] == case.ref == space_ref(case.space)
    rebuilt = space_from_dict(stored)
    assert rebuilt == case.space and type(rebuilt) is type(case.space)
    assert type(case.space).from_dict(case.space.to_dict()) == case.space
    net = rebuilt.build_supernet(seed=1)
    net.load_state_dict(case.supernet.state_dict())
    arch = case.space.random_arch(np.random.default_rng(2))
    x = images()
    with torch.no_grad():
        assert torch.equal(net.eval()(x, arch), case.supernet(x, arch))


def test_a_worker_rebuilds_the_evaluator_and_scores_alike(case: Case, data, tmp_path: Path) -> None:
    profile = load_profile("local-cpu")
    recipe = EvaluatorRecipe.from_supernet(case.supernet, data=data, profile=profile, calib_samples=32)
    remote = pickle.loads(pickle.dumps(recipe)).build(work_dir=tmp_path / "w")  # as Dask ships it
    local = CandidateEvaluator(
        supernet=case.supernet, data=data, profile=profile, calib_samples=32, work_dir=tmp_path / "l"
    )
    arch = case.space.random_arch(np.random.default_rng(4))
    mine, theirs = local.score(arch), remote.score(arch)
    for metric in ("error", "params", "flops"):
        assert theirs[metric] == pytest.approx(mine[metric], abs=1e-9), metric


def test_lookup_table_parts_sum_to_the_model(case: Case) -> None:
    space = case.space
    if not space.supports_lut:
        pytest.skip(f"{case.ref} defines no lookup-table parts")
    shape = (IN_CHANNELS, SIZE, SIZE)
    distinct = space.distinct_parts(shape)
    for arch in archs(space, count=2):
        parts = space.arch_parts(arch, shape)
        assert parts and set(parts) <= set(distinct)
        macs = params = 0
        for key in parts:
            module, part_shape = space.build_part(case.supernet, distinct[key])
            macs += count_macs(module, tuple(part_shape))
            params += sum(p.numel() for p in module.parameters())
        model = case.supernet.subnet(arch)
        assert macs == count_macs(model, shape)
        assert params == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_a_run_resumes_and_re_exports(case: Case, data, tmp_path: Path) -> None:
    from nas import Experiment, load_config
    from nas.run._config import resume_config
    from nas.run._front import reexport
    from search import SQLiteStorage

    cfg = load_config(
        overrides={
            "name": "run",
            "out": str(tmp_path),
            "threads": 1,
            "supernet.epochs": 1,
            "search.trials": 2,
            "search.population": 2,
            "search.objectives": ["error", "params"],
            "evaluation.calib_samples": 32,
            "tracking.enabled": False,
            "space.name": case.ref,
            "space.options": TINY_OPTIONS.get(case.ref, {}),
        }
    )
    first = Experiment(cfg, data=data).run()
    run = first.run_dir
    checkpoint = (run / "supernet.pt").read_bytes()
    space_json = json.loads((run / "space.json").read_text())
    assert space_json["space"] == case.ref
    again = Experiment(resume_config(run, {"search.trials": 3}), data=data, resume=True).run()
    assert again.n_trials == 3
    assert (run / "supernet.pt").read_bytes() == checkpoint  # not trained again
    assert json.loads((run / "space.json").read_text()) == space_json
    storage = SQLiteStorage(run / "study.db")
    try:
        trials = storage.trials()
    finally:
        storage.close()
    assert [t.number for t in trials] == [0, 1, 2]
    model = json.loads((run / "pareto.json").read_text())["models"][0]
    path, diff = reexport(run, model["id"], out=tmp_path / "again.onnx", data=data)  # data from Python
    assert path.is_file() and diff < 1e-3
