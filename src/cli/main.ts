import { Command, CommanderError } from "commander";
import { isHeistError } from "../core/errors.js";

type Define = (command: Command) => void;

/**
 * heist's commands in the order `heist --help` lists them: each one's line of help, and the module
 * that defines the rest. Only the command being run is imported, so that help and the light commands
 * do not wait for the model engines (TensorFlow.js, ONNX Runtime) to load.
 */
const COMMANDS: { name: string; description: string; define: () => Promise<Define> }[] = [
  {
    name: "train",
    description: "train a model on a dataset and save it with its manifest (test accuracy included)",
    define: async () => (await import("./train.js")).trainCommand,
  },
  { name: "eval", description: "measure a model's accuracy on a dataset's held-out test rows", define: async () => (await import("./eval.js")).evalCommand },
  {
    name: "models",
    description: "list the zoo's victim presets, whether each is trained here, and its test accuracy",
    define: async () => (await import("./models.js")).modelsCommand,
  },
  {
    name: "export",
    description: "export a heist dense model (softmax regression, MLP) as an ONNX file for any ONNX runtime",
    define: async () => (await import("./export.js")).exportCommand,
  },
  {
    name: "serve",
    description: "serve models behind the protective gateway (Open Inference Protocol v2, keys, quotas, pricing, ledger)",
    define: async () => (await import("./serve.js")).serveCommand,
  },
  {
    name: "admin",
    description: "manage a running gateway's clients, keys, plans and balances (over its admin API)",
    define: async () => (await import("./admin.js")).adminCommand,
  },
  {
    name: "steal",
    description: "extract a model through its prediction API (Open Inference Protocol v2)",
    define: async () => (await import("./steal.js")).stealCommand,
  },
  {
    name: "verify",
    description: "is a suspect model a copy of ours? DAWN watermarks name the client it was stolen through; dataset inference tests the victim's private data",
    define: async () => (await import("./verify.js")).verifyCommand,
  },
  {
    name: "audit",
    description: "run every attack against every defence stack through a real gateway; write results and a report",
    define: async () => (await import("./audit.js")).auditCommand,
  },
  {
    name: "demo",
    description: "the main job on embedded defaults: train the demo victim, serve it behind each defence, steal it every way, report",
    define: async () => (await import("./audit.js")).demoCommand,
  },
  {
    name: "worker",
    description: "run queued audit jobs (heist audit --queue) until stopped (SIGINT/SIGTERM)",
    define: async () => (await import("./audit.js")).workerCommand,
  },
  { name: "data", description: "datasets: what is here, and fetching Fashion-MNIST", define: async () => (await import("./data.js")).dataCommand },
  {
    name: "report",
    description: "write an audit's report: report.html (charts, verdicts, every run; one self-contained file), charts/*.png, summary.md, results.json",
    define: async () => (await import("./report.js")).reportCommand,
  },
];

/** The program for `argv`: every command listed, the one argv runs (if any) fully defined. */
async function buildProgram(argv: string[]): Promise<Command> {
  const words = argv.slice(2).filter((a) => !a.startsWith("-"));
  const running = words[0] === "help" ? words[1] : words[0];
  const program = new Command()
    .name("heist")
    .description("model stealing through ML prediction APIs: steal, serve (protect), audit")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  for (const c of COMMANDS) {
    const command = program.command(c.name).description(c.description);
    if (c.name === running) (await c.define())(command);
  }
  return program;
}

/** Run the CLI; returns the exit code. Errors a user caused print one sentence, never a stack. */
export async function main(argv: string[]): Promise<number> {
  try {
    await (await buildProgram(argv)).parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (isHeistError(e)) {
      process.stderr.write(`heist: ${e.message}\n`);
      return e.code === "internal" ? 1 : 2;
    }
    process.stderr.write(`heist: unexpected error: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  }
}
