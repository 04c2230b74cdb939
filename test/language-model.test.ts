import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { batch } from "../src/core/batch.js";
import { brownSplit } from "../src/data/brown.js";
import { contexts, isLanguageModel, type LanguageModel, logSoftmax, sentenceIds } from "../src/models/language-model.js";
import { exportLanguageModelOnnx } from "../src/models/lm-export.js";
import { loadModel } from "../src/models/load.js";
import { kneserNey } from "../src/models/ngram.js";
import { PRESETS, TrainSpec } from "../src/models/presets.js";
import { loadModelDir } from "../src/models/store.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { trainModel } from "../src/models/trainer.js";
import { parseVocabulary, tokenize, Vocabulary } from "../src/models/vocabulary.js";
import { specFromFlags } from "../src/cli/train.js";
import { trainTinyLm } from "./lm-helpers.js";
import { tempDir } from "./helpers.js";

describe("tokenizer and vocabulary", () => {
  it("splits text the way the Brown corpus does", () => {
    expect(tokenize('The jury said, "Atlanta\'s term-end report was over-all fine."')).toEqual([
      "the",
      "jury",
      "said",
      ",",
      "``",
      "atlanta's",
      "term-end",
      "report",
      "was",
      "over-all",
      "fine",
      ".",
      "''",
    ]);
    expect(tokenize("Mr. Smith paid $10,000 in the U.S.")).toEqual(["mr", ".", "smith", "paid", "$10,000", "in", "the", "u.s."]);
  });

  it("builds the most frequent tokens after <unk>, <bos>, <eos>, and encodes and decodes", () => {
    const v = Vocabulary.build(
      [
        ["b", "a", "a"],
        ["c", "b", "a"],
      ],
      5,
    );
    expect(v.tokens).toEqual(["<unk>", "<bos>", "<eos>", "a", "b"]);
    expect([v.unk, v.bos, v.eos, v.pad]).toEqual([0, 1, 2, 1]);
    expect(v.encode("A b zebra")).toEqual([3, 4, 0]);
    expect(v.decode([3, 4])).toBe(" a b");
    const bare = new Vocabulary(["x", "y"]);
    expect(() => bare.encode("x z")).toThrow(/not in the model's vocabulary/);
  });

  it("reads vocabulary files as a JSON list, a JSON map or lines", () => {
    expect(parseVocabulary('["a","b"]')).toEqual(["a", "b"]);
    expect(parseVocabulary('{"b": 1, "a": 0}')).toEqual(["a", "b"]);
    expect(parseVocabulary("a\nb\n")).toEqual(["a", "b"]);
    expect(() => parseVocabulary('{"a": 1}')).toThrow(/no token for id 0/);
  });
});

describe("the Brown corpus", () => {
  it("is split by whole files, every tenth held out", () => {
    const s = brownSplit();
    expect(s.testFiles).toHaveLength(50);
    expect(s.testFiles[0]).toBe("ca10");
    expect(s.train.length + s.test.length).toBeGreaterThan(55_000);
    expect(s.train[0].slice(0, 4)).toEqual(["the", "fulton", "county", "grand"]);
  });
});

describe("Kneser–Ney baselines", () => {
  it("give a distribution over the vocabulary for every context", () => {
    const split = brownSplit({ limit: 300 });
    const v = Vocabulary.build(split.train, 100);
    const train = contexts(sentenceIds(split.train, v), v, 2);
    for (const order of [2, 3]) {
      const m = kneserNey(train, v.size, order);
      // Every next token after one context: probabilities sum to 1.
      const row = 7;
      const ids = new Int32Array(v.size * 2);
      for (let t = 0; t < v.size; t++) ids.set(train.ids.subarray(row * 2, row * 2 + 2), t * 2);
      const all = { ids, next: Int32Array.from({ length: v.size }, (_, t) => t), context: 2 };
      let total = 0;
      for (let t = 0; t < v.size; t++) total += Math.exp(m.logProb(all, t));
      expect(total).toBeCloseTo(1, 6);
    }
  });
});

describe("heist's language model", () => {
  let dir: string;
  let lm: Awaited<ReturnType<typeof trainTinyLm>>;
  beforeAll(async () => {
    dir = tempDir("heist-lm-");
    lm = await trainTinyLm(join(dir, "tiny"));
  }, 120_000);
  afterAll(() => lm.model.dispose());

  it("learns: held-out perplexity below the unigram baseline, last layer logits = W·h + b", () => {
    const m = lm.manifest.metrics;
    expect(m.perplexity).toBeLessThan(m.unigramPerplexity);
    expect(m.perplexity).toBeGreaterThan(1);
    expect(m.bigramPerplexity).toBeLessThan(m.unigramPerplexity);
    const net = (lm.model as unknown as TfjsModel).net;
    const last = net.layers[net.layers.length - 1];
    expect(last.name).toBe("logits");
    expect((last.getConfig() as { activation: string }).activation).toBe("linear");
    expect(last.getWeights()[0].shape).toEqual([16, 64]); // [h, V]: the V × h map, transposed
  });

  it("is saved with its vocabulary and loads as a language model", async () => {
    expect(JSON.parse(readFileSync(join(dir, "tiny", "vocabulary.json"), "utf8"))).toEqual(lm.model.vocabulary.tokens);
    const { model, manifest } = await loadModelDir(join(dir, "tiny"));
    expect(isLanguageModel(model)).toBe(true);
    expect(manifest.files.vocabulary).toBe("vocabulary.json");
    const x = batch([1, 1, 5, 9, 0, 3], [3, 2]);
    expect(Array.from((await model.predict(x)).data)).toEqual(Array.from((await lm.model.predict(x)).data));
    model.dispose();
  });

  it("exports to ONNX (int64 ids → logits) that serves the same logits, with a vocabulary file", async () => {
    const arch = lm.manifest.architecture as Extract<TrainSpec["arch"], { kind: "lm" }>;
    const file = join(dir, "tiny.onnx");
    writeFileSync(file, exportLanguageModelOnnx((lm.model as unknown as TfjsModel).net, arch));
    const vocab = join(dir, "tiny.vocab.txt");
    writeFileSync(vocab, `${lm.model.vocabulary.tokens.join("\n")}\n`);
    const { model } = await loadModel(`onnx://${file}`, { vocabulary: vocab });
    expect(isLanguageModel(model)).toBe(true);
    expect((model as LanguageModel).context).toBe(2);
    const x = batch([1, 1, 5, 9, 0, 3], [3, 2]);
    const a = (await model.predict(x)).data;
    const b = (await lm.model.predict(x)).data;
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 4);
    const lp = logSoftmax(a.subarray(0, 64));
    expect(lp.reduce((s, v) => s + Math.exp(v), 0)).toBeCloseTo(1, 9);
    model.dispose();
  });

  it("refuses a vocabulary that does not match the model", async () => {
    const vocab = join(dir, "short.json");
    writeFileSync(vocab, JSON.stringify(["<unk>", "a"]));
    await expect(loadModel(join(dir, "tiny"), { vocabulary: vocab })).rejects.toThrow(/vocabulary has 2 tokens/);
  });

  it("is a zoo preset, brown-lm, trained on the Brown corpus", () => {
    const spec = TrainSpec.parse(PRESETS["brown-lm"].spec);
    expect(spec.arch).toEqual({ kind: "lm", context: 3, embedding: 48, hidden: 128, vocabulary: 3000 });
    expect(spec.dataset).toBe("brown");
    expect(existsSync(join(dir, "tiny", "manifest.json"))).toBe(true);
  });

  it("trains another hidden size from the command line", () => {
    expect(specFromFlags({ preset: "brown-lm", hidden: "64" }).arch).toMatchObject({ kind: "lm", hidden: 64 });
  });

  it("refuses another dataset", async () => {
    await expect(trainModel({ dataset: "digits", arch: { kind: "lm" } })).rejects.toThrow(/trains on a corpus/);
  });
});
