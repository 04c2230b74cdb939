// Copies the files tsc does not emit but src/ reads next to its modules (Lua scripts, SQL) from src/
// into dist/, at the same relative paths: part of `npm run build`.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
let copied = 0;
const walk = (rel) => {
  for (const entry of readdirSync(join(root, "src", rel), { withFileTypes: true })) {
    const path = join(rel, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.isFile() && /\.(lua|sql)$/.test(entry.name)) {
      mkdirSync(join(root, "dist", rel), { recursive: true });
      copyFileSync(join(root, "src", path), join(root, "dist", path));
      copied++;
    }
  }
};
walk("");
console.log(`copy-assets: ${copied} file(s) from src/ to dist/`);
