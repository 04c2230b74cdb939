/** `heist/oracle`: how a thief talks to a victim — over HTTP (OIP v2, or the OpenAI wire format for language models), within a budget, with a transcript. */
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
export { openaiOracle, ApiRefusal, type OpenAIEndpoint, type OpenAIOracle, type OpenAIOracleOptions } from "./openai-oracle.js";
export {
  budgetedTokens,
  type BudgetedTokenOracle,
  type NextTokenOptions,
  type TokenAnswer,
  type TokenBudgetLimits,
  type TokenOracle,
  type TokenSpend,
} from "./token-oracle.js";
export { questionKey, recordedTokens, TOKEN_TRANSCRIPT_FILE, type RecordedTokenOracle } from "./token-transcript.js";
