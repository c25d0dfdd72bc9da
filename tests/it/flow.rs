//! The whole flow: start (create or follow), poll to the end, resume after a failure or a
//! dropped future, against wiremock and the stateful mock.

use std::time::Duration;

use partner_center_mock::MockConfig;
use partner_center_upgrades::{
    CustomerId, ErrorKind, PollOptions, ProductFamily, UpgradeOutcome, UpgradeRequest,
    UpgradeStatus,
};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, client_with as client_for, new_customer, quick_policy, quick_polls};

use support::{default_mock as mock, mock_client};

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
