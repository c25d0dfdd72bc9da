//! The mock's state and what each operation does with it: the upgrades it remembers (bounded:
//! the oldest finished ones are forgotten first), the replay cache that gives a repeated
//! `MS-RequestId` its first answer (bounded in bytes, keyed by operation and request id, holding a
//! fingerprint of the request, never the request), and the eligibility, create and status
//! answers, with the deliberate [`Breakage`]s.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::faults::Fault;
use crate::{Breakage, FAILING_CUSTOMER, MockConfig, NO_AZURE_CUSTOMER};

#[derive(Debug, Clone)]
pub(crate) struct UpgradeRecord {
    pub(crate) id: Uuid,
    pub(crate) customer: Uuid,
    pub(crate) family: String,
    pub(crate) polls: u32,
    pub(crate) fails: bool,
    pub(crate) created: chrono::DateTime<chrono::Utc>,
}

impl UpgradeRecord {
    pub(crate) fn finished(&self, polls_to_complete: u32) -> bool {
        self.polls >= polls_to_complete
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

/// The mock's state: upgrades, remembered answers, scripted faults and counters.
#[derive(Default)]
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
    pub(crate) upgrades_created: u64,
}

impl Ledger {
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
            }
        }
        true
    }
}

/// Only `Azure` (any casing) is offered. The spec keeps product families an open set, so another
/// family is a valid request that gets a business answer: not eligible, and create refused.
fn offered(family: &str) -> bool {
    family.eq_ignore_ascii_case("azure")
}

/// The eligibility answer: an upgrade under way or done makes the customer not eligible and is
/// named in `upgradeId`.
pub(crate) fn eligibility(
    config: &MockConfig,
    ledger: &Ledger,
    customer: Uuid,
    family: &str,
) -> Answer {
    let mut body = json!({ "customerId": customer, "productFamily": family, "isEligible": true });
    let wrong_type = config.breakage == Some(Breakage::WrongType);
    if !offered(family) {
        body["isEligible"] = json!(false);
        body["reason"] = json!(format!("No upgrade to product family {family} is offered."));
    } else if customer.to_string() == NO_AZURE_CUSTOMER {
        body["isEligible"] = json!(false);
        body["reason"] = json!("The customer has no Microsoft Azure (MS-AZR-0145P) subscription.");
    } else if let Some(upgrade) = ledger
        .latest
        .get(&customer)
        .and_then(|id| ledger.upgrades.get(id))
    {
        body["upgradeId"] = json!(upgrade.id);
        let done = upgrade.finished(config.polls_to_complete);
        match (done, upgrade.fails) {
            (false, _) => {
                body["isEligible"] = json!(false);
                body["reason"] = json!(format!("Upgrade {} is in progress.", upgrade.id));
            }
            (true, false) => {
                body["isEligible"] = json!(false);
                body["reason"] = json!("The customer has already been upgraded to an Azure plan.");
            }
            (true, true) => {
                body["reason"] = json!(format!("Upgrade {} failed; it can be retried.", upgrade.id))
            }
        }
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
/// no Azure subscriptions, one under way (409, `900109`), already done, or the mock full (503).
pub(crate) fn create(
    config: &MockConfig,
    ledger: &mut Ledger,
    customer: Uuid,
    family: &str,
    location_base: &str,
) -> Answer {
    if !offered(family) {
        return Answer::error(
            403,
            900120,
            format!("No upgrade to product family {family} is offered."),
        );
    }
    if customer.to_string() == NO_AZURE_CUSTOMER {
        return Answer::error(
            403,
            900108,
            "The customer has no Azure subscriptions to upgrade.",
        );
    }
    let duplicates_allowed = config.breakage == Some(Breakage::DuplicateOnReplay);
    if let (Some(upgrade), false) = (
        ledger
            .latest
            .get(&customer)
            .and_then(|id| ledger.upgrades.get(id)),
        duplicates_allowed,
    ) {
        match (upgrade.finished(config.polls_to_complete), upgrade.fails) {
            (false, _) => {
                let mut answer = Answer::error(
                    409,
                    900109,
                    format!("The original upgrade {} is in progress.", upgrade.id),
                );
                if let Some(body) = answer.body.as_mut() {
                    body["data"] = json!([upgrade.id]);
                }
                return answer;
            }
            (true, false) => {
                return Answer::error(
                    400,
                    900110,
                    format!("The customer has already completed upgrade {}.", upgrade.id),
                );
            }
            (true, true) => {}
        }
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
    let id = Uuid::new_v4();
    let record = UpgradeRecord {
        id,
        customer,
        family: family.to_owned(),
        polls: 0,
        fails: customer.to_string() == FAILING_CUSTOMER,
        created: chrono::Utc::now(),
    };
    ledger.upgrade_bytes += record.retained_bytes();
    ledger.upgrades.insert(id, record);
    ledger.latest.insert(customer, id);
    ledger.upgrades_created += 1;
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

/// The status of an upgrade, one poll further on: `InProgress` until it finishes.
pub(crate) fn status(
    config: &MockConfig,
    ledger: &mut Ledger,
    customer: Uuid,
    upgrade_id: Uuid,
) -> Answer {
    let polls_to_complete = config.polls_to_complete;
    let Some(upgrade) = ledger.upgrades.get_mut(&upgrade_id) else {
        return Answer::error(
            404,
            900106,
            format!("No upgrade request {upgrade_id} was found."),
        );
    };
    if upgrade.customer != customer {
        return Answer::error(
            400,
            900111,
            format!("The upgrade id {upgrade_id} does not belong to customer {customer}."),
        );
    }
    let was_finished = upgrade.finished(polls_to_complete);
    upgrade.polls = upgrade.polls.saturating_add(1);
    let just_finished = !was_finished && upgrade.finished(polls_to_complete);
    let (status, finished) = match (upgrade.finished(polls_to_complete), upgrade.fails) {
        (false, _) => ("InProgress", false),
        (true, false) => ("Completed", true),
        (true, true) => ("Failed", true),
    };
    let subscription = Uuid::from_u128(upgrade.customer.as_u128() ^ 0x5eed);
    let mut line = json!({
        "sourceProduct": { "id": subscription, "name": "AzureSubscription" },
        "targetProduct": { "id": "d231908e-31c1-de0e-027b-bc5ce11f09d9", "name": "Microsoft Azure plan" },
        "status": status,
    });
    let mut body = json!({
        "id": upgrade.id,
        "status": status,
        "productFamily": upgrade.family,
        "lineItems": [],
    });
    if finished && !upgrade.fails {
        line["upgradedDate"] = json!(partner_center_timestamp(upgrade.created));
    }
    if upgrade.fails && finished {
        let details =
            json!({ "code": "900120", "description": "The Azure upgrade could not be processed." });
        line["errorDetails"] = details.clone();
        body["errorDetails"] = details;
    }
    if config.breakage == Some(Breakage::MalformedDate) {
        line["upgradedDate"] = json!("yesterday");
    }
    body["lineItems"] = json!([line]);
    if config.breakage == Some(Breakage::MissingField)
        && let Some(body) = body.as_object_mut()
    {
        body.remove("status");
    }
    if just_finished {
        ledger.finished_order.push_back(upgrade_id);
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
    fn the_oldest_finished_upgrade_makes_room_and_in_progress_ones_never_do() {
        let mut ledger = Ledger::default();
        let record = |n: u128, polls| UpgradeRecord {
            id: Uuid::from_u128(n),
            customer: Uuid::from_u128(1000 + n),
            family: "Azure".into(),
            polls,
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
