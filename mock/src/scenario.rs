//! Scenarios: outcomes set per customer ([`crate::MockConfig::scenario`], `cargo xtask mock
//! --scenario FILE`), so a run against the mock can meet the answers a real customer book gives
//! — customers who are not eligible (with a reason, or refused with a Partner Center error),
//! upgrades already under way when the mock starts, upgrades that fail at a given poll, and slow
//! ones.
//!
//! A scenario is checked twice. Reading it checks its form: a JSON object `{"customers": {GUID:
//! entry}}`, each entry with a known `outcome` and only that outcome's fields, whole numbers
//! within their bounds, within [`MAX_SCENARIO_BYTES`] and [`MAX_SCENARIO_CUSTOMERS`]. Starting
//! the mock checks its answers: every answer an entry makes the mock send is built once, by the
//! same functions the ledger answers with, and validated against the spec's schema for its
//! operation and status, so a scenario cannot make the mock break the contract by accident (a
//! `reason` that is not a string, a `status` the operation does not declare, a `code` the spec's
//! `ServiceErrorCode` refuses). The values the answers carry (`reason`, `code`, `description`)
//! are taken as any JSON and left to the spec to judge, so the spec, not this module, says what
//! is allowed; entries whose answers only differ in their GUIDs are validated once. Either check
//! refuses the scenario with the customer and the field named.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use partner_center_contract::jsonschema::Validator;
use partner_center_contract::operations::Operations;
use partner_center_contract::{resolve, validator};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::MockConfig;
use crate::ledger::{self, Answer, UpgradeRecord};
use crate::routing::Handler;

/// The largest scenario file read, in bytes.
pub const MAX_SCENARIO_BYTES: usize = 64 << 20;
/// The most customers a scenario may list.
pub const MAX_SCENARIO_CUSTOMERS: usize = 1_000_000;
/// The most polls a `slow` or `failsAtPoll` upgrade may take.
pub const MAX_SCENARIO_POLLS: u32 = 10_000;
/// The longest a `slow` customer's answers may wait.
pub const MAX_SCENARIO_DELAY: Duration = Duration::from_millis(60_000);

/// The reason a `notEligible` entry without one is given.
const DEFAULT_REASON: &str = "The customer is not eligible for an upgrade to an Azure plan.";
/// The `errorDetails` of a `failsAtPoll` entry without `code` or `description`.
const DEFAULT_FAILURE_CODE: i64 = 900120;
const DEFAULT_FAILURE: &str = "The Azure upgrade could not be processed.";
/// The code create refuses a `notEligible` customer with when the entry has none: Partner
/// Center's "the upgrade cannot be processed", the one 403 code that names no particular cause.
const NOT_ELIGIBLE_CREATE_CODE: i64 = 900120;

/// What the mock does for one customer of a scenario.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// `notEligible`: eligibility answers `isEligible: false` with `reason`, and create is
    /// refused (403, `900120`, the reason as description). With `code`, both answer `status`
    /// (403 unless given) with the Partner Center error body `{code, description: reason}`.
    NotEligible {
        /// Why (any JSON the spec takes as a reason); a default text when `None`.
        reason: Option<Value>,
        /// Partner Center's error code (any JSON the spec takes as a `ServiceErrorCode`).
        code: Option<Value>,
        /// The HTTP status of the refusal (with `code` only); 403 when `None`.
        status: Option<u16>,
    },
    /// `underWay`: an upgrade already exists, in progress, when the mock starts (counted as
    /// preexisting, not as created); it completes after [`MockConfig::polls_to_complete`] polls.
    UnderWay,
    /// `failsAtPoll`: the upgrade is in progress until its `poll`-th poll, which answers `Failed`
    /// with `errorDetails` (top level and line item).
    FailsAtPoll {
        /// The poll that fails (1 is the first).
        poll: u32,
        /// `errorDetails.code`; `900120` when `None`.
        code: Option<Value>,
        /// `errorDetails.description`; a default text when `None`.
        description: Option<Value>,
    },
    /// `slow`: the upgrade takes `polls` polls to finish, and each of the customer's answers
    /// waits `delay` first (as the slow fault does: the request is processed after the wait).
    Slow {
        /// Polls to finish; [`MockConfig::polls_to_complete`] when `None`.
        polls: Option<u32>,
        /// The wait before each answer (at most [`MAX_SCENARIO_DELAY`]).
        delay: Duration,
    },
}

impl Outcome {
    /// The outcome's name in a scenario file.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::NotEligible { .. } => "notEligible",
            Outcome::UnderWay => "underWay",
            Outcome::FailsAtPoll { .. } => "failsAtPoll",
            Outcome::Slow { .. } => "slow",
        }
    }

    /// The first field out of bounds, if any: what reading a file checks, checked again at
    /// start for a scenario built in code.
    fn bounds_problem(&self) -> Option<(&'static str, String)> {
        let polls = |name, polls: u32| {
            (!(1..=MAX_SCENARIO_POLLS).contains(&polls)).then(|| {
                (
                    name,
                    format!("{polls} is not from 1 to {MAX_SCENARIO_POLLS}"),
                )
            })
        };
        match self {
            Outcome::NotEligible {
                code: None,
                status: Some(_),
                ..
            } => Some(("status", "a status needs a code".to_owned())),
            Outcome::NotEligible {
                status: Some(status),
                ..
            } if !(100..=599).contains(status) => {
                Some(("status", format!("{status} is not an HTTP status")))
            }
            Outcome::FailsAtPoll { poll, .. } => polls("poll", *poll),
            Outcome::Slow { polls: Some(n), .. } if polls("polls", *n).is_some() => {
                polls("polls", *n)
            }
            Outcome::Slow { delay, .. } if *delay > MAX_SCENARIO_DELAY => Some((
                "delayMs",
                format!(
                    "{} is more than {}",
                    delay.as_millis(),
                    MAX_SCENARIO_DELAY.as_millis()
                ),
            )),
            _ => None,
        }
    }
}

/// Outcomes per customer; customers not listed behave as without a scenario.
///
/// As a file ([`Scenario::read`], `cargo xtask mock --scenario FILE`), one entry per customer
/// id, each with its outcome and only that outcome's fields (all but `outcome` and
/// `failsAtPoll`'s `poll` may be left out):
///
/// ```json
/// {"customers": {
///   "4c721420-72ad-4708-a0a7-371a2f7b0969": {"outcome": "notEligible", "reason": "No Azure subscriptions"},
///   "00000000-0000-4000-8000-000000000001": {"outcome": "notEligible", "reason": "text", "code": 900108, "status": 403},
///   "00000000-0000-4000-8000-000000000002": {"outcome": "underWay"},
///   "00000000-0000-4000-8000-000000000003": {"outcome": "failsAtPoll", "poll": 3, "code": 900120, "description": "text"},
///   "00000000-0000-4000-8000-000000000004": {"outcome": "slow", "polls": 20, "delayMs": 200}
/// }}
/// ```
///
/// Cloning is cheap (the outcomes are shared), so a [`MockConfig`] holding a million customers
/// can be cloned freely.
#[derive(Clone, Default, PartialEq)]
pub struct Scenario {
    customers: Arc<BTreeMap<Uuid, Outcome>>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A million entries would make any Debug of a MockConfig useless.
        f.debug_struct("Scenario")
            .field("customers", &self.customers.len())
            .finish()
    }
}

/// Why a scenario was refused: the customer and the field concerned, when there are some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    customer: Option<String>,
    field: Option<String>,
    message: String,
}

impl ScenarioError {
    fn new(message: impl Into<String>) -> Self {
        ScenarioError {
            customer: None,
            field: None,
            message: message.into(),
        }
    }

    fn of(customer: impl ToString, field: Option<&str>, message: impl Into<String>) -> Self {
        ScenarioError {
            customer: Some(customer.to_string()),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The customer id concerned, as the scenario writes it.
    pub fn customer(&self) -> Option<&str> {
        self.customer.as_deref()
    }

    /// The field concerned (`reason`, `code`, `status`, ...).
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scenario")?;
        if let Some(customer) = &self.customer {
            write!(f, ": customer {customer}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// A scenario listing no customer.
    pub fn new() -> Self {
        Scenario::default()
    }

    /// This scenario with `customer`'s outcome set to `outcome`.
    pub fn with(mut self, customer: Uuid, outcome: Outcome) -> Self {
        self.insert(customer, outcome);
        self
    }

    /// Sets `customer`'s outcome; the one it replaces, if any.
    pub fn insert(&mut self, customer: Uuid, outcome: Outcome) -> Option<Outcome> {
        Arc::make_mut(&mut self.customers).insert(customer, outcome)
    }

    /// `customer`'s outcome, if it is listed.
    pub fn get(&self, customer: Uuid) -> Option<&Outcome> {
        self.customers.get(&customer)
    }

    /// How many customers it lists.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether it lists no customer.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// The customers and their outcomes, by customer id.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, &Outcome)> {
        self.customers.iter().map(|(id, outcome)| (*id, outcome))
    }

    /// Reads a scenario file (at most [`MAX_SCENARIO_BYTES`]).
    pub fn read(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = std::fs::File::open(path)
            .map_err(|e| ScenarioError::new(format!("cannot read {}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        file.take(MAX_SCENARIO_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ScenarioError::new(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::new(format!(
                "{} is larger than {MAX_SCENARIO_BYTES} bytes",
                path.display()
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| ScenarioError::new(format!("{} is not UTF-8 text", path.display())))?;
        Scenario::from_json(&text)
    }

    /// Reads a scenario from JSON text (at most [`MAX_SCENARIO_BYTES`]):
    /// `{"customers": {"<guid>": {"outcome": "notEligible", "reason": "..."}, ...}}`.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        if text.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::new(format!(
                "the scenario is larger than {MAX_SCENARIO_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ScenarioError::new(format!("the scenario is not JSON: {e}")))?;
        Scenario::from_value(&value)
    }

    /// Reads a scenario from a JSON value (see [`Scenario::from_json`]).
    pub fn from_value(value: &Value) -> Result<Scenario, ScenarioError> {
        let top = value
            .as_object()
            .ok_or_else(|| ScenarioError::new("the scenario is not a JSON object"))?;
        if let Some(unknown) = top.keys().find(|k| *k != "customers") {
            return Err(ScenarioError {
                field: Some(unknown.clone()),
                ..ScenarioError::new("unknown field; a scenario has only \"customers\"")
            });
        }
        let customers = top
            .get("customers")
            .and_then(Value::as_object)
            .ok_or_else(|| ScenarioError {
                field: Some("customers".into()),
                ..ScenarioError::new("missing, or not an object of customer ids to outcomes")
            })?;
        if customers.len() > MAX_SCENARIO_CUSTOMERS {
            return Err(ScenarioError::new(format!(
                "{} customers is more than {MAX_SCENARIO_CUSTOMERS}",
                customers.len()
            )));
        }
        let mut parsed = BTreeMap::new();
        for (key, entry) in customers {
            let id = Uuid::try_parse(key)
                .map_err(|_| ScenarioError::of(format!("{key:?}"), None, "not a GUID"))?;
            let outcome = parse_outcome(entry)
                .map_err(|(field, message)| ScenarioError::of(key, field.as_deref(), message))?;
            if parsed.insert(id, outcome).is_some() {
                return Err(ScenarioError::of(
                    key,
                    None,
                    "listed twice (the same GUID written another way)",
                ));
            }
        }
        Ok(Scenario {
            customers: Arc::new(parsed),
        })
    }
}

type FieldError = (Option<String>, String);

/// One entry: `{"outcome": NAME, ...that outcome's fields}`.
fn parse_outcome(entry: &Value) -> Result<Outcome, FieldError> {
    let entry = entry.as_object().ok_or((
        None,
        "not an object such as {\"outcome\": \"underWay\"}".into(),
    ))?;
    let name = entry
        .get("outcome")
        .ok_or((Some("outcome".into()), "missing".into()))?;
    let name = name.as_str().unwrap_or_default();
    let fields: &[&str] = match name {
        "notEligible" => &["reason", "code", "status"],
        "underWay" => &[],
        "failsAtPoll" => &["poll", "code", "description"],
        "slow" => &["polls", "delayMs"],
        _ => {
            return Err((
                Some("outcome".into()),
                format!(
                    "unknown outcome {}; expected notEligible, underWay, failsAtPoll or slow",
                    entry["outcome"]
                ),
            ));
        }
    };
    if let Some(unknown) = entry
        .keys()
        .find(|k| *k != "outcome" && !fields.contains(&k.as_str()))
    {
        let expected = if fields.is_empty() {
            "none".to_owned()
        } else {
            fields.join(", ")
        };
        return Err((
            Some(unknown.clone()),
            format!("unknown field for outcome {name}; its fields: {expected}"),
        ));
    }
    let any = |field: &str| entry.get(field).cloned();
    let outcome = match name {
        "notEligible" => Outcome::NotEligible {
            reason: any("reason"),
            code: any("code"),
            status: whole(entry, "status", 100, 599)?.map(|s| s as u16),
        },
        "underWay" => Outcome::UnderWay,
        "failsAtPoll" => Outcome::FailsAtPoll {
            poll: whole(entry, "poll", 1, MAX_SCENARIO_POLLS.into())?
                .ok_or((Some("poll".into()), "missing".into()))? as u32,
            code: any("code"),
            description: any("description"),
        },
        _ => {
            let polls = whole(entry, "polls", 1, MAX_SCENARIO_POLLS.into())?;
            let delay = whole(entry, "delayMs", 0, MAX_SCENARIO_DELAY.as_millis() as u64)?;
            if polls.is_none() && delay.is_none() {
                return Err((
                    Some("outcome".into()),
                    "slow needs polls, delayMs or both".into(),
                ));
            }
            Outcome::Slow {
                polls: polls.map(|n| n as u32),
                delay: Duration::from_millis(delay.unwrap_or(0)),
            }
        }
    };
    if let Some((field, message)) = outcome.bounds_problem() {
        return Err((Some(field.into()), message));
    }
    Ok(outcome)
}

/// The whole number `entry[field]`, if present, from `min` to `max`.
fn whole(
    entry: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, FieldError> {
    let Some(value) = entry.get(field) else {
        return Ok(None);
    };
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err((
            Some(field.into()),
            format!("{value} is not a whole number from {min} to {max}"),
        )),
    }
}

/// What the mock does for a scenario customer, with its answers built and checked at start.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    NotEligible {
        /// The eligibility answer's reason.
        reason: Value,
        /// With a code: the answer of both eligibility and create.
        refusal: Option<Answer>,
        /// Create's answer.
        create: Answer,
    },
    UnderWay,
    FailsAtPoll {
        poll: u32,
        /// The failed upgrade's `errorDetails`.
        details: Value,
    },
    Slow {
        polls: u32,
        delay: Duration,
    },
}

/// Every scenario customer's plan.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    by_customer: HashMap<Uuid, Plan>,
}

impl Plans {
    pub(crate) fn get(&self, customer: Uuid) -> Option<&Plan> {
        self.by_customer.get(&customer)
    }

    /// How long `customer`'s answers wait.
    pub(crate) fn delay(&self, customer: Uuid) -> Option<Duration> {
        match self.by_customer.get(&customer)? {
            Plan::Slow { delay, .. } if !delay.is_zero() => Some(*delay),
            _ => None,
        }
    }

    /// The customers whose upgrade exists when the mock starts, by customer id.
    pub(crate) fn under_way(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .by_customer
            .iter()
            .filter(|(_, plan)| matches!(plan, Plan::UnderWay))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The spec's answer schemas, compiled as needed: (operationId, status) → the body's
/// validator, `None` for an answer the spec gives no body.
struct Spec<'s> {
    spec: &'s Value,
    operations: Operations,
    validators: HashMap<(&'static str, u16), Option<Validator>>,
}

/// Why the spec refuses an answer.
enum Refused {
    /// The operation does not declare the status.
    Status(String),
    /// The body breaks the schema, at a JSON pointer.
    Body { at: String, message: String },
}

impl<'s> Spec<'s> {
    fn new(spec: &'s Value) -> Result<Self, ScenarioError> {
        Ok(Spec {
            spec,
            operations: Operations::from_spec(spec).map_err(ScenarioError::new)?,
            validators: HashMap::new(),
        })
    }

    fn check(&mut self, handler: Handler, answer: &Answer) -> Result<(), Refused> {
        let id = handler.operation_id();
        let status = answer.status;
        let Some(operation) = self.operations.get(id) else {
            return Err(Refused::Status(format!("the spec has no operation {id}")));
        };
        let key = [
            status.to_string(),
            format!("{}XX", status / 100),
            "default".into(),
        ]
        .into_iter()
        .find(|k| operation.declared_statuses.contains(k))
        .ok_or_else(|| Refused::Status(format!("{id} does not declare status {status}")))?;
        let spec = self.spec;
        let validator = self.validators.entry((id, status)).or_insert_with(|| {
            let response = resolve(spec, &operation.in_spec(spec)["responses"][key.as_str()]);
            let schema = &response["content"]["application/json"]["schema"];
            schema.is_object().then(|| validator(spec, schema))
        });
        match (validator, &answer.body) {
            (Some(validator), Some(body)) => match validator.iter_errors(body).next() {
                None => Ok(()),
                Some(error) => {
                    let (at, cause) = deepest(&error);
                    Err(Refused::Body {
                        at,
                        message: format!("{id}'s {status} answer would break the spec: {cause}"),
                    })
                }
            },
            (Some(_), None) => Err(Refused::Body {
                at: String::new(),
                message: format!("{id}'s {status} answer needs a body"),
            }),
            (None, Some(_)) => Err(Refused::Body {
                at: String::new(),
                message: format!("{id}'s {status} answer has no body in the spec"),
            }),
            (None, None) => Ok(()),
        }
    }

    /// Checks `answer`; a refusal names `customer` and the scenario field the pointer it
    /// concerns comes from (`fields`: body pointer prefix → field), else `fallback`.
    fn require(
        &mut self,
        customer: Uuid,
        handler: Handler,
        answer: &Answer,
        fields: &[(&str, &str)],
        fallback: &str,
    ) -> Result<(), ScenarioError> {
        match self.check(handler, answer) {
            Ok(()) => Ok(()),
            Err(Refused::Status(message)) => {
                Err(ScenarioError::of(customer, Some("status"), message))
            }
            Err(Refused::Body { at, message }) => {
                let field = fields
                    .iter()
                    .find(|(pointer, _)| at == *pointer || at.starts_with(&format!("{pointer}/")))
                    .map_or(fallback, |(_, field)| field);
                let at = if at.is_empty() { "/".into() } else { at };
                Err(ScenarioError::of(
                    customer,
                    Some(field),
                    format!("{message} (at {at})"),
                ))
            }
        }
    }
}

/// The most specific cause of a schema error: inside `anyOf` and `oneOf` (which a `nullable`
/// property and `ServiceErrorCode` are), the error deepest in the answer, so the message names
/// the value at fault (`/errorDetails/code`), not the object around it.
fn deepest(error: &partner_center_contract::jsonschema::ValidationError<'_>) -> (String, String) {
    use partner_center_contract::jsonschema::error::ValidationErrorKind;
    let here = (error.instance_path().to_string(), error.to_string());
    let context = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context
        }
        _ => return here,
    };
    context
        .iter()
        .flatten()
        .map(deepest)
        .fold(here, |best, next| {
            if next.0.len() > best.0.len() {
                next
            } else {
                best
            }
        })
}

/// Builds every scenario customer's plan and checks the answers it makes the mock send against
/// `spec`; refuses the first entry whose answers the spec would reject, naming it.
pub(crate) fn compile(
    scenario: &Scenario,
    spec: &Value,
    config: &MockConfig,
) -> Result<Plans, ScenarioError> {
    if scenario.len() > MAX_SCENARIO_CUSTOMERS {
        return Err(ScenarioError::new(format!(
            "{} customers is more than {MAX_SCENARIO_CUSTOMERS}",
            scenario.len()
        )));
    }
    let mut checker = Spec::new(spec)?;
    // Answers that differ only in their GUIDs are checked once: the key is the outcome and the
    // values the entry puts in its answers.
    let mut checked: HashSet<String> = HashSet::new();
    let mut plans = Plans::default();
    let mut under_way = 0usize;
    let polls_to_complete = config.polls_to_complete.max(1);
    for (customer, outcome) in scenario.iter() {
        if let Some((field, message)) = outcome.bounds_problem() {
            return Err(ScenarioError::of(customer, Some(field), message));
        }
        let plan = match outcome {
            Outcome::NotEligible {
                reason,
                code,
                status,
            } => {
                let reason = reason.clone().unwrap_or_else(|| json!(DEFAULT_REASON));
                let (refusal, create) = match code {
                    Some(code) => {
                        let answer = ledger::scenario_error(status.unwrap_or(403), code, &reason);
                        (Some(answer.clone()), answer)
                    }
                    None => (
                        None,
                        ledger::scenario_error(403, &json!(NOT_ELIGIBLE_CREATE_CODE), &reason),
                    ),
                };
                let key = json!(["notEligible", reason, code, status]).to_string();
                if checked.insert(key) {
                    let error_fields = [("/code", "code"), ("/description", "reason")];
                    match &refusal {
                        Some(refusal) => checker.require(
                            customer,
                            Handler::Eligibility,
                            refusal,
                            &error_fields,
                            "status",
                        )?,
                        None => checker.require(
                            customer,
                            Handler::Eligibility,
                            &Answer::json(
                                200,
                                ledger::not_eligible_body(customer, "Azure", &reason),
                            ),
                            &[],
                            "reason",
                        )?,
                    }
                    checker.require(customer, Handler::Create, &create, &error_fields, "status")?;
                }
                Plan::NotEligible {
                    reason,
                    refusal,
                    create,
                }
            }
            Outcome::UnderWay => {
                under_way += 1;
                if under_way > config.max_upgrades.max(1) {
                    return Err(ScenarioError::of(
                        customer,
                        Some("outcome"),
                        format!(
                            "more customers are underWay than the mock holds upgrades (max_upgrades {})",
                            config.max_upgrades
                        ),
                    ));
                }
                if checked.insert("underWay".into()) {
                    check_lifecycle(&mut checker, customer, polls_to_complete, None)?;
                }
                Plan::UnderWay
            }
            Outcome::FailsAtPoll {
                poll,
                code,
                description,
            } => {
                let details = json!({
                    "code": code.clone().unwrap_or_else(|| json!(DEFAULT_FAILURE_CODE)),
                    "description": description.clone().unwrap_or_else(|| json!(DEFAULT_FAILURE)),
                });
                if checked.insert(json!(["failsAtPoll", details]).to_string()) {
                    check_lifecycle(&mut checker, customer, *poll, Some(&details))?;
                }
                Plan::FailsAtPoll {
                    poll: *poll,
                    details,
                }
            }
            Outcome::Slow { polls, delay } => {
                let polls = polls.unwrap_or(polls_to_complete);
                if checked.insert("slow".into()) {
                    check_lifecycle(&mut checker, customer, polls, None)?;
                }
                Plan::Slow {
                    polls,
                    delay: *delay,
                }
            }
        };
        plans.by_customer.insert(customer, plan);
    }
    Ok(plans)
}

/// Checks the answers an upgrade of `customer` gets over its life: eligibility and create while
/// it is in progress and once it is over, and its status in progress and at the end (`Failed`
/// with `failure` when there is one).
fn check_lifecycle(
    checker: &mut Spec<'_>,
    customer: Uuid,
    finish_after: u32,
    failure: Option<&Value>,
) -> Result<(), ScenarioError> {
    let mut record = UpgradeRecord {
        id: Uuid::new_v4(),
        customer,
        family: "Azure".into(),
        polls: 0,
        finish_after,
        fails: failure.is_some(),
        created: chrono::Utc::now(),
    };
    let details_fields = [
        ("/errorDetails/code", "code"),
        ("/errorDetails/description", "description"),
        ("/lineItems/0/errorDetails/code", "code"),
        ("/lineItems/0/errorDetails/description", "description"),
    ];
    let failure = failure.cloned().unwrap_or_else(ledger::default_failure);
    for polls in [finish_after.saturating_sub(1), finish_after] {
        record.polls = polls;
        let state = record.state();
        let status = Answer::json(200, ledger::status_body(&record, &failure));
        checker.require(
            customer,
            Handler::Status,
            &status,
            &details_fields,
            "outcome",
        )?;
        let eligibility = ledger::eligibility_with_upgrade(customer, "Azure", record.id, state);
        checker.require(
            customer,
            Handler::Eligibility,
            &Answer::json(200, eligibility),
            &[],
            "outcome",
        )?;
        if let Some(conflict) = ledger::create_conflict(record.id, state) {
            checker.require(customer, Handler::Create, &conflict, &[], "outcome")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOMER: &str = "4c721420-72ad-4708-a0a7-371a2f7b0969";

    fn one(entry: Value) -> Result<Scenario, ScenarioError> {
        Scenario::from_value(&json!({ "customers": { CUSTOMER: entry } }))
    }

    fn compiled(entry: Value) -> Result<Plans, ScenarioError> {
        let scenario = one(entry)?;
        compile(
            &scenario,
            &partner_center_contract::embedded_spec(),
            &MockConfig::default(),
        )
    }

    #[test]
    fn every_outcome_reads_from_its_file_form() {
        let id = Uuid::try_parse(CUSTOMER).unwrap();
        let read = |entry| one(entry).unwrap().get(id).cloned().unwrap();
        assert_eq!(
            read(
                json!({"outcome": "notEligible", "reason": "text", "code": 900108, "status": 403})
            ),
            Outcome::NotEligible {
                reason: Some(json!("text")),
                code: Some(json!(900108)),
                status: Some(403)
            }
        );
        assert_eq!(read(json!({"outcome": "underWay"})), Outcome::UnderWay);
        assert_eq!(
            read(json!({"outcome": "failsAtPoll", "poll": 3, "code": 900120, "description": "d"})),
            Outcome::FailsAtPoll {
                poll: 3,
                code: Some(json!(900120)),
                description: Some(json!("d"))
            }
        );
        assert_eq!(
            read(json!({"outcome": "slow", "polls": 20, "delayMs": 200})),
            Outcome::Slow {
                polls: Some(20),
                delay: Duration::from_millis(200)
            }
        );
    }

    #[test]
    fn a_malformed_entry_is_refused_naming_the_customer_and_the_field() {
        let table = [
            (json!({"outcome": "teapot"}), "outcome", "unknown outcome"),
            (json!({"reason": "x"}), "outcome", "missing"),
            (
                json!({"outcome": "underWay", "polls": 3}),
                "polls",
                "unknown field",
            ),
            (
                json!({"outcome": "notEligible", "reasons": "x"}),
                "reasons",
                "unknown field",
            ),
            (
                json!({"outcome": "notEligible", "code": 1, "status": "403"}),
                "status",
                "whole number",
            ),
            (
                json!({"outcome": "notEligible", "status": 403}),
                "status",
                "needs a code",
            ),
            (json!({"outcome": "failsAtPoll"}), "poll", "missing"),
            (
                json!({"outcome": "failsAtPoll", "poll": 0}),
                "poll",
                "from 1 to",
            ),
            (
                json!({"outcome": "slow", "polls": 10_001}),
                "polls",
                "from 1 to 10000",
            ),
            (
                json!({"outcome": "slow", "delayMs": 60_001}),
                "delayMs",
                "from 0 to 60000",
            ),
            (
                json!({"outcome": "slow", "delayMs": 1.5}),
                "delayMs",
                "whole number",
            ),
            (json!({"outcome": "slow"}), "outcome", "polls, delayMs"),
        ];
        for (entry, field, says) in table {
            let error = one(entry.clone()).unwrap_err();
            assert_eq!(error.customer(), Some(CUSTOMER), "{entry}");
            assert_eq!(error.field(), Some(field), "{entry}: {error}");
            assert!(error.to_string().contains(says), "{entry}: {error}");
            assert!(error.to_string().contains(CUSTOMER), "{error}");
        }
    }

    #[test]
    fn the_file_itself_must_be_a_bounded_object_of_guids() {
        let error =
            Scenario::from_json(r#"{"customers": {"nope": {"outcome": "underWay"}}}"#).unwrap_err();
        assert_eq!(error.customer(), Some("\"nope\""));
        assert!(error.to_string().contains("not a GUID"), "{error}");
        let error = Scenario::from_json(r#"{"customers": {}, "seed": 1}"#).unwrap_err();
        assert_eq!(error.field(), Some("seed"));
        let twice = format!(
            r#"{{"customers": {{"{CUSTOMER}": {{"outcome": "underWay"}}, "{}": {{"outcome": "underWay"}}}}}}"#,
            CUSTOMER.to_uppercase()
        );
        assert!(
            Scenario::from_json(&twice)
                .unwrap_err()
                .to_string()
                .contains("listed twice")
        );
        assert!(
            Scenario::from_json("[1]")
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
        let huge = " ".repeat(MAX_SCENARIO_BYTES + 1);
        assert!(
            Scenario::from_json(&huge)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }

    #[test]
    fn answers_the_spec_would_reject_are_refused_at_start_naming_the_field() {
        let table = [
            // ServiceError.description is a string.
            (
                json!({"outcome": "notEligible", "reason": 42, "code": 900108}),
                "reason",
            ),
            // ProductUpgradesEligibility.reason is a string (or null).
            (json!({"outcome": "notEligible", "reason": ["x"]}), "reason"),
            // ServiceErrorCode is an integer or a string.
            (
                json!({"outcome": "notEligible", "reason": "r", "code": 1.5}),
                "code",
            ),
            (
                json!({"outcome": "notEligible", "reason": "r", "code": true}),
                "code",
            ),
            // Eligibility does not declare 409 (create does); nor 418.
            (
                json!({"outcome": "notEligible", "reason": "r", "code": 1, "status": 409}),
                "status",
            ),
            (
                json!({"outcome": "notEligible", "reason": "r", "code": 1, "status": 418}),
                "status",
            ),
            // A 200 is declared, but an error body is not an eligibility body.
            (
                json!({"outcome": "notEligible", "reason": "r", "code": 1, "status": 200}),
                "status",
            ),
            // A 429's body is a ThrottlingError, not a ServiceError.
            (
                json!({"outcome": "notEligible", "reason": "r", "code": 1, "status": 429}),
                "status",
            ),
            (
                json!({"outcome": "failsAtPoll", "poll": 2, "code": {"n": 1}}),
                "code",
            ),
            (
                json!({"outcome": "failsAtPoll", "poll": 2, "description": 7}),
                "description",
            ),
        ];
        for (entry, field) in table {
            let error = compiled(entry.clone()).unwrap_err();
            assert_eq!(error.customer(), Some(CUSTOMER), "{entry}");
            assert_eq!(error.field(), Some(field), "{entry}: {error}");
        }
    }

    #[test]
    fn answers_the_spec_takes_are_accepted() {
        for entry in [
            json!({"outcome": "notEligible", "reason": "No Azure subscriptions"}),
            json!({"outcome": "notEligible"}),
            json!({"outcome": "notEligible", "reason": "text", "code": 900108, "status": 403}),
            // The spec's ServiceErrorCode takes a string too.
            json!({"outcome": "notEligible", "reason": "text", "code": "900108", "status": 400}),
            json!({"outcome": "notEligible", "reason": "text", "code": 500, "status": 503}),
            json!({"outcome": "underWay"}),
            json!({"outcome": "failsAtPoll", "poll": 1}),
            json!({"outcome": "failsAtPoll", "poll": 3, "code": 900120, "description": "text"}),
            json!({"outcome": "slow", "polls": 20, "delayMs": 200}),
        ] {
            assert!(compiled(entry.clone()).is_ok(), "{entry}");
        }
    }

    #[test]
    fn more_under_way_customers_than_upgrades_held_are_refused() {
        let scenario = (0..3).fold(Scenario::new(), |s, n| {
            s.with(Uuid::from_u128(n + 1), Outcome::UnderWay)
        });
        let config = MockConfig {
            max_upgrades: 2,
            ..MockConfig::default()
        };
        let error = compile(
            &scenario,
            &partner_center_contract::embedded_spec(),
            &config,
        )
        .unwrap_err();
        assert_eq!(
            error.customer(),
            Some(Uuid::from_u128(3).to_string().as_str())
        );
        assert!(error.to_string().contains("max_upgrades 2"), "{error}");
    }

    #[test]
    fn a_scenario_built_in_code_is_held_to_the_file_bounds() {
        let scenario = Scenario::new().with(
            Uuid::from_u128(1),
            Outcome::Slow {
                polls: None,
                delay: Duration::from_secs(61),
            },
        );
        let error = compile(
            &scenario,
            &partner_center_contract::embedded_spec(),
            &MockConfig::default(),
        )
        .unwrap_err();
        assert_eq!(error.field(), Some("delayMs"));
    }
}
