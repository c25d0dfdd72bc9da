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
//!
//! Its default token is public, so any local process can reach it; what it holds is bounded
//! ([`MockConfig`] has the limits): request bodies (larger ones answer 413), the replay cache (in
//! bytes: it keeps each answer and a hash of its request, never the request), the upgrades it
//! remembers (the oldest finished ones are forgotten; when every one is still in progress, create
//! answers 503), connections open at once (extra ones are closed at once), and how long a
//! connection may take to send headers or a body, or stay open. `accept` errors (out of file
//! descriptors) back off from 10 ms to 1 s instead of spinning.

#![deny(missing_docs)]

pub mod faults;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
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
    /// The largest request body read, in bytes; a larger one answers 413 with the error body
    /// (after reading and discarding up to [`DRAIN_LIMIT`] bytes of it, so the client sees the
    /// answer rather than a reset).
    pub max_body_bytes: usize,
    /// The replay cache's budget, in bytes: past it the oldest remembered answers are forgotten
    /// (a replay of a forgotten `MS-RequestId` is answered as a new request).
    pub replay_budget_bytes: usize,
    /// The most upgrades remembered. Past it, creating one forgets the oldest finished
    /// (`Completed` or `Failed`) upgrade, whose customer is then eligible again and whose status
    /// answers 404; when every one is still in progress, create answers 503.
    pub max_upgrades: usize,
    /// The most connections open at once; a connection beyond it is closed as soon as accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers; also how long a kept-alive
    /// connection may stay idle.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body; a slower one answers 408.
    pub body_read_timeout: Duration,
    /// The longest a connection stays open: after it, the answer under way is finished and the
    /// connection closed.
    pub connection_timeout: Duration,
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
            max_body_bytes: 64 * 1024,
            replay_budget_bytes: 32 << 20,
            max_upgrades: 100_000,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(20),
            connection_timeout: Duration::from_secs(600),
        }
    }
}

/// How much of an oversized request body is read and thrown away before the 413 is sent.
pub const DRAIN_LIMIT: usize = 4 << 20;
/// hyper's per-connection read buffer, and the most header bytes a request may send.
const MAX_BUF_BYTES: usize = 64 * 1024;
const MAX_HEADER_BYTES: usize = 32 * 1024;

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

    /// What keeping it costs: the record, its map slots (`upgrades`, `latest`) and its place in
    /// the creation and finishing queues. An estimate; allocator slack is not counted.
    fn retained_bytes(&self) -> usize {
        std::mem::size_of::<UpgradeRecord>()
            + self.family.len()
            + 3 * std::mem::size_of::<Uuid>()
            + 2 * std::mem::size_of::<Uuid>()
            + 32
    }
}

/// An answer as it is decided.
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

    /// The answer as it is sent and remembered: the body serialised once.
    fn freeze(self) -> Stored {
        Stored {
            status: self.status,
            headers: self.headers,
            body: self
                .body
                .map(|b| Bytes::from(serde_json::to_vec(&b).expect("JSON values serialize"))),
        }
    }
}

/// An answer ready to send; kept so a replayed `MS-RequestId` gets it again.
#[derive(Debug, Clone)]
struct Stored {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Bytes>,
}

impl Stored {
    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Remembered answers are capped in number too, whatever their size.
const MAX_REMEMBERED: usize = 200_000;

/// What a replay needs: the answer, and a fingerprint of the request it answered (path and
/// parsed body), never the request itself.
#[derive(Debug)]
struct Remembered {
    request: Fingerprint,
    answer: Stored,
    bytes: usize,
}

/// A keyed 128-bit hash of a request's path and canonical body, and the body's length. The keys
/// are random per mock, so a client cannot make two requests collide on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64, usize);

type ReplayKey = (&'static str, String);

#[derive(Default)]
struct Ledger {
    upgrades: HashMap<Uuid, UpgradeRecord>,
    /// The customer's latest upgrade.
    latest: HashMap<Uuid, Uuid>,
    /// Upgrade ids in the order they finished, oldest first: the ones forgotten first when
    /// [`MockConfig::max_upgrades`] is reached. Ids already forgotten are skipped.
    finished_order: VecDeque<Uuid>,
    /// Estimated bytes held by `upgrades`, `latest` and the queues.
    upgrade_bytes: usize,
    /// (operation, MS-RequestId) → the answer and a fingerprint of the request.
    answers: HashMap<ReplayKey, Remembered>,
    answer_order: VecDeque<ReplayKey>,
    /// Estimated bytes held by `answers` and `answer_order`.
    answer_bytes: usize,
    scripted: VecDeque<Fault>,
    requests: u64,
    upgrades_created: u64,
}

impl Ledger {
    /// Remembers `answer` for `key` unless something is remembered already, then forgets the
    /// oldest answers until the cache is within `budget` bytes and [`MAX_REMEMBERED`] entries.
    fn remember(&mut self, key: ReplayKey, request: Fingerprint, answer: Stored, budget: usize) {
        if self.answers.contains_key(&key) {
            return;
        }
        let bytes = std::mem::size_of::<ReplayKey>() * 2
            + std::mem::size_of::<Remembered>()
            + key.1.len()
            + answer.body.as_ref().map_or(0, Bytes::len)
            + answer
                .headers
                .iter()
                .map(|(name, value)| {
                    std::mem::size_of::<(&str, String)>() + name.len() + value.len()
                })
                .sum::<usize>()
            + 16;
        self.answer_bytes += bytes;
        self.answers.insert(
            key.clone(),
            Remembered {
                request,
                answer,
                bytes,
            },
        );
        self.answer_order.push_back(key);
        while self.answer_bytes > budget || self.answer_order.len() > MAX_REMEMBERED {
            let Some(oldest) = self.answer_order.pop_front() else {
                break;
            };
            if let Some(forgotten) = self.answers.remove(&oldest) {
                self.answer_bytes -= forgotten.bytes;
            }
        }
    }

    /// Makes room for one more upgrade: forgets the oldest finished one when `max` are held.
    /// False when all `max` are still in progress.
    fn make_room(&mut self, max: usize) -> bool {
        while self.upgrades.len() >= max.max(1) {
            let Some(oldest) = self.finished_order.pop_front() else {
                return false;
            };
            if let Some(forgotten) = self.upgrades.remove(&oldest) {
                self.upgrade_bytes -= forgotten.retained_bytes();
                if self.latest.get(&forgotten.customer) == Some(&oldest) {
                    self.latest.remove(&forgotten.customer);
                }
            }
        }
        true
    }
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
    /// Keys of the request fingerprints.
    hash_keys: (RandomState, RandomState),
    /// Connections being served.
    open: AtomicUsize,
}

impl Shared {
    fn fingerprint(&self, path: &str, body: &Value) -> Fingerprint {
        let canonical = serde_json::to_vec(body).expect("JSON values serialize");
        let request = (path, canonical.as_slice());
        Fingerprint(
            self.hash_keys.0.hash_one(request),
            self.hash_keys.1.hash_one(request),
            canonical.len(),
        )
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
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

    /// The mock's own estimate of the bytes its state holds: remembered answers (the replay
    /// cache) and upgrades. Not the process's memory: requests being read (at most
    /// [`MockConfig::max_body_bytes`] each, one per open connection) and allocator slack are not
    /// counted.
    pub fn retained_bytes(&self) -> usize {
        let ledger = self.ledger();
        ledger.answer_bytes + ledger.upgrade_bytes
    }

    /// The part of [`RunningMock::retained_bytes`] held by remembered answers (at most
    /// [`MockConfig::replay_budget_bytes`]).
    pub fn replay_bytes(&self) -> usize {
        self.ledger().answer_bytes
    }

    /// How many upgrades the mock remembers now (at most [`MockConfig::max_upgrades`]).
    pub fn upgrades_held(&self) -> usize {
        self.ledger().upgrades.len()
    }

    /// How many connections are open now (at most [`MockConfig::max_connections`]).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
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
        hash_keys: (RandomState::new(), RandomState::new()),
        open: AtomicUsize::new(0),
    });
    let (stop, stopped) = oneshot::channel();
    let serving = Arc::clone(&shared);
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let listener = Arc::new(listener);
    tokio::spawn(accept_loop(
        move || {
            let listener = Arc::clone(&listener);
            async move { listener.accept().await.map(|(stream, _)| stream) }
        },
        stopped,
        move |stream: TcpStream| {
            // Beyond the cap, the connection is closed at once (dropped unanswered).
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                return;
            };
            let open = OpenConnection::new(&serving);
            let shared = Arc::clone(&serving);
            tokio::spawn(async move {
                serve_connection(shared, stream).await;
                drop((open, slot));
            });
        },
    ));
    Ok(RunningMock {
        addr,
        shared,
        stop: Some(stop),
    })
}

/// The first wait after an `accept` error, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// The wait after an `accept` error, given the wait after the previous one (`None` when the
/// last accept succeeded): 10 ms, doubling to 1 s.
fn accept_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(ACCEPT_BACKOFF.0, |p| (p * 2).min(ACCEPT_BACKOFF.1))
}

/// Accepts connections until `stopped`, handing each to `serve`. An `accept` error (the process
/// is out of file descriptors, say) is not retried at once, which would spin: the loop waits,
/// longer after each error in a row ([`accept_backoff`]).
async fn accept_loop<S, Fut>(
    mut accept: impl FnMut() -> Fut,
    mut stopped: oneshot::Receiver<()>,
    mut serve: impl FnMut(S),
) where
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut backoff = None;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = accept() => match accepted {
                Ok(stream) => {
                    backoff = None;
                    serve(stream);
                }
                Err(_) => {
                    let wait = accept_backoff(backoff);
                    backoff = Some(wait);
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

/// Serves one connection: headers within [`MockConfig::header_read_timeout`] (also the idle
/// limit between requests), at most [`MockConfig::connection_timeout`] in all.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let config = &shared.config;
    let (header_timeout, lifetime) = (config.header_read_timeout, config.connection_timeout);
    let handler = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&handler);
        async move { handle(&shared, request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_BUF_BYTES)
        .max_header_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // An error here is a dropped connection: injected, timed out, or the client's.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tokio::time::sleep(lifetime) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(header_timeout, connection).await;
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
            return Ok(render(answer.freeze(), &sent_ids));
        }
        Some(Fault::ServerError(502)) => {
            return Ok(render(
                Answer {
                    status: 502,
                    headers: Vec::new(),
                    body: None,
                }
                .freeze(),
                &sent_ids,
            ));
        }
        Some(Fault::ServerError(status)) => {
            return Ok(render(
                Answer::error(
                    status,
                    i64::from(status),
                    "The service is temporarily unavailable.",
                )
                .freeze(),
                &sent_ids,
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropAfter) | None => {}
    }
    let limit = shared.config.max_body_bytes;
    let read = tokio::time::timeout(
        shared.config.body_read_timeout,
        read_body(body, &parts.headers, limit),
    )
    .await;
    let body = match read {
        Ok(Ok(body)) => body,
        refused => {
            let answer = match refused {
                Ok(Err(BodyError::TooLarge)) => Answer::error(
                    413,
                    413,
                    format!("The request body is larger than {limit} bytes."),
                ),
                Err(_) => Answer::error(408, 408, "The request body did not arrive in time."),
                _ => Answer::error(400, 400, "The request body could not be read."),
            };
            // The rest of the body is not read: the connection cannot be reused.
            let answer = answer.freeze().with_header("connection", "close");
            return Ok(render(answer, &sent_ids));
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

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection failed, or the framing was invalid.
    Unreadable,
}

/// Reads a body of at most `limit` bytes. A longer one is read on and thrown away, up to
/// [`DRAIN_LIMIT`] bytes in all, so that the client, still sending, gets the 413 instead of a
/// reset; memory stays within `limit` plus one frame.
async fn read_body(
    mut body: impl hyper::body::Body<Data = Bytes> + Unpin,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared =
        header_text(headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(BodyError::Unreadable);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else {
            kept = Vec::new();
            if seen > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
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
) -> Stored {
    decide(shared, method, path, headers, body).unwrap_or_else(Answer::freeze)
}

/// The answer to a request that reached the API: `Ok` for one of the operations' own answers
/// (remembered for a replay), `Err` for a refusal before any (not remembered).
fn decide(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Stored, Answer> {
    let Some(route) = route(path) else {
        return Err(Answer::error(404, 404, format!("No resource at {path}.")));
    };
    if method != Method::POST {
        let mut answer =
            Answer::error(405, 405, format!("{method} is not allowed here; use POST."));
        answer.headers.push(("allow", "POST".into()));
        return Err(answer);
    }
    let expected = format!("Bearer {}", shared.config.token);
    let given = headers
        .get("authorization")
        .map_or(&[][..], HeaderValue::as_bytes);
    if !same_secret(given, expected.as_bytes()) {
        let mut answer = Answer::error(401, 401, "The access token is missing or not valid.");
        answer.headers.push((
            "www-authenticate",
            "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000".into(),
        ));
        return Err(answer);
    }
    if !shared.config.lenient
        && let Some(problem) = header_problem(shared, headers)
    {
        return Err(Answer::error(400, 400, problem));
    }
    let request_id = sent_id(headers, "ms-requestid", shared.config.lenient);
    let op = match route {
        Route::Eligibility => "eligibility",
        Route::Create => "create",
        Route::Status(_) => "status",
    };
    let (customer, family, body) = parse_body(shared, body)?;
    let idempotent = shared.config.breakage != Some(Breakage::DuplicateOnReplay);
    let fingerprint = shared.fingerprint(path, &body);
    drop(body);
    let mut ledger = shared.ledger.lock().unwrap_or_else(|e| e.into_inner());
    // A repeated MS-RequestId gets the first answer, but only for the same request: another
    // request under a reused id is a different call and is answered on its own.
    let key = request_id.map(|id| (op, id));
    if let (Some(key), true) = (&key, idempotent)
        && let Some(first) = ledger.answers.get(key)
        && first.request == fingerprint
    {
        return Ok(first.answer.clone());
    }
    let answer = match route {
        Route::Eligibility => eligibility(shared, &ledger, customer, &family),
        Route::Create => create(shared, &mut ledger, customer, &family),
        Route::Status(None) => Answer::error(400, 400, "The upgrade id is not a GUID."),
        Route::Status(Some(upgrade)) => status(shared, &mut ledger, customer, upgrade),
    }
    .freeze();
    // A 5xx (the mock is full) is not remembered: a retry with the same id may succeed.
    if let Some(key) = key
        && answer.status < 500
    {
        let budget = shared.config.replay_budget_bytes;
        ledger.remember(key, fingerprint, answer.clone(), budget);
    }
    Ok(answer)
}

/// Whether a secret sent by a client equals the expected one, in time that depends only on the
/// expected secret's length (not on where the first difference is).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(difference) == 0
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
    if !ledger.make_room(shared.config.max_upgrades) {
        let mut answer = Answer::error(
            503,
            503,
            format!(
                "The mock holds {} upgrades, all in progress; poll some to the end or restart it.",
                ledger.upgrades.len()
            ),
        );
        answer.headers.push(("retry-after", "1".into()));
        return answer;
    }
    let id = Uuid::new_v4();
    let record = UpgradeRecord {
        id,
        customer,
        family: family.to_owned(),
        polls: 0,
        fails: customer.to_string() == FAILING_CUSTOMER,
        created: chrono::Utc::now(),
    };
    ledger.upgrade_bytes += record.retained_bytes();
    ledger.upgrades.insert(id, record);
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
    let was_finished = upgrade.finished(polls_to_complete);
    upgrade.polls = upgrade.polls.saturating_add(1);
    let just_finished = !was_finished && upgrade.finished(polls_to_complete);
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
    if just_finished {
        ledger.finished_order.push_back(upgrade_id);
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
    answer: Stored,
    (request_id, correlation_id): &(Option<String>, Option<String>),
) -> Response<Full<Bytes>> {
    let body = answer.body.clone().unwrap_or_default();
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
    fn secrets_compare_equal_only_when_every_byte_and_the_length_match() {
        assert!(same_secret(b"Bearer token", b"Bearer token"));
        assert!(!same_secret(b"Bearer tokem", b"Bearer token"));
        assert!(!same_secret(b"Bearer toke", b"Bearer token"));
        assert!(!same_secret(b"Bearer token!", b"Bearer token"));
        assert!(!same_secret(b"", b"Bearer token"));
        // A shorter secret padded with what `get` fills in is still a different secret.
        assert!(!same_secret(b"ab", b"ab\0"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn accept_errors_back_off_from_10_ms_doubling_to_1_s() {
        let mut waits = Vec::new();
        let mut last = None;
        for _ in 0..10 {
            let wait = accept_backoff(last);
            waits.push(wait.as_millis());
            last = Some(wait);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[tokio::test]
    async fn a_failing_accept_does_not_spin() {
        use std::sync::atomic::AtomicU64;
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let (stop, stopped) = oneshot::channel();
        let looping = tokio::spawn(accept_loop(
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                // A real listener yields to the runtime between errors; so does this one.
                async {
                    tokio::task::yield_now().await;
                    Err::<(), _>(std::io::Error::other("too many open files"))
                }
            },
            stopped,
            |()| {},
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop.send(());
        looping.await.unwrap();
        // 10 + 20 + 40 + 80 + 160 ms: about 6 attempts in 500 ms. A loop that retries at once
        // makes hundreds of thousands.
        let calls = calls.load(Ordering::SeqCst);
        assert!((1..=20).contains(&calls), "{calls} accept calls in 500 ms");
    }

    fn stored(body_bytes: usize) -> Stored {
        Stored {
            status: 200,
            headers: vec![("location", "productUpgrades/x".into())],
            body: Some(Bytes::from(vec![b'x'; body_bytes])),
        }
    }

    #[test]
    fn the_replay_cache_stays_within_its_byte_budget_and_forgets_the_oldest() {
        let mut ledger = Ledger::default();
        let budget = 64 * 1024;
        for i in 0..1000u64 {
            let key = ("create", format!("request-{i}"));
            ledger.remember(key, Fingerprint(i, i, 10), stored(1000), budget);
            assert!(ledger.answer_bytes <= budget, "{}", ledger.answer_bytes);
        }
        assert!(ledger.answers.len() > 10, "{}", ledger.answers.len());
        assert!(
            ledger
                .answers
                .contains_key(&("create", "request-999".to_owned()))
        );
        assert!(
            !ledger
                .answers
                .contains_key(&("create", "request-0".to_owned()))
        );
        let counted: usize = ledger.answers.values().map(|r| r.bytes).sum();
        assert_eq!(counted, ledger.answer_bytes);
        // Each entry counts at least what it holds.
        assert!(ledger.answers.values().all(|r| r.bytes > 1000));
    }

    #[test]
    fn the_oldest_finished_upgrade_makes_room_and_in_progress_ones_never_do() {
        let mut ledger = Ledger::default();
        let record = |n: u128, polls| UpgradeRecord {
            id: Uuid::from_u128(n),
            customer: Uuid::from_u128(1000 + n),
            family: "Azure".into(),
            polls,
            fails: false,
            created: chrono::Utc::now(),
        };
        for n in 0..3 {
            let upgrade = record(n, 0);
            ledger.upgrade_bytes += upgrade.retained_bytes();
            ledger.latest.insert(upgrade.customer, upgrade.id);
            ledger.upgrades.insert(upgrade.id, upgrade);
        }
        assert!(!ledger.make_room(3), "all three are in progress");
        assert!(ledger.make_room(4));
        ledger.finished_order.push_back(Uuid::from_u128(1));
        assert!(ledger.make_room(3));
        assert_eq!(ledger.upgrades.len(), 2);
        assert!(!ledger.upgrades.contains_key(&Uuid::from_u128(1)));
        assert!(!ledger.latest.contains_key(&Uuid::from_u128(1001)));
        assert_eq!(ledger.upgrade_bytes, 2 * record(0, 0).retained_bytes());
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
