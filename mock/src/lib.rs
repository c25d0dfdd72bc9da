//! A stateful mock of Partner Center's product-upgrade API, on loopback.
//!
//! It behaves as the facts in the spec describe: create answers 202 with `Location`; status moves
//! through `InProgress` to `Completed` (or `Failed`, for [`FAILING_CUSTOMER`]) over polls; an
//! upgrade under way makes eligibility name it and a second create answer 409 (`900109`);
//! unknown upgrade → 404, another customer's upgrade → 400 (`900111`), a body, header or id the
//! spec forbids → 400 with the Partner Center error body, a missing or wrong bearer token → 401,
//! an undeclared method → 405 with `Allow`. A repeated `MS-RequestId` gets the first answer again
//! and never creates a second upgrade. Faults are injected on demand ([`faults`]).
//!
//! [`MockConfig::lenient`] makes it a server written from Microsoft's pages alone: it accepts
//! what the pages never say is rejected (a request id or correlation id that is not a GUID, any
//! `X-Locale`, any application name) and echoes the ids as given, but still rejects a malformed
//! body, an invalid customer id (`400`, `900118`) and a missing or wrong token (`401`).
//!
//! Requests are validated with the spec's own schemas, read from the compiled-in spec.

#![deny(missing_docs)]

pub mod faults;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use faults::{Fault, FaultRates};

/// The token the mock accepts unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "mock-partner-center-token";
/// A customer with no Azure subscriptions: not eligible; create answers 403 (`900108`).
pub const NO_AZURE_CUSTOMER: &str = "00000000-0000-4000-8000-000000000403";
/// A customer whose upgrades end in `Failed`.
pub const FAILING_CUSTOMER: &str = "00000000-0000-4000-8000-000000000500";

/// A deliberate contract violation, to prove that contract checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// Eligibility answers without `isEligible`; status answers without `status`.
    MissingField,
    /// Create answers 202 without `Location`.
    MissingLocation,
    /// Create answers 201, a status the spec does not declare.
    WrongStatus,
    /// `MS-RequestId` is ignored, so a replayed create starts another upgrade.
    DuplicateOnReplay,
    /// Eligibility answers `isEligible` as a string (`"true"`), not a boolean.
    WrongType,
    /// Every status line item carries `upgradedDate: "yesterday"`.
    MalformedDate,
}

impl Breakage {
    /// Every breakage, by its command-line name.
    pub const ALL: [(&'static str, Breakage); 6] = [
        ("missing-field", Breakage::MissingField),
        ("missing-location", Breakage::MissingLocation),
        ("wrong-status", Breakage::WrongStatus),
        ("duplicate-on-replay", Breakage::DuplicateOnReplay),
        ("wrong-type", Breakage::WrongType),
        ("malformed-date", Breakage::MalformedDate),
    ];
}

impl std::str::FromStr for Breakage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Breakage::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, breakage)| *breakage)
            .ok_or_else(|| {
                let names: Vec<&str> = Breakage::ALL.iter().map(|(name, _)| *name).collect();
                format!(
                    "unknown breakage {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The bearer token it accepts.
    pub token: String,
    /// Seed of the fault generator.
    pub seed: u64,
    /// Random faults.
    pub faults: FaultRates,
    /// How many status polls an upgrade takes to finish (at least 1).
    pub polls_to_complete: u32,
    /// A deliberate contract violation, if any.
    pub breakage: Option<Breakage>,
    /// Accept what Microsoft's pages never say is rejected (request and correlation ids that
    /// are not GUIDs, any `X-Locale` and application name) and echo the ids as given.
    pub lenient: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            token: DEFAULT_TOKEN.into(),
            seed: 0,
            faults: FaultRates::default(),
            polls_to_complete: 2,
            breakage: None,
            lenient: false,
        }
    }
}

#[derive(Debug, Clone)]
struct UpgradeRecord {
    id: Uuid,
    customer: Uuid,
    family: String,
    polls: u32,
    fails: bool,
    created: chrono::DateTime<chrono::Utc>,
}

impl UpgradeRecord {
    fn finished(&self, polls_to_complete: u32) -> bool {
        self.polls >= polls_to_complete
    }
}

/// An answer, kept so a replayed `MS-RequestId` gets it again.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn error(status: u16, code: i64, description: impl Into<String>) -> Self {
        Answer::json(
            status,
            json!({ "code": code, "description": description.into(), "data": [], "source": "PartnerFD" }),
        )
    }
}

/// Remembered answers are capped so a long run cannot grow without bound.
const MAX_REMEMBERED: usize = 200_000;

#[derive(Default)]
struct Ledger {
    upgrades: HashMap<Uuid, UpgradeRecord>,
    /// The customer's latest upgrade.
    latest: HashMap<Uuid, Uuid>,
    /// (operation, MS-RequestId) → the request it answered (path and body) and the answer.
    answers: HashMap<(String, String), (String, Value, Answer)>,
    answer_order: VecDeque<(String, String)>,
    scripted: VecDeque<Fault>,
    requests: u64,
    upgrades_created: u64,
}

struct Validators {
    body: partner_center_contract::jsonschema::Validator,
    locale: partner_center_contract::jsonschema::Validator,
    application: partner_center_contract::jsonschema::Validator,
}

struct Shared {
    config: MockConfig,
    validators: Validators,
    ledger: Mutex<Ledger>,
    rng: Mutex<ChaCha8Rng>,
}

/// A running mock; dropping it stops the server.
pub struct RunningMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningMock {
    /// The base URL, e.g. `http://127.0.0.1:43123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// How many upgrades were created since start.
    pub fn upgrades_created(&self) -> u64 {
        self.ledger().upgrades_created
    }

    /// How many upgrades exist for `customer`.
    pub fn upgrades_of(&self, customer: Uuid) -> usize {
        self.ledger()
            .upgrades
            .values()
            .filter(|u| u.customer == customer)
            .count()
    }

    /// How many requests reached the mock (including faulted ones).
    pub fn requests(&self) -> u64 {
        self.ledger().requests
    }

    /// Queues faults for the next requests, in order, ahead of random ones.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.ledger().scripted.extend(faults);
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.shared.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RunningMock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the mock on `addr` (use port 0 for any free port) on the current tokio runtime.
pub async fn start(config: MockConfig, addr: SocketAddr) -> std::io::Result<RunningMock> {
    let spec = partner_center_contract::embedded_spec();
    let validators = Validators {
        body: partner_center_contract::component_validator(&spec, "ProductUpgradeRequest"),
        locale: partner_center_contract::component_validator(&spec, "Locale"),
        application: partner_center_contract::component_validator(&spec, "ApplicationName"),
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
        config: MockConfig {
            polls_to_complete: config.polls_to_complete.max(1),
            ..config
        },
        validators,
        ledger: Mutex::new(Ledger::default()),
    });
    let (stop, mut stopped) = oneshot::channel();
    let serving = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = Arc::clone(&serving);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let shared = Arc::clone(&shared);
                            async move { handle(&shared, request).await }
                        });
                        // An error here is a dropped connection: injected, or the client's.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    });
    Ok(RunningMock {
        addr,
        shared,
        stop: Some(stop),
    })
}

/// Why the mock closes a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

type Reply = Result<Response<Full<Bytes>>, Dropped>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Eligibility,
    Create,
    Status(Option<Uuid>),
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let is = |s: &str, want: &str| s.eq_ignore_ascii_case(want);
    match segments.as_slice() {
        [v, p] if is(v, "v1") && is(p, "productUpgrades") => Some(Route::Create),
        [v, p, e] if is(v, "v1") && is(p, "productUpgrades") && is(e, "eligibility") => {
            Some(Route::Eligibility)
        }
        [v, p, id, s] if is(v, "v1") && is(p, "productUpgrades") && is(s, "status") => {
            Some(Route::Status(Uuid::try_parse(id).ok()))
        }
        _ => None,
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let fault = {
        let mut ledger = shared.ledger.lock().unwrap_or_else(|e| e.into_inner());
        ledger.requests += 1;
        ledger.scripted.pop_front()
    }
    .or_else(|| {
        if shared.config.faults.is_none() {
            return None;
        }
        let mut rng = shared.rng.lock().unwrap_or_else(|e| e.into_inner());
        let (roll, pick) = (rng.random::<f64>(), rng.random::<u32>());
        shared.config.faults.draw(roll, pick)
    });
    let (parts, body) = request.into_parts();
    let lenient = shared.config.lenient;
    let sent_ids = (
        sent_id(&parts.headers, "ms-requestid", lenient),
        sent_id(&parts.headers, "ms-correlationid", lenient),
    );
    match fault {
        Some(Fault::DropBefore) => return Err(Dropped),
        Some(Fault::Throttle { retry_after }) => {
            let mut answer = Answer::json(
                429,
                json!({
                    "statusCode": 429,
                    "message": format!("Rate limit is exceeded. Try again in {retry_after} seconds.")
                }),
            );
            answer
                .headers
                .push(("retry-after", retry_after.to_string()));
            return Ok(render(answer, &sent_ids));
        }
        Some(Fault::ServerError(502)) => {
            return Ok(render(
                Answer {
                    status: 502,
                    headers: Vec::new(),
                    body: None,
                },
                &sent_ids,
            ));
        }
        Some(Fault::ServerError(status)) => {
            return Ok(render(
                Answer::error(
                    status,
                    i64::from(status),
                    "The service is temporarily unavailable.",
                ),
                &sent_ids,
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropAfter) | None => {}
    }
    let body = match Limited::new(body, 1 << 20).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(render(
                Answer::error(400, 400, "The request body could not be read."),
                &sent_ids,
            ));
        }
    };
    let answer = answer(
        shared,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &body,
    );
    if fault == Some(Fault::DropAfter) {
        return Err(Dropped);
    }
    Ok(render(answer, &sent_ids))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_uuid(headers: &HeaderMap, name: &str) -> Option<Uuid> {
    header_text(headers, name).and_then(|v| Uuid::try_parse(v.trim()).ok())
}

/// The id a request sent in `name`, as the answer gives it back: a GUID (anything else is not
/// echoed), or, when lenient, whatever was sent.
fn sent_id(headers: &HeaderMap, name: &str, lenient: bool) -> Option<String> {
    if lenient {
        header_text(headers, name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    } else {
        header_uuid(headers, name).map(|id| id.to_string())
    }
}

/// Decides the answer to a request that reached the API (no fault, or a slow one).
fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let Some(route) = route(path) else {
        return Answer::error(404, 404, format!("No resource at {path}."));
    };
    if method != Method::POST {
        let mut answer =
            Answer::error(405, 405, format!("{method} is not allowed here; use POST."));
        answer.headers.push(("allow", "POST".into()));
        return answer;
    }
    let expected = format!("Bearer {}", shared.config.token);
    if header_text(headers, "authorization") != Some(expected.as_str()) {
        let mut answer = Answer::error(401, 401, "The access token is missing or not valid.");
        answer.headers.push((
            "www-authenticate",
            "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000".into(),
        ));
        return answer;
    }
    if !shared.config.lenient
        && let Some(problem) = header_problem(shared, headers)
    {
        return Answer::error(400, 400, problem);
    }
    let request_id = sent_id(headers, "ms-requestid", shared.config.lenient);
    let op = match route {
        Route::Eligibility => "eligibility",
        Route::Create => "create",
        Route::Status(_) => "status",
    };
    let (customer, family, body) = match parse_body(shared, body) {
        Ok(parsed) => parsed,
        Err(answer) => return answer,
    };
    let idempotent = shared.config.breakage != Some(Breakage::DuplicateOnReplay);
    let mut ledger = shared.ledger.lock().unwrap_or_else(|e| e.into_inner());
    // A repeated MS-RequestId gets the first answer, but only for the same request: another
    // request under a reused id is a different call and is answered on its own.
    let key = request_id.map(|id| (op.to_owned(), id));
    if let (Some(key), true) = (&key, idempotent)
        && let Some((first_path, first_body, first)) = ledger.answers.get(key)
        && first_path == path
        && first_body == &body
    {
        return first.clone();
    }
    let answer = match route {
        Route::Eligibility => eligibility(shared, &ledger, customer, &family),
        Route::Create => create(shared, &mut ledger, customer, &family),
        Route::Status(None) => Answer::error(400, 400, "The upgrade id is not a GUID."),
        Route::Status(Some(upgrade)) => status(shared, &mut ledger, customer, upgrade),
    };
    if let Some(key) = key
        && !ledger.answers.contains_key(&key)
    {
        ledger
            .answers
            .insert(key.clone(), (path.to_owned(), body, answer.clone()));
        ledger.answer_order.push_back(key);
        if ledger.answer_order.len() > MAX_REMEMBERED
            && let Some(oldest) = ledger.answer_order.pop_front()
        {
            ledger.answers.remove(&oldest);
        }
    }
    answer
}

/// Checks the request headers the spec declares against their schemas.
fn header_problem(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    for name in ["ms-requestid", "ms-correlationid"] {
        let valid = headers.get(name).is_none_or(|v| {
            v.to_str()
                .ok()
                .and_then(|v| Uuid::try_parse(v).ok())
                .is_some()
        });
        if !valid {
            return Some(format!("The {name} header is not a GUID."));
        }
    }
    for (name, validator) in [
        ("x-locale", &shared.validators.locale),
        (
            "ms-partnercenter-application",
            &shared.validators.application,
        ),
    ] {
        if let Some(value) = headers.get(name) {
            let valid = value
                .to_str()
                .is_ok_and(|v| validator.is_valid(&Value::String(v.to_owned())));
            if !valid {
                return Some(format!("The {name} header is not valid."));
            }
        }
    }
    None
}

fn parse_body(shared: &Shared, body: &[u8]) -> Result<(Uuid, String, Value), Answer> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Answer::error(400, 400, "The request body is not JSON."))?;
    if let Some(error) = shared.validators.body.iter_errors(&value).next() {
        let path = error.instance_path().to_string();
        let code = if path.contains("customerId") {
            900118
        } else {
            400
        };
        return Err(Answer::error(
            400,
            code,
            format!("The request body is invalid at '{path}': {error}"),
        ));
    }
    let customer = Uuid::try_parse(value["customerId"].as_str().unwrap_or_default())
        .map_err(|_| Answer::error(400, 900118, "The customer id is not valid."))?;
    let family = value["productFamily"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((customer, family, value))
}

/// Only `Azure` (any casing) is offered. The spec keeps product families an open set, so another
/// family is a valid request that gets a business answer: not eligible, and create refused.
fn offered(family: &str) -> bool {
    family.eq_ignore_ascii_case("azure")
}

fn eligibility(shared: &Shared, ledger: &Ledger, customer: Uuid, family: &str) -> Answer {
    let mut body = json!({ "customerId": customer, "productFamily": family, "isEligible": true });
    let wrong_type = shared.config.breakage == Some(Breakage::WrongType);
    if !offered(family) {
        body["isEligible"] = json!(false);
        body["reason"] = json!(format!("No upgrade to product family {family} is offered."));
    } else if customer.to_string() == NO_AZURE_CUSTOMER {
        body["isEligible"] = json!(false);
        body["reason"] = json!("The customer has no Microsoft Azure (MS-AZR-0145P) subscription.");
    } else if let Some(upgrade) = ledger
        .latest
        .get(&customer)
        .and_then(|id| ledger.upgrades.get(id))
    {
        body["upgradeId"] = json!(upgrade.id);
        let done = upgrade.finished(shared.config.polls_to_complete);
        match (done, upgrade.fails) {
            (false, _) => {
                body["isEligible"] = json!(false);
                body["reason"] = json!(format!("Upgrade {} is in progress.", upgrade.id));
            }
            (true, false) => {
                body["isEligible"] = json!(false);
                body["reason"] = json!("The customer has already been upgraded to an Azure plan.");
            }
            (true, true) => {
                body["reason"] = json!(format!("Upgrade {} failed; it can be retried.", upgrade.id))
            }
        }
    }
    if shared.config.breakage == Some(Breakage::MissingField)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("isEligible");
    }
    if wrong_type {
        body["isEligible"] = json!(body["isEligible"].to_string());
    }
    Answer::json(200, body)
}

fn create(shared: &Shared, ledger: &mut Ledger, customer: Uuid, family: &str) -> Answer {
    if !offered(family) {
        return Answer::error(
            403,
            900120,
            format!("No upgrade to product family {family} is offered."),
        );
    }
    if customer.to_string() == NO_AZURE_CUSTOMER {
        return Answer::error(
            403,
            900108,
            "The customer has no Azure subscriptions to upgrade.",
        );
    }
    let duplicates_allowed = shared.config.breakage == Some(Breakage::DuplicateOnReplay);
    if let (Some(upgrade), false) = (
        ledger
            .latest
            .get(&customer)
            .and_then(|id| ledger.upgrades.get(id)),
        duplicates_allowed,
    ) {
        match (
            upgrade.finished(shared.config.polls_to_complete),
            upgrade.fails,
        ) {
            (false, _) => {
                let mut answer = Answer::error(
                    409,
                    900109,
                    format!("The original upgrade {} is in progress.", upgrade.id),
                );
                if let Some(body) = answer.body.as_mut() {
                    body["data"] = json!([upgrade.id]);
                }
                return answer;
            }
            (true, false) => {
                return Answer::error(
                    400,
                    900110,
                    format!("The customer has already completed upgrade {}.", upgrade.id),
                );
            }
            (true, true) => {}
        }
    }
    let id = Uuid::new_v4();
    ledger.upgrades.insert(
        id,
        UpgradeRecord {
            id,
            customer,
            family: family.to_owned(),
            polls: 0,
            fails: customer.to_string() == FAILING_CUSTOMER,
            created: chrono::Utc::now(),
        },
    );
    ledger.latest.insert(customer, id);
    ledger.upgrades_created += 1;
    let mut answer = Answer {
        status: if shared.config.breakage == Some(Breakage::WrongStatus) {
            201
        } else {
            202
        },
        headers: Vec::new(),
        body: None,
    };
    if shared.config.breakage != Some(Breakage::MissingLocation) {
        answer
            .headers
            .push(("location", format!("productUpgrades/{id}")));
    }
    answer
}

fn status(shared: &Shared, ledger: &mut Ledger, customer: Uuid, upgrade_id: Uuid) -> Answer {
    let polls_to_complete = shared.config.polls_to_complete;
    let Some(upgrade) = ledger.upgrades.get_mut(&upgrade_id) else {
        return Answer::error(
            404,
            900106,
            format!("No upgrade request {upgrade_id} was found."),
        );
    };
    if upgrade.customer != customer {
        return Answer::error(
            400,
            900111,
            format!("The upgrade id {upgrade_id} does not belong to customer {customer}."),
        );
    }
    upgrade.polls = upgrade.polls.saturating_add(1);
    let (status, finished) = match (upgrade.finished(polls_to_complete), upgrade.fails) {
        (false, _) => ("InProgress", false),
        (true, false) => ("Completed", true),
        (true, true) => ("Failed", true),
    };
    let subscription = Uuid::from_u128(upgrade.customer.as_u128() ^ 0x5eed);
    let mut line = json!({
        "sourceProduct": { "id": subscription, "name": "AzureSubscription" },
        "targetProduct": { "id": "d231908e-31c1-de0e-027b-bc5ce11f09d9", "name": "Microsoft Azure plan" },
        "status": status,
    });
    let mut body = json!({
        "id": upgrade.id,
        "status": status,
        "productFamily": upgrade.family,
        "lineItems": [],
    });
    if finished && !upgrade.fails {
        line["upgradedDate"] = json!(partner_center_timestamp(upgrade.created));
    }
    if upgrade.fails && finished {
        let details =
            json!({ "code": "900120", "description": "The Azure upgrade could not be processed." });
        line["errorDetails"] = details.clone();
        body["errorDetails"] = details;
    }
    if shared.config.breakage == Some(Breakage::MalformedDate) {
        line["upgradedDate"] = json!("yesterday");
    }
    body["lineItems"] = json!([line]);
    if shared.config.breakage == Some(Breakage::MissingField)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("status");
    }
    Answer::json(200, body)
}

/// A UTC timestamp with 7 fractional digits (.NET ticks), as Partner Center writes them:
/// `2019-08-29T23:47:28.8524555Z`. chrono's format strings stop at 3, 6 or 9 digits.
fn partner_center_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike;
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100
    )
}

fn render(
    answer: Answer,
    (request_id, correlation_id): &(Option<String>, Option<String>),
) -> Response<Full<Bytes>> {
    let body = answer
        .body
        .as_ref()
        .map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON values serialize")))
        .unwrap_or_default();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if answer.body.is_some() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    for (name, value) in &answer.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    let id = |sent: &Option<String>| {
        sent.as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| {
                HeaderValue::from_str(&Uuid::new_v4().to_string())
                    .expect("a GUID is a header value")
            })
    };
    headers.insert("ms-requestid", id(request_id));
    headers.insert("ms-correlationid", id(correlation_id));
    headers.insert("ms-cv", HeaderValue::from_static("mockCv00000000000.0"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ignore_case_and_a_trailing_slash() {
        assert_eq!(route("/v1/productUpgrades"), Some(Route::Create));
        assert_eq!(route("/V1/PRODUCTUPGRADES/"), Some(Route::Create));
        assert_eq!(
            route("/v1/productupgrades/eligibility"),
            Some(Route::Eligibility)
        );
        let id = Uuid::new_v4();
        assert_eq!(
            route(&format!("/v1/productUpgrades/{id}/status")),
            Some(Route::Status(Some(id)))
        );
        assert_eq!(
            route("/v1/productUpgrades/nope/status"),
            Some(Route::Status(None))
        );
        assert_eq!(route("/v1/productUpgrades/berechtigung"), None);
        assert_eq!(route("/"), None);
    }

    #[test]
    fn timestamps_have_seven_fractional_digits() {
        use chrono::TimeZone;
        let at = chrono::Utc
            .timestamp_opt(1_567_122_448, 852_455_500)
            .unwrap();
        assert_eq!(partner_center_timestamp(at), "2019-08-29T23:47:28.8524555Z");
    }

    #[test]
    fn breakages_parse_from_their_names() {
        assert_eq!("missing-location".parse(), Ok(Breakage::MissingLocation));
        assert_eq!("malformed-date".parse(), Ok(Breakage::MalformedDate));
        assert_eq!("wrong-type".parse(), Ok(Breakage::WrongType));
        assert!(
            "teapot"
                .parse::<Breakage>()
                .unwrap_err()
                .contains("missing-field")
        );
    }
}
