//! Provider verification passes against the mock, passes with warnings against a lenient server
//! (one written from Microsoft's pages alone), and fails, naming the violation, against a server
//! that breaks the contract — lenient or not.

use partner_center_contract::verify::{self, Options, Target, Verification};
use partner_center_mock::{Breakage, MockConfig};

async fn verify_mock(config: MockConfig, cases: usize, strict: bool) -> Verification {
    let mock = crate::support::start_mock(config).await;
    let target = Target {
        base_url: mock.url(),
        token: mock.token().to_owned(),
    };
    let options = Options {
        cases,
        seed: 7,
        strict,
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

fn all_warnings(verification: &Verification) -> Vec<String> {
    verification
        .warned()
        .flat_map(|c| c.warnings.iter().cloned())
        .collect()
}

/// The failures of 100 cases against the mock with `breakage`, strict and lenient.
async fn broken(breakage: Breakage) -> [(bool, Vec<String>); 2] {
    let mut found = Vec::new();
    for lenient in [false, true] {
        let config = MockConfig {
            breakage: Some(breakage),
            lenient,
            ..MockConfig::default()
        };
        found.push((
            lenient,
            all_failures(&verify_mock(config, 100, false).await),
        ));
    }
    found.try_into().unwrap()
}

fn lenient() -> MockConfig {
    MockConfig {
        lenient: true,
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn the_mock_keeps_the_contract_and_every_operation_is_exercised() {
    let verification = verify_mock(MockConfig::default(), 300, false).await;

    assert_eq!(all_failures(&verification), Vec::<String>::new());
    assert_eq!(all_warnings(&verification), Vec::<String>::new());
    assert_eq!(verification.cases.len(), 300);
    assert!(verification.coverage.unexercised_operations().is_empty());
    assert!(verification.requests > 300, "flows send several requests");
}

#[tokio::test]
async fn a_lenient_server_passes_with_warnings() {
    let verification = verify_mock(lenient(), 300, false).await;

    assert_eq!(all_failures(&verification), Vec::<String>::new());
    let warnings = all_warnings(&verification);
    assert!(verification.warned().count() > 0);
    // It accepted a request id that is not a GUID and echoed it: a warning for accepting it,
    // nothing for the echo.
    assert!(
        warnings.iter().any(|w| w.contains("(accepted it)")
            && w.contains("MS-RequestId")
            && w.contains("the documentation does not say it is rejected")),
        "{warnings:#?}"
    );
    for case in verification.warned() {
        assert!(case.name.contains(" negative: "), "{}", case.name);
    }
}

#[tokio::test]
async fn a_lenient_server_fails_a_strict_run() {
    let verification = verify_mock(lenient(), 300, true).await;

    let failures = all_failures(&verification);
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f.ends_with("[strict]")),
        "{failures:#?}"
    );
    assert_eq!(all_warnings(&verification), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_required_field_is_named() {
    for (lenient, failures) in broken(Breakage::MissingField).await {
        assert!(
            failures.iter().any(
                |f| f.contains("breaks ProductUpgradesEligibility") && f.contains("isEligible")
            ),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn a_missing_location_header_is_named() {
    for (lenient, failures) in broken(Breakage::MissingLocation).await {
        assert!(
            failures
                .iter()
                .any(|f| f.contains("status 202 lacks the required Location header")),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn an_undeclared_status_code_is_named() {
    for (lenient, failures) in broken(Breakage::WrongStatus).await {
        assert!(
            failures.iter().any(|f| f
                .contains("POST /v1/productUpgrades: status 201, expected one of the declared")),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_upgrade_on_replay_is_named() {
    for (lenient, failures) in broken(Breakage::DuplicateOnReplay).await {
        assert!(
            failures.iter().any(
                |f| f.contains("replaying create with the same MS-RequestId")
                    && f.contains("not start a second upgrade")
            ),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_type_is_named() {
    for (lenient, failures) in broken(Breakage::WrongType).await {
        assert!(
            failures
                .iter()
                .any(|f| f.contains("breaks ProductUpgradesEligibility")
                    && f.contains("/isEligible")
                    && f.contains("\"true\"")),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn a_malformed_date_is_named() {
    for (lenient, failures) in broken(Breakage::MalformedDate).await {
        assert!(
            failures
                .iter()
                .any(|f| f.contains("breaks ProductUpgradesStatus")
                    && f.contains("/upgradedDate")
                    && f.contains("yesterday")),
            "lenient {lenient}: {failures:#?}"
        );
    }
}

#[tokio::test]
async fn the_same_seed_sends_the_same_cases() {
    let first = verify_mock(MockConfig::default(), 60, false).await;
    let second = verify_mock(MockConfig::default(), 60, false).await;

    let names = |v: &Verification| v.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second));
}
