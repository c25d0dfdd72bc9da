//! The seeded cases: a positive request for each operation the spec declares, and negative ones
//! drawn from [`NEGATIVES`], the one table of what a request may break and what accepting it
//! costs. The same seed plans the same cases; a negative the spec in use does not forbid is not
//! planned, and is named instead.

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Options;
use super::check::{Contract, Expect, Request, Sent};
use crate::operations::Operation;

/// The spec's name for the path parameter that names an upgrade.
pub(super) const UPGRADE_ID: &str = "upgradeId";

/// How a run grades a server that *accepts* a negative case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Partner Center's documentation says such a request is rejected: accepting it fails.
    Documented,
    /// Only the spec forbids it; the documentation never says it is rejected, so a correct
    /// server may accept it. A warning, a failure only with [`Options::strict`].
    Undocumented,
}

/// One negative case: what it breaks, how the request is changed, and what accepting it costs.
#[derive(Debug, Clone, Copy)]
pub struct Negative {
    /// What breaks the spec, e.g. `customerId is not a GUID`; part of the case's name.
    pub name: &'static str,
    mutation: Mutation,
    /// The grade when the server does not reject the request.
    pub if_accepted: Severity,
    /// The Partner Center error code the documentation gives for this rejection, if it names
    /// one; a rejection with another code is graded like an acceptance.
    pub code: Option<&'static str>,
}

impl Negative {
    /// What a rejection looks like.
    fn expect(&self) -> Expect {
        match self.mutation {
            Mutation::NotJson => Expect::Unparsable,
            Mutation::NoToken | Mutation::WrongToken => Expect::Unauthorized,
            Mutation::Method(_) => Expect::MethodRefused,
            _ => Expect::ClientError,
        }
    }
}

/// How a negative case changes a valid request.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// The body, built from the case's customer id.
    Body(fn(&str) -> Value),
    /// A body that is not JSON.
    NotJson,
    /// A request header set to a value.
    Header(&'static str, HeaderText),
    /// A path's `upgradeId` that is not a GUID.
    UpgradeId,
    /// No `Authorization` header.
    NoToken,
    /// A bearer token the server did not issue.
    WrongToken,
    /// A method the spec does not declare for the path.
    Method(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum HeaderText {
    Fixed(&'static str),
    /// One character longer than the parameter's `maxLength` in the spec.
    LongerThanDeclared,
}

/// Every negative case, with its grade if the server accepts it. The documented rejections are
/// those Partner Center's pages state: a malformed body (not JSON, or not the request schema),
/// an invalid customer id (`400`, code `900118`), missing or wrong credentials (`401`).
pub const NEGATIVES: &[Negative] = &[
    Negative {
        name: "customerId is missing",
        mutation: Mutation::Body(|_| json!({ "productFamily": "Azure" })),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "customerId is not a GUID",
        mutation: Mutation::Body(
            |_| json!({ "customerId": "4c721420-72ad-4708", "productFamily": "Azure" }),
        ),
        if_accepted: Severity::Documented,
        code: Some("900118"),
    },
    Negative {
        name: "customerId is a number",
        mutation: Mutation::Body(|_| json!({ "customerId": 42, "productFamily": "Azure" })),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "productFamily is missing",
        mutation: Mutation::Body(|customer| json!({ "customerId": customer })),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "productFamily is empty",
        mutation: Mutation::Body(|customer| json!({ "customerId": customer, "productFamily": "" })),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "productFamily is a number",
        mutation: Mutation::Body(|customer| json!({ "customerId": customer, "productFamily": 7 })),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "the body is not JSON",
        mutation: Mutation::NotJson,
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "the body is an array",
        mutation: Mutation::Body(|_| json!([])),
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "the body has an extra property",
        mutation: Mutation::Body(
            |customer| json!({ "customerId": customer, "productFamily": "Azure", "note": "extra" }),
        ),
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "upgradeId is not a GUID",
        mutation: Mutation::UpgradeId,
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "MS-RequestId is not a GUID",
        mutation: Mutation::Header("ms-requestid", HeaderText::Fixed("not-a-guid")),
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "MS-CorrelationId is not a GUID",
        mutation: Mutation::Header("ms-correlationid", HeaderText::Fixed("flow-42")),
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "X-Locale is not a language tag",
        mutation: Mutation::Header("x-locale", HeaderText::Fixed("en US!")),
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "MS-PartnerCenter-Application is longer than declared",
        mutation: Mutation::Header(
            "ms-partnercenter-application",
            HeaderText::LongerThanDeclared,
        ),
        if_accepted: Severity::Undocumented,
        code: None,
    },
    Negative {
        name: "no Authorization header",
        mutation: Mutation::NoToken,
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "the bearer token is wrong",
        mutation: Mutation::WrongToken,
        if_accepted: Severity::Documented,
        code: None,
    },
    Negative {
        name: "method GET is not declared",
        mutation: Mutation::Method("GET"),
        if_accepted: Severity::Undocumented,
        code: None,
    },
];

/// One HTTP request to send.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    /// The operationId of the operation the request is for.
    pub(super) operation: String,
    pub(super) method: reqwest::Method,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    /// Which bearer token to send, if any.
    pub(super) token: Token,
    pub(super) expect: Expect,
    /// The negative case this request is, if any.
    pub(super) negative: Option<&'static Negative>,
    /// How the request breaks the spec, in the spec's own words (negative cases only).
    pub(super) forbids: Vec<String>,
}

/// Which bearer token a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// The target's own.
    Right,
    /// None: no `Authorization` header.
    Missing,
    /// One the server did not issue.
    Wrong,
}

impl Probe {
    /// A request the spec allows: the operation's method, its path with `upgrade` as the
    /// upgrade id (when the path has one), and `body` when the operation takes one.
    pub(super) fn positive(
        operation: &Operation,
        upgrade: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Probe {
            operation: operation.id.clone(),
            method: reqwest::Method::from_bytes(operation.method.as_bytes())
                .expect("the spec's methods are HTTP methods"),
            path: operation.template.render(&[(UPGRADE_ID, upgrade)]),
            headers,
            body: operation.request_schema.is_some().then_some(body),
            token: Token::Right,
            expect: Expect::Declared,
            negative: None,
            forbids: Vec::new(),
        }
    }

    pub(super) fn request(&self) -> Request<'_> {
        Request {
            method: self.method.as_str(),
            path: &self.path,
            headers: &self.headers,
            body: self.body.as_deref(),
            credentials: Some(self.token != Token::Missing),
        }
    }

    pub(super) fn sent(&self) -> Sent<'_> {
        Sent {
            operation: &self.operation,
            what: format!("{} {}", self.method, self.path),
            headers: &self.headers,
            expect: self.expect,
            negative: self.negative,
            forbids: &self.forbids,
        }
    }
}

/// The negative cases each operation gets: those of [`NEGATIVES`] whose request the spec in use
/// forbids (and the options allow), and a note for each one some operation could have had but
/// does not get. (A mutation with nothing to change in an operation, such as `upgradeId` in a path
/// without one, is simply not that operation's.)
pub(super) fn applicable(
    contract: &Contract,
    options: &Options,
) -> (HashMap<String, Vec<&'static Negative>>, Vec<String>) {
    let mut by_op: HashMap<String, Vec<&'static Negative>> = HashMap::new();
    let mut left_out: Vec<String> = Vec::new();
    let customer = "4c721420-72ad-4708-a0a7-371a2f7b0969";
    for negative in NEGATIVES {
        let mut not_sent: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut sent = false;
        for operation in &contract.operations {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut probe = Probe::positive(
                operation,
                "42d075a4-bfe7-43e7-af6d-7c68a57edcb4",
                vec![
                    ("ms-requestid".into(), Uuid::nil().to_string()),
                    ("ms-correlationid".into(), Uuid::nil().to_string()),
                ],
                request_body(customer, "Azure"),
            );
            let why = match negative
                .mutation
                .apply(&mut probe, customer, contract, &mut rng)
            {
                Err(Inapplicable::Structural) => continue,
                Err(Inapplicable::Spec(why)) => Some(why.to_owned()),
                Ok(()) if negative.mutation.is_wrong_token() => (!options.wrong_token)
                    .then(|| "the server accepts any token (--prism)".to_owned()),
                Ok(()) => contract
                    .request_violations(&probe.request())
                    .is_empty()
                    .then(|| "the spec allows the request".to_owned()),
            };
            match why {
                None => {
                    sent = true;
                    by_op
                        .entry(operation.id.clone())
                        .or_default()
                        .push(negative);
                }
                Some(why) => not_sent.entry(why).or_default().push(&operation.id),
            }
        }
        for (why, ops) in not_sent {
            left_out.push(format!(
                "{}: not sent{}, {why}",
                negative.name,
                if sent {
                    format!(" to {}", ops.join(", "))
                } else {
                    String::new()
                }
            ));
        }
    }
    (by_op, left_out)
}

/// Why a mutation cannot make an operation's request a negative case.
enum Inapplicable {
    /// The operation has nothing it could change (no `upgradeId` in its path).
    Structural,
    /// The spec in use sets no rule it could break.
    Spec(&'static str),
}

impl Mutation {
    /// Changes a valid request into this negative case, or says why it cannot.
    fn apply(
        self,
        probe: &mut Probe,
        customer: &str,
        contract: &Contract,
        rng: &mut ChaCha8Rng,
    ) -> Result<(), Inapplicable> {
        match self {
            Mutation::Body(body) => {
                probe.body = Some(serde_json::to_vec(&body(customer)).expect("JSON"));
            }
            Mutation::NotJson => probe.body = Some(b"{\"customerId\": ".to_vec()),
            Mutation::Header(name, text) => {
                let value = match text {
                    HeaderText::Fixed(value) => value.to_owned(),
                    HeaderText::LongerThanDeclared => {
                        let Some(limit) = contract.max_length(&probe.operation, name) else {
                            return Err(Inapplicable::Spec("the spec declares no maxLength"));
                        };
                        "x".repeat(usize::try_from(limit).unwrap_or(4096).saturating_add(1))
                    }
                };
                set_header(&mut probe.headers, name, &value);
            }
            Mutation::UpgradeId => {
                let template = match contract.operation(&probe.operation) {
                    Some(operation) if operation.template.has_parameter(UPGRADE_ID) => {
                        &operation.template
                    }
                    _ => return Err(Inapplicable::Structural),
                };
                let bad = ["not-a-guid", "42", "eligibility"][rng.random_range(0..3)];
                probe.path = template.render(&[(UPGRADE_ID, bad)]);
            }
            Mutation::NoToken => probe.token = Token::Missing,
            Mutation::WrongToken => probe.token = Token::Wrong,
            Mutation::Method(method) => {
                probe.method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
                probe.body = None;
            }
        }
        Ok(())
    }

    /// A wrong token breaks no schema: the spec cannot tell it from a right one.
    fn is_wrong_token(self) -> bool {
        matches!(self, Mutation::WrongToken)
    }
}

/// What one case does, decided up front from the seed so runs repeat.
#[derive(Debug, Clone)]
pub(super) enum Plan {
    Single(Box<Probe>, String),
    Flow {
        customer: Uuid,
        request_id: Uuid,
        correlation_id: Uuid,
    },
}

fn guid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// The body of all three operations: a customer and a product family.
pub(super) fn request_body(customer: &str, family: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "customerId": customer, "productFamily": family })).expect("JSON")
}

fn common_headers(rng: &mut ChaCha8Rng) -> Vec<(String, String)> {
    let mut headers = vec![
        ("ms-requestid".to_owned(), guid(rng).to_string()),
        ("ms-correlationid".to_owned(), guid(rng).to_string()),
    ];
    if rng.random_bool(0.5) {
        let locale = ["en-US", "de-DE", "ru-RU", "fr"][rng.random_range(0..4)];
        headers.push(("x-locale".into(), locale.into()));
    }
    if rng.random_bool(0.3) {
        headers.push((
            "ms-partnercenter-application".into(),
            "contract verification".into(),
        ));
    }
    headers
}

/// Case `index`: every 25th a flow, the others a request to each operation in turn, positive
/// or one of the operation's negatives.
pub(super) fn plan(
    index: usize,
    rng: &mut ChaCha8Rng,
    contract: &Contract,
    negatives: &HashMap<String, Vec<&'static Negative>>,
) -> Plan {
    if index % 25 == 24 {
        return Plan::Flow {
            customer: guid(rng),
            request_id: guid(rng),
            correlation_id: guid(rng),
        };
    }
    let operation = &contract.operations[index % contract.operations.len()];
    let customer = guid(rng).to_string();
    let upgrade = guid(rng).to_string();
    let headers = common_headers(rng);
    let family = ["Azure", "azure", "AZURE"][rng.random_range(0..3)];
    let mut probe = Probe::positive(
        operation,
        &upgrade,
        headers,
        request_body(&customer, family),
    );
    let choices = negatives
        .get(&operation.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if choices.is_empty() || rng.random_bool(0.5) {
        let name = format!(
            "{} positive: customer {customer}, family {family}",
            operation.id
        );
        return Plan::Single(Box::new(probe), name);
    }
    let negative = choices[rng.random_range(0..choices.len())];
    // Only mutations that apply to this operation were planned for it.
    let _ = negative
        .mutation
        .apply(&mut probe, &customer, contract, rng);
    probe.expect = negative.expect();
    probe.negative = Some(negative);
    probe.forbids = contract.request_violations(&probe.request());
    if probe.forbids.is_empty() {
        probe
            .forbids
            .push("a token the server did not issue".into());
    }
    let name = format!("{} negative: {}", operation.id, negative.name);
    Plan::Single(Box::new(probe), name)
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.into(), value.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_rejections_fail_when_accepted() {
        let documented: Vec<&str> = NEGATIVES
            .iter()
            .filter(|n| n.if_accepted == Severity::Documented)
            .map(|n| n.name)
            .collect();
        assert_eq!(
            documented,
            [
                "customerId is missing",
                "customerId is not a GUID",
                "customerId is a number",
                "productFamily is missing",
                "productFamily is empty",
                "productFamily is a number",
                "the body is not JSON",
                "the body is an array",
                "no Authorization header",
                "the bearer token is wrong",
            ]
        );
        let coded: Vec<(&str, &str)> = NEGATIVES
            .iter()
            .filter_map(|n| Some((n.name, n.code?)))
            .collect();
        assert_eq!(coded, [("customerId is not a GUID", "900118")]);
    }

    #[test]
    fn every_negative_the_spec_forbids_is_planned_and_the_rest_are_named() {
        let contract = Contract::new(crate::spec()).unwrap();
        let (planned, left_out) = applicable(&contract, &Options::default());

        assert!(
            !left_out.iter().any(|l| l.starts_with("upgradeId")),
            "{left_out:?}"
        );
        assert_eq!(contract.operations.len(), 3);
        for operation in &contract.operations {
            let names: Vec<&str> = planned[&operation.id].iter().map(|n| n.name).collect();
            assert!(names.contains(&"customerId is not a GUID"), "{names:?}");
            assert!(names.contains(&"MS-RequestId is not a GUID"), "{names:?}");
            assert!(names.contains(&"the bearer token is wrong"), "{names:?}");
            assert_eq!(
                names.contains(&"upgradeId is not a GUID"),
                operation.id == "getUpgradeStatus",
                "{names:?}"
            );
        }
        // Extra properties are allowed by the spec (ERRATA 3): never sent as a negative.
        assert!(
            left_out
                .iter()
                .any(|l| l
                    == "the body has an extra property: not sent, the spec allows the request"),
            "{left_out:?}"
        );
        let (_, without_token) = applicable(
            &contract,
            &Options {
                wrong_token: false,
                ..Options::default()
            },
        );
        assert!(
            without_token
                .iter()
                .any(|l| l.starts_with("the bearer token is wrong")),
            "{without_token:?}"
        );
    }

    #[test]
    fn a_probe_takes_its_method_and_path_from_the_spec() {
        let contract = Contract::new(crate::spec()).unwrap();
        let status = contract.operation("getUpgradeStatus").unwrap();

        let probe = Probe::positive(status, "42", Vec::new(), request_body("c", "Azure"));

        assert_eq!(probe.method.as_str(), status.method);
        assert_eq!(probe.path, status.template.render(&[(UPGRADE_ID, "42")]));
        assert!(probe.path.ends_with("/42/status"), "{}", probe.path);
        assert!(probe.body.is_some());
    }
}
