#!/usr/bin/python3
"""
The Python peer for heist's gateway benchmark: what a Python engineer would put in front of a model
instead of `heist serve`. FastAPI + uvicorn, one ONNX MLP evaluated in numpy, and per request the
same guarded path heist takes on SQLite: API key, then one IMMEDIATE transaction that checks the
daily quota (429), prices the rows on tiers, checks the prepaid balance (402), debits it and writes a
ledger row; then the forward pass. Errors are RFC 9457 problem+json.

    /usr/bin/python3 bench/peer/fastapi_peer.py --onnx .heist/zoo/fashion-mlp/model.onnx --port 0 \
        [--workers 1] [--db PATH] [--key hk_...] [--balance 1000000]

prints one JSON line, {"url": "http://127.0.0.1:PORT", ...}, on stdout once it is listening.
See bench/peer/README.md.
"""
import os
import sys

try:
    import fastapi  # noqa: F401  (Debian's python3-fastapi lives in /usr/bin/python3's path)
except ImportError:  # started by another interpreter (pyenv, a venv): hand over to the system one
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

import argparse
import ctypes
import datetime as dt
import hashlib
import json
import secrets
import signal
import socket
import sqlite3
import tempfile
import threading
import uuid
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from onnx import numpy_helper
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException


# ---------------------------------------------------------------------------------------------
# The model: an ONNX graph read with python3-onnx and evaluated node by node in numpy.
# ---------------------------------------------------------------------------------------------

def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _softmax(axis: int):
    def run(x):
        z = x - x.max(axis=axis, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=axis, keepdims=True)
        return z
    return run


def _gemm(a: dict, consts: Dict[str, np.ndarray], names: List[str]):
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
    # Fold transB, alpha and beta into the constant weights once, so a request does one matmul and one add.
    b_name = names[1]
    b_const = consts.get(b_name)
    if b_const is not None:
        b_const = np.ascontiguousarray((b_const.T if trans_b else b_const) * np.float32(alpha), dtype=np.float32)
    c_const = consts.get(names[2]) if len(names) > 2 and names[2] else None
    if c_const is not None:
        c_const = (c_const * np.float32(beta)).astype(np.float32)

    def run(x, b=None, c=None):
        x = x.T if trans_a else x
        if b_const is not None:
            y = x @ b_const
        else:
            y = (x @ (b.T if trans_b else b)) * np.float32(alpha)
        if c_const is not None:
            y += c_const
        elif c is not None:
            y += np.float32(beta) * c
        return y
    return run


def _flatten(axis: int):
    def run(x):
        ax = axis if axis >= 0 else x.ndim + axis
        lead = int(np.prod(x.shape[:ax])) if ax > 0 else 1
        return x.reshape(lead, -1)
    return run


class OnnxMlp:
    """The node types heist's dense exports use (Flatten, Gemm, Relu/Tanh/Sigmoid/Elu, Softmax, Identity), plus MatMul/Add/Reshape."""

    def __init__(self, path: str):
        model = onnx.load(path)
        g = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        consts = {t.name: numpy_helper.to_array(t).astype(np.float32) if numpy_helper.to_array(t).dtype.kind == "f"
                  else numpy_helper.to_array(t) for t in g.initializer}
        feeds = [i for i in g.input if i.name not in consts]
        if len(feeds) != 1:
            raise SystemExit(f"{path}: expected one input, found {[i.name for i in feeds]}")
        self.input_name = feeds[0].name
        dims = feeds[0].type.tensor_type.shape.dim
        self.row_shape = tuple(d.dim_value for d in dims[1:])  # [batch, ...row]
        if not self.row_shape or any(d <= 0 for d in self.row_shape):
            raise SystemExit(f"{path}: input {self.input_name} needs fixed dimensions after the batch one")
        self.row_width = int(np.prod(self.row_shape))
        self.output_name = g.output[0].name
        dims_out = g.output[0].type.tensor_type.shape.dim
        self.classes = dims_out[-1].dim_value if dims_out else 0

        steps: List[Tuple[Callable, List[str], str]] = []
        for node in g.node:
            a, op, ins = _attrs(node), node.op_type, list(node.input)
            if op == "Gemm":
                fn = _gemm(a, consts, ins)
                # constant B and C are folded in: pass only what is not constant
                live = [ins[0]] + [n if n not in consts else "" for n in ins[1:]]
                steps.append((fn, live, node.output[0]))
                continue
            if op == "Flatten":
                fn = _flatten(int(a.get("axis", 1)))
            elif op == "Relu":
                fn = lambda x: np.maximum(x, np.float32(0))  # noqa: E731
            elif op == "Tanh":
                fn = np.tanh
            elif op == "Sigmoid":
                fn = lambda x: np.float32(1) / (np.float32(1) + np.exp(-x))  # noqa: E731
            elif op == "Elu":
                al = np.float32(a.get("alpha", 1.0))
                fn = lambda x, al=al: np.where(x > 0, x, al * (np.exp(x) - np.float32(1)))  # noqa: E731
            elif op == "Softmax":
                fn = _softmax(int(a.get("axis", -1 if opset >= 13 else 1)))
            elif op == "Identity":
                fn = lambda x: x  # noqa: E731
            elif op == "MatMul":
                fn = np.matmul
            elif op == "Add":
                fn = np.add
            elif op == "Reshape":
                fn = lambda x, s: x.reshape([int(v) for v in s])  # noqa: E731
            else:
                raise SystemExit(f"{path}: node type {op} is not supported by this peer")
            steps.append((fn, ins, node.output[0]))
        self.consts = consts
        self.steps = steps

    def predict(self, x: np.ndarray) -> np.ndarray:
        env = {self.input_name: x}
        consts = self.consts
        for fn, ins, out in self.steps:
            args = [env[n] if n in env else consts[n] for n in ins if n]
            env[out] = fn(*args)
        return env[self.output_name]


# ---------------------------------------------------------------------------------------------
# The store: stdlib sqlite3, WAL, the pragmas heist's SQLite store sets.
# ---------------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, name TEXT NOT NULL, balance INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, client_id TEXT NOT NULL REFERENCES clients(id));
CREATE TABLE IF NOT EXISTS usage (client_id TEXT NOT NULL, day TEXT NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (client_id, day));
CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, request_id TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL, key_hash TEXT NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL, price INTEGER NOT NULL,
  balance_after INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_client ON ledger (client_id, id);
"""


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # we issue BEGIN/COMMIT ourselves
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def seed(path: str, client: str, keys: List[str], balance_micros: int) -> None:
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO clients (id, name, balance) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
                 (client, client, balance_micros))
    for k in keys:
        conn.execute("INSERT OR REPLACE INTO keys (hash, client_id) VALUES (?, ?)", (hash_key(k), client))
    conn.execute("COMMIT")
    conn.close()


def price_rows(tiers: List[Tuple[Optional[int], int]], used_before: int, rows: int) -> int:
    """Micro-dollars for `rows` more rows after `used_before` today; a batch crossing a tier boundary pays each side at its price."""
    cost, at, left = 0, used_before, rows
    for up_to, micros in tiers:
        if left == 0:
            break
        end = up_to if up_to is not None else float("inf")
        if at >= end:
            continue
        n = int(min(left, end - at))
        cost += n * micros
        at += n
        left -= n
    return cost


# ---------------------------------------------------------------------------------------------
# Problems (RFC 9457), the same type URNs and statuses heist uses.
# ---------------------------------------------------------------------------------------------

class Problem(Exception):
    def __init__(self, kind: str, status: int, detail: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(detail)
        self.kind, self.status, self.detail, self.headers = kind, status, detail, headers or {}

    def response(self) -> JSONResponse:
        body = {"type": f"urn:heist:problem:{self.kind}", "title": self.kind.replace("-", " "), "status": self.status, "detail": self.detail}
        return JSONResponse(body, status_code=self.status, headers=self.headers, media_type="application/problem+json")


# ---------------------------------------------------------------------------------------------
# OIP v2 request body
# ---------------------------------------------------------------------------------------------

class InferInput(BaseModel):
    name: str
    shape: List[int]
    datatype: str
    data: List[float]


class InferRequest(BaseModel):
    id: Optional[str] = None
    inputs: List[InferInput]


def utc_windows() -> Tuple[str, str, int]:
    now = dt.datetime.now(dt.timezone.utc)
    midnight = dt.datetime(now.year, now.month, now.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    return now.date().isoformat(), now.isoformat(timespec="milliseconds").replace("+00:00", "Z"), max(1, int((midnight - now).total_seconds() + 0.999))


def build_app(model: OnnxMlp, model_name: str, db_path: str, quota: int, tiers: List[Tuple[Optional[int], int]],
              max_batch: int, threadpool: bool, raw_body: bool = False) -> FastAPI:
    app = FastAPI(title="heist peer (FastAPI)", docs_url=None, redoc_url=None, openapi_url=None)
    local = threading.local()

    def db() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:  # one connection per thread (per process after a fork)
            conn = local.conn = connect(db_path)
        return conn

    def api_key(authorization: Optional[str], x_api_key: Optional[str]) -> str:
        if authorization and authorization[:7].lower() == "bearer ":
            return authorization[7:].strip()
        if x_api_key:
            return x_api_key
        raise Problem("missing-api-key", 401, "send your API key as 'Authorization: Bearer <key>' or in the 'x-api-key' header")

    def charge(client_id: str, key_hash: str, rows: int) -> Tuple[int, int, int]:
        """One IMMEDIATE transaction: quota, price, balance, debit, usage, ledger row. Returns (cost, balance after, used today)."""
        conn = db()
        day, at, to_midnight = utc_windows()
        conn.execute("BEGIN IMMEDIATE")
        try:
            r = conn.execute("SELECT rows FROM usage WHERE client_id = ? AND day = ?", (client_id, day)).fetchone()
            used = r[0] if r else 0
            if used + rows > quota:
                raise Problem("quota-exceeded", 429, f"daily quota reached: {max(0, quota - used)} of {quota} rows left today and this request has {rows}; it resets at 00:00 UTC",
                              {"retry-after": str(to_midnight)})
            cost = price_rows(tiers, used, rows)
            balance = conn.execute("SELECT balance FROM clients WHERE id = ?", (client_id,)).fetchone()[0]
            if cost > balance:
                raise Problem("balance-exhausted", 402, f"this request costs ${cost / 1e6:.6f} but your balance is ${balance / 1e6:.6f}; top up to continue")
            conn.execute("INSERT INTO usage (client_id, day, rows) VALUES (?, ?, ?) ON CONFLICT (client_id, day) DO UPDATE SET rows = rows + excluded.rows",
                         (client_id, day, rows))
            if cost:
                conn.execute("UPDATE clients SET balance = balance - ? WHERE id = ?", (cost, client_id))
            conn.execute("INSERT INTO ledger (at, request_id, client_id, key_hash, model, rows, price, balance_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (at, uuid.uuid4().hex, client_id, key_hash, model_name, rows, cost, balance - cost))
            conn.execute("COMMIT")
            return cost, balance - cost, used + rows
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def who(authorization: Optional[str], x_api_key: Optional[str]) -> Tuple[str, str]:
        """The client and key hash behind the request's key, or 401."""
        h = hash_key(api_key(authorization, x_api_key))
        row = db().execute("SELECT client_id FROM keys WHERE hash = ?", (h,)).fetchone()
        if row is None:
            raise Problem("invalid-api-key", 401, "this API key is not valid")
        return row[0], h

    def infer(name: str, caller: Tuple[str, str], inputs: list) -> dict:
        """`inputs`: (name, shape, datatype, data) per tensor, their types already checked."""
        client_id, h = caller
        if name != model_name:
            raise Problem("unknown-model", 404, f'no model named "{name}" here; this gateway serves "{model_name}"')
        if len(inputs) != 1:
            raise Problem("invalid-tensor", 400, f"send exactly one input tensor, got {len(inputs)}")
        t_name, shape, datatype, data = inputs[0]
        if datatype != "FP32":
            raise Problem("invalid-tensor", 400, f'input "{t_name}" has datatype {datatype}; this gateway accepts FP32')
        if not shape or any(d < 0 for d in shape) or int(np.prod(shape)) != len(data):
            raise Problem("invalid-tensor", 400, f'input "{t_name}" has shape {shape} but its data holds {len(data)} values')
        rows = shape[0]
        if rows == 0:
            raise Problem("invalid-tensor", 400, "the batch is empty: the first dimension of the shape must be at least 1")
        if int(np.prod(shape[1:])) != model.row_width:
            raise Problem("invalid-tensor", 400, f"each row has {int(np.prod(shape[1:]))} features; this model takes {model.row_width} (shape {list(model.row_shape)})")
        if rows > max_batch:
            raise Problem("batch-too-large", 413, f"a batch of {rows} rows is above this gateway's maximum of {max_batch}")
        try:
            x = np.asarray(data)  # in --body raw mode this is the per-value type check: numbers only, no strings, no booleans
        except (TypeError, ValueError):
            x = np.asarray([])
        if x.dtype.kind not in "fiu" or x.ndim != 1:
            raise Problem("invalid-tensor", 400, f'input "{t_name}" data must be a flat array of numbers')
        with np.errstate(over="ignore"):  # past float32's range becomes inf: refused below like NaN
            x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise Problem("invalid-tensor", 400, f'input "{t_name}" data must be a flat array of finite 32-bit floats')
        charge(client_id, h, rows)
        y = model.predict(x.reshape((rows, *model.row_shape)))
        return {"model_name": name, "outputs": [{"name": model.output_name, "shape": list(y.shape), "datatype": "FP32", "data": y.ravel().tolist()}]}

    def raw_inputs(body) -> list:
        """The --body raw check of what the Pydantic models check: shapes and types of the JSON, values left to numpy."""
        ins = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(ins, list):
            raise Problem("bad-request", 400, "request body: inputs: expected an array")
        out = []
        for i, t in enumerate(ins):
            if not (isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("datatype"), str)
                    and isinstance(t.get("shape"), list) and all(type(d) is int for d in t["shape"]) and isinstance(t.get("data"), list)):
                raise Problem("bad-request", 400, f"request body: inputs.{i}: expected {{name: string, shape: int[], datatype: string, data: number[]}}")
            out.append((t["name"], t["shape"], t["datatype"], t["data"]))
        return out

    path = "/v2/models/{name}/infer"
    if raw_body:  # the body read as plain JSON and checked by hand: no Pydantic model
        @app.post(path)
        async def infer_route(name: str, request: Request, authorization: Optional[str] = Header(None), x_api_key: Optional[str] = Header(None)):
            caller = who(authorization, x_api_key) if not threadpool else await run_in_threadpool(who, authorization, x_api_key)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise Problem("bad-request", 400, "request body: not valid JSON") from None
            inputs = raw_inputs(body)
            return infer(name, caller, inputs) if not threadpool else await run_in_threadpool(infer, name, caller, inputs)
    elif threadpool:  # FastAPI's way for blocking work: a plain def, run in Starlette's thread pool
        @app.post(path)
        def infer_route(name: str, body: InferRequest, authorization: Optional[str] = Header(None), x_api_key: Optional[str] = Header(None)):
            return infer(name, who(authorization, x_api_key), [(t.name, t.shape, t.datatype, t.data) for t in body.inputs])
    else:  # sqlite3 and numpy called straight on the event loop, as better-sqlite3 and the model run on heist's
        @app.post(path)
        async def infer_route(name: str, body: InferRequest, authorization: Optional[str] = Header(None), x_api_key: Optional[str] = Header(None)):
            return infer(name, who(authorization, x_api_key), [(t.name, t.shape, t.datatype, t.data) for t in body.inputs])

    @app.get("/v2/health/live")
    @app.get("/v2/health/ready")
    async def health():
        return {"live": True, "ready": True}

    @app.exception_handler(Problem)
    async def on_problem(_: Request, p: Problem):
        return p.response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "(root)"
        return Problem("bad-request", 400, f"request body: {where}: {first.get('msg')}").response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, e: StarletteHTTPException):
        kind = {404: "not-found", 405: "bad-request"}.get(e.status_code, "bad-request")
        return Problem(kind, e.status_code, str(e.detail)).response()

    @app.exception_handler(Exception)
    async def on_error(_: Request, e: Exception):
        return Problem("internal", 500, "the server could not answer this request").response()

    return app


# ---------------------------------------------------------------------------------------------
# Serving: bind the socket ourselves (port 0 works), one process or pre-forked workers on it.
# ---------------------------------------------------------------------------------------------

class ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.on_ready()


def die_with_parent() -> None:
    try:  # Linux: PR_SET_PDEATHSIG, so a worker never outlives a killed parent
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def parse_tiers(s: str) -> List[Tuple[Optional[int], int]]:
    tiers = []
    for part in s.split(","):
        up_to, micros = part.split(":")
        tiers.append((None if up_to.strip() in ("*", "") else int(up_to), int(micros)))
    return tiers


def main() -> None:
    p = argparse.ArgumentParser(description="FastAPI peer of heist serve: OIP v2 inference behind API key, quota, tiered price, prepaid balance and a ledger")
    p.add_argument("--onnx", required=True, help="the ONNX model (heist export --model zoo://fashion-mlp --out ...)")
    p.add_argument("--model-name", default=os.environ.get("PEER_MODEL_NAME"), help="the name in /v2/models/{name}/infer (default: the ONNX file's folder when it is model.onnx, else its stem)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--workers", type=int, default=1, help="processes accepting on the one socket (pre-forked, like gunicorn -k uvicorn.workers.UvicornWorker)")
    p.add_argument("--db", default=os.environ.get("PEER_DB"), help="the SQLite file (default: a new one in a temporary folder)")
    p.add_argument("--key", action="append", default=None, help="an API key to accept (repeatable; env PEER_API_KEY); one is made and printed when none is given")
    p.add_argument("--client", default="bench", help="the client the keys belong to")
    p.add_argument("--balance", type=float, default=float(os.environ.get("PEER_BALANCE", 1_000_000)), help="the client's prepaid balance in dollars, set at start")
    p.add_argument("--daily-quota", type=int, default=int(os.environ.get("PEER_DAILY_QUOTA", 100_000_000)), help="rows per UTC day")
    p.add_argument("--tiers", default=os.environ.get("PEER_TIERS", "1000:1,*:2"), help="UPTO:MICROS,...,*:MICROS micro-dollars per row (default: first 1000 rows a day at $0.000001, then $0.000002)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--threadpool", action="store_true", help="a sync def route in the thread pool instead of an async route")
    p.add_argument("--body", default="pydantic", choices=["pydantic", "raw"], help="pydantic: the body as Pydantic models (FastAPI's idiom); raw: json.loads and checks by hand")
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="uvicorn's loop (auto: uvloop when installed)")
    p.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"], help="uvicorn's HTTP parser (auto: httptools when installed)")
    p.add_argument("--log-level", default="warning")
    a = p.parse_args()

    model = OnnxMlp(a.onnx)
    name = a.model_name or (os.path.basename(os.path.dirname(os.path.abspath(a.onnx))) if os.path.basename(a.onnx) == "model.onnx"
                            else os.path.splitext(os.path.basename(a.onnx))[0])
    keys = a.key or ([os.environ["PEER_API_KEY"]] if os.environ.get("PEER_API_KEY") else [f"hk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"])
    db_path = a.db or os.path.join(tempfile.mkdtemp(prefix="heist-peer-"), "peer.sqlite")
    seed(db_path, a.client, keys, int(round(a.balance * 1e6)))

    app = build_app(model, name, db_path, a.daily_quota, parse_tiers(a.tiers), a.max_batch, a.threadpool, a.body == "raw")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    loop, http = a.loop, a.http  # what "auto" resolves to, as uvicorn decides it: uvloop and httptools when they import
    if loop == "auto":
        loop = "uvloop" if importable("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importable("httptools") else "h11"
    announce = json.dumps({"url": f"http://{a.host}:{port}", "model": name, "key": keys[0], "db": db_path, "workers": a.workers,
                           "loop": loop, "http": http, "route": "def (thread pool)" if a.threadpool else "async def", "body": a.body})

    def config() -> uvicorn.Config:
        return uvicorn.Config(app, loop=a.loop, http=a.http, lifespan="off", access_log=False, log_level=a.log_level, backlog=2048)

    def say_ready() -> None:
        sys.stdout.write(announce + "\n")
        sys.stdout.flush()

    if a.workers <= 1:
        ReadyServer(config(), say_ready).run(sockets=[sock])
        return

    ready_r, ready_w = os.pipe()
    children: List[int] = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            die_with_parent()
            ReadyServer(config(), lambda: os.write(ready_w, b".")).run(sockets=[sock])
            os._exit(0)
        children.append(pid)
    os.close(ready_w)
    sock.close()

    def stop(*_):
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    got = 0
    while got < a.workers:
        b = os.read(ready_r, a.workers - got)
        if not b:
            stop()
            sys.exit("a worker exited before listening")
        got += len(b)
    say_ready()
    code = 0
    for c in children:
        _, status = os.waitpid(c, 0)
        code = code or os.waitstatus_to_exitcode(status)
    sys.exit(max(0, code))


if __name__ == "__main__":
    main()
