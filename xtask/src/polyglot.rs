//! `cargo xtask polyglot`: proof that other language teams can consume the published spec, by
//! running the whole upgrade workflow in their languages.
//!
//! Publishes the current spec into `target/polyglot/spec` (the same normalised form as
//! `cargo xtask publish`), generates a client from it in each language, and runs that language's
//! workflow program (`xtask/polyglot/`) against an embedded mock of its own on 127.0.0.1. Each
//! program runs three scenarios and prints one JSON line each, facts rather than a verdict:
//! - `eligible`: eligibility says yes, create answers 202 with `Location`, the upgrade named by
//!   its last segment is polled to `Completed`;
//! - `notEligible`: eligibility says no with a reason (the mock's `NO_AZURE_CUSTOMER`), and a
//!   create anyway is refused 403 with code 900108;
//! - `conflict`: a second create under another `MS-RequestId` while the first is under way
//!   answers 409 with code 900109; eligibility names the upgrade under way, and it is followed to
//!   `Completed`.
//!
//! The xtask checks each line (`check_scenario`) and the mock's ledger (one upgrade created per
//! upgraded customer, none for the refused one, the same upgrade id the program reported): one
//! row a language, one case a scenario; a failed scenario fails the run, naming the language
//! and the scenario. The languages:
//! - TypeScript: openapi-typescript generates `paths`; `workflow.ts` calls through openapi-fetch
//!   (fetch-based, node's global fetch), compiled by `tsc --strict` (`tsconfig.json`) and run
//!   with node;
//! - Python: openapi-python-client generates a client (`--fail-on-warning`); `workflow.py` uses
//!   its functions and models, run with the tools' virtual environment's python;
//! - C#: openapi-generator validates the spec and generates a client (`-g csharp`, library
//!   `httpclient`); where a .NET SDK is installed, `Workflow.cs` is built against it and run.
//!   Where none is, the apt package sources are asked for one (`apt-cache policy`), and the row
//!   is skipped saying what they hold: none (Debian bookworm's main has no .NET SDK), or which
//!   package would install one.
//!
//! The generators and openapi-fetch are installed, pinned, into `target/tools` once (stamped by
//! version, as `tools` does) and reused. When node, python3 or java is missing, that language is
//! skipped with the reason.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use partner_center_contract::verify::CaseResult;
use serde_json::Value;

use crate::report::{Outcome, Row, render};
use crate::{publish, tools};

/// The workflow programs and their build files, as committed.
const WORKFLOW_TS: &str = include_str!("../polyglot/workflow.ts");
const TSCONFIG: &str = include_str!("../polyglot/tsconfig.json");
const WORKFLOW_PY: &str = include_str!("../polyglot/workflow.py");
const WORKFLOW_CS: &str = include_str!("../polyglot/Workflow.cs");
const WORKFLOW_CSPROJ: &str = include_str!("../polyglot/Workflow.csproj");

/// The customer upgraded straight away (any GUID the mock has no special meaning for).
const ELIGIBLE_CUSTOMER: &str = "7c2a4f1e-0d3b-4e5a-9c61-2f8b3a9d4e01";
/// The customer created twice.
const CONFLICT_CUSTOMER: &str = "7c2a4f1e-0d3b-4e5a-9c61-2f8b3a9d4e02";
/// The customer that is not eligible.
const NOT_ELIGIBLE_CUSTOMER: &str = partner_center_mock::NO_AZURE_CUSTOMER;

/// The scenarios, by the name each program prints, with what the report calls them.
const SCENARIOS: [(&str, &str); 3] = [
    ("eligible", "eligible → created → Completed"),
    (
        "notEligible",
        "not eligible, with a reason; create refused 403 900108",
    ),
    (
        "conflict",
        "409 900109 → upgrade under way followed to Completed",
    ),
];

/// How long a workflow program may run (a build of the C# one is not counted).
const WORKFLOW_TIMEOUT: Duration = Duration::from_secs(120);

/// The .NET SDK packages looked for in the machine's package sources.
const DOTNET_PACKAGES: [&str; 6] = [
    "dotnet-sdk-8.0",
    "dotnet-sdk-9.0",
    "dotnet-sdk-10.0",
    "dotnet8",
    "dotnet9",
    "dotnet10",
];

fn output_text(stdout: &[u8], stderr: &[u8]) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let last: Vec<&str> = text.lines().rev().take(lines).collect();
    last.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn run_step(what: &str, command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let text = output_text(&output.stdout, &output.stderr);
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} failed:\n{}", tail(&text, 25)))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A setup step (install, generate, compile) that did not happen: "skip: why" skips the row.
enum Setup {
    Skip(String),
    Fail(String),
}

impl From<String> for Setup {
    fn from(failure: String) -> Self {
        Setup::Fail(failure)
    }
}

fn skip(why: impl std::fmt::Display) -> Setup {
    Setup::Skip(why.to_string())
}

/// The pinned version of an npm library (no binary of its own, such as openapi-fetch) in the
/// tools' `node_modules`, installed when the version there is another or none. Returns that
/// `node_modules`.
fn npm_library(root: &Path, (package, version): (&str, &str)) -> Result<PathBuf, Setup> {
    let dir = root.join("target").join("tools").join("npm");
    let modules = dir.join("node_modules");
    let manifest = modules.join(package).join("package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .is_some_and(|json| json["version"] == version);
    if installed {
        return Ok(modules);
    }
    if !tools::found("npm") {
        return Err(skip(
            "npm is not installed (install Node.js to run this check)",
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run_step(
        &format!("npm install {package}@{version}"),
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--save-exact",
                "--prefix",
            ])
            .arg(&dir)
            .arg(format!("{package}@{version}")),
    )?;
    Ok(modules)
}

/// What a workflow program printed and how it ended.
struct Ran {
    stdout: String,
    stderr: String,
    /// `None` when it was stopped at the time limit.
    exit: Option<std::process::ExitStatus>,
}

/// Runs `command` for at most `limit`, its output read as it comes.
fn run_bounded(command: &mut Command, limit: Duration) -> Result<Ran, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let exit = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Ran {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        exit,
    })
}

/// What one upgraded customer's ledger entry holds: upgrades created, the latest and its status.
type LedgerEntry = (u64, Option<String>, Option<String>);

/// A fact of a scenario's line: `key` must be `expected`.
fn expect(failures: &mut Vec<String>, line: &Value, key: &str, expected: Value) {
    if line[key] != expected {
        failures.push(format!("{key} is {}, expected {expected}", line[key]));
    }
}

/// A Partner Center error code, which the spec allows as a number or a string.
fn expect_code(failures: &mut Vec<String>, line: &Value, key: &str, expected: u64) {
    let code = match &line[key] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    if code != Some(expected) {
        failures.push(format!("{key} is {}, expected {expected}", line[key]));
    }
}

/// The upgrade a customer's scenario must have left in the mock: exactly one created by the
/// program, the one it reported, `Completed`.
fn expect_upgrade(failures: &mut Vec<String>, ledger: Option<&LedgerEntry>, reported: &Value) {
    match ledger {
        None => failures.push("the mock's ledger has no upgrade for the customer".into()),
        Some((created, latest, status)) => {
            if *created != 1 {
                failures.push(format!(
                    "the mock's ledger counts {created} upgrade(s) created for the customer, expected 1"
                ));
            }
            if reported.as_str().map(str::to_ascii_lowercase) != latest.clone() {
                failures.push(format!(
                    "the program reported upgrade {reported}, the mock's ledger has {latest:?}"
                ));
            }
            if status.as_deref() != Some("Completed") {
                failures.push(format!(
                    "the mock's ledger says the upgrade is {status:?}, expected Completed"
                ));
            }
        }
    }
}

/// The failures of one scenario's line, checked against the facts it must state and the ledger
/// of the customer it used.
fn check_scenario(scenario: &str, line: &Value, ledger: Option<&LedgerEntry>) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(error) = line.get("error") {
        return vec![format!(
            "the program's scenario failed: {}",
            error
                .as_str()
                .map(str::to_owned)
                .unwrap_or(error.to_string())
        )];
    }
    let id = &line["upgradeId"];
    match scenario {
        "eligible" => {
            expect(&mut failures, line, "eligible", Value::Bool(true));
            expect(&mut failures, line, "createStatus", 202.into());
            if id.as_str().is_none_or(str::is_empty) {
                failures.push(format!("upgradeId (from Location) is {id}"));
            }
            expect(&mut failures, line, "statusId", id.clone());
            expect(&mut failures, line, "status", "Completed".into());
            expect_upgrade(&mut failures, ledger, id);
        }
        "notEligible" => {
            expect(&mut failures, line, "eligible", Value::Bool(false));
            if line["reason"].as_str().is_none_or(|r| r.trim().is_empty()) {
                failures.push(format!("reason is {}, expected a reason", line["reason"]));
            }
            expect(&mut failures, line, "createStatus", 403.into());
            expect_code(&mut failures, line, "createCode", 900108);
            if let Some((created, ..)) = ledger.filter(|(created, ..)| *created > 0) {
                failures.push(format!(
                    "the mock's ledger counts {created} upgrade(s) created for a customer that is not eligible"
                ));
            }
        }
        _ => {
            expect(&mut failures, line, "firstStatus", 202.into());
            expect(&mut failures, line, "conflictStatus", 409.into());
            expect_code(&mut failures, line, "conflictCode", 900109);
            expect(&mut failures, line, "eligible", Value::Bool(false));
            let followed = line["followed"].as_str().map(str::to_ascii_lowercase);
            if followed.is_none() || followed != id.as_str().map(str::to_ascii_lowercase) {
                failures.push(format!(
                    "eligibility named upgrade {}, the first create made {id}",
                    line["followed"]
                ));
            }
            expect(&mut failures, line, "status", "Completed".into());
            expect_upgrade(&mut failures, ledger, id);
        }
    }
    failures
}

/// The customer each scenario uses.
fn customer_of(scenario: &str) -> &'static str {
    match scenario {
        "eligible" => ELIGIBLE_CUSTOMER,
        "notEligible" => NOT_ELIGIBLE_CUSTOMER,
        _ => CONFLICT_CUSTOMER,
    }
}

/// Runs a language's workflow program against a new mock and checks what it printed: one case
/// per scenario, a note per scenario's facts.
fn run_workflow(
    runtime: &tokio::runtime::Runtime,
    language: &str,
    program: &mut Command,
) -> Result<(Vec<CaseResult>, Vec<String>), String> {
    let mock = runtime
        .block_on(partner_center_mock::start(
            partner_center_mock::MockConfig::default(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .map_err(|e| format!("cannot start the mock: {e}"))?;
    let ran = run_bounded(
        program.arg(mock.url()).arg(mock.token()).args([
            ELIGIBLE_CUSTOMER,
            NOT_ELIGIBLE_CUSTOMER,
            CONFLICT_CUSTOMER,
        ]),
        WORKFLOW_TIMEOUT,
    )?;
    let ledger = mock.ledger();
    drop(mock);
    let entry = |customer: &str| {
        ledger
            .customers
            .iter()
            .find(|c| c.customer_id.to_string() == customer)
            .map(|c| {
                (
                    c.created,
                    c.latest_upgrade_id.map(|id| id.to_string()),
                    c.latest_status.map(str::to_owned),
                )
            })
    };
    let lines: Vec<Value> = ran
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["scenario"].is_string())
        .collect();
    let ended = match ran.exit {
        None => format!("was stopped after {}s", WORKFLOW_TIMEOUT.as_secs()),
        Some(status) if status.success() => "exited 0".into(),
        Some(status) => format!("exited with {status}"),
    };
    let mut cases = Vec::new();
    let mut notes = Vec::new();
    for (scenario, title) in SCENARIOS {
        let found: Vec<&Value> = lines.iter().filter(|l| l["scenario"] == scenario).collect();
        let failures = match found.as_slice() {
            [line] => check_scenario(scenario, line, entry(customer_of(scenario)).as_ref()),
            [] => vec![format!(
                "the program printed no result for it; it {ended}:\n{}",
                tail(
                    &output_text(ran.stdout.as_bytes(), ran.stderr.as_bytes()),
                    15
                )
            )],
            more => vec![format!("the program printed {} results for it", more.len())],
        };
        let elapsed = found
            .first()
            .and_then(|l| l["ms"].as_u64())
            .map(Duration::from_millis)
            .unwrap_or_default();
        if let [line] = found.as_slice() {
            let mut facts = (*line).clone();
            if let Some(map) = facts.as_object_mut() {
                map.remove("scenario");
                map.remove("ms");
            }
            notes.push(format!("{scenario}: {facts}"));
        }
        cases.push(CaseResult {
            name: format!("{language}, scenario {scenario} ({title})"),
            failures,
            warnings: Vec::new(),
            elapsed,
        });
    }
    if cases.iter().all(|c| c.failures.is_empty()) && ran.exit.is_none_or(|s| !s.success()) {
        // Every scenario answered, but the program did not end well: the last case carries it.
        if let Some(last) = cases.last_mut() {
            last.failures
                .push(format!("the program {ended}:\n{}", tail(&ran.stderr, 15)));
        }
    }
    Ok((cases, notes))
}

/// What a language's setup made: the workflow program to run and notes for the report.
struct Prepared {
    program: Command,
    notes: Vec<String>,
}

fn typescript(root: &Path, spec: &Path, dir: &Path) -> Result<Prepared, Setup> {
    if !tools::found("node") {
        return Err(skip(
            "node is not installed (install Node.js 18 or later to run this check)",
        ));
    }
    let generate =
        tools::npm_tool(root, tools::OPENAPI_TYPESCRIPT, "openapi-typescript").map_err(skip)?;
    let tsc = tools::npm_tool(root, tools::TYPESCRIPT, "tsc").map_err(skip)?;
    let modules = npm_library(root, tools::OPENAPI_FETCH)?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run_step(
        "openapi-typescript",
        Command::new(generate)
            .arg(spec)
            .arg("-o")
            .arg(dir.join("schema.d.ts")),
    )?;
    // Code a TypeScript team would write against the types alone: it must compile too.
    write(
        &dir.join("use.ts"),
        r#"import type { components, paths } from "./schema.js";

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
    )?;
    write(&dir.join("workflow.ts"), WORKFLOW_TS)?;
    write(&dir.join("tsconfig.json"), TSCONFIG)?;
    // ES modules, resolved by node (and tsc) from the tools' node_modules.
    write(
        &dir.join("package.json"),
        "{ \"private\": true, \"type\": \"module\" }\n",
    )?;
    link(&modules, &dir.join("node_modules"))?;
    run_step(
        "tsc --strict",
        Command::new(tsc).arg("-p").arg(dir.join("tsconfig.json")),
    )?;
    let node = run_step("node --version", Command::new("node").arg("--version"))?;
    let mut program = Command::new("node");
    program.arg(dir.join("out").join("workflow.js"));
    Ok(Prepared {
        program,
        notes: vec![format!(
            "openapi-typescript {}, openapi-fetch {}, tsc {} (tsconfig.json: strict), node {}",
            tools::OPENAPI_TYPESCRIPT.1,
            tools::OPENAPI_FETCH.1,
            tools::TYPESCRIPT.1,
            node.trim()
        )],
    })
}

#[cfg(unix)]
fn link(target: &Path, link: &Path) -> Result<(), Setup> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| Setup::Fail(format!("cannot link {}: {e}", link.display())))
}

#[cfg(not(unix))]
fn link(_: &Path, _: &Path) -> Result<(), Setup> {
    Err(skip(
        "the TypeScript check links node_modules, on Unix only",
    ))
}

fn python(root: &Path, spec: &Path, dir: &Path) -> Result<Prepared, Setup> {
    let generate = tools::pip_tool(root, tools::OPENAPI_PYTHON_CLIENT, "openapi-python-client")
        .map_err(skip)?;
    tools::pip_tool(root, tools::RUFF, "ruff").map_err(skip)?;
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
    let script = dir.join("workflow.py");
    write(&script, WORKFLOW_PY)?;
    let python = bin.join("python");
    let version = run_step("python --version", Command::new(&python).arg("--version"))?;
    let mut program = Command::new(python);
    program.arg(script).env("PYTHONPATH", dir);
    Ok(Prepared {
        program,
        notes: vec![format!(
            "openapi-python-client {} (ruff {}), {}",
            tools::OPENAPI_PYTHON_CLIENT.1,
            tools::RUFF.1,
            version.trim()
        )],
    })
}

/// The .NET SDK, if one is installed: its version and the target framework to build for.
fn dotnet_sdk() -> Result<Option<(String, &'static str)>, Setup> {
    if !tools::found("dotnet") {
        return Ok(None);
    }
    let version = run_step("dotnet --version", Command::new("dotnet").arg("--version"))?;
    let version = version.trim().to_owned();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let framework = match major {
        0..=7 => {
            return Err(skip(format!(
                "dotnet {version} is older than .NET 8, the oldest the generated client targets"
            )));
        }
        8 => "net8.0",
        9 => "net9.0",
        // openapi-generator's newest target; newer SDKs build it.
        _ => "net10.0",
    };
    Ok(Some((version, framework)))
}

/// Why C# is not built and run here: what the machine's package sources say about a .NET SDK.
fn no_dotnet_sdk() -> String {
    let asked = format!("apt-cache policy {}", DOTNET_PACKAGES.join(" "));
    let Ok(output) = Command::new("apt-cache")
        .arg("policy")
        .args(DOTNET_PACKAGES)
        .output()
    else {
        return "no .NET SDK is installed (dotnet is not on PATH), and there is no apt-cache to \
                look for one with"
            .into();
    };
    // `apt-cache policy` prints a block per known package: "NAME:" then "  Candidate: VERSION".
    let text = String::from_utf8_lossy(&output.stdout);
    let mut package = None;
    let mut candidates = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':');
        } else if let (Some(name), Some(version)) =
            (package, line.trim().strip_prefix("Candidate: "))
            && version != "(none)"
        {
            candidates.push(format!("{name} {version}"));
        }
    }
    if let Some(first) = candidates.first() {
        let name = first.split(' ').next().unwrap_or_default();
        return format!(
            "no .NET SDK is installed, but the machine's package sources have one ({asked}: {}); \
             `apt-get install {name}` and run again to build and run the C# client",
            candidates.join(", ")
        );
    }
    let lists_empty = std::fs::read_dir("/var/lib/apt/lists").map_or(true, |entries| {
        !entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    });
    format!(
        "no .NET SDK in the machine's package sources ({asked}: no candidate{}); the client was \
         generated and the spec validated, but not compiled or run",
        if lists_empty {
            "; the package lists are empty: run apt-get update and try again"
        } else {
            ""
        }
    )
}

fn csharp(root: &Path, spec: &Path, dir: &Path) -> Result<Prepared, Setup> {
    if !tools::found("java") {
        return Err(skip("java is not installed (openapi-generator needs it)"));
    }
    let generator =
        tools::pip_tool(root, tools::OPENAPI_GENERATOR, "openapi-generator-cli").map_err(skip)?;
    let sdk = dotnet_sdk()?;
    let framework = sdk.as_ref().map_or("net8.0", |(_, framework)| framework);
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
                &format!(
                    "packageName=PartnerCenter.ProductUpgrades,library=httpclient,targetFramework={framework}"
                ),
            ]),
    )?;
    let Some((version, framework)) = sdk else {
        return Err(skip(no_dotnet_sdk()));
    };
    let project = dir.with_file_name("csharp-workflow");
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    write(&project.join("Workflow.cs"), WORKFLOW_CS)?;
    write(
        &project.join("Workflow.csproj"),
        &WORKFLOW_CSPROJ.replace("@TARGET_FRAMEWORK@", framework),
    )?;
    run_step(
        "dotnet build",
        Command::new("dotnet")
            .args(["build", "--nologo", "-v", "quiet"])
            .arg(project.join("Workflow.csproj")),
    )?;
    let mut program = Command::new("dotnet");
    program
        .args(["run", "--no-build", "--project"])
        .arg(project.join("Workflow.csproj"))
        .arg("--");
    Ok(Prepared {
        program,
        notes: vec![format!(
            "openapi-generator {} (csharp, httpclient, {framework}), .NET SDK {version}",
            tools::OPENAPI_GENERATOR.1
        )],
    })
}

pub fn run(root: &Path) -> Result<bool, String> {
    let dir = root.join("target").join("polyglot");
    let _ = std::fs::remove_dir_all(&dir);
    let spec_dir = dir.join("spec");
    let spec = partner_center_contract::read_spec(&partner_center_contract::spec_path())?;
    publish::write_spec(&spec, &spec_dir)?;
    let yaml: PathBuf = spec_dir.join("product-upgrades.yaml");
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;

    let mut rows = Vec::new();
    for (check, language, name) in [
        (
            "TypeScript: openapi-fetch, tsc --strict, node, against the mock",
            "ts",
            "TypeScript",
        ),
        (
            "Python: openapi-python-client, against the mock",
            "python",
            "Python",
        ),
        (
            "C#: openapi-generator, dotnet, against the mock",
            "csharp",
            "C#",
        ),
    ] {
        eprintln!("[polyglot] {check} ...");
        let started = Instant::now();
        let out = dir.join(language);
        let prepared = match language {
            "ts" => typescript(root, &yaml, &out),
            "python" => python(root, &yaml, &out),
            _ => csharp(root, &yaml, &out),
        };
        let row = match prepared {
            Err(Setup::Skip(why)) => {
                // What ran before the skip (C#'s generation) still took its time.
                let mut row = Row::skipped(check, why);
                row.time = started.elapsed();
                row
            }
            Err(Setup::Fail(failure)) => Row::new(
                check,
                1,
                vec![format!("{name}: {failure}")],
                started.elapsed(),
            ),
            Ok(mut prepared) => match run_workflow(&runtime, name, &mut prepared.program) {
                Err(failure) => Row::new(
                    check,
                    1,
                    vec![format!("{name}: {failure}")],
                    started.elapsed(),
                ),
                Ok((cases, notes)) => {
                    let mut row = Row::of_cases(check, cases, started.elapsed());
                    row.notes = prepared.notes;
                    row.notes.extend(notes);
                    row
                }
            },
        };
        rows.push(row);
    }
    println!("\n{}", render(&rows));
    println!("generated code: {}", dir.display());
    Ok(rows.iter().all(|r| r.outcome != Outcome::Failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "b5a673a2-18e7-44b6-a977-a955d571f5e9";

    fn done() -> LedgerEntry {
        (1, Some(ID.into()), Some("Completed".into()))
    }

    #[test]
    fn a_complete_workflow_passes() {
        let eligible = json!({"scenario": "eligible", "eligible": true, "createStatus": 202,
            "upgradeId": ID, "statusId": ID, "status": "Completed", "polls": 2});
        assert_eq!(
            check_scenario("eligible", &eligible, Some(&done())),
            Vec::<String>::new()
        );
        let refused = json!({"scenario": "notEligible", "eligible": false,
            "reason": "no Azure subscription", "createStatus": 403, "createCode": "900108"});
        assert_eq!(
            check_scenario("notEligible", &refused, None),
            Vec::<String>::new()
        );
        let conflict = json!({"scenario": "conflict", "firstStatus": 202, "upgradeId": ID,
            "conflictStatus": 409, "conflictCode": 900109, "eligible": false,
            "followed": ID.to_uppercase(), "status": "Completed"});
        assert_eq!(
            check_scenario("conflict", &conflict, Some(&done())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_wrong_fact_is_named() {
        let eligible = json!({"scenario": "eligible", "eligible": true, "createStatus": 202,
            "upgradeId": ID, "statusId": ID, "status": "InProgress"});
        let twice = (2, Some(ID.to_owned()), Some("InProgress".to_owned()));
        let failures = check_scenario("eligible", &eligible, Some(&twice));
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].starts_with("status is \"InProgress\""));
        assert!(failures[1].contains("2 upgrade(s) created"));

        let refused = json!({"scenario": "notEligible", "eligible": false, "reason": " ",
            "createStatus": 202, "createCode": null});
        let failures = check_scenario("notEligible", &refused, Some(&done()));
        assert_eq!(failures.len(), 4, "{failures:?}");

        let conflict = json!({"scenario": "conflict", "firstStatus": 202, "upgradeId": ID,
            "conflictStatus": 202, "conflictCode": null, "eligible": false, "followed": null,
            "status": "Completed"});
        let failures = check_scenario("conflict", &conflict, Some(&done()));
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("conflictStatus is 202"))
        );
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("eligibility named upgrade null"))
        );

        let error = json!({"scenario": "conflict", "error": "status answered 500"});
        assert_eq!(
            check_scenario("conflict", &error, None),
            vec!["the program's scenario failed: status answered 500".to_owned()]
        );
    }

    #[test]
    fn a_program_that_prints_nothing_fails_every_scenario_with_its_output() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut program = Command::new("sh");
        program.args(["-c", "echo boom >&2; exit 3", "sh"]);
        let (cases, notes) = run_workflow(&runtime, "Shell", &mut program).unwrap();
        assert_eq!(cases.len(), 3);
        assert!(notes.is_empty());
        for case in &cases {
            assert!(case.name.starts_with("Shell, scenario "), "{}", case.name);
            assert_eq!(case.failures.len(), 1);
            assert!(case.failures[0].contains("exited with exit status: 3"));
            assert!(case.failures[0].contains("boom"));
        }
    }
}
