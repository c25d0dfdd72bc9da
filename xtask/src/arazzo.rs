//! The workflow is part of the contract: `openapi/product-upgrades.arazzo.yaml` is linted with
//! the spec by Redocly CLI, and run by Redocly Respect (a workflow runner no one here wrote)
//! against the embedded mock, once for each way the workflow ends: an eligible customer
//! upgraded to `Completed`, a customer that is not eligible, and an upgrade already under way
//! that is followed instead of creating another. (The `409` branch needs a race no single
//! runner makes; the polyglot clients and the Rust flow tests take it.)
//!
//! Our own structural checks of the links and the workflow (operation ids, parameters, step
//! ids) are in `spec_rules`, because the pinned Redocly release does not resolve a step's or a
//! link's operation id.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use partner_center_mock::{MockConfig, NO_AZURE_CUSTOMER, Outcome, Scenario};

use partner_center_contract::verify::CaseResult;

use crate::report::Row;
use crate::tools;

/// The workflow document beside the spec.
pub fn workflow_path(root: &Path) -> PathBuf {
    root.join("openapi").join("product-upgrades.arazzo.yaml")
}

fn redocly(root: &Path) -> Result<PathBuf, String> {
    tools::npm_tool(root, tools::REDOCLY, "redocly")
}

/// Redocly's output without its banners (boxes drawn with `║`), in one line for the report.
fn tail(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('║') && !l.contains('╔') && !l.contains('╚'))
        .collect();
    let start = kept.len().saturating_sub(lines);
    kept[start..].join(" | ")
}

/// `redocly lint` of the spec and of the workflow.
pub fn lint(root: &Path) -> Row {
    let check = "spec + workflow: redocly lint";
    let program = match redocly(root) {
        Ok(program) => program,
        Err(why) => return Row::skipped(check, why),
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    for file in [partner_center_contract::spec_path(), workflow_path(root)] {
        let output = Command::new(&program)
            .arg("lint")
            .arg(&file)
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
            .output();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => failures.push(format!(
                "{}: {}",
                file.display(),
                tail(
                    &format!(
                        "{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    ),
                    20
                )
            )),
            Err(e) => failures.push(format!("cannot run {}: {e}", program.display())),
        }
    }
    Row::new(check, 2, failures, started.elapsed())
}

/// The customers the workflow is run for, and how it must end for each.
fn cases() -> [(&'static str, uuid::Uuid); 3] {
    [
        (
            "eligible: created and followed to Completed",
            uuid::Uuid::new_v4(),
        ),
        (
            "not eligible: ends after eligibility",
            uuid::Uuid::parse_str(NO_AZURE_CUSTOMER).expect("a GUID"),
        ),
        (
            "already under way: followed, none created",
            uuid::Uuid::new_v4(),
        ),
    ]
}

/// Runs the workflow with Redocly Respect against a fresh embedded mock, once per case; checks
/// with the mock's ledger that the eligible customer got one upgrade and the others none.
pub fn respect(root: &Path) -> Row {
    let check = "workflow: redocly respect against the embedded mock";
    let program = match redocly(root) {
        Ok(program) => program,
        Err(why) => return Row::skipped(check, why),
    };
    let cases = cases();
    let under_way = cases[2].1;
    let (_runtime, mock) = match crate::mock::embedded(MockConfig {
        scenario: Some(Scenario::new().with(under_way, Outcome::UnderWay)),
        ..MockConfig::default()
    }) {
        Ok(embedded) => embedded,
        Err(e) => return Row::new(check, 1, vec![e], Default::default()),
    };
    let work = root.join("target").join("respect");
    let _ = std::fs::create_dir_all(&work);
    let started = Instant::now();
    let mut results = Vec::new();
    for (index, (name, customer)) in cases.iter().enumerate() {
        let case_started = Instant::now();
        let json = work.join(format!("case-{index}.json"));
        let _ = std::fs::remove_file(&json);
        let output = Command::new(&program)
            .arg("respect")
            .arg(workflow_path(root))
            .args(["--input", &format!("customerId={customer}")])
            .args(["--input", &format!("token={}", mock.token())])
            .args(["--input", "productFamily=Azure"])
            .args([
                "--input",
                &format!("correlationId={}", uuid::Uuid::new_v4()),
            ])
            .args(["--server", &format!("productUpgrades={}", mock.url())])
            .arg("--json-output")
            .arg(&json)
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
            .output();
        let mut failures = Vec::new();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => failures.push(tail(
                &format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
                12,
            )),
            Err(e) => failures.push(format!("cannot run {}: {e}", program.display())),
        }
        let ledger = mock.ledger();
        let entry = ledger.customers.iter().find(|c| c.customer_id == *customer);
        let created = entry.map_or(0, |c| c.created);
        let expected = u64::from(index == 0);
        if created != expected {
            failures.push(format!(
                "the mock made {created} upgrades for this customer, not {expected}"
            ));
        }
        // Respect succeeds on any `end`: the eligible and the under-way runs must also have
        // polled their upgrade to `Completed` (the not-eligible branch ends them early).
        let status = entry.and_then(|c| c.latest_status);
        if index != 1 && status != Some("Completed") {
            failures.push(format!(
                "the customer's upgrade was not followed to Completed (its status: {status:?})"
            ));
        }
        results.push(CaseResult {
            name: (*name).to_owned(),
            failures,
            warnings: Vec::new(),
            elapsed: case_started.elapsed(),
        });
    }
    Row::of_cases(check, results, started.elapsed())
}
