//! `pc-upgrade` end to end, as a process against the mock on loopback.

use std::process::Output;

use partner_center_mock::{FaultRates, MockConfig, RunningMock};

async fn mock_with(config: MockConfig) -> RunningMock {
    crate::support::start_mock(config).await
}

/// Runs `pc-upgrade` with the mock's token in PARTNER_CENTER_TOKEN (unless `token` says
/// otherwise) and quick retries and polls.
async fn pc_upgrade(mock: &RunningMock, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = crate::support::pc_upgrade_command();
    command
        .args(["--base-url", &mock.url(), "--retry-delay", "10ms"])
        .args(args);
    if let Some(token) = token.or(Some(mock.token())).filter(|t| !t.is_empty()) {
        command.env("PARTNER_CENTER_TOKEN", token);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn customer() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_wait_against_a_faulty_mock_completes_with_one_upgrade() {
    let mock = mock_with(MockConfig {
        seed: 11,
        faults: "429=0.1,5xx=0.1,drop=0.05,drop-after=0.05,retry-after=0"
            .parse::<FaultRates>()
            .unwrap(),
        ..MockConfig::default()
    })
    .await;
    let id = customer();

    let output = pc_upgrade(
        &mock,
        None,
        &[
            "--max-attempts",
            "8",
            "--output",
            "json",
            "upgrade",
            "--customer",
            &id,
            "--wait",
            "--poll-interval",
            "20ms",
        ],
    )
    .await;

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let outcome: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(outcome["outcome"], "completed");
    assert_eq!(outcome["upgrade"]["status"], "Completed");
    assert_eq!(mock.upgrades_created(), 1);
    assert!(
        stderr(&output).contains("Completed"),
        "progress goes to stderr: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligibility_create_and_status_print_what_an_operator_needs() {
    let mock = mock_with(MockConfig::default()).await;
    let id = customer();

    let eligible = pc_upgrade(&mock, None, &["eligibility", "--customer", &id]).await;
    let created = pc_upgrade(
        &mock,
        None,
        &["create", "--customer", &id, "--family", "azure"],
    )
    .await;
    let upgrade = stdout(&created).trim().to_owned();
    let status = pc_upgrade(
        &mock,
        None,
        &[
            "--output",
            "json",
            "status",
            "--customer",
            &id,
            "--upgrade",
            &upgrade,
        ],
    )
    .await;
    let not_now = pc_upgrade(&mock, None, &["eligibility", "--customer", &id]).await;

    assert_eq!(eligible.status.code(), Some(0));
    assert!(
        stdout(&eligible).contains("is eligible for Azure"),
        "{}",
        stdout(&eligible)
    );
    assert_eq!(created.status.code(), Some(0));
    assert!(
        uuid::Uuid::try_parse(&upgrade).is_ok(),
        "create prints the upgrade id: {upgrade:?}"
    );
    let status_json: serde_json::Value = serde_json::from_str(stdout(&status).trim()).unwrap();
    assert_eq!(status_json["id"], upgrade);
    assert_eq!(status_json["status"], "InProgress");
    assert_eq!(
        not_now.status.code(),
        Some(3),
        "an upgrade under way makes the customer not eligible"
    );
    assert!(stdout(&not_now).contains(&upgrade));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_eligible_and_failed_upgrades_have_their_own_exit_codes() {
    let mock = mock_with(MockConfig::default()).await;

    let not_eligible = pc_upgrade(
        &mock,
        None,
        &[
            "upgrade",
            "--customer",
            partner_center_mock::NO_AZURE_CUSTOMER,
            "--wait",
        ],
    )
    .await;
    let failed = pc_upgrade(
        &mock,
        None,
        &[
            "upgrade",
            "--customer",
            partner_center_mock::FAILING_CUSTOMER,
            "--wait",
            "--poll-interval",
            "10ms",
        ],
    )
    .await;

    assert_eq!(
        not_eligible.status.code(),
        Some(3),
        "{}",
        stderr(&not_eligible)
    );
    assert!(stdout(&not_eligible).contains("no Microsoft Azure"));
    assert_eq!(failed.status.code(), Some(4), "{}", stderr(&failed));
    assert!(stdout(&failed).contains("Failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_refused_before_any_request_with_what_to_fix() {
    let mock = mock_with(MockConfig::default()).await;
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (
            &["eligibility", "--customer", "not-a-guid"],
            None,
            "is not a GUID",
        ),
        (
            &[
                "eligibility",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
                "--family",
                " ",
            ],
            None,
            "product family is empty",
        ),
        (
            &[
                "status",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
                "--upgrade",
                "42",
            ],
            None,
            "upgrade id",
        ),
        (
            &[
                "eligibility",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
            ],
            Some(""),
            "PARTNER_CENTER_TOKEN",
        ),
        (
            &[
                "eligibility",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
            ],
            Some("Bearer abc"),
            "pass the token alone",
        ),
        (
            &[
                "--locale",
                "en US",
                "eligibility",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
            ],
            None,
            "language tag",
        ),
        (
            &[
                "upgrade",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
                "--wait",
                "--timeout",
                "soon",
            ],
            None,
            "--timeout",
        ),
    ];
    for (args, token, says) in cases {
        let output = pc_upgrade(&mock, *token, args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(mock.requests(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_remote_host_is_refused() {
    let output = tokio::task::spawn_blocking(|| {
        crate::support::pc_upgrade_command()
            .args([
                "--base-url",
                "http://partner.example",
                "eligibility",
                "--customer",
                "4c721420-72ad-4708-a0a7-371a2f7b0969",
            ])
            .env("PARTNER_CENTER_TOKEN", "abc")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("use https"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_error_exits_5_without_printing_the_token() {
    let mock = mock_with(MockConfig::default()).await;

    let output = pc_upgrade(
        &mock,
        Some("a-wrong-but-secret-token"),
        &["eligibility", "--customer", &customer()],
    )
    .await;

    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("HTTP 401"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("a-wrong-but-secret-token"));
    assert!(!stdout(&output).contains("a-wrong-but-secret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_exits_6_and_the_upgrade_goes_on() {
    let mock = mock_with(MockConfig {
        polls_to_complete: 1000,
        ..MockConfig::default()
    })
    .await;
    let id = customer();

    let output = pc_upgrade(
        &mock,
        None,
        &[
            "upgrade",
            "--customer",
            &id,
            "--wait",
            "--timeout",
            "1s",
            "--poll-interval",
            "20ms",
        ],
    )
    .await;

    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("waiting again resumes it"),
        "{}",
        stderr(&output)
    );
    assert_eq!(mock.upgrades_created(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_every_exchange_without_the_token_and_the_recordings_conform() {
    // A token shaped like a real one, with a distinctive signature part to look for.
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZWNvcmQtdGVzdCJ9.c2lnbmF0dXJlLXNlY3JldC1wYXJ0";
    let mock = mock_with(MockConfig {
        token: token.into(),
        ..MockConfig::default()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("pc-upgrade-record-{}", uuid::Uuid::new_v4()));
    let id = customer();

    let output = pc_upgrade(
        &mock,
        Some(token),
        &[
            "--record",
            dir.to_str().unwrap(),
            "upgrade",
            "--customer",
            &id,
            "--wait",
            "--poll-interval",
            "20ms",
        ],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Eligibility, create, and at least two polls (the mock completes on the second).
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for secret in [token, "c2lnbmF0dXJlLXNlY3JldC1wYXJ0", "Bearer"] {
            assert!(
                !text.contains(secret),
                "{} holds {secret:?}",
                file.display()
            );
        }
        assert!(!text.to_ascii_lowercase().contains("\"authorization\""));
    }
    let checked =
        partner_center_contract::recordings::check_dir(crate::support::spec::spec(), &dir, true)
            .unwrap();
    assert_eq!(checked.cases.len(), files.len());
    let failed: Vec<_> = checked.failed().collect();
    assert!(failed.is_empty(), "{failed:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A JSON Web Token with `claims` (unsigned: `whoami` reads claims, it does not verify).
fn jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"signature-part-that-is-secret")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_says_plainly_what_is_wrong_with_a_token_and_never_prints_it() {
    let in_an_hour = chrono::Utc::now().timestamp() + 3600;
    let cases = [
        (
            serde_json::json!({ "aud": "https://api.partnercenter.microsoft.com", "tid": "t", "upn": "ops@contoso.com",
                "scp": "user_impersonation", "amr": ["pwd", "mfa"], "exp": in_an_hour }),
            0,
            "ops@contoso.com",
        ),
        (
            serde_json::json!({ "aud": "https://api.partnercenter.microsoft.com", "scp": "user_impersonation",
                "amr": ["pwd"], "exp": in_an_hour }),
            7,
            "multi-factor",
        ),
        (
            serde_json::json!({ "aud": "https://api.partnercenter.microsoft.com", "roles": ["x"], "idtyp": "app", "exp": in_an_hour }),
            7,
            "app-only",
        ),
        (
            serde_json::json!({ "aud": "https://graph.microsoft.com", "scp": "x", "amr": ["mfa"], "exp": in_an_hour }),
            7,
            "not Partner Center",
        ),
        (
            serde_json::json!({ "aud": "https://api.partnercenter.microsoft.com", "scp": "x", "amr": ["mfa"], "exp": 1000 }),
            7,
            "expired",
        ),
    ];
    for (claims, code, says) in cases {
        let token = jwt(claims.clone());
        let output = tokio::task::spawn_blocking(move || {
            crate::support::pc_upgrade_command()
                .arg("whoami")
                .env("PARTNER_CENTER_TOKEN", &token)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let printed = format!("{}{}", stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(code), "{claims}: {printed}");
        assert!(printed.contains(says), "{claims}: {printed}");
        assert!(
            !printed.contains("c2lnbmF0dXJl"),
            "the token was printed: {printed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_an_app_or_tenant_says_which_variables_to_set() {
    let output = tokio::task::spawn_blocking(|| {
        crate::support::pc_upgrade_command()
            .arg("login")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("PARTNER_CENTER_CLIENT_ID"),
        "{}",
        stderr(&output)
    );
}
