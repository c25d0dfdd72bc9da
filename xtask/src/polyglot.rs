//! `cargo xtask polyglot`: proof that other language teams can consume the published spec.
//!
//! Publishes the current spec into `target/polyglot/spec` (the same normalised form as
//! `cargo xtask publish`), then:
//! - TypeScript: openapi-typescript generates types, and `tsc --strict` compiles code using them;
//! - Python: openapi-python-client generates a client (`--fail-on-warning`), and a script imports
//!   it and calls the embedded mock on loopback;
//! - C#: openapi-generator validates the spec and generates a client, compiled when `dotnet` is
//!   installed.
//!
//! The generators are installed, pinned, into `target/tools`. When node, python3 or java is
//! missing, that language is skipped with the reason.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::report::{Outcome, Row, render};
use crate::{publish, tools};

fn run_step(what: &str, command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        Err(format!(
            "{what} failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

fn row(check: &str, started: Instant, result: Result<String, String>) -> Row {
    match result {
        Ok(_) => Row::new(check, 1, Vec::new(), started.elapsed()),
        Err(failure) if failure.starts_with("skip: ") => {
            Row::skipped(check, failure.trim_start_matches("skip: ").to_owned())
        }
        Err(failure) => Row::new(check, 1, vec![failure], started.elapsed()),
    }
}

fn typescript(root: &Path, spec: &Path, dir: &Path) -> Result<String, String> {
    let generate = tools::npm_tool(root, tools::OPENAPI_TYPESCRIPT, "openapi-typescript")
        .map_err(|e| format!("skip: {e}"))?;
    let tsc = tools::npm_tool(root, tools::TYPESCRIPT, "tsc").map_err(|e| format!("skip: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run_step(
        "openapi-typescript",
        Command::new(generate)
            .arg(spec)
            .arg("-o")
            .arg(dir.join("schema.d.ts")),
    )?;
    // Code a TypeScript team would write against the types: it must compile under --strict.
    std::fs::write(
        dir.join("use.ts"),
        r#"import type { components, paths } from "./schema";

type Request = components["schemas"]["ProductUpgradeRequest"];
type Eligibility = components["schemas"]["ProductUpgradesEligibility"];
type Status = components["schemas"]["ProductUpgradesStatus"];
type Failure = components["schemas"]["ServiceError"] | components["schemas"]["ThrottlingError"];
type EligibilityAnswer =
  paths["/v1/productUpgrades/eligibility"]["post"]["responses"]["200"]["content"]["application/json"];

export const request: Request = { customerId: "4c721420-72ad-4708-a0a7-371a2f7b0969", productFamily: "Azure" };

export function describe(answer: EligibilityAnswer): string {
  const eligibility: Eligibility = answer;
  return eligibility.isEligible ? "eligible" : `not eligible: ${eligibility.reason ?? "no reason"}`;
}

export function finished(status: Status): boolean {
  return ["completed", "failed"].includes(status.status.toLowerCase());
}

export function code(failure: Failure): string {
  return "code" in failure ? String(failure.code) : String(failure.statusCode);
}
"#,
    )
    .map_err(|e| e.to_string())?;
    run_step(
        "tsc --strict",
        Command::new(tsc)
            .args([
                "--noEmit",
                "--strict",
                "--target",
                "es2020",
                "--module",
                "es2020",
                "--moduleResolution",
                "node",
            ])
            .arg(dir.join("use.ts")),
    )
}

fn python(root: &Path, spec: &Path, dir: &Path) -> Result<String, String> {
    let generate = tools::pip_tool(root, tools::OPENAPI_PYTHON_CLIENT, "openapi-python-client")
        .map_err(|e| format!("skip: {e}"))?;
    tools::pip_tool(root, tools::RUFF, "ruff").map_err(|e| format!("skip: {e}"))?;
    let bin = tools::venv_bin(root);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_step(
        "openapi-python-client --fail-on-warning",
        Command::new(generate)
            .args(["generate", "--overwrite", "--fail-on-warning", "--path"])
            .arg(spec)
            .arg("--output-path")
            .arg(dir)
            .env("PATH", &path),
    )?;
    let script = dir.join("call_the_mock.py");
    std::fs::write(
        &script,
        r#"import sys, uuid
from partner_center_product_upgrades_client import AuthenticatedClient
from partner_center_product_upgrades_client.api.product_upgrades import check_eligibility, create_upgrade
from partner_center_product_upgrades_client.models import ProductUpgradeRequest, ProductUpgradesEligibility, ServiceError

client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
request = ProductUpgradeRequest(customer_id=uuid.uuid4(), product_family="Azure")
# openapi-python-client 0.29 hands a `format: uuid` header to httpx as a UUID object, which
# httpx refuses; teams pass header ids as strings (documented in the README).
answer = check_eligibility.sync_detailed(client=client, body=request, ms_request_id=str(uuid.uuid4()))
assert answer.status_code == 200, answer
assert isinstance(answer.parsed, ProductUpgradesEligibility) and answer.parsed.is_eligible, answer.parsed
created = create_upgrade.sync_detailed(client=client, body=request)
assert created.status_code == 202 and created.headers["location"].startswith("productUpgrades/"), created
again = create_upgrade.sync_detailed(client=client, body=request)
assert again.status_code == 409 and isinstance(again.parsed, ServiceError) and again.parsed.code == 900109, again
print("python client: eligibility, create and the 409 conflict against the mock: ok")
"#,
    )
    .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let mock = runtime
        .block_on(partner_center_mock::start(
            partner_center_mock::MockConfig::default(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .map_err(|e| format!("cannot start the mock: {e}"))?;
    run_step(
        "the generated Python client against the mock",
        Command::new(bin.join("python"))
            .arg(&script)
            .arg(mock.url())
            .arg(mock.token())
            .env("PYTHONPATH", dir),
    )
}

fn csharp(root: &Path, spec: &Path, dir: &Path) -> Result<String, String> {
    if !tools::found("java") {
        return Err("skip: java is not installed (openapi-generator needs it)".into());
    }
    let generator = tools::pip_tool(root, tools::OPENAPI_GENERATOR, "openapi-generator-cli")
        .map_err(|e| format!("skip: {e}"))?;
    run_step(
        "openapi-generator validate",
        Command::new(&generator).args(["validate", "-i"]).arg(spec),
    )?;
    run_step(
        "openapi-generator generate -g csharp",
        Command::new(&generator)
            .args(["generate", "-g", "csharp", "--skip-validate-spec", "-i"])
            .arg(spec)
            .arg("-o")
            .arg(dir)
            .args([
                "--additional-properties",
                "packageName=PartnerCenter.ProductUpgrades",
            ]),
    )?;
    if tools::found("dotnet") {
        run_step("dotnet build", Command::new("dotnet").arg("build").arg(dir))
    } else {
        Ok("generated; not compiled because dotnet is not installed".into())
    }
}

pub fn run(root: &Path) -> Result<bool, String> {
    let dir = root.join("target").join("polyglot");
    let _ = std::fs::remove_dir_all(&dir);
    let spec_dir = dir.join("spec");
    let spec = partner_center_contract::read_spec(&partner_center_contract::spec_path())?;
    publish::write_spec(&spec, &spec_dir)?;
    let yaml: PathBuf = spec_dir.join("product-upgrades.yaml");

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (check, language) in [
        ("TypeScript: openapi-typescript + tsc --strict", "ts"),
        (
            "Python: openapi-python-client, called against the mock",
            "python",
        ),
        ("C#: openapi-generator validate + generate", "csharp"),
    ] {
        eprintln!("[polyglot] {check} ...");
        let started = Instant::now();
        let out = dir.join(language);
        let result = match language {
            "ts" => typescript(root, &yaml, &out),
            "python" => python(root, &yaml, &out),
            _ => csharp(root, &yaml, &out),
        };
        if let Ok(text) = &result
            && let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty())
        {
            notes.push(format!("{check}: {}", line.trim()));
        }
        rows.push(row(check, started, result));
    }
    println!("\n{}", render(&rows));
    for note in notes {
        println!("{note}");
    }
    println!("generated code: {}", dir.display());
    Ok(rows.iter().all(|r| r.outcome != Outcome::Failed))
}
