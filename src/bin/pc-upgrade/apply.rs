//! `pc-upgrade apply PLAN --journal JOURNAL`: create and follow the upgrades a plan lists as
//! eligible (and follow those it found under way), each to a final state, with every step in the
//! journal so a run killed at any instant resumes where it stood.
//!
//! One scheduler, `--concurrency` calls in flight at once: a start (the library's one start
//! decision, [`Client::start_upgrade_as`], under the `MS-RequestId` the journal already holds)
//! or a status poll that is due. Every call waits on one [`Throttle`] shared by the whole run,
//! so a `429` anywhere slows everything, and polls draw on their own lane of it.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use partner_center_upgrades::{
    BaseUrl, CallReport, Client, CorrelationId, CustomerId, Error, ErrorKind, Failure, Finish,
    Operation, ProductFamily, RequestId, RetryPolicy, Start, Throttle, UpgradeId, UpgradeRequest,
    printable,
};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use tokio::time::Instant;

use super::journal::{Journal, Operator, RunInfo, bounded_to};
use super::{Output, exit};

/// The largest plan read.
const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;
/// The longest `Retry-After` a status answer may set before the next poll (unless
/// `--poll-interval` is longer still).
const MAX_POLL_WAIT: Duration = Duration::from_secs(15 * 60);
/// The longest `--poll-interval`.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// `--poll-interval`: from 100 ms to a day.
fn poll_interval(text: &str) -> Result<Duration, String> {
    let interval = super::duration_at_least::<100>(text)?;
    if interval > MAX_POLL_INTERVAL {
        return Err(format!(
            "{} is too long; use at most 24h",
            humantime::format_duration(interval)
        ));
    }
    Ok(interval)
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The plan `pc-upgrade plan` wrote
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// The journal (SQLite): created on the first run, resumed by every later one
    #[arg(long, value_name = "JOURNAL")]
    journal: PathBuf,
    /// Calls in flight at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Refuse a plan older than this (eligibility changes), e.g. 24h
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_plan_age: Duration,
    /// Apply the plan however old it is
    #[arg(long)]
    ignore_plan_age: bool,
    /// Time between status polls of one upgrade, unless Partner Center says otherwise (at most
    /// 24h)
    #[arg(long, default_value = "30s", value_parser = poll_interval)]
    poll_interval: Duration,
    /// Stop following an upgrade after this long in this session (it goes on; a resume
    /// follows it again)
    #[arg(long, default_value = "24h", value_parser = super::duration_at_least::<1000>)]
    upgrade_timeout: Duration,
    /// Times a customer whose calls failed in a retryable way is tried again in this session
    /// before it is left in the error state (a resume tries it again)
    #[arg(long, default_value_t = 5)]
    customer_retries: u32,
    /// Requests per second to start at [default: as fast as the concurrency allows, until the
    /// first throttling]
    #[arg(long)]
    initial_rate: Option<f64>,
    /// Never send more than this many requests per second (at least 0.5)
    #[arg(long, default_value_t = 1000.0)]
    max_rate: f64,
    /// The share of the rate status polls may use while starts are under way
    #[arg(long, default_value_t = 0.5)]
    poll_share: f64,
    /// Where to write the report at the end [default: JOURNAL.report/]
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Commit every journal change to disk before going on (survives a power cut, slower)
    #[arg(long)]
    durable: bool,
}

impl ApplyArgs {
    pub fn throttle(&self) -> Result<Throttle, String> {
        let rate_ok = |r: f64| r.is_finite() && r > 0.0;
        if !rate_ok(self.max_rate) || self.initial_rate.is_some_and(|r| !rate_ok(r)) {
            return Err("--initial-rate and --max-rate must be positive numbers".to_owned());
        }
        let min_rate = partner_center_upgrades::ThrottleConfig::default().min_rate;
        if self.max_rate < min_rate {
            return Err(format!(
                "--max-rate must be at least {min_rate} (the throttle never goes slower)"
            ));
        }
        if !(0.05..=0.95).contains(&self.poll_share) {
            return Err("--poll-share must be between 0.05 and 0.95".to_owned());
        }
        Ok(Throttle::new(partner_center_upgrades::ThrottleConfig {
            initial_rate: self.initial_rate,
            max_rate: self.max_rate,
            poll_share: self.poll_share,
            ..Default::default()
        }))
    }
}

/// The plan, as apply reads it.
struct Plan {
    created_at: chrono::DateTime<chrono::Utc>,
    /// The base URL the plan was made against, as [`BaseUrl`] writes it.
    base_url: String,
    product_family: ProductFamily,
    sha256: String,
    /// The customers to act on: eligible, or with an upgrade under way.
    customers: Vec<(CustomerId, &'static str)>,
    /// Customers the plan listed that apply leaves alone, by outcome.
    left_alone: Vec<(String, usize)>,
}

/// The plan file as `plan` writes it; what apply does not read (counts, ids, reasons) is
/// skipped, and a member given twice is refused rather than read as whichever came last.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanFile<'a> {
    version: Option<u64>,
    #[serde(borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    base_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    product_family: Option<Cow<'a, str>>,
    #[serde(borrow)]
    customers: Option<Vec<PlanEntry<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanEntry<'a> {
    #[serde(borrow)]
    customer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Option<Cow<'a, str>>,
}

/// How far in the future a plan's `createdAt` may be (clocks differ a little between hosts).
const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// The longest product family taken from a plan (it is sent to Partner Center as it is).
const MAX_FAMILY_CHARS: usize = 64;

fn read_plan(path: &Path) -> Result<Plan, String> {
    let name = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read the plan {name}: {e}"))?;
    let too_large = || format!("the plan {name} is larger than 256 MiB");
    if file.metadata().is_ok_and(|m| m.len() > MAX_PLAN_BYTES) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the plan {name}: {e}"))?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(too_large());
    }
    let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
    let not_plan = |what: &str| format!("{name} is not a pc-upgrade plan: {what}");
    let plan: PlanFile<'_> =
        serde_json::from_slice(&bytes).map_err(|e| not_plan(&bounded_to(&e.to_string(), 200)))?;
    if plan.version != Some(1) {
        return Err(not_plan("no \"version\": 1"));
    }
    let created_at = plan
        .created_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| not_plan("no createdAt date"))?
        .with_timezone(&chrono::Utc);
    if created_at - chrono::Utc::now() > MAX_CLOCK_SKEW {
        return Err(not_plan(&format!(
            "its createdAt ({}) is in the future, so its age cannot be told; make a new plan",
            created_at.to_rfc3339()
        )));
    }
    let base_url = plan.base_url.ok_or_else(|| not_plan("no baseUrl"))?;
    let base_url = BaseUrl::parse(&base_url)
        .map_err(|e| not_plan(&format!("its baseUrl: {e}")))?
        .as_str()
        .to_owned();
    let family = plan
        .product_family
        .ok_or_else(|| not_plan("no productFamily"))?;
    let product_family = ProductFamily::new(family.as_ref())
        .ok()
        .filter(|f| {
            let name = f.as_str();
            name.chars().count() <= MAX_FAMILY_CHARS && printable(name) == name
        })
        .ok_or_else(|| {
            not_plan(&format!(
                "its productFamily is empty, longer than {MAX_FAMILY_CHARS} characters or \
                 holds control characters"
            ))
        })?;
    let entries = plan
        .customers
        .ok_or_else(|| not_plan("no customers list"))?;
    let mut customers = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut left_alone: std::collections::BTreeMap<String, usize> = Default::default();
    for (index, entry) in entries.iter().enumerate() {
        let id = entry
            .customer_id
            .as_deref()
            .and_then(|t| CustomerId::parse(t).ok())
            .ok_or_else(|| not_plan(&format!("customer {} has no valid customerId", index + 1)))?;
        if !seen.insert(id) {
            return Err(not_plan(&format!("customer {id} is listed twice")));
        }
        match entry.outcome.as_deref() {
            Some("eligible") => customers.push((id, "eligible")),
            Some("underWay") => customers.push((id, "underWay")),
            Some(other @ ("notEligible" | "error")) => {
                *left_alone.entry(other.to_owned()).or_default() += 1
            }
            _ => return Err(not_plan(&format!("customer {id} has no known outcome"))),
        }
    }
    Ok(Plan {
        created_at,
        base_url,
        product_family,
        sha256,
        customers,
        left_alone: left_alone.into_iter().collect(),
    })
}

/// One customer of this session.
struct Item {
    request: UpgradeRequest,
    correlation_id: CorrelationId,
    create_request_id: RequestId,
    upgrade_id: Option<UpgradeId>,
    following_since: Option<Instant>,
    retries: u32,
}

/// A unit of work the scheduler hands to a free slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Start(usize),
    Poll(usize),
}

/// What one job came back with.
enum Step {
    Started(usize, Result<Start, Error>),
    Polled(
        usize,
        Result<partner_center_upgrades::Response<partner_center_upgrades::Upgrade>, Error>,
    ),
}

/// How the run ended, for the exit code.
#[derive(Default)]
struct Tally {
    completed: usize,
    failed: usize,
    not_eligible: usize,
    errors: usize,
    still_running: usize,
}

pub async fn apply(client: &Client, operator: Operator, args: ApplyArgs, output: Output) -> u8 {
    let plan = match read_plan(&args.plan) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };
    if plan.base_url != client.base_url().as_str() {
        eprintln!(
            "error: the plan was made against {}, not {}; apply it with the same --base-url",
            bounded_to(&plan.base_url, 200),
            bounded_to(client.base_url().as_str(), 200)
        );
        return exit::USAGE;
    }
    let age = chrono::Utc::now() - plan.created_at;
    let max_age = chrono::Duration::from_std(args.max_plan_age).unwrap_or(chrono::Duration::MAX);
    if age > max_age && !args.ignore_plan_age {
        eprintln!(
            "error: the plan is {} old, older than --max-plan-age {}; eligibility may have \
             changed: make a new plan, or pass --ignore-plan-age",
            humantime::format_duration(Duration::from_secs(age.num_seconds().max(0) as u64)),
            humantime::format_duration(args.max_plan_age)
        );
        return exit::USAGE;
    }
    if plan.customers.is_empty() {
        let found: Vec<String> = plan
            .left_alone
            .iter()
            .map(|(outcome, n)| format!("{n} {outcome}"))
            .collect();
        eprintln!(
            "error: the plan lists no customer that is eligible or has an upgrade under way \
             ({}); there is nothing to apply",
            if found.is_empty() {
                "it lists no customers".to_owned()
            } else {
                found.join(", ")
            }
        );
        return exit::USAGE;
    }
    let family = plan.product_family.clone();
    let run = RunInfo {
        plan_path: args.plan.display().to_string(),
        plan_sha256: plan.sha256.clone(),
        plan_created_at: plan.created_at.to_rfc3339(),
        base_url: plan.base_url.clone(),
        product_family: plan.product_family.as_str().to_owned(),
    };
    let journal = match Journal::open(
        &args.journal,
        &run,
        &plan.customers,
        &operator,
        args.durable,
    ) {
        Ok(journal) => journal,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };
    for (outcome, count) in &plan.left_alone {
        eprintln!("note: {count} customers the plan found {outcome} are left alone");
    }
    // The journal was checked against the plan when it was opened; nothing has been sent.
    let rows = match journal.unfinished() {
        Ok(rows) => rows,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };

    let mut items = Vec::with_capacity(rows.len());
    let mut queue = VecDeque::new();
    for row in rows {
        let parse_request = row
            .create_request_id
            .as_deref()
            .and_then(|t| RequestId::parse(t).ok());
        let parse_correlation = row
            .create_correlation_id
            .as_deref()
            .and_then(|t| CorrelationId::parse(t).ok());
        let index = items.len();
        items.push(Item {
            request: UpgradeRequest::new(row.customer, family.clone()),
            correlation_id: parse_correlation.unwrap_or_else(CorrelationId::new_random),
            create_request_id: parse_request.unwrap_or_else(RequestId::new_random),
            upgrade_id: row.upgrade_id,
            // An upgrade a resume follows: --upgrade-timeout counts from this session's start.
            following_since: row.upgrade_id.map(|_| Instant::now()),
            retries: 0,
        });
        queue.push_back(match row.upgrade_id {
            Some(_) => Job::Poll(index),
            None => Job::Start(index),
        });
        // A customer in `creating` (or an error after it) resumes under the MS-RequestId the
        // journal holds: that is what makes a second create impossible.
        if row.state == "pending" {
            let item = &items[index];
            if let Err(message) = journal.begin_create(
                row.customer,
                &item.create_request_id.to_string(),
                &item.correlation_id.to_string(),
            ) {
                return fatal(&message);
            }
        }
    }

    let total = plan.customers.len();
    let mut progress = Progress::new(total, total.saturating_sub(items.len()));
    let mut due: BinaryHeap<Reverse<(Instant, Job)>> = BinaryHeap::new();
    let mut in_flight = FuturesUnordered::new();
    let concurrency = usize::from(args.concurrency);
    let mut tally = Tally::default();
    let mut abort: Option<u8> = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // False once listening for Ctrl-C failed: a completed future is never polled again.
    let mut listening = true;

    loop {
        // Fill the free slots: due polls first (they finish upgrades and free memory), then
        // new starts.
        while abort.is_none() && in_flight.len() < concurrency {
            let now = Instant::now();
            let job = match due.peek() {
                Some(Reverse((at, _))) if *at <= now => due.pop().map(|Reverse((_, job))| job),
                _ => queue.pop_front(),
            };
            let Some(job) = job else { break };
            let item = match job {
                Job::Start(i) | Job::Poll(i) => &items[i],
            };
            let work = Work {
                request: item.request.clone(),
                correlation_id: item.correlation_id,
                create_request_id: item.create_request_id,
                upgrade_id: item.upgrade_id,
            };
            in_flight.push(run_job(client, &journal, work, job));
        }
        if in_flight.is_empty() && (abort.is_some() || (queue.is_empty() && due.is_empty())) {
            break;
        }
        let next_due = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            Some(step) = in_flight.next() => {
                let outcome = settle(step, &journal, &mut items, &args, &mut due, &mut tally);
                match outcome {
                    Ok(Some(code)) => abort = abort.or(Some(code)),
                    Ok(None) => {}
                    Err(message) => return fatal(&message),
                }
                progress.update(&tally, queue.len(), client);
            }
            _ = sleep_until(next_due), if next_due.is_some() && in_flight.len() < concurrency => {}
            signal = &mut interrupted, if listening => {
                if let Err(e) = signal {
                    listening = false;
                    eprintln!("warning: Ctrl-C cannot be caught ({e}); it stops the run at once");
                    continue;
                }
                eprintln!("interrupted: the journal holds every step; run the same command to resume");
                abort = Some(130);
                // Calls under way are dropped: each is settled by a resume, through the
                // journal's request ids and eligibility.
                break;
            }
        }
    }
    progress.finish();
    let _ = journal.end_session();
    let stats = client_throttle_summary(client);
    if let Some(line) = stats {
        eprintln!("{line}");
    }

    let report_dir = args.report.clone().unwrap_or_else(|| {
        let mut name = args.journal.as_os_str().to_owned();
        name.push(".report");
        PathBuf::from(name)
    });
    match super::report::write_report(&args.journal, &report_dir) {
        Ok(_) => eprintln!("report written to {}", report_dir.display()),
        Err(message) => eprintln!("warning: no report: {}", printable(&message)),
    }
    let counts = journal.counts().unwrap_or_default();
    match output {
        Output::Json => {
            let counts: serde_json::Map<String, Value> = counts
                .iter()
                .map(|(state, n)| (state.clone(), Value::from(*n)))
                .collect();
            println!(
                "{}",
                serde_json::json!({ "counts": counts, "total": total })
            );
        }
        Output::Text => {
            println!("customers: {total}");
            for (state, n) in &counts {
                println!("{state}: {n}");
            }
        }
    }
    if let Some(code) = abort {
        return code;
    }
    let left = counts
        .iter()
        .filter(|(s, _)| !super::journal::FINAL_STATES.contains(&s.as_str()))
        .map(|(_, n)| *n)
        .sum::<u64>();
    let failed = counts
        .iter()
        .filter(|(s, _)| ["failed", "partiallyCompleted", "cancelled"].contains(&s.as_str()))
        .map(|(_, n)| *n)
        .sum::<u64>();
    if left > 0 {
        if tally.still_running > 0 && tally.errors == 0 {
            exit::STILL_RUNNING
        } else {
            exit::SERVICE_ERROR
        }
    } else if failed > 0 {
        exit::UPGRADE_FAILED
    } else {
        exit::SUCCESS
    }
}

fn client_throttle_summary(client: &Client) -> Option<String> {
    let stats = client.throttle()?.stats();
    Some(format!(
        "throttle: {} of {} answers were 429 (noise floor {:.1}%); rate {}; {} cuts, {} pauses",
        stats.throttled,
        stats.answers,
        100.0 * stats.noise,
        stats
            .rate
            .map(|r| format!("{r:.0}/s"))
            .unwrap_or_else(|| "never limited".to_owned()),
        stats.cuts,
        stats.pauses
    ))
}

fn fatal(message: &str) -> u8 {
    eprintln!("error: {}", printable(message));
    exit::SERVICE_ERROR
}

/// `now + wait`, the wait held to a day: no answer can push a deadline past the clock's end.
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_POLL_INTERVAL)).unwrap_or(now)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a job needs of its customer, copied so the scheduler may update the items meanwhile.
struct Work {
    request: UpgradeRequest,
    correlation_id: CorrelationId,
    create_request_id: RequestId,
    upgrade_id: Option<UpgradeId>,
}

/// Runs one job. The journal sees every call as it returns.
async fn run_job(client: &Client, journal: &Journal, work: Work, job: Job) -> Step {
    let flow = client.with_correlation_id(work.correlation_id);
    match (job, work.upgrade_id) {
        (Job::Poll(index), Some(upgrade_id)) => Step::Polled(
            index,
            flow.get_upgrade_status(upgrade_id, &work.request).await,
        ),
        (Job::Start(index) | Job::Poll(index), _) => {
            let customer = work.request.customer_id;
            let result = flow
                .start_upgrade_as(&work.request, work.create_request_id, |call| {
                    // A journal that cannot be written is found at the next state change,
                    // which fails the run; an event lost here loses no state.
                    let _ = journal.call(customer, call);
                })
                .await;
            Step::Started(index, result)
        }
    }
}

/// Records a job's result and schedules what follows. `Ok(Some(code))` stops the run.
fn settle(
    step: Step,
    journal: &Journal,
    items: &mut [Item],
    args: &ApplyArgs,
    due: &mut BinaryHeap<Reverse<(Instant, Job)>>,
    tally: &mut Tally,
) -> Result<Option<u8>, String> {
    let now = Instant::now();
    match step {
        Step::Started(index, Ok(start)) => {
            let customer = items[index].request.customer_id;
            match start {
                Start::Created { upgrade_id } | Start::Resumed { upgrade_id } => {
                    let resumed = matches!(start, Start::Resumed { .. });
                    journal.following(customer, upgrade_id, resumed)?;
                    let item = &mut items[index];
                    item.upgrade_id = Some(upgrade_id);
                    item.following_since = Some(now);
                    // The first status poll right away: a finished upgrade named by
                    // eligibility is settled at once.
                    due.push(Reverse((now, Job::Poll(index))));
                }
                Start::NotEligible { reason } => {
                    journal.not_eligible(customer, reason.as_deref(), None)?;
                    tally.not_eligible += 1;
                }
                _ => {
                    journal.error(customer, "an unknown start outcome", None, None)?;
                    tally.errors += 1;
                }
            }
            Ok(None)
        }
        Step::Started(index, Err(error)) => {
            let customer = items[index].request.customer_id;
            // Partner Center refusing the check for this customer is an answer about the
            // customer (as `plan` reads it).
            if error.operation() == Operation::CheckEligibility
                && error.status() == Some(403)
                && let Some(service) = error.service_error()
            {
                journal.not_eligible(
                    customer,
                    Some(&service.description),
                    Some(service.code.to_string()),
                )?;
                tally.not_eligible += 1;
                return Ok(None);
            }
            failed(
                index,
                Job::Start(index),
                &error,
                journal,
                items,
                args,
                due,
                tally,
            )
        }
        Step::Polled(index, Ok(answer)) => {
            let customer = items[index].request.customer_id;
            let retry_after = answer.retry_after();
            let call = CallReport::of_response(
                Operation::GetUpgradeStatus,
                &answer,
                format!("status {}", printable(answer.value().status.as_str())),
            );
            let upgrade = answer.into_inner();
            match upgrade.finished() {
                Some(finish) => {
                    let state = match finish {
                        Finish::Completed => {
                            tally.completed += 1;
                            "completed"
                        }
                        Finish::PartiallyCompleted => {
                            tally.failed += 1;
                            "partiallyCompleted"
                        }
                        Finish::Cancelled => {
                            tally.failed += 1;
                            "cancelled"
                        }
                        _ => {
                            tally.failed += 1;
                            "failed"
                        }
                    };
                    journal.finished(customer, &call, state, &upgrade)?;
                }
                None => {
                    journal.polled(customer, &call, upgrade.status.as_str())?;
                    let item = &items[index];
                    let since = item.following_since.unwrap_or(now);
                    if now.duration_since(since) >= args.upgrade_timeout {
                        tally.still_running += 1;
                        eprintln!(
                            "customer {customer}: upgrade still {} after --upgrade-timeout; a \
                             resume follows it again",
                            bounded_to(upgrade.status.as_str(), 64)
                        );
                    } else {
                        // Partner Center's Retry-After, within reason: a huge one neither
                        // overflows the clock nor parks the customer past its
                        // --upgrade-timeout (the last poll is at the timeout).
                        let wait = retry_after
                            .map(|r| r.min(MAX_POLL_WAIT.max(args.poll_interval)))
                            .unwrap_or(args.poll_interval)
                            .max(args.poll_interval.min(Duration::from_secs(1)))
                            .max(partner_center_upgrades::POLL_FLOOR);
                        let mut at = later(now, wait);
                        if let Some(deadline) = since.checked_add(args.upgrade_timeout) {
                            at = at
                                .min(deadline.max(later(now, partner_center_upgrades::POLL_FLOOR)));
                        }
                        due.push(Reverse((at, Job::Poll(index))));
                    }
                }
            }
            Ok(None)
        }
        Step::Polled(index, Err(error)) => {
            if let Some(report) = Some(CallReport::of_error(&error)) {
                let customer = items[index].request.customer_id;
                let _ = journal.call(customer, &report);
            }
            failed(
                index,
                Job::Poll(index),
                &error,
                journal,
                items,
                args,
                due,
                tally,
            )
        }
    }
}

/// A job failed: stop the run (sign in again), try the customer again later (a retryable
/// failure, within `--customer-retries`), or leave it in the error state.
#[allow(clippy::too_many_arguments)]
fn failed(
    index: usize,
    job: Job,
    error: &Error,
    journal: &Journal,
    items: &mut [Item],
    args: &ApplyArgs,
    due: &mut BinaryHeap<Reverse<(Instant, Job)>>,
    tally: &mut Tally,
) -> Result<Option<u8>, String> {
    let customer = items[index].request.customer_id;
    let message = super::report(error);
    match error.kind() {
        ErrorKind::SignInAgain => {
            eprintln!("error: {}", printable(&message));
            return Ok(Some(exit::SIGN_IN_AGAIN));
        }
        ErrorKind::Auth => {
            eprintln!("error: {}", printable(&message));
            return Ok(Some(exit::SERVICE_ERROR));
        }
        _ => {}
    }
    let code = error.service_error().map(|s| s.code.to_string());
    if error.status() == Some(401) {
        // The token, not this customer: every other call would be refused the same way (the
        // client already renewed a token that said it expired).
        journal.error(customer, &message, error.status(), code)?;
        tally.errors += 1;
        eprintln!(
            "error: {}; Partner Center refused the access token (HTTP 401), so the run stops \
             here; run the same command once signed in again",
            bounded_to(&message, 2000)
        );
        return Ok(Some(exit::SERVICE_ERROR));
    }
    let item = &mut items[index];
    if RetryPolicy::is_retryable(Failure::of(error)) && item.retries < args.customer_retries {
        item.retries += 1;
        let wait = Duration::from_secs(1 << item.retries.min(6));
        due.push(Reverse((later(Instant::now(), wait), job)));
        return Ok(None);
    }
    journal.error(customer, &message, error.status(), code)?;
    tally.errors += 1;
    Ok(None)
}

/// Progress on stderr: bars on a terminal, a line every ten seconds otherwise.
struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        indicatif::ProgressBar,
        indicatif::ProgressBar,
    )>,
    total: usize,
    done_before: usize,
    last_line: std::time::Instant,
}

impl Progress {
    fn new(total: usize, done_before: usize) -> Progress {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = indicatif::MultiProgress::new();
            let style = indicatif::ProgressStyle::with_template(
                "{prefix:>9} [{bar:40}] {pos}/{len} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            let started = multi.add(indicatif::ProgressBar::new(total as u64));
            started.set_style(style.clone());
            started.set_prefix("started");
            started.set_position(done_before as u64);
            let finished = multi.add(indicatif::ProgressBar::new(total as u64));
            finished.set_style(style);
            finished.set_prefix("finished");
            finished.set_position(done_before as u64);
            started.enable_steady_tick(Duration::from_millis(250));
            (multi, started, finished)
        });
        Progress {
            bars,
            total,
            done_before,
            last_line: std::time::Instant::now(),
        }
    }

    /// `to_start`: the jobs not yet begun.
    fn update(&mut self, tally: &Tally, to_start: usize, client: &Client) {
        let finished =
            self.done_before + tally.completed + tally.failed + tally.not_eligible + tally.errors;
        let counts = format!(
            "completed {}, failed {}, not eligible {}, errors {}",
            tally.completed, tally.failed, tally.not_eligible, tally.errors
        );
        match &self.bars {
            Some((_, started, done)) => {
                started.set_position((self.total - to_start.min(self.total)) as u64);
                done.set_position(finished as u64);
                done.set_message(counts);
            }
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(10) {
                    self.last_line = std::time::Instant::now();
                    let throttle = client_throttle_summary(client).unwrap_or_default();
                    eprintln!("{finished}/{} finished: {counts}; {throttle}", self.total);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some((_, started, done)) = &self.bars {
            started.finish();
            done.finish();
        }
    }
}
