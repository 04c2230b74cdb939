import { join } from "node:path";
import { writeFileAtomic } from "../../core/fs.js";
import { encodeNpy } from "../../data/npy.js";

export interface SavedFiles {
  /** W̃ (tokens × h, float64). */
  wTilde: string;
  /** The token id of each row of W̃ (int32). */
  tokenIds: string;
  /** The centred offset (tokens, float64). */
  offset: string;
}

/** W̃, its rows' token ids and the offset as `.npy` files in `dir` (what `np.load` reads). */
export async function saveLogitSvd(dir: string, r: { wTilde: Float64Array; tokenIds: Int32Array; offset: Float64Array; h: number }): Promise<SavedFiles> {
  const files: SavedFiles = { wTilde: join(dir, "w-tilde.npy"), tokenIds: join(dir, "token-ids.npy"), offset: join(dir, "offset.npy") };
  const rows = r.tokenIds.length;
  await writeFileAtomic(files.wTilde, encodeNpy(r.wTilde, [rows, r.h]));
  await writeFileAtomic(files.tokenIds, encodeNpy(r.tokenIds, [rows]));
  await writeFileAtomic(files.offset, encodeNpy(r.offset, [rows]));
  return files;
}
