//! The client speaks the contract: for each operation, what it sends (method, exact path,
//! headers, body) and how it reads every answer the spec documents, plus the answers it does not.

use std::time::Duration;

use partner_center_upgrades::{
    AuthError, Client, CorrelationId, ErrorKind, RequestIds, Sent, StaticToken, TokenFuture,
    TokenProvider, UpgradeId, UpgradeStatus,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, SentByOurClient, spec};

const ELIGIBILITY_PATH: &str = "/v1/productUpgrades/eligibility";
const CREATE_PATH: &str = "/v1/productUpgrades";

fn status_path() -> String {
    format!("/v1/productUpgrades/{}/status", support::UPGRADE)
}

fn upgrade_id() -> UpgradeId {
    UpgradeId::parse(support::UPGRADE).unwrap()
}

/// A named example of a response in the spec.
fn spec_example(pointer: &str) -> Value {
    let spec = spec::spec();
    spec.pointer(pointer)
        .unwrap_or_else(|| panic!("no example at {pointer}"))
        .clone()
}

/// The server with a catch-all, and one mock that answers only a request that is exactly what
/// the contract says `path` must receive.
async fn server_expecting(path_: &str, answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    support::mount_catch_all(&server).await;
    Mock::given(method("POST"))
        .and(path(path_))
        .and(SentByOurClient)
        .and(body_json(support::azure_body()))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn check_eligibility_sends_the_contract_request_and_reads_the_answer() {
    let body = spec_example(
        "/paths/~1v1~1productUpgrades~1eligibility/post/responses/200/content/application~1json/examples/alreadyUnderWay/value",
    );
    let server = server_expecting(
        ELIGIBILITY_PATH,
        ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;

    let answer = support::expect_ok(
        support::client(&server)
            .check_eligibility(&support::azure_request())
            .await,
    );

    let eligibility = answer.value();
    assert_eq!(eligibility.customer_id.to_string(), support::CUSTOMER);
    assert!(!eligibility.is_eligible);
    assert_eq!(eligibility.upgrade_id, Some(upgrade_id()));
    assert!(
        eligibility
            .reason
            .as_deref()
            .unwrap()
            .contains("in progress")
    );
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn create_upgrade_returns_the_id_from_the_location_header() {
    let server = server_expecting(
        CREATE_PATH,
        ResponseTemplate::new(202)
            .insert_header("Location", format!("productUpgrades/{}", support::UPGRADE)),
    )
    .await;

    let answer = support::expect_ok(
        support::client(&server)
            .create_upgrade(&support::azure_request())
            .await,
    );

    assert_eq!(answer.status(), 202);
    assert_eq!(answer.into_inner(), upgrade_id());
}

#[tokio::test]
async fn get_upgrade_status_reads_a_completed_upgrade_with_its_line_items() {
    let body = spec_example(
        "/paths/~1v1~1productUpgrades~1{upgradeId}~1status/post/responses/200/content/application~1json/examples/completed/value",
    );
    let server = server_expecting(
        &status_path(),
        ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;

    let upgrade = support::expect_ok(
        support::client(&server)
            .get_upgrade_status(upgrade_id(), &support::azure_request())
            .await,
    )
    .into_inner();

    assert_eq!(upgrade.id, upgrade_id());
    assert_eq!(upgrade.status, UpgradeStatus::Completed);
    assert_eq!(upgrade.line_items.len(), 1);
    let line = &upgrade.line_items[0];
    assert_eq!(
        line.target_product.as_ref().and_then(|p| p.name.as_deref()),
        Some("Microsoft Azure plan")
    );
    assert_eq!(
        line.upgraded_date
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "2019-08-29T23:47:28.852455500Z"
    );
}

#[tokio::test]
async fn an_unknown_status_value_arrives_as_unknown_instead_of_failing() {
    let mut body = spec_example(
        "/paths/~1v1~1productUpgrades~1{upgradeId}~1status/post/responses/200/content/application~1json/examples/inProgress/value",
    );
    body["status"] = json!("AwaitingBillingSync");
    body["lineItems"][0]["status"] = json!("completed");
    let server = server_expecting(
        &status_path(),
        ResponseTemplate::new(200).set_body_json(&body),
    )
    .await;

    let upgrade = support::expect_ok(
        support::client(&server)
            .get_upgrade_status(upgrade_id(), &support::azure_request())
            .await,
    )
    .into_inner();

    assert_eq!(
        upgrade.status,
        UpgradeStatus::Unknown("AwaitingBillingSync".into())
    );
    assert!(!upgrade.status.is_terminal());
    assert_eq!(upgrade.line_items[0].status, UpgradeStatus::Completed);
}

/// Every error status the spec documents for `operation_pointer`, with the body example the
/// spec gives for it.
fn documented_errors(operation_pointer: &str) -> Vec<(u16, Value, Value)> {
    let spec = spec::spec();
    let responses = spec.pointer(operation_pointer).unwrap()["responses"]
        .as_object()
        .unwrap()
        .clone();
    responses
        .iter()
        .filter_map(|(code, response)| {
            let code: u16 = code.parse().ok()?;
            if code < 400 {
                return None;
            }
            let response = spec::resolve(&spec, response);
            let media = &response["content"]["application/json"];
            let example = media
                .get("example")
                .cloned()
                .or_else(|| {
                    media["examples"]
                        .as_object()
                        .and_then(|e| e.values().next())
                        .map(|e| e["value"].clone())
                })
                .unwrap_or_else(|| panic!("the spec gives no example body for {code}"));
            Some((code, example, response["headers"].clone()))
        })
        .collect()
}

async fn every_documented_error_is_reported_with_its_status_and_body(
    operation_pointer: &str,
    path_: &str,
    call: impl AsyncFn(&Client) -> Result<(), partner_center_upgrades::Error>,
) {
    let errors = documented_errors(operation_pointer);
    assert!(errors.len() >= 8, "{operation_pointer}: {errors:?}");
    for (code, example, headers) in errors {
        let mut answer = ResponseTemplate::new(code).set_body_json(&example);
        if headers.get("Retry-After").is_some() {
            answer = answer.insert_header("Retry-After", "30");
        }
        let server = server_expecting(path_, answer).await;

        let error = call(&support::client(&server)).await.unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Status, "{code}: {error}");
        assert_eq!(error.status(), Some(code), "{error}");
        assert_eq!(error.sent(), Sent::Yes);
        assert!(error.request_id().is_some() && error.correlation_id().is_some());
        if code == 429 {
            let throttling = error.throttling().expect("the throttling body is parsed");
            assert_eq!(throttling.message, example["message"].as_str().unwrap());
            assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
            assert!(error.to_string().contains("retry after 30 s"), "{error}");
        } else {
            let service = error
                .service_error()
                .expect("the Partner Center error is parsed");
            assert_eq!(
                service.code.to_string(),
                example["code"].to_string().trim_matches('"')
            );
            assert!(error.to_string().contains(&service.description), "{error}");
        }
        assert!(!error.to_string().contains(support::TOKEN));
        assert!(!format!("{error:?}").contains(support::TOKEN));
    }
}

#[tokio::test]
async fn check_eligibility_reports_every_documented_error() {
    every_documented_error_is_reported_with_its_status_and_body(
        "/paths/~1v1~1productUpgrades~1eligibility/post",
        ELIGIBILITY_PATH,
        async |client| {
            client
                .check_eligibility(&support::azure_request())
                .await
                .map(drop)
        },
    )
    .await;
}

#[tokio::test]
async fn create_upgrade_reports_every_documented_error_including_the_409_conflict() {
    every_documented_error_is_reported_with_its_status_and_body(
        "/paths/~1v1~1productUpgrades/post",
        CREATE_PATH,
        async |client| {
            client
                .create_upgrade(&support::azure_request())
                .await
                .map(drop)
        },
    )
    .await;
}

#[tokio::test]
async fn get_upgrade_status_reports_every_documented_error() {
    every_documented_error_is_reported_with_its_status_and_body(
        "/paths/~1v1~1productUpgrades~1{upgradeId}~1status/post",
        &status_path(),
        async |client| {
            client
                .get_upgrade_status(upgrade_id(), &support::azure_request())
                .await
                .map(drop)
        },
    )
    .await;
}

#[tokio::test]
async fn a_409_conflict_is_recognisable_by_its_partner_center_code() {
    let server = server_expecting(
        CREATE_PATH,
        ResponseTemplate::new(409).set_body_json(json!({
            "code": "900109", "description": "The original upgrade is in progress.", "source": "PartnerFD"
        })),
    )
    .await;

    let error = support::client(&server)
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert!(error.has_service_code(900109), "{error}");
    assert!(!error.has_service_code(900110));
}

#[tokio::test]
async fn an_empty_body_502_keeps_its_status() {
    let server = server_expecting(ELIGIBILITY_PATH, ResponseTemplate::new(502)).await;

    let error = support::client(&server)
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Status);
    assert_eq!(error.status(), Some(502));
    assert!(error.service_error().is_none());
    assert!(error.raw_body().is_none());
    assert!(
        error.to_string().contains("HTTP 502 Bad Gateway"),
        "{error}"
    );
    assert!(error.to_string().contains("empty body"), "{error}");
}

#[tokio::test]
async fn an_html_503_from_a_gateway_keeps_its_status_and_body() {
    let page = "<html><body>Service Unavailable</body></html>";
    let server = server_expecting(
        CREATE_PATH,
        ResponseTemplate::new(503).set_body_raw(page, "text/html"),
    )
    .await;

    let error = support::client(&server)
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(503));
    assert_eq!(error.raw_body(), Some(page.as_bytes()));
    assert!(error.to_string().contains("text/html"), "{error}");
    assert!(
        !error.to_string().contains("<html>"),
        "the body stays out of messages"
    );
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_is_understood() {
    let later = chrono::Utc::now() + chrono::Duration::seconds(120);
    let server = server_expecting(
        ELIGIBILITY_PATH,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", later.to_rfc2822().replace("+0000", "GMT"))
            .set_body_json(json!({"statusCode": 429, "message": "Rate limit is exceeded."})),
    )
    .await;

    let error = support::client(&server)
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    let wait = error.retry_after().expect("Retry-After is read");
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn an_undeclared_status_is_an_error_that_keeps_it() {
    for (code, kind) in [(418, ErrorKind::Status), (200, ErrorKind::InvalidResponse)] {
        let server = server_expecting(CREATE_PATH, ResponseTemplate::new(code)).await;

        let error = support::client(&server)
            .create_upgrade(&support::azure_request())
            .await
            .unwrap_err();

        assert_eq!(
            (error.status(), error.kind()),
            (Some(code), kind),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_202_without_location_says_the_upgrade_was_probably_created() {
    let server = server_expecting(CREATE_PATH, ResponseTemplate::new(202)).await;

    let error = support::client(&server)
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert_eq!(error.sent(), Sent::Yes);
    assert_eq!(error.status(), Some(202));
    let message = error.to_string();
    assert!(
        message.contains("probably created") && message.contains("no Location"),
        "{message}"
    );
}

#[tokio::test]
async fn a_success_body_that_breaks_the_spec_is_an_invalid_response_with_its_status() {
    let server = server_expecting(
        ELIGIBILITY_PATH,
        ResponseTemplate::new(200).set_body_json(json!({"customerId": "nope"})),
    )
    .await;

    let error = support::client(&server)
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert_eq!(error.status(), Some(200));
    assert!(
        error.to_string().contains("does not match the spec"),
        "{error}"
    );
}

#[tokio::test]
async fn every_call_gets_a_new_request_id_and_a_flow_shares_one_correlation_id() {
    let server = MockServer::start().await;
    support::mount_catch_all(&server).await;
    Mock::given(method("POST"))
        .and(path(ELIGIBILITY_PATH))
        .and(SentByOurClient)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": support::CUSTOMER, "productFamily": "Azure", "isEligible": true
        })))
        .expect(4)
        .mount(&server)
        .await;
    let client = support::client(&server);
    let flow = CorrelationId::parse("aaaa0000-bb11-2222-33cc-444444dddddd").unwrap();
    let flow_client = client.with_correlation_id(flow);

    for c in [&client, &client, &flow_client, &flow_client] {
        support::expect_ok(c.check_eligibility(&support::azure_request()).await);
    }

    let requests = server.received_requests().await.unwrap();
    let request_ids: std::collections::HashSet<String> = requests
        .iter()
        .map(|r| support::header_of(r, "ms-requestid"))
        .collect();
    assert_eq!(request_ids.len(), 4, "each call has its own MS-RequestId");
    let correlation: Vec<String> = requests
        .iter()
        .map(|r| support::header_of(r, "ms-correlationid"))
        .collect();
    assert_ne!(
        correlation[0], correlation[1],
        "plain calls get fresh correlation ids"
    );
    assert_eq!(correlation[2], flow.to_string());
    assert_eq!(correlation[3], flow.to_string());
}

#[tokio::test]
async fn the_ids_the_server_answers_with_are_reported() {
    let server = server_expecting(
        ELIGIBILITY_PATH,
        ResponseTemplate::new(200)
            .insert_header("MS-RequestId", "cb82f7d6-f0d9-44d4-82f9-f6eee6e68390")
            .insert_header("MS-CV", "iqOqN0FnaE2y0HcD.0")
            .set_body_json(json!({
                "customerId": support::CUSTOMER, "productFamily": "Azure", "isEligible": true
            })),
    )
    .await;

    let answer = support::expect_ok(
        support::client(&server)
            .check_eligibility(&support::azure_request())
            .await,
    );

    assert_eq!(
        answer.request_id().unwrap().to_string(),
        "cb82f7d6-f0d9-44d4-82f9-f6eee6e68390"
    );
    assert_eq!(answer.ms_cv(), Some("iqOqN0FnaE2y0HcD.0"));
}

#[tokio::test]
async fn a_trailing_slash_on_the_base_url_does_not_change_the_path() {
    let server = server_expecting(
        CREATE_PATH,
        ResponseTemplate::new(202).insert_header(
            "Location",
            format!("/v1/productUpgrades/{}", support::UPGRADE),
        ),
    )
    .await;

    let client = support::client_for(&format!("{}/", server.uri()));
    let id = support::expect_ok(client.create_upgrade(&support::azure_request()).await);

    assert_eq!(id.into_inner(), upgrade_id());
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_never_reaches_another_server() {
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = server_expecting(
        ELIGIBILITY_PATH,
        ResponseTemplate::new(307)
            .insert_header("Location", format!("{}{ELIGIBILITY_PATH}", elsewhere.uri())),
    )
    .await;

    let error = support::client(&server)
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(307));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_that_was_not_sent() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = support::client_for(&format!("http://127.0.0.1:{port}"));

    let error = client
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(
        (error.kind(), error.sent()),
        (ErrorKind::Connect, Sent::No),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_timeout_that_may_have_been_sent() {
    let server = server_expecting(
        CREATE_PATH,
        ResponseTemplate::new(202).set_delay(Duration::from_secs(5)),
    )
    .await;
    let client = Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        StaticToken::new(support::TOKEN).unwrap(),
    )
    .locale(support::LOCALE)
    .application(support::APPLICATION)
    .timeout(Duration::from_millis(200))
    .retry(partner_center_upgrades::RetryPolicy::none())
    .build()
    .unwrap();

    let error = client
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(
        (error.kind(), error.sent()),
        (ErrorKind::Timeout, Sent::Maybe),
        "{error}"
    );
}

struct FailingTokens;

impl TokenProvider for FailingTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async { Err(AuthError::new("the refresh token has expired")) })
    }
}

#[tokio::test]
async fn a_token_provider_failure_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = Client::builder(
        partner_center_upgrades::BaseUrl::parse(&server.uri()).unwrap(),
        FailingTokens,
    )
    .retry(partner_center_upgrades::RetryPolicy::none())
    .build()
    .unwrap();

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!((error.kind(), error.sent()), (ErrorKind::Auth, Sent::No));
    assert!(
        error.to_string().contains("refresh token has expired"),
        "{error}"
    );
}

#[test]
fn bad_client_settings_are_refused_before_any_call() {
    let build = |locale: &str, app: &str| {
        Client::builder(
            partner_center_upgrades::Cloud::Global,
            StaticToken::new(support::TOKEN).unwrap(),
        )
        .locale(locale)
        .application(app)
        .build()
    };
    assert!(build("en-US", "ok").is_ok());
    assert!(matches!(
        build("en US", "ok"),
        Err(partner_center_upgrades::BuildError::Locale(_))
    ));
    assert!(matches!(
        build("en-US", ""),
        Err(partner_center_upgrades::BuildError::ApplicationName)
    ));
    let client = build("en-US", "ok").unwrap();
    assert!(!format!("{client:?}").contains(support::TOKEN));
}
