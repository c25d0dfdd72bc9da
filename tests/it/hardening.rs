//! The client and `pc-upgrade` against hostile answers and careless input: each test is one
//! defect an attack found (see SECURITY.md), and failed before its fix.

use std::time::Duration;

use partner_center_upgrades::{
    BaseUrl, Client, ErrorKind, PollOptions, RetryPolicy, Sent, StaticToken, UpgradeId,
};
use proptest::prelude::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::hostile::{Behaviour, Hostile, answer};
use crate::support::{self, CUSTOMER, UPGRADE};

fn retrying_client(base_url: &str, attempts: u32) -> Client {
    let policy = RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        retry_after_floor: Duration::ZERO,
        ..RetryPolicy::default()
    };
    support::client_with(base_url, support::TOKEN, policy, Duration::from_secs(60))
}

fn upgrade_id() -> UpgradeId {
    UpgradeId::parse(UPGRADE).unwrap()
}

fn pc_upgrade() -> std::process::Command {
    support::pc_upgrade_command()
}

async fn output_of(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

// 1. Secrets: nothing a user can put in PARTNER_CENTER_TOKEN panics or reaches any output.
proptest! {
    #![proptest_config(support::proptest_config(24))]
    #[test]
    fn pc_upgrade_never_panics_on_or_prints_a_pasted_token(
        prefix in prop::sample::select(vec!["", "Bearer ", "Bearer\u{a0}", "bearer\t", " "]),
        token in "[^\u{0}]{12,40}",
    ) {
        let secret = format!("{prefix}{token}");
        let output = pc_upgrade()
            .args(["--base-url", "http://127.0.0.1:9", "--max-attempts", "1", "eligibility", "--customer", CUSTOMER])
            .env("PARTNER_CENTER_TOKEN", &secret)
            .output()
            .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        prop_assert_ne!(output.status.code(), Some(101), "panicked: {}", printed);
        prop_assert!(output.status.code().is_some());
        prop_assert!(!printed.contains(token.trim()), "{}", printed);
    }
}

// 2. Proxies never receive a loopback call (and so never its token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_call_never_goes_through_the_environments_proxy() {
    let proxy = Hostile::start(vec![Behaviour::Raw(answer(502, &[], ""))]).await;
    let mock = support::start_mock(partner_center_mock::MockConfig::default()).await;
    let mut command = pc_upgrade();
    command
        .args([
            "--base-url",
            &mock.url(),
            "eligibility",
            "--customer",
            CUSTOMER,
        ])
        .env("PARTNER_CENTER_TOKEN", mock.token());
    for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        command.env(name, proxy.url());
    }

    let output = output_of(command).await;

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(proxy.connections(), 0, "the proxy saw the call");
}

// 4. An endless answer is cut off: a typed error, and the process's memory stays bounded.
#[tokio::test]
async fn an_endless_answer_is_a_typed_error_not_a_memory_leak() {
    let server = Hostile::start(vec![Behaviour::Endless { limit: 64 << 20 }]).await;
    let client = retrying_client(&server.url(), 1);

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::AnswerTooLarge, "{error}");
    assert_eq!(error.sent(), Sent::Yes);
    assert!(error.to_string().contains("longer than"), "{error}");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pc_upgrade_reading_an_endless_answer_stays_under_64_mib() {
    let server = Hostile::start(vec![Behaviour::Endless { limit: 512 << 20 }]).await;
    let mut command = pc_upgrade();
    command
        .args([
            "--base-url",
            &server.url(),
            "--max-attempts",
            "1",
            "eligibility",
            "--customer",
            CUSTOMER,
        ])
        .env("PARTNER_CENTER_TOKEN", "abcdefghijklmnop");
    let peak_kib = tokio::task::spawn_blocking(move || {
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        peak_rss_kib(child)
    })
    .await
    .unwrap();

    assert!(peak_kib > 0, "no reading of the child's memory was taken");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        server.bytes_written() < 512 << 20,
        "the client read the whole endless body"
    );
}

/// Waits for `child`, reading its peak resident set (`VmHWM`) from /proc while it runs, once
/// it is the pc-upgrade image (before `exec` the figure is the test process's). `VmHWM` only
/// grows, so a late reading can under-report the peak but never over-report it; an unbounded
/// read grows for as long as the body flows, so it is seen.
#[cfg(target_os = "linux")]
fn peak_rss_kib(mut child: std::process::Child) -> i64 {
    let status = format!("/proc/{}/status", child.id());
    let exe = format!("/proc/{}/exe", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        let is_pc_upgrade =
            std::fs::read_link(&exe).is_ok_and(|p| p.to_string_lossy().contains("pc-upgrade"));
        if is_pc_upgrade {
            let hwm = std::fs::read_to_string(&status)
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
                .unwrap_or(0);
            peak = peak.max(hwm);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    peak
}

// 6. Zero or tiny durations are refused or floored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_request_timeout_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    for args in [
        vec!["--request-timeout", "0s", "create", "--customer", CUSTOMER],
        vec![
            "upgrade",
            "--customer",
            CUSTOMER,
            "--wait",
            "--poll-interval",
            "0s",
        ],
        vec![
            "upgrade",
            "--customer",
            CUSTOMER,
            "--wait",
            "--timeout",
            "0s",
        ],
    ] {
        let mut command = pc_upgrade();
        command
            .args(["--base-url", &server.uri()])
            .args(&args)
            .env("PARTNER_CENTER_TOKEN", "abcdefghijklmnop");
        let output = output_of(command).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("too short"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn poll_options_of_zeros_keep_the_floor_between_polls() {
    let server = MockServer::start().await;
    let in_progress = json!({ "id": UPGRADE, "productFamily": "Azure", "status": "InProgress" });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(in_progress))
        .mount(&server)
        .await;
    let options = PollOptions {
        interval: Duration::ZERO,
        min_interval: Duration::ZERO,
        deadline: Duration::from_secs(1),
    };

    let error = support::client(&server)
        .wait_for_completion(upgrade_id(), &support::azure_request(), &options, |_| {})
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Deadline);
    let polls = server.received_requests().await.unwrap().len();
    // At most one poll per POLL_FLOOR (100 ms) within the second, one at its start and one at
    // its end, however fast the machine: without the floor it was hundreds.
    assert!(polls <= 12, "{polls} polls in one second");
}

// 7. Once any attempt may have been sent, the error says so.
#[tokio::test]
async fn an_error_after_retries_says_an_earlier_attempt_reached_the_server() {
    let server = Hostile::start(vec![Behaviour::RawThenVanish(answer(503, &[], ""))]).await;
    let client = retrying_client(&server.url(), 3);

    let error = client
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.attempts(), 3);
    assert_eq!(
        error.sent(),
        Sent::Yes,
        "the first attempt was answered: {error}"
    );
}

// 8. Transport failures keep their cause; a TLS failure is never retried.
#[tokio::test]
async fn a_tls_failure_is_named_and_not_retried() {
    let server = Hostile::start(vec![Behaviour::Raw(answer(200, &[], "{}"))]).await;
    let client = retrying_client(&server.https_url(), 3);

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
    assert_eq!(error.attempts(), 1, "{error}");
    assert_eq!(server.connections(), 1);
    assert!(error.to_string().contains("TLS"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_says_refused() {
    let server = Hostile::start(vec![Behaviour::RawThenVanish(answer(503, &[], ""))]).await;
    let client = retrying_client(&server.url(), 1);
    // The first connection is answered and the server vanishes; the second is refused.
    let _ = client.check_eligibility(&support::azure_request()).await;

    let error = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Connect);
    assert!(error.to_string().contains("connection refused"), "{error}");
}

// 9. Answers are checked against the request.
#[tokio::test]
async fn an_answer_about_another_customer_family_or_upgrade_is_an_invalid_response() {
    let other = "11111111-2222-4333-8444-555555555555";
    let cases = [
        (
            "/v1/productUpgrades/eligibility".to_owned(),
            json!({ "customerId": other, "productFamily": "Azure", "isEligible": true }),
        ),
        (
            "/v1/productUpgrades/eligibility".to_owned(),
            json!({ "customerId": CUSTOMER, "productFamily": "Office", "isEligible": true }),
        ),
        (
            format!("/v1/productUpgrades/{UPGRADE}/status"),
            json!({ "id": other, "productFamily": "Azure", "status": "Completed" }),
        ),
    ];
    for (at, body) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(at.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .mount(&server)
            .await;
        let client = support::client(&server);
        let error = if at.ends_with("status") {
            client
                .get_upgrade_status(upgrade_id(), &support::azure_request())
                .await
                .map(|_| ())
                .unwrap_err()
        } else {
            client
                .check_eligibility(&support::azure_request())
                .await
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}: {error}");
        assert!(error.to_string().contains("not"), "{error}");
    }
}

// 10. Server text reaches the terminal escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_and_forged_lines_from_the_server_are_escaped_in_text_output() {
    let server = MockServer::start().await;
    let forged = "\u{1b}[2J\u{1b}[31mcleared\r\nerror: forged line\u{202e}";
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": false, "reason": forged
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 900118, "description": forged
        })))
        .mount(&server)
        .await;
    for command_args in [
        ["eligibility", "--customer", CUSTOMER],
        ["create", "--customer", CUSTOMER],
    ] {
        let mut command = pc_upgrade();
        command
            .args(["--base-url", &server.uri(), "--max-attempts", "1"])
            .args(command_args)
            .env("PARTNER_CENTER_TOKEN", "abcdefghijklmnop");
        let output = output_of(command).await;
        let printed = [output.stdout, output.stderr].concat();
        let text = String::from_utf8_lossy(&printed);
        assert!(!printed.contains(&0x1b), "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{202e}'), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("error: forged")),
            "{text}"
        );
        assert!(text.contains("\\u{1b}"), "{text}");
    }
}

// 11. Without --wait, a 409 race follows the existing upgrade, under one correlation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_without_wait_follows_the_existing_upgrade_on_a_409() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": true
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": false, "upgradeId": UPGRADE
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "code": 900109, "description": "The original upgrade is in progress."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut command = pc_upgrade();
    command
        .args([
            "--base-url",
            &server.uri(),
            "upgrade",
            "--customer",
            CUSTOMER,
        ])
        .env("PARTNER_CENTER_TOKEN", "abcdefghijklmnop");

    let output = output_of(command).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(UPGRADE) && stdout.contains("already under way"),
        "{stdout}"
    );
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let correlation = |r: &Request| support::header_of(r, "ms-correlationid");
    assert!(
        requests
            .iter()
            .all(|r| correlation(r) == correlation(&requests[0])),
        "one correlation id for eligibility, create and eligibility"
    );
}

// 12. The wait polls once more at its deadline instead of returning a stale status.
#[tokio::test]
async fn the_wait_reads_the_status_once_more_at_its_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": UPGRADE, "productFamily": "Azure", "status": "InProgress"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": UPGRADE, "productFamily": "Azure", "status": "Completed"
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    // The interval is longer than the deadline: the second poll can only be the one at it.
    let options = PollOptions {
        interval: Duration::from_secs(600),
        min_interval: Duration::ZERO,
        deadline: Duration::from_millis(300),
    };

    let upgrade = support::client(&server)
        .wait_for_completion(upgrade_id(), &support::azure_request(), &options, |_| {})
        .await
        .expect("the poll at the deadline finds it completed");

    assert_eq!(
        upgrade.status,
        partner_center_upgrades::UpgradeStatus::Completed
    );
}

// 13. Smaller ones.
#[test]
fn a_long_bad_locale_is_cut_in_the_error() {
    let locale = "x".repeat(1000);
    let error = Client::builder(
        BaseUrl::parse("https://127.0.0.1").unwrap(),
        StaticToken::new("abcdefghijklmnop").unwrap(),
    )
    .locale(locale)
    .build()
    .unwrap_err();
    assert!(error.to_string().len() < 120, "{error}");
}

#[tokio::test]
async fn two_location_headers_are_refused_rather_than_guessed() {
    let other = "11111111-2222-4333-8444-555555555555";
    let server = Hostile::start(vec![Behaviour::Raw(answer(
        202,
        &[
            ("location", &format!("productUpgrades/{UPGRADE}")),
            ("location", &format!("productUpgrades/{other}")),
        ],
        "",
    ))])
    .await;

    let error = retrying_client(&server.url(), 1)
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("2 Location headers"), "{error}");
}

// From the review: a 401 whose body has `data: null` still carries its code (the spec allows
// null there), so 900421 is "sign in again", not a lost code.
#[tokio::test]
async fn a_401_with_900421_and_null_data_is_sign_in_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "code": 900421, "description": "MFA is required.", "data": null, "source": null
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = retrying_client(&server.uri(), 3)
        .check_eligibility(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::SignInAgain, "{error}");
    assert_eq!(error.status(), Some(401));
    assert!(error.has_service_code(900421));
}

// From the review: after a 409, an eligible customer's named upgrade is an earlier one that
// ended, not the one under way: the conflict is returned rather than the old upgrade followed.
#[tokio::test]
async fn a_409_then_an_eligible_answer_naming_an_old_upgrade_is_the_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": true, "upgradeId": UPGRADE
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "code": 900109, "description": "An upgrade is in progress."
        })))
        .mount(&server)
        .await;

    let error = support::client(&server)
        .start_upgrade(&support::azure_request())
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(409), "{error}");
}

/// A server that echoes the caller's token (in an error's description, in a not-eligible
/// reason) does not get it into the error, its raw body, the answer or a call report: the
/// transport reads every answer without it.
#[tokio::test]
async fn a_server_echoing_the_token_does_not_get_it_into_errors_answers_or_reports() {
    let server = MockServer::start().await;
    let echo = format!("request from Bearer {}", support::TOKEN);
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": false, "reason": echo,
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 900100, "description": echo, "data": [], "source": "PartnerFD",
        })))
        .mount(&server)
        .await;
    let client = support::client(&server);

    let answer = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();
    let reason = answer.value().reason.clone().unwrap();
    let error = client
        .create_upgrade(&support::azure_request())
        .await
        .unwrap_err();
    let report = partner_center_upgrades::CallReport::of_error(&error);

    let seen = [
        reason,
        error.to_string(),
        format!("{error:?}"),
        String::from_utf8_lossy(error.raw_body().unwrap_or_default()).into_owned(),
        error.service_error().unwrap().description.clone(),
        report.detail,
    ];
    for text in &seen {
        assert!(!text.contains(support::TOKEN), "the token leaked: {text}");
    }
    assert!(seen[0].contains("[REDACTED]"), "{}", seen[0]);
}
