//! Independent OpenAPI tools, installed on first use into `target/tools/`, pinned by version.
//!
//! Nothing is installed outside the work tree. When `npm` or `python3` is missing the tool is
//! reported as unavailable with the reason, and the check that needs it is skipped, not failed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Spectral, for the `spectral:oas` ruleset.
pub const SPECTRAL: (&str, &str) = ("@stoplight/spectral-cli", "6.16.3");
/// schemathesis, the property-based API tester the mock must pass and the speed is compared with.
pub const SCHEMATHESIS: (&str, &str) = ("schemathesis", "4.32.5");
/// Prism, an independent mock server of the spec that the contract run must pass.
pub const PRISM: (&str, &str) = ("@stoplight/prism-cli", "5.14.2");
/// openapi-typescript and the TypeScript compiler, for the TypeScript team's types.
pub const OPENAPI_TYPESCRIPT: (&str, &str) = ("openapi-typescript", "7.13.0");
pub const TYPESCRIPT: (&str, &str) = ("typescript", "5.9.3");
/// openapi-python-client (and ruff, which it runs on what it generates), for the Python team.
pub const OPENAPI_PYTHON_CLIENT: (&str, &str) = ("openapi-python-client", "0.29.0");
pub const RUFF: (&str, &str) = ("ruff", "0.14.5");
/// openapi-generator (its jar ships in the PyPI wheel; needs Java), for C# and other languages.
pub const OPENAPI_GENERATOR: (&str, &str) = ("openapi-generator-cli", "7.26.0");
/// openapi-spec-validator, for OpenAPI 3.0 structural validity.
pub const SPEC_VALIDATOR: (&str, &str) = ("openapi-spec-validator", "0.9.0");
/// Redocly CLI: `lint` for the spec and the Arazzo workflow, `respect` to run the workflow.
/// 2.33.0 or later: earlier `respect` evaluated `$faker` expressions unsafely (CVE-2026-63325).
pub const REDOCLY: (&str, &str) = ("@redocly/cli", "2.77.0");
/// PyYAML, a YAML 1.1 loader like SnakeYAML inside openapi-generator: the published YAML must
/// mean to it (`yaml.safe_load`) what the published JSON means.
pub const PYYAML: (&str, &str) = ("PyYAML", "6.0.3");
/// openapi-fetch, the fetch-based runtime the TypeScript team calls the API through (typed by
/// openapi-typescript's `paths`; by the same authors).
pub const OPENAPI_FETCH: (&str, &str) = ("openapi-fetch", "0.17.0");

fn tools_dir(root: &Path) -> PathBuf {
    root.join("target").join("tools")
}

fn stamp_matches(stamp: &Path, version: &str) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s.trim() == version)
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// True when `program --version` runs.
pub fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The path of an npm package's binary, installing the pinned version when needed.
pub fn npm_tool(
    root: &Path,
    (package, version): (&str, &str),
    bin: &str,
) -> Result<PathBuf, String> {
    let dir = tools_dir(root).join("npm");
    let program = dir.join("node_modules").join(".bin").join(bin);
    let stamp = dir.join(format!("{bin}.version"));
    if program.exists() && stamp_matches(&stamp, version) {
        return Ok(program);
    }
    if !found("npm") {
        return Err("npm is not installed (install Node.js to run this check)".into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(&dir)
        .arg(format!("{package}@{version}")))?;
    std::fs::write(&stamp, version).map_err(|e| e.to_string())?;
    Ok(program)
}

/// The tools' virtual environment's `bin` folder (for PATH, so generators find their helpers).
pub fn venv_bin(root: &Path) -> PathBuf {
    tools_dir(root).join("venv").join("bin")
}

/// The path of a PyPI package's console script in a private virtual environment, installing the
/// pinned version when needed.
pub fn pip_tool(
    root: &Path,
    (package, version): (&str, &str),
    bin: &str,
) -> Result<PathBuf, String> {
    let venv = tools_dir(root).join("venv");
    let program = venv.join("bin").join(bin);
    let stamp = venv.join(format!("{bin}.version"));
    if program.exists() && stamp_matches(&stamp, version) {
        return Ok(program);
    }
    pip_install(&venv, package, version)?;
    std::fs::write(&stamp, version).map_err(|e| e.to_string())?;
    Ok(program)
}

/// The private virtual environment's `python`, with the pinned version of a PyPI library (one
/// without a console script, such as PyYAML) installed into it when needed.
pub fn pip_library(root: &Path, (package, version): (&str, &str)) -> Result<PathBuf, String> {
    let venv = tools_dir(root).join("venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(format!("{package}.version"));
    if python.exists() && stamp_matches(&stamp, version) {
        return Ok(python);
    }
    pip_install(&venv, package, version)?;
    std::fs::write(&stamp, version).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Installs `package==version` into the virtual environment `venv`, creating it first if needed.
fn pip_install(venv: &Path, package: &str, version: &str) -> Result<(), String> {
    if !found("python3") {
        return Err("python3 is not installed (install Python 3 to run this check)".into());
    }
    if !venv.join("bin").join("pip").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("{package}=={version}")))
}
