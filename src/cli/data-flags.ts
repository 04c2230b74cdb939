import { resolve } from "node:path";
import { datasetSpec, DATASET_PARTS } from "../data/source.js";
import { DATASET_NAMES } from "../data/registry.js";

/** What a path given as data may be, for --help; `taker` is who has the input shape ("the victim", "the model"). */
const filesHelp = (taker: string) => `  - FILE.csv[.gz]: a header line naming the columns, numeric values; the column named "label" (or the one
    --label-column names) holds the labels (class indices from 0, or class names); without one the rows
    are unlabelled (a pool may be; data that judges or teaches may not).
  - FILE.npy: float32, float64, uint8 or integers, any shape (first axis: rows; little-endian, C order);
    labels from a sibling FILE.labels.npy or FILE-labels.npy of integers, when there is one.
  - an IDX file (gzipped or not): labels from its sibling when named like Fashion-MNIST's
    (…-images-idx3-ubyte[.gz] beside …-labels-idx1-ubyte[.gz]).
  - a folder of PNG or JPEG images: one sub-folder per class (classes sorted by name), or images with no
    labels directly in it. Each image is resized (bilinear) to the input shape of ${taker} ([H, W, C],
    [C, H, W], [H, W], or flat [H·W] / [H·W·3] for square images) and made grey (BT.601 luma) when it
    takes one channel; alpha is dropped. JPEG needs the jpeg-js package.
  Rows are reshaped to the input shape of ${taker} when their size matches it, and refused when it does not.
  Values are sent exactly as stored: heist never rescales them. The one exception is unsigned bytes
  (images, IDX, uint8 .npy): --scale unit (the default) divides them by 255, as heist's own datasets and
  models are scaled; --scale raw keeps 0–255.`;

/** What --pool, --eval and --labeled accept, for `heist steal --help` (after the options). */
export const STEAL_DATA_HELP = `
Data (--pool, --eval, --labeled):
  A dataset name (${DATASET_NAMES.join(", ")}) or a path.
  - NAME as --pool or --labeled: the whole dataset but its test split (fashion-mnist: all 60,000 training
    images); as --eval: its test split. NAME:PART picks a part of heist's seed-0 split instead:
    ${DATASET_PARTS.join(", ")} (public: every row but the test split; pool: the attacker's share, disjoint
    from what the zoo's victim trained on, which --pool NAME meant before: --pool fashion-mnist:pool is 10k).
${filesHelp("the victim")}`;

/** What `heist eval --dataset` accepts. */
export const EVAL_DATA_HELP = `
Data (--dataset):
  A dataset name (${DATASET_NAMES.join(", ")}): its test split, as the model's own split made it when
  the model was trained on it. NAME:PART (${DATASET_PARTS.join(", ")}): that part of the seed-0 split. Or a path:
${filesHelp("the model")}`;

/** A data spec as steal.json keeps it: a dataset name as is, a path made absolute (a resumed run may start elsewhere). */
export const absoluteSpec = (spec: string | undefined): string | undefined => (spec === undefined || datasetSpec(spec) ? spec : resolve(spec));
