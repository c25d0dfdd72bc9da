//! Signing in with the secure application model: the refresh-token provider against a token
//! endpoint on loopback (wiremock), with a simulated clock where hours must pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use partner_center_upgrades::{
    AppCredentials, Authority, ErrorKind, MemoryStore, RefreshTokenProvider, RefreshTokenStore,
    RetryPolicy, Secret, TokenEndpoint, TokenProvider,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{self, CUSTOMER};

const TENANT: &str = "contoso.onmicrosoft.com";

fn app() -> AppCredentials {
    AppCredentials {
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        client_secret: Some(Secret::new("client-secret-value")),
    }
}

fn form_field(request: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A token endpoint that issues `t{n}` access tokens living `lifetime` seconds from the
/// simulated `now`, and a new refresh token `r{n}` each time; `issued` maps token → expiry.
struct Issuer {
    now: Arc<AtomicU64>,
    issued: Arc<Mutex<HashMap<String, u64>>>,
}

async fn token_endpoint(server: &MockServer, endpoint: TokenEndpoint, lifetime: u64) -> Issuer {
    let now = Arc::new(AtomicU64::new(1_000_000));
    let issued = Arc::new(Mutex::new(HashMap::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let (clock, log) = (now.clone(), issued.clone());
    let at = match endpoint {
        TokenEndpoint::V1 => format!("/{TENANT}/oauth2/token"),
        _ => format!("/{TENANT}/oauth2/v2.0/token"),
    };
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(move |request: &Request| {
            assert_eq!(
                form_field(request, "grant_type").as_deref(),
                Some("refresh_token")
            );
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("t{n}");
            log.lock()
                .unwrap()
                .insert(token.clone(), clock.load(Ordering::SeqCst) + lifetime);
            // v1 writes expires_in as a string, v2 as a number.
            let expires_in = match endpoint {
                TokenEndpoint::V1 => json!(lifetime.to_string()),
                _ => json!(lifetime),
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "token_type": "Bearer", "access_token": token, "expires_in": expires_in,
                "refresh_token": format!("r{n}")
            }))
        })
        .mount(server)
        .await;
    Issuer { now, issued }
}

fn provider(
    server: &MockServer,
    issuer: &Issuer,
    store: Arc<dyn RefreshTokenStore>,
) -> RefreshTokenProvider {
    let now = issuer.now.clone();
    RefreshTokenProvider::new(
        Authority::parse(&server.uri()).unwrap(),
        TENANT,
        app(),
        store,
    )
    .unwrap()
    .clock(Arc::new(move || {
        SystemTime::UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_calls_with_no_valid_token_make_exactly_one_token_request() {
    let server = MockServer::start().await;
    let issuer = token_endpoint(&server, TokenEndpoint::V2, 3600).await;
    let store = Arc::new(MemoryStore::with(Secret::new("r0")));
    let provider = Arc::new(provider(&server, &issuer, store));

    let calls: Vec<_> = (0..64)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.token().await.map(|t| t.expose().to_owned()) })
        })
        .collect();
    for call in calls {
        let token = call.await.unwrap().expect("every caller gets a token");
        assert_eq!(token, "t1", "every caller gets the one new token");
    }

    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn three_simulated_hours_with_ten_minute_tokens_never_use_an_expired_token() {
    for endpoint in [TokenEndpoint::V1, TokenEndpoint::V2] {
        let server = MockServer::start().await;
        let issuer = token_endpoint(&server, endpoint, 600).await;
        let store = Arc::new(MemoryStore::with(Secret::new("r0")));
        let provider = provider(&server, &issuer, store.clone()).endpoint(endpoint);
        let mut expired_uses = 0;

        // One call every 20 seconds for three hours.
        for _ in 0..(3 * 3600 / 20) {
            let token = provider.token().await.unwrap();
            let now = issuer.now.load(Ordering::SeqCst);
            let expires = issuer.issued.lock().unwrap()[token.expose()];
            if expires <= now {
                expired_uses += 1;
            }
            issuer.now.fetch_add(20, Ordering::SeqCst);
        }

        assert_eq!(expired_uses, 0, "{endpoint:?}");
        let redemptions = server.received_requests().await.unwrap().len();
        // 10-minute tokens replaced 5 minutes early: one redemption per 5 simulated minutes.
        assert!(
            (30..=40).contains(&redemptions),
            "{endpoint:?}: {redemptions} redemptions"
        );
        // Each redemption sent the refresh token the one before returned.
        let requests = server.received_requests().await.unwrap();
        for (n, request) in requests.iter().enumerate() {
            assert_eq!(form_field(request, "refresh_token"), Some(format!("r{n}")));
        }
        assert_eq!(
            store.load().unwrap().map(|s| s.expose().to_owned()),
            Some(format!("r{redemptions}"))
        );
    }
}

/// Records the order of saves and uses, to show the new refresh token is stored first.
#[derive(Default)]
struct OrderedStore {
    events: Arc<Mutex<Vec<String>>>,
    inner: MemoryStore,
}

impl RefreshTokenStore for OrderedStore {
    fn load(&self) -> Result<Option<Secret>, partner_center_upgrades::AuthError> {
        self.inner.load()
    }
    fn save(&self, token: &Secret) -> Result<(), partner_center_upgrades::AuthError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("saved {}", token.expose()));
        self.inner.save(token)
    }
}

#[tokio::test]
async fn the_new_refresh_token_is_stored_before_the_access_token_is_used() {
    let server = MockServer::start().await;
    let issuer = token_endpoint(&server, TokenEndpoint::V2, 3600).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::new(OrderedStore {
        events: events.clone(),
        inner: MemoryStore::with(Secret::new("r0")),
    });
    let log = events.clone();
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(move |request: &Request| {
            let auth = support::header_of(request, "authorization");
            log.lock().unwrap().push(format!("used {auth}"));
            ResponseTemplate::new(200).set_body_json(json!({
                "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": true
            }))
        })
        .mount(&server)
        .await;
    let client = partner_center_upgrades::Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        provider(&server, &issuer, store),
    )
    .build()
    .unwrap();

    client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();

    assert_eq!(
        *events.lock().unwrap(),
        vec!["saved r1".to_owned(), "used Bearer t1".to_owned()]
    );
}

#[tokio::test]
async fn an_expired_refresh_token_is_sign_in_again_and_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "AADSTS700082: The refresh token has expired due to inactivity.",
            "error_codes": [700082]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::with(Secret::new("stale-refresh-token")));
    let provider = RefreshTokenProvider::new(
        Authority::parse(&server.uri()).unwrap(),
        TENANT,
        app(),
        store,
    )
    .unwrap()
    .retry(support::quick_policy());
    let client = partner_center_upgrades::Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        provider,
    )
    .retry(support::quick_policy())
    .build()
    .unwrap();

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::SignInAgain, "{error}");
    assert!(error.to_string().contains("AADSTS700082"), "{error}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("stale-refresh-token") && !shown.contains("client-secret-value"));
}

#[tokio::test]
async fn a_transient_token_endpoint_failure_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let issuer = token_endpoint(&server, TokenEndpoint::V2, 3600).await;
    let provider = provider(
        &server,
        &issuer,
        Arc::new(MemoryStore::with(Secret::new("r0"))),
    )
    .retry(support::quick_policy());

    provider.token().await.expect("the retry gets a token");

    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_401_saying_the_token_expired_renews_it_once_and_retries_once() {
    let server = MockServer::start().await;
    let issuer = token_endpoint(&server, TokenEndpoint::V2, 3600).await;
    let expired = || {
        ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
        )
    };
    // t1 is refused as expired; t2 is accepted.
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .and(wiremock::matchers::header("authorization", "Bearer t1"))
        .respond_with(expired())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .and(wiremock::matchers::header("authorization", "Bearer t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": true
        })))
        .mount(&server)
        .await;
    let client = partner_center_upgrades::Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        provider(
            &server,
            &issuer,
            Arc::new(MemoryStore::with(Secret::new("r0"))),
        ),
    )
    .retry(RetryPolicy::none())
    .build()
    .unwrap();

    let answer = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();

    assert_eq!(answer.attempts(), 2);
}

#[tokio::test]
async fn a_401_with_a_fresh_token_is_not_retried_in_a_loop() {
    let server = MockServer::start().await;
    let issuer = token_endpoint(&server, TokenEndpoint::V2, 3600).await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\"",
        ))
        .expect(2)
        .mount(&server)
        .await;
    let client = partner_center_upgrades::Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        provider(
            &server,
            &issuer,
            Arc::new(MemoryStore::with(Secret::new("r0"))),
        ),
    )
    .retry(support::quick_policy())
    .build()
    .unwrap();

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    // One renewal and one retry, then the 401 is the answer.
    assert_eq!((error.status(), error.attempts()), (Some(401), 2));
}
