//! Routing and request validation: which of the spec's operations a request names (its method
//! and path matched against the spec's templates, literal segments ignoring case), and whether
//! the request may reach it — the bearer token, the header parameters the operation declares and
//! its body, each checked with the spec's own schemas — before the ledger decides the answer and
//! a repeated `MS-RequestId` gets the first one again.
//!
//! A path no template matches answers 404; a method the spec does not declare for a path that
//! exists answers 405 with the spec's methods in `Allow`. The sign-in service's paths
//! ([`crate::identity`]) are not in the spec and are matched first; the bearer token is the
//! static one or an access token the sign-in service issued (the `/_mock/` admin pages take the
//! same, through [`authorize`]). A scenario customer whose answers are slow waits between these
//! checks and the ledger, so a refused request is answered at once and the wait comes before any
//! effect.

use hyper::Method;
use hyper::header::{HeaderMap, HeaderValue};
use partner_center_contract::jsonschema::Validator;
use partner_center_contract::operations::Operations;
use partner_center_contract::{resolve, validator};
use serde_json::Value;
use uuid::Uuid;

use crate::identity;
use crate::ledger::{self, Answer, Fingerprint, ReplayKey, Stored};
use crate::{Breakage, Shared};

/// The spec's name for the path parameter that names an upgrade.
const UPGRADE_ID: &str = "upgradeId";

/// What the mock does for an operation, chosen by the operation's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Eligibility,
    Create,
    Status,
}

impl Handler {
    const ALL: [Handler; 3] = [Handler::Eligibility, Handler::Create, Handler::Status];

    /// The spec's operationId of what it does.
    pub(crate) const fn operation_id(self) -> &'static str {
        match self {
            Handler::Eligibility => "checkEligibility",
            Handler::Create => "createUpgrade",
            Handler::Status => "getUpgradeStatus",
        }
    }

    fn for_operation(id: &str) -> Option<Handler> {
        Handler::ALL.into_iter().find(|h| h.operation_id() == id)
    }
}

/// A header parameter an operation declares, with its schema's validator.
struct HeaderRule {
    /// Lower case, as the error messages give it.
    name: String,
    validator: Validator,
    /// Whether the schema is a GUID (`format: uuid`), which the message says.
    guid: bool,
}

/// One operation as the mock serves it.
struct Route {
    /// `None` for an operation the mock does not implement.
    handler: Option<Handler>,
    /// The validator of the request body's schema.
    body: Option<Validator>,
    headers: Vec<HeaderRule>,
}

/// The spec's operations, each with what the mock checks and does for it.
pub(crate) struct Routes {
    operations: Operations,
    /// In the order of `operations`.
    routes: Vec<Route>,
    /// What create's `Location` starts with: the last segment of create's path, so that
    /// `Location` is the relative reference `{it}/{upgradeId}` the spec describes.
    location_base: String,
}

impl Routes {
    /// The routes of `spec`; fails when it has no create operation to name upgrades after.
    pub(crate) fn from_spec(spec: &Value) -> Result<Self, String> {
        let operations = Operations::from_spec(spec)?;
        let routes: Vec<Route> = operations
            .iter()
            .map(|operation| Route {
                handler: Handler::for_operation(&operation.id),
                body: operation
                    .request_schema
                    .as_ref()
                    .map(|schema| validator(spec, schema)),
                headers: header_rules(spec, operation.path_item(spec), operation.in_spec(spec)),
            })
            .collect();
        let location_base = operations
            .iter()
            .zip(&routes)
            .find(|(_, route)| route.handler == Some(Handler::Create))
            .and_then(|(operation, _)| operation.template.last_literal())
            .ok_or("the spec has no createUpgrade operation")?
            .to_owned();
        Ok(Routes {
            operations,
            routes,
            location_base,
        })
    }

    /// The first header parameter of operation `index` whose value breaks its schema.
    fn header_problem(&self, index: usize, headers: &HeaderMap) -> Option<String> {
        for rule in &self.routes[index].headers {
            let Some(value) = headers.get(&rule.name) else {
                continue;
            };
            let valid = value
                .to_str()
                .is_ok_and(|v| rule.validator.is_valid(&Value::String(v.to_owned())));
            if !valid {
                let what = if rule.guid { "a GUID" } else { "valid" };
                return Some(format!("The {} header is not {what}.", rule.name));
            }
        }
        None
    }
}

/// The header parameters of a path item and its operation (the operation's win), in order.
fn header_rules(spec: &Value, item: &Value, operation: &Value) -> Vec<HeaderRule> {
    let mut rules: Vec<HeaderRule> = Vec::new();
    for parameter in [&item["parameters"], &operation["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
    {
        let parameter = resolve(spec, parameter);
        if parameter["in"] != "header" {
            continue;
        }
        let name = parameter["name"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let schema = &parameter["schema"];
        rules.retain(|r| r.name != name);
        rules.push(HeaderRule {
            validator: validator(spec, schema),
            guid: resolve(spec, schema)["format"] == "uuid",
            name,
        });
    }
    rules
}

pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_uuid(headers: &HeaderMap, name: &str) -> Option<Uuid> {
    header_text(headers, name).and_then(|v| Uuid::try_parse(v.trim()).ok())
}

/// The id a request sent in `name`, as the answer gives it back: a GUID (anything else is not
/// echoed), or, when lenient, whatever was sent.
pub(crate) fn sent_id(headers: &HeaderMap, name: &str, lenient: bool) -> Option<String> {
    if lenient {
        header_text(headers, name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    } else {
        header_uuid(headers, name).map(|id| id.to_string())
    }
}

/// Decides the answer to a request that reached the API (no fault, or a slow one). A scenario
/// customer whose answers are slow waits here, once the request is known to be valid and
/// before it has any effect.
pub(crate) async fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Stored {
    // The sign-in service's endpoints are not in the spec: they come first.
    if let Some(answer) = identity::answer(shared, method, path, headers, body) {
        return answer.freeze();
    }
    let call = match prepare(shared, method, path, headers, body) {
        Ok(call) => call,
        Err(refused) => return refused.freeze(),
    };
    if let Some(delay) = shared.plans.delay(call.customer) {
        tokio::time::sleep(delay).await;
    }
    decide(shared, call)
}

/// The answer to a missing, wrong or unknown bearer token.
pub(crate) fn unauthorized() -> Answer {
    let mut answer = Answer::error(401, 401, "The access token is missing or not valid.");
    answer.headers.push((
        "www-authenticate",
        "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000".into(),
    ));
    answer
}

/// A valid request to one of the operations, ready for the ledger to answer.
struct Call {
    handler: Handler,
    customer: Uuid,
    family: String,
    /// The status operation's upgrade id: `None` when it names none, `Some(None)` when it is not
    /// a GUID.
    upgrade: Option<Option<Uuid>>,
    fingerprint: Fingerprint,
    /// (operation, `MS-RequestId`), when one was sent.
    key: Option<ReplayKey>,
}

/// Checks a request that reached the API: the operation its method and path name, the bearer
/// token, the headers and the body. `Err` is a refusal before any operation's answer (not
/// remembered for a replay).
fn prepare(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Call, Answer> {
    let routes = &shared.routes;
    let Some((index, operation, found)) = routes.operations.find(method.as_str(), path) else {
        let allowed = routes.operations.methods_at(path);
        if allowed.is_empty() {
            return Err(Answer::error(404, 404, format!("No resource at {path}.")));
        }
        let allowed = allowed.join(", ");
        let mut answer = Answer::error(
            405,
            405,
            format!("{method} is not allowed here; use {allowed}."),
        );
        answer.headers.push(("allow", allowed));
        return Err(answer);
    };
    let route = &routes.routes[index];
    let Some(handler) = route.handler else {
        return Err(Answer::error(
            501,
            501,
            format!("The mock does not implement {}.", operation.id),
        ));
    };
    authorize(shared, headers)?;
    if !shared.config.lenient
        && let Some(problem) = routes.header_problem(index, headers)
    {
        return Err(Answer::error(400, 400, problem));
    }
    let request_id = sent_id(headers, "ms-requestid", shared.config.lenient);
    let (customer, family, body) = parse_body(route.body.as_ref(), body)?;
    let fingerprint = shared.fingerprint(path, &body);
    Ok(Call {
        handler,
        customer,
        family,
        upgrade: found.get(UPGRADE_ID).map(|id| Uuid::try_parse(id).ok()),
        fingerprint,
        key: request_id.map(|id| (index, id)),
    })
}

/// The ledger's answer to a valid request (remembered for a replay), or the first answer again
/// for a repeated `MS-RequestId`.
fn decide(shared: &Shared, call: Call) -> Stored {
    let idempotent = shared.config.breakage != Some(Breakage::DuplicateOnReplay);
    let mut ledger = shared.ledger();
    // A repeated MS-RequestId gets the first answer, but only for the same request: another
    // request under a reused id is a different call and is answered on its own.
    if let (Some(key), true) = (&call.key, idempotent)
        && let Some(first) = ledger.answers.get(key)
        && first.request == call.fingerprint
    {
        return first.answer.clone();
    }
    let config = &shared.config;
    let (customer, family) = (call.customer, call.family.as_str());
    let plan = shared.plans.get(customer);
    let answer = match call.handler {
        Handler::Eligibility => ledger::eligibility(config, &ledger, customer, family, plan),
        Handler::Create => ledger::create(
            config,
            &mut ledger,
            customer,
            family,
            &shared.routes.location_base,
            plan,
        ),
        Handler::Status => match call.upgrade.flatten() {
            None => Answer::error(400, 400, "The upgrade id is not a GUID."),
            Some(upgrade) => ledger::status(config, &mut ledger, customer, upgrade, plan),
        },
    }
    .freeze();
    // A 5xx (the mock is full, or a scenario says so) is not remembered: a retry with the same
    // id may succeed.
    if let Some(key) = call.key
        && answer.status < 500
    {
        ledger.remember(
            key,
            call.fingerprint,
            answer.clone(),
            config.replay_budget_bytes,
        );
    }
    answer
}

/// Whether a request's bearer token is one the API accepts: the static token, or an access
/// token the sign-in service issued (unexpired, with multi-factor sign-in when that is
/// required). `Err` is the 401 to answer.
pub(crate) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Answer> {
    let expected = format!("Bearer {}", shared.config.token);
    let given = headers
        .get("authorization")
        .map_or(&[][..], HeaderValue::as_bytes);
    if same_secret(given, expected.as_bytes()) {
        return Ok(());
    }
    identity::authorize(shared, given)
}

/// Whether a secret sent by a client equals the expected one, in time that depends only on the
/// expected secret's length (not on where the first difference is).
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(difference) == 0
}

/// The body's customer and product family, after checking it against the operation's schema.
fn parse_body(validator: Option<&Validator>, body: &[u8]) -> Result<(Uuid, String, Value), Answer> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Answer::error(400, 400, "The request body is not JSON."))?;
    if let Some(error) = validator.and_then(|v| v.iter_errors(&value).next()) {
        let path = error.instance_path().to_string();
        let code = if path.contains("customerId") {
            900118
        } else {
            400
        };
        return Err(Answer::error(
            400,
            code,
            format!("The request body is invalid at '{path}': {error}"),
        ));
    }
    let customer = Uuid::try_parse(value["customerId"].as_str().unwrap_or_default())
        .map_err(|_| Answer::error(400, 900118, "The customer id is not valid."))?;
    let family = value["productFamily"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((customer, family, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::from_spec(&partner_center_contract::embedded_spec()).unwrap()
    }

    /// The handler a POST to `path` reaches, and its upgrade id if it names one.
    fn route(path: &str) -> Option<(Handler, Option<Uuid>)> {
        let routes = routes();
        let (index, _, found) = routes.operations.find("POST", path)?;
        let upgrade = found
            .get(UPGRADE_ID)
            .and_then(|id| Uuid::try_parse(id).ok());
        Some((routes.routes[index].handler?, upgrade))
    }

    #[test]
    fn routes_ignore_case_and_a_trailing_slash() {
        assert_eq!(route("/v1/productUpgrades"), Some((Handler::Create, None)));
        assert_eq!(route("/V1/PRODUCTUPGRADES/"), Some((Handler::Create, None)));
        assert_eq!(
            route("/v1/productupgrades/eligibility"),
            Some((Handler::Eligibility, None))
        );
        let id = Uuid::new_v4();
        assert_eq!(
            route(&format!("/v1/productUpgrades/{id}/status")),
            Some((Handler::Status, Some(id)))
        );
        assert_eq!(
            route("/v1/productUpgrades/nope/status"),
            Some((Handler::Status, None))
        );
        assert_eq!(route("/v1/productUpgrades/berechtigung"), None);
        assert_eq!(route("/"), None);
    }

    #[test]
    fn every_operation_of_the_spec_is_served_and_located_as_the_spec_says() {
        let routes = routes();

        assert!(routes.routes.iter().all(|r| r.handler.is_some()));
        // The spec's Location: `productUpgrades/{upgradeId}`.
        assert_eq!(routes.location_base, "productUpgrades");
        assert_eq!(
            routes.operations.methods_at("/v1/productUpgrades"),
            ["POST"]
        );
    }

    #[test]
    fn the_headers_checked_are_the_ones_the_spec_declares() {
        let routes = routes();
        let (index, _, _) = routes
            .operations
            .find("POST", "/v1/productUpgrades")
            .unwrap();
        let names: Vec<&str> = routes.routes[index]
            .headers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "ms-requestid",
                "ms-correlationid",
                "ms-cv",
                "x-locale",
                "ms-partnercenter-application"
            ]
        );
        let headers = |name: &'static str, value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(name, HeaderValue::from_static(value));
            map
        };

        assert_eq!(
            routes.header_problem(index, &headers("ms-correlationid", "flow-42")),
            Some("The ms-correlationid header is not a GUID.".into())
        );
        assert_eq!(
            routes.header_problem(index, &headers("x-locale", "en US!")),
            None,
            "the spec sets no pattern for X-Locale"
        );
        assert_eq!(
            routes.header_problem(
                index,
                &headers("ms-requestid", "c245d5f2-1de3-4ae0-9e42-95e38e3cb8ff")
            ),
            None
        );
    }

    #[test]
    fn secrets_compare_equal_only_when_every_byte_and_the_length_match() {
        assert!(same_secret(b"Bearer token", b"Bearer token"));
        assert!(!same_secret(b"Bearer tokem", b"Bearer token"));
        assert!(!same_secret(b"Bearer toke", b"Bearer token"));
        assert!(!same_secret(b"Bearer token!", b"Bearer token"));
        assert!(!same_secret(b"", b"Bearer token"));
        // A shorter secret padded with what `get` fills in is still a different secret.
        assert!(!same_secret(b"ab", b"ab\0"));
        assert!(same_secret(b"", b""));
    }
}
