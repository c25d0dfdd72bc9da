//! Provider verification: does a running server keep the contract?
//!
//! Sends seeded, generated requests — positive ones the spec allows and negative ones it
//! forbids — to every operation, and checks every answer against the spec: the status is one the
//! operation declares, a body is JSON of the declared schema, and the declared required headers
//! (`Location` on 202, `Retry-After` on 429) are present and of their schema. Flows then walk
//! eligibility → create → replayed create → status polls: a replay of the same `MS-RequestId`
//! must return the first answer, never a second upgrade. With `stateless`, the checks that need
//! a server keeping upgrade state (the status names the new upgrade, eligibility reports it, polls
//! reach a terminal state) are left out, so an example server such as `prism mock` can be
//! verified too.
//!
//! A negative case is graded by [`NEGATIVES`]: a server that accepts a request the
//! documentation says Partner Center rejects (a malformed body, an invalid customer id, missing
//! or wrong credentials) fails the case; one that accepts a request only the spec forbids (a
//! non-GUID `MS-RequestId`, an unusual `X-Locale`, ...) gets a warning, a failure only with
//! [`Options::strict`]. Whatever it answers, the answer itself must keep the contract — except
//! that a response header echoing the case's own invalid input is not held against the server.
//! Negatives the spec in use does not forbid are left out (and listed in
//! [`Verification::left_out`]), so a looser spec never turns a valid request into a "negative".
//!
//! The token goes only where [`check_base_url`] allows: `https`, or plain `http` to a loopback
//! host. Loopback targets are never reached through a proxy, redirects are never followed, and
//! no answer is read past [`MAX_ANSWER_BYTES`] (a longer one is the failure "answer longer than
//! 4 MiB").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{resolve, validator, violations};

/// The most of one answer the verifier reads. A longer answer is a failed case, named "answer
/// longer than 4 MiB"; the rest is never read, so memory stays bounded whatever a server sends.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Where verification may send a token: `https`, or plain `http` to a loopback host
/// (`localhost`, 127.0.0.0/8, `::1`) only, and no user name or password in the URL; the same
/// rule as the client's `BaseUrl`. Returns whether the host is loopback (reached without a
/// proxy), or why the URL is refused (the URL shown without its user-info part).
pub fn check_base_url(base_url: &str) -> Result<bool, String> {
    let shown = without_userinfo(base_url);
    let refuse = |reason: &str| format!("base URL {shown:?} is refused: {reason}");
    let url =
        reqwest::Url::parse(base_url.trim()).map_err(|_| refuse("it is not an absolute URL"))?;
    let Some(host) = url.host_str() else {
        return Err(refuse("it has no host"));
    };
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => std::net::IpAddr::is_loopback(&ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(refuse(
                "plain http would send the token unencrypted; use https (http is allowed only for loopback addresses)",
            ));
        }
        _ => return Err(refuse("the scheme must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a user name or password"));
    }
    Ok(loopback)
}

/// `value` with any `user:password@` part replaced, so that an error never echoes a password.
fn without_userinfo(value: &str) -> String {
    let Some(start) = value.find("://").map(|i| i + 3) else {
        return value.chars().take(200).collect();
    };
    let end = value[start..]
        .find(['/', '?', '#'])
        .map_or(value.len(), |i| start + i);
    let shown = match value[start..end].rfind('@') {
        Some(at) => format!(
            "{}<userinfo removed>{}",
            &value[..start],
            &value[start + at..]
        ),
        None => value.to_owned(),
    };
    shown.chars().take(200).collect()
}

/// What to verify against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without `/v1`, e.g. `http://127.0.0.1:4010`.
    pub base_url: String,
    /// The bearer token the server accepts.
    pub token: String,
}

/// How much to send, and how to grade it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of cases (a flow counts as one case).
    pub cases: usize,
    /// Seed of the generator: the same seed sends the same cases.
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Leave out the checks that need a server that keeps upgrade state.
    pub stateless: bool,
    /// Send the negative case with a wrong bearer token. Servers that accept any token (an
    /// example server such as `prism mock`) cannot pass it, so it can be left out.
    pub wrong_token: bool,
    /// Grade every warning as a failure: a server that accepts a request only the spec (not the
    /// documentation) forbids fails.
    pub strict: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cases: 1000,
            seed: 1,
            concurrency: 16,
            stateless: false,
            wrong_token: true,
            strict: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// A name that says what was sent, e.g. `createUpgrade negative: customerId is not a GUID`.
    pub name: String,
    /// Every contract violation seen, each naming the check and the value.
    pub failures: Vec<String>,
    /// What the server may do but the spec does not want (for example accepting a request only
    /// the spec forbids); a failure only in a strict run.
    pub warnings: Vec<String>,
    /// How long the case took.
    pub elapsed: Duration,
}

/// What the run exercised.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// operationId → statuses declared by the spec.
    pub declared_statuses: BTreeMap<String, BTreeSet<String>>,
    /// operationId → statuses seen.
    pub seen_statuses: BTreeMap<String, BTreeSet<String>>,
    /// schema name → properties declared.
    pub declared_fields: BTreeMap<String, BTreeSet<String>>,
    /// schema name → properties seen in answers.
    pub seen_fields: BTreeMap<String, BTreeSet<String>>,
}

impl Coverage {
    /// Lines such as `createUpgrade: statuses 3/11 (202 400 409)` and
    /// `ProductUpgradesStatus: fields 5/6 (missing: attributes)`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (op, declared) in &self.declared_statuses {
            let seen = self.seen_statuses.get(op).cloned().unwrap_or_default();
            let hit: Vec<&String> = declared.intersection(&seen).collect();
            let extra: Vec<&String> = seen.difference(declared).collect();
            lines.push(format!(
                "{op}: statuses {}/{} exercised ({}){}",
                hit.len(),
                declared.len(),
                hit.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(", undeclared seen: {extra:?}")
                }
            ));
        }
        for (schema, declared) in &self.declared_fields {
            let seen = self.seen_fields.get(schema).cloned().unwrap_or_default();
            let missing: Vec<&String> = declared.difference(&seen).collect();
            lines.push(format!(
                "{schema}: fields {}/{} seen{}",
                declared.len() - missing.len(),
                declared.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (never seen: {})",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        lines
    }

    /// Operations the run sent no request to.
    pub fn unexercised_operations(&self) -> Vec<String> {
        self.declared_statuses
            .keys()
            .filter(|op| self.seen_statuses.get(*op).is_none_or(BTreeSet::is_empty))
            .cloned()
            .collect()
    }
}

/// The result of a verification run.
#[derive(Debug, Clone)]
pub struct Verification {
    /// One entry per case.
    pub cases: Vec<CaseResult>,
    /// Requests sent in all (flows send several).
    pub requests: usize,
    /// What was exercised.
    pub coverage: Coverage,
    /// Negative cases of [`NEGATIVES`] that were not sent, and why (the spec in use allows the
    /// request, or the options leave the case out).
    pub left_out: Vec<String>,
    /// Whether warnings were graded as failures.
    pub strict: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Verification {
    /// Cases with at least one failure.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.failures.is_empty())
    }

    /// Cases with at least one warning.
    pub fn warned(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.warnings.is_empty())
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Eligibility,
    Create,
    Status,
}

impl Op {
    const ALL: [Op; 3] = [Op::Eligibility, Op::Create, Op::Status];

    fn id(self) -> &'static str {
        match self {
            Op::Eligibility => "checkEligibility",
            Op::Create => "createUpgrade",
            Op::Status => "getUpgradeStatus",
        }
    }

    fn spec_path(self) -> &'static str {
        match self {
            Op::Eligibility => "/v1/productUpgrades/eligibility",
            Op::Create => "/v1/productUpgrades",
            Op::Status => "/v1/productUpgrades/{upgradeId}/status",
        }
    }

    fn path(self, upgrade: &str) -> String {
        self.spec_path().replace("{upgradeId}", upgrade)
    }
}

/// What a request is expected to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Anything the operation declares.
    Declared,
    /// A 4xx (the request breaks the spec).
    ClientError,
    /// A 4xx for bytes that are not JSON. Such a request never reaches an operation: servers
    /// refuse it from their HTTP framework (prism answers with its own error document), so only
    /// the status and content type are checked, not the operation's error schema.
    Unparsable,
    /// 401 (no token, or a wrong one).
    Unauthorized,
    /// A 4xx, 404 or 405 in practice (a method the spec does not declare).
    MethodRefused,
}

/// One HTTP request to send.
#[derive(Debug, Clone)]
struct Probe {
    op: Op,
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Send the target's token; `Some(false)` sends none, `None` a wrong one.
    token: Token,
    expect: Expect,
    /// The negative case this request is, if any.
    negative: Option<&'static Negative>,
    /// How the request breaks the spec, in the spec's own words (negative cases only).
    forbids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Right,
    Missing,
    Wrong,
}

impl Probe {
    fn positive(op: Op, path: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Probe {
            op,
            method: reqwest::Method::POST,
            path,
            headers,
            body: Some(body),
            token: Token::Right,
            expect: Expect::Declared,
            negative: None,
            forbids: Vec::new(),
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: self.method.as_str(),
            path: &self.path,
            headers: &self.headers,
            body: self.body.as_deref(),
            credentials: Some(self.token != Token::Missing),
        }
    }

    fn sent(&self) -> Sent<'_> {
        Sent {
            operation: self.op.id(),
            what: format!("{} {}", self.method, self.path),
            headers: &self.headers,
            expect: self.expect,
            negative: self.negative,
            forbids: &self.forbids,
        }
    }
}

/// A request as the spec sees it: enough to say whether the spec allows it.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// Header names in lower case.
    pub(crate) headers: &'a [(String, String)],
    pub(crate) body: Option<&'a [u8]>,
    /// Whether credentials were sent; `None` when unknown (recordings never hold them).
    pub(crate) credentials: Option<bool>,
}

/// What was sent, as far as checking the answer needs it.
pub(crate) struct Sent<'a> {
    pub(crate) operation: &'a str,
    /// `METHOD path`, the prefix of every message.
    pub(crate) what: String,
    /// The request's headers (names in lower case): an answer header that echoes one of them
    /// is not held against the server.
    pub(crate) headers: &'a [(String, String)],
    pub(crate) expect: Expect,
    pub(crate) negative: Option<&'a Negative>,
    pub(crate) forbids: &'a [String],
}

/// One answer, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// What checking one answer found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) failures: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

impl Findings {
    fn grade(&mut self, severity: Severity, message: String) {
        match severity {
            Severity::Documented => self.failures.push(message),
            Severity::Undocumented => self.warnings.push(message),
        }
    }

    /// In a strict run every warning is a failure.
    pub(crate) fn finish(mut self, strict: bool) -> (Vec<String>, Vec<String>) {
        if strict {
            let warnings = std::mem::take(&mut self.warnings);
            self.failures
                .extend(warnings.into_iter().map(|w| format!("{w} [strict]")));
        }
        (self.failures, self.warnings)
    }
}

/// One operation of the spec, with compiled validators for what a request may carry.
struct Operation {
    id: String,
    /// Lower case, as in the spec's path item.
    method: String,
    segments: Vec<Segment>,
    parameters: Vec<Parameter>,
    /// Whether a body is required, and its schema's validator.
    body: Option<(bool, jsonschema::Validator)>,
    /// Whether the spec's security requirements ask for credentials.
    needs_credentials: bool,
}

enum Segment {
    Literal(String),
    Parameter(String),
}

struct Parameter {
    name: String,
    location: String,
    required: bool,
    validator: jsonschema::Validator,
    max_length: Option<u64>,
}

/// The spec's expectations, with compiled validators, shared by all cases.
pub(crate) struct Contract {
    spec: Value,
    operations: Vec<Operation>,
    /// (operationId, status) → body validator and schema name, headers with validators.
    responses: HashMap<(String, String), Expected>,
}

struct Expected {
    body: Option<(jsonschema::Validator, String)>,
    headers: Vec<(String, bool, jsonschema::Validator)>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Contract {
    pub(crate) fn new(spec: Value) -> Result<Self, String> {
        let mut responses = HashMap::new();
        let mut operations = Vec::new();
        let global_security = spec.get("security").cloned();
        for (template, item) in spec["paths"].as_object().into_iter().flatten() {
            let item = resolve(&spec, item);
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let id = operation["operationId"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{} {template}", method.to_uppercase()));
                let declared = operation["responses"]
                    .as_object()
                    .ok_or_else(|| format!("the spec has no responses for {id}"))?;
                for (status, response) in declared {
                    let response = resolve(&spec, response);
                    responses.insert((id.clone(), status.clone()), expected(&spec, response));
                }
                operations.push(Operation {
                    segments: segments(template),
                    parameters: parameters(&spec, item, operation),
                    body: request_body_schema(&spec, operation),
                    needs_credentials: needs_credentials(
                        operation.get("security").or(global_security.as_ref()),
                    ),
                    method: method.to_owned(),
                    id,
                });
            }
        }
        for op in Op::ALL {
            if !operations.iter().any(|o| o.id == op.id()) {
                return Err(format!(
                    "the spec has no operation {} ({} {})",
                    op.id(),
                    "POST",
                    op.spec_path()
                ));
            }
        }
        Ok(Contract {
            spec,
            operations,
            responses,
        })
    }

    fn declared(&self, operation: &str) -> BTreeSet<String> {
        self.responses
            .keys()
            .filter(|(o, _)| o == operation)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// The operation a request's method and path name (literal segments compared ignoring
    /// case, as Partner Center does), with its path parameters' values. The template with the
    /// most literal segments wins.
    fn find<'a>(&self, method: &str, path: &'a str) -> Option<(&Operation, Vec<(&str, &'a str)>)> {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        self.operations
            .iter()
            .filter(|o| o.method.eq_ignore_ascii_case(method))
            .filter_map(|o| {
                if o.segments.len() != parts.len() {
                    return None;
                }
                let mut values = Vec::new();
                let mut literals = 0;
                for (segment, part) in o.segments.iter().zip(&parts) {
                    match segment {
                        Segment::Literal(l) if l.eq_ignore_ascii_case(part) => literals += 1,
                        Segment::Literal(_) => return None,
                        Segment::Parameter(name) => values.push((name.as_str(), *part)),
                    }
                }
                Some((literals, o, values))
            })
            .max_by_key(|(literals, _, _)| *literals)
            .map(|(_, o, values)| (o, values))
    }

    /// The operationId of the operation a method and path name.
    pub(crate) fn operation_id(&self, method: &str, path: &str) -> Option<String> {
        self.find(method, path).map(|(o, _)| o.id.clone())
    }

    /// How a request breaks the spec: its method and path, path and header parameters, body and
    /// credentials, each checked with the spec's own schemas. Empty when the spec allows it.
    pub(crate) fn request_violations(&self, request: &Request<'_>) -> Vec<String> {
        let Some((operation, values)) = self.find(request.method, request.path) else {
            return vec![format!(
                "the spec declares no operation {} {}",
                request.method, request.path
            )];
        };
        let mut found = Vec::new();
        for parameter in &operation.parameters {
            let value = match parameter.location.as_str() {
                "path" => values
                    .iter()
                    .find(|(name, _)| *name == parameter.name)
                    .map(|(_, v)| (*v).to_owned()),
                "header" => request
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&parameter.name))
                    .map(|(_, v)| v.clone()),
                _ => continue,
            };
            match value {
                None if parameter.required => found.push(format!(
                    "the required {} parameter {} is missing",
                    parameter.location, parameter.name
                )),
                None => {}
                Some(value) => {
                    for violation in header_violations(&parameter.validator, &value) {
                        found.push(format!(
                            "{} parameter {}: {violation}",
                            parameter.location, parameter.name
                        ));
                    }
                }
            }
        }
        match (&operation.body, request.body) {
            (Some((true, _)), None) => found.push("the required body is missing".into()),
            (Some((_, validator)), Some(body)) => match serde_json::from_slice::<Value>(body) {
                Ok(value) => {
                    for violation in violations(validator, &value) {
                        found.push(format!("body {violation}"));
                    }
                }
                Err(e) => found.push(format!("the body is not JSON: {e}")),
            },
            _ => {}
        }
        if operation.needs_credentials && request.credentials == Some(false) {
            found.push("no credentials, though the spec's security requires them".into());
        }
        found
    }

    /// Checks one answer; returns what was found and the JSON body when there was one.
    pub(crate) fn check(
        &self,
        sent: &Sent<'_>,
        answer: &Answer,
        coverage: &mut Coverage,
        findings: &mut Findings,
    ) -> Option<Value> {
        let status = answer.status.to_string();
        let declared = self.declared(sent.operation);
        let what = &sent.what;
        if sent.expect != Expect::MethodRefused {
            coverage
                .seen_statuses
                .entry(sent.operation.into())
                .or_default()
                .insert(status.clone());
            // Whatever was sent, the answer's status must be one the operation declares.
            if !declared.contains(&status) {
                findings.failures.push(format!(
                    "{what}: status {status}, expected one of the declared {declared:?}"
                ));
            }
        }
        let rejected = match sent.expect {
            Expect::Declared => true,
            Expect::ClientError | Expect::Unparsable | Expect::MethodRefused => {
                (400..500).contains(&answer.status)
            }
            Expect::Unauthorized => answer.status == 401,
        };
        if let (false, Some(negative)) = (rejected, sent.negative) {
            let wanted = match sent.expect {
                Expect::Unauthorized => "401, because the credentials are missing or wrong",
                Expect::MethodRefused => {
                    "a 4xx (404 or 405), because the spec declares no such method"
                }
                _ => "a 4xx, because the request breaks the spec",
            };
            let verb = if (200..300).contains(&answer.status) {
                "accepted it"
            } else {
                "did not reject it"
            };
            let happened = format!("{what}: status {status} ({verb}), expected {wanted}");
            findings.grade(
                negative.if_accepted,
                match negative.if_accepted {
                    Severity::Documented => format!(
                        "{happened}; the documentation says Partner Center rejects such a request"
                    ),
                    Severity::Undocumented => format!(
                        "{happened}; the spec forbids the request ({}), though the documentation does not say it is rejected",
                        sent.forbids.join("; ")
                    ),
                },
            );
        }
        if sent.expect == Expect::MethodRefused {
            // The spec declares nothing for this method, so nothing but the status is checked.
            return None;
        }
        let text = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
        let mut parsed = None;
        if !answer.body.is_empty() {
            let content_type = text("content-type").unwrap_or_default();
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/json")
            {
                findings.failures.push(format!(
                    "{what}: status {status} has a body with content type {content_type:?}, expected application/json"
                ));
            }
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(value) => parsed = Some(value),
                Err(e) => findings
                    .failures
                    .push(format!("{what}: status {status} body is not JSON: {e}")),
            }
        }
        if let Some((negative, code)) = sent
            .negative
            .and_then(|n| Some((n, n.code?)))
            .filter(|_| rejected)
        {
            let got = parsed
                .as_ref()
                .map(|b| b["code"].to_string().trim_matches('"').to_owned());
            if got.as_deref() != Some(code) {
                findings.grade(
                    negative.if_accepted,
                    format!(
                        "{what}: status {status} with Partner Center code {}; the documentation gives code {code} for this rejection",
                        got.unwrap_or_else(|| "none".into())
                    ),
                );
            }
        }
        let expected = self
            .responses
            .get(&(sent.operation.to_owned(), status.clone()))?;
        match (&expected.body, &parsed) {
            (Some(_), Some(_)) if sent.expect == Expect::Unparsable => {}
            (Some((validator, schema)), Some(value)) => {
                for violation in violations(validator, value) {
                    findings.failures.push(format!(
                        "{what}: status {status} body breaks {schema} {violation}"
                    ));
                }
                record_fields(&self.spec, schema, value, coverage);
            }
            (Some((_, schema)), None) if answer.status < 400 => findings.failures.push(format!(
                "{what}: status {status} has no body, expected {schema}"
            )),
            // An error answer without a body: the spec describes the body it has when it has
            // one, and says errors may come without (a 401 from the gateway, 5xx), so clients
            // must cope. Worth knowing, not a broken contract.
            (Some((_, schema)), None) => findings.warnings.push(format!(
                "{what}: status {status} has no body; the spec describes it as {schema}"
            )),
            (None, Some(_)) if status == "202" => findings.failures.push(format!(
                "{what}: status 202 has a body; the spec declares none"
            )),
            _ => {}
        }
        for (name, required, validator) in &expected.headers {
            match text(name) {
                None if *required => findings.failures.push(format!(
                    "{what}: status {status} lacks the required {name} header"
                )),
                None => {}
                Some(value) => {
                    let value = value.trim();
                    let echoed = sent
                        .headers
                        .iter()
                        .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim() == value);
                    if echoed {
                        // The server gave back what this case sent: not its fault if invalid.
                        continue;
                    }
                    for violation in header_violations(validator, value) {
                        findings
                            .failures
                            .push(format!("{what}: {name} header {value:?} {violation}"));
                    }
                }
            }
        }
        parsed
    }
}

/// The violations of a header value (text on the wire): valid when its text is valid, or when
/// it reads as a JSON number the schema accepts (`Retry-After: 30` against `type: integer`).
fn header_violations(validator: &jsonschema::Validator, value: &str) -> Vec<String> {
    let as_text = violations(validator, &Value::String(value.to_owned()));
    if as_text.is_empty() {
        return as_text;
    }
    match serde_json::from_str::<Value>(value) {
        Ok(number) if number.is_number() => violations(validator, &number),
        _ => as_text,
    }
}

fn expected(spec: &Value, response: &Value) -> Expected {
    let body = response["content"]["application/json"]["schema"]
        .as_object()
        .map(|schema| {
            let schema = Value::Object(schema.clone());
            let name = schema["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or("inline schema")
                .to_owned();
            (validator(spec, &schema), name)
        });
    let headers = response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, header)| {
            let header = resolve(spec, header);
            let required = header["required"].as_bool().unwrap_or(false);
            (name.clone(), required, validator(spec, &header["schema"]))
        })
        .collect();
    Expected { body, headers }
}

fn segments(template: &str) -> Vec<Segment> {
    template
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Parameter(name.to_owned()),
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

/// The path item's and the operation's parameters (the operation's win), resolved.
fn parameters(spec: &Value, item: &Value, operation: &Value) -> Vec<Parameter> {
    let mut found: Vec<Parameter> = Vec::new();
    for parameter in [&item["parameters"], &operation["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
    {
        let parameter = resolve(spec, parameter);
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let location = parameter["in"].as_str().unwrap_or_default().to_owned();
        let schema = &parameter["schema"];
        let entry = Parameter {
            required: parameter["required"]
                .as_bool()
                .unwrap_or(location == "path"),
            validator: validator(spec, schema),
            max_length: resolve(spec, schema)["maxLength"].as_u64(),
            name,
            location,
        };
        found.retain(|p| !(p.name == entry.name && p.location == entry.location));
        found.push(entry);
    }
    found
}

fn request_body_schema(spec: &Value, operation: &Value) -> Option<(bool, jsonschema::Validator)> {
    let body = resolve(spec, operation.get("requestBody")?);
    let schema = body["content"]["application/json"]["schema"].as_object()?;
    Some((
        body["required"].as_bool().unwrap_or(false),
        validator(spec, &Value::Object(schema.clone())),
    ))
}

/// Security requirements are alternatives; an empty one means "no credentials needed".
fn needs_credentials(security: Option<&Value>) -> bool {
    match security.and_then(Value::as_array) {
        None => false,
        Some(requirements) => {
            !requirements.is_empty()
                && !requirements
                    .iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        }
    }
}

fn record_fields(spec: &Value, schema: &str, value: &Value, coverage: &mut Coverage) {
    let declared = &spec["components"]["schemas"][schema]["properties"];
    let Some(properties) = declared.as_object() else {
        return;
    };
    let seen = coverage.seen_fields.entry(schema.to_owned()).or_default();
    for key in value.as_object().into_iter().flatten().map(|(k, _)| k) {
        if properties.contains_key(key) {
            seen.insert(key.clone());
        }
    }
    for (key, property) in properties {
        let Some(child) = value.get(key) else {
            continue;
        };
        if let Some(name) = schema_name(property) {
            record_fields(spec, name, child, coverage);
        } else if let (Some(name), Value::Array(children)) =
            (schema_name(&property["items"]), child)
        {
            for child in children {
                record_fields(spec, name, child, coverage);
            }
        }
    }
}

/// The component a property schema names: its `$ref`, or the one reference of a composition
/// (`nullable: true` with `allOf: [$ref]`).
fn schema_name(property: &Value) -> Option<&str> {
    let reference = property["$ref"].as_str().or_else(|| {
        ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
            let refs: Vec<&str> = property[*k]
                .as_array()?
                .iter()
                .filter_map(|s| s["$ref"].as_str())
                .collect();
            (refs.len() == 1).then(|| refs[0])
        })
    })?;
    reference.rsplit('/').next()
}

/// A reqwest client for verification: TLS through rustls with the `ring` provider, installed as
/// the process default if none is (this runs in tools, not in the library). Redirects are never
/// followed (the token would follow them); a loopback target is never reached through a proxy
/// (`HTTP_PROXY` and the like would otherwise get the token of a local server).
fn http_client(timeout: Duration, loopback: bool) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if loopback {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`] of it, a chunk at a time.
async fn read_bounded(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, String> {
    let too_long =
        |read: String| format!("{what}: answer longer than 4 MiB ({read}); the rest was not read");
    if let Some(declared) = response.content_length()
        && declared > MAX_ANSWER_BYTES as u64
    {
        return Err(too_long(format!("Content-Length {declared}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{what}: the body could not be read: {e}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_long(format!(
                "over {} bytes sent",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

struct Runner {
    http: reqwest::Client,
    target: Target,
    contract: Contract,
}

impl Runner {
    async fn send(&self, probe: &Probe) -> Result<Answer, String> {
        let url = format!(
            "{}{}",
            self.target.base_url.trim_end_matches('/'),
            probe.path
        );
        let mut request = self.http.request(probe.method.clone(), &url);
        match probe.token {
            Token::Right => {
                request = request.header("authorization", format!("Bearer {}", self.target.token))
            }
            Token::Wrong => {
                let wrong = format!("{}-not-issued-by-this-server", self.target.token);
                request = request.header("authorization", format!("Bearer {wrong}"))
            }
            Token::Missing => {}
        }
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &probe.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} {}: no answer: {e}", probe.method, probe.path))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_bounded(response, &format!("{} {}", probe.method, probe.path)).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends one probe and checks its answer.
    async fn exchange(
        &self,
        probe: &Probe,
        coverage: &mut Coverage,
        findings: &mut Findings,
    ) -> Option<(Answer, Option<Value>)> {
        match self.send(probe).await {
            Ok(answer) => {
                let body = self
                    .contract
                    .check(&probe.sent(), &answer, coverage, findings);
                Some((answer, body))
            }
            Err(e) => {
                findings.failures.push(e);
                None
            }
        }
    }
}

/// The negative cases each operation gets: those of [`NEGATIVES`] whose request the spec in use
/// forbids (and the options allow), and a note for each one some operation could have had but
/// does not get. (A mutation with nothing to change in an operation, such as `upgradeId` in a path
/// without one, is simply not that operation's.)
fn applicable(
    contract: &Contract,
    options: &Options,
) -> (HashMap<Op, Vec<&'static Negative>>, Vec<String>) {
    let mut by_op: HashMap<Op, Vec<&'static Negative>> = HashMap::new();
    let mut left_out: Vec<String> = Vec::new();
    let customer = "4c721420-72ad-4708-a0a7-371a2f7b0969";
    for negative in NEGATIVES {
        let mut not_sent: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        let mut sent = false;
        for op in Op::ALL {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut probe = Probe::positive(
                op,
                op.path("42d075a4-bfe7-43e7-af6d-7c68a57edcb4"),
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
                    by_op.entry(op).or_default().push(negative);
                }
                Some(why) => not_sent.entry(why).or_default().push(op.id()),
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
                        let limit = contract
                            .operation(probe.op.id())
                            .and_then(|o| {
                                o.parameters.iter().find(|p| {
                                    p.location == "header" && p.name.eq_ignore_ascii_case(name)
                                })
                            })
                            .and_then(|p| p.max_length);
                        let Some(limit) = limit else {
                            return Err(Inapplicable::Spec("the spec declares no maxLength"));
                        };
                        "x".repeat(usize::try_from(limit).unwrap_or(4096).saturating_add(1))
                    }
                };
                set_header(&mut probe.headers, name, &value);
            }
            Mutation::UpgradeId => {
                if !probe.op.spec_path().contains("{upgradeId}") {
                    return Err(Inapplicable::Structural);
                }
                probe.path = probe
                    .op
                    .path(["not-a-guid", "42", "eligibility"][rng.random_range(0..3)]);
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

/// Runs the verification.
///
/// Refuses a target [`check_base_url`] refuses, before sending anything.
pub async fn run(spec: Value, target: Target, options: Options) -> Result<Verification, String> {
    let loopback = check_base_url(&target.base_url)?;
    let contract = Contract::new(spec)?;
    let mut coverage = Coverage::default();
    for op in Op::ALL {
        coverage
            .declared_statuses
            .insert(op.id().into(), contract.declared(op.id()));
    }
    for schema in [
        "ProductUpgradesEligibility",
        "ProductUpgradesStatus",
        "ProductUpgradeLineItem",
        "UpgradeProduct",
        "ServiceError",
        "ThrottlingError",
    ] {
        let properties = contract.spec["components"]["schemas"][schema]["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        coverage.declared_fields.insert(schema.into(), properties);
    }
    let (negatives, left_out) = applicable(&contract, &options);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let plans: Vec<Plan> = (0..options.cases)
        .map(|i| plan(i, &mut rng, &contract, &negatives))
        .collect();
    let runner = Runner {
        http: http_client(options.timeout, loopback)?,
        target,
        contract,
    };
    let started = Instant::now();
    let progress_every = (options.cases / 10).max(1);
    let (stateless, strict) = (options.stateless, options.strict);
    let runner = &runner;
    let mut results =
        futures_util::stream::iter(plans.into_iter().enumerate().map(|(i, plan)| async move {
            let mut coverage = Coverage::default();
            let case_started = Instant::now();
            let (name, findings, requests) = execute(runner, plan, stateless, &mut coverage).await;
            let (failures, warnings) = findings.finish(strict);
            (
                i,
                CaseResult {
                    name,
                    failures,
                    warnings,
                    elapsed: case_started.elapsed(),
                },
                requests,
                coverage,
            )
        }))
        .buffer_unordered(options.concurrency.max(1));
    let mut cases = Vec::with_capacity(options.cases);
    let mut requests = 0;
    while let Some((i, case, sent, seen)) = results.next().await {
        requests += sent;
        merge(&mut coverage, seen);
        cases.push((i, case));
        if cases.len() % progress_every == 0 {
            eprint!("\r      {}/{} cases", cases.len(), options.cases);
        }
    }
    eprintln!();
    cases.sort_by_key(|(i, _)| *i);
    Ok(Verification {
        cases: cases.into_iter().map(|(_, c)| c).collect(),
        requests,
        coverage,
        left_out,
        strict,
        elapsed: started.elapsed(),
    })
}

fn merge(into: &mut Coverage, from: Coverage) {
    for (op, statuses) in from.seen_statuses {
        into.seen_statuses.entry(op).or_default().extend(statuses);
    }
    for (schema, fields) in from.seen_fields {
        into.seen_fields.entry(schema).or_default().extend(fields);
    }
}

/// What one case does, decided up front from the seed so runs repeat.
#[derive(Debug, Clone)]
enum Plan {
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

fn request_body(customer: &str, family: &str) -> Vec<u8> {
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

fn plan(
    index: usize,
    rng: &mut ChaCha8Rng,
    contract: &Contract,
    negatives: &HashMap<Op, Vec<&'static Negative>>,
) -> Plan {
    if index % 25 == 24 {
        return Plan::Flow {
            customer: guid(rng),
            request_id: guid(rng),
            correlation_id: guid(rng),
        };
    }
    let op = Op::ALL[index % 3];
    let customer = guid(rng).to_string();
    let upgrade = guid(rng).to_string();
    let headers = common_headers(rng);
    let family = ["Azure", "azure", "AZURE"][rng.random_range(0..3)];
    let mut probe = Probe::positive(
        op,
        op.path(&upgrade),
        headers,
        request_body(&customer, family),
    );
    let choices = negatives.get(&op).map(Vec::as_slice).unwrap_or_default();
    if choices.is_empty() || rng.random_bool(0.5) {
        let name = format!("{} positive: customer {customer}, family {family}", op.id());
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
    let name = format!("{} negative: {}", op.id(), negative.name);
    Plan::Single(Box::new(probe), name)
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.into(), value.into()));
}

async fn execute(
    runner: &Runner,
    plan: Plan,
    stateless: bool,
    coverage: &mut Coverage,
) -> (String, Findings, usize) {
    let mut findings = Findings::default();
    match plan {
        Plan::Single(probe, name) => {
            runner.exchange(&probe, coverage, &mut findings).await;
            (name, findings, 1)
        }
        Plan::Flow {
            customer,
            request_id,
            correlation_id,
        } => {
            let requests = flow(
                runner,
                customer,
                request_id,
                correlation_id,
                stateless,
                coverage,
                &mut findings,
            )
            .await;
            (
                format!("flow: eligibility → create → replay → status, customer {customer}"),
                findings,
                requests,
            )
        }
    }
}

/// Eligibility → create → create again with the same `MS-RequestId` → status polls.
async fn flow(
    runner: &Runner,
    customer: Uuid,
    request_id: Uuid,
    correlation_id: Uuid,
    stateless: bool,
    coverage: &mut Coverage,
    findings: &mut Findings,
) -> usize {
    let body = request_body(&customer.to_string(), "Azure");
    let probe = |op: Op, path: String, request: Uuid| {
        Probe::positive(
            op,
            path,
            vec![
                ("ms-requestid".into(), request.to_string()),
                ("ms-correlationid".into(), correlation_id.to_string()),
            ],
            body.clone(),
        )
    };
    // The flow's other calls get ids derived from its seeded request id, so a seed repeats them.
    let mut next_id = 0u128;
    let mut derived_id = || {
        next_id += 1;
        Uuid::from_u128(request_id.as_u128().wrapping_add(next_id))
    };
    let mut sent = 1;
    let eligibility = probe(Op::Eligibility, Op::Eligibility.path(""), derived_id());
    let Some((answer, Some(value))) = runner.exchange(&eligibility, coverage, findings).await
    else {
        findings
            .failures
            .push("flow: eligibility gave no body; the flow stops".into());
        return sent;
    };
    if answer.status != 200 || value["isEligible"] != json!(true) {
        findings.failures.push(format!(
            "flow: a new customer should be eligible, got status {} and {value}",
            answer.status
        ));
        return sent;
    }
    let create = probe(Op::Create, Op::Create.path(""), request_id);
    sent += 1;
    let Some((first, _)) = runner.exchange(&create, coverage, findings).await else {
        return sent;
    };
    if first.status != 202 {
        findings.failures.push(format!(
            "flow: create answered {}, expected 202",
            first.status
        ));
        return sent;
    }
    let location = first
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(upgrade) = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|id| Uuid::try_parse(id).ok())
    else {
        findings.failures.push(format!(
            "flow: create's Location {location:?} does not end in an upgrade id"
        ));
        return sent;
    };
    sent += 1;
    if let Some((replay, _)) = runner.exchange(&create, coverage, findings).await {
        let again = replay
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if replay.status != first.status || again != location {
            findings.failures.push(format!(
                "flow: replaying create with the same MS-RequestId {request_id} answered {} with Location {again:?}; \
                 the first answer was 202 with {location:?} — a replay must return the first answer, not start a second upgrade",
                replay.status
            ));
        }
    }
    if !stateless {
        sent += 1;
        let second = probe(Op::Create, Op::Create.path(""), derived_id());
        if let Some((answer, body)) = runner.exchange(&second, coverage, findings).await {
            let code = body
                .as_ref()
                .map(|b| b["code"].to_string().trim_matches('"').to_owned());
            if answer.status != 409 || code.as_deref() != Some("900109") {
                findings.failures.push(format!(
                    "flow: a second create (new MS-RequestId) while upgrade {upgrade} is under way answered {} {}; \
                     expected 409 with code 900109",
                    answer.status,
                    body.map(|b| b.to_string()).unwrap_or_default()
                ));
            }
        }
        sent += 1;
        let check = probe(Op::Eligibility, Op::Eligibility.path(""), derived_id());
        if let Some((_, Some(value))) = runner.exchange(&check, coverage, findings).await
            && value["upgradeId"] != json!(upgrade.to_string())
        {
            findings.failures.push(format!(
                "flow: while upgrade {upgrade} is under way, eligibility should name it in upgradeId, got {value}"
            ));
        }
    }
    for _poll in 0..10 {
        sent += 1;
        let status = probe(
            Op::Status,
            Op::Status.path(&upgrade.to_string()),
            derived_id(),
        );
        let Some((answer, Some(value))) = runner.exchange(&status, coverage, findings).await else {
            return sent;
        };
        if answer.status != 200 {
            findings.failures.push(format!(
                "flow: status of upgrade {upgrade} answered {}",
                answer.status
            ));
            return sent;
        }
        if stateless {
            return sent;
        }
        if value["id"] != json!(upgrade.to_string()) {
            findings.failures.push(format!(
                "flow: status of upgrade {upgrade} names another upgrade: {}",
                value["id"]
            ));
            return sent;
        }
        let state = value["status"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if state == "completed" || state == "failed" {
            return sent;
        }
    }
    findings.failures.push(format!(
        "flow: upgrade {upgrade} did not reach Completed or Failed in 10 polls"
    ));
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::new(crate::spec()).unwrap()
    }

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
        let contract = contract();
        let (planned, left_out) = applicable(&contract, &Options::default());

        assert!(
            !left_out.iter().any(|l| l.starts_with("upgradeId")),
            "{left_out:?}"
        );
        for op in Op::ALL {
            let names: Vec<&str> = planned[&op].iter().map(|n| n.name).collect();
            assert!(names.contains(&"customerId is not a GUID"), "{names:?}");
            assert!(names.contains(&"MS-RequestId is not a GUID"), "{names:?}");
            assert!(names.contains(&"the bearer token is wrong"), "{names:?}");
            assert_eq!(
                names.contains(&"upgradeId is not a GUID"),
                op == Op::Status,
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
    fn requests_are_checked_with_the_specs_own_schemas() {
        let contract = contract();
        let body = request_body("4c721420-72ad-4708-a0a7-371a2f7b0969", "Azure");
        let headers = vec![("ms-requestid".to_owned(), "nope".to_owned())];
        let request = |method, path, headers, body, credentials| Request {
            method,
            path,
            headers,
            body,
            credentials,
        };

        let valid = request(
            "POST",
            "/v1/productupgrades/42d075a4-bfe7-43e7-af6d-7c68a57edcb4/STATUS",
            &[],
            Some(&body),
            Some(true),
        );
        assert_eq!(contract.request_violations(&valid), Vec::<String>::new());
        let found = contract.request_violations(&request(
            "POST",
            "/v1/productUpgrades/eligibility",
            &headers,
            Some(b"[]"),
            Some(false),
        ));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("header parameter MS-RequestId: \"nope\""));
        assert!(found[1].starts_with("body "));
        assert!(found[2].starts_with("no credentials"));
        let upgrade = contract.request_violations(&request(
            "POST",
            "/v1/productUpgrades/eligibility/status",
            &[],
            Some(&body),
            None,
        ));
        assert!(
            upgrade[0].contains("path parameter upgradeId: \"eligibility\""),
            "{upgrade:?}"
        );
        let get =
            contract.request_violations(&request("GET", "/v1/productUpgrades", &[], None, None));
        assert!(get[0].contains("declares no operation GET"), "{get:?}");
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().unwrap());
        }
        Answer {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    fn negative(name: &str) -> &'static Negative {
        NEGATIVES.iter().find(|n| n.name == name).unwrap()
    }

    fn checked(sent: &Sent<'_>, answer: &Answer) -> Findings {
        let mut findings = Findings::default();
        contract().check(sent, answer, &mut Coverage::default(), &mut findings);
        findings
    }

    #[test]
    fn accepting_is_graded_by_the_table_and_the_documented_code_is_checked() {
        let forbids = ["header parameter MS-RequestId".to_owned()];
        let headers = [("ms-requestid".to_owned(), "not-a-guid".to_owned())];
        let sent = |name, expect| Sent {
            operation: "checkEligibility",
            what: "POST /v1/productUpgrades/eligibility".into(),
            headers: &headers,
            expect,
            negative: Some(negative(name)),
            forbids: &forbids,
        };
        let eligible = r#"{"customerId":"4c721420-72ad-4708-a0a7-371a2f7b0969","productFamily":"Azure","isEligible":true}"#;
        let json = ("content-type", "application/json");

        // Accepted and echoed: a warning for accepting, nothing for the echoed id.
        let lenient = checked(
            &sent("MS-RequestId is not a GUID", Expect::ClientError),
            &answer(200, &[json, ("ms-requestid", "not-a-guid")], eligible),
        );
        assert_eq!(lenient.failures, Vec::<String>::new());
        assert_eq!(lenient.warnings.len(), 1);
        assert!(lenient.warnings[0].contains("status 200 (accepted it)"));
        // An invalid id the case did not send is the server's own.
        let own = checked(
            &sent("MS-RequestId is not a GUID", Expect::ClientError),
            &answer(200, &[json, ("ms-requestid", "server-made")], eligible),
        );
        assert!(
            own.failures[0].contains("MS-RequestId header \"server-made\""),
            "{own:?}"
        );

        let accepted = checked(
            &sent("customerId is not a GUID", Expect::ClientError),
            &answer(200, &[json], eligible),
        );
        assert!(accepted.failures[0].contains("documentation says Partner Center rejects"));
        let other_code = checked(
            &sent("customerId is not a GUID", Expect::ClientError),
            &answer(400, &[json], r#"{"code":400,"description":"bad"}"#),
        );
        assert!(
            other_code.failures[0].contains("gives code 900118"),
            "{other_code:?}"
        );
        for code in ["900118", "\"900118\""] {
            let right = checked(
                &sent("customerId is not a GUID", Expect::ClientError),
                &answer(
                    400,
                    &[json],
                    &format!(r#"{{"code":{code},"description":"bad"}}"#),
                ),
            );
            assert_eq!(right.failures, Vec::<String>::new());
        }
    }

    #[test]
    fn an_error_without_a_body_is_a_warning_a_success_without_one_a_failure() {
        let sent = Sent {
            operation: "checkEligibility",
            what: "POST /v1/productUpgrades/eligibility".into(),
            headers: &[],
            expect: Expect::Declared,
            negative: None,
            forbids: &[],
        };

        let unauthorized = checked(&sent, &answer(401, &[], ""));
        assert_eq!(unauthorized.failures, Vec::<String>::new());
        assert!(unauthorized.warnings[0].contains("status 401 has no body"));
        let ok = checked(&sent, &answer(200, &[], ""));
        assert!(ok.failures[0].contains("status 200 has no body"), "{ok:?}");
    }

    #[test]
    fn the_token_goes_only_over_https_or_to_loopback() {
        for (url, loopback) in [
            ("https://api.partnercenter.microsoft.com", false),
            ("https://127.0.0.1:8443", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.3.4.5", true),
            ("http://[::1]:4010/", true),
            ("http://localhost:4010", true),
            ("http://LocalHost", true),
        ] {
            assert_eq!(check_base_url(url), Ok(loopback), "{url}");
        }
        for (url, reason) in [
            ("http://10.0.0.1:8080", "plain http"),
            ("http://api.partnercenter.microsoft.com", "plain http"),
            ("http://localhost.example.com", "plain http"),
            ("http://[::2]", "plain http"),
            ("ftp://127.0.0.1", "scheme must be https"),
            ("127.0.0.1:8080", "not an absolute URL"),
            ("ws://localhost", "scheme must be https"),
            ("not a url", "not an absolute URL"),
            (
                "https://user:hunter2secret@127.0.0.1",
                "user name or password",
            ),
        ] {
            let refused = check_base_url(url).unwrap_err();
            assert!(refused.contains(reason), "{url}: {refused}");
            assert!(!refused.contains("hunter2secret"), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_refused_base_url_sends_nothing() {
        let target = Target {
            base_url: "http://192.0.2.1:9".into(),
            token: "secret".into(),
        };
        let refused = run(crate::spec(), target, Options::default())
            .await
            .unwrap_err();
        assert!(refused.contains("plain http"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[test]
    fn a_header_is_valid_as_text_or_as_the_number_it_reads_as() {
        let spec = crate::spec();
        let integer = validator(&spec, &json!({ "type": "integer", "minimum": 0 }));
        let text = validator(&spec, &json!({ "type": "string" }));

        assert!(header_violations(&integer, "30").is_empty());
        assert!(!header_violations(&integer, "soon").is_empty());
        // A digit string such as MS-ServerId stays a valid string.
        assert!(header_violations(&text, "12345").is_empty());
    }
}
