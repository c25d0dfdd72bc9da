//! The mock at the scale of a real customer book (issue 12): scenario outcomes per customer, as
//! the real client meets them; scenarios the spec would reject, refused at start with the
//! customer named; the throttle (429 with `Retry-After` and Partner Center's throttling body
//! beyond the burst, counted); the ledger and traffic pages and their token; and ten thousand
//! customers within a memory bound.
//!
//! Nothing here asserts on the wall clock: the throttle runs at a rate so small that no token
//! comes back during a test, and the slow outcome is measured in paused tokio time.

use std::time::Duration;

use futures_util::StreamExt;
use partner_center_mock::{
    LedgerReport, MockConfig, Outcome, RunningMock, Scenario, ScenarioError, ThrottleConfig,
};
use partner_center_upgrades::{
    CustomerId, ProductFamily, RetryPolicy, Start, UpgradeOutcome, UpgradeRequest, UpgradeStatus,
};
use serde_json::{Value, json};
use uuid::Uuid;

fn scenario(entries: Value) -> Scenario {
    Scenario::from_value(&json!({ "customers": entries })).expect("a valid scenario")
}

async fn mock_with(scenario: Scenario) -> RunningMock {
    crate::support::start_mock(MockConfig {
        scenario: Some(scenario),
        ..MockConfig::default()
    })
    .await
}

fn request(customer: Uuid) -> UpgradeRequest {
    UpgradeRequest::azure(CustomerId::from_uuid(customer))
}

/// A client that does not retry, so each call is one request.
fn client(mock: &RunningMock) -> partner_center_upgrades::Client {
    crate::support::client_with(
        &mock.url(),
        mock.token(),
        RetryPolicy::none(),
        Duration::from_secs(10),
    )
}

fn http() -> reqwest::Client {
    crate::support::raw_http_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// POSTs the body of `customer` to `path` with the mock's token and `request_id`: the status,
/// headers and JSON body.
async fn post(
    http: &reqwest::Client,
    mock: &RunningMock,
    path: &str,
    customer: Uuid,
    request_id: Uuid,
) -> (u16, reqwest::header::HeaderMap, Option<Value>) {
    let response = http
        .post(format!("{}{path}", mock.url()))
        .bearer_auth(mock.token())
        .header("ms-requestid", request_id.to_string())
        .json(&json!({ "customerId": customer, "productFamily": "Azure" }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).ok())
}

/// GETs one of the mock's pages with `token` (none when `None`): the status and JSON body.
async fn page(
    http: &reqwest::Client,
    mock: &RunningMock,
    path: &str,
    token: Option<&str>,
) -> (u16, Option<Value>) {
    let mut request = http.get(format!("{}{path}", mock.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.ok())
}

fn customer_in(report: &LedgerReport, customer: Uuid) -> &partner_center_mock::CustomerLedger {
    report
        .customers
        .iter()
        .find(|c| c.customer_id == customer)
        .unwrap_or_else(|| panic!("{customer} is not in the ledger"))
}

#[tokio::test]
async fn a_not_eligible_customer_gets_its_reason_and_its_create_is_refused() {
    let customer = Uuid::new_v4();
    let mock = mock_with(scenario(json!({
        customer.to_string(): { "outcome": "notEligible", "reason": "No Azure subscriptions" }
    })))
    .await;
    let client = client(&mock);

    let eligibility = client
        .check_eligibility(&request(customer))
        .await
        .unwrap()
        .into_inner();
    let refused = client.create_upgrade(&request(customer)).await.unwrap_err();
    let other = client
        .check_eligibility(&request(Uuid::new_v4()))
        .await
        .unwrap()
        .into_inner();

    assert!(!eligibility.is_eligible);
    assert_eq!(
        eligibility.reason.as_deref(),
        Some("No Azure subscriptions")
    );
    assert_eq!(eligibility.upgrade_id, None);
    assert_eq!(
        (refused.status(), refused.has_service_code(900120)),
        (Some(403), true),
        "{refused}"
    );
    assert!(other.is_eligible, "customers not listed behave as before");
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test]
async fn a_not_eligible_customer_with_a_code_is_refused_with_that_status_and_error_body() {
    let (forbidden, bad) = (Uuid::new_v4(), Uuid::new_v4());
    let mock = mock_with(scenario(json!({
        forbidden.to_string(): { "outcome": "notEligible", "reason": "text", "code": 900108, "status": 403 },
        bad.to_string(): { "outcome": "notEligible", "reason": "suspended", "code": 900105, "status": 400 },
    })))
    .await;
    let client = client(&mock);

    let eligibility = client
        .check_eligibility(&request(forbidden))
        .await
        .unwrap_err();
    let create = client
        .create_upgrade(&request(forbidden))
        .await
        .unwrap_err();
    let other = client.check_eligibility(&request(bad)).await.unwrap_err();

    for error in [&eligibility, &create] {
        assert_eq!(error.status(), Some(403), "{error}");
        assert!(error.has_service_code(900108), "{error}");
        let body = error
            .service_error()
            .expect("the Partner Center error body");
        assert_eq!(body.description, "text");
        assert_eq!(body.source.as_deref(), Some("PartnerFD"));
    }
    assert_eq!(
        (other.status(), other.has_service_code(900105)),
        (Some(400), true)
    );
    // On the wire, the body is the one the spec's ServiceError describes.
    let (status, _, body) = post(
        &http(),
        &mock,
        "/v1/productUpgrades/eligibility",
        forbidden,
        Uuid::new_v4(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body.unwrap(),
        json!({ "code": 900108, "description": "text", "data": [], "source": "PartnerFD" })
    );
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test]
async fn an_under_way_customer_has_an_upgrade_from_the_start_that_is_followed_not_created() {
    let customer = Uuid::new_v4();
    let mock = mock_with(scenario(
        json!({ customer.to_string(): { "outcome": "underWay" } }),
    ))
    .await;
    let client = client(&mock);

    let eligibility = client
        .check_eligibility(&request(customer))
        .await
        .unwrap()
        .into_inner();
    let conflict = client.create_upgrade(&request(customer)).await.unwrap_err();
    let ledger = mock.ledger();

    assert!(!eligibility.is_eligible);
    let existing = eligibility.upgrade_id.expect("eligibility names it");
    assert_eq!(
        (conflict.status(), conflict.has_service_code(900109)),
        (Some(409), true)
    );
    let entry = customer_in(&ledger, customer);
    assert_eq!((entry.created, entry.preexisting), (0, 1));
    assert_eq!(
        entry.latest_upgrade_id.map(|id| id.to_string()),
        Some(existing.to_string())
    );
    assert_eq!(entry.latest_status, Some("InProgress"));
    assert_eq!((ledger.totals.created, ledger.totals.preexisting), (0, 1));

    // The flow follows it to the end after the usual polls, creating nothing.
    let outcome = crate::support::mock_client(&mock)
        .upgrade_customer(
            CustomerId::from_uuid(customer),
            ProductFamily::azure(),
            &crate::support::quick_polls(),
            |_| {},
        )
        .await
        .unwrap();
    match outcome {
        UpgradeOutcome::Completed { upgrade, resumed } => {
            assert!(resumed);
            assert_eq!(upgrade.id, existing);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.upgrades_created(), 0);
    assert_eq!(
        customer_in(&mock.ledger(), customer).latest_status,
        Some("Completed")
    );
}

#[tokio::test]
async fn a_customer_failing_at_poll_three_is_in_progress_twice_then_failed_with_its_details() {
    let customer = Uuid::new_v4();
    let mock = mock_with(scenario(json!({
        customer.to_string(): { "outcome": "failsAtPoll", "poll": 3, "code": 900120, "description": "text" }
    })))
    .await;
    let client = client(&mock);
    let id = client
        .create_upgrade(&request(customer))
        .await
        .unwrap()
        .into_inner();

    let mut polls = Vec::new();
    for _ in 0..3 {
        polls.push(
            client
                .get_upgrade_status(id, &request(customer))
                .await
                .unwrap()
                .into_inner(),
        );
    }

    assert_eq!(polls[0].status, UpgradeStatus::InProgress);
    assert_eq!(polls[1].status, UpgradeStatus::InProgress);
    assert!(polls[1].error_details.is_none());
    let failed = &polls[2];
    assert_eq!(failed.status, UpgradeStatus::Failed);
    for details in [
        failed.error_details.as_ref(),
        failed.line_items[0].error_details.as_ref(),
    ] {
        let details = details.expect("errorDetails, top level and line item");
        assert_eq!(
            details.code.as_ref().map(ToString::to_string).as_deref(),
            Some("900120")
        );
        assert_eq!(details.text(), Some("text"));
    }
    assert_eq!(
        customer_in(&mock.ledger(), customer).latest_status,
        Some("Failed")
    );
}

/// How long the answers wait is the mock's unit test's (`scenario_delays_are_slept_before_each_answer`,
/// in paused time); this one counts the polls and checks that slow answers still arrive whole.
#[tokio::test]
async fn a_slow_customer_takes_its_polls_and_its_answers_still_arrive() {
    let (slow, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mock = mock_with(scenario(json!({
        slow.to_string(): { "outcome": "slow", "polls": 4, "delayMs": 20 }
    })))
    .await;
    let client = client(&mock);

    let mut statuses = Vec::new();
    for customer in [slow, other] {
        let id = client
            .create_upgrade(&request(customer))
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        loop {
            let status = client
                .get_upgrade_status(id, &request(customer))
                .await
                .unwrap()
                .into_inner()
                .status;
            seen.push(status.clone());
            if status != UpgradeStatus::InProgress || seen.len() == 10 {
                break;
            }
        }
        statuses.push(seen);
    }

    use UpgradeStatus::{Completed, InProgress};
    assert_eq!(statuses[0], [InProgress, InProgress, InProgress, Completed]);
    assert_eq!(statuses[1], [InProgress, Completed], "the usual two polls");
}

#[tokio::test]
async fn a_scenario_the_spec_would_reject_is_refused_at_start_naming_the_customer_and_field() {
    let customer = "4c721420-72ad-4708-a0a7-371a2f7b0969";
    let cases = [
        // ServiceError.description (from reason) is a string.
        (
            json!({ "outcome": "notEligible", "reason": 42, "code": 900108 }),
            "reason",
        ),
        // ServiceErrorCode is an integer or a string.
        (
            json!({ "outcome": "notEligible", "reason": "r", "code": 1.5 }),
            "code",
        ),
        // Eligibility does not declare 418.
        (
            json!({ "outcome": "notEligible", "reason": "r", "code": 1, "status": 418 }),
            "status",
        ),
        (
            json!({ "outcome": "failsAtPoll", "poll": 2, "description": false }),
            "description",
        ),
    ];
    for (entry, field) in cases {
        let config = MockConfig {
            scenario: Some(scenario(json!({ customer: entry.clone() }))),
            ..MockConfig::default()
        };
        let refused = partner_center_mock::start(
            config,
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{entry} was accepted"));
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
        let error = refused
            .get_ref()
            .and_then(|e| e.downcast_ref::<ScenarioError>())
            .expect("the scenario's error");
        assert_eq!(error.customer(), Some(customer), "{error}");
        assert_eq!(error.field(), Some(field), "{error}");
        assert!(refused.to_string().contains(customer), "{refused}");
    }

    // A file's form is checked as it is read: unknown fields, unknown outcomes, ids that are not
    // GUIDs.
    let path = std::env::temp_dir().join(format!("pcu-scenario-{}.json", Uuid::new_v4()));
    for (text, field) in [
        (
            format!(r#"{{"customers": {{"{customer}": {{"outcome": "underWay", "when": 1}}}}}}"#),
            Some("when"),
        ),
        (
            format!(r#"{{"customers": {{"{customer}": {{"outcome": "eligibleLater"}}}}}}"#),
            Some("outcome"),
        ),
        (
            r#"{"customers": {"customer-1": {"outcome": "underWay"}}}"#.to_owned(),
            None,
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let error = Scenario::read(&path).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert!(error.customer().is_some(), "{error}");
    }
    std::fs::remove_file(&path).unwrap();
}

fn throttled_mock(burst: u32) -> MockConfig {
    MockConfig {
        // One token in 1000 s: none comes back during the test.
        throttle: Some(ThrottleConfig { rate: 0.001, burst }),
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn beyond_the_burst_the_throttle_answers_429_with_retry_after_and_the_body_and_counts_it() {
    let mock = crate::support::start_mock(throttled_mock(2)).await;
    let http = http();
    let customers: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();

    let mut answers = Vec::new();
    for customer in &customers {
        answers.push(
            post(
                &http,
                &mock,
                "/v1/productUpgrades",
                *customer,
                Uuid::new_v4(),
            )
            .await,
        );
    }

    assert_eq!(answers[0].0, 202);
    assert_eq!(answers[1].0, 202);
    for (status, headers, body) in &answers[2..] {
        assert_eq!(*status, 429);
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        // The next token is 1000 s away, less what the test has taken.
        assert!((900..=1000).contains(&retry_after), "{retry_after}");
        assert_eq!(
            body.as_ref().unwrap(),
            &json!({
                "statusCode": 429,
                "message": format!("Rate limit is exceeded. Try again in {retry_after} seconds.")
            })
        );
    }
    // Throttled requests had no effect.
    assert_eq!(mock.upgrades_created(), 2);
    assert_eq!(mock.ledger().customers.len(), 2);
    let traffic = mock.traffic();
    assert_eq!((traffic.totals.requests, traffic.totals.throttled), (4, 2));
    let per_second: u64 = traffic.seconds.iter().map(|s| s.counts.throttled).sum();
    assert_eq!(per_second, 2, "the per-second counts add up to the totals");
}

#[tokio::test]
async fn the_throttle_comes_before_faults_and_leaves_the_sign_in_service_alone() {
    let mock = crate::support::start_mock(throttled_mock(1)).await;
    let http = http();
    let first = post(
        &http,
        &mock,
        "/v1/productUpgrades/eligibility",
        Uuid::new_v4(),
        Uuid::new_v4(),
    )
    .await;
    mock.script([partner_center_mock::Fault::ServerError(503)]);

    let throttled = post(
        &http,
        &mock,
        "/v1/productUpgrades/eligibility",
        Uuid::new_v4(),
        Uuid::new_v4(),
    )
    .await;
    // The sign-in service is not the partner's API: it is not throttled, and it meets the
    // scripted fault the throttled request left alone.
    let token = http
        .post(mock.token_endpoint_v2())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=x")
        .send()
        .await
        .unwrap();

    assert_eq!(first.0, 200);
    assert_eq!(throttled.0, 429);
    assert_eq!(throttled.2.unwrap()["statusCode"], json!(429));
    assert_eq!(token.status().as_u16(), 503);
    let totals = mock.traffic().totals;
    assert_eq!(
        (
            totals.requests,
            totals.throttled,
            totals.fault5xx,
            totals.fault429
        ),
        (3, 1, 1, 0)
    );
}

#[tokio::test]
async fn the_ledger_and_traffic_pages_need_the_token_and_are_not_traffic_themselves() {
    let mock = crate::support::default_mock().await;
    let http = http();
    let customer = Uuid::new_v4();
    post(
        &http,
        &mock,
        "/v1/productUpgrades",
        customer,
        Uuid::new_v4(),
    )
    .await;
    let before = (mock.requests(), mock.traffic().totals);

    for path in ["/_mock/ledger", "/_mock/traffic"] {
        assert_eq!(page(&http, &mock, path, None).await.0, 401, "{path}");
        assert_eq!(
            page(&http, &mock, path, Some("not-the-token")).await.0,
            401,
            "{path}"
        );
        let refused = http
            .post(format!("{}{path}", mock.url()))
            .bearer_auth(mock.token())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 405);
        assert_eq!(refused.headers()["allow"], "GET");
    }
    let (status, ledger) = page(&http, &mock, "/_mock/ledger", Some(mock.token())).await;
    let (_, traffic) = page(&http, &mock, "/_mock/traffic", Some(mock.token())).await;

    assert_eq!(status, 200);
    let ledger = ledger.unwrap();
    assert_eq!(
        ledger,
        serde_json::from_str::<Value>(&mock.ledger().to_json()).unwrap()
    );
    assert_eq!(ledger["customers"][0]["customerId"], json!(customer));
    assert_eq!(ledger["customers"][0]["created"], json!(1));
    assert_eq!(ledger["customers"][0]["latestStatus"], json!("InProgress"));
    assert_eq!(ledger["totals"]["created"], json!(1));
    assert_eq!(traffic.unwrap()["totals"]["requests"], json!(1));
    assert_eq!(
        (mock.requests(), mock.traffic().totals),
        before,
        "the pages are not counted"
    );

    // Other paths are the API's, as before: unknown ones answer 404 with the error body.
    let (status, _, body) = post(&http, &mock, "/_mock/upgrades", customer, Uuid::new_v4()).await;
    assert_eq!(status, 404);
    assert_eq!(body.unwrap()["code"], json!(404));
    assert_eq!(mock.requests(), before.0 + 1);
}

#[tokio::test]
async fn the_ledger_counts_creates_once_per_request_id_and_keeps_them_after_eviction() {
    let mock = crate::support::start_mock(MockConfig {
        max_upgrades: 1,
        polls_to_complete: 1,
        ..MockConfig::default()
    })
    .await;
    let http = http();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let request_id = Uuid::new_v4();

    let created = post(&http, &mock, "/v1/productUpgrades", first, request_id).await;
    let replayed = post(&http, &mock, "/v1/productUpgrades", first, request_id).await;
    let conflict = post(&http, &mock, "/v1/productUpgrades", first, Uuid::new_v4()).await;

    assert_eq!((created.0, replayed.0, conflict.0), (202, 202, 409));
    assert_eq!(created.1["location"], replayed.1["location"]);
    let location = created.1["location"].to_str().unwrap().to_owned();
    let upgrade: Uuid = location.rsplit('/').next().unwrap().parse().unwrap();
    let ledger = mock.ledger();
    let entry = customer_in(&ledger, first);
    assert_eq!((entry.created, entry.preexisting), (1, 0));
    assert_eq!(entry.latest_upgrade_id, Some(upgrade));

    // Finished, then forgotten to make room for another customer's: still counted.
    let path = format!("/v1/productUpgrades/{upgrade}/status");
    assert_eq!(
        post(&http, &mock, &path, first, Uuid::new_v4()).await.0,
        200
    );
    assert_eq!(
        post(&http, &mock, "/v1/productUpgrades", second, Uuid::new_v4())
            .await
            .0,
        202
    );
    assert_eq!(mock.upgrades_held(), 1);
    assert_eq!(
        post(&http, &mock, &path, first, Uuid::new_v4()).await.0,
        404,
        "the upgrade record is gone"
    );
    let ledger = mock.ledger();
    let entry = customer_in(&ledger, first);
    assert_eq!(entry.created, 1);
    assert_eq!(entry.latest_upgrade_id, Some(upgrade));
    assert_eq!(entry.latest_status, Some("Completed"));
    assert_eq!(ledger.totals.created, 2);
    assert_eq!(ledger.totals.customers, 2);
}

/// Ten thousand upgrades under way from the start (a scenario) and ten thousand more created and
/// finished by clients: all held at once, counted one by one, within a stated bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_customers_under_way_and_ten_thousand_finished_stay_within_a_memory_bound() {
    const N: usize = 10_000;
    let preexisting: Vec<Uuid> = (0..N).map(|_| Uuid::new_v4()).collect();
    let fresh: Vec<Uuid> = (0..N).map(|_| Uuid::new_v4()).collect();
    let scenario = preexisting
        .iter()
        .fold(Scenario::new(), |s, id| s.with(*id, Outcome::UnderWay));
    let mock = crate::support::start_mock(MockConfig {
        scenario: Some(scenario),
        polls_to_complete: 1,
        ..MockConfig::default()
    })
    .await;
    let held_at_start = mock.upgrades_held();
    let http = http();

    // Create and poll once (finishing it), 16 customers at a time.
    let finished: Vec<u16> = futures_util::stream::iter(fresh.iter().copied())
        .map(|customer| {
            let (http, mock) = (&http, &mock);
            async move {
                let (status, headers, _) =
                    post(http, mock, "/v1/productUpgrades", customer, Uuid::new_v4()).await;
                assert_eq!(status, 202);
                let location = headers["location"].to_str().unwrap();
                let upgrade = location.rsplit('/').next().unwrap();
                let path = format!("/v1/productUpgrades/{upgrade}/status");
                let (status, _, body) = post(http, mock, &path, customer, Uuid::new_v4()).await;
                assert_eq!(body.unwrap()["status"], json!("Completed"));
                status
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    assert!(finished.iter().all(|s| *s == 200));
    assert_eq!(held_at_start, N);
    assert_eq!(mock.upgrades_held(), 2 * N);
    let ledger = mock.ledger();
    assert_eq!(ledger.customers.len(), 2 * N);
    let t = ledger.totals;
    assert_eq!(
        (t.created, t.preexisting, t.in_progress, t.completed),
        (N as u64, N as u64, N as u64, N as u64)
    );
    // A preexisting one is still named by eligibility.
    let (_, _, body) = post(
        &http,
        &mock,
        "/v1/productUpgrades/eligibility",
        preexisting[N / 2],
        Uuid::new_v4(),
    )
    .await;
    assert_eq!(body.unwrap()["isEligible"], json!(false));
    // Stated bound: 20,000 upgrades and their customers' counts under 512 bytes each, and the
    // remembered answers of 20,000 calls within the replay budget; 24 MiB in all.
    let state = mock.retained_bytes() - mock.replay_bytes();
    assert!(state < 2 * N * 512, "{state} bytes for {} upgrades", 2 * N);
    assert!(
        mock.replay_bytes() <= MockConfig::default().replay_budget_bytes,
        "{}",
        mock.replay_bytes()
    );
    assert!(
        mock.retained_bytes() < 24 << 20,
        "{}",
        mock.retained_bytes()
    );
}

#[tokio::test]
async fn a_scenario_file_sets_the_outcomes_of_a_start_upgrade() {
    let (refused, under_way) = (Uuid::new_v4(), Uuid::new_v4());
    let path = std::env::temp_dir().join(format!("pcu-scenario-{}.json", Uuid::new_v4()));
    std::fs::write(
        &path,
        json!({ "customers": {
            refused.to_string(): { "outcome": "notEligible", "reason": "No Azure subscriptions" },
            under_way.to_string(): { "outcome": "underWay" },
        }})
        .to_string(),
    )
    .unwrap();
    let scenario = Scenario::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mock = mock_with(scenario).await;
    let client = client(&mock);

    let not_eligible = client.start_upgrade(&request(refused)).await.unwrap();
    let resumed = client.start_upgrade(&request(under_way)).await.unwrap();

    assert_eq!(
        not_eligible,
        Start::NotEligible {
            reason: Some("No Azure subscriptions".into())
        }
    );
    assert!(matches!(resumed, Start::Resumed { .. }), "{resumed:?}");
    assert_eq!(mock.upgrades_created(), 0);
}

/// The counts `cargo xtask contract` grades schemathesis's stateful phase by: upgrades created
/// and then followed, and status reads of held upgrades that named their own customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_counts_created_upgrades_followed_and_reads_that_named_their_customer() {
    let mock = crate::support::default_mock().await;
    let client = crate::support::mock_client(&mock);
    let (followed, ignored) = (
        crate::support::new_customer(),
        crate::support::new_customer(),
    );
    let request = partner_center_upgrades::UpgradeRequest::azure(followed);
    let id = client.create_upgrade(&request).await.unwrap().into_inner();
    client
        .create_upgrade(&partner_center_upgrades::UpgradeRequest::azure(ignored))
        .await
        .unwrap();
    client.get_upgrade_status(id, &request).await.unwrap();
    client.get_upgrade_status(id, &request).await.unwrap();
    let stranger = partner_center_upgrades::UpgradeRequest::azure(ignored);
    assert!(client.get_upgrade_status(id, &stranger).await.is_err());

    let totals = mock.ledger().totals;
    assert_eq!((totals.created, totals.followed), (2, 1), "{totals:?}");
    assert_eq!(
        (totals.reads_of_held, totals.reads_of_held_ok),
        (3, 2),
        "{totals:?}"
    );
}
