/**
 * ONNX Runtime backend: serves any `.onnx` file with one float32 input (or int64 / int32, as a
 * language model's token ids: heist's rows of numbers are rounded into it) whose first dimension is
 * the batch (dynamic, or fixed at 1) as a heist Model. The runtime is onnxruntime-node, whose
 * native binary ships inside the npm package itself (nothing is downloaded at install time; see
 * `.npmrc`), so loading works offline on any supported platform. Inference runs on the CPU.
 */
import { stat } from "node:fs/promises";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { type Batch, sizeOf } from "../core/batch.js";
import { HeistError, fail } from "../core/errors.js";
import { type Model, OutputKind } from "./model.js";

export interface LoadOnnxOptions {
  /** What the output rows mean; guessed from the output's name when omitted. */
  output?: OutputKind;
}

export interface OnnxModel extends Model {
  readonly inputName: string;
  readonly outputName: string;
}

type Dim = number | string;
type ValueMeta = InferenceSession.ValueMetadata;

const fmtShape = (shape: readonly Dim[]): string => `[${shape.map((d) => (typeof d === "string" ? `"${d}"` : d)).join(", ")}]`;
const isKnown = (d: Dim | undefined): d is number => typeof d === "number" && Number.isInteger(d) && d > 0;

/** Guess the output kind from the output's name. */
export function guessOutputKind(outputName: string): OutputKind {
  const n = outputName.toLowerCase();
  if (n.includes("prob") || n.includes("softmax")) return "probabilities";
  if (n.includes("emb")) return "embedding";
  return "logits";
}

function metadataFor(meta: readonly ValueMeta[] | undefined, name: string): ValueMeta | undefined {
  if (!Array.isArray(meta)) return undefined;
  return meta.find((m) => m?.name === name);
}

type InputType = "float32" | "int64" | "int32";
const INPUT_TYPES = new Set<string>(["float32", "int64", "int32"]);

const NUMERIC = new Set(["float32", "float64", "float16", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]);

function toFloat32(data: unknown): Float32Array {
  if (data instanceof Float32Array) return data.slice();
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data, (v) => Number(v));
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) return Float32Array.from(data as unknown as ArrayLike<number>);
  return fail("unsupported", "the ONNX model's output is not a numeric tensor", "float32 or another numeric type");
}

class OnnxRuntimeModel implements OnnxModel {
  readonly output: OutputKind;
  outputWidth = 0;
  private session: InferenceSession | undefined;

  constructor(
    session: InferenceSession,
    readonly path: string,
    readonly inputName: string,
    readonly outputName: string,
    readonly inputShape: readonly number[],
    /** True when the model's batch dimension is fixed at 1, so rows run one at a time. */
    private readonly batchOfOne: boolean,
    output: OutputKind,
    /** The input's element type: float32, or integer ids. */
    private readonly inputType: InputType = "float32",
  ) {
    this.session = session;
    this.output = output;
  }

  private async runRows(data: Float32Array, n: number): Promise<{ values: Float32Array; width: number }> {
    const session = this.session ?? fail("internal", `the ONNX model ${this.path} was disposed`);
    // ORT reads the typed array's whole buffer in some bindings; hand it a tight copy if it is a view.
    const tight = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    const dims = [n, ...this.inputShape];
    const feeds = {
      [this.inputName]:
        this.inputType === "int64"
          ? new Tensor(
              "int64",
              BigInt64Array.from(tight, (v) => BigInt(Math.round(v))),
              dims,
            )
          : this.inputType === "int32"
            ? new Tensor(
                "int32",
                Int32Array.from(tight, (v) => Math.round(v)),
                dims,
              )
            : new Tensor("float32", tight, dims),
    };
    let result: InferenceSession.ReturnType;
    try {
      result = await session.run(feeds, [this.outputName]);
    } catch (e) {
      return fail("bad-input", `ONNX Runtime could not run ${this.path}: ${(e as Error).message}`);
    }
    const out = result[this.outputName] as Tensor | undefined;
    if (!out) return fail("internal", `ONNX Runtime returned no "${this.outputName}" output`);
    const values = toFloat32(out.data);
    const outDims = out.dims;
    if (outDims.length === 0 || outDims[0] !== n) {
      fail("unsupported", `output "${this.outputName}" has shape [${outDims.join(", ")}] for ${n} input rows`, `[${n}, ...]`);
    }
    return { values, width: n === 0 ? sizeOf(outDims.slice(1)) : values.length / n };
  }

  /** Learns the output width by running one all-zero row. */
  async discoverOutputWidth(): Promise<void> {
    const { width } = await this.runRows(new Float32Array(sizeOf(this.inputShape)), 1);
    if (!(width > 0)) fail("unsupported", `output "${this.outputName}" of ${this.path} is empty for one input row`);
    this.outputWidth = width;
  }

  async predict(x: Batch): Promise<Batch> {
    const rowShape = x.shape.slice(1);
    if (rowShape.length !== this.inputShape.length || rowShape.some((d, i) => d !== this.inputShape[i])) {
      fail("bad-input", `input rows have shape [${rowShape.join(", ")}]`, `[${this.inputShape.join(", ")}]`);
    }
    const n = x.shape[0];
    const w = this.outputWidth;
    if (n === 0) return { data: new Float32Array(0), shape: [0, w] };
    const rowSize = sizeOf(this.inputShape);
    const out = new Float32Array(n * w);
    const chunk = this.batchOfOne ? 1 : n;
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const { values, width } = await this.runRows(x.data.subarray(start * rowSize, (start + rows) * rowSize), rows);
      if (width !== w) {
        fail("internal", `output "${this.outputName}" has ${width} values per row, but ${w} were expected`);
      }
      out.set(values, start * w);
    }
    return { data: out, shape: [n, w] };
  }

  dispose(): void {
    const s = this.session;
    this.session = undefined;
    if (s) void s.release().catch(() => undefined);
  }
}

/**
 * Loads an ONNX model file. Throws HeistError "not-found" when there is no such file, "bad-file"
 * when it is not a valid ONNX model, and "unsupported" when its input is not one float32 tensor
 * with a leading batch dimension followed by known sizes.
 */
export async function loadOnnxModel(path: string, opts: LoadOnnxOptions = {}): Promise<OnnxModel> {
  const info = await stat(path).catch(() => undefined);
  if (!info) fail("not-found", `no ONNX model at ${path}`);
  if (!info!.isFile()) fail("bad-file", `${path} is not a file`, "an .onnx model file");

  return openOnnx(path, path, opts);
}

/** An ONNX model held in memory (heist's own export, scored before it is written anywhere); `label` names it in errors. */
export function onnxModelFromBytes(bytes: Uint8Array, label: string, opts: LoadOnnxOptions = {}): Promise<OnnxModel> {
  return openOnnx(bytes, label, opts);
}

async function openOnnx(source: string | Uint8Array, path: string, opts: LoadOnnxOptions): Promise<OnnxModel> {
  let session: InferenceSession;
  try {
    session =
      typeof source === "string"
        ? await InferenceSession.create(source, { logSeverityLevel: 3 })
        : await InferenceSession.create(source, { logSeverityLevel: 3 });
  } catch (e) {
    return fail("bad-file", `${path} is not a valid ONNX model: ${(e as Error).message}`);
  }

  try {
    const model = await describe(session, path, opts);
    if (model.outputWidth === 0) await model.discoverOutputWidth();
    return model;
  } catch (e) {
    void session.release().catch(() => undefined);
    if (e instanceof HeistError) throw e;
    return fail("bad-file", `${path} could not be prepared: ${(e as Error).message}`);
  }
}

async function describe(session: InferenceSession, path: string, opts: LoadOnnxOptions): Promise<OnnxRuntimeModel> {
  const expected = "one float32 (or int64 / int32 ids) input of shape [batch, ...] with a dynamic (or 1) batch dimension and known sizes after it";
  const inputNames = session.inputNames;
  if (inputNames.length !== 1) {
    fail("unsupported", `${path} has ${inputNames.length} inputs (${inputNames.map((n) => `"${n}"`).join(", ")})`, expected);
  }
  const inputName = inputNames[0];
  const outputName = session.outputNames[0] ?? fail("unsupported", `${path} has no outputs`, "at least one output");

  // Metadata exists in onnxruntime-node >= 1.21; without it the input's shape cannot be checked.
  const inMeta = metadataFor(session.inputMetadata, inputName);
  if (!inMeta) {
    fail("unsupported", `ONNX Runtime gives no metadata for input "${inputName}" of ${path}, so its shape is unknown`, expected);
  }
  if (!inMeta!.isTensor) fail("unsupported", `input "${inputName}" of ${path} is not a tensor`, expected);
  const { type, shape } = inMeta as InferenceSession.TensorValueMetadata;
  const described = `input "${inputName}" of ${path} is ${type} ${shape.length ? fmtShape(shape) : "with unknown shape"}`;
  if (!INPUT_TYPES.has(type)) fail("unsupported", described, expected);
  if (shape.length < 2) fail("unsupported", described, expected);
  const first = shape[0];
  if (isKnown(first) && first !== 1) {
    fail("unsupported", `${described}: its first dimension is fixed at ${first}, not a batch dimension`, expected);
  }
  const rest = shape.slice(1);
  if (!rest.every(isKnown)) fail("unsupported", `${described}: sizes after the batch dimension must be known`, expected);
  const inputShape = rest as number[];

  let outputWidth = 0;
  const outMeta = metadataFor(session.outputMetadata, outputName);
  if (outMeta?.isTensor) {
    const o = outMeta as InferenceSession.TensorValueMetadata;
    if (!NUMERIC.has(o.type)) {
      fail("unsupported", `output "${outputName}" of ${path} is ${o.type}`, "a numeric output tensor");
    }
    const tail = o.shape.slice(1);
    if (o.shape.length >= 2 && tail.every(isKnown)) outputWidth = sizeOf(tail as number[]);
  } else if (outMeta && !outMeta.isTensor) {
    fail("unsupported", `output "${outputName}" of ${path} is not a tensor`, "a numeric output tensor");
  }

  const output = opts.output !== undefined ? OutputKind.parse(opts.output) : guessOutputKind(outputName);
  const model = new OnnxRuntimeModel(session, path, inputName, outputName, inputShape, first === 1, output, type as InputType);
  model.outputWidth = outputWidth;
  return model;
}
