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
//! One job per module: `check` grades one answer (and one request) against the spec, `plan`
//! draws the seeded positive and negative cases, `flow` walks the stateful flows, `coverage`
//! counts what was exercised, and `transport` sends requests within the token's rules.

mod check;
mod coverage;
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
pub use plan::{NEGATIVES, Negative, Severity};
pub use transport::{MAX_ANSWER_BYTES, check_base_url};

use plan::Plan;
use transport::Runner;

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
            let mut coverage = Coverage::default();
            let case_started = Instant::now();
            let (name, findings, requests) = execute(runner, plan, stateless, &mut coverage).await;
            let (failures, warnings) = findings.finish(strict);
            (
                i,
                CaseResult {
                    name,
                    failures,
                    warnings,
                    elapsed: case_started.elapsed(),
                },
                requests,
                coverage,
            )
        }))
        .buffer_unordered(options.concurrency.max(1));
    let mut cases = Vec::with_capacity(options.cases);
    let mut requests = 0;
    while let Some((i, case, sent, seen)) = results.next().await {
        requests += sent;
        coverage.merge(seen);
        cases.push((i, case));
        progress(Progress {
            done: cases.len(),
            total: options.cases,
        });
    }
    cases.sort_by_key(|(i, _)| *i);
    Ok(Verification {
        cases: cases.into_iter().map(|(_, c)| c).collect(),
        requests,
        coverage,
        left_out,
        strict,
        elapsed: started.elapsed(),
    })
}

/// Sends one planned case: a single request, or a whole flow.
async fn execute(
    runner: &Runner,
    plan: Plan,
    stateless: bool,
    coverage: &mut Coverage,
) -> (String, Findings, usize) {
    let mut findings = Findings::default();
    match plan {
        Plan::Single(probe, name) => {
            runner.exchange(&probe, coverage, &mut findings).await;
            (name, findings, 1)
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
                coverage,
                &mut findings,
            )
            .await;
            (
                format!("flow: eligibility → create → replay → status, customer {customer}"),
                findings,
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
    }
}
