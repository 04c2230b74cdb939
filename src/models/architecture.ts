import { z } from "zod";

export const Activation = z.enum(["relu", "tanh", "sigmoid", "elu"]);

/** Every architecture heist can train, as data: this is what a manifest records and `--arch` selects. */
export const Architecture = z.discriminatedUnion("kind", [
  /** Multinomial logistic regression (binary logistic regression when there are two classes). */
  z.object({ kind: z.literal("softmax"), l2: z.number().nonnegative().default(0) }),
  z.object({
    kind: z.literal("mlp"),
    hidden: z.array(z.number().int().positive()).min(1).default([128]),
    activation: Activation.default("relu"),
    l2: z.number().nonnegative().default(0),
  }),
  z.object({
    kind: z.literal("cnn"),
    filters: z.array(z.number().int().positive()).min(1).default([32, 64]),
    dense: z.number().int().positive().default(128),
    dropout: z.number().min(0).max(0.9).default(0.25),
  }),
  z.object({
    kind: z.literal("tree"),
    maxDepth: z.number().int().positive().default(8),
    minSamplesLeaf: z.number().int().positive().default(1),
  }),
  /** SimCLR-style self-supervised CNN encoder; `width` is the embedding size it serves. */
  z.object({
    kind: z.literal("encoder"),
    filters: z.array(z.number().int().positive()).min(1).default([32, 64]),
    width: z.number().int().positive().default(128),
    projection: z.number().int().positive().default(64),
    temperature: z.number().positive().default(0.5),
  }),
  /**
   * A fixed-context neural language model (Bengio et al. 2003, see language-model.ts): the last
   * `context` tokens' embeddings, concatenated, a tanh layer of `hidden` units, then logits = W·h + b
   * over a word-level vocabulary of `vocabulary` tokens (the most frequent words, <unk>, <bos>, <eos>).
   */
  z.object({
    kind: z.literal("lm"),
    context: z.number().int().min(1).max(32).default(3),
    embedding: z.number().int().positive().max(1024).default(48),
    hidden: z.number().int().positive().max(4096).default(128),
    vocabulary: z.number().int().min(4).max(100_000).default(3000),
  }),
]);
export type Architecture = z.infer<typeof Architecture>;
export type ArchitectureKind = Architecture["kind"];
export const ARCHITECTURE_KINDS = Architecture.options.map((o) => o.shape.kind.value);
