import { resolve } from "node:path";
import { datasetSpec, DATASET_PARTS } from "../data/source.js";
import { DATASET_NAMES } from "../data/registry.js";

/** What --pool, --eval and --labeled accept, for --help (after the options). */
export const DATA_HELP = `
Data (--pool, --eval, --labeled):
  A dataset name (${DATASET_NAMES.join(", ")}) or a path.
  - NAME as --pool or --labeled: the whole dataset but its test split (fashion-mnist: all 60,000 training
    images); as --eval: its test split. NAME:PART picks a part of heist's seed-0 split instead:
    ${DATASET_PARTS.join(", ")} (public: every row but the test split; pool: the attacker's share, disjoint from
    what the zoo's victim trained on, which --pool NAME meant before: e.g. --pool fashion-mnist:pool for 10k).
  - FILE.csv[.gz]: a header line naming the columns, numeric values; the column named "label" (or the one
    --label-column names) holds the labels (class indices from 0, or class names); without one the rows
    are unlabelled (a pool may be, --eval and --labeled may not).
  - FILE.npy: float32, float64, uint8 or integers, any shape (first axis: rows; little-endian, C order);
    labels from a sibling FILE.labels.npy or FILE-labels.npy of integers, when there is one.
  - an IDX file (gzipped or not): labels from its sibling when named like Fashion-MNIST's
    (…-images-idx3-ubyte[.gz] beside …-labels-idx1-ubyte[.gz]).
  - a folder of PNG or JPEG images: one sub-folder per class (classes sorted by name), or images with no
    labels directly in it. Each image is resized (bilinear) to the victim's input shape ([H, W, C],
    [C, H, W], [H, W], or flat [H·W] / [H·W·3] for square images), made grey (BT.601 luma) when the
    victim takes one channel; alpha is dropped. JPEG needs the jpeg-js package.
  Rows are reshaped to the victim's input shape when their size matches it, and refused when it does not.
  Values are sent exactly as stored: heist never rescales what it sends. The one exception is unsigned
  bytes (images, IDX, uint8 .npy): --scale unit (the default) divides them by 255, as heist's own
  datasets and models are scaled; --scale raw keeps 0–255.`;

/** A data spec as steal.json keeps it: a dataset name as is, a path made absolute (a resumed run may start elsewhere). */
export const absoluteSpec = (spec: string | undefined): string | undefined => (spec === undefined || datasetSpec(spec) ? spec : resolve(spec));
