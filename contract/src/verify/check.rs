//! Checking one exchange against the spec: whether the spec allows a request (its path and
//! header parameters, body and credentials, each with the spec's own schemas), and whether an
//! answer keeps the contract (a declared status, JSON of the declared schema, the declared
//! headers) — graded, for a negative case, by what the documentation says a rejection is.
//!
//! Provider verification and the recordings check both grade with [`Contract::check`], so a
//! recorded answer and a live one are held to the same rules.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::coverage::{self, Coverage};
use super::plan::{Negative, Severity};
use crate::operations::{Operation, Operations, PathMatch};
use crate::{resolve, validator, violations};

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

/// A request as the spec sees it: enough to say whether the spec allows it.
pub(crate) struct Request<'a> {
    /// Upper case, e.g. `POST`.
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
    /// The operationId.
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
    pub(super) fn grade(&mut self, severity: Severity, message: String) {
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

/// What the spec lets one operation's request carry, with compiled validators.
struct RequestRules {
    parameters: Vec<Parameter>,
    /// Whether a body is required, and its schema's validator.
    body: Option<(bool, jsonschema::Validator)>,
    /// Whether the spec's security requirements ask for credentials.
    needs_credentials: bool,
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
    pub(crate) spec: Value,
    /// The spec's operations, in operationId order.
    pub(crate) operations: Operations,
    /// What each operation's request may carry, in the order of `operations`.
    rules: Vec<RequestRules>,
    /// (operationId, status) → body validator and schema name, headers with validators.
    responses: HashMap<(String, String), Expected>,
}

struct Expected {
    body: Option<(jsonschema::Validator, String)>,
    headers: Vec<(String, bool, jsonschema::Validator)>,
}

impl Contract {
    pub(crate) fn new(spec: Value) -> Result<Self, String> {
        let operations = Operations::from_spec(&spec)?;
        let global_security = spec.get("security");
        let mut responses = HashMap::new();
        let mut rules = Vec::with_capacity(operations.len());
        for operation in &operations {
            let object = operation.in_spec(&spec);
            for status in &operation.declared_statuses {
                let response = resolve(&spec, &object["responses"][status]);
                responses.insert(
                    (operation.id.clone(), status.clone()),
                    expected(&spec, response),
                );
            }
            rules.push(RequestRules {
                parameters: parameters(&spec, operation.path_item(&spec), object),
                body: operation
                    .request_schema
                    .as_ref()
                    .map(|schema| (operation.request_required, validator(&spec, schema))),
                needs_credentials: needs_credentials(object.get("security").or(global_security)),
            });
        }
        Ok(Contract {
            spec,
            operations,
            rules,
            responses,
        })
    }

    /// The operation with this operationId.
    pub(crate) fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.get(id)
    }

    /// The `maxLength` the spec declares for one of an operation's header parameters.
    pub(super) fn max_length(&self, operation: &str, header: &str) -> Option<u64> {
        let index = self.operations.iter().position(|o| o.id == operation)?;
        self.rules[index]
            .parameters
            .iter()
            .find(|p| p.location == "header" && p.name.eq_ignore_ascii_case(header))
            .and_then(|p| p.max_length)
    }

    /// The operation a request's method and path name, with its path parameters' values.
    fn find<'p>(
        &self,
        method: &str,
        path: &'p str,
    ) -> Option<(usize, &Operation, PathMatch<'_, 'p>)> {
        self.operations.find(method, path)
    }

    /// The operationId of the operation a method and path name.
    pub(crate) fn operation_id(&self, method: &str, path: &str) -> Option<String> {
        self.find(method, path).map(|(_, o, _)| o.id.clone())
    }

    /// How a request breaks the spec: its method and path, path and header parameters, body and
    /// credentials, each checked with the spec's own schemas. Empty when the spec allows it.
    pub(crate) fn request_violations(&self, request: &Request<'_>) -> Vec<String> {
        let Some((index, _, values)) = self.find(request.method, request.path) else {
            return vec![format!(
                "the spec declares no operation {} {}",
                request.method, request.path
            )];
        };
        let rules = &self.rules[index];
        let mut found = Vec::new();
        for parameter in &rules.parameters {
            let value = match parameter.location.as_str() {
                "path" => values.get(&parameter.name).map(str::to_owned),
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
        match (&rules.body, request.body) {
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
        if rules.needs_credentials && request.credentials == Some(false) {
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
        let none = BTreeSet::new();
        let declared = self
            .operation(sent.operation)
            .map_or(&none, |o| &o.declared_statuses);
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
                coverage::record_fields(&self.spec, schema, value, coverage);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::plan::{NEGATIVES, request_body};
    use super::*;

    fn contract() -> Contract {
        Contract::new(crate::spec()).unwrap()
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
