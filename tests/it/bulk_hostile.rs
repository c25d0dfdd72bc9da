//! `pc-upgrade plan`, `apply` and `report` (issue 12) under attack: hostile plan files and
//! journals, a journal that cannot be written, Ctrl-C, server text that tries to reach the
//! terminal or grow the files, answers that try to overflow the clock, and secrets. Each
//! refusal is checked the same way: exit code 2, a sentence saying what is wrong, no panic,
//! nothing sent, and the files as they were.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use partner_center_mock::{MockConfig, Outcome, RunningMock, Scenario};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::apply::{
    apply_args, assert_journal_agrees_with_ledger, command, journal_customers, make_plan, run,
    scratch, text,
};

/// What a refusal must look like: exit 2, an `error:` sentence within a bound, no panic, no
/// escape character, and no request sent.
fn assert_refused(output: &Output, mock: &RunningMock, requests_before: u64, case: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
    assert!(stderr.starts_with("error: "), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{case}: {stderr:?}"
    );
    assert!(
        stderr.len() < 2048,
        "{case}: the message is bounded ({} bytes)",
        stderr.len()
    );
    assert_eq!(mock.requests(), requests_before, "{case}: nothing sent");
}

fn plan_json(plan: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap()
}

/// A plan document for `mock` listing `customers` with their outcomes, made now.
fn plan_document(base_url: &str, customers: &[(Uuid, &str)]) -> Value {
    json!({
        "version": 1,
        "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "baseUrl": base_url,
        "productFamily": "Azure",
        "customers": customers
            .iter()
            .map(|(id, outcome)| json!({ "customerId": id, "outcome": outcome }))
            .collect::<Vec<_>>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plans_are_refused_with_exit_2_and_nothing_sent() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let good = plan_json(&make_plan(&mock, &dir, &[first, second]).await);
    let url = mock.url();
    let port = mock.addr().port();
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut plan = good.clone();
        change(&mut plan);
        serde_json::to_vec(&plan).unwrap()
    };
    let deep = |open: &str, n: usize| open.repeat(n).into_bytes();
    let good_text = serde_json::to_string(&good).unwrap();
    let first_text = first.to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"customerId,outcome\n".to_vec()),
        ("not UTF-8", vec![0xff, 0xfe, b'{', 0x80]),
        ("empty", Vec::new()),
        ("deeply nested", deep("[", 200_000)),
        (
            "deeply nested customers",
            good_text
                .replacen(
                    "\"customers\":[",
                    &format!("\"customers\":{}", "[".repeat(100_000)),
                    1,
                )
                .into_bytes(),
        ),
        ("an array", b"[1,2,3]".to_vec()),
        ("no version", edit(&|p| p["version"] = Value::Null)),
        ("version 2", edit(&|p| p["version"] = json!(2))),
        ("version as text", edit(&|p| p["version"] = json!("1"))),
        ("no createdAt", edit(&|p| p["createdAt"] = Value::Null)),
        (
            "createdAt not a date",
            edit(&|p| p["createdAt"] = json!("yesterday")),
        ),
        (
            "createdAt in the future",
            edit(&|p| p["createdAt"] = json!("9999-12-31T23:59:59Z")),
        ),
        (
            "createdAt an hour ahead",
            edit(&|p| {
                p["createdAt"] = json!(
                    (chrono::Utc::now() + chrono::TimeDelta::hours(1))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            }),
        ),
        ("no baseUrl", edit(&|p| p["baseUrl"] = Value::Null)),
        (
            "another host for the same port",
            edit(&|p| p["baseUrl"] = json!(format!("http://localhost:{port}"))),
        ),
        (
            "a password in the baseUrl",
            edit(&|p| p["baseUrl"] = json!(format!("http://user:hunter2-secret@127.0.0.1:{port}"))),
        ),
        (
            "a huge baseUrl",
            edit(&|p| p["baseUrl"] = json!(format!("{url}/{}", "a".repeat(1 << 20)))),
        ),
        (
            "escapes in the baseUrl",
            edit(&|p| p["baseUrl"] = json!(format!("{url}/\u{1b}[2J\u{7}"))),
        ),
        (
            "plain http to a remote host",
            edit(&|p| p["baseUrl"] = json!("http://partner.example.com")),
        ),
        (
            "a query in the baseUrl",
            edit(&|p| p["baseUrl"] = json!(format!("{url}?x=1"))),
        ),
        (
            "no productFamily",
            edit(&|p| p["productFamily"] = Value::Null),
        ),
        (
            "an empty productFamily",
            edit(&|p| p["productFamily"] = json!(" ")),
        ),
        (
            "escapes in the productFamily",
            edit(&|p| p["productFamily"] = json!("Azure\u{1b}[2J")),
        ),
        (
            "a huge productFamily",
            edit(&|p| p["productFamily"] = json!("A".repeat(100_000))),
        ),
        ("no customers", edit(&|p| p["customers"] = Value::Null)),
        (
            "customers not a list",
            edit(&|p| p["customers"] = json!({"a": 1})),
        ),
        ("zero customers", edit(&|p| p["customers"] = json!([]))),
        (
            "no actionable customer",
            edit(&|p| {
                for c in p["customers"].as_array_mut().unwrap() {
                    c["outcome"] = json!("notEligible");
                }
            }),
        ),
        (
            "a duplicate customer",
            edit(&|p| {
                let copy = p["customers"][0].clone();
                p["customers"].as_array_mut().unwrap().push(copy);
            }),
        ),
        (
            "a duplicate customer in capitals",
            edit(&|p| {
                let mut copy = p["customers"][0].clone();
                copy["customerId"] = json!(copy["customerId"].as_str().unwrap().to_uppercase());
                p["customers"].as_array_mut().unwrap().push(copy);
            }),
        ),
        (
            "a customerId given twice in one entry",
            good_text
                .replacen(
                    &format!("\"customerId\":\"{first_text}\""),
                    &format!(
                        "\"customerId\":\"{first_text}\",\"customerId\":\"{}\"",
                        Uuid::new_v4()
                    ),
                    1,
                )
                .into_bytes(),
        ),
        (
            "a member given twice",
            good_text.replacen("{", "{\"version\":1,", 1).into_bytes(),
        ),
        (
            "a customerId that is not a GUID",
            edit(&|p| p["customers"][0]["customerId"] = json!("contoso")),
        ),
        (
            "the nil GUID",
            edit(&|p| p["customers"][0]["customerId"] = json!(Uuid::nil())),
        ),
        (
            "a customerId as a number",
            edit(&|p| p["customers"][0]["customerId"] = json!(42)),
        ),
        (
            "an outcome we do not know",
            edit(&|p| p["customers"][0]["outcome"] = json!("eligibleish")),
        ),
        (
            "no outcome",
            edit(&|p| p["customers"][0]["outcome"] = Value::Null),
        ),
        (
            "an outcome with escapes",
            edit(&|p| p["customers"][0]["outcome"] = json!("\u{1b}]0;owned\u{7}")),
        ),
    ];
    // Each of its numbered files has its own journal path: none may be created.
    for (index, (case, bytes)) in cases.iter().enumerate() {
        let plan = dir.join(format!("hostile-{index}.json"));
        std::fs::write(&plan, bytes).unwrap();
        let journal = dir.join(format!("hostile-{index}.db"));
        let before = mock.requests();
        let output = run(&mock, &apply_args(&plan, &journal)).await;
        assert_refused(&output, &mock, before, case);
        assert!(!journal.exists(), "{case}: no journal for a refused plan");
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("hunter2"), "{case}: {stderr}");
    }

    // Larger than the bound: refused from its size, without reading 256 MiB.
    let huge = dir.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(257 << 20)
        .unwrap();
    let before = mock.requests();
    let output = run(&mock, &apply_args(&huge, &dir.join("huge.db"))).await;
    assert_refused(&output, &mock, before, "a 257 MiB plan");
    assert!(text(&output.stderr).contains("256 MiB"));
    // A folder, and a file that is not there.
    for (case, path) in [
        ("a folder", dir.clone()),
        ("no file", dir.join("none.json")),
    ] {
        let output = run(&mock, &apply_args(&path, &dir.join("x.db"))).await;
        assert_refused(&output, &mock, before, case);
    }
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_options_are_refused_not_a_panic() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let journal = dir.join("journal.db");
    let before = mock.requests();
    for extra in [
        // Below the throttle's own floor: its rate would be clamped between crossed bounds.
        &["--max-rate", "0.1", "--initial-rate", "0.2"][..],
        &["--max-rate", "0.25"],
        &["--max-rate", "NaN"],
        &["--initial-rate", "-1"],
        &["--poll-share", "2"],
        // A poll interval past the clock's end.
        &["--poll-interval", "500000000000y"],
        &["--poll-interval", "0s"],
        &["--concurrency", "0"],
    ] {
        let mut args = apply_args(&plan, &journal);
        args.extend_from_slice(extra);
        let output = run(&mock, &args).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
        assert_eq!(mock.requests(), before, "{extra:?}: nothing sent");
    }
}

/// A journal made for `plan` and applied to its end; its write-ahead log folded in, so the file
/// alone is the journal.
async fn finished_journal(mock: &RunningMock, dir: &Path, plan: &Path) -> PathBuf {
    let journal = dir.join("journal.db");
    let output = run(mock, &apply_args(plan, &journal)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let conn = rusqlite::Connection::open(&journal).unwrap();
    checkpoint(&conn);
    drop(conn);
    journal
}

/// Folds the write-ahead log into the database file.
fn checkpoint(conn: &rusqlite::Connection) {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// A copy of `journal` changed by `sql`.
fn tampered(journal: &Path, name: &str, sql: &str) -> PathBuf {
    let copy = journal.with_file_name(format!("{name}.db"));
    std::fs::copy(journal, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
        .unwrap();
    checkpoint(&conn);
    drop(conn);
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_changed_by_hand_is_refused_and_no_customer_outside_the_plan_is_touched() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let book: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = finished_journal(&mock, &dir, &plan).await;
    let stranger = Uuid::new_v4();
    let (a, b) = (book[0], book[1]);
    let cases = [
        (
            "a customer the plan does not list",
            format!(
                "INSERT INTO customers (customer_id, planned, state, updated_at) \
                 VALUES ('{stranger}', 'eligible', 'pending', 'x')"
            ),
        ),
        (
            "a plan customer in capitals",
            format!(
                "INSERT INTO customers (customer_id, planned, state, updated_at) \
                 VALUES ('{}', 'eligible', 'pending', 'x')",
                a.to_string().to_uppercase()
            ),
        ),
        (
            "a plan customer removed",
            format!("DELETE FROM customers WHERE customer_id = '{a}'"),
        ),
        (
            "a create that may have been sent, without its MS-RequestId",
            format!(
                "UPDATE customers SET state = 'creating', upgrade_id = NULL, \
                 create_request_id = NULL WHERE customer_id = '{a}'"
            ),
        ),
        (
            "an error without its MS-RequestId",
            format!(
                "UPDATE customers SET state = 'error', upgrade_id = NULL, \
                 create_request_id = 'not-a-guid' WHERE customer_id = '{b}'"
            ),
        ),
        (
            "a state pc-upgrade never writes",
            format!("UPDATE customers SET state = 'bogus\u{1b}[2J' WHERE customer_id = '{a}'"),
        ),
        (
            "an upgrade id that is not a GUID",
            format!(
                "UPDATE customers SET state = 'following', upgrade_id = 'x' \
                 WHERE customer_id = '{a}'"
            ),
        ),
        (
            "a customer id that is a number",
            format!("UPDATE customers SET customer_id = 42 WHERE customer_id = '{a}'"),
        ),
        ("no events table", "DROP TABLE events".to_owned()),
        (
            "a column missing",
            "ALTER TABLE customers DROP COLUMN polls".to_owned(),
        ),
    ];
    let ledger = mock.ledger().to_json();
    for (index, (case, sql)) in cases.iter().enumerate() {
        let copy = tampered(&journal, &format!("tampered-{index}"), sql);
        let before = mock.requests();
        let output = run(&mock, &apply_args(&plan, &copy)).await;
        assert_refused(&output, &mock, before, case);
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("changed outside pc-upgrade"),
            "{case}: {stderr}"
        );
    }
    assert_eq!(
        mock.ledger().to_json(),
        ledger,
        "no upgrade made or changed"
    );
    assert_eq!(mock.upgrades_of(stranger), 0);

    // The plan edited after its journal was made (one space): another plan.
    let mut bytes = std::fs::read(&plan).unwrap();
    bytes.insert(1, b' ');
    std::fs::write(&plan, bytes).unwrap();
    let before = mock.requests();
    let output = run(&mock, &apply_args(&plan, &journal)).await;
    assert_refused(&output, &mock, before, "an edited plan");
    assert!(text(&output.stderr).contains("another plan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_journals_are_refused_and_left_exactly_as_they_were() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;

    let not_sqlite = dir.join("notes.txt");
    std::fs::write(&not_sqlite, "customerId\n".repeat(1000)).unwrap();
    // Another program's database, in the rollback-journal mode SQLite starts in.
    let other = dir.join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); \
             INSERT INTO notes (body) VALUES ('keep me');",
        )
        .unwrap();
    }
    // Another program's database with a `run` table of its own.
    let lookalike = dir.join("lookalike.sqlite");
    {
        let conn = rusqlite::Connection::open(&lookalike).unwrap();
        conn.execute_batch("CREATE TABLE run (id INTEGER PRIMARY KEY, name TEXT);")
            .unwrap();
    }
    for (case, path) in [
        ("a text file", &not_sqlite),
        ("another program's database", &other),
        ("a database with a run table of its own", &lookalike),
    ] {
        let bytes = std::fs::read(path).unwrap();
        let before = mock.requests();
        let output = run(&mock, &apply_args(&plan, path)).await;
        assert_refused(&output, &mock, before, case);
        assert!(
            text(&output.stderr).contains("not a pc-upgrade journal"),
            "{case}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            std::fs::read(path).unwrap(),
            bytes,
            "{case}: left as it was"
        );
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            assert!(!side.exists(), "{case}: {} was made", side.display());
        }
    }
    // A folder.
    let folder = dir.join("folder.db");
    std::fs::create_dir(&folder).unwrap();
    let before = mock.requests();
    let output = run(&mock, &apply_args(&plan, &folder)).await;
    assert_refused(&output, &mock, before, "a folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_or_database_is_made_a_journal() {
    // What a run killed while creating its journal leaves, or `touch book.db`: nothing of
    // anyone's to keep, so the journal is created in it.
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let book: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
    let plan = make_plan(&mock, &dir, &book).await;
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let output = run(&mock, &apply_args(&plan, &empty)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&empty, &mock, &[]);

    let mock = crate::support::default_mock().await;
    let plan = make_plan(&mock, &dir, &book).await;
    let no_tables = dir.join("no-tables.db");
    {
        let conn = rusqlite::Connection::open(&no_tables).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    let output = run(&mock, &apply_args(&plan, &no_tables)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&no_tables, &mock, &[]);
}

/// Runs `command` as another user when the tests run as root (for whom no file is read-only).
fn as_unprivileged(command: &mut std::process::Command) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    // SAFETY: between fork and exec only async-signal-safe calls are made (setgroups,
    // setgid, setuid), and their failures are returned, not panicked on.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

async fn run_unprivileged(mock: &RunningMock, args: &[&str]) -> Output {
    let mut command = command(mock, args);
    as_unprivileged(&mut command);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_journal_or_folder_is_refused_with_exit_2_and_nothing_sent() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    chmod(&dir, 0o777);
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4(), Uuid::new_v4()]).await;
    chmod(&plan, 0o644);
    // A journal with work left: its first run's token was refused, so every customer is
    // still to be created.
    let journal = dir.join("journal.db");
    let mut first = command(&mock, &apply_args(&plan, &journal));
    first.env("PARTNER_CENTER_TOKEN", "not-the-token");
    let output = tokio::task::spawn_blocking(move || first.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert_eq!(mock.upgrades_created(), 0);
    let conn = rusqlite::Connection::open(&journal).unwrap();
    checkpoint(&conn);
    drop(conn);

    // The journal read-only (the folder and the lock writable).
    chmod(&journal, 0o444);
    chmod(Path::new(&format!("{}.lock", journal.display())), 0o666);
    let before = mock.requests();
    let output = run_unprivileged(&mock, &apply_args(&plan, &journal)).await;
    assert_refused(&output, &mock, before, "a read-only journal");

    // A new journal in a folder that cannot be written.
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    chmod(&locked, 0o555);
    let output = run_unprivileged(&mock, &apply_args(&plan, &locked.join("journal.db"))).await;
    assert_refused(&output, &mock, before, "an unwritable folder");

    // Writable again: the same command finishes the job, one upgrade each.
    chmod(&journal, 0o644);
    let output = run(&mock, &apply_args(&plan, &journal)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_fills_the_disk_stops_the_run_and_a_resume_makes_one_upgrade_each() {
    let book: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let mock = crate::support::start_mock(MockConfig {
        polls_to_complete: 3,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = dir.join("journal.db");
    // Files may grow to 1 MiB: the journal is created with every customer's create id (under
    // 800 KiB of write-ahead log), and fills up part way through the upgrades.
    let mut full = command(&mock, &apply_args(&plan, &journal));
    // SAFETY: between fork and exec only async-signal-safe calls are made.
    unsafe {
        full.pre_exec(|| {
            // A write past the limit fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = tokio::task::spawn_blocking(move || full.output().unwrap())
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(2 | 5)),
        "a journal that cannot be written is an error: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("journal"), "{stderr}");
    assert!(
        mock.upgrades_created() > 0,
        "the journal filled up after the run began: {stderr}"
    );

    let output = run(&mock, &apply_args(&plan, &journal)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[]);
    assert_eq!(journal_customers(&journal).len(), book.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_exits_130_with_a_consistent_journal_and_the_resume_makes_one_upgrade_each() {
    let book: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    let mock = crate::support::start_mock(MockConfig {
        polls_to_complete: 30,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = dir.join("journal.db");
    let args = apply_args(&plan, &journal);
    let child = command(&mock, &args).spawn().unwrap();
    // Once an upgrade is being followed, the run is in its loop: interrupt it there.
    until_following(&journal).await;
    // SAFETY: kill has no memory preconditions; the pid is our child's, not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The journal: every row in a state a resume knows, every started create with its id, the
    // session ended.
    let rows = journal_customers(&journal);
    assert_eq!(rows.len(), book.len());
    for (customer, state, upgrade, request) in &rows {
        assert!(
            ["pending", "creating", "following", "completed", "error"].contains(&state.as_str()),
            "{customer}: {state}"
        );
        if state != "pending" && upgrade.is_none() {
            assert!(
                request
                    .as_deref()
                    .is_some_and(|r| Uuid::parse_str(r).is_ok()),
                "{customer}: {state} without its MS-RequestId"
            );
        }
    }
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let ended: Option<String> = conn
        .query_row("SELECT ended_at FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(ended.is_some(), "an interrupted session still ends");
    drop(conn);

    let output = run(&mock, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_gives_up_on_a_stuck_upgrade_at_its_upgrade_timeout() {
    let mock = crate::support::start_mock(MockConfig {
        // Never finishes within the test.
        polls_to_complete: 1_000_000,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(&mock, &dir, &[Uuid::new_v4()]).await;
    let journal = dir.join("journal.db");
    let mut args = apply_args(&plan, &journal);
    args.extend(["--upgrade-timeout", "1s"]);
    for session in ["first", "resumed"] {
        let mut child = command(&mock, &args).spawn().unwrap();
        // Generous: a session that honours a 1 s timeout ends in a few; one that does not
        // never ends, and is stopped here so the test fails instead of hanging.
        let mut waited = Duration::ZERO;
        while child.try_wait().unwrap().is_none() && waited < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
        }
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(6), "{session}: {stderr}");
        assert!(stderr.contains("--upgrade-timeout"), "{session}: {stderr}");
    }
    assert_eq!(mock.upgrades_created(), 1);
}

/// Text no terminal, file or page should take as it is: escape sequences, a bell, a
/// bidirectional override, a NUL, a spreadsheet formula, and bulk.
fn hostile_text(len: usize) -> String {
    let mut text =
        String::from("=HYPERLINK(\"x\")\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}gpj.exe\u{0}\u{9b}31m");
    while text.len() < len {
        text.push_str("spam ");
    }
    text
}

fn assert_inert(case: &str, haystack: &str, limit: usize) {
    for bad in ['\u{1b}', '\u{7}', '\u{202e}', '\u{0}', '\u{9b}'] {
        assert!(
            !haystack.contains(bad),
            "{case}: {bad:?} got through: {:?}",
            haystack.chars().take(300).collect::<String>()
        );
    }
    assert!(
        haystack.len() < limit,
        "{case}: {} bytes, over {limit}",
        haystack.len()
    );
}

fn every_text_of(journal: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut all = String::new();
    for (table, columns) in [
        (
            "customers",
            "COALESCE(upgrade_status,'') || COALESCE(reason,'') || COALESCE(error_code,'') \
             || COALESCE(error_message,'')",
        ),
        (
            "line_items",
            "COALESCE(source_id,'') || COALESCE(source_name,'') || status \
             || COALESCE(error_code,'') || COALESCE(error_description,'')",
        ),
        ("events", "COALESCE(detail,'')"),
    ] {
        let mut statement = conn
            .prepare(&format!("SELECT {columns} FROM {table}"))
            .unwrap();
        let rows = statement.query_map([], |r| r.get::<_, String>(0)).unwrap();
        for row in rows {
            let row = row.unwrap();
            assert!(
                row.chars().count() < 8000,
                "{table}: a row of {}",
                row.len()
            );
            all.push_str(&row);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_text_reaches_the_journal_report_and_terminal_printable_and_bounded() {
    let (refused, fails, fine) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let long = hostile_text(200_000);
    let scenario = Scenario::new()
        .with(
            refused,
            Outcome::NotEligible {
                // Within the 64 KiB an error body is read to.
                reason: Some(json!(hostile_text(30_000))),
                code: Some(json!(hostile_text(10_000))),
                status: Some(403),
            },
        )
        .with(
            fails,
            Outcome::FailsAtPoll {
                poll: 1,
                code: Some(json!(hostile_text(10_000))),
                description: Some(json!(long)),
            },
        );
    let mock = crate::support::start_mock(MockConfig {
        scenario: Some(scenario),
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let list = dir.join("customers.txt");
    std::fs::write(&list, format!("{refused}\n{fails}\n{fine}\n")).unwrap();
    let plan = dir.join("plan.json");
    let output = run(
        &mock,
        &[
            "plan",
            "--customers",
            list.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // What `plan` prints and keeps of such text: tests/it/plan.rs checks it.
    let parsed = plan_json(&plan);

    // Partner Center refusing at apply time what the plan found eligible.
    let mut document = parsed.clone();
    for entry in document["customers"].as_array_mut().unwrap() {
        if entry["customerId"] == json!(refused) {
            entry["outcome"] = json!("eligible");
        }
    }
    std::fs::write(&plan, serde_json::to_vec(&document).unwrap()).unwrap();
    let journal = dir.join("journal.db");
    let output = run(&mock, &apply_args(&plan, &journal)).await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert_inert("apply's stdout", &text(&output.stdout), 8 * 1024);
    assert_inert("apply's stderr", &text(&output.stderr), 8 * 1024);
    let rows = journal_customers(&journal);
    let state = |c: Uuid| rows.iter().find(|r| r.0 == c).unwrap().1.clone();
    assert_eq!(state(refused), "notEligible");
    assert_eq!(state(fails), "failed");
    assert_eq!(state(fine), "completed");
    assert_inert("the journal", &every_text_of(&journal), 64 * 1024);

    let report = PathBuf::from(format!("{}.report", journal.display()));
    for file in [
        "customers.csv",
        "line_items.csv",
        "customers.json",
        "report.html",
    ] {
        let content = String::from_utf8(std::fs::read(report.join(file)).unwrap()).unwrap();
        assert_inert(file, &content, 256 * 1024);
        let content = if file.ends_with(".json") {
            serde_json::from_str::<Value>(&content).unwrap().to_string()
        } else {
            content
        };
        assert_inert(file, &content, 256 * 1024);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_status_answer_is_kept_printable_and_its_retry_after_cannot_overflow_the_clock() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let customer = Uuid::new_v4();
    let upgrade = Uuid::new_v4();
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades/eligibility"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": customer, "productFamily": "Azure", "isEligible": true })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/productUpgrades"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Location", format!("productUpgrades/{upgrade}")),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Never finished, a status no one knows, and a Retry-After past the clock's end.
    Mock::given(method("POST"))
        .and(path(format!("/v1/productUpgrades/{upgrade}/status")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Retry-After", "18446744073709551615")
                .set_body_json(json!({
                    "id": upgrade,
                    "productFamily": "Azure",
                    "status": hostile_text(100_000),
                    "lineItems": [{ "status": hostile_text(100_000) }],
                })),
        )
        .mount(&server)
        .await;
    let dir = scratch();
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec(&plan_document(&server.uri(), &[(customer, "eligible")])).unwrap(),
    )
    .unwrap();
    let journal = dir.join("journal.db");
    let mut apply = crate::support::pc_upgrade_command();
    apply
        .args(["--base-url", &server.uri(), "--max-attempts", "1"])
        .args(apply_args(&plan, &journal).iter().skip(2))
        .args(["--upgrade-timeout", "2s"])
        .env("PARTNER_CENTER_TOKEN", "a-token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = apply.spawn().unwrap();
    let mut waited = Duration::ZERO;
    while child.try_wait().unwrap().is_none() && waited < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_inert("apply's stderr", &stderr, 8 * 1024);
    assert_inert("apply's stdout", &text(&output.stdout), 8 * 1024);
    assert_inert("the journal", &every_text_of(&journal), 64 * 1024);
    let report = PathBuf::from(format!("{}.report", journal.display()));
    let csv = String::from_utf8(std::fs::read(report.join("customers.csv")).unwrap()).unwrap();
    assert_inert("customers.csv", &csv, 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_journal_report_recordings_traces_or_terminal() {
    let mock = crate::support::start_mock(MockConfig {
        access_token_lifetime: Duration::from_secs(5 * 60 + 1),
        polls_to_complete: 15,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let plan = make_plan(
        &mock,
        &dir,
        &(0..5).map(|_| Uuid::new_v4()).collect::<Vec<_>>(),
    )
    .await;
    let journal = dir.join("journal.db");
    let record = dir.join("recorded");
    let seed = mock.issue_refresh_token(true);
    let output = crate::apply::apply_signed_in(
        &mock,
        &dir,
        &seed,
        &apply_args(&plan, &journal),
        &["-vv".as_ref(), "--record".as_ref(), record.as_os_str()],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(mock.sign_in_counts().refresh_redemptions >= 2);

    // Everything the run left beside the journal: the journal, its log and lock, the report,
    // the recordings.
    let mut files = Vec::new();
    let mut folders = vec![dir.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("credentials"))
            {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.starts_with(&record)),
        "exchanges were recorded"
    );
    let mut everything: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    everything.push(("stdout".into(), output.stdout.clone()));
    everything.push(("stderr".into(), output.stderr.clone()));
    let secrets = mock.issued_secrets();
    assert!(secrets.len() >= 3, "{secrets:?}");
    for (name, bytes) in &everything {
        let haystack = String::from_utf8_lossy(bytes);
        for secret in secrets.iter().chain([&seed]) {
            assert!(
                !haystack.contains(secret.as_str()),
                "a token reached {name}"
            );
        }
    }
}

/// Waits until `journal` follows at least one upgrade: the run that writes it is in its loop.
async fn until_following(journal: &Path) {
    let following = || {
        journal.exists()
            && rusqlite::Connection::open_with_flags(
                journal,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM customers WHERE state = 'following'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|n| n > 0)
    };
    let mut waited = Duration::ZERO;
    while !following() {
        assert!(waited < Duration::from_secs(60), "no upgrade followed");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_names_sqlite_reads_specially_are_files_and_a_symlink_shares_the_lock() {
    let mock = crate::support::start_mock(MockConfig {
        polls_to_complete: 40,
        ..MockConfig::default()
    })
    .await;
    let dir = scratch();
    let book: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let plan = make_plan(&mock, &dir, &book).await;

    // No name: SQLite would make a temporary database, gone with the process.
    let before = mock.requests();
    let output = run(&mock, &apply_args(&plan, Path::new(""))).await;
    assert_refused(&output, &mock, before, "an empty journal name");

    // A second apply on the same journal through a symbolic link waits for no lock of its
    // own: the lock is the journal file's, however it is named.
    let journal = dir.join("journal.db");
    let link = dir.join("link.db");
    let mut first = command(&mock, &apply_args(&plan, &journal))
        .spawn()
        .unwrap();
    until_following(&journal).await;
    std::os::unix::fs::symlink(&journal, &link).unwrap();
    let second = run(&mock, &apply_args(&plan, &link)).await;
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another pc-upgrade apply"), "{stderr}");
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_journal_agrees_with_ledger(&journal, &mock, &[]);

    // `:memory:` is a file name like any other: the journal is on disk, and resumable.
    let mock = crate::support::default_mock().await;
    let plan = make_plan(&mock, &dir, &book).await;
    let mut apply = command(&mock, &apply_args(&plan, Path::new(":memory:")));
    apply.current_dir(&dir);
    let output = tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let memory = dir.join(":memory:");
    assert!(memory.is_file(), "the journal is a file");
    assert_journal_agrees_with_ledger(&memory, &mock, &[]);
    assert!(dir.join(":memory:.report").join("report.html").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_access_token_stops_the_run_at_the_first_401_not_after_the_whole_book() {
    let mock = crate::support::default_mock().await;
    let dir = scratch();
    let book: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let plan = make_plan(&mock, &dir, &book).await;
    let journal = dir.join("journal.db");
    let mut args = apply_args(&plan, &journal);
    let at = args.iter().position(|a| *a == "--concurrency").unwrap();
    args[at + 1] = "1";
    let mut apply = command(&mock, &args);
    apply.env("PARTNER_CENTER_TOKEN", "not-the-token");
    let before = mock.requests();
    let output = tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(
        mock.requests() - before,
        1,
        "one call, not one per customer: {stderr}"
    );
    // The same command with the right token resumes and finishes.
    let output = run(&mock, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_journal_agrees_with_ledger(&journal, &mock, &[]);
}
