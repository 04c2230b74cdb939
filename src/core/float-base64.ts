/** Float32 values as base64 of their bytes (how heist stores inputs and outputs in text: JSON lines, store columns), and back. */
export const toBase64 = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");

/** Copies: a decoded Buffer may sit at an offset no Float32Array can start at. */
export function float32FromBase64(s: string): Float32Array {
  const b = Buffer.from(s, "base64");
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
