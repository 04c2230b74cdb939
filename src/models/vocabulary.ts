/**
 * A word-level vocabulary and tokenizer: what turns text into the token ids a language model reads
 * and its ids back into text. Tokens are lower-cased words and punctuation marks, split the way the
 * Brown corpus splits them (words keep inner hyphens, apostrophes and periods: "term-end",
 * "atlanta's"; opening and closing double quotes are the tokens `` and ''). A token's text piece is
 * a space and the token, so a completion's text is its pieces joined and no two tokens share a piece.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { fail } from "../core/errors.js";

/** The names of the special tokens heist's own models use (a user's vocabulary may name others, or lack them). */
export const SpecialTokens = z.object({
  /** What an unknown word becomes; without it, text with unknown words is refused. */
  unk: z.string().default("<unk>"),
  /** Pads the context before the first token. */
  bos: z.string().default("<bos>"),
  /** Ends a sentence: generation stops there. */
  eos: z.string().default("<eos>"),
});
export type SpecialTokens = z.infer<typeof SpecialTokens>;
export const DEFAULT_SPECIALS: SpecialTokens = { unk: "<unk>", bos: "<bos>", eos: "<eos>" };

const WORD = /``|''|--|\.\.\.|[\p{L}\p{N}$%&]+(?:[-'’.,/][\p{L}\p{N}]+)*\.?|[^\s\p{L}\p{N}]/gu;

/**
 * Text → tokens: lower-cased, words and punctuation apart. A double quote opens (``) at the start or
 * after a space or an opening bracket, and closes ('') elsewhere. A trailing period stays on a word
 * only when the word has another period inside it ("u.s."), as the corpus writes abbreviations.
 */
export function tokenize(text: string): string[] {
  const marked = text.toLowerCase().replace(/"/g, (_q, at: number, s: string) => (at === 0 || /[\s([{]/.test(s[at - 1]) ? " `` " : " '' "));
  const out: string[] = [];
  for (const m of marked.match(WORD) ?? []) {
    if (m.length > 1 && m.endsWith(".") && !m.slice(0, -1).includes(".") && /[\p{L}\p{N}]/u.test(m)) out.push(m.slice(0, -1), ".");
    else out.push(m);
  }
  return out;
}

export class Vocabulary {
  readonly tokens: readonly string[];
  readonly unk: number | undefined;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  private readonly ids: Map<string, number>;

  constructor(tokens: readonly string[], specials: SpecialTokens = DEFAULT_SPECIALS) {
    if (tokens.length === 0) fail("bad-input", "a vocabulary needs at least one token");
    this.tokens = [...tokens];
    this.ids = new Map();
    this.tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    this.unk = this.ids.get(specials.unk);
    this.bos = this.ids.get(specials.bos);
    this.eos = this.ids.get(specials.eos);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** A token's id; unknown tokens are <unk> (or undefined when there is none). */
  id(token: string): number | undefined {
    return this.ids.get(token) ?? this.unk;
  }

  /** Text → ids. Throws "bad-input" for an unknown word when the vocabulary has no <unk>. */
  encode(text: string): number[] {
    return tokenize(text).map(
      (t) => this.id(t) ?? fail("bad-input", `"${t}" is not in the model's vocabulary, which has no unknown-word token`, "known words, or token ids"),
    );
  }

  /** The id padding a context before the first token (<bos>, else <eos>, else 0). */
  get pad(): number {
    return this.bos ?? this.eos ?? 0;
  }

  /** A token's text piece: a space, then the token. */
  piece(id: number): string {
    return ` ${this.tokens[id] ?? fail("bad-input", `token id ${id} is outside the vocabulary (0 … ${this.size - 1})`)}`;
  }

  decode(ids: readonly number[]): string {
    return ids.map((i) => this.piece(i)).join("");
  }

  /**
   * The `size` most frequent tokens of some sentences (ties by token, so one corpus gives one
   * vocabulary), after the special tokens <unk>, <bos>, <eos> (ids 0, 1, 2).
   */
  static build(sentences: readonly (readonly string[])[], size: number, specials: SpecialTokens = DEFAULT_SPECIALS): Vocabulary {
    const counts = new Map<string, number>();
    for (const s of sentences) for (const w of s) counts.set(w, (counts.get(w) ?? 0) + 1);
    const special = [specials.unk, specials.bos, specials.eos];
    for (const t of special) counts.delete(t);
    const words = [...counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, Math.max(0, size - special.length))
      .map(([w]) => w);
    return new Vocabulary([...special, ...words], specials);
  }
}

/**
 * Read a vocabulary file: a JSON array of token strings (id = position), or a JSON object
 * token → id (as Hugging Face's vocab.json), or plain text with one token per line.
 */
export async function readVocabulary(path: string, specials?: Partial<SpecialTokens>): Promise<Vocabulary> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return fail("not-found", `cannot read the vocabulary file ${path}`);
  }
  return new Vocabulary(parseVocabulary(text, path), SpecialTokens.parse(specials ?? {}));
}

export function parseVocabulary(text: string, source = "vocabulary"): string[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return fail("bad-file", `${source} is not valid JSON`);
    }
    if (Array.isArray(raw) && raw.every((t) => typeof t === "string")) return raw as string[];
    const byToken = z.record(z.string(), z.number().int().nonnegative()).safeParse(raw);
    if (!byToken.success) return fail("bad-file", `${source} is neither a list of tokens nor a map of token → id`);
    const tokens: string[] = [];
    for (const [t, i] of Object.entries(byToken.data)) tokens[i] = t;
    const hole = Array.from(tokens, (t) => t === undefined).indexOf(true);
    if (hole >= 0 || tokens.length === 0) return fail("bad-file", `${source} has no token for id ${Math.max(0, hole)}`);
    return tokens;
  }
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}
