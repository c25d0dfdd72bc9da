//! `pc-upgrade plan` as a process against the mock: eligibility for a customer book, a plan
//! file, and no create call.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use partner_center_mock::{MockConfig, NO_AZURE_CUSTOMER, RunningMock};
use partner_center_upgrades::{CustomerId, RetryPolicy, UpgradeRequest};
use serde_json::Value;

/// Runs `pc-upgrade plan` with the mock's token, `stdin` fed to it.
async fn plan(mock: &RunningMock, args: &[&str], stdin: Option<String>) -> Output {
    let mut command = crate::support::pc_upgrade_command();
    command
        .args(["--base-url", &mock.url(), "--retry-delay", "10ms", "plan"])
        .args(args)
        .env("PARTNER_CENTER_TOKEN", mock.token())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A folder of its own for one test's files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcu-plan-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_plan(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the plan was written")).unwrap()
}

fn customer() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The customers of `plan` with outcome `outcome`.
fn with_outcome<'a>(plan: &'a Value, outcome: &str) -> Vec<&'a Value> {
    plan["customers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_of_a_csv_book_groups_the_customers_and_creates_nothing() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    // One customer with an upgrade under way, started through the library.
    let under_way = customer();
    let client = crate::support::client_with(
        &mock.url(),
        mock.token(),
        RetryPolicy::none(),
        Duration::from_secs(10),
    );
    let upgrade_id = client
        .create_upgrade(&UpgradeRequest::azure(
            CustomerId::parse(&under_way).unwrap(),
        ))
        .await
        .expect("the create succeeds")
        .into_inner();
    let created = mock.upgrades_created();

    let eligible: Vec<String> = (0..18).map(|_| customer()).collect();
    let mut csv = String::from("name,customerId,\"notes, quoted\"\n");
    for (n, id) in eligible.iter().enumerate() {
        csv.push_str(&format!("\"Contoso {n}, Ltd\",{id},\"said \"\"yes\"\"\"\n"));
    }
    csv.push_str(&format!("Fabrikam,{NO_AZURE_CUSTOMER},\n"));
    csv.push_str(&format!("Northwind,\"{under_way}\",\n"));
    // A duplicate, checked once.
    csv.push_str(&format!("Contoso again,{},\n", eligible[0]));
    let dir = scratch();
    let file = dir.join("customers.csv");
    std::fs::write(&file, csv).unwrap();
    let out = dir.join("plan.json");

    let output = plan(
        &mock,
        &[
            "--customers",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--concurrency",
            "8",
        ],
        None,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(mock.upgrades_created(), created, "plan made no create call");

    let written = read_plan(&out);
    assert_eq!(written["version"], 1);
    assert_eq!(written["productFamily"], "Azure");
    assert!(
        written["baseUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    chrono::DateTime::parse_from_rfc3339(written["createdAt"].as_str().unwrap())
        .expect("createdAt is RFC 3339");
    let counts = &written["counts"];
    assert_eq!(counts["total"], 20);
    assert_eq!(counts["eligible"], 18);
    assert_eq!(counts["underWay"], 1);
    assert_eq!(counts["notEligible"], 1);
    assert_eq!(counts["error"], 0);
    assert_eq!(counts["duplicates"], 1);

    let customers = written["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 20);
    // Sorted by outcome, then id.
    let mut sorted_eligible = eligible.clone();
    sorted_eligible.sort();
    let listed: Vec<&str> = with_outcome(&written, "eligible")
        .iter()
        .map(|c| c["customerId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, sorted_eligible);
    let outcomes: Vec<&str> = customers
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes[18..], ["underWay", "notEligible"]);
    for c in customers {
        assert!(c["requestId"].is_string(), "{c}");
        assert!(c["correlationId"].is_string(), "{c}");
    }

    let under = with_outcome(&written, "underWay");
    assert_eq!(under[0]["customerId"], under_way);
    assert_eq!(under[0]["upgradeId"], upgrade_id.to_string());
    let not = with_outcome(&written, "notEligible");
    assert_eq!(not[0]["customerId"], NO_AZURE_CUSTOMER);
    let reason = not[0]["reason"].as_str().unwrap();
    assert!(reason.contains("no Microsoft Azure"), "{reason}");

    let text = stdout(&output);
    assert!(text.contains("eligible: 18"), "{text}");
    assert!(text.contains("upgrade already under way: 1"), "{text}");
    assert!(text.contains("not eligible: 1"), "{text}");
    assert!(text.contains("errors: 0"), "{text}");
    assert!(text.contains(reason), "{text}");
    assert!(
        stderr(&output).contains(&eligible[0]),
        "{}",
        stderr(&output)
    );
    // Only the plan is left in the folder: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_a_malformed_id_naming_its_line_and_sends_nothing() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let dir = scratch();
    let file = dir.join("customers.csv");
    std::fs::write(
        &file,
        format!(
            "customerId,name\n{},A\nnot-a-guid,B\n{},C\n",
            customer(),
            customer()
        ),
    )
    .unwrap();
    let out = dir.join("plan.json");

    let output = plan(
        &mock,
        &[
            "--customers",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("line 3"), "{}", stderr(&output));
    assert_eq!(mock.requests(), 0);
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_one_id_per_line_with_comments_and_blank_lines() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let (a, b) = (customer(), customer());
    let dir = scratch();
    let file = dir.join("customers.txt");
    std::fs::write(
        &file,
        format!("# the book\n\n{a}\r\n  # a comment\n{NO_AZURE_CUSTOMER}\n\n{b}\n"),
    )
    .unwrap();
    let out = dir.join("plan.json");

    let output = plan(
        &mock,
        &[
            "--customers",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--output",
            "json",
        ],
        None,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(printed["total"], 3);
    assert_eq!(printed["eligible"], 2);
    assert_eq!(printed["notEligible"], 1);
    assert_eq!(printed["notEligibleReasons"][0]["count"], 1);
    assert_eq!(read_plan(&out)["counts"], printed);
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_the_customers_from_stdin() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let ids: Vec<String> = (0..3).map(|_| customer()).collect();
    let dir = scratch();
    let out = dir.join("plan.json");

    let output = plan(
        &mock,
        &["--customers", "-", "--out", out.to_str().unwrap()],
        Some(format!("customerId\n{}\n", ids.join("\n"))),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let written = read_plan(&out);
    assert_eq!(written["counts"]["eligible"], 3);
    let mut listed: Vec<&str> = written["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customerId"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_that_cannot_be_written_exits_5_before_sending() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let dir = scratch();
    let out = dir.join("missing-folder").join("plan.json");

    let output = plan(
        &mock,
        &["--customers", "-", "--out", out.to_str().unwrap()],
        Some(format!("{}\n", customer())),
    )
    .await;
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert_eq!(mock.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_keeps_error_answers_apart_from_failed_checks_and_escapes_server_text() {
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let (refused, failing, odd) = (customer(), customer(), customer());
    let server = MockServer::start().await;
    let eligibility = |id: &str| {
        Mock::given(method("POST"))
            .and(path("/v1/productUpgrades/eligibility"))
            .and(body_partial_json(serde_json::json!({ "customerId": id })))
    };
    eligibility(&refused)
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "code": 900108,
            "description": "The customer has no Azure subscriptions to upgrade.",
            "data": [],
            "source": "PartnerFD"
        })))
        .mount(&server)
        .await;
    eligibility(&failing)
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    eligibility(&odd)
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "customerId": odd,
            "productFamily": "Azure",
            "isEligible": false,
            "reason": "spoofed\u{1b}[2J\nline"
        })))
        .mount(&server)
        .await;
    let dir = scratch();
    let out = dir.join("plan.json");
    let mut command = crate::support::pc_upgrade_command();
    command
        .args(["--base-url", &server.uri(), "--max-attempts", "1", "plan"])
        .args(["--customers", "-", "--out", out.to_str().unwrap()])
        .env("PARTNER_CENTER_TOKEN", "a-token")
        .stdin(Stdio::piped());
    let input = format!("{refused}\n{failing}\n{odd}\n");
    let output = tokio::task::spawn_blocking(move || {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let written = read_plan(&out);
    let counts = &written["counts"];
    assert_eq!(counts["notEligible"], 2);
    assert_eq!(counts["error"], 1);
    assert_eq!(counts["errorsByStatus"]["500"], 1);
    let not = with_outcome(&written, "notEligible");
    let by_code: Vec<&Value> = not
        .iter()
        .copied()
        .filter(|c| c["code"] == 900108)
        .collect();
    assert_eq!(by_code.len(), 1);
    assert_eq!(by_code[0]["customerId"], refused);
    let errors = with_outcome(&written, "error");
    assert_eq!(errors[0]["customerId"], failing);
    assert_eq!(errors[0]["status"], 500);
    assert!(errors[0]["message"].is_string());

    let text = stdout(&output);
    assert!(text.contains("(code 900108)"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("spoofed\\u{1b}[2J\\u{a}line"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_a_line_over_4_kib_and_sends_nothing() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let out = scratch().join("plan.json");
    let long = format!("customerId,notes\n{},{}\n", customer(), "x".repeat(5000));

    let output = plan(
        &mock,
        &["--customers", "-", "--out", out.to_str().unwrap()],
        Some(long),
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("line 2"), "{}", stderr(&output));
    assert_eq!(mock.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_keeps_server_reasons_and_codes_printable_and_bounded_on_stdout_and_in_the_plan() {
    use partner_center_mock::{Outcome, Scenario};

    // 30 customers refused, each with its own long reason and a textual code carrying escape
    // sequences (all within the 64 KiB an error body is read to).
    let hostile = |n: usize| {
        format!(
            "\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}{n} {}",
            "spam ".repeat(4000)
        )
    };
    let refused: Vec<uuid::Uuid> = (0..30).map(|_| uuid::Uuid::new_v4()).collect();
    let mut scenario = Scenario::new();
    for (n, id) in refused.iter().enumerate() {
        scenario = scenario.with(
            *id,
            Outcome::NotEligible {
                reason: Some(serde_json::json!(hostile(n))),
                code: Some(serde_json::json!(format!("\u{1b}[31m{}", "9".repeat(5000)))),
                status: Some(403),
            },
        );
    }
    let mock = crate::support::start_mock(MockConfig {
        scenario: Some(scenario),
        ..MockConfig::default()
    })
    .await;
    let out = scratch().join("plan.json");
    let ids: Vec<String> = refused.iter().map(ToString::to_string).collect();
    let output = plan(
        &mock,
        &["--customers", "-", "--out", out.to_str().unwrap()],
        Some(ids.join("\n")),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let text = stdout(&output);
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!text.contains(bad), "{bad:?} reached stdout");
    }
    assert!(text.contains("other reasons"), "{text}");
    assert!(text.len() < 64 * 1024, "stdout: {} bytes", text.len());
    let written = read_plan(&out);
    assert_eq!(written["counts"]["notEligible"], 30);
    let document = written.to_string();
    assert!(
        document.len() < 30 * 4 * 1024,
        "the plan: {} bytes",
        document.len()
    );
    for entry in with_outcome(&written, "notEligible") {
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.chars().count() <= 1001, "{}", reason.len());
        assert!(!reason.contains('\u{1b}'), "{reason:?}");
        let code = entry["code"].as_str().unwrap();
        assert!(
            code.chars().count() <= 65 && !code.contains('\u{1b}'),
            "{code:?}"
        );
    }
}
