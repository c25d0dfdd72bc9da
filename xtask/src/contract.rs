//! `cargo xtask contract`: do the spec, the generated client and its tests agree?
//!
//! Runs each check in order, prints a line as each starts, then a table; exits non-zero when any
//! check failed.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use partner_center_contract as contract;

use crate::report::{Outcome, Row, render};
use crate::{spec_rules, tools};

/// Options of `cargo xtask contract`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Skip the independent linters (Spectral, openapi-spec-validator), which are installed
    /// into target/tools on first use.
    #[arg(long)]
    pub no_external: bool,
    /// Skip running the test suite.
    #[arg(long)]
    pub no_tests: bool,
}

pub fn run(root: &Path, options: &Options) -> Result<bool, String> {
    let spec_path = contract::spec_path();
    let mut rows = Vec::new();
    let steps = 4;

    progress(1, steps, "spec: project rules");
    let started = Instant::now();
    let spec = contract::read_spec(&spec_path)?;
    let findings = spec_rules::check(&spec);
    rows.push(Row::new(
        "spec: project rules",
        findings.checks,
        findings.failures,
        started.elapsed(),
    ));

    progress(2, steps, "spec: openapi-spec-validator");
    rows.push(if options.no_external {
        Row::skipped("spec: openapi-spec-validator", "--no-external".into())
    } else {
        external(
            "spec: openapi-spec-validator",
            tools::pip_tool(root, tools::SPEC_VALIDATOR, "openapi-spec-validator"),
            |program| {
                let mut command = Command::new(program);
                command.arg(&spec_path);
                command
            },
        )
    });

    progress(3, steps, "spec: spectral:oas");
    rows.push(if options.no_external {
        Row::skipped("spec: spectral:oas", "--no-external".into())
    } else {
        external(
            "spec: spectral:oas",
            tools::npm_tool(root, tools::SPECTRAL, "spectral"),
            |program| {
                let mut command = Command::new(program);
                command
                    .args(["lint", "--fail-severity=hint", "-f", "text", "--ruleset"])
                    .arg(root.join(".spectral.yaml"))
                    .arg(&spec_path)
                    .env("SCARF_ANALYTICS", "false");
                command
            },
        )
    });

    progress(4, steps, "tests: cargo test --workspace");
    rows.push(if options.no_tests {
        Row::skipped("tests: cargo test --workspace", "--no-tests".into())
    } else {
        cargo_test(root)
    });

    println!("\n{}", render(&rows));
    let ok = rows.iter().all(|r| r.outcome != Outcome::Failed);
    println!(
        "contract: {}",
        if ok { "all checks passed" } else { "FAILED" }
    );
    Ok(ok)
}

fn progress(step: usize, of: usize, what: &str) {
    eprintln!("[{step}/{of}] {what} ...");
}

/// Runs an external tool over the spec: one case, failed with the tool's output when it exits
/// non-zero.
fn external(
    check: &str,
    program: Result<std::path::PathBuf, String>,
    command: impl FnOnce(&Path) -> Command,
) -> Row {
    let program = match program {
        Ok(program) => program,
        Err(why) => return Row::skipped(check, why),
    };
    let started = Instant::now();
    let mut command = command(&program);
    let failures = match command.output() {
        Ok(output) if output.status.success() => Vec::new(),
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        }
        Err(e) => vec![format!("cannot run {}: {e}", program.display())],
    };
    let failures = if failures.is_empty() {
        failures
    } else {
        vec![failures.join(" | ")]
    };
    Row::new(check, 1, failures, started.elapsed())
}

/// Runs the workspace's tests and counts their cases from the harness's summary lines.
fn cargo_test(root: &Path) -> Row {
    let check = "tests: cargo test --workspace";
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = match Command::new(cargo)
        .current_dir(root)
        .args(["test", "--workspace", "--locked"])
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            return Row::new(
                check,
                1,
                vec![format!("cannot run cargo: {e}")],
                started.elapsed(),
            );
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (mut passed, mut failed) = (0, 0);
    let mut failures = Vec::new();
    for line in stdout.lines() {
        if let Some(summary) = line.strip_prefix("test result: ") {
            passed += count(summary, " passed");
            failed += count(summary, " failed");
        }
        if line.starts_with("test ") && line.ends_with("FAILED") {
            failures.push(line.trim_start_matches("test ").to_owned());
        }
    }
    if !output.status.success() && failures.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        failures.push(format!(
            "cargo test failed before running the tests:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
        failed = failed.max(1);
    }
    let mut row = Row::new(check, passed + failed, failures, started.elapsed());
    row.failed = failed;
    row.passed = passed;
    if failed > 0 {
        row.outcome = Outcome::Failed;
    }
    row
}

/// The number before `label` in a harness summary such as `ok. 33 passed; 0 failed; ...`.
fn count(summary: &str, label: &str) -> usize {
    summary
        .find(label)
        .and_then(|end| summary[..end].rsplit([' ', '.']).next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_are_read_from_the_test_harness_summary() {
        let line =
            "ok. 33 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count(line, " passed"), 33);
        assert_eq!(count(line, " failed"), 2);
        assert_eq!(count("FAILED. 0 passed; 1 failed;", " failed"), 1);
        assert_eq!(count("nothing here", " passed"), 0);
    }
}
