//! The mock's state and what each operation does with it: the upgrades it remembers (bounded:
//! the oldest finished ones are forgotten first), the replay cache that gives a repeated
//! `MS-RequestId` its first answer (bounded in bytes, keyed by operation and request id, holding a
//! fingerprint of the request, never the request), the per-customer counts of
//! [`crate::RunningMock::ledger`] (kept when an upgrade is forgotten, so a client's journal can be
//! compared with them however long the run), and the eligibility, create and status answers, with
//! a customer's scenario [`Plan`] and the deliberate [`Breakage`]s.
//!
//! The answers' bodies are built by small pure functions ([`not_eligible_body`],
//! [`status_body`], ...) that the scenario check also calls at start, so what is checked against
//! the spec there is what is sent here.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::faults::Fault;
use crate::scenario::Plan;
use crate::{Breakage, FAILING_CUSTOMER, MockConfig, NO_AZURE_CUSTOMER};

/// The most customers [`crate::RunningMock::ledger`] counts one by one; creates for customers
/// past it are counted in [`LedgerTotals::untracked_created`] only.
pub const MAX_LEDGER_CUSTOMERS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub(crate) struct UpgradeRecord {
    pub(crate) id: Uuid,
    pub(crate) customer: Uuid,
    pub(crate) family: String,
    pub(crate) polls: u32,
    /// How many polls it takes to finish: [`MockConfig::polls_to_complete`] unless the
    /// customer's scenario says otherwise.
    pub(crate) finish_after: u32,
    pub(crate) fails: bool,
    pub(crate) created: chrono::DateTime<chrono::Utc>,
}

/// Where an upgrade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    InProgress,
    Completed,
    Failed,
}

impl State {
    /// The status name the status operation answers.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::InProgress => "InProgress",
            State::Completed => "Completed",
            State::Failed => "Failed",
        }
    }
}

impl UpgradeRecord {
    pub(crate) fn finished(&self) -> bool {
        self.polls >= self.finish_after
    }

    pub(crate) fn state(&self) -> State {
        match (self.finished(), self.fails) {
            (false, _) => State::InProgress,
            (true, false) => State::Completed,
            (true, true) => State::Failed,
        }
    }

    /// What keeping it costs: the record, its map slots (`upgrades`, `latest`) and its place in
    /// the creation and finishing queues. An estimate; allocator slack is not counted.
    pub(crate) fn retained_bytes(&self) -> usize {
        std::mem::size_of::<UpgradeRecord>()
            + self.family.len()
            + 3 * std::mem::size_of::<Uuid>()
            + 2 * std::mem::size_of::<Uuid>()
            + 32
    }
}

/// An answer as it is decided.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn error(status: u16, code: i64, description: impl Into<String>) -> Self {
        Answer::json(
            status,
            json!({ "code": code, "description": description.into(), "data": [], "source": "PartnerFD" }),
        )
    }

    /// The answer as it is sent and remembered: the body serialised once.
    pub(crate) fn freeze(self) -> Stored {
        Stored {
            status: self.status,
            headers: self.headers,
            body: self
                .body
                .map(|b| Bytes::from(serde_json::to_vec(&b).expect("JSON values serialize"))),
        }
    }
}

/// An answer ready to send; kept so a replayed `MS-RequestId` gets it again.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Bytes>,
}

impl Stored {
    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Remembered answers are capped in number too, whatever their size.
const MAX_REMEMBERED: usize = 200_000;

/// What a replay needs: the answer, and a fingerprint of the request it answered (path and
/// parsed body), never the request itself.
#[derive(Debug)]
pub(crate) struct Remembered {
    pub(crate) request: Fingerprint,
    pub(crate) answer: Stored,
    pub(crate) bytes: usize,
}

/// A keyed 128-bit hash of a request's path and canonical body, and the body's length. The keys
/// are random per mock, so a client cannot make two requests collide on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) u64, pub(crate) u64, pub(crate) usize);

/// (the operation's index in the spec's operations, `MS-RequestId`).
pub(crate) type ReplayKey = (usize, String);

/// One customer's counts, kept when its upgrades are forgotten.
#[derive(Debug, Clone, Default)]
pub(crate) struct CustomerEntry {
    /// Upgrades created by clients.
    pub(crate) created: u64,
    /// Upgrades that existed when the mock started (scenario `underWay`).
    pub(crate) preexisting: u64,
    /// The latest upgrade, held or forgotten.
    pub(crate) latest: Option<Uuid>,
    /// The state the latest upgrade had when it was forgotten.
    pub(crate) forgotten: Option<State>,
}

impl CustomerEntry {
    /// What keeping one costs: the entry and its key in the map, with the hash table's slack.
    const BYTES: usize = std::mem::size_of::<(Uuid, CustomerEntry)>() + 16;
}

/// What [`crate::RunningMock::ledger`] reports for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLedger {
    /// The customer.
    pub customer_id: Uuid,
    /// Upgrades created by clients since start (a replayed `MS-RequestId` is not a create).
    pub created: u64,
    /// Upgrades that already existed when the mock started (scenario `underWay`).
    pub preexisting: u64,
    /// The customer's latest upgrade, even when the mock has forgotten it.
    pub latest_upgrade_id: Option<Uuid>,
    /// Its status: `InProgress`, `Completed` or `Failed` (as it was when it was forgotten).
    pub latest_status: Option<&'static str>,
}

/// The ledger's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Customers counted one by one (at most [`MAX_LEDGER_CUSTOMERS`]).
    pub customers: u64,
    /// Upgrades created by clients, all customers (the same as
    /// [`crate::RunningMock::upgrades_created`]).
    pub created: u64,
    /// Upgrades that existed when the mock started.
    pub preexisting: u64,
    /// The part of `created` for customers past [`MAX_LEDGER_CUSTOMERS`], not counted one by one.
    pub untracked_created: u64,
    /// Customers whose latest upgrade is in progress.
    pub in_progress: u64,
    /// Customers whose latest upgrade completed.
    pub completed: u64,
    /// Customers whose latest upgrade failed.
    pub failed: u64,
    /// Upgrades created by clients whose status was then read at least once: how often a
    /// client (or a tool's stateful phase) followed what it created.
    pub followed: u64,
    /// Status reads naming an upgrade the mock holds (ids a client can only know from an
    /// answer: `Location`, or eligibility's `upgradeId`).
    pub reads_of_held: u64,
    /// Of those, the reads whose body named the upgrade's own customer (answered 200).
    pub reads_of_held_ok: u64,
}

/// What the mock did for each customer: [`crate::RunningMock::ledger`] and `GET /_mock/ledger`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Every customer counted, by customer id.
    pub customers: Vec<CustomerLedger>,
    /// The totals.
    pub totals: LedgerTotals,
}

impl LedgerReport {
    /// The report as JSON, as `GET /_mock/ledger` serves it: `{"customers": [{"customerId",
    /// "created", "preexisting", "latestUpgradeId", "latestStatus"}], "totals": {...}}`.
    /// Written directly, not through a `serde_json::Value`: a million customers would take a
    /// gigabyte as values, and this way about 150 MB as text.
    pub fn to_json(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(64 + self.customers.len() * 160);
        out.push_str("{\"customers\":[");
        for (i, c) in self.customers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Ids and statuses are GUIDs and fixed names: nothing to escape.
            let quoted = |v: Option<String>| v.map_or("null".to_owned(), |v| format!("\"{v}\""));
            let _ = write!(
                out,
                "{{\"customerId\":\"{}\",\"created\":{},\"preexisting\":{},\"latestUpgradeId\":{},\"latestStatus\":{}}}",
                c.customer_id,
                c.created,
                c.preexisting,
                quoted(c.latest_upgrade_id.map(|id| id.to_string())),
                quoted(c.latest_status.map(str::to_owned)),
            );
        }
        let t = &self.totals;
        let totals = json!({
            "customers": t.customers,
            "created": t.created,
            "preexisting": t.preexisting,
            "untrackedCreated": t.untracked_created,
            "followed": t.followed,
            "readsOfHeld": t.reads_of_held,
            "readsOfHeldOk": t.reads_of_held_ok,
            "inProgress": t.in_progress,
            "completed": t.completed,
            "failed": t.failed,
        });
        let _ = write!(out, "],\"totals\":{totals}}}");
        out
    }
}

/// The mock's state: upgrades, remembered answers, per-customer counts, scripted faults and
/// counters.
pub(crate) struct Ledger {
    pub(crate) upgrades: HashMap<Uuid, UpgradeRecord>,
    /// The customer's latest upgrade.
    pub(crate) latest: HashMap<Uuid, Uuid>,
    /// Upgrade ids in the order they finished, oldest first: the ones forgotten first when
    /// [`MockConfig::max_upgrades`] is reached. Ids already forgotten are skipped.
    pub(crate) finished_order: VecDeque<Uuid>,
    /// Estimated bytes held by `upgrades`, `latest` and the queues.
    pub(crate) upgrade_bytes: usize,
    /// (operation, MS-RequestId) → the answer and a fingerprint of the request.
    pub(crate) answers: HashMap<ReplayKey, Remembered>,
    pub(crate) answer_order: VecDeque<ReplayKey>,
    /// Estimated bytes held by `answers` and `answer_order`.
    pub(crate) answer_bytes: usize,
    pub(crate) scripted: VecDeque<Fault>,
    pub(crate) requests: u64,
    /// Upgrades created by clients (not the preexisting ones).
    pub(crate) upgrades_created: u64,
    /// Per-customer counts, at most `customer_cap` customers.
    pub(crate) customers: HashMap<Uuid, CustomerEntry>,
    pub(crate) customer_cap: usize,
    /// Estimated bytes held by `customers`.
    pub(crate) customer_bytes: usize,
    pub(crate) preexisting: u64,
    /// Creates for customers past `customer_cap`.
    pub(crate) untracked_created: u64,
    /// The upgrades that existed at start (scenario `underWay`): not the clients' creates.
    pub(crate) preexisting_ids: std::collections::HashSet<Uuid>,
    /// Upgrades created by clients whose status was read at least once.
    pub(crate) followed: u64,
    /// Status reads naming an upgrade the mock holds, and those whose body named its customer.
    pub(crate) reads_of_held: u64,
    pub(crate) reads_of_held_ok: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            upgrades: HashMap::new(),
            latest: HashMap::new(),
            finished_order: VecDeque::new(),
            upgrade_bytes: 0,
            answers: HashMap::new(),
            answer_order: VecDeque::new(),
            answer_bytes: 0,
            scripted: VecDeque::new(),
            requests: 0,
            upgrades_created: 0,
            customers: HashMap::new(),
            customer_cap: MAX_LEDGER_CUSTOMERS,
            customer_bytes: 0,
            preexisting: 0,
            untracked_created: 0,
            preexisting_ids: std::collections::HashSet::new(),
            followed: 0,
            reads_of_held: 0,
            reads_of_held_ok: 0,
        }
    }
}

impl Ledger {
    /// Remembers a new upgrade as its customer's latest, counted as created by a client or as
    /// preexisting. The caller has made room for it.
    pub(crate) fn insert_upgrade(&mut self, record: UpgradeRecord, preexisting: bool) {
        let (id, customer) = (record.id, record.customer);
        self.upgrade_bytes += record.retained_bytes();
        self.upgrades.insert(id, record);
        self.latest.insert(customer, id);
        if preexisting {
            self.preexisting += 1;
            self.preexisting_ids.insert(id);
        } else {
            self.upgrades_created += 1;
        }
        let cap = self.customer_cap;
        let known = self.customers.contains_key(&customer);
        if !known && self.customers.len() >= cap {
            if !preexisting {
                self.untracked_created += 1;
            }
            return;
        }
        if !known {
            self.customer_bytes += CustomerEntry::BYTES;
        }
        let entry = self.customers.entry(customer).or_default();
        if preexisting {
            entry.preexisting += 1;
        } else {
            entry.created += 1;
        }
        entry.latest = Some(id);
        entry.forgotten = None;
    }

    /// The per-customer report, by customer id.
    pub(crate) fn report(&self) -> LedgerReport {
        let mut totals = LedgerTotals {
            customers: self.customers.len() as u64,
            created: self.upgrades_created,
            preexisting: self.preexisting,
            untracked_created: self.untracked_created,
            followed: self.followed,
            reads_of_held: self.reads_of_held,
            reads_of_held_ok: self.reads_of_held_ok,
            ..LedgerTotals::default()
        };
        let mut customers: Vec<CustomerLedger> = self
            .customers
            .iter()
            .map(|(customer, entry)| {
                let state = entry.latest.and_then(|id| {
                    self.upgrades
                        .get(&id)
                        .map(UpgradeRecord::state)
                        .or(entry.forgotten)
                });
                match state {
                    Some(State::InProgress) => totals.in_progress += 1,
                    Some(State::Completed) => totals.completed += 1,
                    Some(State::Failed) => totals.failed += 1,
                    None => {}
                }
                CustomerLedger {
                    customer_id: *customer,
                    created: entry.created,
                    preexisting: entry.preexisting,
                    latest_upgrade_id: entry.latest,
                    latest_status: state.map(State::as_str),
                }
            })
            .collect();
        customers.sort_unstable_by_key(|c| c.customer_id);
        LedgerReport { customers, totals }
    }

    /// Remembers `answer` for `key` unless something is remembered already, then forgets the
    /// oldest answers until the cache is within `budget` bytes and [`MAX_REMEMBERED`] entries.
    pub(crate) fn remember(
        &mut self,
        key: ReplayKey,
        request: Fingerprint,
        answer: Stored,
        budget: usize,
    ) {
        if self.answers.contains_key(&key) {
            return;
        }
        let bytes = std::mem::size_of::<ReplayKey>() * 2
            + std::mem::size_of::<Remembered>()
            + key.1.len()
            + answer.body.as_ref().map_or(0, Bytes::len)
            + answer
                .headers
                .iter()
                .map(|(name, value)| {
                    std::mem::size_of::<(&str, String)>() + name.len() + value.len()
                })
                .sum::<usize>()
            + 16;
        self.answer_bytes += bytes;
        self.answers.insert(
            key.clone(),
            Remembered {
                request,
                answer,
                bytes,
            },
        );
        self.answer_order.push_back(key);
        while self.answer_bytes > budget || self.answer_order.len() > MAX_REMEMBERED {
            let Some(oldest) = self.answer_order.pop_front() else {
                break;
            };
            if let Some(forgotten) = self.answers.remove(&oldest) {
                self.answer_bytes -= forgotten.bytes;
            }
        }
    }

    /// Makes room for one more upgrade: forgets the oldest finished one when `max` are held.
    /// False when all `max` are still in progress.
    pub(crate) fn make_room(&mut self, max: usize) -> bool {
        while self.upgrades.len() >= max.max(1) {
            let Some(oldest) = self.finished_order.pop_front() else {
                return false;
            };
            if let Some(forgotten) = self.upgrades.remove(&oldest) {
                self.upgrade_bytes -= forgotten.retained_bytes();
                if self.latest.get(&forgotten.customer) == Some(&oldest) {
                    self.latest.remove(&forgotten.customer);
                }
                // The ledger keeps what became of it.
                if let Some(entry) = self.customers.get_mut(&forgotten.customer)
                    && entry.latest == Some(oldest)
                {
                    entry.forgotten = Some(forgotten.state());
                }
            }
        }
        true
    }
}

/// Only `Azure` (any casing) is offered. The spec keeps product families an open set, so another
/// family is a valid request that gets a business answer: not eligible, and create refused.
pub(crate) fn offered(family: &str) -> bool {
    family.eq_ignore_ascii_case("azure")
}

/// The eligibility body of a customer who is not eligible, for `reason` (any JSON a scenario
/// gave; the scenario check makes sure the spec takes it).
pub(crate) fn not_eligible_body(customer: Uuid, family: &str, reason: &Value) -> Value {
    json!({ "customerId": customer, "productFamily": family, "isEligible": false, "reason": reason })
}

/// The eligibility body of a customer whose latest upgrade is `id`, in `state`: it is named in
/// `upgradeId`, and only a failed one leaves the customer eligible.
pub(crate) fn eligibility_with_upgrade(
    customer: Uuid,
    family: &str,
    id: Uuid,
    state: State,
) -> Value {
    let (eligible, reason) = match state {
        State::InProgress => (false, format!("Upgrade {id} is in progress.")),
        State::Completed => (
            false,
            "The customer has already been upgraded to an Azure plan.".to_owned(),
        ),
        State::Failed => (true, format!("Upgrade {id} failed; it can be retried.")),
    };
    json!({
        "customerId": customer,
        "productFamily": family,
        "isEligible": eligible,
        "upgradeId": id,
        "reason": reason,
    })
}

/// Create's answer when the customer's latest upgrade is `id`, in `state`: 409 (`900109`, the
/// upgrade named in `data`) while it is in progress, 400 (`900110`) once it completed; `None`
/// after a failure (a new one may be created).
pub(crate) fn create_conflict(id: Uuid, state: State) -> Option<Answer> {
    match state {
        State::InProgress => {
            let mut answer = Answer::error(
                409,
                900109,
                format!("The original upgrade {id} is in progress."),
            );
            if let Some(body) = answer.body.as_mut() {
                body["data"] = json!([id]);
            }
            Some(answer)
        }
        State::Completed => Some(Answer::error(
            400,
            900110,
            format!("The customer has already completed upgrade {id}."),
        )),
        State::Failed => None,
    }
}

/// A Partner Center error answer whose code and description a scenario gave (any JSON; the
/// scenario check makes sure the spec takes them).
pub(crate) fn scenario_error(status: u16, code: &Value, description: &Value) -> Answer {
    Answer::json(
        status,
        json!({ "code": code, "description": description, "data": [], "source": "PartnerFD" }),
    )
}

/// The `errorDetails` of a failed upgrade when no scenario says otherwise.
pub(crate) fn default_failure() -> Value {
    json!({ "code": "900120", "description": "The Azure upgrade could not be processed." })
}

/// The status body of `upgrade` as it is now, with `failure` as the `errorDetails` of a failed
/// one (top level and line item).
pub(crate) fn status_body(upgrade: &UpgradeRecord, failure: &Value) -> Value {
    let state = upgrade.state();
    let subscription = Uuid::from_u128(upgrade.customer.as_u128() ^ 0x5eed);
    let mut line = json!({
        "sourceProduct": { "id": subscription, "name": "AzureSubscription" },
        "targetProduct": { "id": "d231908e-31c1-de0e-027b-bc5ce11f09d9", "name": "Microsoft Azure plan" },
        "status": state.as_str(),
    });
    let mut body = json!({
        "id": upgrade.id,
        "status": state.as_str(),
        "productFamily": upgrade.family,
        "lineItems": [],
    });
    match state {
        State::InProgress => {}
        State::Completed => {
            line["upgradedDate"] = json!(partner_center_timestamp(upgrade.created));
        }
        State::Failed => {
            line["errorDetails"] = failure.clone();
            body["errorDetails"] = failure.clone();
        }
    }
    body["lineItems"] = json!([line]);
    body
}

/// A new upgrade record for `customer`, as `plan` (or the built-in customers) shapes it.
pub(crate) fn new_record(
    config: &MockConfig,
    customer: Uuid,
    family: &str,
    plan: Option<&Plan>,
) -> UpgradeRecord {
    let (finish_after, fails) = match plan {
        Some(Plan::FailsAtPoll { poll, .. }) => (*poll, true),
        Some(Plan::Slow { polls, .. }) => (*polls, false),
        Some(_) => (config.polls_to_complete, false),
        None => (
            config.polls_to_complete,
            customer.to_string() == FAILING_CUSTOMER,
        ),
    };
    UpgradeRecord {
        id: Uuid::new_v4(),
        customer,
        family: family.to_owned(),
        polls: 0,
        finish_after: finish_after.max(1),
        fails,
        created: chrono::Utc::now(),
    }
}

/// Whether an upgrade is old enough for eligibility and create to see it
/// ([`MockConfig::eligibility_lag`]).
fn visible(config: &MockConfig, upgrade: &UpgradeRecord) -> bool {
    config.eligibility_lag.is_zero()
        || chrono::Utc::now() - upgrade.created
            >= chrono::Duration::from_std(config.eligibility_lag).unwrap_or(chrono::Duration::MAX)
}

/// The eligibility answer: a scenario's refusal or reason, the built-in customers, or the
/// latest upgrade (under way or done) named in `upgradeId`.
pub(crate) fn eligibility(
    config: &MockConfig,
    ledger: &Ledger,
    customer: Uuid,
    family: &str,
    plan: Option<&Plan>,
) -> Answer {
    let mut body = json!({ "customerId": customer, "productFamily": family, "isEligible": true });
    let wrong_type = config.breakage == Some(Breakage::WrongType);
    if !offered(family) {
        body["isEligible"] = json!(false);
        body["reason"] = json!(format!("No upgrade to product family {family} is offered."));
    } else if let Some(Plan::NotEligible {
        reason, refusal, ..
    }) = plan
    {
        match refusal {
            Some(refusal) => return refusal.clone(),
            None => body = not_eligible_body(customer, family, reason),
        }
    } else if plan.is_none() && customer.to_string() == NO_AZURE_CUSTOMER {
        body["isEligible"] = json!(false);
        body["reason"] = json!("The customer has no Microsoft Azure (MS-AZR-0145P) subscription.");
    } else if let Some(upgrade) = ledger
        .latest
        .get(&customer)
        .and_then(|id| ledger.upgrades.get(id))
        .filter(|upgrade| visible(config, upgrade))
    {
        body = eligibility_with_upgrade(customer, family, upgrade.id, upgrade.state());
    }
    if config.breakage == Some(Breakage::MissingField)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("isEligible");
    }
    if wrong_type {
        body["isEligible"] = json!(body["isEligible"].to_string());
    }
    Answer::json(200, body)
}

/// Creates an upgrade (202 with `Location: {location_base}/{id}`), or refuses: not offered,
/// not eligible (a scenario's refusal, or no Azure subscriptions), one under way (409,
/// `900109`), already done, or the mock full (503).
pub(crate) fn create(
    config: &MockConfig,
    ledger: &mut Ledger,
    customer: Uuid,
    family: &str,
    location_base: &str,
    plan: Option<&Plan>,
) -> Answer {
    if !offered(family) {
        return Answer::error(
            403,
            900120,
            format!("No upgrade to product family {family} is offered."),
        );
    }
    if let Some(Plan::NotEligible { create, .. }) = plan {
        return create.clone();
    }
    if plan.is_none() && customer.to_string() == NO_AZURE_CUSTOMER {
        return Answer::error(
            403,
            900108,
            "The customer has no Azure subscriptions to upgrade.",
        );
    }
    let duplicates_allowed = config.breakage == Some(Breakage::DuplicateOnReplay);
    if !duplicates_allowed
        && let Some(upgrade) = ledger
            .latest
            .get(&customer)
            .and_then(|id| ledger.upgrades.get(id))
        && visible(config, upgrade)
        && let Some(conflict) = create_conflict(upgrade.id, upgrade.state())
    {
        return conflict;
    }
    if !ledger.make_room(config.max_upgrades) {
        let mut answer = Answer::error(
            503,
            503,
            format!(
                "The mock holds {} upgrades, all in progress; poll some to the end or restart it.",
                ledger.upgrades.len()
            ),
        );
        answer.headers.push(("retry-after", "1".into()));
        return answer;
    }
    let record = new_record(config, customer, family, plan);
    let id = record.id;
    ledger.insert_upgrade(record, false);
    let mut answer = Answer {
        status: if config.breakage == Some(Breakage::WrongStatus) {
            201
        } else {
            202
        },
        headers: Vec::new(),
        body: None,
    };
    if config.breakage != Some(Breakage::MissingLocation) {
        answer
            .headers
            .push(("location", format!("{location_base}/{id}")));
    }
    answer
}

/// The status of an upgrade, one poll further on: `InProgress` until it finishes, then
/// `Completed`, or `Failed` with the scenario's (or the default) `errorDetails`.
pub(crate) fn status(
    config: &MockConfig,
    ledger: &mut Ledger,
    customer: Uuid,
    upgrade_id: Uuid,
    plan: Option<&Plan>,
) -> Answer {
    let not_found = || {
        Answer::error(
            404,
            900106,
            format!("No upgrade request {upgrade_id} was found."),
        )
    };
    let Some(owner) = ledger.upgrades.get(&upgrade_id).map(|u| u.customer) else {
        return not_found();
    };
    let owned = owner == customer;
    ledger.reads_of_held += 1;
    ledger.reads_of_held_ok += u64::from(owned);
    let Some(upgrade) = ledger.upgrades.get_mut(&upgrade_id) else {
        return not_found();
    };
    if !owned {
        return Answer::error(
            400,
            900111,
            format!("The upgrade id {upgrade_id} does not belong to customer {customer}."),
        );
    }
    let was_finished = upgrade.finished();
    let first_read = upgrade.polls == 0;
    upgrade.polls = upgrade.polls.saturating_add(1);
    let just_finished = !was_finished && upgrade.finished();
    let mut body = match plan {
        Some(Plan::FailsAtPoll { details, .. }) => status_body(upgrade, details),
        _ => status_body(upgrade, &default_failure()),
    };
    if config.breakage == Some(Breakage::MalformedDate)
        && let Some(line) = body["lineItems"].get_mut(0)
    {
        line["upgradedDate"] = json!("yesterday");
    }
    if config.breakage == Some(Breakage::MissingField)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("status");
    }
    if just_finished {
        ledger.finished_order.push_back(upgrade_id);
    }
    if first_read && !ledger.preexisting_ids.contains(&upgrade_id) {
        ledger.followed += 1;
    }
    Answer::json(200, body)
}

/// A UTC timestamp with 7 fractional digits (.NET ticks), as Partner Center writes them:
/// `2019-08-29T23:47:28.8524555Z`. chrono's format strings stop at 3, 6 or 9 digits.
fn partner_center_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike;
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_seven_fractional_digits() {
        use chrono::TimeZone;
        let at = chrono::Utc
            .timestamp_opt(1_567_122_448, 852_455_500)
            .unwrap();
        assert_eq!(partner_center_timestamp(at), "2019-08-29T23:47:28.8524555Z");
    }

    fn stored(body_bytes: usize) -> Stored {
        Stored {
            status: 200,
            headers: vec![("location", "productUpgrades/x".into())],
            body: Some(Bytes::from(vec![b'x'; body_bytes])),
        }
    }

    #[test]
    fn the_replay_cache_stays_within_its_byte_budget_and_forgets_the_oldest() {
        let mut ledger = Ledger::default();
        let budget = 64 * 1024;
        for i in 0..1000u64 {
            let key = (1, format!("request-{i}"));
            ledger.remember(key, Fingerprint(i, i, 10), stored(1000), budget);
            assert!(ledger.answer_bytes <= budget, "{}", ledger.answer_bytes);
        }
        assert!(ledger.answers.len() > 10, "{}", ledger.answers.len());
        assert!(ledger.answers.contains_key(&(1, "request-999".to_owned())));
        assert!(!ledger.answers.contains_key(&(1, "request-0".to_owned())));
        let counted: usize = ledger.answers.values().map(|r| r.bytes).sum();
        assert_eq!(counted, ledger.answer_bytes);
        // Each entry counts at least what it holds.
        assert!(ledger.answers.values().all(|r| r.bytes > 1000));
    }

    #[test]
    fn the_ledger_counts_customers_one_by_one_up_to_its_cap_and_the_rest_in_its_totals() {
        let mut ledger = Ledger {
            customer_cap: 2,
            ..Ledger::default()
        };
        let config = MockConfig::default();
        let customers = [1u128, 2, 3].map(Uuid::from_u128);
        for (n, customer) in customers.iter().enumerate() {
            let record = new_record(&config, *customer, "Azure", None);
            ledger.insert_upgrade(record, n == 0);
        }
        // The first customer again, past the cap: it is known, so it is still counted.
        let again = new_record(&config, customers[0], "Azure", None);
        let latest = again.id;
        ledger.insert_upgrade(again, false);

        let report = ledger.report();
        assert_eq!(report.customers.len(), 2);
        assert_eq!(
            (report.customers[0].created, report.customers[0].preexisting),
            (1, 1)
        );
        assert_eq!(report.customers[0].latest_upgrade_id, Some(latest));
        assert_eq!(report.customers[0].latest_status, Some("InProgress"));
        let t = report.totals;
        assert_eq!(
            (t.customers, t.created, t.preexisting, t.untracked_created),
            (2, 3, 1, 1)
        );
        assert_eq!(ledger.customer_bytes, 2 * CustomerEntry::BYTES);
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["customers"][1]["customerId"], json!(customers[1]));
        assert_eq!(json["customers"][1]["latestStatus"], json!("InProgress"));
        assert_eq!(json["totals"]["untrackedCreated"], json!(1));
    }

    #[test]
    fn the_oldest_finished_upgrade_makes_room_and_in_progress_ones_never_do() {
        let mut ledger = Ledger::default();
        let record = |n: u128, polls| UpgradeRecord {
            id: Uuid::from_u128(n),
            customer: Uuid::from_u128(1000 + n),
            family: "Azure".into(),
            polls,
            finish_after: 1,
            fails: false,
            created: chrono::Utc::now(),
        };
        for n in 0..3 {
            let upgrade = record(n, 0);
            ledger.upgrade_bytes += upgrade.retained_bytes();
            ledger.latest.insert(upgrade.customer, upgrade.id);
            ledger.upgrades.insert(upgrade.id, upgrade);
        }
        assert!(!ledger.make_room(3), "all three are in progress");
        assert!(ledger.make_room(4));
        ledger.finished_order.push_back(Uuid::from_u128(1));
        assert!(ledger.make_room(3));
        assert_eq!(ledger.upgrades.len(), 2);
        assert!(!ledger.upgrades.contains_key(&Uuid::from_u128(1)));
        assert!(!ledger.latest.contains_key(&Uuid::from_u128(1001)));
        assert_eq!(ledger.upgrade_bytes, 2 * record(0, 0).retained_bytes());
    }
}
