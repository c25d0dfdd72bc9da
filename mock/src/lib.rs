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
//! Its operations, paths and methods, and the schemas requests are validated with, are read from
//! the compiled-in spec ([`partner_center_contract::operations`]); what each operation does is
//! the mock's own.
//!
//! Its default token is public, so any local process can reach it; what it holds is bounded
//! ([`MockConfig`] has the limits): request bodies (larger ones answer 413), the replay cache (in
//! bytes: it keeps each answer and a hash of its request, never the request), the upgrades it
//! remembers (the oldest finished ones are forgotten; when every one is still in progress, create
//! answers 503), connections open at once (extra ones are closed at once), and how long a
//! connection may take to send headers or a body, or stay open. `accept` errors (out of file
//! descriptors) back off from 10 ms to 1 s instead of spinning.
//!
//! It is also the sign-in service of its tenant ([`MockConfig::tenant`]): the v1 and v2 token
//! endpoints and the device-code sign-in, issuing access tokens (JSON Web Tokens) that live
//! [`MockConfig::access_token_lifetime`] and rotating refresh tokens. The API accepts the static
//! token and, while they are unexpired, the access tokens it issued; an expired one answers 401
//! saying so, and [`MockConfig::require_mfa`] refuses a sign-in without multi-factor
//! authentication (401, `900421`). [`RunningMock::sign_in_counts`] says what it saw.
//!
//! At the scale of a real customer book: a [`Scenario`] ([`MockConfig::scenario`]) sets outcomes
//! per customer — `notEligible` (a reason, or a refusal with a Partner Center error and status),
//! `underWay` (an upgrade that exists from the start), `failsAtPoll` and `slow` — and every
//! answer it makes the mock send is built and validated against the spec's schema for its
//! operation and status at start, so a scenario the spec would reject is refused, naming the
//! customer and the field. A throttle ([`MockConfig::throttle`], a token bucket for the mock's
//! one partner) answers API calls beyond its rate with 429, `Retry-After` and Partner Center's
//! throttling body, before faults are drawn. [`RunningMock::ledger`] counts, per customer, the
//! upgrades clients created (for good: a forgotten upgrade stays counted; at most
//! [`MAX_LEDGER_CUSTOMERS`] customers) and the preexisting ones, with the latest upgrade and its
//! status; [`RunningMock::traffic`] counts requests, throttled ones and faults per second (the
//! last [`TRAFFIC_WINDOW_SECONDS`]) and since start. Both are served as JSON at
//! `GET /_mock/ledger` and `GET /_mock/traffic` with the API's token, outside the API: no
//! throttle, no faults, not counted. Ten thousand upgrades in progress and ten thousand finished
//! fit within the default limits: about 14 MB of [`RunningMock::retained_bytes`], of which 9 MB
//! are remembered answers (bounded by [`MockConfig::replay_budget_bytes`]) and under 300 bytes
//! an upgrade with its customer's counts.
//!
//! One job per module: `server` accepts connections within their limits and timeouts, throttles
//! and injects faults, `routing` finds the spec's operation for a request and validates it,
//! `ledger` keeps the upgrades, the per-customer counts and the replay cache and decides each
//! operation's answer, `scenario` reads scenarios and checks their answers against the spec,
//! `traffic` is the token bucket and the counts, `admin` serves the mock's own pages, `identity`
//! is the sign-in service.

#![deny(missing_docs)]

mod admin;
pub mod faults;
mod identity;
mod ledger;
mod routing;
mod scenario;
mod server;
mod traffic;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use faults::{Fault, FaultRates};
pub use identity::{
    MAX_DEVICE_CODES, MAX_RECENT_SECRETS, MAX_REFRESH_TOKENS, PARTNER_CENTER_RESOURCE, SignInCounts,
};
pub use ledger::{CustomerLedger, LedgerReport, LedgerTotals, MAX_LEDGER_CUSTOMERS};
pub use scenario::{
    MAX_SCENARIO_BYTES, MAX_SCENARIO_CUSTOMERS, MAX_SCENARIO_DELAY, MAX_SCENARIO_POLLS, Outcome,
    Scenario, ScenarioError,
};
pub use traffic::{TRAFFIC_WINDOW_SECONDS, ThrottleConfig, Traffic, TrafficCounts, TrafficSecond};

use identity::{Identity, Signer};
use ledger::{Fingerprint, Ledger};
use routing::Routes;
use scenario::Plans;
use traffic::Meter;

/// The token the mock accepts unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "mock-partner-center-token";
/// The tenant whose sign-in service the mock is, unless configured otherwise.
pub const DEFAULT_TENANT: &str = "mock-tenant";
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
    /// How long a new upgrade stays invisible to eligibility and to create's conflict check:
    /// Partner Center is a distributed service, and nothing promises that the create just
    /// made is seen by the next call at once. Then only the create's `MS-RequestId` (a replay
    /// gets the first answer) keeps a resumed client from making a second upgrade. Zero (the
    /// default) is a consistent view.
    pub eligibility_lag: Duration,
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
    /// The tenant whose sign-in service the mock is: its token endpoints are
    /// `/{tenant}/oauth2/token` (v1) and `/{tenant}/oauth2/v2.0/token` (v2); another tenant
    /// answers `AADSTS90002`.
    pub tenant: String,
    /// The app allowed to sign in; `None` accepts any non-empty client id.
    pub client_id: Option<String>,
    /// The client secret a refresh-token redemption must send (`AADSTS7000215` otherwise);
    /// `None` accepts any, or none.
    pub client_secret: Option<String>,
    /// How long the access tokens it issues live (`exp`, `expires_in`); zero issues tokens that
    /// have expired already.
    pub access_token_lifetime: Duration,
    /// Refuse access tokens whose sign-in had no multi-factor authentication (`amr` without
    /// `mfa`): 401 with Partner Center's code `900421`.
    pub require_mfa: bool,
    /// Whether device-code sign-ins are multi-factor (their tokens' `amr` has `mfa`).
    pub mfa_sign_in: bool,
    /// How many polls of a device code answer `authorization_pending` before the sign-in
    /// completes.
    pub pending_polls: u32,
    /// Whether one `slow_down` answer follows the pending ones (a client then waits 5 s more).
    pub slow_down: bool,
    /// Refresh tokens refused as expired or revoked (`invalid_grant`, `AADSTS700082`), as any
    /// token the mock did not issue is.
    pub revoked_refresh_tokens: Vec<String>,
    /// Outcomes set per customer; its answers are checked against the spec when the mock
    /// starts, and a scenario the spec would reject is refused ([`start`] fails with a
    /// [`ScenarioError`] naming the customer and the field).
    pub scenario: Option<Scenario>,
    /// A rate limit on API calls (not the sign-in service), checked before faults are drawn:
    /// beyond it, 429 with `Retry-After` and the throttling body.
    pub throttle: Option<ThrottleConfig>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            token: DEFAULT_TOKEN.into(),
            seed: 0,
            faults: FaultRates::default(),
            polls_to_complete: 2,
            eligibility_lag: Duration::ZERO,
            breakage: None,
            lenient: false,
            max_body_bytes: 64 * 1024,
            replay_budget_bytes: 32 << 20,
            max_upgrades: 100_000,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(20),
            connection_timeout: Duration::from_secs(600),
            tenant: DEFAULT_TENANT.into(),
            client_id: None,
            client_secret: None,
            access_token_lifetime: Duration::from_secs(3600),
            require_mfa: false,
            mfa_sign_in: true,
            pending_polls: 1,
            slow_down: false,
            revoked_refresh_tokens: Vec::new(),
            scenario: None,
            throttle: None,
        }
    }
}

/// How much of an oversized request body is read and thrown away before the 413 is sent.
pub const DRAIN_LIMIT: usize = 4 << 20;
/// What every connection shares: the configuration, the routes, the state and the fault dice.
struct Shared {
    config: MockConfig,
    routes: Routes,
    ledger: Mutex<Ledger>,
    rng: Mutex<ChaCha8Rng>,
    /// Keys of the request fingerprints.
    hash_keys: (RandomState, RandomState),
    /// Connections being served.
    open: AtomicUsize,
    /// The sign-in service's refresh tokens, device codes and counts.
    identity: Mutex<Identity>,
    /// Signs and verifies the access tokens it issues.
    signer: Signer,
    /// The scenario's customers, their answers built and checked at start.
    plans: Plans,
    /// The throttle's bucket and the traffic counts.
    meter: Mutex<Meter>,
    /// When the mock started: the throttle's clock (tokio's, so paused time drives it too).
    started: tokio::time::Instant,
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

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn identity(&self) -> std::sync::MutexGuard<'_, Identity> {
        self.identity.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(|e| e.into_inner())
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

    /// How many upgrades were created by clients since start (not the scenario's preexisting
    /// ones).
    pub fn upgrades_created(&self) -> u64 {
        self.state().upgrades_created
    }

    /// How many upgrades exist for `customer`.
    pub fn upgrades_of(&self, customer: Uuid) -> usize {
        self.state()
            .upgrades
            .values()
            .filter(|u| u.customer == customer)
            .count()
    }

    /// How many requests reached the mock (including throttled and faulted ones; not the
    /// `/_mock/` pages).
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    /// What the mock did for each customer: upgrades created by clients (counted for good, even
    /// once an upgrade is forgotten), preexisting ones, and the latest upgrade and its status;
    /// also served as JSON at `GET /_mock/ledger` ([`LedgerReport::to_json`]).
    pub fn ledger(&self) -> LedgerReport {
        self.state().report()
    }

    /// What requests got, per second over the last [`TRAFFIC_WINDOW_SECONDS`] and since start;
    /// also served as JSON at `GET /_mock/traffic` ([`Traffic::to_json`]).
    pub fn traffic(&self) -> Traffic {
        self.shared.meter().snapshot()
    }

    /// The mock's own estimate of the bytes its state holds: remembered answers (the replay
    /// cache), upgrades and the per-customer counts of [`RunningMock::ledger`]. Not the
    /// process's memory: requests being read (at most [`MockConfig::max_body_bytes`] each, one
    /// per open connection), the scenario (fixed at start), the traffic ring (at most
    /// [`TRAFFIC_WINDOW_SECONDS`] entries of 48 bytes) and allocator slack are not counted.
    pub fn retained_bytes(&self) -> usize {
        let ledger = self.state();
        ledger.answer_bytes + ledger.upgrade_bytes + ledger.customer_bytes
    }

    /// The part of [`RunningMock::retained_bytes`] held by remembered answers (at most
    /// [`MockConfig::replay_budget_bytes`]).
    pub fn replay_bytes(&self) -> usize {
        self.state().answer_bytes
    }

    /// How many upgrades the mock remembers now (at most [`MockConfig::max_upgrades`]).
    pub fn upgrades_held(&self) -> usize {
        self.state().upgrades.len()
    }

    /// How many connections are open now (at most [`MockConfig::max_connections`]).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The tenant whose sign-in service it is.
    pub fn tenant(&self) -> &str {
        &self.shared.config.tenant
    }

    /// The v1 token endpoint, e.g. `http://127.0.0.1:43123/mock-tenant/oauth2/token`.
    pub fn token_endpoint_v1(&self) -> String {
        format!("{}/{}/oauth2/token", self.url(), self.tenant())
    }

    /// The v2 token endpoint, e.g. `http://127.0.0.1:43123/mock-tenant/oauth2/v2.0/token`.
    pub fn token_endpoint_v2(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url(), self.tenant())
    }

    /// What the sign-in service has seen and done since start.
    pub fn sign_in_counts(&self) -> SignInCounts {
        self.shared.identity().counts
    }

    /// How many requests reached a token endpoint (v1 or v2, any grant, any answer).
    pub fn token_requests(&self) -> u64 {
        self.sign_in_counts().token_requests
    }

    /// How many API requests were made with an access token the mock issued after it expired.
    pub fn expired_token_requests(&self) -> u64 {
        self.sign_in_counts().expired_token_requests
    }

    /// The refresh token issued last (by a sign-in, a redemption or
    /// [`RunningMock::issue_refresh_token`]), if any.
    pub fn latest_refresh_token(&self) -> Option<String> {
        self.shared.identity().latest_refresh_token()
    }

    /// A refresh token as a sign-in gives one (multi-factor or not), without a device-code
    /// sign-in: for a client to start from.
    pub fn issue_refresh_token(&self, mfa: bool) -> String {
        self.shared.identity().new_refresh_token(mfa)
    }

    /// The secrets issued most recently (refresh tokens, access tokens and device codes, at
    /// most [`MAX_RECENT_SECRETS`], oldest first): what a client must never print or write
    /// anywhere but its credentials store.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.identity().recent_secrets()
    }

    /// Queues faults for the next requests, in order, ahead of random ones.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().scripted.extend(faults);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.shared.ledger()
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
///
/// Fails with [`std::io::ErrorKind::InvalidInput`] for a configuration that cannot run: a
/// scenario the spec would reject (the error's inner error is the [`ScenarioError`], naming the
/// customer and the field) or a throttle without a positive rate.
pub async fn start(config: MockConfig, addr: SocketAddr) -> std::io::Result<RunningMock> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let spec = partner_center_contract::embedded_spec();
    let routes = Routes::from_spec(&spec).map_err(std::io::Error::other)?;
    if let Some(problem) = config.throttle.as_ref().and_then(ThrottleConfig::problem) {
        return Err(invalid(problem));
    }
    let config = MockConfig {
        polls_to_complete: config.polls_to_complete.max(1),
        ..config
    };
    let plans = match &config.scenario {
        Some(scenario) => scenario::compile(scenario, &spec, &config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        None => Plans::default(),
    };
    drop(spec);
    let mut ledger = Ledger::default();
    // The scenario's upgrades under way exist before any client asks (compile made sure they
    // fit in max_upgrades).
    for customer in plans.under_way() {
        let record = ledger::new_record(&config, customer, "Azure", plans.get(customer));
        ledger.insert_upgrade(record, true);
    }
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
        meter: Mutex::new(Meter::new(config.throttle)),
        started: tokio::time::Instant::now(),
        config,
        routes,
        ledger: Mutex::new(ledger),
        hash_keys: (RandomState::new(), RandomState::new()),
        open: AtomicUsize::new(0),
        identity: Mutex::new(Identity::default()),
        signer: Signer::new(),
        plans,
    });
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped));
    Ok(RunningMock {
        addr,
        shared,
        stop: Some(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One POST of `customer`'s body to `path` on its own connection: the answer's status.
    async fn post(mock: &RunningMock, path: &str, customer: Uuid) -> u16 {
        let body = format!(r#"{{"customerId":"{customer}","productFamily":"Azure"}}"#);
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: mock\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            mock.token(),
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
    }

    /// In paused time the clock moves only when every task waits, and then straight to the next
    /// timer: the mock's waits. The mock's own timeouts are a day, so they never come first; the
    /// time the calls take is then the mock's waits, whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn scenario_delays_are_slept_before_each_answer() {
        let slow = Uuid::new_v4();
        let delay = Duration::from_secs(30);
        let day = Duration::from_secs(86_400);
        let mock = start(
            MockConfig {
                scenario: Some(Scenario::new().with(slow, Outcome::Slow { polls: None, delay })),
                header_read_timeout: day,
                body_read_timeout: day,
                connection_timeout: day,
                ..MockConfig::default()
            },
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();

        let started = tokio::time::Instant::now();
        let statuses = [
            post(&mock, "/v1/productUpgrades/eligibility", slow).await,
            post(&mock, "/v1/productUpgrades", slow).await,
            // Refused before any wait: the body names no upgrade of this customer.
            post(&mock, "/v1/productUpgrades/eligibility/extra", slow).await,
        ];
        let waited = started.elapsed();

        assert_eq!(statuses, [200, 202, 404]);
        assert!(waited >= 2 * delay, "{waited:?}: two answers of 30 s each");
        assert_eq!(mock.upgrades_created(), 1);
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
