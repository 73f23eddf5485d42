"""Shared fixtures: small and large ONNX models built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import pytest
from profiler_models import matmul_chain


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 4 x 4 MatMul: about 16 MACs."""
    return matmul_chain(tmp_path_factory.mktemp("models") / "tiny.onnx", width=4, depth=1)


@pytest.fixture(scope="session")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen 512 x 512 MatMuls: about 4.2 M MACs, hundreds of times the tiny model's work."""
    return matmul_chain(tmp_path_factory.mktemp("models") / "big.onnx", width=512, depth=16)
