/** How precise the answers are: every tolerance of the search scales with it. */
import type { Extraction } from "./extraction.js";
import { f32, maxAbs, norm } from "./vectors.js";

/** Estimate the answers' precision from second differences along tiny collinear segments. */
export async function measureNoise(ex: Extraction): Promise<void> {
  const h = 1e-3;
  // Seven collinear points per site, five second differences: a kink spoils at most two of them
  // (their median is kept), and a site that happens to sit on kinks is outvoted by the others.
  const sites = Array.from({ length: 8 }, () => {
    const c = ex.boxPoint();
    const v = Float64Array.from({ length: ex.d }, () => ex.r.normal());
    const s = norm(v);
    return [-3, -2, -1, 0, 1, 2, 3].map((t) => f32(c.map((ci, i) => ci + (t * h * v[i]) / s)));
  });
  const f = await ex.ask(sites.flat());
  ex.k = f[0].length;
  const est = sites
    .map((_, s) => {
      const g = f.slice(7 * s, 7 * s + 7);
      const sd: number[] = [];
      for (let q = 1; q <= 5; q++) {
        let m = 0;
        for (let j = 0; j < ex.k; j++) m = Math.max(m, Math.abs(g[q - 1][j] + g[q + 1][j] - 2 * g[q][j]) / 2);
        sd.push(m / (1 + maxAbs(g[q])));
      }
      return sd.sort((a, b) => a - b)[2];
    })
    .sort((x, y) => x - y);
  ex.noise = Math.max(1e-7, est[Math.floor(est.length / 2)]);
}
