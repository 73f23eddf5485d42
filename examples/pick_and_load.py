"""Pick the most accurate model of a finished run under a latency bound, load it in PyTorch, and check that it
gives the outputs of its ONNX file.

    hwnas search                      # the demo: runs/demo
    python examples/pick_and_load.py runs/demo 5

The same pick from the command line: hwnas pick runs/demo --max latency_ms=5
"""

import sys

import numpy as np
import onnxruntime as ort
import torch

import nas

run = nas.load_run(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
bound = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
try:
    best = run.pick(max={"latency_ms": bound}, by="error")
except nas.deploy.NoModelMeetsBounds as e:
    sys.exit(str(e))  # names the bound no model meets and the closest model
print(f"model {best.id}: error {best.metrics['error']:.2f} %, latency {best.metrics['latency_ms']:.3g} ms")
print(f"ONNX file: {best.onnx}")

net = run.load_model(best.id)  # the subnet with batch norms recalibrated, as it was exported
session = ort.InferenceSession(str(best.onnx), providers=["CPUExecutionProvider"])
shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
with torch.no_grad():
    diff = np.abs(net(torch.from_numpy(x)).numpy() - session.run(None, {session.get_inputs()[0].name: x})[0]).max()
print(f"max |torch - onnx| = {diff:.1e}")
