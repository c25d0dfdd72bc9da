//! Provider verification passes against the mock and fails, naming the violation, against a
//! server that breaks the contract.

use partner_center_contract::verify::{self, Options, Target, Verification};
use partner_center_mock::{Breakage, MockConfig};

async fn verify_mock(breakage: Option<Breakage>, cases: usize) -> Verification {
    let mock = crate::support::start_mock(MockConfig {
        breakage,
        ..MockConfig::default()
    })
    .await;
    let target = Target {
        base_url: mock.url(),
        token: mock.token().to_owned(),
    };
    let options = Options {
        cases,
        seed: 7,
        ..Options::default()
    };
    verify::run(partner_center_contract::spec(), target, options)
        .await
        .unwrap()
}

fn all_failures(verification: &Verification) -> Vec<String> {
    verification
        .failed()
        .flat_map(|c| c.failures.iter().cloned())
        .collect()
}

#[tokio::test]
async fn the_mock_keeps_the_contract_and_every_operation_is_exercised() {
    let verification = verify_mock(None, 300).await;

    assert_eq!(all_failures(&verification), Vec::<String>::new());
    assert_eq!(verification.cases.len(), 300);
    assert!(verification.coverage.unexercised_operations().is_empty());
    assert!(verification.requests > 300, "flows send several requests");
}

#[tokio::test]
async fn a_missing_required_field_is_named() {
    let failures = all_failures(&verify_mock(Some(Breakage::MissingField), 100).await);

    assert!(
        failures
            .iter()
            .any(|f| f.contains("breaks ProductUpgradesEligibility") && f.contains("isEligible")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn a_missing_location_header_is_named() {
    let failures = all_failures(&verify_mock(Some(Breakage::MissingLocation), 100).await);

    assert!(
        failures
            .iter()
            .any(|f| f.contains("status 202 lacks the required Location header")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn an_undeclared_status_code_is_named() {
    let failures = all_failures(&verify_mock(Some(Breakage::WrongStatus), 100).await);

    assert!(
        failures
            .iter()
            .any(|f| f
                .contains("POST /v1/productUpgrades: status 201, expected one of the declared")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn a_duplicate_upgrade_on_replay_is_named() {
    let failures = all_failures(&verify_mock(Some(Breakage::DuplicateOnReplay), 100).await);

    assert!(
        failures.iter().any(
            |f| f.contains("replaying create with the same MS-RequestId")
                && f.contains("not start a second upgrade")
        ),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn the_same_seed_sends_the_same_cases() {
    let first = verify_mock(None, 60).await;
    let second = verify_mock(None, 60).await;

    let names = |v: &Verification| v.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second));
}
