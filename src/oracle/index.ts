/** `heist/oracle`: how a thief talks to a victim — over HTTP (OIP v2), within a budget, with a transcript. */
export { httpOracle, mergeAnswers, type HttpOracleOptions } from "./http-oracle.js";
export { budgeted, type BudgetedOracle, type BudgetLimits, type Spend } from "./budget.js";
export { recorded, TRANSCRIPT_FILE, type RecordedOracle } from "./transcript.js";
export {
  DECLARABLE_ANSWERS,
  describeReading,
  OracleStopped,
  parseOutputs,
  readingFor,
  type AnswerReading,
  type DeclaredAnswer,
  type WireTensor,
  type AnswerKind,
  type Oracle,
  type OracleAnswer,
  type StopReason,
} from "./oracle.js";
