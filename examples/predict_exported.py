"""Classify Fashion-MNIST test images with an exported model, in plain PyTorch (no AIsaac, no model class).

    python examples/predict_exported.py model.pt2 --n 8
"""
import argparse
import gzip
import json
import os

import numpy as np
import torch

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("program", help="a .pt2 file written by trainer.export")
p.add_argument("--n", type=int, default=8, help="how many test images")
p.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
p.add_argument("--save", default=None, help="write the logits to this file (torch.save)")
args = p.parse_args()

info = {"aisaac.json": ""}
model = torch.export.load(args.program, extra_files=info).module()
info = json.loads(info["aisaac.json"])
print("input:", info["input"], "| preprocessing:", info["preprocessing"])

# The raw test images (idx format: a 16-byte header, then one byte a pixel), preprocessed as the program says.
with gzip.open(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")) as f:
    pixels = np.frombuffer(f.read(16 + args.n * 784)[16:], dtype=np.uint8).reshape(args.n, 1, 28, 28)
x = (torch.from_numpy(pixels.astype(np.float32)) / 255 - 0.28) / 0.35
with torch.no_grad(): logits = model(x)
print("predicted:", [info["classes"][i] for i in logits.argmax(1).tolist()])
if args.save: torch.save(logits, args.save)
