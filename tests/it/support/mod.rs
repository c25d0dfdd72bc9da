//! Shared helpers: the spec, a client aimed at a mock server, and matchers for what the client
//! must send.

pub use partner_center_contract as spec;
pub mod hostile;
pub mod strategies;
pub mod traces;

use std::time::Duration;

use partner_center_upgrades::{
    BaseUrl, Client, CustomerId, PollOptions, RetryPolicy, StaticToken, UpgradeRequest,
};
use serde_json::Value;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate, matchers::any};

/// The token every test client sends. Tests assert it never shows up in messages.
pub const TOKEN: &str = "eyJ0ZXN0IjoidG9rZW4ifQ.c2VjcmV0LXRlc3QtdG9rZW4";
pub const CUSTOMER: &str = "4c721420-72ad-4708-a0a7-371a2f7b0969";
pub const UPGRADE: &str = "42d075a4-bfe7-43e7-af6d-7c68a57edcb4";
pub const LOCALE: &str = "en-US";
pub const APPLICATION: &str = "contract tests";

/// The one way tests build a client: `token`, `policy` and a request `timeout`, with the
/// contract's locale and application name.
pub fn client_with(base_url: &str, token: &str, policy: RetryPolicy, timeout: Duration) -> Client {
    Client::builder(
        BaseUrl::parse(base_url).expect("a loopback URL"),
        StaticToken::new(token).unwrap(),
    )
    .locale(LOCALE)
    .application(APPLICATION)
    .retry(policy)
    .timeout(timeout)
    .build()
    .expect("the client builds")
}

/// A client that does not retry: most tests look at one attempt at a time.
pub fn client_for(base_url: &str) -> Client {
    client_with(
        base_url,
        TOKEN,
        RetryPolicy::none(),
        Duration::from_secs(10),
    )
}

/// Fast retries: tests wait milliseconds, not seconds.
pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        deadline: Duration::from_secs(20),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        retry_after_floor: Duration::from_millis(10),
        retry_after_cap: Duration::from_secs(5),
    }
}

/// Quick polls for flows against the mock.
pub fn quick_polls() -> PollOptions {
    PollOptions {
        interval: Duration::from_millis(10),
        min_interval: Duration::from_millis(1),
        deadline: Duration::from_secs(10),
    }
}

/// A customer no other test uses.
pub fn new_customer() -> CustomerId {
    CustomerId::from_uuid(uuid::Uuid::new_v4())
}

/// The one proptest configuration: `PROPTEST_CASES` when set, else `default_cases`; failures
/// persist to the committed regression files.
pub fn proptest_config(default_cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default_cases),
        ..proptest::test_runner::Config::default()
    }
}

pub fn client(server: &MockServer) -> Client {
    client_for(&server.uri())
}

pub fn azure_request() -> UpgradeRequest {
    UpgradeRequest::azure(CustomerId::parse(CUSTOMER).unwrap())
}

/// The JSON body the client must send for [`azure_request`].
pub fn azure_body() -> Value {
    serde_json::json!({ "customerId": CUSTOMER, "productFamily": "Azure" })
}

/// Matches only requests that carry everything the contract asks of our client: the bearer
/// token, GUID request and correlation ids, locale, application name, JSON content type, and
/// no stray `api-version` header.
pub struct SentByOurClient;

impl Match for SentByOurClient {
    fn matches(&self, request: &Request) -> bool {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let guid = |name: &str| header(name).is_some_and(|v| uuid::Uuid::try_parse(v).is_ok());
        header("authorization") == Some(&format!("Bearer {TOKEN}"))
            && guid("ms-requestid")
            && guid("ms-correlationid")
            && header("x-locale") == Some(LOCALE)
            && header("ms-partnercenter-application") == Some(APPLICATION)
            && header("content-type") == Some("application/json")
            && header("accept") == Some("application/json")
            && header("api-version").is_none()
    }
}

/// Answers any request no other mock matched with 418 and a body naming it, so a test that
/// sends something unexpected fails saying what was sent.
pub async fn mount_catch_all(server: &MockServer) {
    Mock::given(any())
        .respond_with(|request: &Request| {
            ResponseTemplate::new(418).set_body_string(format!(
                "no mock matched {} {} with headers {:?} and body {}",
                request.method,
                request.url.path(),
                request
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&request.body)
            ))
        })
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

/// Unwraps a call's result, printing the error and any raw body it carries on failure.
pub fn expect_ok<T>(result: Result<T, partner_center_upgrades::Error>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!(
            "the call failed: {e}\nraw body: {}",
            e.raw_body()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        ),
    }
}

/// The header value a request carried, as text.
pub fn header_of(request: &Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A plain reqwest client for loopback tests, with an explicit rustls configuration (no
/// process-wide crypto provider is installed) and no proxy.
pub fn raw_http_builder() -> reqwest::ClientBuilder {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
}

/// `pc-upgrade` as a process, isolated from the machine it runs on: no proxy variables, no
/// credentials from the environment, and a config folder of its own (so a developer's
/// `~/.config/pc-upgrade/credentials.json` is never read or written).
pub fn pc_upgrade_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pc-upgrade"));
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "PARTNER_CENTER_TOKEN",
        "PARTNER_CENTER_REFRESH_TOKEN",
        "PARTNER_CENTER_CLIENT_ID",
        "PARTNER_CENTER_CLIENT_SECRET",
        "PARTNER_CENTER_TENANT_ID",
    ] {
        command.env_remove(name);
    }
    let config = std::env::temp_dir().join(format!("pcu-config-{}", uuid::Uuid::new_v4()));
    command.env("XDG_CONFIG_HOME", config);
    command
}

/// The stateful mock with its defaults, on a free loopback port.
pub async fn default_mock() -> partner_center_mock::RunningMock {
    start_mock(partner_center_mock::MockConfig::default()).await
}

/// A client for `mock` with quick retries.
pub fn mock_client(mock: &partner_center_mock::RunningMock) -> Client {
    client_with(
        &mock.url(),
        mock.token(),
        quick_policy(),
        Duration::from_secs(5),
    )
}

/// The stateful mock with `config`, on a free loopback port.
pub async fn start_mock(
    config: partner_center_mock::MockConfig,
) -> partner_center_mock::RunningMock {
    partner_center_mock::start(
        config,
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .expect("the mock starts on loopback")
}
