//! `cargo bench --bench bulk`: a whole customer book through `pc-upgrade plan` and `apply`
//! against the mock with a partner throttle and faults, `apply` killed with SIGKILL at random
//! points and resumed, then the journal compared with the mock's ledger.
//!
//! Prints (and checks, as the budget in benches/README.md says): exactly one upgrade per
//! eligible customer, no customer without a final state, the journal agreeing with the ledger;
//! after each run's warm-up, the share of requests the throttle answered 429 and the rate the
//! throttle admitted against its limit; the peak RSS of every `apply` process (`wait4`).
//!
//! `PCU_BULK_CUSTOMERS` (default 10000), `PCU_BULK_RATE` (default 300 requests per second),
//! `PCU_BULK_KILLS` (default 5) and `PCU_BULK_SEED` change the run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use partner_center_mock::{MockConfig, Outcome, RunningMock, Scenario, ThrottleConfig};
use uuid::Uuid;

/// Seconds of each run not counted in the throttle figures: the run learns the limit anew.
const WARM_UP: Duration = Duration::from_secs(10);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One `apply` process: its exit, peak RSS, and the mock's counts over its steady part.
struct Run {
    killed: bool,
    exit: Option<i32>,
    peak_mib: f64,
    seconds: f64,
    steady_seconds: f64,
    steady_requests: u64,
    steady_throttled: u64,
    steady_fault429: u64,
    /// The mock's counts once a second while the run lasted: (seconds since start, counts).
    series: Vec<(f64, partner_center_mock::TrafficCounts)>,
}

fn counts(mock: &RunningMock) -> partner_center_mock::TrafficCounts {
    mock.traffic().totals
}

#[allow(
    clippy::zombie_processes,
    reason = "every child is reaped by wait4, which also reports its peak memory"
)]
fn run_apply(mock: &RunningMock, args: &[String], kill_after: Option<Duration>) -> Run {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_pc-upgrade"))
        .args(args)
        .env("PARTNER_CENTER_TOKEN", mock.token())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut warm = None;
    let mut killed = false;
    let mut series = Vec::new();
    let mut next_sample = 0.0;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed >= next_sample {
            series.push((elapsed, counts(mock)));
            next_sample += 1.0;
        }
        let mut status = 0;
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: polls our own child (WNOHANG); the out-pointers are live locals.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            let end = counts(mock);
            let seconds = started.elapsed().as_secs_f64();
            let (from, at) = warm.unwrap_or((end, seconds));
            return Run {
                killed,
                exit: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
                peak_mib: usage.ru_maxrss as f64 / 1024.0,
                seconds,
                steady_seconds: seconds - at,
                steady_requests: end.requests - from.requests,
                steady_throttled: end.throttled - from.throttled,
                steady_fault429: end.fault429 - from.fault429,
                series,
            };
        }
        assert_eq!(waited, 0, "wait4 failed");
        if warm.is_none() && started.elapsed() >= WARM_UP {
            warm = Some((counts(mock), started.elapsed().as_secs_f64()));
        }
        if !killed && kill_after.is_some_and(|after| started.elapsed() >= after) {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let customers: usize = env_or("PCU_BULK_CUSTOMERS", 10_000);
    let rate: f64 = env_or("PCU_BULK_RATE", 300.0);
    let kills: usize = env_or("PCU_BULK_KILLS", 5);
    let seed: u64 = env_or("PCU_BULK_SEED", 20261204);
    let mut rng = Xorshift(seed | 1);
    let faults = "429=0.1,5xx=0.05,drop-after=0.02";

    // The book: mostly eligible; some not eligible (by reason, or refused 403 with a code),
    // some already under way, some failing, some slow.
    let book: Vec<Uuid> = (0..customers)
        .map(|i| Uuid::from_u128((0x4c72_1420_u128 << 96) | 0x4000_8000_0000_0000_0000 | i as u128))
        .collect();
    let mut scenario = Scenario::new();
    let mut under_way = Vec::new();
    let mut not_eligible = 0;
    for (i, customer) in book.iter().enumerate() {
        let outcome = match i % 100 {
            0..=1 => Outcome::NotEligible {
                reason: Some("No Azure subscriptions".into()),
                code: None,
                status: None,
            },
            2..=3 => Outcome::NotEligible {
                reason: Some("The customer has Azure Partner Shared Services".into()),
                code: Some(900119.into()),
                status: Some(403),
            },
            4..=5 => Outcome::UnderWay,
            6 => Outcome::FailsAtPoll {
                poll: 2,
                code: None,
                description: None,
            },
            7 => Outcome::Slow {
                polls: Some(6),
                delay: Duration::from_millis(50),
            },
            _ => continue,
        };
        match outcome {
            Outcome::NotEligible { .. } => not_eligible += 1,
            Outcome::UnderWay => under_way.push(*customer),
            _ => {}
        }
        scenario.insert(*customer, outcome);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime
        .block_on(partner_center_mock::start(
            MockConfig {
                scenario: Some(scenario),
                faults: faults.parse().unwrap(),
                throttle: Some(ThrottleConfig {
                    rate,
                    burst: rate as u32,
                }),
                seed,
                ..MockConfig::default()
            },
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .unwrap();

    let dir = std::env::temp_dir().join(format!("pcu-bulk-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("customers.csv");
    let mut text = String::from("customerId\n");
    for customer in &book {
        text.push_str(&format!("{customer}\n"));
    }
    std::fs::write(&list, text).unwrap();
    let plan = dir.join("plan.json");
    let journal = dir.join("journal.db");
    let base = [
        "--base-url".to_owned(),
        mock.url(),
        "--max-attempts".to_owned(),
        "8".to_owned(),
    ];

    let planned = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_pc-upgrade"))
        .args(&base)
        .args(["plan", "--customers"])
        .arg(&list)
        .arg("--out")
        .arg(&plan)
        .args(["--concurrency", "32"])
        .env("PARTNER_CENTER_TOKEN", mock.token())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "plan failed");
    let plan_seconds = planned.elapsed().as_secs_f64();

    let mut args: Vec<String> = base.to_vec();
    args.extend(
        [
            "apply",
            plan.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--concurrency",
            "128",
            "--poll-interval",
            "1s",
        ]
        .map(str::to_owned),
    );
    let mut runs = Vec::new();
    let applied = Instant::now();
    loop {
        let made = runs.iter().filter(|r: &&Run| r.killed).count();
        let kill_after = (made < kills).then(|| Duration::from_millis(3_000 + rng.next() % 22_000));
        let run = run_apply(&mock, &args, kill_after);
        let done = !run.killed;
        runs.push(run);
        if done {
            break;
        }
    }
    let apply_seconds = applied.elapsed().as_secs_f64();

    // The journal against the ledger.
    let conn =
        rusqlite::Connection::open_with_flags(&journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT customer_id, state, upgrade_id FROM customers")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ledger = mock.ledger();
    let by_customer: std::collections::HashMap<Uuid, &partner_center_mock::CustomerLedger> = ledger
        .customers
        .iter()
        .map(|c| (c.customer_id, c))
        .collect();
    let final_states = ["completed", "failed", "notEligible"];
    let mut duplicates = 0;
    let mut missing = 0;
    let mut unfinished = 0;
    let mut disagree = 0;
    for (customer, state, upgrade) in &rows {
        let id = Uuid::parse_str(customer).unwrap();
        let entry = by_customer.get(&id);
        let created = entry.map_or(0, |c| c.created);
        if !final_states.contains(&state.as_str()) {
            unfinished += 1;
        }
        if state == "notEligible" {
            continue;
        }
        let expected = u64::from(!under_way.contains(&id));
        if created > expected {
            duplicates += created - expected;
        } else if created < expected {
            missing += 1;
        }
        let latest = entry
            .and_then(|c| c.latest_upgrade_id)
            .map(|u| u.to_string());
        if upgrade.as_deref() != latest.as_deref() {
            disagree += 1;
        }
    }
    let unlisted = ledger
        .customers
        .iter()
        .filter(|c| c.created > 0 && !book.contains(&c.customer_id))
        .count();

    let steady: Vec<&Run> = runs.iter().filter(|r| r.steady_seconds > 1.0).collect();
    let steady_seconds: f64 = steady.iter().map(|r| r.steady_seconds).sum();
    let steady_requests: u64 = steady.iter().map(|r| r.steady_requests).sum();
    let steady_throttled: u64 = steady.iter().map(|r| r.steady_throttled).sum();
    let steady_fault429: u64 = steady.iter().map(|r| r.steady_fault429).sum();
    let admitted_rate = (steady_requests - steady_throttled) as f64 / steady_seconds;
    let throttled_share = steady_throttled as f64 / steady_requests.max(1) as f64;
    let peak = runs.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
    // The same, leaving out the last run's drain too (its last fifth: the final polls, with
    // too little work left to use the limit): what the throttle achieves while there is work.
    let busy: Vec<(f64, u64, u64)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let end = if i + 1 == runs.len() {
                run.seconds * 0.8
            } else {
                run.seconds
            };
            let at = |t: f64| {
                run.series
                    .iter()
                    .rev()
                    .find(|(s, _)| *s <= t)
                    .map(|(_, c)| *c)
            };
            let (from, to) = (at(WARM_UP.as_secs_f64())?, at(end)?);
            let seconds = end - WARM_UP.as_secs_f64();
            (seconds > 1.0).then(|| {
                (
                    seconds,
                    to.requests - from.requests,
                    to.throttled - from.throttled,
                )
            })
        })
        .collect();
    let busy_seconds: f64 = busy.iter().map(|b| b.0).sum();
    let busy_requests: u64 = busy.iter().map(|b| b.1).sum();
    let busy_throttled: u64 = busy.iter().map(|b| b.2).sum();
    let busy_rate = (busy_requests - busy_throttled) as f64 / busy_seconds.max(1e-9);
    let totals = mock.traffic().totals;

    println!("bulk: {customers} customers, throttle {rate}/s, faults {faults}, seed {seed}");
    println!(
        "plan: {plan_seconds:.1} s; apply: {apply_seconds:.1} s in {} runs ({} killed with SIGKILL)",
        runs.len(),
        runs.iter().filter(|r| r.killed).count()
    );
    for (i, run) in runs.iter().enumerate() {
        println!(
            "  run {}: {:.1} s, {}, peak RSS {:.1} MiB",
            i + 1,
            run.seconds,
            if run.killed {
                "killed".to_owned()
            } else {
                format!("exit {:?}", run.exit)
            },
            run.peak_mib
        );
    }
    println!(
        "journal vs ledger: {} customers journalled, {} not eligible in the plan, duplicates {duplicates}, missing {missing}, without a final state {unfinished}, disagreeing {disagree}, unlisted customers touched {unlisted}",
        rows.len(),
        not_eligible,
    );
    println!(
        "after each run's first {} s: {steady_requests} requests in {steady_seconds:.1} s; {:.2}% answered 429 by the throttle (plus {:.2}% by injected faults); admitted {admitted_rate:.0}/s = {:.1}% of the {rate}/s limit",
        WARM_UP.as_secs(),
        100.0 * throttled_share,
        100.0 * steady_fault429 as f64 / steady_requests.max(1) as f64,
        100.0 * admitted_rate / rate
    );
    println!(
        "the same without the last run's drain (its final fifth): {busy_requests} requests in {busy_seconds:.1} s; {:.2}% answered 429 by the throttle; admitted {busy_rate:.0}/s = {:.1}% of the limit",
        100.0 * busy_throttled as f64 / busy_requests.max(1) as f64,
        100.0 * busy_rate / rate
    );
    println!(
        "mock totals: {} requests, {} throttled, {} 429 faults, {} 5xx faults, {} drops",
        totals.requests, totals.throttled, totals.fault429, totals.fault5xx, totals.fault_drop
    );
    println!("peak RSS of pc-upgrade apply: {peak:.1} MiB (target <= 50 MiB)");
    let _ = std::fs::remove_dir_all(Path::new(&dir));

    assert_eq!(duplicates, 0, "duplicate upgrades");
    assert_eq!(missing, 0, "eligible customers without an upgrade");
    assert_eq!(unfinished, 0, "customers without a final state");
    assert_eq!(disagree, 0, "journal and ledger disagree");
    assert_eq!(unlisted, 0, "customers the plan did not list were touched");
    assert!(runs.iter().filter(|r| r.killed).count() >= kills);
    assert!(peak <= 50.0, "peak RSS {peak:.1} MiB over 50 MiB");
}
