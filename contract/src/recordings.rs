//! Real traffic checks the spec: recorded exchanges, one JSON file each, checked with the same
//! code provider verification applies to an answer (declared status for the operation the method
//! and path name, content type, body schema, required response headers).
//!
//! A recording (`pc-upgrade --record DIR` writes them; any file name ending in `.json`):
//!
//! ```json
//! {
//!   "method": "POST",
//!   "path": "/v1/productUpgrades/eligibility",
//!   "request": {"headers": [["content-type", "application/json"]], "body": "{...}"},
//!   "response": {"status": 200, "headers": [["content-type", "application/json"]], "body": "{...}"}
//! }
//! ```
//!
//! Headers are `[name, value]` pairs with lower-case names (duplicates allowed); bodies are the
//! raw text, `""` when empty; `path` is the API path without query or base URL. Recordings never
//! hold `Authorization`, so credentials are not checked. A request the spec does not allow is a
//! warning (the answer is still checked); a failure only in a strict check.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::verify::{Answer, CaseResult, Contract, Coverage, Expect, Findings, Request, Sent};

/// One recorded exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct Recording {
    /// The request's method, e.g. `POST`.
    pub method: String,
    /// The API path, e.g. `/v1/productUpgrades/eligibility`.
    pub path: String,
    /// What was sent.
    pub request: RecordedRequest,
    /// What came back.
    pub response: RecordedResponse,
}

/// The request half of a recording.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedRequest {
    /// `[name, value]` pairs, names in lower case.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The raw body, `""` when there was none.
    #[serde(default)]
    pub body: String,
}

/// The response half of a recording.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedResponse {
    /// The HTTP status.
    pub status: u16,
    /// `[name, value]` pairs, names in lower case.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The raw body, `""` when there was none.
    #[serde(default)]
    pub body: String,
}

/// The result of checking a directory of recordings.
#[derive(Debug, Clone)]
pub struct Recordings {
    /// One case per recording, named by its file name.
    pub cases: Vec<CaseResult>,
    /// Wall time of the check.
    pub elapsed: Duration,
}

impl Recordings {
    /// Recordings with at least one failure.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.failures.is_empty())
    }

    /// Recordings with at least one warning.
    pub fn warned(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.warnings.is_empty())
    }
}

/// Checks every `*.json` file directly in `dir` (in file-name order) against `spec`. Fails only
/// when the directory cannot be read or the spec is unusable; a bad recording is a failed case.
pub fn check_dir(spec: Value, dir: &Path, strict: bool) -> Result<Recordings, String> {
    let started = Instant::now();
    let contract = Contract::new(spec)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the recordings in {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let cases = files
        .iter()
        .map(|path| {
            let case_started = Instant::now();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let findings = match std::fs::read_to_string(path) {
                Err(e) => Findings {
                    failures: vec![format!("{name}: cannot be read: {e}")],
                    warnings: Vec::new(),
                },
                Ok(text) => match serde_json::from_str::<Recording>(&text) {
                    Err(e) => Findings {
                        failures: vec![format!("{name}: not a recording: {e}")],
                        warnings: Vec::new(),
                    },
                    Ok(recording) => check_one(&contract, &name, &recording),
                },
            };
            let (failures, warnings) = findings.finish(strict);
            CaseResult {
                name,
                failures,
                warnings,
                elapsed: case_started.elapsed(),
            }
        })
        .collect();
    Ok(Recordings {
        cases,
        elapsed: started.elapsed(),
    })
}

/// Checks one recording against the spec; every message starts with `name`.
pub fn check(spec: Value, name: &str, recording: &Recording, strict: bool) -> CaseResult {
    let started = Instant::now();
    let findings = match Contract::new(spec) {
        Ok(contract) => check_one(&contract, name, recording),
        Err(e) => Findings {
            failures: vec![e],
            warnings: Vec::new(),
        },
    };
    let (failures, warnings) = findings.finish(strict);
    CaseResult {
        name: name.to_owned(),
        failures,
        warnings,
        elapsed: started.elapsed(),
    }
}

fn check_one(contract: &Contract, name: &str, recording: &Recording) -> Findings {
    let mut findings = Findings::default();
    let method = recording.method.to_ascii_uppercase();
    let path = recording.path.split('?').next().unwrap_or_default();
    let Some(operation) = contract.operation_id(&method, path) else {
        findings.failures.push(format!(
            "{name}: {method} {path}: the spec declares no such operation"
        ));
        return findings;
    };
    let request_headers: Vec<(String, String)> = recording
        .request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    let body = recording.request.body.as_bytes();
    let request = Request {
        method: &method,
        path,
        headers: &request_headers,
        body: (!body.is_empty()).then_some(body),
        credentials: None,
    };
    for violation in contract.request_violations(&request) {
        findings.warnings.push(format!(
            "{name}: {method} {path}: the recorded request breaks the spec: {violation}"
        ));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for (header, value) in &recording.response.headers {
        match (
            reqwest::header::HeaderName::from_bytes(header.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) {
            (Ok(header), Ok(value)) => {
                headers.append(header, value);
            }
            _ => findings.failures.push(format!(
                "{name}: response header {header:?}: {value:?} is not a valid HTTP header"
            )),
        }
    }
    let answer = Answer {
        status: recording.response.status,
        headers,
        body: recording.response.body.as_bytes().to_vec(),
    };
    let sent = Sent {
        operation: &operation,
        what: format!("{name}: {method} {path}"),
        headers: &request_headers,
        expect: Expect::Declared,
        negative: None,
        forbids: &[],
    };
    contract.check(&sent, &answer, &mut Coverage::default(), &mut findings);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/recordings/published")
    }

    /// A fresh directory under the system's temporary directory.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pc-recordings-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_published_examples_keep_the_contract() {
        let result = check_dir(crate::spec(), &published(), true).unwrap();

        assert_eq!(result.cases.len(), 3, "{:#?}", result.cases);
        for case in &result.cases {
            assert_eq!(case.failures, Vec::<String>::new(), "{}", case.name);
            assert_eq!(case.warnings, Vec::<String>::new(), "{}", case.name);
        }
    }

    #[test]
    fn a_planted_violation_fails_naming_the_file() {
        let dir = scratch("planted");
        for entry in std::fs::read_dir(published()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        // The published create answer, without its Location header.
        let create: Value = serde_json::from_str(
            &std::fs::read_to_string(published().join("create-202.json")).unwrap(),
        )
        .unwrap();
        let mut planted = create.clone();
        planted["response"]["headers"] = Value::Array(
            create["response"]["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|pair| pair[0] != "location")
                .cloned()
                .collect(),
        );
        std::fs::write(dir.join("planted-no-location.json"), planted.to_string()).unwrap();
        // An eligibility answer whose isEligible is a string.
        let eligibility: Value = serde_json::from_str(
            &std::fs::read_to_string(published().join("eligibility-200.json")).unwrap(),
        )
        .unwrap();
        let mut wrong = eligibility.clone();
        let mut body: Value =
            serde_json::from_str(eligibility["response"]["body"].as_str().unwrap()).unwrap();
        body["isEligible"] = Value::String("true".into());
        wrong["response"]["body"] = Value::String(body.to_string());
        std::fs::write(dir.join("planted-wrong-type.json"), wrong.to_string()).unwrap();
        std::fs::write(dir.join("not-a-recording.json"), "{}").unwrap();
        std::fs::write(dir.join("notes.txt"), "not read").unwrap();

        let result = check_dir(crate::spec(), &dir, false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let failed: Vec<&str> = result.failed().map(|c| c.name.as_str()).collect();
        assert_eq!(
            failed,
            [
                "not-a-recording.json",
                "planted-no-location.json",
                "planted-wrong-type.json"
            ]
        );
        assert_eq!(result.cases.len(), 6);
        let failures: Vec<&String> = result.failed().flat_map(|c| &c.failures).collect();
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("planted-no-location.json: ")
                    && f.contains("status 202 lacks the required Location header")),
            "{failures:#?}"
        );
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("planted-wrong-type.json: ")
                    && f.contains("breaks ProductUpgradesEligibility")
                    && f.contains("isEligible")),
            "{failures:#?}"
        );
    }

    #[test]
    fn an_undeclared_operation_or_status_fails() {
        let recording = |method: &str, path: &str, status: u16| {
            Recording {
            method: method.into(),
            path: path.into(),
            request: RecordedRequest {
                headers: Vec::new(),
                body: r#"{"customerId":"4c721420-72ad-4708-a0a7-371a2f7b0969","productFamily":"Azure"}"#
                    .into(),
            },
            response: RecordedResponse {
                status,
                headers: Vec::new(),
                body: String::new(),
            },
        }
        };
        let unknown = check(
            crate::spec(),
            "a.json",
            &recording("POST", "/v1/nowhere", 200),
            false,
        );
        assert!(
            unknown.failures[0].contains("declares no such operation"),
            "{unknown:?}"
        );

        let created = check(
            crate::spec(),
            "b.json",
            &recording("POST", "/v1/productupgrades", 201),
            false,
        );
        assert!(
            created.failures.iter().any(|f| f.starts_with(
                "b.json: POST /v1/productupgrades: status 201, expected one of the declared"
            )),
            "{created:?}"
        );
    }

    #[test]
    fn an_invalid_recorded_request_is_a_warning_and_a_failure_when_strict() {
        let text = std::fs::read_to_string(published().join("eligibility-200.json")).unwrap();
        let mut recording: Recording = serde_json::from_str(&text).unwrap();
        for (name, value) in &mut recording.request.headers {
            if name == "ms-requestid" {
                *value = "not-a-guid".into();
            }
        }
        for (name, value) in &mut recording.response.headers {
            if name == "ms-requestid" {
                *value = "not-a-guid".into();
            }
        }

        let lenient = check(crate::spec(), "c.json", &recording, false);
        let strict = check(crate::spec(), "c.json", &recording, true);

        // The answer echoes the request's id: not held against the server.
        assert_eq!(lenient.failures, Vec::<String>::new());
        assert_eq!(lenient.warnings.len(), 1, "{lenient:?}");
        assert!(lenient.warnings[0].contains("MS-RequestId"), "{lenient:?}");
        assert_eq!(strict.warnings, Vec::<String>::new());
        assert_eq!(strict.failures.len(), 1);
    }
}
