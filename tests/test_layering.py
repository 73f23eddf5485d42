"""DESIGN.md's layering: search/ never imports torch/onnx/nas/profilers; profilers/ never imports search/nas."""

import subprocess
import sys

import pytest

CHECK = "import {pkg}, sys; bad = sorted(m for m in {forbidden} if m in sys.modules); print(bad); assert not bad, bad"


@pytest.mark.parametrize(
    "pkg, forbidden",
    [
        ("search", ["torch", "onnx", "onnxruntime", "nas", "profilers"]),
        ("profilers", ["search", "nas", "torch"]),
        ("hardware_profiles", ["search", "nas", "torch", "profilers"]),
    ],
)
def test_package_does_not_import_forbidden_layers(pkg, forbidden):
    code = CHECK.format(pkg=pkg, forbidden=forbidden)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
