"""profilers/ stays below nas/ and search/, loads heavy libraries (torch, ONNX, pynvml) only when a measurement
needs them, and stays cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import profilers

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(profilers.__file__).resolve().parent

FORBIDDEN = ("search", "nas")
# Imported only inside the functions that use them, never when a module is imported.
LAZY = ("torch", "onnx", "onnxruntime", "pynvml", "codecarbon")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_import_profilers_loads_no_forbidden_or_heavy_module() -> None:
    code = (
        "import profilers, sys\n"
        "bad = sorted(m for m in ('torch', 'search', 'nas', 'onnx', 'onnxruntime') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_measuring_and_counting_do_not_load_torch_or_upper_layers() -> None:
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import tempfile, pathlib
from profiler_models import matmul_chain
from hardware_profiles import HardwareProfile
from profilers import (
    OnnxRuntimeLatency, count_params_and_flops, energy_profiler_from_profile, estimate_peak_memory,
    measure_energy,
)
path = matmul_chain(pathlib.Path(tempfile.mkdtemp()) / "m.onnx", width=4, depth=1)
latency = OnnxRuntimeLatency(warmup_runs=0, timed_runs=30)
latency.measure(path, (4,))
count_params_and_flops(path, (4,))
estimate_peak_memory(path, (4,))
profile = HardwareProfile(name="p", idle_w=1.0, tdp_w=2.0, energy_min_duration_s=0.01)
energy = energy_profiler_from_profile(profile, powercap_root="/nonexistent")
measure_energy(path, (4,), latency=latency, energy=energy)
bad = sorted(m for m in {(*FORBIDDEN, "torch", "pynvml", "codecarbon")!r} if m in sys.modules)
assert not bad, bad
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _imports(tree: ast.AST, *, in_function: bool = False) -> list[tuple[str, bool]]:
    """Every imported top-level package with whether the import runs only inside a function (or only for
    type checkers, under ``if TYPE_CHECKING:``)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], in_function))
        lazy = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            lazy = True
        found += _imports(node, in_function=lazy)
    return found


def test_no_source_file_imports_a_forbidden_package() -> None:
    """Also catches imports inside functions, which an import-time check would miss."""
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        for name, _ in _imports(ast.parse(source.read_text(encoding="utf-8"))):
            if name in FORBIDDEN:
                offenders.append(f"{source.name}: {name}")
    assert not offenders


def test_heavy_libraries_are_imported_only_inside_functions() -> None:
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        for name, lazy in _imports(ast.parse(source.read_text(encoding="utf-8"))):
            if name in LAZY and not lazy:
                offenders.append(f"{source.name}: {name}")
    assert not offenders


def test_the_import_checks_see_lazy_and_eager_imports() -> None:
    tree = ast.parse(
        "import torch\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import onnx\n"
        "def f():\n    import pynvml\n    from nas import x\n"
    )
    assert sorted(_imports(tree)) == [
        ("nas", True),
        ("onnx", True),
        ("pynvml", True),
        ("torch", False),
        ("typing", False),
    ]


def test_public_names_are_exported() -> None:
    for name in profilers.__all__:
        assert hasattr(profilers, name), name
    assert not any(name.startswith("_") for name in profilers.__all__)
