//! The contract run next to independent tools: schemathesis against the embedded mock (pass or
//! fail, and its speed beside ours), and provider verification against `prism mock`.

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

/// Runs `st run` with its default checks against a mock at `url`, `examples` per operation. The
/// token reaches schemathesis through its environment, never its arguments.
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
        .args([
            "--max-examples",
            &examples.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--generation-database", "none", "--no-color"])
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
    let text = String::from_utf8_lossy(&output.stdout);
    // "916 generated, 916 passed, 4 skipped" or "413 generated, 3 found 3 unique failures"
    let generated = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" generated")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or(0);
    let mut failures = Vec::new();
    if !output.status.success() {
        let summary: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("FAILURES"))
            .filter(|l| l.contains("ST") && l.contains('❌') || l.contains("- ST"))
            .map(str::trim)
            .collect();
        failures.push(format!(
            "schemathesis failed: {} (rerun `st run` as in benches/README.md for details)",
            if summary.is_empty() {
                "see its output".to_owned()
            } else {
                summary.join("; ")
            }
        ));
    }
    let mut row = Row::new(check, generated.max(1), failures, elapsed);
    if !output.status.success() {
        row.passed = 0;
        row.failed = generated.max(1);
    }
    SchemathesisRun {
        row,
        cases: generated,
        seconds: elapsed.as_secs_f64(),
    }
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
    use super::{SCHEMATHESIS_CONFIG, SCHEMATHESIS_TOKEN};

    #[test]
    fn schemathesis_gets_the_token_from_its_environment_only() {
        assert!(SCHEMATHESIS_CONFIG.contains(&format!("Bearer ${{{SCHEMATHESIS_TOKEN}}}")));
        assert!(!SCHEMATHESIS_CONFIG.contains(partner_center_mock::DEFAULT_TOKEN));
    }
}
