/** `heist/audit`: every attack against every defence through a real gateway, cost-to-steal, reports and ownership tests. */
export { runAudit, readRecords, type RunOptions, type AuditProgress } from "./run.js";
export { AuditConfig, parseAuditConfig, loadAuditConfig, DEMO_CONFIG, type AuditConfigInput } from "./config.js";
export { AuditResults, CellResult, HonestResult } from "./results.js";
export { writeReport, renderHtml, renderMarkdown, type ReportFiles, type ReportOptions } from "./report.js";
export { verdicts, summaryLines, type Verdict } from "./report-data.js";
export { verifyWatermarks, watermarkTest, datasetInference, welchTTest, type WatermarkSet, type Suspect, type WatermarkReport } from "./ownership.js";
