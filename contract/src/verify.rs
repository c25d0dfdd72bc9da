//! Provider verification: does a running server keep the contract?
//!
//! Sends seeded, generated requests — positive ones the spec allows and negative ones it
//! forbids — to every operation, and checks every answer against the spec: the status is one the
//! operation declares (and a 4xx for a negative request), a body is JSON of the declared schema,
//! and the declared required headers (`Location` on 202, `Retry-After` on 429) are present and of
//! their schema. Flows then walk eligibility → create → replayed create → status polls: a replay
//! of the same `MS-RequestId` must return the first answer, never a second upgrade. With
//! `stateless`, the checks that need a server keeping upgrade state (the status names the new
//! upgrade, eligibility reports it, polls reach a terminal state) are left out, so an example
//! server such as `prism mock` can be verified too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{resolve, validator, violations};

/// What to verify against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:4010`.
    pub base_url: String,
    /// The bearer token the server accepts.
    pub token: String,
}

/// How much to send.
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
    /// How long the case took.
    pub elapsed: Duration,
}

/// What the run exercised.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// operationId → statuses declared by the spec.
    pub declared_statuses: BTreeMap<String, BTreeSet<String>>,
    /// operationId → statuses seen.
    pub seen_statuses: BTreeMap<String, BTreeSet<String>>,
    /// schema name → properties declared.
    pub declared_fields: BTreeMap<String, BTreeSet<String>>,
    /// schema name → properties seen in answers.
    pub seen_fields: BTreeMap<String, BTreeSet<String>>,
}

impl Coverage {
    /// Lines such as `createUpgrade: statuses 3/11 (202 400 409)` and
    /// `ProductUpgradesStatus: fields 5/6 (missing: attributes)`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (op, declared) in &self.declared_statuses {
            let seen = self.seen_statuses.get(op).cloned().unwrap_or_default();
            let hit: Vec<&String> = declared.intersection(&seen).collect();
            let extra: Vec<&String> = seen.difference(declared).collect();
            lines.push(format!(
                "{op}: statuses {}/{} exercised ({}){}",
                hit.len(),
                declared.len(),
                hit.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(", undeclared seen: {extra:?}")
                }
            ));
        }
        for (schema, declared) in &self.declared_fields {
            let seen = self.seen_fields.get(schema).cloned().unwrap_or_default();
            let missing: Vec<&String> = declared.difference(&seen).collect();
            lines.push(format!(
                "{schema}: fields {}/{} seen{}",
                declared.len() - missing.len(),
                declared.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (never seen: {})",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        lines
    }

    /// Operations the run sent no request to.
    pub fn unexercised_operations(&self) -> Vec<String> {
        self.declared_statuses
            .keys()
            .filter(|op| self.seen_statuses.get(*op).is_none_or(BTreeSet::is_empty))
            .cloned()
            .collect()
    }
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
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Verification {
    /// Cases with at least one failure.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.failures.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Eligibility,
    Create,
    Status,
}

impl Op {
    const ALL: [Op; 3] = [Op::Eligibility, Op::Create, Op::Status];

    fn id(self) -> &'static str {
        match self {
            Op::Eligibility => "checkEligibility",
            Op::Create => "createUpgrade",
            Op::Status => "getUpgradeStatus",
        }
    }

    fn spec_path(self) -> &'static str {
        match self {
            Op::Eligibility => "/v1/productUpgrades/eligibility",
            Op::Create => "/v1/productUpgrades",
            Op::Status => "/v1/productUpgrades/{upgradeId}/status",
        }
    }

    fn path(self, upgrade: &str) -> String {
        self.spec_path().replace("{upgradeId}", upgrade)
    }
}

/// What a request is expected to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Anything the operation declares.
    Declared,
    /// A declared 4xx (the request breaks the spec).
    ClientError,
    /// A declared 4xx for bytes that are not JSON. Such a request never reaches an operation:
    /// servers refuse it from their HTTP framework (prism answers with its own error document),
    /// so only the status and content type are checked, not the operation's error schema.
    Unparsable,
    /// 401 (no token).
    Unauthorized,
    /// 404 or 405 (a method the spec does not declare).
    MethodRefused,
}

/// One HTTP request to send.
#[derive(Debug, Clone)]
struct Probe {
    op: Op,
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    with_token: bool,
    expect: Expect,
}

/// One answer, read whole.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// The spec's expectations, with compiled validators, shared by all cases.
struct Contract {
    spec: Value,
    /// (operation, status) → (body validator and schema name, required headers with validators)
    responses: HashMap<(Op, String), Expected>,
}

struct Expected {
    body: Option<(jsonschema::Validator, String)>,
    headers: Vec<(String, bool, jsonschema::Validator)>,
}

impl Contract {
    fn new(spec: Value) -> Result<Self, String> {
        let mut responses = HashMap::new();
        for op in Op::ALL {
            let operation = spec["paths"][op.spec_path()]["post"].clone();
            let declared = operation["responses"]
                .as_object()
                .ok_or_else(|| format!("the spec has no responses for {}", op.id()))?;
            for (status, response) in declared {
                let response = resolve(&spec, response).clone();
                let body = response["content"]["application/json"]["schema"]
                    .as_object()
                    .map(|schema| {
                        let schema = Value::Object(schema.clone());
                        let name = schema["$ref"]
                            .as_str()
                            .and_then(|r| r.rsplit('/').next())
                            .unwrap_or("inline schema")
                            .to_owned();
                        (validator(&spec, &schema), name)
                    });
                let headers = response["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, header)| {
                        let header = resolve(&spec, header);
                        let required = header["required"].as_bool().unwrap_or(false);
                        (name.clone(), required, validator(&spec, &header["schema"]))
                    })
                    .collect();
                responses.insert((op, status.clone()), Expected { body, headers });
            }
        }
        Ok(Contract { spec, responses })
    }

    fn declared(&self, op: Op) -> BTreeSet<String> {
        self.responses
            .keys()
            .filter(|(o, _)| *o == op)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Checks one answer; returns the failures and the JSON body when there was one.
    fn check(
        &self,
        probe: &Probe,
        answer: &Answer,
        coverage: &mut Coverage,
    ) -> (Vec<String>, Option<Value>) {
        let mut failures = Vec::new();
        let status = answer.status.to_string();
        let declared = self.declared(probe.op);
        let what = format!("{} {}", probe.method, probe.path);
        let status_ok = match probe.expect {
            Expect::Declared => declared.contains(&status),
            Expect::ClientError | Expect::Unparsable => {
                declared.contains(&status) && (400..500).contains(&answer.status)
            }
            Expect::Unauthorized => answer.status == 401,
            Expect::MethodRefused => matches!(answer.status, 404 | 405),
        };
        if probe.expect != Expect::MethodRefused {
            coverage
                .seen_statuses
                .entry(probe.op.id().into())
                .or_default()
                .insert(status.clone());
        }
        if !status_ok {
            let wanted = match probe.expect {
                Expect::Declared => format!("one of the declared {declared:?}"),
                Expect::ClientError | Expect::Unparsable => {
                    "a declared 4xx, because the request breaks the spec".into()
                }
                Expect::Unauthorized => "401, because no token was sent".into(),
                Expect::MethodRefused => {
                    "404 or 405, because the spec declares no such method".into()
                }
            };
            failures.push(format!("{what}: status {status}, expected {wanted}"));
        }
        if probe.expect == Expect::MethodRefused {
            // The spec declares nothing for this method, so nothing but the status is checked.
            return (failures, None);
        }
        let text = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
        let mut parsed = None;
        if !answer.body.is_empty() {
            let content_type = text("content-type").unwrap_or_default();
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/json")
            {
                failures.push(format!(
                    "{what}: status {status} has a body with content type {content_type:?}, expected application/json"
                ));
            }
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(value) => parsed = Some(value),
                Err(e) => failures.push(format!("{what}: status {status} body is not JSON: {e}")),
            }
        }
        let Some(expected) = self.responses.get(&(probe.op, status.clone())) else {
            return (failures, parsed);
        };
        match (&expected.body, &parsed) {
            (Some(_), Some(_)) if probe.expect == Expect::Unparsable => {}
            (Some((validator, schema)), Some(value)) => {
                for violation in violations(validator, value) {
                    failures.push(format!(
                        "{what}: status {status} body breaks {schema} {violation}"
                    ));
                }
                record_fields(&self.spec, schema, value, coverage);
            }
            (Some((_, schema)), None) => failures.push(format!(
                "{what}: status {status} has no body, expected {schema}"
            )),
            (None, Some(_)) if status == "202" => failures.push(format!(
                "{what}: status 202 has a body; the spec declares none"
            )),
            _ => {}
        }
        for (name, required, validator) in &expected.headers {
            match text(name) {
                None if *required => failures.push(format!(
                    "{what}: status {status} lacks the required {name} header"
                )),
                None => {}
                Some(value) => {
                    let value = value.trim();
                    let as_json = serde_json::from_str::<Value>(value)
                        .ok()
                        .filter(|v| v.is_number())
                        .unwrap_or_else(|| Value::String(value.to_owned()));
                    for violation in violations(validator, &as_json) {
                        failures.push(format!("{what}: {name} header {value:?} {violation}"));
                    }
                }
            }
        }
        (failures, parsed)
    }
}

fn record_fields(spec: &Value, schema: &str, value: &Value, coverage: &mut Coverage) {
    let declared = &spec["components"]["schemas"][schema]["properties"];
    let Some(properties) = declared.as_object() else {
        return;
    };
    let seen = coverage.seen_fields.entry(schema.to_owned()).or_default();
    for key in value.as_object().into_iter().flatten().map(|(k, _)| k) {
        if properties.contains_key(key) {
            seen.insert(key.clone());
        }
    }
    for (key, property) in properties {
        let (Some(reference), Some(child)) = (property["$ref"].as_str(), value.get(key)) else {
            if let (Some(items), Some(Value::Array(children))) =
                (property["items"]["$ref"].as_str(), value.get(key))
            {
                let name = items.rsplit('/').next().unwrap_or_default();
                for child in children {
                    record_fields(spec, name, child, coverage);
                }
            }
            continue;
        };
        record_fields(
            spec,
            reference.rsplit('/').next().unwrap_or_default(),
            child,
            coverage,
        );
    }
}

/// A reqwest client for verification: TLS through rustls with the `ring` provider, installed as
/// the process default if none is (this runs in tools, not in the library).
fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

struct Runner {
    http: reqwest::Client,
    target: Target,
    contract: Contract,
}

impl Runner {
    async fn send(&self, probe: &Probe) -> Result<Answer, String> {
        let url = format!(
            "{}{}",
            self.target.base_url.trim_end_matches('/'),
            probe.path
        );
        let mut request = self.http.request(probe.method.clone(), &url);
        if probe.with_token {
            request = request.header("authorization", format!("Bearer {}", self.target.token));
        }
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &probe.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} {}: no answer: {e}", probe.method, probe.path))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| {
                format!(
                    "{} {}: the body could not be read: {e}",
                    probe.method, probe.path
                )
            })?
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends one probe and checks its answer.
    async fn exchange(
        &self,
        probe: &Probe,
        coverage: &mut Coverage,
        failures: &mut Vec<String>,
    ) -> Option<(Answer, Option<Value>)> {
        match self.send(probe).await {
            Ok(answer) => {
                let (found, body) = self.contract.check(probe, &answer, coverage);
                failures.extend(found);
                Some((answer, body))
            }
            Err(e) => {
                failures.push(e);
                None
            }
        }
    }
}

/// Runs the verification.
pub async fn run(spec: Value, target: Target, options: Options) -> Result<Verification, String> {
    let contract = Contract::new(spec)?;
    let mut coverage = Coverage::default();
    for op in Op::ALL {
        coverage
            .declared_statuses
            .insert(op.id().into(), contract.declared(op));
    }
    for schema in [
        "ProductUpgradesEligibility",
        "ProductUpgradesStatus",
        "ProductUpgradeLineItem",
        "UpgradeProduct",
        "ServiceError",
        "ThrottlingError",
    ] {
        let properties = contract.spec["components"]["schemas"][schema]["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        coverage.declared_fields.insert(schema.into(), properties);
    }
    let runner = Runner {
        http: http_client(options.timeout)?,
        target,
        contract,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let plans: Vec<Plan> = (0..options.cases).map(|i| plan(i, &mut rng)).collect();
    let started = Instant::now();
    let progress_every = (options.cases / 10).max(1);
    let stateless = options.stateless;
    let runner = &runner;
    let mut results =
        futures_util::stream::iter(plans.into_iter().enumerate().map(|(i, plan)| async move {
            let mut coverage = Coverage::default();
            let case_started = Instant::now();
            let (name, failures, requests) = execute(runner, plan, stateless, &mut coverage).await;
            (
                i,
                CaseResult {
                    name,
                    failures,
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
        merge(&mut coverage, seen);
        cases.push((i, case));
        if cases.len() % progress_every == 0 {
            eprint!("\r      {}/{} cases", cases.len(), options.cases);
        }
    }
    eprintln!();
    cases.sort_by_key(|(i, _)| *i);
    Ok(Verification {
        cases: cases.into_iter().map(|(_, c)| c).collect(),
        requests,
        coverage,
        elapsed: started.elapsed(),
    })
}

fn merge(into: &mut Coverage, from: Coverage) {
    for (op, statuses) in from.seen_statuses {
        into.seen_statuses.entry(op).or_default().extend(statuses);
    }
    for (schema, fields) in from.seen_fields {
        into.seen_fields.entry(schema).or_default().extend(fields);
    }
}

/// What one case does, decided up front from the seed so runs repeat.
#[derive(Debug, Clone)]
enum Plan {
    Single(Probe, String),
    Flow {
        customer: Uuid,
        request_id: Uuid,
        correlation_id: Uuid,
    },
}

fn guid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn request_body(customer: &str, family: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "customerId": customer, "productFamily": family })).expect("JSON")
}

fn common_headers(rng: &mut ChaCha8Rng) -> Vec<(String, String)> {
    let mut headers = vec![
        ("ms-requestid".to_owned(), guid(rng).to_string()),
        ("ms-correlationid".to_owned(), guid(rng).to_string()),
    ];
    if rng.random_bool(0.5) {
        let locale = ["en-US", "de-DE", "ru-RU", "fr"][rng.random_range(0..4)];
        headers.push(("x-locale".into(), locale.into()));
    }
    if rng.random_bool(0.3) {
        headers.push((
            "ms-partnercenter-application".into(),
            "contract verification".into(),
        ));
    }
    headers
}

/// The negative variants: what breaks the spec, and the request that breaks it.
const NEGATIVES: [&str; 12] = [
    "customerId is missing",
    "customerId is not a GUID",
    "customerId is a number",
    "productFamily is missing",
    "productFamily is empty",
    "productFamily is a number",
    "the body is not JSON",
    "the body is an array",
    "MS-RequestId is not a GUID",
    "X-Locale is not a language tag",
    "no Authorization header",
    "method GET is not declared",
];

fn plan(index: usize, rng: &mut ChaCha8Rng) -> Plan {
    if index % 25 == 24 {
        return Plan::Flow {
            customer: guid(rng),
            request_id: guid(rng),
            correlation_id: guid(rng),
        };
    }
    let op = Op::ALL[index % 3];
    let customer = guid(rng).to_string();
    let upgrade = guid(rng).to_string();
    let headers = common_headers(rng);
    let family = ["Azure", "azure", "AZURE"][rng.random_range(0..3)];
    let base = Probe {
        op,
        method: reqwest::Method::POST,
        path: op.path(&upgrade),
        headers,
        body: Some(request_body(&customer, family)),
        with_token: true,
        expect: Expect::Declared,
    };
    if rng.random_bool(0.5) {
        let name = format!("{} positive: customer {customer}, family {family}", op.id());
        return Plan::Single(base, name);
    }
    let which = if op == Op::Status && rng.random_bool(0.2) {
        None
    } else {
        Some(rng.random_range(0..NEGATIVES.len()))
    };
    let mut probe = Probe {
        expect: Expect::ClientError,
        ..base
    };
    let what = match which {
        None => {
            probe.path = op.path(["not-a-guid", "42", "eligibility"][rng.random_range(0..3)]);
            "upgradeId is not a GUID"
        }
        Some(n) => {
            match n {
                0 => {
                    probe.body = Some(
                        serde_json::to_vec(&json!({ "productFamily": "Azure" })).expect("JSON"),
                    )
                }
                1 => probe.body = Some(request_body("4c721420-72ad-4708", "Azure")),
                2 => {
                    probe.body = Some(
                        serde_json::to_vec(&json!({ "customerId": 42, "productFamily": "Azure" }))
                            .expect("JSON"),
                    )
                }
                3 => {
                    probe.body =
                        Some(serde_json::to_vec(&json!({ "customerId": customer })).expect("JSON"))
                }
                4 => probe.body = Some(request_body(&customer, "")),
                5 => {
                    probe.body = Some(
                        serde_json::to_vec(&json!({ "customerId": customer, "productFamily": 7 }))
                            .expect("JSON"),
                    )
                }
                6 => {
                    probe.body = Some(b"{\"customerId\": ".to_vec());
                    probe.expect = Expect::Unparsable;
                }
                7 => probe.body = Some(b"[]".to_vec()),
                8 => set_header(&mut probe.headers, "ms-requestid", "not-a-guid"),
                9 => set_header(&mut probe.headers, "x-locale", "en US!"),
                10 => {
                    probe.with_token = false;
                    probe.expect = Expect::Unauthorized;
                }
                _ => {
                    probe.method = reqwest::Method::GET;
                    probe.body = None;
                    probe.expect = Expect::MethodRefused;
                }
            }
            NEGATIVES[n]
        }
    };
    Plan::Single(probe, format!("{} negative: {what}", op.id()))
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.into(), value.into()));
}

async fn execute(
    runner: &Runner,
    plan: Plan,
    stateless: bool,
    coverage: &mut Coverage,
) -> (String, Vec<String>, usize) {
    match plan {
        Plan::Single(probe, name) => {
            let mut failures = Vec::new();
            runner.exchange(&probe, coverage, &mut failures).await;
            (name, failures, 1)
        }
        Plan::Flow {
            customer,
            request_id,
            correlation_id,
        } => {
            let mut failures = Vec::new();
            let requests = flow(
                runner,
                customer,
                request_id,
                correlation_id,
                stateless,
                coverage,
                &mut failures,
            )
            .await;
            (
                format!("flow: eligibility → create → replay → status, customer {customer}"),
                failures,
                requests,
            )
        }
    }
}

/// Eligibility → create → create again with the same `MS-RequestId` → status polls.
async fn flow(
    runner: &Runner,
    customer: Uuid,
    request_id: Uuid,
    correlation_id: Uuid,
    stateless: bool,
    coverage: &mut Coverage,
    failures: &mut Vec<String>,
) -> usize {
    let body = request_body(&customer.to_string(), "Azure");
    let probe = |op: Op, path: String, request: Uuid| Probe {
        op,
        method: reqwest::Method::POST,
        path,
        headers: vec![
            ("ms-requestid".into(), request.to_string()),
            ("ms-correlationid".into(), correlation_id.to_string()),
        ],
        body: Some(body.clone()),
        with_token: true,
        expect: Expect::Declared,
    };
    // The flow's other calls get ids derived from its seeded request id, so a seed repeats them.
    let mut next_id = 0u128;
    let mut derived_id = || {
        next_id += 1;
        Uuid::from_u128(request_id.as_u128().wrapping_add(next_id))
    };
    let mut sent = 1;
    let eligibility = probe(Op::Eligibility, Op::Eligibility.path(""), derived_id());
    let Some((answer, Some(value))) = runner.exchange(&eligibility, coverage, failures).await
    else {
        failures.push("flow: eligibility gave no body; the flow stops".into());
        return sent;
    };
    if answer.status != 200 || value["isEligible"] != json!(true) {
        failures.push(format!(
            "flow: a new customer should be eligible, got status {} and {value}",
            answer.status
        ));
        return sent;
    }
    let create = probe(Op::Create, Op::Create.path(""), request_id);
    sent += 1;
    let Some((first, _)) = runner.exchange(&create, coverage, failures).await else {
        return sent;
    };
    if first.status != 202 {
        failures.push(format!(
            "flow: create answered {}, expected 202",
            first.status
        ));
        return sent;
    }
    let location = first
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(upgrade) = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|id| Uuid::try_parse(id).ok())
    else {
        failures.push(format!(
            "flow: create's Location {location:?} does not end in an upgrade id"
        ));
        return sent;
    };
    sent += 1;
    if let Some((replay, _)) = runner.exchange(&create, coverage, failures).await {
        let again = replay
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if replay.status != first.status || again != location {
            failures.push(format!(
                "flow: replaying create with the same MS-RequestId {request_id} answered {} with Location {again:?}; \
                 the first answer was 202 with {location:?} — a replay must return the first answer, not start a second upgrade",
                replay.status
            ));
        }
    }
    if !stateless {
        sent += 1;
        let second = probe(Op::Create, Op::Create.path(""), derived_id());
        if let Some((answer, body)) = runner.exchange(&second, coverage, failures).await {
            let code = body
                .as_ref()
                .map(|b| b["code"].to_string().trim_matches('"').to_owned());
            if answer.status != 409 || code.as_deref() != Some("900109") {
                failures.push(format!(
                    "flow: a second create (new MS-RequestId) while upgrade {upgrade} is under way answered {} {}; \
                     expected 409 with code 900109",
                    answer.status,
                    body.map(|b| b.to_string()).unwrap_or_default()
                ));
            }
        }
        sent += 1;
        let check = probe(Op::Eligibility, Op::Eligibility.path(""), derived_id());
        if let Some((_, Some(value))) = runner.exchange(&check, coverage, failures).await
            && value["upgradeId"] != json!(upgrade.to_string())
        {
            failures.push(format!(
                "flow: while upgrade {upgrade} is under way, eligibility should name it in upgradeId, got {value}"
            ));
        }
    }
    for _poll in 0..10 {
        sent += 1;
        let status = probe(
            Op::Status,
            Op::Status.path(&upgrade.to_string()),
            derived_id(),
        );
        let Some((answer, Some(value))) = runner.exchange(&status, coverage, failures).await else {
            return sent;
        };
        if answer.status != 200 {
            failures.push(format!(
                "flow: status of upgrade {upgrade} answered {}",
                answer.status
            ));
            return sent;
        }
        if stateless {
            return sent;
        }
        if value["id"] != json!(upgrade.to_string()) {
            failures.push(format!(
                "flow: status of upgrade {upgrade} names another upgrade: {}",
                value["id"]
            ));
            return sent;
        }
        let state = value["status"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if state == "completed" || state == "failed" {
            return sent;
        }
    }
    failures.push(format!(
        "flow: upgrade {upgrade} did not reach Completed or Failed in 10 polls"
    ));
    sent
}
