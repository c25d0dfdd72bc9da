//! Fault properties: faults the retry budget can absorb change nothing, and no answer,
//! whatever its bytes, makes the client panic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use partner_center_mock::Fault;
use partner_center_upgrades::{ProductFamily, RetryPolicy, UpgradeOutcome, UpgradeStatus};
use proptest::prelude::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, client_with, new_customer, quick_policy, quick_polls};

use support::default_mock as mock;

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
    #![proptest_config(support::proptest_config(24))]

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
            let client = client_with(&mock.url(), mock.token(), policy, Duration::from_secs(5));
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
            let client = client_with(&server.uri(), support::TOKEN, RetryPolicy::none(), Duration::from_secs(5));
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
