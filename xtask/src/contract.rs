//! `cargo xtask contract`: do the spec, the generated client and a server agree?
//!
//! Runs, in order: the spec checks (project rules, openapi-spec-validator, Spectral), the
//! freshness of the generated client's review copy, the test suite (property suite included),
//! provider verification against the embedded mock or `--base-url`, recorded exchanges
//! (`openapi/recordings/published`, or `--recordings DIR`), and coverage. Prints a line as each
//! starts, then a table with failures and warnings apart; writes JSON and JUnit reports on
//! request; exits non-zero when any check failed. Warnings (a server accepting what only the spec
//! forbids) fail the run only with `--strict`.
//!
//! The token for `--base-url` is read from `PARTNER_CENTER_TOKEN`, as `pc-upgrade` reads it, never
//! from a flag (flags land in shell history and process lists), and is never printed. It is sent
//! only over https, or plain http to a loopback host (`verify::check_base_url`), which is
//! checked before anything runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use partner_center_contract as contract;

use crate::arazzo;
use crate::report::{Outcome, ReproContext, Row, Server, render, repros, write_json, write_junit};
use crate::{codegen_task, independent, spec_rules, tools};

/// Options of `cargo xtask contract`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Verify this server instead of the embedded mock (base URL without /v1): https, or http
    /// to a loopback host only. Its bearer token is read from PARTNER_CENTER_TOKEN.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Provider-verification cases (a flow counts as one).
    #[arg(long, default_value_t = 1000)]
    pub cases: usize,
    /// Seed for generated requests (and the property suite).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cases per property in the property suite (PROPTEST_CASES; the suite's default is 64).
    #[arg(long)]
    pub prop_cases: Option<u32>,
    /// Requests in flight at once during provider verification.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Skip checks that need a server keeping upgrade state (for example servers such as prism mock).
    #[arg(long)]
    pub stateless: bool,
    /// Fail on warnings too: a server that accepts a request only the spec forbids (one the
    /// documentation never says is rejected, such as a non-GUID MS-RequestId) fails, and so does
    /// a recording of a request the spec does not allow.
    #[arg(long)]
    pub strict: bool,
    /// Check the recorded exchanges (`*.json`, as `pc-upgrade --record DIR` writes them) in DIR
    /// against the spec; repeatable. Default: openapi/recordings/published.
    #[arg(long, value_name = "DIR")]
    pub recordings: Vec<PathBuf>,
    /// Verify an independent `prism mock` of the spec (installed into target/tools) instead of
    /// the embedded mock; implies --stateless, since prism serves examples and keeps no state.
    #[arg(long, conflicts_with = "base_url")]
    pub prism: bool,
    /// Also run schemathesis (default checks, 200 examples per operation) against a fresh
    /// embedded mock, and compare its cases per second with provider verification's.
    #[arg(long)]
    pub schemathesis: bool,
    /// Write a JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Skip the independent linters (installed into target/tools on first use).
    #[arg(long)]
    pub no_external: bool,
    /// Skip running the test suite.
    #[arg(long)]
    pub no_tests: bool,
}

const STEPS: usize = 8;

fn progress(step: usize, what: &str) {
    eprintln!("[{step}/{STEPS}] {what} ...");
}

/// The variable `--base-url`'s token is read from.
pub const TOKEN_VARIABLE: &str = "PARTNER_CENTER_TOKEN";

/// The server `--base-url` names and its token, checked before any step runs.
struct External {
    base_url: String,
    token: String,
}

/// Checks `--base-url` and reads its token from `token` (the value of [`TOKEN_VARIABLE`]).
fn external_target(
    base_url: Option<&str>,
    token: Option<String>,
) -> Result<Option<External>, String> {
    let Some(base_url) = base_url else {
        return Ok(None);
    };
    contract::verify::check_base_url(base_url).map_err(|e| format!("--base-url: {e}"))?;
    let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        format!(
            "--base-url needs the server's bearer token in {TOKEN_VARIABLE} (it is not taken as \
             a flag, so it stays out of shell history)"
        )
    })?;
    Ok(Some(External {
        base_url: base_url.to_owned(),
        token: token.trim().to_owned(),
    }))
}

pub fn run(root: &Path, options: &Options) -> Result<bool, String> {
    let spec_path = contract::spec_path();
    let mut rows = Vec::new();
    let external_target = external_target(
        options.base_url.as_deref(),
        std::env::var(TOKEN_VARIABLE).ok(),
    )?;

    progress(1, "spec: project rules (links and the workflow included)");
    let started = Instant::now();
    let spec = contract::read_spec(&spec_path)?;
    let mut findings = spec_rules::check(&spec);
    match contract::read_spec(&arazzo::workflow_path(root)) {
        Ok(workflow) => spec_rules::check_workflow(&spec, &workflow, &mut findings),
        Err(e) => findings.failures.push(e),
    }
    rows.push(Row::new(
        "spec: project rules",
        findings.checks,
        findings.failures,
        started.elapsed(),
    ));

    progress(2, "spec: openapi-spec-validator");
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

    progress(3, "spec: spectral:oas");
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

    progress(4, "client: generated code is fresh for the spec");
    let started = Instant::now();
    let failures = match codegen_task::stale(root) {
        Ok(None) => Vec::new(),
        Ok(Some(problem)) => vec![problem],
        Err(e) => vec![e],
    };
    rows.push(Row::new(
        "client: generated code fresh",
        1,
        failures,
        started.elapsed(),
    ));

    progress(5, "tests: cargo test --workspace (property suite included)");
    rows.push(if options.no_tests {
        Row::skipped("tests: cargo test --workspace", "--no-tests".into())
    } else {
        cargo_test(root, options.seed, options.prop_cases)
    });

    progress(6, "provider: generated requests against the server");
    let (target, server, verification) = provider(root, options, external_target)?;
    let mut row = Row::of_cases(
        &format!("provider: {target}"),
        verification.cases.clone(),
        verification.elapsed,
    );
    row.repros = repros(
        &verification,
        &ReproContext {
            token_variable: TOKEN_VARIABLE,
            server,
            seed: options.seed,
            dir: root.join("target").join("contract-repro"),
            root: root.to_owned(),
        },
    );
    row.notes = verification
        .left_out
        .iter()
        .map(|l| format!("negative left out: {l}"))
        .collect();
    let rate = verification.cases.len() as f64 / verification.elapsed.as_secs_f64().max(1e-9);
    rows.push(row);

    progress(7, "recordings: recorded exchanges against the spec");
    let directories = if options.recordings.is_empty() {
        vec![root.join("openapi/recordings/published")]
    } else {
        options.recordings.clone()
    };
    for directory in directories {
        rows.push(recordings(root, &spec_path, &directory, options.strict));
    }

    progress(8, "coverage");
    let unexercised = verification.coverage.unexercised_operations();
    let mut coverage = Row::new(
        "coverage: operations exercised",
        verification.coverage.declared_statuses.len(),
        unexercised
            .iter()
            .map(|op| format!("{op} was never exercised"))
            .collect(),
        Duration::ZERO,
    );
    coverage.notes = verification.coverage.lines();
    rows.push(coverage);

    if options.no_external {
        rows.push(Row::skipped(
            "spec + workflow: redocly lint",
            "--no-external".into(),
        ));
        rows.push(Row::skipped(
            "workflow: redocly respect against the embedded mock",
            "--no-external".into(),
        ));
    } else {
        eprintln!(
            "[+] the workflow: redocly lint, and redocly respect against the embedded mock ..."
        );
        rows.push(arazzo::lint(root));
        rows.push(arazzo::respect(root));
    }

    let mut comparison = None;
    if options.schemathesis {
        eprintln!("[+] schemathesis against the embedded mock ...");
        let run =
            with_mock(|url, token| independent::schemathesis(root, url, token, 200, options.seed))?;
        if run.cases > 0 {
            comparison = Some(run.cases as f64 / run.seconds.max(1e-9));
        }
        rows.push(run.row);
        eprintln!("[+] schemathesis's stateful phase against a fresh embedded mock ...");
        rows.push(independent::schemathesis_stateful(root, 300, options.seed));
    }

    println!("\n{}", render(&rows));
    println!(
        "provider verification: {} cases, {} requests in {:.2}s ({rate:.0} cases/s, seed {})",
        verification.cases.len(),
        verification.requests,
        verification.elapsed.as_secs_f64(),
        options.seed
    );
    if let Some(theirs) = comparison {
        println!(
            "schemathesis against the same mock and spec: {theirs:.0} cases/s; provider verification is {:.1}x faster",
            rate / theirs
        );
    }
    if let Some(path) = &options.report_json {
        write_json(path, &rows, &verification, rate)?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &options.junit {
        write_junit(path, &rows)?;
        println!("JUnit report: {}", path.display());
    }
    let ok = rows.iter().all(|r| r.outcome != Outcome::Failed);
    let warned: usize = rows.iter().map(|r| r.warned).sum();
    println!(
        "contract: {}{}",
        if ok { "all checks passed" } else { "FAILED" },
        match warned {
            0 => String::new(),
            n => format!(" ({n} cases with warnings; --strict fails them)"),
        }
    );
    Ok(ok)
}

/// Checks the recordings in `directory` against the spec: a row, a case per exchange.
fn recordings(root: &Path, spec_path: &Path, directory: &Path, strict: bool) -> Row {
    let shown = directory.strip_prefix(root).unwrap_or(directory);
    let check = format!("recordings: {}", shown.display());
    let started = Instant::now();
    let result = contract::read_spec(spec_path)
        .and_then(|spec| contract::recordings::check_dir(spec, directory, strict));
    match result {
        Ok(checked) => {
            let mut row = Row::of_cases(&check, checked.cases, checked.elapsed);
            if row.cases == 0 {
                row.notes = vec![format!("no *.json recordings in {}", directory.display())];
            }
            row
        }
        Err(e) => Row::new(&check, 1, vec![e], started.elapsed()),
    }
}

/// Runs `f` with the URL and token of an embedded mock running on its own runtime thread.
fn with_mock<T>(f: impl FnOnce(&str, &str) -> T) -> Result<T, String> {
    let (_runtime, mock) = crate::mock::embedded(partner_center_mock::MockConfig::default())?;
    Ok(f(&mock.url(), mock.token()))
}

/// Runs provider verification against `--base-url`, prism, or a fresh embedded mock; says
/// which it was, and where (for reproducing a failure).
fn provider(
    root: &Path,
    options: &Options,
    external: Option<External>,
) -> Result<(String, Server, contract::verify::Verification), String> {
    let prism = if options.prism {
        Some(independent::start_prism(root)?)
    } else {
        None
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let verify = contract::verify::Options {
            cases: options.cases,
            seed: options.seed,
            concurrency: options.concurrency,
            stateless: options.stateless || options.prism,
            // prism checks that a bearer token is present, not which one.
            wrong_token: !options.prism,
            strict: options.strict,
            ..Default::default()
        };
        let spec = contract::read_spec(&contract::spec_path())?;
        if let Some(prism) = &prism {
            let target = contract::verify::Target {
                base_url: prism.url.clone(),
                token: "prism-accepts-any-bearer-token".into(),
            };
            let result = verify_printing(spec, target, verify).await?;
            let port = prism.url.rsplit(':').next().and_then(|p| p.parse().ok());
            let server = Server::Prism {
                port: port.unwrap_or_default(),
            };
            return Ok((format!("prism mock ({})", prism.url), server, result));
        }
        match external {
            Some(External { base_url, token }) => {
                let target = contract::verify::Target {
                    base_url: base_url.clone(),
                    token,
                };
                let result = verify_printing(spec, target, verify).await?;
                Ok((base_url, Server::External, result))
            }
            None => {
                let mock = partner_center_mock::start(
                    partner_center_mock::MockConfig::default(),
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                )
                .await
                .map_err(|e| format!("cannot start the embedded mock: {e}"))?;
                let target = contract::verify::Target {
                    base_url: mock.url(),
                    token: mock.token().to_owned(),
                };
                let result = verify_printing(spec, target, verify).await?;
                let server = Server::EmbeddedMock {
                    port: mock.addr().port(),
                };
                Ok(("embedded mock".to_owned(), server, result))
            }
        }
    })
}

/// Provider verification, printing `done/total cases` on stderr at every tenth of the run.
async fn verify_printing(
    spec: serde_json::Value,
    target: contract::verify::Target,
    options: contract::verify::Options,
) -> Result<contract::verify::Verification, String> {
    let every = (options.cases / 10).max(1);
    let result = contract::verify::run_with_progress(spec, target, options, &|progress| {
        if progress.done % every == 0 {
            eprint!("\r      {}/{} cases", progress.done, progress.total);
        }
    })
    .await;
    if result.is_ok() {
        eprintln!();
    }
    result
}

/// Runs an external tool over the spec: one case, failed with the tool's output when it exits
/// non-zero.
fn external(
    check: &str,
    program: Result<PathBuf, String>,
    command: impl FnOnce(&Path) -> Command,
) -> Row {
    let program = match program {
        Ok(program) => program,
        Err(why) => return Row::skipped(check, why),
    };
    let started = Instant::now();
    let failures = match command(&program).output() {
        Ok(output) if output.status.success() => Vec::new(),
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            vec![lines.join(" | ")]
        }
        Err(e) => vec![format!("cannot run {}: {e}", program.display())],
    };
    Row::new(check, 1, failures, started.elapsed())
}

/// Runs the workspace's tests and counts their cases from the harness's summary lines.
fn cargo_test(root: &Path, seed: u64, prop_cases: Option<u32>) -> Row {
    let check = "tests: cargo test --workspace";
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["test", "--workspace", "--locked"])
        .env("PROPTEST_RNG_SEED", seed.to_string());
    // `cargo run` gave this process the xtask package's CARGO_PKG_*/CARGO_MANIFEST_* variables.
    // Build scripts that declare `rerun-if-env-changed` on them (ring does) would rebuild in the
    // child and again in the user's next plain `cargo test`, so the child does not inherit them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    if let Some(cases) = prop_cases {
        command.env("PROPTEST_CASES", cases.to_string());
    }
    let output = match command.output() {
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
    use super::{count, external_target};

    #[test]
    fn base_url_takes_its_token_from_the_environment_and_only_over_https_or_loopback() {
        assert!(external_target(None, None).unwrap().is_none());
        let target = external_target(Some("https://pc.example.com"), Some("t0k3n".into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (target.base_url.as_str(), target.token.as_str()),
            ("https://pc.example.com", "t0k3n")
        );
        assert!(external_target(Some("http://127.0.0.1:8080"), Some("t".into())).is_ok());

        for token in [None, Some(String::new()), Some("  ".into())] {
            let missing = external_target(Some("https://pc.example.com"), token)
                .err()
                .unwrap();
            assert!(missing.contains("PARTNER_CENTER_TOKEN"), "{missing}");
        }
        let plain = external_target(Some("http://pc.example.com"), Some("t0k3n".into()))
            .err()
            .unwrap();
        assert!(plain.contains("plain http"), "{plain}");
        assert!(!plain.contains("t0k3n"), "{plain}");
    }

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
