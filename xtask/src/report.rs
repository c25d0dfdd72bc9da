//! The contract run's report: one row a check, printed as a table, with failures and warnings
//! listed apart; the same rows as JSON and JUnit (failures as `<failure>`, warnings in
//! `<system-out>`).

use std::path::Path;
use std::time::Duration;

use partner_center_contract::verify::{CaseResult, Verification};
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
    /// Cases with a warning (and no failure counted against them in `failed`).
    pub warned: usize,
    pub time: Duration,
    pub outcome: Outcome,
    /// What failed, one line each, printed under the table.
    pub details: Vec<String>,
    /// What the check warns about, one line each, printed under the table apart from failures.
    pub warnings: Vec<String>,
    /// Information printed under the table (coverage, for example).
    pub notes: Vec<String>,
    /// One result per case, for checks made of cases (provider verification, recordings): JUnit
    /// gets a test case each.
    pub case_results: Vec<CaseResult>,
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
            warned: 0,
            warnings: Vec::new(),
            notes: Vec::new(),
            case_results: Vec::new(),
        }
    }

    /// A row of cases: failed and warned counted by case, a line per failed or warned case.
    pub fn of_cases(check: &str, cases: Vec<CaseResult>, time: Duration) -> Self {
        // Recordings' messages already start with the case's name (its file name).
        let line = |c: &CaseResult, what: &[String]| {
            let text = what.join("; ");
            match text.starts_with(&format!("{}: ", c.name)) {
                true => text,
                false => format!("{}: {text}", c.name),
            }
        };
        let failures: Vec<String> = cases
            .iter()
            .filter(|c| !c.failures.is_empty())
            .map(|c| line(c, &c.failures))
            .collect();
        let warnings: Vec<String> = cases
            .iter()
            .filter(|c| !c.warnings.is_empty())
            .map(|c| line(c, &c.warnings))
            .collect();
        let mut row = Row::new(check, cases.len(), failures, time);
        row.warned = warnings.len();
        row.warnings = warnings;
        row.case_results = cases;
        row
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
            warned: 0,
            warnings: Vec::new(),
            notes: Vec::new(),
            case_results: Vec::new(),
        }
    }
}

/// Failures printed per row; the JSON report has all of them.
const MAX_DETAILS: usize = 20;

/// Renders the rows as a table followed by every failure, warning and skip reason.
pub fn render(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>8}  result\n",
        "check", "cases", "passed", "failed", "warned", "time"
    );
    out.push_str(&format!("{}\n", "-".repeat(width + 52)));
    for row in rows {
        let result = match &row.outcome {
            Outcome::Passed if row.warned > 0 => "ok, with warnings".to_owned(),
            Outcome::Passed => "ok".to_owned(),
            Outcome::Failed => "FAILED".to_owned(),
            Outcome::Skipped(_) => "skipped".to_owned(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>6}  {:>6}  {:>6}  {:>6}  {:>7.2}s  {result}\n",
            row.check,
            row.cases,
            row.passed,
            row.failed,
            row.warned,
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
        list(&mut out, &row.check, "failures", &row.details);
        list(
            &mut out,
            &row.check,
            "warnings (not failures; --strict fails them)",
            &row.warnings,
        );
    }
    out
}

fn list(out: &mut String, check: &str, what: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    out.push_str(&format!("\n{check} {what} ({}):\n", lines.len()));
    for line in lines.iter().take(MAX_DETAILS) {
        out.push_str(&format!("  - {line}\n"));
    }
    if lines.len() > MAX_DETAILS {
        out.push_str(&format!(
            "  ... and {} more (see --report-json)\n",
            lines.len() - MAX_DETAILS
        ));
    }
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
            "warned": r.warned,
            "seconds": r.time.as_secs_f64(),
            "result": outcome_text(&r.outcome),
            "skipped_because": match &r.outcome { Outcome::Skipped(why) => Some(why), _ => None },
            "failures": r.details,
            "warnings": r.warnings,
            "notes": r.notes,
        })).collect::<Vec<_>>(),
        "provider": {
            "cases": verification.cases.len(),
            "requests": verification.requests,
            "seconds": verification.elapsed.as_secs_f64(),
            "cases_per_second": cases_per_second,
            "strict": verification.strict,
            "failed_cases": verification.failed().map(|c| json!({
                "case": c.name, "failures": c.failures
            })).collect::<Vec<_>>(),
            "warned_cases": verification.warned().map(|c| json!({
                "case": c.name, "warnings": c.warnings
            })).collect::<Vec<_>>(),
            "negatives_left_out": verification.left_out,
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

/// Writes a JUnit XML report: one test suite a check, one test case per case of a check made
/// of cases (provider verification, recordings), else one for the check. Failures are
/// `<failure>`; warnings go to the test case's `<system-out>`, one `warning:` line each.
pub fn write_junit(path: &Path, rows: &[Row]) -> Result<(), String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cargo xtask contract\">\n",
    );
    for row in rows {
        let by_case = !row.case_results.is_empty();
        let (tests, failures) = if by_case {
            (row.case_results.len(), row.failed)
        } else {
            (1, usize::from(row.outcome == Outcome::Failed))
        };
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\">\n",
            xml(&row.check),
            row.time.as_secs_f64()
        ));
        if by_case {
            for case in &row.case_results {
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
                system_out(&mut out, &case.warnings);
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
            system_out(&mut out, &row.warnings);
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn system_out(out: &mut String, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    out.push_str("<system-out>");
    for warning in warnings {
        out.push_str(&format!("warning: {}\n", xml(warning)));
    }
    out.push_str("</system-out>");
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

    fn case(name: &str, failures: &[&str], warnings: &[&str]) -> CaseResult {
        CaseResult {
            name: name.into(),
            failures: failures.iter().map(|f| f.to_string()).collect(),
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            elapsed: Duration::from_millis(1),
        }
    }

    fn cases() -> Row {
        Row::of_cases(
            "provider: a server",
            vec![
                case("ok case", &[], &[]),
                case("lenient case", &[], &["accepted <this>"]),
                case("broken case", &["lacks Location"], &["accepted that"]),
            ],
            Duration::from_millis(3),
        )
    }

    #[test]
    fn warnings_are_counted_and_listed_apart_from_failures() {
        let row = cases();
        assert_eq!(
            (row.cases, row.passed, row.failed, row.warned),
            (3, 2, 1, 2)
        );
        assert_eq!(row.outcome, Outcome::Failed);

        let text = render(&[row]);
        let failures = text.find("provider: a server failures (1):").unwrap();
        let warnings = text.find("provider: a server warnings").unwrap();
        assert!(failures < warnings);
        assert!(text.contains("  - broken case: lacks Location\n"));
        assert!(text.contains("  - lenient case: accepted <this>\n"));

        let only_warnings = Row::of_cases(
            "recordings: x",
            vec![case("a.json", &[], &["odd request"])],
            Duration::ZERO,
        );
        assert_eq!(only_warnings.outcome, Outcome::Passed);
        assert!(render(&[only_warnings]).contains("ok, with warnings"));
    }

    #[test]
    fn junit_reports_failures_as_failures_and_warnings_as_output() {
        let path = std::env::temp_dir().join(format!("junit-{}.xml", std::process::id()));
        write_junit(&path, &[cases()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert!(text.contains("tests=\"3\" failures=\"1\""));
        assert_eq!(text.matches("<failure ").count(), 1);
        assert!(text.contains("<failure message=\"lacks Location\"/>"));
        assert!(text.contains("<system-out>warning: accepted &lt;this&gt;\n</system-out>"));
        assert_eq!(text.matches("<system-out>").count(), 2);
    }
}
