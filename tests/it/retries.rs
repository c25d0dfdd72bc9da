//! Retries: one logical call, one `MS-RequestId` on every attempt, against wiremock (to see
//! exactly what was sent) and the stateful mock (to count upgrades), with injected faults.

use std::time::Duration;

use partner_center_mock::Fault;
use partner_center_upgrades::{RetryPolicy, UpgradeRequest};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::traces::Spans;
use crate::support::{self, client_with as client_for, new_customer, quick_policy};

use support::{default_mock as mock, mock_client};

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

    let (spans, _guard) = Spans::capture();
    let answer = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();

    assert_eq!(answer.attempts(), 3);
    // What the client decided to wait, as it traced it: the 429's `Retry-After: 1` (1000 ms)
    // after the first attempt, then a backoff after the 503.
    let waits = spans.values("partner_center.attempt", "retry_in_ms");
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert_eq!(waits[0], "1000", "Retry-After: 1 was honoured: {waits:?}");
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

    let (spans, _guard) = Spans::capture();
    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!((error.status(), error.attempts()), (Some(429), 1));
    assert!(
        spans
            .values("partner_center.attempt", "retry_in_ms")
            .is_empty(),
        "gave up at once: it never decided to sleep the 30 s"
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
