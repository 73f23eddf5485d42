"""Classify one image file with a model exported by hwnas, using only onnxruntime, numpy and Pillow.

Every exported model carries its preprocessing and class names in its ONNX metadata, so this script needs
nothing else from the run:

    python examples/classify.py runs/demo/models/12.onnx photo.png
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def classify(model_path: str, image_path: str) -> tuple[str, float]:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    channels, height, width = json.loads(meta["hwnas.input_shape"])
    norm = json.loads(meta["hwnas.normalize"])
    names = json.loads(meta.get("hwnas.class_names", "[]"))
    with Image.open(image_path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        side = min(image.size)  # the centred square, resized: as the model's validation images were
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
        pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels)
    # The model saw raw pixels divided by their largest value (hwnas.pixel_scale: 255 for 8-bit images, 16 for
    # the digits), i.e. values in [0, 1]; an 8-bit image file gets there by / 255.
    x = pixels / 255.0
    x = (x - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)
    logits = session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    best = int(probs.argmax())
    return (names[best] if best < len(names) else str(best)), float(probs[best])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python examples/classify.py MODEL.onnx IMAGE")
    label, p = classify(sys.argv[1], sys.argv[2])
    print(f"{label} ({100 * p:.1f} %)")
