import { Command, CommanderError } from "commander";
import { isHeistError } from "../core/errors.js";
import { dataCommand } from "./data.js";
import { evalCommand } from "./eval.js";
import { exportCommand } from "./export.js";
import { serveCommand } from "./serve.js";
import { adminCommand } from "./admin.js";
import { stealCommand } from "./steal.js";
import { modelsCommand } from "./models.js";
import { reportCommand } from "./report.js";
import { trainCommand } from "./train.js";
import { verifyCommand } from "./verify.js";
import { auditCommand } from "./audit.js";

export function buildProgram(): Command {
  const program = new Command()
    .name("heist")
    .description("model stealing through ML prediction APIs: steal, serve (protect), audit")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  trainCommand(program);
  evalCommand(program);
  modelsCommand(program);
  exportCommand(program);
  serveCommand(program);
  adminCommand(program);
  stealCommand(program);
  verifyCommand(program);
  auditCommand(program);
  dataCommand(program);
  reportCommand(program);
  return program;
}

/** Run the CLI; returns the exit code. Errors a user caused print one sentence, never a stack. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
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
