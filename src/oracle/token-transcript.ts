import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../core/errors.js";
import type { NextTokenOptions, TokenAnswer, TokenOracle } from "./token-oracle.js";

/** A language-model attack's transcript, beside the run's other files (not the OIP transcript.jsonl: another format). */
export const TOKEN_TRANSCRIPT_FILE = "lm-transcript.jsonl";

export interface RecordedTokenOracle extends TokenOracle {
  /** Answers known (read from disk or asked this run). */
  readonly size: number;
  /** Answers read from an earlier run's transcript. */
  readonly loaded: number;
  /** Questions answered from the transcript or the cache this run (paid for before, free now). */
  readonly hits: number;
  /** Write the answers not yet on disk now (they are written once per turn of the event loop anyway). */
  flush(): void;
}

/** What identifies a question: the prompt, how many log-probabilities, and the biases (in token order). */
export function questionKey(prompt: readonly number[], o: NextTokenOptions = {}): string {
  const bias = Object.entries(o.logitBias ?? {})
    .map(([id, b]) => [Number(id), b] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([id, b]) => `${id}:${b}`)
    .join(",");
  return createHash("sha1")
    .update(`${prompt.join(",")}|${o.topLogprobs ?? 0}|${bias}`)
    .digest("base64");
}

/** One line: the question (its key; the prompt, k and biases as asked) and the answer. */
interface Line {
  q: string;
  p: number[];
  k: number;
  b?: Record<number, number>;
  t: number;
  lp?: number | null;
  ids: number[];
  lps: (number | null)[];
  pt: number;
  ct: number;
  c: number;
}

/**
 * A cache and an on-disk transcript for a token oracle: the same question (prompt, k, biases) is never
 * paid for twice — concurrent asks of one question share one request — and every question and answer
 * (the top-k by token id, tokens, cost) is appended to DIR/lm-transcript.jsonl as it arrives, so a
 * stopped or repeated run asks the victim only what it has not asked before. An answer from the
 * transcript carries the tokens and cost it was paid with (what the attack reports as its cost); the
 * budget inside counts only what is paid now.
 */
export function recordedTokens(inner: TokenOracle, dir?: string): RecordedTokenOracle {
  const known = new Map<string, TokenAnswer>();
  const asking = new Map<string, Promise<TokenAnswer>>();
  const file = dir ? join(dir, TOKEN_TRANSCRIPT_FILE) : undefined;
  let loaded = 0;
  let hits = 0;
  if (file && existsSync(file)) {
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((text, i) => {
      if (!text.trim()) return;
      let l: Line;
      try {
        l = JSON.parse(text);
      } catch {
        if (lines.slice(i + 1).every((rest) => !rest.trim())) return; // a line cut by a crash: drop it
        return fail("bad-file", `${file} line ${i + 1} is not valid JSON`);
      }
      if (typeof l.q !== "string" || !Array.isArray(l.ids)) fail("bad-file", `${file} line ${i + 1} is not a language-model transcript line`);
      if (!known.has(l.q)) loaded++;
      // JSON has no -Infinity: a log-probability of an impossible token was written as null.
      const lps = l.lps.map((v) => v ?? Number.NEGATIVE_INFINITY);
      known.set(l.q, {
        token: l.t,
        logprob: l.lp ?? undefined,
        top: { ids: l.ids, logprobs: lps },
        promptTokens: l.pt,
        completionTokens: l.ct,
        costMicros: l.c,
      });
    });
  }
  if (dir) mkdirSync(dir, { recursive: true });
  // Lines written together once per turn of the event loop: thousands of small answers, few writes.
  let buffered: string[] = [];
  const flush = () => {
    if (file && buffered.length) appendFileSync(file, `${buffered.join("\n")}\n`);
    buffered = [];
  };

  return {
    vocabulary: inner.vocabulary,
    get size() {
      return known.size;
    },
    get loaded() {
      return loaded;
    },
    get hits() {
      return hits;
    },
    flush,
    async nextToken(prompt, o = {}) {
      const q = questionKey(prompt, o);
      const have = known.get(q);
      if (have) {
        hits++;
        return have;
      }
      const pending = asking.get(q);
      if (pending) {
        hits++;
        return pending;
      }
      const p = inner.nextToken(prompt, o).then((a) => {
        known.set(q, a);
        if (file) {
          if (buffered.length === 0) setImmediate(flush);
          const line: Line = {
            q,
            p: [...prompt],
            k: o.topLogprobs ?? 0,
            ...(o.logitBias && Object.keys(o.logitBias).length ? { b: o.logitBias } : {}),
            t: a.token,
            lp: a.logprob,
            ids: a.top.ids,
            lps: a.top.logprobs,
            pt: a.promptTokens,
            ct: a.completionTokens,
            c: a.costMicros,
          };
          buffered.push(JSON.stringify(line));
        }
        return a;
      });
      asking.set(q, p);
      try {
        return await p;
      } finally {
        asking.delete(q);
      }
    },
  };
}
