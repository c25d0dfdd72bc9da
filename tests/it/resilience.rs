//! Retries, polling and the whole flow, against wiremock (to see exactly what was sent) and the
//! stateful mock (to count upgrades), with injected faults alone and in sequences.

use std::time::{Duration, Instant};

use partner_center_mock::{Fault, MockConfig, RunningMock};
use partner_center_upgrades::{
    BaseUrl, Client, CustomerId, ErrorKind, PollOptions, ProductFamily, RetryPolicy, StaticToken,
    UpgradeOutcome, UpgradeRequest, UpgradeStatus,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;

/// Fast retries: tests wait milliseconds, not seconds.
fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        deadline: Duration::from_secs(20),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        retry_after_floor: Duration::from_millis(10),
        retry_after_cap: Duration::from_secs(5),
    }
}

fn quick_polls() -> PollOptions {
    PollOptions {
        interval: Duration::from_millis(10),
        min_interval: Duration::from_millis(1),
        deadline: Duration::from_secs(10),
    }
}

fn client_for(url: &str, token: &str, policy: RetryPolicy, timeout: Duration) -> Client {
    Client::builder(
        BaseUrl::parse(url).unwrap(),
        StaticToken::new(token).unwrap(),
    )
    .retry(policy)
    .timeout(timeout)
    .build()
    .unwrap()
}

async fn mock() -> RunningMock {
    support::start_mock(MockConfig::default()).await
}

fn mock_client(mock: &RunningMock) -> Client {
    client_for(
        &mock.url(),
        mock.token(),
        quick_policy(),
        Duration::from_secs(5),
    )
}

fn new_customer() -> CustomerId {
    CustomerId::from_uuid(uuid::Uuid::new_v4())
}

#[tokio::test]
async fn a_429_then_a_503_then_success_is_one_call_with_one_request_id_that_honours_retry_after() {
    let server = MockServer::start().await;
    let eligible =
        json!({ "customerId": support::CUSTOMER, "productFamily": "Azure", "isEligible": true });
    for answer in [
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({ "statusCode": 429, "message": "Rate limit is exceeded." })),
        ResponseTemplate::new(503),
    ] {
        Mock::given(method("POST"))
            .and(path("/v1/productUpgrades/eligibility"))
            .respond_with(answer)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&eligible))
        .mount(&server)
        .await;
    let client = client_for(
        &server.uri(),
        support::TOKEN,
        quick_policy(),
        Duration::from_secs(5),
    );

    let started = Instant::now();
    let answer = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();

    assert_eq!(answer.attempts(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let ids: Vec<String> = requests
        .iter()
        .map(|r| support::header_of(r, "ms-requestid"))
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "one MS-RequestId for all attempts: {ids:?}"
    );
    let correlation: Vec<String> = requests
        .iter()
        .map(|r| support::header_of(r, "ms-correlationid"))
        .collect();
    assert!(correlation.iter().all(|id| id == &correlation[0]));
}

#[tokio::test]
async fn errors_that_a_retry_cannot_mend_are_sent_once() {
    for status in [400, 401, 403, 404, 409] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(
            &server.uri(),
            support::TOKEN,
            quick_policy(),
            Duration::from_secs(5),
        );

        let error = client
            .create_upgrade(&support::azure_request())
            .await
            .unwrap_err();

        assert_eq!((error.status(), error.attempts()), (Some(status), 1));
    }
}

#[tokio::test]
async fn after_the_last_attempt_the_last_real_error_is_returned_with_the_attempt_count() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(504)
                .set_body_json(json!({ "code": 504, "description": "The gateway timed out." })),
        )
        .mount(&server)
        .await;
    let policy = RetryPolicy {
        max_attempts: 4,
        ..quick_policy()
    };
    let client = client_for(
        &server.uri(),
        support::TOKEN,
        policy,
        Duration::from_secs(5),
    );

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!((error.status(), error.attempts()), (Some(504), 4));
    assert!(error.to_string().contains("after 4 attempts"), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_deadline_stops_retries_that_retry_after_would_push_past_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let policy = RetryPolicy {
        deadline: Duration::from_secs(2),
        retry_after_cap: Duration::from_secs(60),
        ..quick_policy()
    };
    let client = client_for(
        &server.uri(),
        support::TOKEN,
        policy,
        Duration::from_secs(5),
    );

    let started = Instant::now();
    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(429));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at once, did not sleep 30 s"
    );
}

#[tokio::test]
async fn a_dropped_connection_on_create_is_retried_and_creates_one_upgrade() {
    let mock = mock().await;
    let client = mock_client(&mock);
    let request = UpgradeRequest::azure(new_customer());
    mock.script([Fault::DropBefore]);

    let created = client.create_upgrade(&request).await.unwrap();

    assert_eq!(created.attempts(), 2);
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test]
async fn an_answer_lost_after_create_is_replayed_by_the_retry_and_creates_one_upgrade() {
    let mock = mock().await;
    let client = mock_client(&mock);
    let request = UpgradeRequest::azure(new_customer());
    mock.script([Fault::DropAfter]);

    let created = client.create_upgrade(&request).await.unwrap();
    let eligibility = client
        .check_eligibility(&request)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(created.attempts(), 2);
    assert_eq!(
        mock.upgrades_created(),
        1,
        "the retry got the first answer, not a 409 or a second upgrade"
    );
    assert_eq!(eligibility.upgrade_id, Some(created.into_inner()));
}

#[tokio::test]
async fn a_slow_answer_past_the_request_timeout_is_retried_without_a_second_upgrade() {
    let mock = mock().await;
    let client = client_for(
        &mock.url(),
        mock.token(),
        quick_policy(),
        Duration::from_millis(300),
    );
    let request = UpgradeRequest::azure(new_customer());
    mock.script([Fault::Slow(Duration::from_millis(800))]);

    let created = client.create_upgrade(&request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await; // let the slow first request finish

    // At least one retry; a loaded machine may need more, which must not matter either.
    assert!(created.attempts() >= 2, "{}", created.attempts());
    assert_eq!(mock.upgrades_created(), 1);
    let status = client
        .get_upgrade_status(created.into_inner(), &request)
        .await;
    assert!(status.is_ok());
}

#[tokio::test]
async fn upgrade_customer_creates_polls_and_reports_every_status_under_one_correlation_id() {
    let mock = mock().await;
    let client = mock_client(&mock);
    let mut seen = Vec::new();

    let outcome = client
        .upgrade_customer(
            new_customer(),
            ProductFamily::azure(),
            &quick_polls(),
            |u| seen.push(u.status.clone()),
        )
        .await
        .unwrap();

    let UpgradeOutcome::Completed { upgrade, resumed } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(!resumed);
    assert_eq!(upgrade.status, UpgradeStatus::Completed);
    assert_eq!(seen, [UpgradeStatus::InProgress, UpgradeStatus::Completed]);
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test]
async fn upgrade_customer_follows_an_upgrade_already_under_way() {
    let mock = mock().await;
    let client = mock_client(&mock);
    let customer = new_customer();
    let existing = client
        .create_upgrade(&UpgradeRequest::azure(customer))
        .await
        .unwrap()
        .into_inner();

    let outcome = client
        .upgrade_customer(customer, ProductFamily::azure(), &quick_polls(), |_| {})
        .await
        .unwrap();

    let UpgradeOutcome::Completed { upgrade, resumed } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(resumed);
    assert_eq!(upgrade.id, existing);
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test]
async fn a_409_on_create_leads_to_the_existing_upgrade_not_an_error() {
    // Eligibility says eligible (a race: another process creates the upgrade in between), the
    // create answers 409, and eligibility then names the upgrade under way.
    let server = MockServer::start().await;
    let upgrade = support::UPGRADE;
    Mock::given(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": support::CUSTOMER, "productFamily": "Azure", "isEligible": true })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": support::CUSTOMER, "productFamily": "Azure", "isEligible": false,
            "upgradeId": upgrade })))
        .mount(&server)
        .await;
    Mock::given(path("/v1/productUpgrades"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "code": 900109, "description": "The original upgrade is in progress." })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(format!("/v1/productUpgrades/{upgrade}/status")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": upgrade, "productFamily": "Azure", "status": "Completed", "lineItems": [] })))
        .mount(&server)
        .await;
    let client = client_for(
        &server.uri(),
        support::TOKEN,
        quick_policy(),
        Duration::from_secs(5),
    );

    let outcome = client
        .upgrade_customer(
            CustomerId::parse(support::CUSTOMER).unwrap(),
            ProductFamily::azure(),
            &quick_polls(),
            |_| {},
        )
        .await
        .unwrap();

    assert!(
        matches!(outcome, UpgradeOutcome::Completed { resumed: true, .. }),
        "{outcome:?}"
    );
    let correlation: std::collections::HashSet<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| support::header_of(r, "ms-correlationid"))
        .collect();
    assert_eq!(correlation.len(), 1, "one MS-CorrelationId spans the flow");
}

#[tokio::test]
async fn a_customer_who_cannot_be_upgraded_gets_a_typed_answer_with_the_reason() {
    let mock = mock().await;
    let client = mock_client(&mock);

    let outcome = client
        .upgrade_customer(
            CustomerId::parse(partner_center_mock::NO_AZURE_CUSTOMER).unwrap(),
            ProductFamily::azure(),
            &quick_polls(),
            |_| {},
        )
        .await
        .unwrap();

    let UpgradeOutcome::NotEligible { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.unwrap().contains("no Microsoft Azure"));
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test]
async fn a_failed_upgrade_is_a_failed_outcome_with_its_details() {
    let mock = mock().await;
    let client = mock_client(&mock);

    let outcome = client
        .upgrade_customer(
            CustomerId::parse(partner_center_mock::FAILING_CUSTOMER).unwrap(),
            ProductFamily::azure(),
            &quick_polls(),
            |_| {},
        )
        .await
        .unwrap();

    let UpgradeOutcome::Failed { upgrade, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        upgrade
            .error_details
            .unwrap()
            .code
            .map(|c| c.to_string())
            .as_deref(),
        Some("900120")
    );
}

#[tokio::test]
async fn waiting_past_the_deadline_is_a_deadline_error_and_a_second_call_resumes_the_upgrade() {
    let mock = support::start_mock(MockConfig {
        polls_to_complete: 50,
        ..MockConfig::default()
    })
    .await;
    let client = mock_client(&mock);
    let customer = new_customer();
    let short = PollOptions {
        deadline: Duration::from_millis(100),
        ..quick_polls()
    };

    let error = client
        .upgrade_customer(customer, ProductFamily::azure(), &short, |_| {})
        .await
        .unwrap_err();
    let resumed = client
        .upgrade_customer(customer, ProductFamily::azure(), &quick_polls(), |_| {})
        .await
        .unwrap();

    assert_eq!(error.kind(), ErrorKind::Deadline, "{error}");
    assert!(
        matches!(resumed, UpgradeOutcome::Completed { resumed: true, .. }),
        "{resumed:?}"
    );
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test]
async fn a_dropped_flow_future_loses_nothing_a_second_call_cannot_resume() {
    let mock = mock().await;
    let client = mock_client(&mock);
    let customer = new_customer();

    // Drop the flow partway: right after it has created the upgrade and read its first status.
    let slow_polls = PollOptions {
        interval: Duration::from_secs(60),
        ..quick_polls()
    };
    let (first_status, polled) = tokio::sync::oneshot::channel::<()>();
    let mut first_status = Some(first_status);
    let flow = client.upgrade_customer(customer, ProductFamily::azure(), &slow_polls, |_| {
        if let Some(tell) = first_status.take() {
            let _ = tell.send(());
        }
    });
    tokio::select! {
        finished = flow => panic!("the flow should still be waiting to poll again: {finished:?}"),
        _ = polled => {} // the flow future is dropped here
    }
    let outcome = client
        .upgrade_customer(customer, ProductFamily::azure(), &quick_polls(), |_| {})
        .await
        .unwrap();

    assert!(
        matches!(outcome, UpgradeOutcome::Completed { resumed: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(mock.upgrades_created(), 1);
}

mod properties {
    //! The properties of issue 4: faults the retry budget can absorb change nothing, and no
    //! answer, whatever its bytes, makes the client panic.

    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;

    use super::*;

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            Just(Fault::Throttle { retry_after: 0 }),
            prop_oneof![Just(500u16), Just(502), Just(503), Just(504)].prop_map(Fault::ServerError),
            Just(Fault::DropBefore),
            Just(Fault::DropAfter),
            (1u64..40).prop_map(|ms| Fault::Slow(Duration::from_millis(ms))),
        ]
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24),
            ..ProptestConfig::default()
        })]

        /// Up to 5 faults in a row, with 6 attempts per call, always end in success within the
        /// budget: the flow's outcome is the fault-free one, with exactly one upgrade.
        #[test]
        fn faults_within_the_retry_budget_change_neither_the_outcome_nor_the_upgrade_count(
            schedule in prop::collection::vec(fault(), 0..=5),
        ) {
            let runtime = runtime();
            let (outcome, created) = runtime.block_on(async {
                let mock = mock().await;
                let policy = RetryPolicy { max_attempts: 6, ..quick_policy() };
                let client = client_for(&mock.url(), mock.token(), policy, Duration::from_secs(5));
                mock.script(schedule.clone());
                let outcome = client
                    .upgrade_customer(new_customer(), ProductFamily::azure(), &quick_polls(), |_| {})
                    .await;
                (outcome, mock.upgrades_created())
            });
            let outcome = outcome.map_err(|e| TestCaseError::fail(format!("{schedule:?}: {e}")))?;
            prop_assert!(
                matches!(&outcome, UpgradeOutcome::Completed { resumed: false, upgrade } if upgrade.status == UpgradeStatus::Completed),
                "{:?}: {:?}", schedule, outcome
            );
            prop_assert_eq!(created, 1, "{:?}", schedule);
        }

        /// Any status and any bytes as the answer to any operation: a typed value or a typed
        /// error that keeps an error status, never a panic.
        #[test]
        fn any_answer_bytes_for_any_status_give_a_typed_result(
            status in 200u16..600,
            body in prop::collection::vec(any::<u8>(), 0..512),
            json_like in any::<bool>(),
            operation in 0u8..3,
        ) {
            let runtime = runtime();
            runtime.block_on(async {
                let answer = Arc::new(Mutex::new((status, body.clone(), json_like)));
                let server = MockServer::start().await;
                let shared = Arc::clone(&answer);
                Mock::given(method("POST"))
                    .respond_with(move |_: &wiremock::Request| {
                        let (status, body, json_like) = shared.lock().unwrap().clone();
                        let template = ResponseTemplate::new(status);
                        if json_like {
                            template.set_body_raw(body, "application/json")
                        } else {
                            template.set_body_bytes(body)
                        }
                    })
                    .mount(&server)
                    .await;
                let client = client_for(&server.uri(), support::TOKEN, RetryPolicy::none(), Duration::from_secs(5));
                let request = support::azure_request();
                let upgrade = partner_center_upgrades::UpgradeId::parse(support::UPGRADE).unwrap();
                let error = match operation {
                    0 => client.check_eligibility(&request).await.err(),
                    1 => client.create_upgrade(&request).await.err(),
                    _ => client.get_upgrade_status(upgrade, &request).await.err(),
                };
                if let Some(error) = error {
                    // Display and Debug must work on whatever came back.
                    let _ = (error.to_string(), format!("{error:?}"));
                    if (400..600).contains(&status) {
                        assert_eq!(error.status(), Some(status), "{error}");
                    }
                }
            });
        }
    }
}

#[tokio::test]
async fn an_unknown_status_keeps_polling_and_is_reported_not_treated_as_done() {
    let server = MockServer::start().await;
    let upgrade = support::UPGRADE;
    let status_path = format!("/v1/productUpgrades/{upgrade}/status");
    for status in ["Reconciling", "InProgress"] {
        Mock::given(path(status_path.clone()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": upgrade, "productFamily": "Azure", "status": status, "lineItems": [] })))
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(path(status_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": upgrade, "productFamily": "Azure", "status": "completed", "lineItems": [] })))
        .mount(&server)
        .await;
    let client = client_for(
        &server.uri(),
        support::TOKEN,
        quick_policy(),
        Duration::from_secs(5),
    );
    let mut seen = Vec::new();

    let done = client
        .wait_for_completion(
            partner_center_upgrades::UpgradeId::parse(upgrade).unwrap(),
            &support::azure_request(),
            &quick_polls(),
            |u| seen.push(u.status.clone()),
        )
        .await
        .unwrap();

    assert_eq!(
        seen,
        [
            UpgradeStatus::Unknown("Reconciling".into()),
            UpgradeStatus::InProgress,
            UpgradeStatus::Completed
        ]
    );
    assert_eq!(done.status, UpgradeStatus::Completed);
}
