/**
 * Writing ONNX models from TypeScript: a small graph builder whose models protobufjs encodes over
 * heist's subset of the ONNX schema (onnx-schema.ts). Used to export heist's dense networks to ONNX
 * and to build their training steps as ONNX graphs run by ONNX Runtime.
 */
import protobuf from "protobufjs";
import { ONNX_SCHEMA } from "./onnx-schema.js";

const onnx = protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root;
const modelProto = onnx.lookupType("onnx.ModelProto");
const AttributeType = onnx.lookupEnum("onnx.AttributeProto.AttributeType").values;
const DataType = onnx.lookupEnum("onnx.TensorProto.DataType").values;

export type Dim = number | string;
export type Attr = number | number[] | string | { floats: number[] } | { float: number };

// The schema's messages as protobufjs takes them, fields by their .proto names; typed so a misspelt
// field fails to compile rather than being dropped by the encoder.
type TensorProto = { dims: number[]; data_type: number; name: string; raw_data: Uint8Array };
type ValueInfoProto = { name: string; type: { tensor_type: { elem_type: number; shape: { dim: ({ dim_value: number } | { dim_param: string })[] } } } };
type AttributeProto = { name: string; type: number; f?: number; i?: number; s?: Uint8Array; floats?: number[]; ints?: number[] };
type NodeProto = { input: string[]; output: string[]; name: string; op_type: string; attribute: AttributeProto[] };
type GraphProto = { node: NodeProto[]; name: string; initializer: TensorProto[]; input: ValueInfoProto[]; output: ValueInfoProto[] };
type ModelProto = {
  ir_version: number;
  producer_name: string;
  producer_version: string;
  graph: GraphProto;
  opset_import: { domain: string; version: number }[];
};

const utf8 = new TextEncoder();

function tensorProto(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): TensorProto {
  const raw_data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(); // little-endian, as ONNX wants
  return { dims: [...dims], data_type: data instanceof Float32Array ? DataType.FLOAT : DataType.INT64, name, raw_data };
}

function valueInfo(name: string, dims: readonly Dim[], elem = DataType.FLOAT): ValueInfoProto {
  const dim = dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elem, shape: { dim } } } }; // [] is a scalar: the shape is present, empty
}

function attribute(name: string, v: Attr): AttributeProto {
  if (typeof v === "number") return { name, type: AttributeType.INT, i: v };
  if (typeof v === "string") return { name, type: AttributeType.STRING, s: utf8.encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: [...v] };
  if ("float" in v) return { name, type: AttributeType.FLOAT, f: v.float };
  return { name, type: AttributeType.FLOATS, floats: [...v.floats] };
}

/** Builds one ONNX graph; `node` returns the name of its (first) output so graphs read like code. */
export interface GraphBuilder {
  /** A graph input, float32 unless said otherwise (token ids are int64). */
  input(name: string, dims: readonly Dim[], type?: "float32" | "int64"): string;
  output(name: string, dims: readonly Dim[]): void;
  constant(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): string;
  scalar(value: number): string;
  node(op: string, inputs: readonly string[], attrs?: Record<string, Attr>, outputName?: string): string;
  /** Serialise as a ModelProto (IR 8, default opset 17). */
  model(producer?: string): Uint8Array;
}

export function graphBuilder(name: string): GraphBuilder {
  const graph: GraphProto = { node: [], name, initializer: [], input: [], output: [] };
  const scalars = new Map<number, string>();
  let counter = 0;
  const g: GraphBuilder = {
    input(n, dims, type = "float32") {
      graph.input.push(valueInfo(n, dims, type === "int64" ? DataType.INT64 : DataType.FLOAT));
      return n;
    },
    output(n, dims) {
      graph.output.push(valueInfo(n, dims));
    },
    constant(n, dims, data) {
      graph.initializer.push(tensorProto(n, dims, data));
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
      const attrList = Object.entries(attrs).map(([k, v]) => attribute(k, v));
      graph.node.push({ input: [...ins], output: [out], name: `${op}_${counter++}`, op_type: op, attribute: attrList });
      return out;
    },
    model(producer = "heist") {
      const m: ModelProto = { ir_version: 8, producer_name: producer, producer_version: "0.1.0", graph, opset_import: [{ domain: "", version: 17 }] };
      // A tight copy: protobufjs hands small messages back as views into a shared pool.
      return new Uint8Array(modelProto.encode(m).finish());
    },
  };
  return g;
}
