//! The contract run's report: one row a check, printed as a table.

use std::path::Path;
use std::time::Duration;

use partner_center_contract::verify::Verification;
use serde_json::json;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped(String),
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub check: String,
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    pub time: Duration,
    pub outcome: Outcome,
    /// What failed, one line each, printed under the table.
    pub details: Vec<String>,
    /// Information printed under the table (coverage, for example).
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(check: &str, cases: usize, failures: Vec<String>, time: Duration) -> Self {
        let failed = failures.len();
        Row {
            check: check.into(),
            cases,
            passed: cases.saturating_sub(failed),
            failed,
            time,
            outcome: if failed == 0 {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            details: failures,
            notes: Vec::new(),
        }
    }

    pub fn skipped(check: &str, why: String) -> Self {
        Row {
            check: check.into(),
            cases: 0,
            passed: 0,
            failed: 0,
            time: Duration::ZERO,
            outcome: Outcome::Skipped(why),
            details: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Failures printed per row; the JSON report has all of them.
const MAX_DETAILS: usize = 20;

/// Renders the rows as a table followed by every failure and skip reason.
pub fn render(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$}  {:>6}  {:>6}  {:>6}  {:>8}  result\n",
        "check", "cases", "passed", "failed", "time"
    );
    out.push_str(&format!("{}\n", "-".repeat(width + 44)));
    for row in rows {
        let result = match &row.outcome {
            Outcome::Passed => "ok".to_owned(),
            Outcome::Failed => "FAILED".to_owned(),
            Outcome::Skipped(_) => "skipped".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>6}  {:>6}  {:>6}  {:>7.2}s  {result}\n",
            row.check,
            row.cases,
            row.passed,
            row.failed,
            row.time.as_secs_f64()
        ));
    }
    for row in rows {
        if let Outcome::Skipped(why) = &row.outcome {
            out.push_str(&format!("\n{} skipped: {why}\n", row.check));
        }
        if !row.notes.is_empty() {
            out.push_str(&format!("\n{}:\n", row.check));
            for note in &row.notes {
                out.push_str(&format!("  {note}\n"));
            }
        }
        if !row.details.is_empty() {
            out.push_str(&format!(
                "\n{} failures ({}):\n",
                row.check,
                row.details.len()
            ));
            for detail in row.details.iter().take(MAX_DETAILS) {
                out.push_str(&format!("  - {detail}\n"));
            }
            if row.details.len() > MAX_DETAILS {
                out.push_str(&format!(
                    "  ... and {} more (see --report-json)\n",
                    row.details.len() - MAX_DETAILS
                ));
            }
        }
    }
    out
}

fn outcome_text(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Skipped(_) => "skipped",
    }
}

/// Writes the machine-readable report.
pub fn write_json(
    path: &Path,
    rows: &[Row],
    verification: &Verification,
    cases_per_second: f64,
) -> Result<(), String> {
    let report = json!({
        "checks": rows.iter().map(|r| json!({
            "check": r.check,
            "cases": r.cases,
            "passed": r.passed,
            "failed": r.failed,
            "seconds": r.time.as_secs_f64(),
            "result": outcome_text(&r.outcome),
            "skipped_because": match &r.outcome { Outcome::Skipped(why) => Some(why), _ => None },
            "failures": r.details,
            "notes": r.notes,
        })).collect::<Vec<_>>(),
        "provider": {
            "cases": verification.cases.len(),
            "requests": verification.requests,
            "seconds": verification.elapsed.as_secs_f64(),
            "cases_per_second": cases_per_second,
            "failed_cases": verification.failed().map(|c| json!({
                "case": c.name, "failures": c.failures
            })).collect::<Vec<_>>(),
        },
        "coverage": verification.coverage.lines(),
        "passed": rows.iter().all(|r| r.outcome != Outcome::Failed),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes a JUnit XML report: one test suite a check, one test case per provider case.
pub fn write_junit(path: &Path, rows: &[Row], verification: &Verification) -> Result<(), String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cargo xtask contract\">\n",
    );
    for row in rows {
        let provider = row.check.starts_with("provider:");
        let tests = if provider {
            verification.cases.len()
        } else {
            1
        };
        let failures = if provider {
            row.failed
        } else {
            usize::from(row.outcome == Outcome::Failed)
        };
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\">\n",
            xml(&row.check),
            row.time.as_secs_f64()
        ));
        if provider {
            for case in &verification.cases {
                out.push_str(&format!(
                    "    <testcase name=\"{}\" time=\"{:.4}\">",
                    xml(&case.name),
                    case.elapsed.as_secs_f64()
                ));
                if !case.failures.is_empty() {
                    out.push_str(&format!(
                        "<failure message=\"{}\"/>",
                        xml(&case.failures.join("; "))
                    ));
                }
                out.push_str("</testcase>\n");
            }
        } else {
            out.push_str(&format!("    <testcase name=\"{}\">", xml(&row.check)));
            match &row.outcome {
                Outcome::Failed => out.push_str(&format!(
                    "<failure message=\"{}\"/>",
                    xml(&row.details.join("; "))
                )),
                Outcome::Skipped(why) => {
                    out.push_str(&format!("<skipped message=\"{}\"/>", xml(why)))
                }
                Outcome::Passed => {}
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_skips_are_listed_under_the_table() {
        let rows = [
            Row::new(
                "spec rules",
                3,
                vec!["GET /x has no summary".into()],
                Duration::from_millis(5),
            ),
            Row::skipped("spectral", "npm is not installed".into()),
        ];
        let text = render(&rows);
        assert!(text.contains("spec rules"));
        assert!(text.contains("FAILED"));
        assert!(text.contains("- GET /x has no summary"));
        assert!(text.contains("spectral skipped: npm is not installed"));
    }
}
