"""Few-shot latency transfer: exact on devices that are functions of others, honest about its own error,
and clear about what it cannot use or predict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from profilers import (
    MIN_TRANSFER_POINTS,
    LatencyTransfer,
    TransferError,
    TransferFit,
    fit_latency_transfer,
)

ARCHS = [f"arch{i:03d}" for i in range(200)]


def _tables(seed: int = 0) -> dict[str, dict[str, float]]:
    """Three unrelated devices with latencies between about 1 and 30 ms."""
    rng = np.random.default_rng(seed)
    return {
        name: dict(zip(ARCHS, np.exp(rng.uniform(0.0, 3.4, len(ARCHS))).tolist(), strict=True))
        for name in ("gpu", "cpu", "phone")
    }


def test_scaled_copy_of_one_device_is_recovered_exactly() -> None:
    tables = _tables()
    new = {k: 2.5 * v for k, v in tables["cpu"].items()}
    measured = {k: new[k] for k in ARCHS[:6]}
    transfer = fit_latency_transfer(measured, sources=tables)
    assert transfer.fit.source_weights["cpu"] == pytest.approx(1.0, abs=1e-9)
    assert transfer.fit.source_weights["gpu"] == pytest.approx(0.0, abs=1e-9)
    assert transfer.fit.source_weights["phone"] == pytest.approx(0.0, abs=1e-9)
    assert transfer.fit.intercept == pytest.approx(math.log(2.5), abs=1e-9)
    predicted = transfer.predict_many(ARCHS[6:])
    np.testing.assert_allclose(predicted, [new[k] for k in ARCHS[6:]], rtol=1e-9)
    assert transfer.fit.loo_mape_pct == pytest.approx(0.0, abs=1e-6)
    assert transfer.fit.loo_within_10pct == 1.0
    assert transfer.fit.loo_spearman == pytest.approx(1.0)
    assert transfer.fit.method == "sources"
    assert transfer.fit.n_points == 6


def test_power_law_mixture_of_two_devices_is_recovered() -> None:
    # latency = 0.5 * gpu**0.7 * phone**0.4: linear in the logs with non-negative weights.
    tables = _tables(1)
    new = {k: 0.5 * tables["gpu"][k] ** 0.7 * tables["phone"][k] ** 0.4 for k in ARCHS}
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:10]}, sources=tables)
    assert transfer.fit.source_weights == pytest.approx({"gpu": 0.7, "cpu": 0.0, "phone": 0.4}, abs=1e-8)
    assert transfer.predict(ARCHS[150]) == pytest.approx(new[ARCHS[150]], rel=1e-8)


def test_weights_stay_non_negative_on_an_anti_correlated_device() -> None:
    tables = _tables(2)
    new = {k: 100.0 / v for k, v in tables["gpu"].items()}  # slower where the gpu is faster
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:20]}, sources=tables)
    assert all(w >= 0.0 for w in transfer.fit.source_weights.values())
    assert transfer.fit.source_weights["gpu"] == 0.0
    # No table explains it: the leave-one-out error says so rather than claiming a good fit.
    assert transfer.fit.loo_mape_pct > 20.0
    assert transfer.fit.loo_within_10pct < 0.5


def test_noisy_measurements_give_a_leave_one_out_error_near_the_noise() -> None:
    rng = np.random.default_rng(3)
    tables = _tables(3)
    noise = np.exp(rng.normal(0.0, 0.05, len(ARCHS)))
    new = {k: 1.7 * tables["phone"][k] * float(e) for k, e in zip(ARCHS, noise, strict=True)}
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:40]}, sources=tables)
    assert 0.02 < transfer.fit.loo_rms_log < 0.1  # the noise is 0.05
    rest = transfer.predict_many(ARCHS[40:])
    truth = np.array([new[k] for k in ARCHS[40:]])
    assert np.mean(np.abs(rest / truth - 1.0)) < 0.08
    assert transfer.fit.loo_spearman > 0.95


def test_features_alone_fit_an_additive_latency() -> None:
    # Each arch is 4 choices among 3 ops; latency multiplies a cost per op: log-linear in a one-hot.
    rng = np.random.default_rng(4)
    cost = np.log([1.0, 2.0, 4.0])
    choices = {k: rng.integers(0, 3, 4) for k in ARCHS}
    features = {k: np.eye(3)[c].ravel().tolist() for k, c in choices.items()}
    new = {k: float(np.exp(0.5 + cost[c].sum())) for k, c in choices.items()}
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:30]}, features=features)
    assert transfer.fit.method == "features"
    assert transfer.fit.source_weights == {}
    assert transfer.fit.feature_alpha is not None
    predicted = transfer.predict_many(ARCHS[30:])
    truth = np.array([new[k] for k in ARCHS[30:]])
    assert np.mean(np.abs(predicted / truth - 1.0)) < 0.05
    assert transfer.fit.loo_within_10pct > 0.9


def test_features_beside_tables_are_dropped_when_they_do_not_help() -> None:
    tables = _tables(5)
    new = {k: 3.0 * v for k, v in tables["gpu"].items()}
    rng = np.random.default_rng(5)
    noise_features = {k: rng.normal(size=4).tolist() for k in ARCHS}
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:12]}, sources=tables, features=noise_features)
    assert transfer.fit.feature_alpha is None
    assert transfer.features is None
    assert transfer.fit.method == "sources+features"
    assert transfer.predict(ARCHS[100]) == pytest.approx(new[ARCHS[100]], rel=1e-9)


def test_features_correct_what_the_tables_miss() -> None:
    # The new device is the gpu times an extra cost of one op the gpu does not have.
    tables = _tables(6)
    rng = np.random.default_rng(6)
    has_op = {k: float(rng.integers(0, 2)) for k in ARCHS}
    features = {k: [has_op[k], 1.0 - has_op[k]] for k in ARCHS}
    new = {k: tables["gpu"][k] * (3.0 if has_op[k] else 1.0) for k in ARCHS}
    measured = {k: new[k] for k in ARCHS[:15]}
    without = fit_latency_transfer(measured, sources=tables)
    with_features = fit_latency_transfer(measured, sources=tables, features=features)
    assert with_features.fit.feature_alpha is not None
    assert with_features.fit.loo_mape_pct < without.fit.loo_mape_pct / 2
    err = np.abs(with_features.predict_many(ARCHS[15:]) / np.array([new[k] for k in ARCHS[15:]]) - 1.0)
    assert np.mean(err) < 0.1


def test_predict_table_covers_every_arch_of_the_used_tables() -> None:
    tables = _tables()
    del tables["phone"][ARCHS[-1]]  # phone gets no weight: its gap does not matter
    new = {k: 2.0 * v for k, v in tables["cpu"].items()}
    transfer = fit_latency_transfer({k: new[k] for k in ARCHS[:5]}, sources=tables)
    table = transfer.predict_table()
    assert list(table) == ARCHS
    assert table[ARCHS[-1]] == pytest.approx(new[ARCHS[-1]])
    assert set(transfer.sources) == {"cpu"}


def test_result_is_frozen_and_json_ready() -> None:
    tables = _tables()
    transfer = fit_latency_transfer({k: tables["cpu"][k] for k in ARCHS[:5]}, sources=tables)
    assert isinstance(transfer, LatencyTransfer)
    assert isinstance(transfer.fit, TransferFit)
    with pytest.raises(AttributeError):
        transfer.fit.intercept = 0.0  # type: ignore[misc]
    data = transfer.fit.to_dict()
    assert data["n_points"] == 5
    assert data["source_weights"] == pytest.approx({"gpu": 0.0, "cpu": 1.0, "phone": 0.0}, abs=1e-9)


def test_constant_measurements_leave_spearman_undefined_not_invented() -> None:
    tables = _tables()
    transfer = fit_latency_transfer(dict.fromkeys(ARCHS[:5], 5.0), sources=tables)
    assert transfer.predict(ARCHS[50]) == pytest.approx(5.0)
    assert math.isnan(transfer.fit.loo_spearman)
    assert transfer.fit.to_dict()["loo_spearman"] is None


# -- errors ----------------------------------------------------------------------------------------------


def test_too_few_points_is_refused_with_the_minimum() -> None:
    tables = _tables()
    with pytest.raises(TransferError, match=f"at least {MIN_TRANSFER_POINTS} measured archs"):
        fit_latency_transfer({k: tables["cpu"][k] for k in ARCHS[: MIN_TRANSFER_POINTS - 1]}, sources=tables)


def test_neither_tables_nor_features_is_refused() -> None:
    with pytest.raises(TransferError, match="sources.*features"):
        fit_latency_transfer({"a": 1.0, "b": 2.0, "c": 3.0})


def test_unknown_arch_names_the_arch_and_the_table() -> None:
    tables = _tables()
    transfer = fit_latency_transfer({k: 2.0 * tables["cpu"][k] for k in ARCHS[:5]}, sources=tables)
    assert not transfer.known("no-such-arch")
    assert transfer.known(ARCHS[10])
    with pytest.raises(TransferError, match=r"'no-such-arch'.*table of 'cpu'"):
        transfer.predict("no-such-arch")


def test_measured_arch_missing_from_a_table_is_refused() -> None:
    tables = _tables()
    del tables["gpu"][ARCHS[2]]
    with pytest.raises(TransferError, match=rf"table of 'gpu' lacks measured arch\(s\) '{ARCHS[2]}'"):
        fit_latency_transfer({k: 1.0 + i for i, k in enumerate(ARCHS[:5])}, sources=tables)


def test_missing_feature_vector_is_refused() -> None:
    features = {k: [1.0, 0.0] for k in ARCHS[1:]}
    with pytest.raises(TransferError, match=f"no feature vector for measured arch.*'{ARCHS[0]}'"):
        fit_latency_transfer({k: 1.0 + i for i, k in enumerate(ARCHS[:5])}, features=features)


def test_unknown_arch_with_features_is_refused() -> None:
    features = {k: [float(i % 3 == 0), float(i % 3 == 1)] for i, k in enumerate(ARCHS)}
    transfer = fit_latency_transfer({k: 1.0 + (i % 3) for i, k in enumerate(ARCHS[:9])}, features=features)
    with pytest.raises(TransferError, match="no feature vector"):
        transfer.predict("elsewhere")


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_non_positive_or_non_finite_latency_is_refused(bad: float) -> None:
    tables = _tables()
    measured = {k: tables["cpu"][k] for k in ARCHS[:5]}
    measured[ARCHS[3]] = bad
    with pytest.raises(TransferError, match=f"latency of '{ARCHS[3]}'.*positive finite"):
        fit_latency_transfer(measured, sources=tables)
    tables["phone"][ARCHS[1]] = bad
    with pytest.raises(TransferError, match="table of 'phone'.*positive finite"):
        fit_latency_transfer({k: tables["cpu"][k] for k in ARCHS[:5]}, sources=tables)


def test_ragged_features_are_refused() -> None:
    features = {k: [1.0] * (1 + i % 2) for i, k in enumerate(ARCHS)}
    with pytest.raises(TransferError, match="one length"):
        fit_latency_transfer({k: 1.0 + i for i, k in enumerate(ARCHS[:5])}, features=features)
