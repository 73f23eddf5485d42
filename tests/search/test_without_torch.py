"""``import search`` and every strategy but the BoTorch backend work where torch cannot be imported."""

import subprocess
import sys
import textwrap

CODE = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        BLOCKED = ("torch", "botorch", "gpytorch", "linear_operator", "pyro")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoTorch())

    import search
    from search import BayesStrategy, Choice, Float, Integer, Objective, Space, Study

    space = Space({"k": Choice([3, 5, 7]), "d": Integer(1, 4), "lr": Float(1e-3, 1e-1, log=True)})
    for name, cls in sorted(search.STRATEGIES.items()):
        study = Study(space=space, objectives=[Objective("a"), Objective("b")], strategy=cls(seed=0))
        study.optimize(lambda t: {"a": t.params["k"] * t.params["lr"], "b": t.params["d"]}, n_trials=14)
        print(name, len(study.trials))
    try:
        BayesStrategy(backend="botorch")
    except ImportError as e:
        print("botorch:", e)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in NoTorch.BLOCKED)
    print("loaded:", loaded)
    """
)


def test_every_strategy_runs_without_torch_and_the_botorch_backend_names_its_extra():
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    from search import STRATEGIES

    for name in STRATEGIES:
        assert f"{name} 14" in out.stdout, out.stdout
    assert "botorch: BayesStrategy(backend='botorch') needs BoTorch: pip install hwnas[bayes]" in out.stdout
    assert "loaded: []" in out.stdout
