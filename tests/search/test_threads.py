"""A strategy thinks with BLAS on one thread, and the process's BLAS setting comes back afterwards."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from search import Choice, Objective, RandomStrategy, Space, Study
from search._threads import one_blas_thread


def blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_the_limit_holds_inside_and_the_setting_comes_back_after():
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    with threadpool_limits(limits=3, user_api="blas"):
        assert blas_threads() == {3}
        with one_blas_thread():
            assert blas_threads() == {1}
            with one_blas_thread():
                assert blas_threads() == {1}
            assert blas_threads() == {1}  # the inner block leaves the outer one's limit in place
        assert blas_threads() == {3}


def test_overlapping_blocks_in_two_threads_restore_the_setting_once_both_leave():
    # thread A enters, thread B enters, A leaves, B leaves: a limiter per block would have B save A's
    # limit of 1 and put it back last, leaving the process on one thread for good
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, set[int]] = {}

    def first() -> None:
        with one_blas_thread():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second() -> None:
        a_in.wait(10)
        with one_blas_thread():
            b_in.set()
            a_out.wait(10)
            seen["b after a left"] = blas_threads()

    # the process's own setting (OpenBLAS ignores a limit set from another thread while the main thread
    # holds one of its own, so this test cannot raise the count itself)
    before = blas_threads()
    if before == {1}:
        pytest.skip("BLAS runs on one thread on this machine: there is no setting to restore")
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen["b after a left"] == {1}
    assert blas_threads() == before


def test_the_study_asks_and_tells_its_strategy_on_one_blas_thread():
    class Recording(RandomStrategy):
        def ask(self):
            seen.append(("ask", blas_threads()))
            return super().ask()

        def tell(self, trial):
            seen.append(("tell", blas_threads()))
            super().tell(trial)

    seen: list[tuple[str, set[int]]] = []
    with threadpool_limits(limits=3, user_api="blas"):
        study = Study(space=Space({"k": Choice([1, 2, 3])}), objectives=[Objective("f")], strategy=Recording(seed=0))
        study.optimize(lambda t: {"f": t.params["k"]}, n_trials=3)
        assert blas_threads() == {3}
    assert [kind for kind, _ in seen] == ["ask", "tell"] * 3
    assert all(threads == {1} for _, threads in seen)
