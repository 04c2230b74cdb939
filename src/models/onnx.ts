/**
 * ONNX Runtime backend: serves any `.onnx` file with one float32 input (or int64 / int32, as a
 * language model's token ids: heist's rows of numbers are rounded into it) whose first dimension is
 * the batch (dynamic, or fixed at 1) as a heist Model. Outputs are mapped by name and type: the
 * scores come from a float output (the first, or the one the asked kind names: a file with both
 * `logits` and `probabilities` serves either), class labels from an integer output when there is one
 * (scikit-learn classifiers exported by skl2onnx put `label`, INT64, before `probabilities`), and a
 * few probe rows tell whether the served scores sum to 1 per row (probabilities, whatever their name). The runtime is onnxruntime-node, whose
 * native binary ships inside the npm package itself (nothing is downloaded at install time; see
 * `.npmrc`), so loading works offline on any supported platform. Inference runs on the CPU.
 */
import { stat } from "node:fs/promises";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { type Batch, sizeOf } from "../core/batch.js";
import { HeistError, fail } from "../core/errors.js";
import { rng, uniform } from "../core/rng.js";
import { type Model, OutputKind } from "./model.js";

export interface LoadOnnxOptions {
  /** What the output rows mean; guessed from the output's name when omitted. */
  output?: OutputKind;
}

export interface OnnxModel extends Model {
  readonly inputName: string;
  /** The float output served as scores. */
  readonly outputName: string;
  /** The integer output holding one class label per row, when the file has one (skl2onnx's `label`). */
  readonly labelOutputName?: string;
  /** Every output of the file, with its element type. */
  readonly outputs: readonly { name: string; type: string }[];
  /** Measured on probe rows at load: the served scores sum to 1 on every row (probabilities, whatever they are called). */
  readonly sumsToOne: boolean;
  /** Scores and the file's own class labels, in one run (needs `labelOutputName`). */
  predictLabeled(x: Batch): Promise<{ values: Batch; labels: Int32Array }>;
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

const FLOAT = new Set(["float32", "float64", "float16"]);
const INTEGER = new Set(["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]);
const NUMERIC = new Set([...FLOAT, ...INTEGER]);
/** Rows summing to 1 within this (float32 softmax, or a tree's leaf fractions) are probabilities. */
const SUM_TOLERANCE = 1e-4;
type InputType = "float32" | "int64" | "int32";
const INPUT_TYPES = new Set<string>(["float32", "int64", "int32"]);

function toFloat32(data: unknown): Float32Array {
  if (data instanceof Float32Array) return data.slice();
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data, (v) => Number(v));
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) return Float32Array.from(data as unknown as ArrayLike<number>);
  return fail("unsupported", "the ONNX model's output is not a numeric tensor", "float32 or another numeric type");
}

/** Run `n` rows and read the named outputs, each as float32 values with its width per row. */
async function runOutputs(
  session: InferenceSession,
  m: { path: string; inputName: string; inputShape: readonly number[]; inputType?: InputType },
  data: Float32Array,
  n: number,
  names: readonly string[],
): Promise<Record<string, { values: Float32Array; width: number }>> {
  // ORT reads the typed array's whole buffer in some bindings; hand it a tight copy if it is a view.
  const tight = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
  const dims = [n, ...m.inputShape];
  // Integer inputs (a language model's token ids) take heist's rows of numbers rounded.
  const input =
    m.inputType === "int64"
      ? new Tensor(
          "int64",
          BigInt64Array.from(tight, (v) => BigInt(Math.round(v))),
          dims,
        )
      : m.inputType === "int32"
        ? new Tensor(
            "int32",
            Int32Array.from(tight, (v) => Math.round(v)),
            dims,
          )
        : new Tensor("float32", tight, dims);
  const feeds = { [m.inputName]: input };
  let result: InferenceSession.ReturnType;
  try {
    result = await session.run(feeds, [...names]);
  } catch (e) {
    return fail("bad-input", `ONNX Runtime could not run ${m.path}: ${(e as Error).message}`);
  }
  const read: Record<string, { values: Float32Array; width: number }> = {};
  for (const name of names) {
    const out = result[name] as Tensor | undefined;
    if (!out) return fail("internal", `ONNX Runtime returned no "${name}" output`);
    const values = toFloat32(out.data);
    const dims = out.dims;
    if (dims.length === 0 || dims[0] !== n) {
      fail("unsupported", `output "${name}" has shape [${dims.join(", ")}] for ${n} input rows`, `[${n}, ...]`);
    }
    read[name] = { values, width: n === 0 ? sizeOf(dims.slice(1)) : values.length / n };
  }
  return read;
}

/**
 * Whether an output's rows sum to 1 (each value in [0, 1]) on a few probe rows — an all-zero row and
 * three uniform in [0, 1) — whatever the model's input space: a softmax sums to 1 on any input, logits
 * almost never. A probe that cannot run says no.
 */
async function probeSumsToOne(
  session: InferenceSession,
  m: { path: string; inputName: string; inputShape: readonly number[]; batchOfOne: boolean },
  name: string,
): Promise<boolean> {
  const d = sizeOf(m.inputShape);
  const rows = 4;
  const data = new Float32Array(rows * d);
  data.set(uniform((rows - 1) * d, rng(0)), d);
  try {
    const parts = [];
    for (let i = 0; i < rows; i += m.batchOfOne ? 1 : rows) {
      const n = m.batchOfOne ? 1 : rows;
      parts.push(await runOutputs(session, m, data.subarray(i * d, (i + n) * d), n, [name]));
    }
    const { width } = parts[0][name];
    if (width < 2) return false;
    const values = parts.flatMap((p) => Array.from(p[name].values));
    for (let i = 0; i < rows; i++) {
      const row = values.slice(i * width, (i + 1) * width);
      if (row.some((v) => !(v >= -SUM_TOLERANCE && v <= 1 + SUM_TOLERANCE))) return false;
      if (Math.abs(row.reduce((a, b) => a + b, 0) - 1) > SUM_TOLERANCE) return false;
    }
    return true;
  } catch {
    return false;
  }
}

class OnnxRuntimeModel implements OnnxModel {
  readonly output: OutputKind;
  outputWidth = 0;
  private session: InferenceSession | undefined;

  sumsToOne = false;
  labelOutputName: string | undefined;
  outputs: { name: string; type: string }[] = [];

  constructor(
    session: InferenceSession,
    readonly path: string,
    readonly inputName: string,
    readonly outputName: string,
    readonly inputShape: readonly number[],
    /** True when the model's batch dimension is fixed at 1, so rows run one at a time. */
    readonly batchOfOne: boolean,
    output: OutputKind,
    /** The input's element type: float32, or integer ids. */
    readonly inputType: InputType = "float32",
  ) {
    this.session = session;
    this.output = output;
  }

  private async runRows(data: Float32Array, n: number): Promise<{ values: Float32Array; width: number }> {
    const out = await runOutputs(this.session ?? fail("internal", `the ONNX model ${this.path} was disposed`), this, data, n, [this.outputName]);
    return out[this.outputName];
  }

  /** Learns the output width by running one all-zero row. */
  async discoverOutputWidth(): Promise<void> {
    const { width } = await this.runRows(new Float32Array(sizeOf(this.inputShape)), 1);
    if (!(width > 0)) fail("unsupported", `output "${this.outputName}" of ${this.path} is empty for one input row`);
    this.outputWidth = width;
  }

  async predict(x: Batch): Promise<Batch> {
    return (await this.run(x, false)).values;
  }

  async predictLabeled(x: Batch): Promise<{ values: Batch; labels: Int32Array }> {
    if (!this.labelOutputName) fail("unsupported", `${this.path} has no integer label output`);
    const { values, labels } = await this.run(x, true);
    return { values, labels: labels! };
  }

  private async run(x: Batch, withLabels: boolean): Promise<{ values: Batch; labels?: Int32Array }> {
    const rowShape = x.shape.slice(1);
    if (rowShape.length !== this.inputShape.length || rowShape.some((d, i) => d !== this.inputShape[i])) {
      fail("bad-input", `input rows have shape [${rowShape.join(", ")}]`, `[${this.inputShape.join(", ")}]`);
    }
    const n = x.shape[0];
    const w = this.outputWidth;
    const labels = withLabels ? new Int32Array(n) : undefined;
    if (n === 0) return { values: { data: new Float32Array(0), shape: [0, w] }, labels };
    const rowSize = sizeOf(this.inputShape);
    const out = new Float32Array(n * w);
    const chunk = this.batchOfOne ? 1 : n;
    const names = labels ? [this.outputName, this.labelOutputName!] : [this.outputName];
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const session = this.session ?? fail("internal", `the ONNX model ${this.path} was disposed`);
      const got = await runOutputs(session, this, x.data.subarray(start * rowSize, (start + rows) * rowSize), rows, names);
      const { values, width } = got[this.outputName];
      if (width !== w) {
        fail("internal", `output "${this.outputName}" has ${width} values per row, but ${w} were expected`);
      }
      out.set(values, start * w);
      if (labels) {
        const l = got[this.labelOutputName!];
        for (let i = 0; i < rows; i++) labels[start + i] = l.values[i * l.width];
      }
    }
    return { values: { data: out, shape: [n, w] }, labels };
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
  if (session.outputNames.length === 0) fail("unsupported", `${path} has no outputs`, "at least one output");

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

  // Outputs by name and type: scores from a float output, class labels from an integer one.
  const outs = session.outputNames.map((name) => {
    const meta = metadataFor(session.outputMetadata, name);
    const tensor = meta?.isTensor ? (meta as InferenceSession.TensorValueMetadata) : undefined;
    return { name, type: tensor ? tensor.type : meta ? "not a tensor" : "unknown", shape: tensor?.shape };
  });
  const floats = outs.filter((o) => FLOAT.has(o.type) || o.type === "unknown");
  const m = { path, inputName, inputShape, batchOfOne: first === 1, inputType: type as InputType };
  const sums = new Map<string, boolean>();
  const summing = async (name: string) => {
    if (!sums.has(name)) sums.set(name, await probeSumsToOne(session, m, name));
    return sums.get(name)!;
  };
  const named = (re: RegExp) => floats.find((o) => re.test(o.name.toLowerCase()));
  const firstWhere = async (want: boolean) => {
    for (const o of floats) if ((await summing(o.name)) === want) return o;
    return undefined;
  };
  const asked = opts.output !== undefined ? OutputKind.parse(opts.output) : undefined;
  const chosen =
    (asked === "logits"
      ? (named(/logit/) ?? (await firstWhere(false)))
      : asked === "probabilities"
        ? (named(/prob|softmax/) ?? (await firstWhere(true)))
        : asked === "embedding"
          ? named(/emb/)
          : undefined) ??
    floats[0] ??
    outs[0];
  const outputName = chosen.name;
  if (chosen.type === "not a tensor") fail("unsupported", `output "${outputName}" of ${path} is not a tensor`, "a numeric output tensor");
  if (chosen.type !== "unknown" && !NUMERIC.has(chosen.type)) {
    fail("unsupported", `output "${outputName}" of ${path} is ${chosen.type}`, "a numeric output tensor");
  }
  let outputWidth = 0;
  const tail = chosen.shape?.slice(1) ?? [];
  if (chosen.shape && chosen.shape.length >= 2 && tail.every(isKnown)) outputWidth = sizeOf(tail as number[]);
  const sumsToOne = FLOAT.has(chosen.type) || chosen.type === "unknown" ? await summing(outputName) : false;
  const guessed = guessOutputKind(outputName);
  // A float output its name does not explain is probabilities when its rows sum to 1, else logits.
  const output = asked ?? (guessed === "logits" && !/logit/i.test(outputName) && sumsToOne ? "probabilities" : guessed);
  const model = new OnnxRuntimeModel(session, path, inputName, outputName, inputShape, first === 1, output, type as InputType);
  model.outputWidth = outputWidth;
  model.sumsToOne = sumsToOne;
  model.outputs = outs.map(({ name, type }) => ({ name, type }));
  // One class label per row: an integer output of shape [batch] or [batch, 1] beside float scores.
  if (chosen !== outs.find((o) => INTEGER.has(o.type)))
    model.labelOutputName = outs.find(
      (o) => INTEGER.has(o.type) && o.shape !== undefined && o.shape.length <= 2 && (o.shape.length === 1 || o.shape[1] === 1),
    )?.name;
  return model;
}
