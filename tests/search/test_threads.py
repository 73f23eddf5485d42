"""A strategy thinks with BLAS on one thread, and the process's BLAS setting comes back afterwards."""

import threading

import numpy as np
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


def test_overlapping_blocks_in_two_threads_limit_once_and_restore_once_both_leave(monkeypatch):
    # thread A enters, thread B enters, A leaves, B leaves: a limiter per block would have B save A's limit
    # of 1 and put it back last, leaving the process on one thread for good. The controller is a recording
    # stand-in: which thread OpenBLAS applies a setting from is OpenBLAS's business, the bookkeeping is ours.
    import search._threads as threads_module

    calls: list[str] = []

    class Limiter:
        def restore_original_limits(self) -> None:
            calls.append("restore")

    class Controller:
        def limit(self, *, limits: int, user_api: str) -> Limiter:
            calls.append(f"limit {limits} {user_api}")
            return Limiter()

    monkeypatch.setattr(threads_module, "_controller", Controller())
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, list[str]] = {}

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
            seen["b after a left"] = list(calls)

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(20)
    assert seen["b after a left"] == ["limit 1 blas"]  # still limited while B is inside
    assert calls == ["limit 1 blas", "restore"]  # limited once, restored once, when the last block left


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
        study = Study(
            space=Space({"k": Choice([1, 2, 3])}), objectives=[Objective("f")], strategy=Recording(seed=0)
        )
        study.optimize(lambda t: {"f": t.params["k"]}, n_trials=3)
        assert blas_threads() == {3}
    assert [kind for kind, _ in seen] == ["ask", "tell"] * 3
    assert all(threads == {1} for _, threads in seen)
