#!/usr/bin/env python3
"""Builds small "foreign" ONNX models (models heist did not make) as test fixtures. Seeded and deterministic.

Default mode writes into test/fixtures/foreign/ (each .onnx has a JSON sidecar of the same base name):

  wine-softmax.onnx          scikit-learn multinomial LogisticRegression on the raw (unscaled) UCI wine features,
                             written by hand as Gemm -> Softmax (opset 13).
                             input "input" float32 [batch, 13]; output "probabilities" float32 [batch, 3].
  cancer-tree.onnx           scikit-learn DecisionTreeClassifier(max_depth=5) on the raw breast-cancer features,
                             written by hand as an ai.onnx.ml TreeEnsembleClassifier (ai.onnx.ml opset 1) with
                             the node attributes and the output layout skl2onnx uses when ZipMap is switched off.
                             input "input" float32 [batch, 30]; outputs "label" int64 [batch] and
                             "probabilities" float32 [batch, 2].
  fashion-flat-mlp.onnx      PyTorch MLP 784-128-10 (ReLU, softmax at the end) trained on Fashion-MNIST.
                             input "input" float32 [batch, 784] (pixel byte / 255); output "probabilities"
                             float32 [batch, 10]. torch.onnx.export, opset 13.
  fashion-flat-encoder.onnx  PyTorch MLP encoder 784-256-64 (ReLU between, nothing on the output) trained with
                             SimCLR (NT-Xent loss on two augmented views) on a Fashion-MNIST subset.
                             input "input" float32 [batch, 784] (pixel byte / 255); output "embedding"
                             float32 [batch, 64]. torch.onnx.export, opset 13.

--bench DIR writes the benchmark-size encoder (784-512-256-64, same SimCLR recipe on all 60k training images,
50 epochs instead of 10) and the same classifier into DIR instead. Those files are not committed.

After writing, the script checks every ONNX file with onnxruntime-node from this repository (node must be on
PATH and node_modules installed): input/output names, dtypes and shapes, and the outputs against the Python
model on many rows (wine and cancer: every row of the data set; Fashion-MNIST: the first 256 test images).
--no-verify skips that.

Run from anywhere with Debian's Python (the python3 on PATH may lack torch/sklearn/onnx):
  /usr/bin/python3 scripts/foreign-fixtures.py                      # fixtures, about 1 minute (one thread)
  /usr/bin/python3 scripts/foreign-fixtures.py --bench /tmp/bench   # benchmark-size models, about 7 minutes
  /usr/bin/python3 scripts/foreign-fixtures.py --bench /tmp/b --simclr-epochs 2   # quick smoke test of --bench
The script sets OMP/OPENBLAS/MKL threads to 1 and uses one torch thread and deterministic algorithms, so a
second run gives the same sidecar numbers and the same ONNX bytes (with the same library versions).

Data (local only, no network):
  $HEIST_DATASETS (default: the repository's vendored data/ folder, falling back to scikit-learn's bundled copies):
    wine_data.csv     UCI Wine recognition (M. Forina et al.), 178 x 13, 3 classes.
    breast_cancer.csv UCI Breast Cancer Wisconsin (Diagnostic), W.N. Street, W.H. Wolberg, O.L. Mangasarian
                      (1993/1995), 569 x 30, 2 classes.
  $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist, Debian package dataset-fashion-mnist):
    Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms", arXiv:1708.07747, 2017 (MIT licence).

References:
  - T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), ICML 2020, arXiv:2002.05709. The encoder follows its recipe at toy scale: two
    random augmentations of each image, an encoder f, a small projection head g used only for the loss, and
    the NT-Xent (normalised temperature-scaled cross-entropy) loss over the 2B views of a batch; the head is
    thrown away and f's output is the exported embedding.
  - A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with Contrastive Predictive Coding",
    arXiv:1807.03748, 2018 (InfoNCE, of which NT-Xent is a form).
  - Z. Zhong, L. Zheng, G. Kang, S. Li, Y. Yang, "Random Erasing Data Augmentation", AAAI 2020,
    arXiv:1708.04896 (the erasing augmentation).
  - F. Tramer, F. Zhang, A. Juels, M.K. Reiter, T. Ristenpart, "Stealing Machine Learning Models via
    Prediction APIs", USENIX Security 2016 (extraction of logistic regressions and decision trees, the
    targets the first two fixtures stand for).
  - Encoder stealing, the target the encoder stands for: Y. Liu, J. Jia, H. Liu, N.Z. Gong, "StolenEncoder:
    Stealing Pre-trained Encoders in Self-supervised Learning", ACM CCS 2022; A. Dziedzic, N. Dhawan,
    M.A. Kaleem, J. Guan, N. Papernot, "On the Difficulty of Defending Self-Supervised Learning against Model
    Extraction", ICML 2022; Z. Sha, X. He, N. Yu, M. Backes, Y. Zhang, "Can't Steal? Cont-Steal! Contrastive
    Stealing Attacks Against Image Encoders", CVPR 2023.
"""
import argparse
import gzip
import hashlib
import inspect
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn import datasets as sk_datasets  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_OUT = os.path.join(REPO, "test", "fixtures", "foreign")
DATASETS = os.environ.get("HEIST_DATASETS", os.path.join(REPO, "data"))
FASHION_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
SEED = 0
OPSET = 13
ML_OPSET = 1  # skl2onnx writes TreeEnsembleClassifier with ai.onnx.ml version 1
PRODUCER = "heist scripts/foreign-fixtures.py"

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# Training settings. The fixture encoder is small so the committed files stay small; --bench scales it up.
CLF = dict(sizes=[784, 128, 10], epochs=5, batch=128, lr=1e-3)
SIMCLR_FIXTURE = dict(sizes=[784, 256, 64], head=[64, 64, 32], subset=20000, epochs=10, batch=256, lr=1e-3,
                      temperature=0.2)
SIMCLR_BENCH = dict(sizes=[784, 512, 256, 64], head=[64, 64, 32], subset=60000, epochs=50, batch=256, lr=1e-3,
                    temperature=0.2)
PROBE = dict(train=10000, test=2000)  # first N training / test images
VERIFY_ROWS = 256  # Fashion-MNIST test images the ONNX files are checked on


# ---------------------------------------------------------------------------------------------- helpers

def f32(values):
    """Nested lists of the shortest decimals that read back as the given float32 values."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 0:
        return float(np.format_float_positional(arr[()], unique=True, trim="-"))
    return [f32(v) for v in arr]


def f64(values):
    """Nested lists of Python floats (json writes the shortest round-trip decimal of a float64)."""
    return np.asarray(values, dtype=np.float64).tolist()


def _is_scalar(v):
    return not isinstance(v, (dict, list))


def dumps(obj, level=0):
    """JSON with dicts indented, and lists of numbers (and small flat dicts) kept on one line."""
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(obj, dict):
        flat = all(_is_scalar(v) or (isinstance(v, list) and all(map(_is_scalar, v))) for v in obj.values())
        one_line = json.dumps(obj, separators=(", ", ": "))
        if flat and len(one_line) <= 200 and level > 0:
            return one_line
        if not obj:
            return "{}"
        return "{\n" + ",\n".join(f"{pad}{json.dumps(k)}: {dumps(v, level + 1)}" for k, v in obj.items()) + f"\n{end}}}"
    if isinstance(obj, list):
        if all(map(_is_scalar, obj)):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad + dumps(v, level + 1) for v in obj) + f"\n{end}]"
    return json.dumps(obj)


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(dumps(obj))
        f.write("\n")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def versions():
    return {"python": sys.version.split()[0], "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "torch": torch.__version__, "onnx": onnx.__version__}


def io_spec(model):
    """Names, element types and shapes of a model's graph inputs and outputs, as written in the file."""
    def one(v):
        t = v.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim]
        dtype = {TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.INT64: "int64"}[t.elem_type]
        return {"name": v.name, "dtype": dtype, "shape": dims}
    inits = {i.name for i in model.graph.initializer}
    return {"inputs": [one(v) for v in model.graph.input if v.name not in inits],
            "outputs": [one(v) for v in model.graph.output]}


def onnx_meta(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": sha256(path),
            "ir_version": model.ir_version,
            "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
            **io_spec(model)}


def meta_io(meta):
    return {"inputs": meta["inputs"], "outputs": meta["outputs"]}


def accuracy(pred, y):
    return round(float(np.mean(np.asarray(pred) == np.asarray(y))), 6)


def dataset_path(name):
    p = os.path.join(DATASETS, name)
    if os.path.exists(p):
        return p
    # The shared copies are unchanged copies of the files scikit-learn ships.
    return os.path.join(os.path.dirname(sk_datasets.__file__), "data", name)


def load_uci_csv(name):
    """scikit-learn's CSV layout: header 'N_ROWS,N_FEATURES,CLASS...'; rows are features then the label."""
    path = dataset_path(name)
    with open(path) as f:
        header = f.readline().strip().split(",")
    n, d = int(header[0]), int(header[1])
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    X, y = data[:, :d], data[:, d].astype(np.int64)
    assert X.shape == (n, d), (path, X.shape)
    return X, y, header[2:], path


def load_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    assert magic >> 16 == 0 and (magic >> 8) & 0xFF == 0x08, f"{path}: not an unsigned-byte IDX file"
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def load_fashion():
    def p(name):
        return os.path.join(FASHION_DIR, name)
    xtr = load_idx(p("train-images-idx3-ubyte.gz")).reshape(-1, 784)
    ytr = load_idx(p("train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = load_idx(p("t10k-images-idx3-ubyte.gz")).reshape(-1, 784)
    yte = load_idx(p("t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    assert xtr.shape == (60000, 784) and xte.shape == (10000, 784)
    return xtr, ytr, xte, yte


def to_unit(x_u8):
    """Pixel bytes -> float32 in [0, 1], the models' input scaling: float32(byte) / 255."""
    return torch.from_numpy(np.asarray(x_u8, dtype=np.uint8).astype(np.float32)) / 255.0


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


class Checks:
    """What the node/onnxruntime check compares: inputs and expected outputs written as raw little-endian
    binaries, and the expected graph I/O metadata."""

    def __init__(self, workdir):
        self.dir = workdir
        self.models = []

    def _bin(self, arr, dtype):
        self.count = getattr(self, "count", 0) + 1
        path = os.path.join(self.dir, f"array{self.count}.bin")
        np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tofile(path)
        return path

    def add(self, onnx_path, inputs, outputs, expected_io):
        """inputs: {name: float32 array}; outputs: {name: (array, 'float'|'int64', abs tol, rel tol)}."""
        entry = {"path": os.path.abspath(onnx_path), "io": expected_io, "inputs": [], "outputs": []}
        self.models.append(entry)
        for name, arr in inputs.items():
            entry["inputs"].append({"name": name, "dims": list(arr.shape), "file": self._bin(arr, np.float32)})
        for name, (arr, kind, atol, rtol) in outputs.items():
            dtype = np.int64 if kind == "int64" else np.float64
            entry["outputs"].append({"name": name, "dims": list(arr.shape), "kind": kind, "atol": atol,
                                     "rtol": rtol, "file": self._bin(arr, dtype)})


# ----------------------------------------------------------------------------------------- 1. wine-softmax

def build_wine(out, checks):
    X, y, classes, src = load_uci_csv("wine_data.csv")
    bunch = sk_datasets.load_wine()
    assert np.array_equal(bunch.data, X) and np.array_equal(bunch.target, y), "wine CSV differs from sklearn's"
    names = list(bunch.feature_names)

    clf = LogisticRegression(multi_class="multinomial", solver="lbfgs", C=1.0, max_iter=100000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # refuse an unconverged fit
        clf.fit(X, y)
    coef = clf.coef_.astype(np.float32)
    intercept = clf.intercept_.astype(np.float32)

    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "coef", "intercept"], ["logits"], name="linear", transB=1),
         helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)],
        "wine_softmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", X.shape[1]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(classes)])],
        initializer=[numpy_helper.from_array(coef, "coef"), numpy_helper.from_array(intercept, "intercept")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER)
    model.ir_version = 8
    model.doc_string = ("scikit-learn multinomial LogisticRegression on the raw UCI wine features: "
                        "probabilities = softmax(input @ coef^T + intercept)")
    path = os.path.join(out, "wine-softmax.onnx")
    onnx.save(model, path)

    proba = clf.predict_proba(X)
    # The float32 forward pass the ONNX graph does must agree with sklearn's float64 one.
    z = X.astype(np.float32) @ coef.T + intercept
    p32 = np.exp(z - z.max(axis=1, keepdims=True))
    p32 /= p32.sum(axis=1, keepdims=True)
    assert np.abs(p32 - proba).max() < 1e-5 and np.array_equal(p32.argmax(1), clf.predict(X))

    samples = [int(np.flatnonzero(y == c)[0]) for c in range(len(classes))]
    meta = onnx_meta(path)
    sidecar = {
        "description": "Multinomial logistic regression (scikit-learn LogisticRegression, lbfgs, C=1, no "
                       "feature scaling) fitted on all 178 rows of the raw UCI wine data; exported by hand as "
                       "Gemm(transB=1) -> Softmax(axis=1).",
        "model": "softmax(input @ coef^T + intercept)",
        "onnx": meta,
        "data": {"source": "UCI Wine recognition (Forina et al.), " + os.path.basename(src), "rows": len(y),
                 "features": X.shape[1], "classes": classes},
        "sklearn": {"estimator": "LogisticRegression", "multi_class": "multinomial", "solver": "lbfgs",
                    "C": 1.0, "tol": clf.tol, "max_iter": clf.max_iter, "n_iter": int(clf.n_iter_[0])},
        "coef_note": "coef and intercept are the float32 values in the ONNX file (sklearn's float64 fit rounded "
                     "to float32), each written as the shortest decimal that reads back as that float32",
        "coef": f32(coef),
        "intercept": f32(intercept),
        "classes": classes,
        "feature_names": names,
        "accuracy": accuracy(clf.predict(X), y),
        "accuracy_note": "on the same 178 rows it was fitted on",
        "lower": f64(X.min(axis=0)),
        "upper": f64(X.max(axis=0)),
        "samples": {"rows": samples, "inputs": f64(X[samples]), "probabilities": f64(proba[samples])},
        "made_with": versions(),
    }
    write_json(os.path.join(out, "wine-softmax.json"), sidecar)
    checks.add(path, {"input": X.astype(np.float32)}, {"probabilities": (proba, "float", 1e-5, 0.0)},
               meta_io(meta))
    return f"wine-softmax: accuracy {sidecar['accuracy']:.4f}, lbfgs iterations {sidecar['sklearn']['n_iter']}"


# ----------------------------------------------------------------------------------------- 2. cancer-tree

def leq_threshold_f32(t):
    """The float32 w with (x <= t  <=>  x <= w) for every float32 x. scikit-learn compares float32(x) with a
    float64 threshold; ONNX stores float32 thresholds, so a threshold that rounds up must step one ulp down
    (skl2onnx makes the same adjustment)."""
    w = np.float32(t)
    if float(w) > t:
        w = np.nextafter(w, np.float32(-np.inf))
    return w


def build_tree(out, checks):
    X, y, classes, src = load_uci_csv("breast_cancer.csv")
    bunch = sk_datasets.load_breast_cancer()
    assert np.array_equal(bunch.data, X) and np.array_equal(bunch.target, y), "cancer CSV differs from sklearn's"
    names = list(bunch.feature_names)

    clf = DecisionTreeClassifier(max_depth=5, random_state=SEED).fit(X, y)
    t = clf.tree_
    n_classes = len(classes)
    leaf_probs = (t.value[:, 0, :] / t.value[:, 0, :].sum(axis=1, keepdims=True)).astype(np.float32)

    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                             "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
                             "nodes_hitrates", "class_treeids", "class_nodeids", "class_ids", "class_weights")}
    nodes = []
    for i in range(t.node_count):
        branch = t.children_left[i] > i or t.children_right[i] > i
        if branch:
            feature, left, right = int(t.feature[i]), int(t.children_left[i]), int(t.children_right[i])
            w = leq_threshold_f32(float(t.threshold[i]))
            mode = "BRANCH_LEQ"
            nodes.append({"id": i, "feature": feature, "feature_name": names[feature], "threshold": f32(w),
                          "sklearn_threshold": float(t.threshold[i]), "left": left, "right": right,
                          "samples": int(t.n_node_samples[i])})
        else:
            feature, left, right, w, mode = 0, 0, 0, np.float32(0.0), "LEAF"
            nodes.append({"id": i, "leaf": True, "probabilities": f32(leaf_probs[i]),
                          "samples": int(t.n_node_samples[i])})
        attrs["nodes_treeids"].append(0)
        attrs["nodes_nodeids"].append(i)
        attrs["nodes_featureids"].append(feature)
        attrs["nodes_modes"].append(mode)
        attrs["nodes_values"].append(float(w))
        attrs["nodes_truenodeids"].append(left)
        attrs["nodes_falsenodeids"].append(right)
        attrs["nodes_missing_value_tracks_true"].append(0)
        attrs["nodes_hitrates"].append(1.0)
        if not branch:
            # skl2onnx: a binary classifier's leaf carries one weight, the probability of the second class,
            # under class id 0; onnxruntime then reports [1 - p, p]. More classes: one weight per class.
            weights = [leaf_probs[i][1]] if n_classes == 2 else list(leaf_probs[i])
            for c, wt in enumerate(weights):
                attrs["class_treeids"].append(0)
                attrs["class_nodeids"].append(i)
                attrs["class_ids"].append(c)
                attrs["class_weights"].append(float(wt))

    node = helper.make_node("TreeEnsembleClassifier", ["input"], ["label", "probabilities"],
                            name="TreeEnsembleClassifier", domain="ai.onnx.ml", post_transform="NONE",
                            classlabels_int64s=list(range(n_classes)), **attrs)
    graph = helper.make_graph(
        [node], "cancer_tree",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", X.shape[1]])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
    )
    model = helper.make_model(graph, producer_name=PRODUCER, opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    model.ir_version = 8
    model.doc_string = ("scikit-learn DecisionTreeClassifier(max_depth=5) on the raw breast-cancer features, "
                        "as skl2onnx writes it with zipmap=False")
    path = os.path.join(out, "cancer-tree.onnx")
    onnx.save(model, path)

    # Walk the tree the way the ONNX file does (float32 input, float32 thresholds) and compare with sklearn.
    X32 = X.astype(np.float32)
    walked = np.zeros((len(X), n_classes), dtype=np.float32)
    for r in range(len(X)):
        i = 0
        while "leaf" not in nodes[i]:
            i = nodes[i]["left"] if X32[r, nodes[i]["feature"]] <= np.float32(attrs["nodes_values"][i]) \
                else nodes[i]["right"]
        walked[r] = leaf_probs[i]
    proba, pred = clf.predict_proba(X), clf.predict(X)
    assert np.array_equal(walked.argmax(1), pred) and np.abs(walked - proba).max() < 1e-6

    samples = [int(np.flatnonzero(y == c)[0]) for c in range(n_classes)] + [int(np.flatnonzero(y == 1)[1])]
    meta = onnx_meta(path)
    sidecar = {
        "description": "scikit-learn DecisionTreeClassifier(max_depth=5, random_state=0) fitted on all 569 rows "
                       "of the raw UCI Breast Cancer Wisconsin (Diagnostic) features; written by hand as an "
                       "ai.onnx.ml TreeEnsembleClassifier with skl2onnx's attributes and output layout "
                       "(zipmap=False): outputs 'label' then 'probabilities'.",
        "onnx": meta,
        "onnx_note": "nodes_modes BRANCH_LEQ/LEAF, post_transform NONE, nodes_hitrates 1, "
                     "nodes_missing_value_tracks_true 0, leaves have feature/threshold/children 0; as in "
                     "skl2onnx, each leaf of this binary tree has ONE class weight, P(class 1), under class_id 0, "
                     "and the runtime reports probabilities [1 - p, p] and label = 1 iff p > 0.5",
        "data": {"source": "UCI Breast Cancer Wisconsin (Diagnostic), " + os.path.basename(src), "rows": len(y),
                 "features": X.shape[1], "classes": classes},
        "sklearn": {"estimator": "DecisionTreeClassifier", "max_depth": 5, "criterion": "gini",
                    "random_state": SEED, "depth": int(clf.get_depth()), "leaves": int(clf.get_n_leaves()),
                    "node_count": int(t.node_count)},
        "tree_note": "go to 'left' when input[feature] <= threshold, else to 'right'. threshold is the float32 in "
                     "the ONNX file (sklearn_threshold, the float64 split, moved down to the largest float32 not "
                     "above it); leaf probabilities are the class fractions of the training rows in the leaf",
        "tree": nodes,
        "classes": classes,
        "feature_names": names,
        "accuracy": accuracy(pred, y),
        "accuracy_note": "on the same 569 rows it was fitted on",
        "lower": f64(X.min(axis=0)),
        "upper": f64(X.max(axis=0)),
        "samples": {"rows": samples, "inputs": f64(X[samples]), "label": [int(v) for v in pred[samples]],
                    "probabilities": f32(walked[samples])},
        "made_with": versions(),
    }
    write_json(os.path.join(out, "cancer-tree.json"), sidecar)
    checks.add(path, {"input": X32}, {"label": (pred.astype(np.int64), "int64", 0, 0),
                                      "probabilities": (proba, "float", 1e-6, 0.0)}, meta_io(meta))
    return f"cancer-tree: accuracy {sidecar['accuracy']:.4f}, {sidecar['sklearn']['leaves']} leaves"


# ------------------------------------------------------------------------------------ torch models and export

def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SoftmaxClassifier(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.net = mlp(sizes)

    def logits(self, x):
        return self.net(x)

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


class Encoder(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.net = mlp(sizes)

    def forward(self, x):
        return self.net(x)


def export(model, path, output_name, doc):
    kwargs = dict(input_names=["input"], output_names=[output_name], opset_version=OPSET,
                  do_constant_folding=True, dynamic_axes={"input": {0: "batch"}, output_name: {0: "batch"}})
    # The dynamo exporter needs onnxscript; use the TorchScript one where there is a choice.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 784), path, **kwargs)
    m = onnx.load(path)
    m.producer_name = f"{PRODUCER} via pytorch {torch.__version__}"
    m.doc_string = doc
    onnx.save(m, path)


def architecture(sizes, final):
    parts = []
    for i in range(len(sizes) - 1):
        parts.append(f"Linear({sizes[i]}, {sizes[i + 1]})")
        if i < len(sizes) - 2:
            parts.append("ReLU")
    if final:
        parts.append(final)
    return " -> ".join(parts)


def predict(model, X_u8, batch=2048):
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(X_u8), batch):
            outs.append(model(to_unit(X_u8[i:i + batch])))
    return torch.cat(outs).numpy()


# --------------------------------------------------------------------------------- 3. fashion-flat-mlp

def build_classifier(out, checks, fashion, epochs):
    xtr, ytr, xte, yte = fashion
    seed_everything(SEED)
    model = SoftmaxClassifier(CLF["sizes"])
    gen = torch.Generator().manual_seed(SEED)
    X, Y = to_unit(xtr), torch.from_numpy(ytr)
    opt = torch.optim.Adam(model.parameters(), lr=CLF["lr"])
    losses = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for i in range(0, len(X), CLF["batch"]):
            idx = perm[i:i + CLF["batch"]]
            loss = F.cross_entropy(model.logits(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(round(total / len(X), 6))

    proba = predict(model, xte)
    acc = accuracy(proba.argmax(1), yte)
    path = os.path.join(out, "fashion-flat-mlp.onnx")
    export(model, path, "probabilities",
           f"Fashion-MNIST MLP classifier {architecture(CLF['sizes'], 'Softmax')}; input is pixel byte / 255")
    meta = onnx_meta(path)
    samples = [0, 1, 2]
    sidecar = {
        "description": "PyTorch MLP classifier on flat Fashion-MNIST images, softmax output; trained with "
                       "Adam and cross-entropy on the 60,000 training images.",
        "onnx": meta,
        "architecture": architecture(CLF["sizes"], "Softmax"),
        "layer_sizes": CLF["sizes"],
        "input_scaling": "float32(pixel byte) / 255, row-major 28x28 flattened to 784, values in [0, 1]",
        "lower": 0.0,
        "upper": 1.0,
        "classes": FASHION_CLASSES,
        "training": {"data": "Fashion-MNIST train, 60000 images", "epochs": epochs, "batch": CLF["batch"],
                     "optimizer": "Adam", "lr": CLF["lr"], "loss": "cross-entropy", "seed": SEED,
                     "epoch_losses": losses},
        "seed": SEED,
        "test_accuracy": acc,
        "test_note": "on the 10,000 Fashion-MNIST test images",
        "samples": {"test_indices": samples, "pixels_u8": xte[samples].tolist(),
                    "probabilities": f32(proba[samples])},
        "made_with": versions(),
    }
    write_json(os.path.join(out, "fashion-flat-mlp.json"), sidecar)
    rows = xte[:VERIFY_ROWS]
    checks.add(path, {"input": to_unit(rows).numpy()},
               {"probabilities": (proba[:VERIFY_ROWS], "float", 1e-5, 0.0)}, meta_io(meta))
    return f"fashion-flat-mlp: test accuracy {acc:.4f}, epoch losses {losses}"


# ------------------------------------------------------------------------------ 4. fashion-flat-encoder

def augment(x, gen):
    """One random SimCLR view of each image in x [B, 784] in [0, 1]; all randomness from gen.

    Crop-and-resize with a small shift (a random affine zoom: 85-100% of the side, aspect jitter, up to 5% of
    the side past the crop, horizontal flip half the time), brightness gain, Gaussian noise, and random erasing
    of a rectangle half the time. The result is clamped back to [0, 1]."""
    b = x.shape[0]
    img = x.view(b, 1, 28, 28)

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*(shape or (b,)), generator=gen)

    scale = u(0.85, 1.0)
    aspect = torch.exp(u(-0.2, 0.2))
    sx = torch.clamp(scale * aspect.sqrt(), max=1.0)
    sy = torch.clamp(scale / aspect.sqrt(), max=1.0)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    tx = u(-1, 1) * (1 - sx + 0.05)
    ty = u(-1, 1) * (1 - sy + 0.05)
    zero = torch.zeros(b)
    theta = torch.stack([torch.stack([sx * flip, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, 28, 28], align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    img = img * u(0.7, 1.3).view(b, 1, 1, 1)
    img = img + torch.randn(img.shape, generator=gen) * u(0.0, 0.08).view(b, 1, 1, 1)

    h = torch.randint(4, 13, (b,), generator=gen)
    w = torch.randint(4, 13, (b,), generator=gen)
    top = (torch.rand(b, generator=gen) * (29 - h)).long()
    left = (torch.rand(b, generator=gen) * (29 - w)).long()
    erase = torch.rand(b, generator=gen) < 0.5
    r = torch.arange(28)
    rows = (r.view(1, 28) >= top.view(b, 1)) & (r.view(1, 28) < (top + h).view(b, 1))
    cols = (r.view(1, 28) >= left.view(b, 1)) & (r.view(1, 28) < (left + w).view(b, 1))
    mask = (rows.view(b, 28, 1) & cols.view(b, 1, 28) & erase.view(b, 1, 1)).view(b, 1, 28, 28)
    img = img.masked_fill(mask, 0.0)
    return img.clamp(0.0, 1.0).view(b, 784)


def nt_xent(z1, z2, temperature):
    """NT-Xent (Chen et al. 2020): each of the 2B views must pick its partner out of the other 2B - 1 views by
    cosine similarity / temperature."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = (z @ z.t()) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


PROBE_MAX_ITER = 1000


def linear_probe(train_feats, ytr, test_feats, yte):
    """Accuracy of StandardScaler + LogisticRegression on fixed features, and whether lbfgs converged."""
    scaler = StandardScaler().fit(train_feats)
    clf = LogisticRegression(max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(train_feats), ytr)
    n_iter = int(clf.n_iter_.max())
    return {"accuracy": accuracy(clf.predict(scaler.transform(test_feats)), yte), "lbfgs_iterations": n_iter,
            "converged": n_iter < PROBE_MAX_ITER}


def build_encoder(out, checks, fashion, cfg, epochs):
    xtr, ytr, xte, yte = fashion
    seed_everything(SEED)
    encoder = Encoder(cfg["sizes"])
    head = mlp(cfg["head"])
    initial = {k: v.clone() for k, v in encoder.state_dict().items()}
    gen = torch.Generator().manual_seed(SEED)
    X = to_unit(xtr[:cfg["subset"]])
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    losses = []
    for _ in range(epochs):
        encoder.train()
        head.train()
        perm = torch.randperm(len(X), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(X) - cfg["batch"] + 1, cfg["batch"]):  # full batches only
            xb = X[perm[i:i + cfg["batch"]]]
            v1, v2 = augment(xb, gen), augment(xb, gen)
            loss = nt_xent(head(encoder(v1)), head(encoder(v2)), cfg["temperature"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
        losses.append(round(total / count, 6))

    ptr, pte = xtr[:PROBE["train"]], xte[:PROBE["test"]]
    emb_tr, emb_te = predict(encoder, ptr), predict(encoder, pte)
    probe = linear_probe(emb_tr, ytr[:PROBE["train"]], emb_te, yte[:PROBE["test"]])
    random_encoder = Encoder(cfg["sizes"])
    random_encoder.load_state_dict(initial)
    probes = {
        "same_encoder_at_random_init": linear_probe(predict(random_encoder, ptr), ytr[:PROBE["train"]],
                                                    predict(random_encoder, pte), yte[:PROBE["test"]]),
        "raw_pixels": linear_probe(to_unit(ptr).numpy(), ytr[:PROBE["train"]], to_unit(pte).numpy(),
                                   yte[:PROBE["test"]]),
    }

    path = os.path.join(out, "fashion-flat-encoder.onnx")
    export(encoder, path, "embedding",
           f"Fashion-MNIST SimCLR encoder {architecture(cfg['sizes'], None)}; input is pixel byte / 255")
    meta = onnx_meta(path)
    samples = [0, 1, 2]
    dim = cfg["sizes"][-1]
    sidecar = {
        "description": f"PyTorch MLP encoder from flat Fashion-MNIST images to a {dim}-d embedding (the output "
                       "of the last Linear layer, no normalisation), trained with SimCLR (Chen et al. 2020) "
                       "without labels.",
        "onnx": meta,
        "architecture": architecture(cfg["sizes"], None),
        "layer_sizes": cfg["sizes"],
        "embedding_dim": dim,
        "input_scaling": "float32(pixel byte) / 255, row-major 28x28 flattened to 784, values in [0, 1]",
        "lower": 0.0,
        "upper": 1.0,
        "training": {
            "method": "SimCLR: NT-Xent loss on two augmented views of each image; projection head used for "
                      "the loss only and not exported",
            "projection_head": architecture(cfg["head"], None),
            "augmentations": "random crop-and-resize as an affine zoom (85-100% of the side, aspect jitter "
                             "exp(U(-0.2,0.2)), shift up to 5% of the side past the crop, zero padding, "
                             "bilinear), horizontal flip p=0.5, brightness gain U(0.7,1.3), Gaussian noise "
                             "std U(0,0.08), random erasing p=0.5 of a 4-12 x 4-12 px rectangle, clamp to [0,1]",
            "data": f"first {cfg['subset']} Fashion-MNIST training images, labels unused",
            "epochs": epochs, "batch": cfg["batch"], "temperature": cfg["temperature"], "optimizer": "Adam",
            "lr": cfg["lr"], "seed": SEED, "epoch_losses": losses,
        },
        "seed": SEED,
        "final_loss": losses[-1] if losses else None,
        "final_loss_note": "mean NT-Xent over the last epoch's batches; chance level is ln(2*batch-1) = "
                           f"{round(float(np.log(2 * cfg['batch'] - 1)), 4)}",
        "linear_probe": {
            "accuracy": probe["accuracy"],
            "lbfgs_iterations": probe["lbfgs_iterations"],
            "converged": probe["converged"],
            "method": f"scikit-learn StandardScaler + LogisticRegression(lbfgs, C=1, max_iter={PROBE_MAX_ITER}) on the "
                      f"embeddings of the first {PROBE['train']} training images, accuracy on the first "
                      f"{PROBE['test']} test images",
            "baselines": probes,
            "baselines_note": "the same probe on the encoder's weights before SimCLR training, and on the 784 raw "
                              "pixels",
        },
        "embedding_norm": {"mean": round(float(np.linalg.norm(emb_te, axis=1).mean()), 4),
                           "note": f"mean L2 norm of the embeddings of the first {PROBE['test']} test images"},
        "classes": FASHION_CLASSES,
        "samples": {"test_indices": samples, "pixels_u8": xte[samples].tolist(), "embedding": f32(emb_te[samples])},
        "made_with": versions(),
    }
    write_json(os.path.join(out, "fashion-flat-encoder.json"), sidecar)
    emb_check = emb_te[:VERIFY_ROWS] if len(emb_te) >= VERIFY_ROWS else predict(encoder, xte[:VERIFY_ROWS])
    checks.add(path, {"input": to_unit(xte[:VERIFY_ROWS]).numpy()},
               {"embedding": (emb_check, "float", 1e-5, 1e-5)}, meta_io(meta))
    return (f"fashion-flat-encoder {cfg['sizes']}: final loss {sidecar['final_loss']}, probe {probe}, "
            f"baselines {probes}, "
            f"epoch losses {losses}")


# ----------------------------------------------------------------------------------------- verification

VERIFY_JS = r"""
const fs = require('fs');
const ort = require('onnxruntime-node');
function read(file, kind) {
  const b = fs.readFileSync(file);
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return kind === 'int64' ? new BigInt64Array(ab) : kind === 'float64' ? new Float64Array(ab) : new Float32Array(ab);
}
(async () => {
  const manifest = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
  let failures = 0;
  for (const m of manifest.models) {
    const s = await ort.InferenceSession.create(m.path);
    const meta = (list) => list.map((v) => ({ name: v.name, dtype: v.type, shape: [...v.shape] }));
    const got = { inputs: meta(s.inputMetadata), outputs: meta(s.outputMetadata) };
    const want = {
      inputs: m.io.inputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape })),
      outputs: m.io.outputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape })),
    };
    const notes = [];
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      failures++;
      notes.push('I/O metadata differs: ' + JSON.stringify(got) + ' vs ' + JSON.stringify(want));
    }
    const feeds = {};
    for (const i of m.inputs) feeds[i.name] = new ort.Tensor('float32', read(i.file, 'float32'), i.dims);
    const res = await s.run(feeds);
    if (JSON.stringify(Object.keys(res)) !== JSON.stringify(s.outputNames)) { failures++; notes.push('output order'); }
    for (const o of m.outputs) {
      const t = res[o.name];
      const wantType = o.kind === 'int64' ? 'int64' : 'float32';
      if (!t || t.type !== wantType || JSON.stringify(t.dims) !== JSON.stringify(o.dims)) {
        failures++;
        notes.push(`${o.name}: got ${t && t.type} ${t && JSON.stringify(t.dims)}, want ${wantType} ${JSON.stringify(o.dims)}`);
        continue;
      }
      const exp = read(o.file, o.kind === 'int64' ? 'int64' : 'float64');
      let worst = 0, bad = 0;
      for (let k = 0; k < exp.length; k++) {
        if (o.kind === 'int64') { if (t.data[k] !== exp[k]) bad++; continue; }
        const d = Math.abs(t.data[k] - exp[k]);
        worst = Math.max(worst, d);
        if (!(d <= o.atol + o.rtol * Math.abs(exp[k]))) bad++;
      }
      if (bad) failures++;
      notes.push(o.kind === 'int64' ? `${o.name} ${t.type} [${t.dims}] ${bad} of ${exp.length} differ`
        : `${o.name} ${t.type} [${t.dims}] max |diff| ${worst.toExponential(2)} (${bad} over tolerance)`);
    }
    console.log(`${require('path').basename(m.path)}: ${JSON.stringify(got)}\n    ${notes.join('; ')}`);
  }
  console.log(failures ? `onnxruntime-node check: ${failures} FAILURES` : 'onnxruntime-node check: all OK');
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
"""


def verify(checks, manifest_dir):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(REPO, "node_modules", "onnxruntime-node")):
        print("verify: skipped (needs node on PATH and onnxruntime-node in node_modules)")
        return None
    manifest = os.path.join(manifest_dir, "manifest.json")
    with open(manifest, "w") as f:
        json.dump({"models": checks.models}, f)
    r = subprocess.run([node, "-e", VERIFY_JS, manifest], cwd=REPO)
    return r.returncode == 0


# ---------------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", metavar="DIR", help="write the benchmark-size encoder and the classifier to DIR")
    ap.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="fixture folder (default: %(default)s)")
    ap.add_argument("--simclr-epochs", type=int, help="override the SimCLR epochs (fixture 10, bench 50)")
    ap.add_argument("--clf-epochs", type=int, help=f"override the classifier epochs (default {CLF['epochs']})")
    ap.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-node check")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = os.path.abspath(args.bench or args.out)
    os.makedirs(out, exist_ok=True)
    clf_epochs = args.clf_epochs if args.clf_epochs is not None else CLF["epochs"]
    cfg = SIMCLR_BENCH if args.bench else SIMCLR_FIXTURE
    simclr_epochs = args.simclr_epochs if args.simclr_epochs is not None else cfg["epochs"]

    with tempfile.TemporaryDirectory(prefix="foreign-fixtures-") as tmp:
        checks = Checks(tmp)
        steps = []
        if not args.bench:
            steps += [("wine-softmax", lambda: build_wine(out, checks)),
                      ("cancer-tree", lambda: build_tree(out, checks))]
        t0 = time.time()
        fashion = load_fashion()
        print(f"loaded Fashion-MNIST in {time.time() - t0:.1f}s", flush=True)
        steps += [("fashion-flat-mlp", lambda: build_classifier(out, checks, fashion, clf_epochs)),
                  ("fashion-flat-encoder", lambda: build_encoder(out, checks, fashion, cfg, simclr_epochs))]
        for name, step in steps:
            t0 = time.time()
            summary = step()
            print(f"[{time.time() - t0:6.1f}s] {summary}", flush=True)

        for fname in sorted(os.listdir(out)):
            p = os.path.join(out, fname)
            print(f"  {fname:28s} {os.path.getsize(p):9d} bytes" +
                  (f"  sha256 {sha256(p)[:16]}" if fname.endswith(".onnx") else ""))
        if not args.no_verify:
            ok = verify(checks, tmp)
            if ok is False:
                sys.exit(1)


if __name__ == "__main__":
    main()
