/**
 * Writing ONNX models from TypeScript: a minimal protobuf encoder for the few ONNX messages heist
 * emits (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), with the
 * field numbers of onnx/onnx.proto, and a small graph builder over it. Used to export heist's dense
 * networks to ONNX and to build their training step as one ONNX graph run by ONNX Runtime.
 */

type Bytes = Uint8Array;

function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value)); // negative int64s take ten bytes, two's complement
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

const utf8 = new TextEncoder();
const tag = (field: number, wire: number) => varint((field << 3) | wire);

/** A message under construction: appends encoded fields in order. */
class Msg {
  private parts: Bytes[] = [];
  int(field: number, v: number | bigint): this {
    this.parts.push(Uint8Array.from([...tag(field, 0), ...varint(v)]));
    return this;
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(5);
    b.set(tag(field, 5));
    new DataView(b.buffer).setFloat32(1, v, true);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, data: Bytes): this {
    this.parts.push(Uint8Array.from([...tag(field, 2), ...varint(data.length)]), data);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, utf8.encode(s));
  }
  msg(field: number, m: Msg): this {
    return this.bytes(field, m.encode());
  }
  encode(): Bytes {
    const n = this.parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

const FLOAT = 1;
const INT64 = 7;

export type Dim = number | string;
export type Attr = number | number[] | string | { floats: number[] } | { float: number };

function tensorProto(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): Msg {
  const m = new Msg();
  for (const d of dims) m.int(1, d);
  m.int(2, data instanceof Float32Array ? FLOAT : INT64);
  m.str(8, name);
  m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
  return m;
}

function valueInfo(name: string, dims: readonly Dim[], elem = FLOAT): Msg {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, typeof d === "number" ? new Msg().int(1, d) : new Msg().str(2, d));
  return new Msg().str(1, name).msg(2, new Msg().msg(1, new Msg().int(1, elem).msg(2, shape)));
}

function attribute(name: string, v: Attr): Msg {
  const m = new Msg().str(1, name);
  if (typeof v === "number") return m.int(3, v).int(20, 2);
  if (typeof v === "string") return m.bytes(4, utf8.encode(v)).int(20, 3);
  if (Array.isArray(v)) {
    for (const x of v) m.int(8, x);
    return m.int(20, 7);
  }
  if ("float" in v) return m.float(2, v.float).int(20, 1);
  for (const x of v.floats) m.float(7, x);
  return m.int(20, 6);
}

/** Builds one ONNX graph; `node` returns the name of its (first) output so graphs read like code. */
export interface GraphBuilder {
  input(name: string, dims: readonly Dim[]): string;
  output(name: string, dims: readonly Dim[]): void;
  constant(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): string;
  scalar(value: number): string;
  node(op: string, inputs: readonly string[], attrs?: Record<string, Attr>, outputName?: string): string;
  /** Serialise as a ModelProto (IR 8, default opset 17). */
  model(producer?: string): Uint8Array;
}

export function graphBuilder(name: string): GraphBuilder {
  const inputs: Msg[] = [];
  const outputs: Msg[] = [];
  const inits: Msg[] = [];
  const nodes: Msg[] = [];
  const scalars = new Map<number, string>();
  let counter = 0;
  const g: GraphBuilder = {
    input(n, dims) {
      inputs.push(valueInfo(n, dims));
      return n;
    },
    output(n, dims) {
      outputs.push(valueInfo(n, dims));
    },
    constant(n, dims, data) {
      inits.push(tensorProto(n, dims, data));
      return n;
    },
    scalar(value) {
      let n = scalars.get(value);
      if (!n) {
        n = g.constant(`const_${scalars.size}`, [], Float32Array.of(value));
        scalars.set(value, n);
      }
      return n;
    },
    node(op, ins, attrs = {}, outputName) {
      const out = outputName ?? `${op.toLowerCase()}_${counter++}`;
      const m = new Msg();
      for (const i of ins) m.str(1, i);
      m.str(2, out).str(3, `${op}_${counter++}`).str(4, op);
      for (const [k, v] of Object.entries(attrs)) m.msg(5, attribute(k, v));
      nodes.push(m);
      return out;
    },
    model(producer = "heist") {
      const graph = new Msg();
      for (const n of nodes) graph.msg(1, n);
      graph.str(2, name);
      for (const t of inits) graph.msg(5, t);
      for (const i of inputs) graph.msg(11, i);
      for (const o of outputs) graph.msg(12, o);
      return new Msg().int(1, 8).str(2, producer).str(3, "0.1.0").msg(7, graph).msg(8, new Msg().str(1, "").int(2, 17)).encode();
    },
  };
  return g;
}
