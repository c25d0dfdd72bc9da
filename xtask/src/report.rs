//! The contract run's report: one row a check, printed as a table, with failures and warnings
//! listed apart; the same rows as JSON and JUnit (written with quick-junit: failures as
//! `<failure>`, warnings in `<system-out>`).

use std::path::Path;
use std::time::Duration;

use partner_center_contract::verify::{CaseResult, Verification};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
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

/// Text as XML 1.0 may hold it. quick-junit drops the control characters XML forbids; a failure
/// quoting what a server sent should show them, so every control character (bar tab and line
/// feed) and the two noncharacters XML forbids are written out as `\u{..}` first.
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// One JUnit test case: failed with its failures (joined as the message, one a line as the
/// text), skipped with the reason, or passed; warnings in `<system-out>`, one `warning:` line
/// each.
fn test_case(
    name: &str,
    failures: &[String],
    skipped: Option<&str>,
    warnings: &[String],
) -> TestCase {
    let status = if !failures.is_empty() {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message(xml_text(&failures.join("; ")))
            .set_description(xml_text(&failures.join("\n")));
        status
    } else if let Some(why) = skipped {
        let mut status = TestCaseStatus::skipped();
        status.set_message(xml_text(why));
        status
    } else {
        TestCaseStatus::success()
    };
    let mut case = TestCase::new(xml_text(name), status);
    if !warnings.is_empty() {
        let lines: Vec<String> = warnings.iter().map(|w| format!("warning: {w}")).collect();
        case.set_system_out(xml_text(&lines.join("\n")));
    }
    case
}

/// The JUnit XML report: one test suite a check, one test case per case of a check made of
/// cases (provider verification, recordings), else one for the check.
pub fn junit(rows: &[Row]) -> Result<String, String> {
    let mut report = Report::new("cargo xtask contract");
    for row in rows {
        let mut suite = TestSuite::new(xml_text(&row.check));
        suite.set_time(row.time);
        if row.case_results.is_empty() {
            let skipped = match &row.outcome {
                Outcome::Skipped(why) => Some(why.as_str()),
                Outcome::Passed | Outcome::Failed => None,
            };
            // A failed check is a failure in JUnit even when it listed no detail.
            let failures = match (&row.outcome, row.details.is_empty()) {
                (Outcome::Failed, false) => row.details.clone(),
                (Outcome::Failed, true) => vec!["failed".to_owned()],
                _ => Vec::new(),
            };
            suite.add_test_case(test_case(&row.check, &failures, skipped, &row.warnings));
        } else {
            for result in &row.case_results {
                let mut case = test_case(&result.name, &result.failures, None, &result.warnings);
                case.set_time(result.elapsed);
                suite.add_test_case(case);
            }
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .map_err(|e| format!("cannot write the JUnit report: {e}"))
}

/// Writes the JUnit XML report (`junit`) to `path`.
pub fn write_junit(path: &Path, rows: &[Row]) -> Result<(), String> {
    std::fs::write(path, junit(rows)?).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
        let xml = junit(&[
            cases(),
            Row::skipped("prism", "npm is not installed".into()),
        ])
        .unwrap();
        let report = Report::deserialize_from_str(&xml).unwrap();

        let suite = &report.test_suites[0];
        assert_eq!((suite.tests, suite.failures), (3, 1));
        let by_name = |name: &str| {
            suite
                .test_cases
                .iter()
                .find(|c| c.name.as_str() == name)
                .unwrap_or_else(|| panic!("no test case {name}: {xml}"))
        };
        assert!(matches!(
            &by_name("broken case").status,
            TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message: Some(m), .. }
                if m.as_str() == "lacks Location"
        ));
        assert!(matches!(
            by_name("ok case").status,
            TestCaseStatus::Success { .. }
        ));
        let output = |name: &str| by_name(name).system_out.as_ref().map(|o| o.to_string());
        assert_eq!(
            output("lenient case").as_deref(),
            Some("warning: accepted <this>")
        );
        assert_eq!(
            output("broken case").as_deref(),
            Some("warning: accepted that")
        );
        assert_eq!(output("ok case"), None);

        let skipped = &report.test_suites[1];
        assert_eq!((skipped.tests, skipped.skipped), (1, 1));
        assert!(matches!(
            &skipped.test_cases[0].status,
            TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str() == "npm is not installed"
        ));
    }

    /// Every character is one the XML 1.0 `Char` production allows.
    fn is_xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    }

    #[test]
    fn control_characters_and_cdata_ends_in_messages_still_make_valid_xml() {
        use quick_xml::events::Event;

        let hostile = "body \u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}[31mred\u{1b}[0m \u{7f}\u{85}\u{ffff} ]]> <x a=\"1\"> & '";
        let row = Row::of_cases(
            "provider: \u{1}odd ]]>",
            vec![case("case \u{2} ]]>", &[hostile], &[hostile])],
            Duration::ZERO,
        );
        let failed_check = Row::new("spec rules", 1, vec![hostile.into()], Duration::ZERO);
        let xml = junit(&[row, failed_check]).unwrap();

        let bad: Vec<char> = xml.chars().filter(|c| !is_xml_char(*c)).collect();
        assert!(bad.is_empty(), "characters XML 1.0 forbids: {bad:?}");
        assert!(!xml.contains("]]>"), "{xml}");
        // quick-xml reads it through, every element closed and every escape known.
        let mut reader = quick_xml::Reader::from_str(&xml);
        reader.config_mut().check_end_names = true;
        loop {
            match reader.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    for attribute in e.attributes() {
                        attribute
                            .unwrap()
                            .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .unwrap();
                    }
                }
                Event::Text(text) => {
                    text.decode().unwrap();
                }
                Event::GeneralRef(reference) => {
                    let name = reference.decode().unwrap();
                    assert!(
                        reference.is_char_ref()
                            || quick_xml::escape::resolve_predefined_entity(&name).is_some(),
                        "&{name};"
                    );
                }
                _ => {}
            }
        }

        // And the text survives, the forbidden characters written out.
        let shown = "body \\u{0}\\u{1}\\u{8}\\u{b}\\u{c}\\u{1b}[31mred\\u{1b}[0m \\u{7f}\\u{85}\\u{ffff} ]]> <x a=\"1\"> & '";
        let report = Report::deserialize_from_str(&xml).unwrap();
        let case = &report.test_suites[0].test_cases[0];
        assert_eq!(case.name.as_str(), "case \\u{2} ]]>");
        assert!(
            matches!(
                &case.status,
                TestCaseStatus::NonSuccess { message: Some(m), .. } if m.as_str() == shown
            ),
            "{:?}",
            case.status
        );
        assert_eq!(
            case.system_out.as_ref().map(|o| o.to_string()),
            Some(format!("warning: {shown}"))
        );
        assert_eq!(report.test_suites[1].name.as_str(), "spec rules");
        assert!(matches!(
            &report.test_suites[1].test_cases[0].status,
            TestCaseStatus::NonSuccess { message: Some(m), .. } if m.as_str() == shown
        ));
    }
}
