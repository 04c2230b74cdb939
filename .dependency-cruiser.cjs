/**
 * The import rule of docs/architecture.md, checked in `npm test` (`npm run deps`).
 * Layers, top to bottom:  cli → audit → gateway → defenses → pipeline → protocol
 *                                     ↘ attacks → oracle → protocol → models → metrics → data → core
 * A layer imports only layers below it; a thief (attacks, oracle) knows only the wire (protocol).
 */
const layer = (name, mayNotImport, comment) => ({
  name: `${name}-imports-down`,
  comment,
  severity: "error",
  from: { path: `^src/${name}/` },
  to: { path: `^src/(${mayNotImport.join("|")})/` },
});

module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", comment: "a cycle makes two modules one; split what they share into a lower module", from: {}, to: { circular: true } },
    layer("core", ["data", "metrics", "models", "protocol", "pipeline", "defenses", "oracle", "attacks", "gateway", "audit", "cli"], "core is the floor"),
    layer("data", ["metrics", "models", "protocol", "pipeline", "defenses", "oracle", "attacks", "gateway", "audit", "cli"], "data knows only core"),
    layer("metrics", ["models", "protocol", "pipeline", "defenses", "oracle", "attacks", "gateway", "audit", "cli"], "metrics are plain functions of tensors"),
    layer("models", ["protocol", "pipeline", "defenses", "oracle", "attacks", "gateway", "audit", "cli"], "a model knows no API and no audit"),
    layer("protocol", ["pipeline", "defenses", "oracle", "attacks", "gateway", "audit", "cli"], "the wire format is shared by both sides, so it depends on neither"),
    layer("pipeline", ["defenses", "oracle", "attacks", "gateway", "audit", "cli"], "the contracts every defence builds on"),
    layer("defenses", ["oracle", "attacks", "gateway", "audit", "cli"], "a defence knows no gateway and no thief"),
    layer("oracle", ["pipeline", "defenses", "attacks", "gateway", "audit", "cli"], "a thief talks to its victim through the wire only"),
    layer("attacks", ["pipeline", "defenses", "gateway", "audit", "cli"], "a thief knows only the API"),
    layer("gateway", ["attacks", "audit", "cli"], "the gateway serves; it does not steal or audit"),
    layer("audit", ["cli"], "the CLI sits on top"),
    {
      name: "http-framework-in-the-gateway-only",
      comment: "the onion knows no HTTP framework: Fastify stays in src/gateway",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/gateway/" },
      to: { path: "node_modules/(fastify|@fastify)/" },
    },
    {
      name: "src-imports-no-tooling",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench|campaign|scripts)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
  },
};
