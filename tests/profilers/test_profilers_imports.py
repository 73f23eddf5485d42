"""profilers/ stays below nas/ and search/, keeps torch out, and stays cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import profilers

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(profilers.__file__).resolve().parent

FORBIDDEN = ("torch", "search", "nas")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


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
from profilers import OnnxRuntimeLatency, count_params_and_flops
path = matmul_chain(pathlib.Path(tempfile.mkdtemp()) / "m.onnx", width=4, depth=1)
OnnxRuntimeLatency(warmup_runs=0, timed_runs=30).measure(path, (4,))
count_params_and_flops(path, (4,))
bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)
assert not bad, bad
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_source_file_imports_a_forbidden_package() -> None:
    """Also catches imports inside functions, which an import-time check would miss."""
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_public_names_are_exported() -> None:
    for name in profilers.__all__:
        assert hasattr(profilers, name), name
    assert not any(name.startswith("_") for name in profilers.__all__)
