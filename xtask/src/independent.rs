//! The contract run next to independent tools: schemathesis against the embedded mock (graded
//! from its JUnit report, and its speed beside ours), and provider verification against
//! `prism mock`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::Row;
use crate::tools;

/// What schemathesis did.
pub struct SchemathesisRun {
    pub row: Row,
    pub cases: usize,
    pub seconds: f64,
}

/// The variable schemathesis reads the token from, through its configuration file.
const SCHEMATHESIS_TOKEN: &str = "PC_CONTRACT_TOKEN";

/// schemathesis's configuration: the `Authorization` header, with the token substituted from the
/// environment when schemathesis loads it, so it never appears in a command line (process lists)
/// or in a file.
const SCHEMATHESIS_CONFIG: &str = "# Written by cargo xtask contract. The token comes from the environment.\n\
headers = { Authorization = \"Bearer ${PC_CONTRACT_TOKEN}\" }\n";

/// What schemathesis's JUnit report says: a test case for each operation it tested.
#[derive(Debug, Default, PartialEq)]
struct JunitSummary {
    /// Test cases (operations).
    cases: usize,
    /// One line per failed or errored test case: the operation and what failed.
    failures: Vec<String>,
    /// Test cases that were skipped, with the reason.
    skipped: Vec<String>,
}

/// The test case being read from schemathesis's JUnit report.
#[derive(Default)]
struct Case {
    /// The operation, `POST /v1/productUpgrades`.
    name: String,
    failed: bool,
    /// What failed, one entry each: `ST103 Undocumented status code`, or an error's first line.
    checks: Vec<String>,
    /// What failed when the text names nothing: the elements' `message` attributes.
    messages: Vec<String>,
    skipped: Option<String>,
}

impl Case {
    /// Takes what failed from a `<failure>`'s text (each failed check is a line
    /// `- ST103 Undocumented status code`) or an `<error>`'s (its first line).
    fn read(&mut self, is_failure: bool, text: &str) {
        if is_failure {
            self.checks.extend(
                text.lines()
                    .filter_map(|l| l.trim().strip_prefix("- "))
                    .filter(|l| l.starts_with("ST"))
                    .map(str::to_owned),
            );
        } else if let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
            self.checks.push(format!("error: {line}"));
        }
    }

    fn finish(self, summary: &mut JunitSummary) {
        if self.failed {
            let mut what: Vec<String> = Vec::new();
            let source = if self.checks.is_empty() {
                self.messages
            } else {
                self.checks
            };
            for item in source {
                if !what.contains(&item) {
                    what.push(item);
                }
            }
            summary
                .failures
                .push(format!("{}: {}", self.name, what.join("; ")));
        } else if let Some(why) = self.skipped {
            summary.skipped.push(format!("{}: {why}", self.name));
        }
    }
}

/// Reads schemathesis's JUnit report: a `<testcase name="POST /path">` per operation, holding a
/// `<failure message="ST103">` whose text lists each failed check as `- ST103 Title`, an
/// `<error>` whose text says what went wrong, or a `<skipped>`.
fn read_junit(xml: &str) -> Result<JunitSummary, String> {
    use quick_xml::events::{BytesStart, Event};

    let attribute = |element: &BytesStart, name: &str| -> Result<String, String> {
        match element.try_get_attribute(name).map_err(|e| e.to_string())? {
            Some(value) => Ok(value
                .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned()),
            None => Ok(String::new()),
        }
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut summary = JunitSummary::default();
    let mut saw_testsuites = false;
    let mut case: Option<Case> = None;
    // The text of the `<failure>` (true) or `<error>` (false) being read.
    let mut text: Option<(bool, String)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not XML at byte {}: {e}", reader.error_position()))?;
        match &event {
            Event::Eof => break,
            Event::Start(element) | Event::Empty(element) => {
                let empty = matches!(event, Event::Empty(_));
                match element.name().as_ref() {
                    b"testsuites" => saw_testsuites = true,
                    b"testcase" => {
                        if let Some(done) = case.take() {
                            done.finish(&mut summary);
                        }
                        summary.cases += 1;
                        let current = Case {
                            name: attribute(element, "name")?,
                            ..Case::default()
                        };
                        match empty {
                            true => current.finish(&mut summary),
                            false => case = Some(current),
                        }
                    }
                    tag @ (b"failure" | b"error" | b"skipped") => {
                        let Some(current) = case.as_mut() else {
                            let tag = String::from_utf8_lossy(tag);
                            return Err(format!("<{tag}> outside a <testcase>"));
                        };
                        let message = attribute(element, "message")?;
                        let (is_failure, fallback) = match tag {
                            b"failure" => (true, "failed"),
                            b"error" => (false, "error"),
                            _ => {
                                current.skipped.get_or_insert(message);
                                continue;
                            }
                        };
                        current.failed = true;
                        current.messages.push(match message.is_empty() {
                            true => fallback.to_owned(),
                            false => message,
                        });
                        if !empty {
                            text = Some((is_failure, String::new()));
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(chunk) => {
                if let Some((_, buffer)) = text.as_mut() {
                    buffer.push_str(&chunk.decode().map_err(|e| e.to_string())?);
                }
            }
            // `&lt;` and the like arrive apart from the text around them.
            Event::GeneralRef(reference) => {
                if let Some((_, buffer)) = text.as_mut() {
                    let name = reference.decode().map_err(|e| e.to_string())?;
                    match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => buffer.push(c),
                        None => buffer.push_str(
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?,
                        ),
                    }
                }
            }
            Event::End(element) => match element.name().as_ref() {
                b"failure" | b"error" => {
                    if let (Some((is_failure, buffer)), Some(current)) =
                        (text.take(), case.as_mut())
                    {
                        current.read(is_failure, &buffer);
                    }
                }
                b"testcase" => {
                    if let Some(done) = case.take() {
                        done.finish(&mut summary);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    if !saw_testsuites {
        return Err("no <testsuites> element".into());
    }
    Ok(summary)
}

/// The number of test cases schemathesis generated, from its JSON run report
/// (`test_cases.generated`): the JUnit report has one test case per operation, and the speed
/// comparison needs the cases.
fn generated_cases(json: &str) -> Option<usize> {
    let report: serde_json::Value = serde_json::from_str(json).ok()?;
    usize::try_from(report["test_cases"]["generated"].as_u64()?).ok()
}

/// The last lines of a process's error output (or of its output, when it wrote no error), for a
/// failure message.
fn last_lines(output: &std::process::Output) -> String {
    let stream = match output.stderr.iter().all(u8::is_ascii_whitespace) {
        true => &output.stdout,
        false => &output.stderr,
    };
    let text = String::from_utf8_lossy(stream);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Runs `st run` with its default checks against a mock at `url`, `examples` per operation, and
/// grades it from its JUnit report (a test case per operation); the number of cases it generated,
/// for the speed comparison, comes from its JSON run report. The token reaches schemathesis
/// through its environment, never its arguments.
pub fn schemathesis(
    root: &Path,
    url: &str,
    token: &str,
    examples: u32,
    seed: u64,
) -> SchemathesisRun {
    let check = "schemathesis: embedded mock";
    let program = match tools::pip_tool(root, tools::SCHEMATHESIS, "st") {
        Ok(program) => program,
        Err(why) => {
            return SchemathesisRun {
                row: Row::skipped(check, why),
                cases: 0,
                seconds: 0.0,
            };
        }
    };
    let work = root.join("target").join("schemathesis");
    let _ = std::fs::create_dir_all(&work);
    let config = work.join("schemathesis.toml");
    let (junit, json) = (work.join("junit.xml"), work.join("report.json"));
    // A report left by an earlier run must not pass for this one's.
    let _ = std::fs::remove_file(&junit);
    let _ = std::fs::remove_file(&json);
    if let Err(e) = std::fs::write(&config, SCHEMATHESIS_CONFIG) {
        return SchemathesisRun {
            row: Row::new(
                check,
                1,
                vec![format!("cannot write {}: {e}", config.display())],
                Duration::ZERO,
            ),
            cases: 0,
            seconds: 0.0,
        };
    }
    let started = Instant::now();
    let output = Command::new(program)
        .current_dir(&work)
        .env(SCHEMATHESIS_TOKEN, token)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(partner_center_contract::spec_path())
        .args(["--url", url])
        // The stateful phase has its own row (`schemathesis_stateful`), graded by the links.
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            &examples.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--report", "junit,json", "--report-junit-path"])
        .arg(&junit)
        .arg("--report-json-path")
        .arg(&json)
        .output();
    let elapsed = started.elapsed();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            let row = Row::new(
                check,
                1,
                vec![format!("cannot run schemathesis: {e}")],
                elapsed,
            );
            return SchemathesisRun {
                row,
                cases: 0,
                seconds: elapsed.as_secs_f64(),
            };
        }
    };
    let generated = std::fs::read_to_string(&json)
        .ok()
        .and_then(|text| generated_cases(&text))
        .unwrap_or(0);
    let summary = std::fs::read_to_string(&junit)
        .map_err(|e| e.to_string())
        .and_then(|text| read_junit(&text));
    let row = match summary {
        Ok(summary) => {
            let mut failures = summary.failures.clone();
            if !output.status.success() && failures.is_empty() {
                failures.push(format!(
                    "schemathesis exited with {} but its JUnit report names no failing operation: {}",
                    output.status,
                    last_lines(&output)
                ));
            }
            // A failing process that names no operation still fails the row, as one case.
            let failed = summary
                .failures
                .len()
                .max(usize::from(!failures.is_empty()));
            let cases = summary.cases.max(failed);
            let mut row = Row::new(check, cases, failures, elapsed);
            row.failed = failed;
            row.passed = cases.saturating_sub(failed + summary.skipped.len());
            row.notes.push(format!(
                "{} operation(s) tested, {generated} test case(s) generated; reports: {}, {}",
                summary.cases,
                junit.display(),
                json.display()
            ));
            row.notes
                .extend(summary.skipped.iter().map(|s| format!("skipped: {s}")));
            row
        }
        Err(why) => Row::new(
            check,
            1,
            vec![format!(
                "schemathesis ({}) left no readable JUnit report at {}: {why}; its output ends: {}",
                output.status,
                junit.display(),
                last_lines(&output)
            )],
            elapsed,
        ),
    };
    SchemathesisRun {
        row,
        cases: generated,
        seconds: elapsed.as_secs_f64(),
    }
}

/// What issue 13 asks of the stateful phase: the status of a created upgrade reached after
/// 95% of the creates. Reported, not enforced: schemathesis explores by design (it ends
/// scenarios at random, draws earlier answers from a pool and sometimes replaces a linked value
/// by a generated one), so its follow rate stays well under it whatever the links say; the row
/// fails only when the links never work.
pub const STATEFUL_FOLLOW_TARGET: f64 = 0.95;

/// Longer scenarios (after a create there are more steps in which to follow it), and positive
/// cases only: the stateful phase is about chaining valid calls, and the other phases already
/// send the invalid ones (a negative body on a followed status read is a 400 that follows
/// nothing). Measured with 100 examples and seeds 1 and 2: 30 steps with negative cases
/// followed 58% of the creates, 60 steps positive only 80 to 100%.
const STATEFUL_CONFIG: &str =
    "[phases.stateful]\nmax-steps = 60\n[phases.stateful.generation]\nmode = \"positive\"\n";

/// A schemathesis hook for the stateful phase: positive cases ask for the one documented
/// product family, so creates succeed and there is an upgrade to follow (random families are
/// answered 403, "not offered"). Negative cases are left as generated.
const STATEFUL_HOOKS: &str = r#"# Written by cargo xtask contract (xtask/src/independent.rs).
import schemathesis


@schemathesis.hook
def map_case(ctx, case):
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and isinstance(case.body, dict) and isinstance(case.body.get("productFamily"), str):
        case.body["productFamily"] = "Azure"
    return case
"#;

/// schemathesis's stateful phase alone, against a fresh embedded mock: it chains operations by
/// the spec's links (`createUpgrade` → `CreatedUpgrade` → `getUpgradeStatus`, eligibility →
/// `UpgradeUnderWay`). The mock's ledger counts the upgrades created, those whose status was
/// read afterwards, and the status reads of held upgrades that named their customer; the row
/// reports them against [`STATEFUL_FOLLOW_TARGET`] and fails when the links never work.
pub fn schemathesis_stateful(root: &Path, examples: u32, seed: u64) -> Row {
    let check = "schemathesis: stateful phase follows the links";
    let program = match tools::pip_tool(root, tools::SCHEMATHESIS, "st") {
        Ok(program) => program,
        Err(why) => return Row::skipped(check, why),
    };
    let (_runtime, mock) = match crate::mock::embedded(partner_center_mock::MockConfig::default()) {
        Ok(embedded) => embedded,
        Err(e) => return Row::new(check, 1, vec![e], Duration::ZERO),
    };
    let work = root.join("target").join("schemathesis-stateful");
    let _ = std::fs::create_dir_all(&work);
    let config = work.join("schemathesis.toml");
    let written = std::fs::write(&config, format!("{SCHEMATHESIS_CONFIG}{STATEFUL_CONFIG}"))
        .and_then(|()| std::fs::write(work.join("pc_stateful_hooks.py"), STATEFUL_HOOKS));
    if let Err(e) = written {
        return Row::new(
            check,
            1,
            vec![format!("cannot write {}: {e}", config.display())],
            Duration::ZERO,
        );
    }
    let started = Instant::now();
    let output = Command::new(program)
        .current_dir(&work)
        .env(SCHEMATHESIS_TOKEN, mock.token())
        .env("PYTHONPATH", &work)
        .env("SCHEMATHESIS_HOOKS", "pc_stateful_hooks")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(partner_center_contract::spec_path())
        .args(["--url", &mock.url()])
        .args(["--phases", "stateful"])
        // A schema-valid request may still break a business rule, and the API answers 400 for
        // it (900110, an upgrade already completed; 900111, another customer's upgrade id:
        // `openapi/ERRATA.md`); the stateful phase reaches both, by design.
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--generation-database", "none", "--no-color"])
        .output();
    let elapsed = started.elapsed();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            return Row::new(
                check,
                1,
                vec![format!("cannot run schemathesis: {e}")],
                elapsed,
            );
        }
    };
    let totals = mock.ledger().totals;
    let share = totals.followed as f64 / totals.created.max(1) as f64;
    let found = totals.reads_of_held_ok as f64 / totals.reads_of_held.max(1) as f64;
    let mut failures = Vec::new();
    if totals.created == 0 || totals.followed == 0 {
        failures.push(format!(
            "the stateful phase created {} upgrades and followed {}: the links do not carry it \
             from createUpgrade to getUpgradeStatus; its output ends: {}",
            totals.created,
            totals.followed,
            last_lines(&output)
        ));
    } else if totals.reads_of_held_ok == 0 {
        failures.push(format!(
            "none of {} status reads of created upgrades named the upgrade's customer: the \
             links do not carry the request body over",
            totals.reads_of_held
        ));
    }
    if !output.status.success() {
        failures.push(format!(
            "schemathesis's stateful phase failed ({}): {}",
            output.status,
            last_lines(&output)
        ));
    }
    let mut row = Row::new(check, 1, failures, elapsed);
    row.notes.push(format!(
        "{} upgrades created, the status of {} read afterwards: {:.1}% (target {:.0}%, {}; \
         reported, not enforced: schemathesis explores by design); {} of {} status reads of a \
         held upgrade named its customer ({:.1}%)",
        totals.created,
        totals.followed,
        100.0 * share,
        100.0 * STATEFUL_FOLLOW_TARGET,
        if share >= STATEFUL_FOLLOW_TARGET {
            "met"
        } else {
            "not met"
        },
        totals.reads_of_held_ok,
        totals.reads_of_held,
        100.0 * found,
    ));
    row
}

/// A running `prism mock`; stopped when dropped.
pub struct Prism {
    child: Child,
    pub url: String,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `prism mock` of the spec on a free loopback port and waits until it listens.
pub fn start_prism(root: &Path) -> Result<Prism, String> {
    let program = tools::npm_tool(root, tools::PRISM, "prism")?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(program)
        .args([
            "mock",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--errors",
        ])
        .arg(partner_center_contract::spec_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start prism: {e}"))?;
    let prism = Prism {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err("prism mock did not start listening within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(prism)
}

#[cfg(test)]
mod tests {
    use super::{
        JunitSummary, SCHEMATHESIS_CONFIG, SCHEMATHESIS_TOKEN, generated_cases, read_junit,
    };

    /// What schemathesis 4.32.5 wrote for a run against the mock broken with `--break
    /// wrong-status` (shortened), and with an error and a skip added.
    const FAILED_RUN: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites errors="1" failures="1" skipped="1" tests="4" time="2.212452">
  <testsuite name="schemathesis" hostname="vm" errors="1" failures="1" skipped="1" tests="4" time="2.212452">
    <testcase name="POST /v1/productUpgrades/eligibility" time="1.037686" />
    <testcase name="POST /v1/productUpgrades" time="0.082005">
      <failure type="failure" message="ST103, ST201">1. Test Case ID: jIlEEl

- ST103 Undocumented status code

    Received: 201
    Documented: 202, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504

- ST201 Response violates schema &lt;Upgrade&gt;

2. Test Case ID: kJmFFm

- ST103 Undocumented status code

[201] Created:

    &lt;EMPTY&gt;</failure>
    </testcase>
    <testcase name="POST /v1/productUpgrades/{upgradeId}/status" time="1.092762">
      <error type="error">Connection refused

to 127.0.0.1</error>
    </testcase>
    <testcase name="GET /v1/other" time="0">
      <skipped type="skipped" message="no examples" />
    </testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn a_passing_run_is_a_test_case_per_operation_and_no_failure() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites errors="0" failures="0" skipped="0" tests="3" time="7.044073">
  <testsuite name="schemathesis" hostname="vm" errors="0" failures="0" skipped="0" tests="3" time="7.044073">
    <testcase name="POST /v1/productUpgrades/eligibility" time="4.591628" />
    <testcase name="POST /v1/productUpgrades" time="1.085996" />
    <testcase name="POST /v1/productUpgrades/{upgradeId}/status" time="1.366449" />
  </testsuite>
</testsuites>"#;
        assert_eq!(
            read_junit(xml).unwrap(),
            JunitSummary {
                cases: 3,
                failures: vec![],
                skipped: vec![]
            }
        );
    }

    #[test]
    fn failures_and_errors_are_named_by_operation_and_check() {
        let summary = read_junit(FAILED_RUN).unwrap();
        assert_eq!(summary.cases, 4);
        assert_eq!(
            summary.failures,
            [
                "POST /v1/productUpgrades: ST103 Undocumented status code; ST201 Response violates schema <Upgrade>",
                "POST /v1/productUpgrades/{upgradeId}/status: error: Connection refused",
            ]
        );
        assert_eq!(summary.skipped, ["GET /v1/other: no examples"]);
    }

    #[test]
    fn a_failure_without_text_is_named_by_its_message() {
        let xml = r#"<testsuites><testsuite><testcase name="POST /x"><failure message="ST103"/></testcase></testsuite></testsuites>"#;
        assert_eq!(read_junit(xml).unwrap().failures, ["POST /x: ST103"]);
    }

    #[test]
    fn a_report_that_is_not_junit_is_an_error() {
        assert!(read_junit("").is_err());
        assert!(read_junit("<testsuites><testcase name=\"x\"></testsuites>").is_err());
        assert!(read_junit("<html/>").is_err());
    }

    #[test]
    fn the_generated_cases_come_from_the_json_run_report() {
        let json = r#"{"test_cases": {"generated": 307, "with_failures": 0}}"#;
        assert_eq!(generated_cases(json), Some(307));
        assert_eq!(generated_cases("{}"), None);
    }

    #[test]
    fn schemathesis_gets_the_token_from_its_environment_only() {
        assert!(SCHEMATHESIS_CONFIG.contains(&format!("Bearer ${{{SCHEMATHESIS_TOKEN}}}")));
        assert!(!SCHEMATHESIS_CONFIG.contains(partner_center_mock::DEFAULT_TOKEN));
    }
}
