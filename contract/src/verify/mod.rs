//! Provider verification: does a running server keep the contract?
//!
//! Sends seeded, generated requests — positive ones the spec allows and negative ones it
//! forbids — to every operation the spec declares ([`crate::operations`]: paths, methods and
//! statuses are read from the spec, not restated here), and checks every answer against the spec:
//! the status is one the operation declares, a body is JSON of the declared schema, and the
//! declared required headers (`Location` on 202, `Retry-After` on 429) are present and of their
//! schema. Flows then walk eligibility → create → replayed create → status polls: a replay of the
//! same `MS-RequestId` must return the first answer, never a second upgrade. With `stateless`, the
//! checks that need a server keeping upgrade state (the status names the new upgrade, eligibility
//! reports it, polls reach a terminal state) are left out, so an example server such as `prism
//! mock` can be verified too.
//!
//! A negative case is graded by [`NEGATIVES`]: a server that accepts a request the
//! documentation says Partner Center rejects (a malformed body, an invalid customer id, missing
//! or wrong credentials) fails the case; one that accepts a request only the spec forbids (a
//! non-GUID `MS-RequestId`, an unusual `X-Locale`, ...) gets a warning, a failure only with
//! [`Options::strict`]. Whatever it answers, the answer itself must keep the contract — except
//! that a response header echoing the case's own invalid input is not held against the server.
//! Negatives the spec in use does not forbid are left out (and listed in
//! [`Verification::left_out`]), so a looser spec never turns a valid request into a "negative".
//!
//! The token goes only where [`check_base_url`] allows: `https`, or plain `http` to a loopback
//! host. Loopback targets are never reached through a proxy, redirects are never followed, and
//! no answer is read past [`MAX_ANSWER_BYTES`] (a longer one is the failure "answer longer than
//! 4 MiB").
//!
//! Every request a failed case sent is kept as it went out ([`Verification::exchanges`]), so
//! that [`SentRequest::curl`] can reproduce it; the token is never kept, only which token it was,
//! and [`redact`] takes it (and anything shaped like a JSON Web Token) out of every failure,
//! warning and kept request.
//!
//! One job per module: `check` grades one answer (and one request) against the spec, `plan`
//! draws the seeded positive and negative cases, `flow` walks the stateful flows, `coverage`
//! counts what was exercised, `transport` sends requests within the token's rules and keeps
//! them, and `curl` renders a kept request as a shell command.

mod check;
mod coverage;
mod curl;
mod flow;
mod plan;
mod transport;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

pub(crate) use check::{Answer, Contract, Expect, Findings, Request, Sent};
pub use coverage::Coverage;
pub use curl::{Bearer, Exchange, REDACTED, SentRequest, quoted, redact};
pub use plan::{NEGATIVES, Negative, Severity};
pub use transport::{MAX_ANSWER_BYTES, check_base_url};

use plan::Plan;
use transport::{Case, Runner};

/// What to verify against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:4010`.
    pub base_url: String,
    /// The bearer token the server accepts.
    pub token: String,
}

/// How much to send, and how to grade it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of cases (a flow counts as one case).
    pub cases: usize,
    /// Seed of the generator: the same seed sends the same cases.
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Leave out the checks that need a server that keeps upgrade state.
    pub stateless: bool,
    /// Send the negative case with a wrong bearer token. Servers that accept any token (an
    /// example server such as `prism mock`) cannot pass it, so it can be left out.
    pub wrong_token: bool,
    /// Grade every warning as a failure: a server that accepts a request only the spec (not the
    /// documentation) forbids fails.
    pub strict: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cases: 1000,
            seed: 1,
            concurrency: 16,
            stateless: false,
            wrong_token: true,
            strict: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// A name that says what was sent, e.g. `createUpgrade negative: customerId is not a GUID`.
    pub name: String,
    /// Every contract violation seen, each naming the check and the value.
    pub failures: Vec<String>,
    /// What the server may do but the spec does not want (for example accepting a request only
    /// the spec forbids); a failure only in a strict run.
    pub warnings: Vec<String>,
    /// How long the case took.
    pub elapsed: Duration,
}

/// The result of a verification run.
#[derive(Debug, Clone)]
pub struct Verification {
    /// One entry per case.
    pub cases: Vec<CaseResult>,
    /// For each case, in the order of `cases`: every request it sent, as sent, when the case
    /// failed; nothing for a case that passed.
    pub exchanges: Vec<Vec<Exchange>>,
    /// Requests sent in all (flows send several).
    pub requests: usize,
    /// What was exercised.
    pub coverage: Coverage,
    /// Negative cases of [`NEGATIVES`] that were not sent, and why (the spec in use allows the
    /// request, or the options leave the case out).
    pub left_out: Vec<String>,
    /// Whether warnings were graded as failures.
    pub strict: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Verification {
    /// Cases with at least one failure.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.failures.is_empty())
    }

    /// Cases with at least one warning.
    pub fn warned(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.warnings.is_empty())
    }

    /// Each failed case with its index in `cases` and the requests it sent, in order.
    pub fn failed_with_exchanges(&self) -> impl Iterator<Item = (usize, &CaseResult, &[Exchange])> {
        self.cases
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.failures.is_empty())
            .map(|(i, c)| (i, c, self.exchanges.get(i).map_or(&[][..], Vec::as_slice)))
    }
}

/// How far a run is, reported after every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Cases finished so far.
    pub done: usize,
    /// Cases planned in all ([`Options::cases`]).
    pub total: usize,
}

/// Runs the verification, reporting nothing while it runs.
///
/// Refuses a target [`check_base_url`] refuses, before sending anything.
pub async fn run(spec: Value, target: Target, options: Options) -> Result<Verification, String> {
    run_with_progress(spec, target, options, &|_| {}).await
}

/// Runs the verification, calling `progress` after every case (in the order cases finish).
///
/// Refuses a target [`check_base_url`] refuses, before sending anything.
pub async fn run_with_progress(
    spec: Value,
    target: Target,
    options: Options,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Verification, String> {
    let loopback = check_base_url(&target.base_url)?;
    let https = target
        .base_url
        .trim()
        .to_ascii_lowercase()
        .starts_with("https:");
    let contract = Contract::new(spec)?;
    flow::check_operations(&contract)?;
    let mut coverage = coverage::declared(&contract);
    let (negatives, left_out) = plan::applicable(&contract, &options);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let plans: Vec<Plan> = (0..options.cases)
        .map(|i| plan::plan(i, &mut rng, &contract, &negatives))
        .collect();
    let runner = Runner {
        http: transport::http_client(options.timeout, https, loopback)?,
        target,
        contract,
    };
    let started = Instant::now();
    let (stateless, strict) = (options.stateless, options.strict);
    let runner = &runner;
    let mut results =
        futures_util::stream::iter(plans.into_iter().enumerate().map(|(i, plan)| async move {
            let case_started = Instant::now();
            let (name, case, requests) = execute(runner, plan, stateless).await;
            let (coverage, failures, warnings, exchanges) = case.finish(strict);
            let token = &runner.target.token;
            let clean = |lines: Vec<String>| -> Vec<String> {
                lines.iter().map(|line| redact(line, token)).collect()
            };
            (
                i,
                CaseResult {
                    name: redact(&name, token),
                    failures: clean(failures),
                    warnings: clean(warnings),
                    elapsed: case_started.elapsed(),
                },
                exchanges,
                requests,
                coverage,
            )
        }))
        .buffer_unordered(options.concurrency.max(1));
    let mut cases = Vec::with_capacity(options.cases);
    let mut requests = 0;
    while let Some((i, case, exchanges, sent, seen)) = results.next().await {
        requests += sent;
        coverage.merge(seen);
        cases.push((i, case, exchanges));
        progress(Progress {
            done: cases.len(),
            total: options.cases,
        });
    }
    cases.sort_by_key(|(i, _, _)| *i);
    let (cases, exchanges) = cases.into_iter().map(|(_, c, e)| (c, e)).unzip();
    Ok(Verification {
        cases,
        exchanges,
        requests,
        coverage,
        left_out,
        strict,
        elapsed: started.elapsed(),
    })
}

/// Sends one planned case: a single request, or a whole flow.
async fn execute(runner: &Runner, plan: Plan, stateless: bool) -> (String, Case, usize) {
    let mut case = Case::default();
    match plan {
        Plan::Single(probe, name) => {
            runner.exchange(&probe, &mut case).await;
            (name, case, 1)
        }
        Plan::Flow {
            customer,
            request_id,
            correlation_id,
        } => {
            let requests = flow::flow(
                runner,
                customer,
                request_id,
                correlation_id,
                stateless,
                &mut case,
            )
            .await;
            (
                format!("flow: eligibility → create → replay → status, customer {customer}"),
                case,
                requests,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_base_url_sends_nothing() {
        let target = Target {
            base_url: "http://192.0.2.1:9".into(),
            token: "secret".into(),
        };
        let refused = run(crate::spec(), target, Options::default())
            .await
            .unwrap_err();
        assert!(refused.contains("plain http"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[tokio::test]
    async fn progress_is_reported_after_every_case() {
        let mock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target {
            // Nothing answers: every case fails fast, and is reported all the same.
            base_url: format!("http://{}", mock.local_addr().unwrap()),
            token: "t".into(),
        };
        drop(mock);
        let seen = std::sync::Mutex::new(Vec::new());
        let options = Options {
            cases: 4,
            concurrency: 1,
            ..Options::default()
        };

        let verification = run_with_progress(crate::spec(), target, options, &|p| {
            seen.lock().unwrap().push((p.done, p.total));
        })
        .await
        .unwrap();

        assert_eq!(verification.cases.len(), 4);
        assert_eq!(*seen.lock().unwrap(), [(1, 4), (2, 4), (3, 4), (4, 4)]);
        // No answer: each failed case still keeps the one request it tried, token aside.
        assert_eq!(verification.failed_with_exchanges().count(), 4);
        for (_, case, exchanges) in verification.failed_with_exchanges() {
            assert_eq!(exchanges.len(), 1, "{}", case.name);
            assert!(exchanges[0].failed && exchanges[0].status.is_none());
        }
    }

    /// One request as a server read it off the wire.
    #[derive(Debug, PartialEq, Eq)]
    struct Wire {
        request_line: String,
        /// Names in lower case, sorted.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// A server that keeps every request it reads and answers each with 418, a status no
    /// operation declares (so every case fails).
    fn teapot() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Wire>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut read = Vec::new();
                let mut buffer = [0u8; 8192];
                let head_end = loop {
                    if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at;
                    }
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break usize::MAX,
                        Ok(n) => read.extend_from_slice(&buffer[..n]),
                    }
                };
                if head_end == usize::MAX {
                    continue;
                }
                let head = String::from_utf8_lossy(&read[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let mut headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                headers.sort();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = read[head_end + 4..].to_vec();
                while body.len() < length {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body.extend_from_slice(&buffer[..n]),
                    }
                }
                kept.lock().unwrap().push(Wire {
                    request_line,
                    headers,
                    body,
                });
                let _ = stream.write_all(
                    b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        (url, seen)
    }

    fn has_curl() -> bool {
        std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_failed_case_s_curl_command_sends_the_same_bytes_again() {
        if !has_curl() {
            eprintln!("curl is not installed: the byte-for-byte check of the commands is skipped");
            return;
        }
        let (base_url, seen) = teapot();
        let token = "wire-test-token-4c721420";
        let target = Target {
            base_url,
            token: token.into(),
        };
        let options = Options {
            cases: 60,
            concurrency: 1,
            seed: 3,
            ..Options::default()
        };

        let verification = run(crate::spec(), target, options).await.unwrap();

        // One request a case (a flow stops at its first answer), read in case order.
        let originals: Vec<Wire> = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(originals.len(), 60);
        // 418 is a 4xx: only a method the spec does not declare is rejected as it should be.
        for (case, exchanges) in verification.cases.iter().zip(&verification.exchanges) {
            assert_eq!(
                case.failures.is_empty(),
                case.name.contains("method GET is not declared"),
                "{}",
                case.name
            );
            assert_eq!(exchanges.is_empty(), case.failures.is_empty());
        }
        let mut kinds = std::collections::BTreeSet::new();
        for (i, case, exchanges) in verification.failed_with_exchanges() {
            assert!(
                case.failures[0].contains("status 418"),
                "{:?}",
                case.failures
            );
            assert_eq!(exchanges.len(), 1);
            let exchange = &exchanges[0];
            assert!(exchange.failed);
            assert_eq!(exchange.status, Some(418));
            kinds.insert(format!("{:?}", exchange.request.bearer));
            let command = exchange.request.curl("PARTNER_CENTER_TOKEN");
            assert!(!command.contains(token), "{command}");
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .env("PARTNER_CENTER_TOKEN", token)
                .output()
                .unwrap();
            let answer = String::from_utf8_lossy(&output.stdout);
            assert!(answer.starts_with("HTTP/1.1 418"), "{command}\n{answer}");
            let again = seen.lock().unwrap().pop().expect("curl's request");
            assert_eq!(again, originals[i], "case {}: {command}", case.name);
        }
        assert_eq!(kinds.len(), 3, "right, wrong and no token: {kinds:?}");
    }
}
