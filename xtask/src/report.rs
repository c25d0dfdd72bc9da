//! The contract run's report: one row a check, printed as a table, with failures and warnings
//! listed apart; the same rows as JSON and JUnit (written with quick-junit: failures as
//! `<failure>`, warnings in `<system-out>`).
//!
//! A failed provider case comes with how to reproduce it ([`Repro`], made by [`repros`]): the
//! `curl` command of each request that failed it, the token read from the environment (the
//! variable `--base-url` runs read), under a comment saying what to export and which server to
//! start; and a shell script of every request the case sent, `target/contract-repro/NNN.sh`
//! (`NNN` the case's number). The text report shows the commands under each failure, the JSON
//! report has them in `provider.failed_cases[].reproduce`, the JUnit report in the failure's
//! text; each bounds a command's length, and names the script that has it whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use partner_center_contract::verify::{Bearer, CaseResult, Exchange, Verification, quoted};
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
    /// How to reproduce failed cases (provider verification's), by case index.
    pub repros: Vec<Repro>,
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
            repros: Vec::new(),
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
            repros: Vec::new(),
        }
    }

    /// The reproduction of failed case `index` (of `case_results`), if there is one.
    fn repro(&self, index: usize) -> Option<&Repro> {
        self.repros.iter().find(|r| r.case == index)
    }
}

/// Where provider verification ran: what a reproduction needs running, and which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// The embedded mock (`MockConfig::default()`, its public default token) on this port,
    /// stopped after the run.
    EmbeddedMock { port: u16 },
    /// `prism mock` of the spec, stopped after the run; it takes any bearer token.
    Prism { port: u16 },
    /// The server `--base-url` named.
    External,
}

/// What [`repros`] needs to know of the run.
#[derive(Debug, Clone)]
pub struct ReproContext<'a> {
    /// The variable the commands read the bearer token from (the one `--base-url` reads).
    pub token_variable: &'a str,
    pub server: Server,
    /// The run's seed, named in the scripts.
    pub seed: u64,
    /// Where scripts are written (its old `NNN.sh` are removed first).
    pub dir: PathBuf,
    /// Paths are shown relative to this (the workspace).
    pub root: PathBuf,
}

/// How to reproduce one failed case.
#[derive(Debug, Clone)]
pub struct Repro {
    /// The case's index in the run (its number is one more).
    pub case: usize,
    /// Comment lines (`# ...`): what to export, which server to start.
    pub setup: Vec<String>,
    /// The `curl` command of each request that failed the case, whole, in order.
    pub commands: Vec<String>,
    /// How many requests the case sent in all (a flow sends several).
    pub requests: usize,
    /// The script with every request of the case (shown relative to the workspace), or why it
    /// could not be written.
    pub script: Result<String, String>,
}

/// The most of one command the text report prints.
const TEXT_COMMAND_BYTES: usize = 2 * 1024;
/// The failing requests' commands the text report prints per case.
const TEXT_COMMANDS: usize = 2;
/// The most of one command the JUnit report holds.
const JUNIT_COMMAND_BYTES: usize = 8 * 1024;
/// The most of one command the JSON report holds.
const JSON_COMMAND_BYTES: usize = 64 * 1024;

/// The comment lines that say what a reproduction needs: which server, which token.
fn setup(context: &ReproContext<'_>) -> Vec<String> {
    let variable = context.token_variable;
    match &context.server {
        Server::EmbeddedMock { port } => vec![
            format!(
                "# the embedded mock stopped after the run; start one on its port: cargo xtask mock --port {port}"
            ),
            format!(
                "# export {variable}={}   (the mock's public default token)",
                partner_center_mock::DEFAULT_TOKEN
            ),
        ],
        Server::Prism { port } => vec![
            format!(
                "# prism mock stopped after the run; start it on port {port} (prism mock -p {port} openapi/product-upgrades.yaml)"
            ),
            format!("# export {variable}=any-token   (prism takes any bearer token)"),
        ],
        Server::External => vec![format!(
            "# export {variable}=<the server's bearer token>   (as for --base-url; never printed here)"
        )],
    }
}

/// `text` on one line: every control character (line breaks included) written `\u{..}`, so
/// that nothing a server sent can end a comment line of a script.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes the reproduction of every failed case of `verification`, and writes its script to
/// `context.dir` (removing the scripts of an earlier run first). A script that cannot be written
/// is said so in its [`Repro::script`]; the commands are there all the same.
pub fn repros(verification: &Verification, context: &ReproContext<'_>) -> Vec<Repro> {
    let setup = setup(context);
    let prepared = prepare_dir(&context.dir);
    verification
        .failed_with_exchanges()
        .filter(|(_, _, exchanges)| !exchanges.is_empty())
        .map(|(index, case, exchanges)| {
            let commands = exchanges
                .iter()
                .filter(|e| e.failed)
                .map(|e| e.request.curl(context.token_variable))
                .collect();
            let path = context.dir.join(format!("{:03}.sh", index + 1));
            let script = prepared.clone().and_then(|()| {
                let text = script(index, case, exchanges, &setup, context);
                write_script(&path, &text)?;
                Ok(path
                    .strip_prefix(&context.root)
                    .unwrap_or(&path)
                    .display()
                    .to_string())
            });
            Repro {
                case: index,
                setup: setup.clone(),
                commands,
                requests: exchanges.len(),
                script,
            }
        })
        .collect()
}

/// Creates `dir`, and removes the `NNN.sh` scripts an earlier run left there.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name
            .strip_suffix(".sh")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn write_script(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
    }
    Ok(())
}

/// The script of one failed case: what it was and how it failed (as comments), what it needs,
/// then every request it sent, in order.
fn script(
    index: usize,
    case: &CaseResult,
    exchanges: &[Exchange],
    setup: &[String],
    context: &ReproContext<'_>,
) -> String {
    let mut text = format!(
        "#!/bin/sh\n# Case {} of `cargo xtask contract --seed {}`: {}\n# It failed:\n",
        index + 1,
        context.seed,
        one_line(&case.name)
    );
    for failure in &case.failures {
        text.push_str(&format!("#   - {}\n", one_line(failure)));
    }
    for line in setup {
        text.push_str(&format!("{line}\n"));
    }
    if exchanges.len() > 1 {
        text.push_str(
            "# The requests after a create name the upgrade the server made in that run; against a\n\
             # fresh server take the id from create's Location instead.\n",
        );
    }
    let variable = context.token_variable;
    if exchanges
        .iter()
        .any(|e| e.request.bearer != Bearer::Missing)
    {
        text.push_str(&format!(
            ": \"${{{variable}:?export {variable} first (see above)}}\"\n"
        ));
    }
    for (i, exchange) in exchanges.iter().enumerate() {
        let answered = match exchange.status {
            Some(status) => format!("answered {status}"),
            None => "no answer".to_owned(),
        };
        let failed = if exchange.failed { ", failed" } else { "" };
        let what = format!(
            "--- request {} of {} ({answered}{failed})",
            i + 1,
            exchanges.len()
        );
        text.push('\n');
        if exchanges.len() > 1 {
            // On a line of its own: the answer before it may not end in a line break.
            text.push_str(&format!("printf '\\n%s\\n' {}\n", quoted(&what)));
        } else {
            text.push_str(&format!("# {what}\n"));
        }
        text.push_str(&exchange.request.curl(variable));
        text.push('\n');
    }
    text
}

/// `command` cut to at most `limit` bytes (at a character boundary), with a note that names
/// where the whole command is.
fn bounded(command: &str, limit: usize, script: &Result<String, String>) -> (String, bool) {
    if command.len() <= limit {
        return (command.to_owned(), false);
    }
    let mut end = limit;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    let whole = match script {
        Ok(path) => format!("the whole command is in {path}"),
        Err(_) => "the JSON report (--report-json) has it whole".to_owned(),
    };
    (
        format!(
            "{}\n# ... cut: {end} of {} bytes shown; {whole}",
            &command[..end],
            command.len()
        ),
        true,
    )
}

/// The reproduction as text, each line prefixed with `indent`: the failing requests' commands
/// (at most `commands`, each at most `limit` bytes), and the script.
fn repro_text(repro: &Repro, indent: &str, commands: usize, limit: usize, setup: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    if setup {
        lines.extend(repro.setup.iter().cloned());
    }
    for command in repro.commands.iter().take(commands) {
        lines.extend(
            bounded(command, limit, &repro.script)
                .0
                .lines()
                .map(str::to_owned),
        );
    }
    if repro.commands.len() > commands {
        lines.push(format!(
            "# ... and {} more failing requests: see the script",
            repro.commands.len() - commands
        ));
    }
    lines.push(match &repro.script {
        Ok(path) if repro.requests > 1 => {
            format!("# the whole case ({} requests): sh {path}", repro.requests)
        }
        Ok(path) => format!("# as a script: sh {path}"),
        Err(why) => format!("# no script: {}", one_line(why)),
    });
    lines
        .iter()
        .map(|line| format!("{indent}{line}\n"))
        .collect()
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
        list(&mut out, row);
        lines(
            &mut out,
            &row.check,
            "warnings (not failures; --strict fails them)",
            &row.warnings,
        );
    }
    out
}

/// A row's failures, each followed by the commands that reproduce it (indented), under the
/// comment lines that say what they need, printed once.
fn list(out: &mut String, row: &Row) {
    if row.repros.is_empty() {
        return lines(out, &row.check, "failures", &row.details);
    }
    out.push_str(&format!(
        "\n{} failures ({}), each with the curl command that reproduces it:\n",
        row.check,
        row.details.len()
    ));
    for line in &row.repros[0].setup {
        out.push_str(&format!("    {line}\n"));
    }
    let failed = row
        .case_results
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.failures.is_empty());
    for ((index, _), line) in failed.zip(&row.details).take(MAX_DETAILS) {
        out.push_str(&format!("  - {line}\n"));
        if let Some(repro) = row.repro(index) {
            out.push_str(&repro_text(
                repro,
                "      ",
                TEXT_COMMANDS,
                TEXT_COMMAND_BYTES,
                false,
            ));
        }
    }
    if row.details.len() > MAX_DETAILS {
        out.push_str(&format!(
            "  ... and {} more (see --report-json)\n",
            row.details.len() - MAX_DETAILS
        ));
    }
}

fn lines(out: &mut String, check: &str, what: &str, lines: &[String]) {
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
            "failed_cases": verification.failed_with_exchanges().map(|(i, c, _)| json!({
                "case": c.name,
                "number": i + 1,
                "failures": c.failures,
                "reproduce": rows.iter().find_map(|r| r.repro(i)).map(repro_json),
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

/// A reproduction in the JSON report: each command at most [`JSON_COMMAND_BYTES`].
fn repro_json(repro: &Repro) -> serde_json::Value {
    let commands: Vec<(String, bool)> = repro
        .commands
        .iter()
        .map(|c| bounded(c, JSON_COMMAND_BYTES, &repro.script))
        .collect();
    json!({
        "setup": repro.setup,
        "curl": commands.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        "curl_cut": commands.iter().any(|(_, cut)| *cut),
        "requests": repro.requests,
        "script": repro.script.as_ref().ok(),
        "script_error": repro.script.as_ref().err(),
    })
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
    repro: Option<&Repro>,
) -> TestCase {
    let status = if !failures.is_empty() {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let mut text = failures.join("\n");
        if let Some(repro) = repro {
            text.push_str("\n\nTo reproduce:\n");
            text.push_str(&repro_text(
                repro,
                "",
                usize::MAX,
                JUNIT_COMMAND_BYTES,
                true,
            ));
        }
        status
            .set_message(xml_text(&failures.join("; ")))
            .set_description(xml_text(&text));
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
            suite.add_test_case(test_case(
                &row.check,
                &failures,
                skipped,
                &row.warnings,
                None,
            ));
        } else {
            for (index, result) in row.case_results.iter().enumerate() {
                let mut case = test_case(
                    &result.name,
                    &result.failures,
                    None,
                    &result.warnings,
                    row.repro(index),
                );
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

/// Reproductions proved on real failures: a broken mock, verified; its failures' commands run
/// with the real `curl` against the same mock.
#[cfg(test)]
mod repro_tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::Command;

    use partner_center_contract::verify::{self, Options, Target};
    use partner_center_mock::{Breakage, MockConfig, RunningMock};
    use serde_json::Value;

    use super::*;

    const VARIABLE: &str = "PARTNER_CENTER_TOKEN";

    async fn broken(breakage: Breakage, token: &str) -> (RunningMock, Verification) {
        let mock = partner_center_mock::start(
            MockConfig {
                breakage: Some(breakage),
                token: token.into(),
                ..MockConfig::default()
            },
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        )
        .await
        .unwrap();
        let target = Target {
            base_url: mock.url(),
            token: token.into(),
        };
        let options = Options {
            cases: 100,
            seed: 7,
            concurrency: 4,
            ..Options::default()
        };
        let verification = verify::run(partner_center_contract::spec(), target, options)
            .await
            .unwrap();
        (mock, verification)
    }

    /// A directory of its own under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-repro-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn context(server: Server, dir: &Path) -> ReproContext<'static> {
        ReproContext {
            token_variable: VARIABLE,
            server,
            seed: 7,
            dir: dir.to_owned(),
            root: dir.parent().unwrap().to_owned(),
        }
    }

    /// Runs `sh` with `args`, the token in the environment; returns the status and body of the
    /// last answer `curl -i` printed.
    async fn sh(args: Vec<String>, token: &str) -> (u16, Vec<u8>) {
        let token = token.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            Command::new("sh")
                .args(&args)
                .env(VARIABLE, token)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let out = output.stdout;
        let start = out
            .windows(9)
            .rposition(|w| w == b"HTTP/1.1 ")
            .expect("an answer");
        let answer = &out[start..];
        let status = std::str::from_utf8(&answer[9..12])
            .unwrap()
            .parse()
            .unwrap();
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head");
        (status, answer[head_end + 4..].to_vec())
    }

    fn has_curl() -> bool {
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_against_a_broken_mock_is_reproduced_by_its_curl_command() {
        if !has_curl() {
            eprintln!(
                "curl is not installed: the reproduction is checked by the contract crate's fake curl only"
            );
            return;
        }
        let token = partner_center_mock::DEFAULT_TOKEN;
        // (breakage, the failure, the case it is looked for in, what the answer must show)
        let table: [(Breakage, &str, &str, u16, Option<&str>); 2] = [
            (
                Breakage::MissingField,
                "isEligible",
                "checkEligibility positive",
                200,
                Some("isEligible"),
            ),
            (
                Breakage::WrongStatus,
                "status 201, expected one of the declared",
                "createUpgrade positive",
                201,
                None,
            ),
        ];
        for (breakage, failure, case_name, status, missing) in table {
            let (mock, verification) = broken(breakage, token).await;
            let dir = scratch(&format!("{breakage:?}"));
            let server = Server::EmbeddedMock {
                port: mock.addr().port(),
            };
            let made = repros(&verification, &context(server, &dir));
            assert_eq!(made.len(), verification.failed().count());

            let (index, case, exchanges) = verification
                .failed_with_exchanges()
                .find(|(_, c, _)| {
                    c.name.starts_with(case_name) && c.failures.iter().any(|f| f.contains(failure))
                })
                .unwrap_or_else(|| panic!("no {case_name} case fails with {failure}"));
            let repro = made.iter().find(|r| r.case == index).unwrap();
            assert_eq!((exchanges.len(), repro.commands.len()), (1, 1));
            assert_eq!(exchanges[0].status, Some(status));
            assert!(
                repro.setup[0].contains(&format!("cargo xtask mock --port {}", mock.addr().port()))
            );
            assert!(repro.setup[1].contains(&format!("export {VARIABLE}={token}")));

            // The command alone, and the script, get the same failing answer from the same mock.
            let script = dir.join(format!("{:03}.sh", index + 1));
            assert_eq!(
                repro.script.as_deref(),
                Ok(format!(
                    "{}/{:03}.sh",
                    dir.file_name().unwrap().to_string_lossy(),
                    index + 1
                )
                .as_str())
            );
            for args in [
                vec!["-c".to_owned(), repro.commands[0].clone()],
                vec![script.display().to_string()],
            ] {
                let (got, body) = sh(args, token).await;
                assert_eq!(got, status, "{}: {}", case.name, repro.commands[0]);
                if let Some(field) = missing {
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    assert!(body.get(field).is_none(), "{body}");
                    assert!(body.get("customerId").is_some(), "{body}");
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_report_shows_the_commands_and_none_shows_the_token() {
        let token = "report-secret-token-0123456789";
        let (_mock, verification) = broken(Breakage::MissingLocation, token).await;
        let dir = scratch("reports");
        let mut row = Row::of_cases(
            "provider: https://pc.example.com",
            verification.cases.clone(),
            verification.elapsed,
        );
        row.repros = repros(&verification, &context(Server::External, &dir));
        assert!(!row.repros.is_empty());
        // A flow sends several requests; its script has them all, its failing one shown.
        let flow = row
            .repros
            .iter()
            .find(|r| r.requests > 1)
            .expect("a failed flow");
        assert_eq!(flow.commands.len(), 1, "{:?}", flow.commands);
        if has_curl() {
            // Run whole, it sends them all again, each answer under its own line.
            let script = dir.parent().unwrap().join(flow.script.as_ref().unwrap());
            let output = Command::new("sh")
                .arg(&script)
                .env(VARIABLE, token)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&output.stdout);
            for i in 1..=flow.requests {
                assert!(
                    out.contains(&format!("\n--- request {i} of {}", flow.requests)),
                    "{out}"
                );
            }
            assert_eq!(out.matches("HTTP/1.1 ").count(), flow.requests, "{out}");
            assert!(
                !out.contains("location:"),
                "the mock breaks Location: {out}"
            );
        }

        let text = render(std::slice::from_ref(&row));
        assert!(
            text.contains("failures (") && text.contains("each with the curl command"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "    # export {VARIABLE}=<the server's bearer token>"
        )));
        assert!(text.contains("\n      curl -sS -i --noproxy '*' -X POST 'http://127.0.0.1:"));
        assert!(text.contains(&format!(
            "\n        -H \"Authorization: Bearer ${VARIABLE}\" \\\n"
        )));
        assert!(text.contains(&format!(
            "# as a script: sh {}/",
            dir.file_name().unwrap().to_string_lossy()
        )));
        assert!(text.contains("requests): sh "), "{text}");

        let json_path = dir.join("report.json");
        write_json(&json_path, std::slice::from_ref(&row), &verification, 1.0).unwrap();
        let json_text = std::fs::read_to_string(&json_path).unwrap();
        let json: Value = serde_json::from_str(&json_text).unwrap();
        let failed = json["provider"]["failed_cases"].as_array().unwrap();
        assert_eq!(failed.len(), verification.failed().count());
        for case in failed {
            let reproduce = &case["reproduce"];
            assert!(
                reproduce["curl"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("curl -sS -i"),
                "{case}"
            );
            assert_eq!(reproduce["curl_cut"], false);
            let script = reproduce["script"].as_str().unwrap();
            assert!(
                script.ends_with(&format!("{:03}.sh", case["number"])),
                "{case}"
            );
        }

        let xml = junit(std::slice::from_ref(&row)).unwrap();
        let report = Report::deserialize_from_str(&xml).unwrap();
        let described = report.test_suites[0]
            .test_cases
            .iter()
            .filter_map(|c| match &c.status {
                TestCaseStatus::NonSuccess {
                    description: Some(d),
                    ..
                } => Some(d.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(described.len(), verification.failed().count());
        for description in &described {
            assert!(
                description.contains("\n\nTo reproduce:\n# export"),
                "{description}"
            );
            assert!(description.contains("\ncurl -sS -i"), "{description}");
        }

        let mut everything = format!("{text}{json_text}{xml}");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sh") {
                let script = std::fs::read_to_string(&path).unwrap();
                assert!(script.starts_with("#!/bin/sh\n# Case "), "{script}");
                let parsed = Command::new("sh").arg("-n").arg(&path).status().unwrap();
                assert!(parsed.success(), "{script}");
                everything.push_str(&script);
            }
        }
        assert!(!everything.contains(token));
        assert!(!everything.contains(partner_center_mock::DEFAULT_TOKEN));
        assert!(!everything.contains("eyJ"));

        // A second run's scripts replace the first's.
        std::fs::write(dir.join("999.sh"), "stale").unwrap();
        std::fs::write(dir.join("notes.txt"), "kept").unwrap();
        repros(&verification, &context(Server::External, &dir));
        assert!(!dir.join("999.sh").exists());
        assert!(dir.join("notes.txt").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_long_command_is_cut_in_the_reports_and_the_script_named() {
        let long = format!(
            "curl -sS -i -X POST 'http://x' \\\n  --data-binary '{}'",
            "é".repeat(6000)
        );
        let repro = Repro {
            case: 0,
            setup: vec!["# export T=x".into()],
            commands: vec![long.clone()],
            requests: 1,
            script: Ok("target/contract-repro/001.sh".into()),
        };
        let text = repro_text(&repro, "  ", TEXT_COMMANDS, TEXT_COMMAND_BYTES, false);
        assert!(text.len() < TEXT_COMMAND_BYTES + 300, "{}", text.len());
        assert!(
            text.contains(&format!(
                "# ... cut: {} of {} bytes shown; the whole command is in target/contract-repro/001.sh",
                TEXT_COMMAND_BYTES,
                long.len()
            )),
            "{text}"
        );
        let json = repro_json(&repro);
        assert_eq!(json["curl"][0], long.as_str());
        assert_eq!(json["curl_cut"], false);
        let without_script = Repro {
            script: Err("cannot write".into()),
            ..repro
        };
        let (cut, was_cut) = bounded(&long, 101, &without_script.script);
        assert!(was_cut);
        assert!(
            cut.ends_with("the JSON report (--report-json) has it whole"),
            "{cut}"
        );
        assert!(cut.len() < 101 + 100);
    }

    #[test]
    fn the_setup_names_the_server_to_start_and_the_value_to_export() {
        let dir = PathBuf::from("/w/target/contract-repro");
        let mock = setup(&context(Server::EmbeddedMock { port: 40123 }, &dir));
        assert_eq!(
            mock,
            [
                "# the embedded mock stopped after the run; start one on its port: cargo xtask mock --port 40123",
                "# export PARTNER_CENTER_TOKEN=mock-partner-center-token   (the mock's public default token)",
            ]
        );
        assert!(setup(&context(Server::Prism { port: 9 }, &dir))[1].contains("any-token"));
        let external = setup(&context(Server::External, &dir));
        assert_eq!(external.len(), 1);
        assert!(external[0].starts_with("# export PARTNER_CENTER_TOKEN=<"));
        assert_eq!(one_line("a\nrm -rf /\r\tb"), "a\\u{a}rm -rf /\\u{d}\\u{9}b");
    }
}
