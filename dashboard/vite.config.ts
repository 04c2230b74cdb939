import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The operator dashboard: `npm run build` builds it into dist/dashboard/, which the gateway serves at
 * /dashboard (src/gateway/dashboard.ts). One flat folder of hashed files, nothing from the network.
 * For work on it: `npx vite --config dashboard/vite.config.ts` serves it at
 * http://localhost:5173/dashboard/ and forwards /admin to a gateway (HEIST_GATEWAY, else :8080).
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/dashboard/",
  publicDir: false,
  logLevel: "warn",
  build: {
    outDir: fileURLToPath(new URL("../dist/dashboard", import.meta.url)),
    emptyOutDir: true,
    assetsDir: "",
    target: "es2022",
    reportCompressedSize: false,
    rollupOptions: {
      // zod's sources carry comments Rollup cannot place ("annotation … cannot interpret"): harmless, and not ours to fix.
      onwarn: (w, warn) => (w.code === "INVALID_ANNOTATION" ? undefined : warn(w)),
    },
  },
  server: { proxy: { "/admin": process.env.HEIST_GATEWAY ?? "http://127.0.0.1:8080" } },
});
