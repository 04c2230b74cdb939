#!/usr/bin/env python3
"""Writes the ONNX test fixtures into test/fixtures/ (seeded, deterministic).

  mlp.onnx           64-16-10 MLP (Linear, ReLU, Linear, Softmax); input "input" [batch, 64],
                     output "probabilities" [batch, 10]; dynamic batch axis.
  mlp.weights.json   the same weights as plain lists: {"layers": [{"kernel": [in][out], "bias": [out]}, ...]}
                     (kernel is the transpose of torch's Linear.weight).
  mlp.samples.json   5 seeded input rows in [0, 1) and torch's output probabilities for them.
  badshape.onnx      a model with a fixed input of shape [3, 4, 5] and no batch axis, which heist
                     must refuse to serve.

Weights and sample inputs are rounded to 4 decimals so the JSON stays small; every number in the
JSON is the shortest decimal that reads back as the exact float32 in the ONNX file.

Run with Debian's PyTorch (the python3 on PATH may lack it):
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/make-onnx-fixtures.py
"""
import inspect
import json
import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures")
OPSET = 13


def f32(values):
    """Nested lists of the shortest decimals that round-trip to the given float32 values."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 0:
        return float(np.format_float_positional(arr[()], unique=True, trim="-"))
    return [f32(v) for v in arr]


def export(model, example, path, input_names, output_names, dynamic_axes=None):
    kwargs = dict(
        input_names=input_names,
        output_names=output_names,
        opset_version=OPSET,
        do_constant_folding=True,
    )
    if dynamic_axes:
        kwargs["dynamic_axes"] = dynamic_axes
    # The dynamo exporter needs onnxscript; use the legacy TorchScript one where there is a choice.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    torch.onnx.export(model, example, path, **kwargs)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


class BadShape(nn.Module):
    def forward(self, x):
        return x.sum(dim=2)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)

    mlp = Mlp().eval()
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(torch.round(p * 1e4) / 1e4)

    export(
        mlp,
        torch.zeros(1, 64),
        os.path.join(OUT, "mlp.onnx"),
        ["input"],
        ["probabilities"],
        {"input": {0: "batch"}, "probabilities": {0: "batch"}},
    )

    layers = [
        {"kernel": f32(layer.weight.detach().numpy().T), "bias": f32(layer.bias.detach().numpy())}
        for layer in (mlp.fc1, mlp.fc2)
    ]
    with open(os.path.join(OUT, "mlp.weights.json"), "w") as f:
        json.dump({"layers": layers}, f, separators=(",", ":"))
        f.write("\n")

    x = torch.round(torch.rand(5, 64) * 1e4) / 1e4
    x = torch.clamp(x, max=0.9999)  # stay in [0, 1)
    with torch.no_grad():
        y = mlp(x)
    with open(os.path.join(OUT, "mlp.samples.json"), "w") as f:
        json.dump({"inputs": f32(x.numpy()), "probabilities": f32(y.numpy())}, f, separators=(",", ":"))
        f.write("\n")

    export(BadShape().eval(), torch.zeros(3, 4, 5), os.path.join(OUT, "badshape.onnx"), ["grid"], ["sums"])

    print(f"torch {torch.__version__}: wrote mlp.onnx, mlp.weights.json, mlp.samples.json, badshape.onnx to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
