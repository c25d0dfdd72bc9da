//! The contract run's report: one row a check, printed as a table.

use std::time::Duration;

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
        }
    }
}

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
        if !row.details.is_empty() {
            out.push_str(&format!("\n{} failures:\n", row.check));
            for detail in &row.details {
                out.push_str(&format!("  - {detail}\n"));
            }
        }
    }
    out
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
