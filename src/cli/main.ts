import { Command, CommanderError } from "commander";
import { isHeistError } from "../core/errors.js";
import { commandPath, setRunningCommand, UsageError } from "./output.js";

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

/**
 * heist's commands: commander's own errors (an unknown option, a required option not given…)
 * become one sentence naming the command, what was wrong, commander's suggestion if it has one,
 * and where the help is; instead of commander's message and the command's whole help.
 */
class HeistCommand extends Command {
  override createCommand(name?: string): Command {
    return new HeistCommand(name);
  }

  override error(message: string, o?: { code?: string }): never {
    // commander checks required options before unknown ones: `--confg x` would read "--config is
    // required". The unknown option (with commander's suggestion) is the mistake to name.
    const unknown = o?.code === "commander.missingMandatoryOptionValue" ? this.args.find((a) => /^--?[a-z]/i.test(a)) : undefined;
    const internal = this as unknown as { unknownOption?: (flag: string) => never };
    if (unknown && typeof internal.unknownOption === "function") internal.unknownOption(unknown.split("=")[0]);
    throw new UsageError(usageSentence(this, message, o?.code));
  }
}

/** commander's message (`error: unknown option '--x'\n(Did you mean --y?)`) as one sentence. */
export function usageSentence(command: Command, message: string, code?: string): string {
  const path = commandPath(command);
  const [first, ...rest] = message.replace(/^error: /, "").split("\n");
  const suggestion = /\(Did you mean (.+)\?\)/.exec(rest.join(" "))?.[1];
  const maybe = suggestion ? ` (did you mean ${suggestion}?)` : "";
  const help = `; see ${path} --help`;
  const quoted = /'([^']*)'/.exec(first)?.[1] ?? "";
  const described = (flags: string) => {
    const d = command.options.find((o) => o.flags === flags)?.description;
    return d ? ` — ${d}` : "";
  };
  switch (code) {
    case "commander.unknownOption":
      return `${path}: unknown option ${quoted}${maybe}${help}`;
    case "commander.unknownCommand":
      return `${path}: unknown command "${quoted}"${maybe}${help}`;
    case "commander.missingMandatoryOptionValue":
      return `${path}: ${quoted} is required${described(quoted)}${help}`;
    case "commander.optionMissingArgument":
      return `${path}: ${quoted} needs a value${described(quoted)}${help}`;
    case "commander.missingArgument":
      return `${path}: the argument <${quoted}> is missing${help}`;
    case "commander.excessArguments": {
      const n = command.registeredArguments.length;
      const extra = command.args.slice(n).map((a) => `"${a}"`);
      return `${path}: unexpected argument${extra.length > 1 ? "s" : ""} ${extra.join(" ")} (it takes ${n || "none"})${help}`;
    }
    default:
      return `${path}: ${first.replace(/\.$/, "")}${maybe}${help}`;
  }
}

/** The program for `argv`: every command listed, the one argv runs (if any) fully defined. */
async function buildProgram(argv: string[]): Promise<Command> {
  const words = argv.slice(2).filter((a) => !a.startsWith("-"));
  const running = words[0] === "help" ? words[1] : words[0];
  const program = new HeistCommand()
    .name("heist")
    .description("model stealing through ML prediction APIs: steal, serve (protect), audit")
    .version("0.1.0")
    .exitOverride()
    // The command whose action runs: its flags name what parseFlags finds missing or wrong.
    .hook("preAction", (_program, action) => setRunningCommand(action));
  for (const c of COMMANDS) {
    const command = program.command(c.name).description(c.description);
    if (c.name === running) (await c.define())(command);
  }
  return program;
}

/**
 * Run the CLI; returns the exit code. A mistake a user made (how heist was called, or what it was
 * given) prints one sentence and exits 2, never a stack; only heist's own failures exit 1.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    await (await buildProgram(argv)).parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    // --help and --version (0); help shown because a command needs a subcommand (`heist admin`): 2.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (isHeistError(e)) {
      process.stderr.write(`heist: ${e.message}\n`);
      return e.code === "internal" ? 1 : 2;
    }
    process.stderr.write(`heist: unexpected error: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  }
}
