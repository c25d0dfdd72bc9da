//! `pc-upgrade apply` as a process against the mock: a plan applied to its end, the journal
//! compared with the mock's ledger, the refusals (a stale plan, another plan's journal, a
//! journal in use), and runs killed with SIGKILL at random points and resumed.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use partner_center_mock::{FaultRates, MockConfig, Outcome, RunningMock, Scenario, ThrottleConfig};
use serde_json::Value;
use uuid::Uuid;

/// A folder of its own for one test's files.
pub(crate) fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcu-apply-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn command(mock: &RunningMock, args: &[&str]) -> std::process::Command {
    let mut command = crate::support::pc_upgrade_command();
    command
        .args(["--base-url", &mock.url(), "--retry-delay", "10ms"])
        .args(args)
        .env("PARTNER_CENTER_TOKEN", mock.token())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub(crate) async fn run(mock: &RunningMock, args: &[&str]) -> Output {
    let mut command = command(mock, args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes the customers file and makes the plan with `pc-upgrade plan`.
pub(crate) async fn make_plan(mock: &RunningMock, dir: &Path, customers: &[Uuid]) -> PathBuf {
    let list = dir.join("customers.txt");
    let ids: Vec<String> = customers.iter().map(Uuid::to_string).collect();
    std::fs::write(&list, ids.join("\n")).unwrap();
    let plan = dir.join("plan.json");
    let output = run(
        mock,
        &[
            "--max-attempts",
            "10",
            "plan",
            "--customers",
            list.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
            "--concurrency",
            "16",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    plan
}

pub(crate) fn apply_args<'a>(plan: &'a Path, journal: &'a Path) -> Vec<&'a str> {
    vec![
        "--max-attempts",
        "6",
        "apply",
        plan.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--concurrency",
        "16",
        "--poll-interval",
        "100ms",
    ]
}

/// The journal's customers: id → (state, upgrade id, create request id).
pub(crate) fn journal_customers(
    journal: &Path,
) -> Vec<(Uuid, String, Option<Uuid>, Option<String>)> {
    let conn =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn
        .prepare("SELECT customer_id, state, upgrade_id, create_request_id FROM customers")
        .unwrap();
    statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .unwrap()
        .map(|row| {
            let (customer, state, upgrade, request) = row.unwrap();
            (
                Uuid::parse_str(&customer).unwrap(),
                state,
                upgrade.map(|u| Uuid::parse_str(&u).unwrap()),
                request,
            )
        })
        .collect()
}

/// Every journalled customer is final, and agrees with the ledger: one upgrade created per
/// eligible customer (none for the one already under way), the one the journal follows.
pub(crate) fn assert_journal_agrees_with_ledger(
    journal: &Path,
    mock: &RunningMock,
    under_way: &[Uuid],
) {
    let ledger = mock.ledger();
    let rows = journal_customers(journal);
    for (customer, state, upgrade, _) in &rows {
        assert!(
            ["completed", "failed", "notEligible"].contains(&state.as_str()),
            "customer {customer} ended {state}"
        );
        let entry = ledger.customers.iter().find(|c| c.customer_id == *customer);
        let created = entry.map_or(0, |c| c.created);
        if under_way.contains(customer) {
            assert_eq!(
                created, 0,
                "customer {customer}: the upgrade under way was followed"
            );
        } else {
            assert_eq!(created, 1, "customer {customer}: exactly one upgrade");
        }
        assert_eq!(
            *upgrade,
            entry.and_then(|c| c.latest_upgrade_id),
            "customer {customer}: the journal follows the ledger's upgrade"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_upgrades_each_planned_customer_once_and_the_journal_agrees_with_the_ledger() {
    let eligible: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let (under_way, fails, refused) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let scenario = Scenario::new()
        .with(under_way, Outcome::UnderWay)
        .with(
            fails,
            Outcome::FailsAtPoll {
                poll: 2,
                code: None,
                description: None,
            },
        )
        .with(
            refused,
            Outcome::NotEligible {
                reason: Some("No Azure subscriptions".into()),
                code: None,
                status: None,
            },
        );
    let mock = crate::support::start_mock(MockConfig {
        scenario: Some(scenario),
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let mut book = eligible.clone();
    book.extend([under_way, fails, refused]);
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = dir.join("journal.db");

    let output = run(&mock, &apply_args(&plan, &journal)).await;

    // One upgrade failed: exit 4; everyone else completed.
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    let rows = journal_customers(&journal);
    assert_eq!(
        rows.len(),
        22,
        "the plan's eligible and under-way customers only"
    );
    assert!(
        !rows.iter().any(|r| r.0 == refused),
        "not eligible: left alone"
    );
    let state = |c: Uuid| rows.iter().find(|r| r.0 == c).unwrap().1.clone();
    assert_eq!(state(fails), "failed");
    assert_eq!(state(under_way), "completed");
    assert!(eligible.iter().all(|c| state(*c) == "completed"));
    assert_journal_agrees_with_ledger(&journal, &mock, &[under_way]);
    assert!(
        mock.ledger()
            .customers
            .iter()
            .all(|c| c.customer_id != refused || c.created == 0)
    );
    // The report was written at the end.
    let report = PathBuf::from(format!("{}.report", journal.display()));
    assert!(
        report.join("customers.csv").exists(),
        "{}",
        text(&output.stderr)
    );
    // Running it again does nothing more: every customer is final.
    let again = run(&mock, &apply_args(&plan, &journal)).await;
    assert_eq!(again.status.code(), Some(4), "{}", text(&again.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[under_way]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_stale_plan_unless_told_and_sends_nothing() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let mut document: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    document["createdAt"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&plan, serde_json::to_vec(&document).unwrap()).unwrap();
    let requests_before = mock.requests();
    let journal = dir.join("journal.db");

    let refused = run(&mock, &apply_args(&plan, &journal)).await;

    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--ignore-plan-age"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(mock.requests(), requests_before, "nothing sent");
    assert!(!journal.exists(), "no journal for a refused plan");

    let mut args = apply_args(&plan, &journal);
    args.push("--ignore-plan-age");
    let applied = run(&mock, &args).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_journal_of_another_plan_and_one_in_use() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let first = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let other = dir.join("other.json");
    std::fs::rename(&first, &other).unwrap();
    let second = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let journal = dir.join("journal.db");
    let applied = run(&mock, &apply_args(&other, &journal)).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));

    let mixed = run(&mock, &apply_args(&second, &journal)).await;
    assert_eq!(mixed.status.code(), Some(2));
    assert!(
        text(&mixed.stderr).contains("another plan"),
        "{}",
        text(&mixed.stderr)
    );

    // Another process holds the journal's lock: a second apply is refused.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("{}.lock", journal.display()))
        .unwrap();
    lock.try_lock().unwrap();
    let busy = run(&mock, &apply_args(&other, &journal)).await;
    assert_eq!(busy.status.code(), Some(2));
    assert!(
        text(&busy.stderr).contains("another pc-upgrade apply"),
        "{}",
        text(&busy.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_plan_made_against_another_base_url() {
    let mock = crate::support::default_mock().await;
    let other = crate::support::default_mock().await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let output = run(&other, &apply_args(&plan, &dir.join("journal.db"))).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--base-url"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(other.requests(), 0);
}

/// SIGKILL at random points, then resume with the same command, until the run ends by itself.
/// Returns the kills made.
async fn kill_and_resume(
    mock: &RunningMock,
    args: &[&str],
    kills: usize,
    seed: u64,
) -> (usize, Output) {
    // Points spread over the run, from a fixed generator (xorshift): the same seed, the same
    // points; what is asserted holds at every point.
    let mut state = seed | 1;
    let mut next_delay = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(150 + state % 550)
    };
    let mut made = 0;
    loop {
        let mut child = command(mock, args).spawn().unwrap();
        if made < kills {
            tokio::time::sleep(next_delay()).await;
            if child.try_wait().unwrap().is_none() {
                // SIGKILL: no handler runs, nothing is flushed.
                child.kill().unwrap();
                child.wait().unwrap();
                made += 1;
                continue;
            }
        }
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        return (made, output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_at_random_points_resumes_to_exactly_one_upgrade_per_customer() {
    let customers: usize = std::env::var("PCU_KILL_TEST_CUSTOMERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let book: Vec<Uuid> = (0..customers).map(|_| Uuid::new_v4()).collect();
    let under_way = book[0];
    // A throttled, faulty mock: 429s, 5xx and answers lost after the create was processed.
    let mock = crate::support::start_mock(MockConfig {
        scenario: Some(Scenario::new().with(under_way, Outcome::UnderWay)),
        polls_to_complete: 3,
        faults: "429=0.1,5xx=0.05,drop-after=0.02"
            .parse::<FaultRates>()
            .unwrap(),
        throttle: Some(ThrottleConfig {
            rate: 200.0,
            burst: 50,
        }),
        // A new upgrade is seen by eligibility (and create's conflict check) only 2 s later:
        // a run killed in that window finds the customer eligible on resume, and only the
        // journalled MS-RequestId keeps its create from making a second upgrade.
        eligibility_lag: Duration::from_secs(2),
        seed: 11,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = dir.join("journal.db");

    let (kills, output) = kill_and_resume(&mock, &apply_args(&plan, &journal), 5, 7).await;

    assert_eq!(kills, 5, "five runs were killed before the last one");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[under_way]);
    let rows = journal_customers(&journal);
    assert_eq!(rows.len(), customers);
    assert!(rows.iter().all(|r| r.1 == "completed"));
    // Every create went out under the id journalled before it.
    assert!(
        rows.iter()
            .filter(|r| r.0 != under_way)
            .all(|r| r.3.is_some())
    );
}

/// `pc-upgrade [extra] ARGS` signed in with `seed`, a refresh token the mock issued (no static
/// token: the app and tenant from the environment, a credentials file in `dir`), run to its end.
pub(crate) async fn apply_signed_in(
    mock: &RunningMock,
    dir: &Path,
    seed: &str,
    args: &[&str],
    extra: &[&std::ffi::OsStr],
) -> Output {
    let mut apply = crate::support::pc_upgrade_command();
    apply
        .args(["--authority", &mock.url(), "--base-url", &mock.url()])
        .args(extra)
        .arg("--credentials")
        .arg(dir.join("credentials.json"))
        .args(args)
        .env(
            "PARTNER_CENTER_CLIENT_ID",
            "11111111-2222-4333-8444-555555555555",
        )
        .env("PARTNER_CENTER_TENANT_ID", mock.tenant())
        .env("PARTNER_CENTER_REFRESH_TOKEN", seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap()
}

/// A run signed in with a refresh token (no static token), whose polls span longer than an
/// access token lives: tokens are renewed ahead of expiry, none is sent expired, and the
/// journal names the signed-in user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_apply_renews_its_tokens_and_never_sends_an_expired_one() {
    let mock = crate::support::start_mock(MockConfig {
        // Just over the 5-minute refresh margin: each token serves about a second, and the run
        // (25 polls 100 ms apart, at least 2.5 s) needs several.
        access_token_lifetime: Duration::from_secs(5 * 60 + 1),
        polls_to_complete: 25,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(
        &mock,
        &dir,
        &(0..10).map(|_| Uuid::new_v4()).collect::<Vec<_>>(),
    )
    .await;
    let journal = dir.join("journal.db");
    let seed = mock.issue_refresh_token(true);
    let output = apply_signed_in(&mock, &dir, &seed, &apply_args(&plan, &journal), &[]).await;

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let counts = mock.sign_in_counts();
    assert_eq!(mock.expired_token_requests(), 0, "{counts:?}");
    assert!(
        counts.refresh_redemptions >= 2,
        "renewed during the run: {counts:?}"
    );
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let (operator, tenant): (Option<String>, Option<String>) = conn
        .query_row("SELECT operator, tenant FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(operator.is_some(), "the journal says who ran it");
    assert_eq!(tenant.as_deref(), Some(mock.tenant()));
    // No token or refresh token reaches the journal or the report.
    let everything = [
        std::fs::read(&journal).unwrap(),
        std::fs::read(format!("{}-wal", journal.display())).unwrap_or_default(),
        std::fs::read(format!("{}.report/customers.json", journal.display())).unwrap(),
        std::fs::read(format!("{}.report/report.html", journal.display())).unwrap(),
        output.stdout.clone(),
        output.stderr.clone(),
    ]
    .concat();
    let haystack = String::from_utf8_lossy(&everything);
    for secret in mock.issued_secrets() {
        assert!(
            !haystack.contains(&secret),
            "a token reached the journal or report"
        );
    }
}

/// An upgrade polled ten times in the same status leaves one event per status change, while
/// the customer's row counts every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_each_change_of_status_not_every_poll() {
    let mock = crate::support::start_mock(MockConfig {
        polls_to_complete: 10,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let journal = dir.join("journal.db");
    let output = run(&mock, &apply_args(&plan, &journal)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let conn = rusqlite::Connection::open(&journal).unwrap();
    let polls: i64 = conn
        .query_row("SELECT polls FROM customers", [], |r| r.get(0))
        .unwrap();
    let poll_events: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE operation = 'getUpgradeStatus'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(polls, 10);
    assert_eq!(poll_events, 2, "InProgress once, then Completed");
}
