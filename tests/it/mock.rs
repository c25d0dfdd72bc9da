//! The stateful mock behaves as the facts describe, seen through our client and through raw
//! HTTP where the client would not send such a request.

use std::time::Duration;

use partner_center_mock::{Fault, MockConfig, RunningMock};
use partner_center_upgrades::{
    BaseUrl, Client, CustomerId, ErrorKind, RetryPolicy, Sent, StaticToken, UpgradeRequest,
    UpgradeStatus,
};

async fn mock() -> RunningMock {
    crate::support::start_mock(MockConfig::default()).await
}

fn client(mock: &RunningMock) -> Client {
    crate::support::client_with(
        &mock.url(),
        mock.token(),
        RetryPolicy::none(),
        Duration::from_secs(5),
    )
}

fn new_customer() -> UpgradeRequest {
    UpgradeRequest::azure(CustomerId::from_uuid(uuid::Uuid::new_v4()))
}

fn raw_http() -> reqwest::Client {
    crate::support::raw_http_builder().build().unwrap()
}

#[tokio::test]
async fn an_upgrade_moves_from_in_progress_to_completed_and_eligibility_follows_it() {
    let mock = mock().await;
    let client = client(&mock);
    let request = new_customer();

    let before = client
        .check_eligibility(&request)
        .await
        .unwrap()
        .into_inner();
    let id = client.create_upgrade(&request).await.unwrap().into_inner();
    let during = client
        .check_eligibility(&request)
        .await
        .unwrap()
        .into_inner();
    let first = client
        .get_upgrade_status(id, &request)
        .await
        .unwrap()
        .into_inner();
    let second = client
        .get_upgrade_status(id, &request)
        .await
        .unwrap()
        .into_inner();
    let after = client
        .check_eligibility(&request)
        .await
        .unwrap()
        .into_inner();

    assert!(before.is_eligible && before.upgrade_id.is_none());
    assert!(!during.is_eligible);
    assert_eq!(during.upgrade_id, Some(id));
    assert_eq!(first.status, UpgradeStatus::InProgress);
    assert_eq!(second.status, UpgradeStatus::Completed);
    assert!(second.line_items[0].upgraded_date.is_some());
    assert_eq!(after.upgrade_id, Some(id));
    assert!(!after.is_eligible);
}

#[tokio::test]
async fn a_second_create_while_one_is_under_way_is_a_409_with_code_900109() {
    let mock = mock().await;
    let client = client(&mock);
    let request = new_customer();
    client.create_upgrade(&request).await.unwrap();

    let error = client.create_upgrade(&request).await.unwrap_err();

    assert_eq!(error.status(), Some(409));
    assert!(error.has_service_code(900109), "{error}");
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test]
async fn an_unknown_upgrade_is_404_and_another_customers_is_400() {
    let mock = mock().await;
    let client = client(&mock);
    let owner = new_customer();
    let id = client.create_upgrade(&owner).await.unwrap().into_inner();

    let unknown = client
        .get_upgrade_status(uuid::Uuid::new_v4().into(), &owner)
        .await
        .unwrap_err();
    let foreign = client
        .get_upgrade_status(id, &new_customer())
        .await
        .unwrap_err();

    assert_eq!(
        (unknown.status(), unknown.has_service_code(900106)),
        (Some(404), true)
    );
    assert_eq!(
        (foreign.status(), foreign.has_service_code(900111)),
        (Some(400), true)
    );
}

#[tokio::test]
async fn seeded_customers_fail_or_are_not_eligible() {
    let mock = mock().await;
    let client = client(&mock);
    let failing =
        UpgradeRequest::azure(CustomerId::parse(partner_center_mock::FAILING_CUSTOMER).unwrap());
    let no_azure =
        UpgradeRequest::azure(CustomerId::parse(partner_center_mock::NO_AZURE_CUSTOMER).unwrap());

    let id = client.create_upgrade(&failing).await.unwrap().into_inner();
    client.get_upgrade_status(id, &failing).await.unwrap();
    let failed = client
        .get_upgrade_status(id, &failing)
        .await
        .unwrap()
        .into_inner();
    let not_eligible = client
        .check_eligibility(&no_azure)
        .await
        .unwrap()
        .into_inner();
    let refused = client.create_upgrade(&no_azure).await.unwrap_err();

    assert_eq!(failed.status, UpgradeStatus::Failed);
    assert_eq!(
        failed
            .error_details
            .unwrap()
            .code
            .map(|c| c.to_string())
            .as_deref(),
        Some("900120")
    );
    assert!(!not_eligible.is_eligible && not_eligible.reason.is_some());
    assert_eq!(
        (refused.status(), refused.has_service_code(900108)),
        (Some(403), true)
    );
}

#[tokio::test]
async fn a_wrong_token_is_401() {
    let mock = mock().await;
    let client = Client::builder(
        BaseUrl::parse(&mock.url()).unwrap(),
        StaticToken::new("not-the-mocks-token").unwrap(),
    )
    .build()
    .unwrap();

    let error = client.check_eligibility(&new_customer()).await.unwrap_err();

    assert_eq!(error.status(), Some(401));
}

#[tokio::test]
async fn an_undeclared_method_is_405_with_allow_and_a_bad_body_is_400_with_the_error_body() {
    let mock = mock().await;
    let http = raw_http();
    let url = format!("{}/v1/productUpgrades/eligibility", mock.url());
    let auth = format!("Bearer {}", mock.token());

    let get = http
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let bad = http
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(r#"{"customerId": "not-a-guid", "productFamily": "Azure"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json_value().await;
    assert_eq!(body["code"], 900118);
    assert!(body["description"].as_str().unwrap().contains("customerId"));
}

trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn a_replayed_request_id_gets_the_first_answer_and_creates_nothing_more() {
    let mock = mock().await;
    let http = raw_http();
    let customer = uuid::Uuid::new_v4();
    let send = |request_id: &'static str| {
        http.post(format!("{}/v1/productUpgrades", mock.url()))
            .header("authorization", format!("Bearer {}", mock.token()))
            .header("ms-requestid", request_id)
            .body(format!(
                r#"{{"customerId": "{customer}", "productFamily": "Azure"}}"#
            ))
            .send()
    };

    let first = send("c245d5f2-1de3-4ae0-9e42-95e38e3cb8ff").await.unwrap();
    let replay = send("c245d5f2-1de3-4ae0-9e42-95e38e3cb8ff").await.unwrap();
    let fresh = send("d245d5f2-1de3-4ae0-9e42-95e38e3cb8ff").await.unwrap();

    assert_eq!(
        (first.status().as_u16(), replay.status().as_u16()),
        (202, 202)
    );
    assert_eq!(first.headers()["location"], replay.headers()["location"]);
    assert_eq!(
        replay.headers()["ms-requestid"],
        "c245d5f2-1de3-4ae0-9e42-95e38e3cb8ff"
    );
    assert_eq!(fresh.status(), 409);
    assert_eq!(mock.upgrades_of(customer), 1);
}

#[tokio::test]
async fn injected_faults_reach_the_client_as_typed_errors() {
    let mock = mock().await;
    let client = client(&mock);
    let request = new_customer();
    mock.script([
        Fault::Throttle { retry_after: 7 },
        Fault::ServerError(502),
        Fault::DropBefore,
    ]);

    let throttled = client.check_eligibility(&request).await.unwrap_err();
    let gateway = client.check_eligibility(&request).await.unwrap_err();
    let dropped = client.check_eligibility(&request).await.unwrap_err();
    let fine = client.check_eligibility(&request).await;

    assert_eq!(throttled.status(), Some(429));
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
    assert!(throttled.throttling().is_some());
    assert_eq!((gateway.status(), gateway.raw_body()), (Some(502), None));
    assert_eq!(dropped.kind(), ErrorKind::Transport, "{dropped}");
    assert_eq!(dropped.sent(), Sent::Maybe);
    assert!(fine.is_ok());
}

#[tokio::test]
async fn an_answer_lost_after_create_leaves_exactly_one_upgrade() {
    let mock = mock().await;
    let client = client(&mock);
    let request = new_customer();
    mock.script([Fault::DropAfter]);

    let lost = client.create_upgrade(&request).await.unwrap_err();
    let eligibility = client
        .check_eligibility(&request)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(lost.sent(), Sent::Maybe, "{lost}");
    assert_eq!(mock.upgrades_created(), 1);
    assert!(
        eligibility.upgrade_id.is_some(),
        "the upgrade was created though the answer was lost"
    );
}

#[tokio::test]
async fn a_slow_answer_arrives_late_but_intact() {
    let mock = mock().await;
    let client = client(&mock);
    let request = new_customer();
    let customer = request.customer_id;
    let before = mock.requests();
    mock.script([Fault::Slow(Duration::from_millis(300))]);

    let slow = client.check_eligibility(&request).await.unwrap();
    let normal = client.check_eligibility(&request).await.unwrap();

    // The slowed answer is the whole answer: the same as an unslowed one for the same customer,
    // about the customer asked, and the mock saw exactly the two requests.
    assert_eq!(slow.value(), normal.value());
    assert_eq!(slow.value().customer_id, customer);
    assert!(slow.value().is_eligible);
    assert_eq!(mock.requests() - before, 2);
}
