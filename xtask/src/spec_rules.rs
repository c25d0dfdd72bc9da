//! The project's own rules for the spec, beyond what OpenAPI validity requires: what makes it a
//! contract other teams can generate from and our tests can rely on.

use partner_center_contract as contract;
use serde_json::Value;

/// The request headers every operation declares.
const COMMON_HEADERS: [&str; 4] = [
    "MS-RequestId",
    "MS-CorrelationId",
    "X-Locale",
    "MS-PartnerCenter-Application",
];

/// The outcome of checking the spec: how many checks ran, and what failed.
#[derive(Debug, Default)]
pub struct Findings {
    pub checks: usize,
    pub failures: Vec<String>,
}

impl Findings {
    fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.failures.push(failure());
        }
    }
}

/// Runs every rule over `spec`.
pub fn check(spec: &Value) -> Findings {
    let mut findings = Findings::default();
    let version = spec["openapi"].as_str().unwrap_or_default();
    findings.check(version.starts_with("3.0."), || {
        format!("openapi is {version:?}; progenitor and this project need 3.0.x")
    });
    let mut operation_ids = std::collections::BTreeSet::new();
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    findings.check(!paths.is_empty(), || "the spec has no paths".into());
    for (path, item) in &paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            if ![
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            check_operation(spec, &at, op, &mut operation_ids, &mut findings);
        }
    }
    check_links(spec, &mut findings);
    for example in contract::examples(spec) {
        let validator = contract::validator(spec, &example.schema);
        let violations = contract::violations(&validator, &example.value);
        findings.check(violations.is_empty(), || {
            format!(
                "example {} does not match its schema: {}",
                example.location,
                violations.join("; ")
            )
        });
    }
    findings
}

fn check_operation(
    spec: &Value,
    at: &str,
    op: &Value,
    operation_ids: &mut std::collections::BTreeSet<String>,
    findings: &mut Findings,
) {
    let id = op["operationId"].as_str().unwrap_or_default().to_owned();
    findings.check(!id.is_empty(), || format!("{at} has no operationId"));
    findings.check(is_camel_case(&id), || {
        format!("{at}: operationId {id:?} is not camelCase")
    });
    findings.check(operation_ids.insert(id.clone()), || {
        format!("{at}: operationId {id:?} is used twice")
    });
    for field in ["summary", "description"] {
        findings.check(
            op[field].as_str().is_some_and(|s| !s.trim().is_empty()),
            || format!("{at} has no {field}"),
        );
    }
    findings.check(op["tags"].as_array().is_some_and(|t| t.len() == 1), || {
        format!("{at} must have exactly one tag")
    });
    let declared: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            contract::resolve(spec, p)["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for header in COMMON_HEADERS {
        findings.check(declared.iter().any(|d| d == header), || {
            format!("{at} does not declare the {header} header")
        });
    }
    if let Some(body) = op.get("requestBody") {
        let body = contract::resolve(spec, body);
        check_named_schema(at, "request body", body, findings);
    }
    let responses = op["responses"].as_object().cloned().unwrap_or_default();
    findings.check(responses.keys().any(|c| c.starts_with('2')), || {
        format!("{at} declares no success response")
    });
    findings.check(!responses.contains_key("default"), || {
        format!("{at} uses a default response; progenitor counts it as success, declare codes")
    });
    for (code, response) in &responses {
        let response = contract::resolve(spec, response);
        let what = format!("response {code}");
        if code == "202" || code == "204" {
            continue;
        }
        check_named_schema(at, &what, response, findings);
        if code == "429" {
            findings.check(response["headers"].get("Retry-After").is_some(), || {
                format!("{at}: response 429 does not declare Retry-After")
            });
        }
    }
    if let Some(accepted) = responses.get("202") {
        let accepted = contract::resolve(spec, accepted);
        findings.check(accepted["headers"].get("Location").is_some(), || {
            format!("{at}: response 202 does not declare Location")
        });
    }
}

/// A body must be JSON described by a named component schema with at least one example, so every
/// generator gives it a name and every consumer sees a sample.
fn check_named_schema(at: &str, what: &str, body: &Value, findings: &mut Findings) {
    let media = &body["content"]["application/json"];
    findings.check(media.is_object(), || {
        format!("{at}: {what} has no application/json content")
    });
    let reference = media["schema"]["$ref"].as_str().unwrap_or_default();
    findings.check(reference.starts_with("#/components/schemas/"), || {
        format!("{at}: {what} schema is not a named component schema")
    });
    findings.check(
        media.get("example").is_some() || media.get("examples").is_some(),
        || format!("{at}: {what} has no example"),
    );
}

/// The operations of `spec` by operation id, each with the names (and `in`) of its parameters.
fn operations(spec: &Value) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut found = std::collections::BTreeMap::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, i)| i)
    {
        for (_, op) in item.as_object().into_iter().flatten() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let parameters = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let p = contract::resolve(spec, p);
                    (
                        p["name"].as_str().unwrap_or_default().to_owned(),
                        p["in"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            found.insert(id.to_owned(), parameters);
        }
    }
    found
}

/// Whether `text` is a runtime expression a link may hold: `$request.` or `$response.` with a
/// `header.NAME` (schemathesis's `#regex:PATTERN` suffix allowed, its pattern with exactly one
/// group) or `body` (with a JSON pointer), or `$url`, `$method`, `$statusCode`.
fn is_runtime_expression(text: &str) -> bool {
    if ["$url", "$method", "$statusCode"].contains(&text) {
        return true;
    }
    let Some(rest) = text
        .strip_prefix("$request.")
        .or_else(|| text.strip_prefix("$response."))
    else {
        return false;
    };
    if let Some(body) = rest.strip_prefix("body") {
        return body.is_empty() || body.starts_with("#/");
    }
    let Some(header) = rest.strip_prefix("header.") else {
        return ["query.", "path."]
            .iter()
            .any(|p| rest.strip_prefix(p).is_some_and(|n| !n.is_empty()));
    };
    let (name, regex) = match header.split_once("#regex:") {
        Some((name, pattern)) => (name, Some(pattern)),
        None => (header, None),
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    token
        && regex.is_none_or(|pattern| {
            regress::Regex::new(pattern).is_ok() && capture_groups(pattern) == 1
        })
}

/// The capturing groups of a regular expression: each `(` that is not escaped, not inside a
/// character class and not a `(?` group (non-capturing, lookaround; a named group `(?<n>` or
/// `(?P<n>` captures).
fn capture_groups(pattern: &str) -> usize {
    let bytes = pattern.as_bytes();
    let (mut groups, mut in_class, mut i) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => {
                let rest = &pattern[i + 1..];
                let named =
                    rest.starts_with("?<") && !rest.starts_with("?<=") && !rest.starts_with("?<!")
                        || rest.starts_with("?P<");
                if !rest.starts_with('?') || named {
                    groups += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    groups
}

/// Every link names an operation that exists, only parameters it declares, and holds runtime
/// expressions: a link to a renamed operation or parameter fails here, naming the link.
fn check_links(spec: &Value, findings: &mut Findings) {
    let operations = operations(spec);
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            for (code, response) in op["responses"].as_object().into_iter().flatten() {
                let response = contract::resolve(spec, response);
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let at = format!(
                        "{} {path} response {code}, link {name}",
                        method.to_uppercase()
                    );
                    let target = link["operationId"].as_str().unwrap_or_default();
                    let declared = operations.get(target);
                    findings.check(declared.is_some(), || {
                        format!("{at}: operationId {target:?} names no operation")
                    });
                    for (parameter, value) in link["parameters"].as_object().into_iter().flatten() {
                        // `in.name` names the place too (OpenAPI's qualified form); a bare
                        // name is the whole key, dots and all.
                        let (place, bare) = match parameter.split_once('.') {
                            Some((place, bare))
                                if ["path", "query", "header", "cookie"].contains(&place) =>
                            {
                                (Some(place), bare)
                            }
                            _ => (None, parameter.as_str()),
                        };
                        findings.check(
                            declared.is_none_or(|ps| {
                                ps.iter().any(|(n, i)| {
                                    (n == bare || (i == "header" && n.eq_ignore_ascii_case(bare)))
                                        && place.is_none_or(|p| p == i)
                                })
                            }),
                            || format!("{at}: {target} has no parameter {parameter:?}"),
                        );
                        let text = value.as_str().unwrap_or_default();
                        findings.check(is_runtime_expression(text), || {
                            format!(
                                "{at}: parameter {parameter}: {text:?} is not a runtime expression"
                            )
                        });
                    }
                    if let Some(body) = link.get("requestBody") {
                        let text = body.as_str().unwrap_or_default();
                        findings.check(is_runtime_expression(text), || {
                            format!("{at}: requestBody {text:?} is not a runtime expression")
                        });
                    }
                }
            }
        }
    }
}

/// The Arazzo workflow against the spec: each step's operation exists (as
/// `$sourceDescriptions.NAME.operationId`, NAME a declared source), each parameter it sets is
/// one that operation declares, in the same place; each `goto` names a step; each
/// `$steps.S.outputs.O` names a step and one of its outputs.
pub fn check_workflow(spec: &Value, workflow: &Value, findings: &mut Findings) {
    let operations = operations(spec);
    let sources: Vec<&str> = workflow["sourceDescriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    findings.check(
        workflow["arazzo"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.0.")),
        || "the workflow is not an Arazzo 1.0 document".into(),
    );
    findings.check(
        workflow["info"]["version"] == spec["info"]["version"],
        || {
            format!(
                "the workflow's info.version {} is not the spec's {}",
                workflow["info"]["version"], spec["info"]["version"]
            )
        },
    );
    for flow in workflow["workflows"].as_array().into_iter().flatten() {
        let flow_id = flow["workflowId"].as_str().unwrap_or("?");
        let steps: Vec<&Value> = flow["steps"].as_array().into_iter().flatten().collect();
        let outputs_of = |step: &str| -> Option<Vec<String>> {
            steps.iter().find(|s| s["stepId"] == step).map(|s| {
                s["outputs"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect()
            })
        };
        let mut references = Vec::new();
        let mut step_ids = std::collections::BTreeSet::new();
        for step in &steps {
            let step_id = step["stepId"].as_str().unwrap_or("?");
            let at = format!("workflow {flow_id}, step {step_id}");
            findings.check(step_ids.insert(step_id), || {
                format!("{at}: the step id is used twice (a goto could not tell them apart)")
            });
            let reference = step["operationId"].as_str().unwrap_or_default();
            let (source, operation) = match reference
                .strip_prefix("$sourceDescriptions.")
                .and_then(|r| r.split_once('.'))
            {
                Some((source, operation)) => (Some(source), operation),
                None => (None, reference),
            };
            findings.check(source.is_none_or(|s| sources.contains(&s)), || {
                format!("{at}: {reference:?} names no source description")
            });
            let declared = operations.get(operation);
            findings.check(declared.is_some(), || {
                format!("{at}: operationId {reference:?} names no operation of the spec")
            });
            for parameter in step["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                let place = parameter["in"].as_str().unwrap_or_default();
                findings.check(
                    declared.is_none_or(|ps| {
                        ps.iter()
                            .any(|(n, i)| n.eq_ignore_ascii_case(name) && i == place)
                    }),
                    || format!("{at}: {operation} has no {place} parameter {name:?}"),
                );
            }
            // Every expression the step holds: parameter values, the request body's payload,
            // criteria contexts, outputs.
            expressions(step, &mut |text| {
                references.push((at.clone(), text.to_owned()))
            });
            for action in ["onSuccess", "onFailure"]
                .iter()
                .flat_map(|k| step[*k].as_array().into_iter().flatten())
            {
                if let Some(target) = action["stepId"].as_str() {
                    findings.check(steps.iter().any(|s| s["stepId"] == target), || {
                        format!(
                            "{at}: {} goes to step {target:?}, which does not exist",
                            action["name"]
                        )
                    });
                }
            }
        }
        for (name, value) in flow["outputs"].as_object().into_iter().flatten() {
            if let Some(text) = value.as_str() {
                references.push((
                    format!("workflow {flow_id}, output {name}"),
                    text.to_owned(),
                ));
            }
        }
        let inputs = flow["inputs"]["properties"].as_object();
        for (at, text) in references {
            if let Some(rest) = text.strip_prefix("$inputs.") {
                let name = rest.split(['#', '.']).next().unwrap_or_default();
                // Inputs given by a `$ref` (no properties here) are not looked into.
                findings.check(
                    flow["inputs"].get("$ref").is_some()
                        || inputs.is_some_and(|i| i.contains_key(name)),
                    || format!("{at}: {text:?} names no input of the workflow"),
                );
                continue;
            }
            let Some(rest) = text.strip_prefix("$steps.") else {
                continue;
            };
            let mut parts = rest.splitn(3, '.');
            let (step, kind, output) = (parts.next(), parts.next(), parts.next());
            let known = match (step, kind, output) {
                (Some(step), Some("outputs"), Some(output)) => {
                    let output = output.split('#').next().unwrap_or_default();
                    outputs_of(step).is_some_and(|o| o.iter().any(|n| n == output))
                }
                _ => false,
            };
            findings.check(known, || {
                format!("{at}: {text:?} names no output of a step")
            });
        }
    }
}

/// Calls `found` with every runtime expression (`$…`) among the values of a step, outside its
/// prose (`description`, `summary`) and the conditions (which mix expressions with operators).
fn expressions(node: &Value, found: &mut impl FnMut(&str)) {
    match node {
        Value::String(text) if text.starts_with('$') => found(text),
        Value::Array(items) => items.iter().for_each(|i| expressions(i, found)),
        Value::Object(map) => {
            for (key, value) in map {
                if !matches!(
                    key.as_str(),
                    "description" | "summary" | "condition" | "operationId"
                ) {
                    expressions(value, found);
                }
            }
        }
        _ => {}
    }
}

fn is_camel_case(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "openapi": "3.0.3",
            "paths": { "/v1/things": { "post": {
                "operationId": "createThing", "summary": "s", "description": "d", "tags": ["t"],
                "parameters": COMMON_HEADERS.iter().map(|h| json!({"name": h, "in": "header"})).collect::<Vec<_>>(),
                "responses": {
                    "202": { "description": "ok", "headers": { "Location": {} } },
                    "400": { "description": "bad", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Error" },
                        "example": { "code": 1 } } } }
                }
            } } },
            "components": { "schemas": { "Error": {
                "type": "object", "required": ["code"],
                "properties": { "code": { "type": "integer" } } } } }
        })
    }

    #[test]
    fn a_spec_that_follows_the_rules_passes() {
        let findings = check(&minimal());
        assert_eq!(findings.failures, Vec::<String>::new());
        assert!(findings.checks > 10);
    }

    #[test]
    fn an_inline_error_schema_is_named_as_a_failure() {
        let mut spec = minimal();
        spec["paths"]["/v1/things"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] =
            json!({ "type": "object" });
        let findings = check(&spec);
        assert!(
            findings
                .failures
                .iter()
                .any(|f| f.contains("response 400 schema is not a named")),
            "{:?}",
            findings.failures
        );
    }

    #[test]
    fn a_snake_case_or_duplicate_operation_id_fails() {
        let mut spec = minimal();
        spec["paths"]["/v1/things"]["post"]["operationId"] = json!("create_thing");
        assert!(
            check(&spec)
                .failures
                .iter()
                .any(|f| f.contains("not camelCase"))
        );
    }

    #[test]
    fn an_example_that_breaks_its_schema_fails_with_its_location() {
        let mut spec = minimal();
        spec["paths"]["/v1/things"]["post"]["responses"]["400"]["content"]["application/json"]["example"] =
            json!({ "code": "one" });
        let findings = check(&spec);
        assert!(
            findings
                .failures
                .iter()
                .any(|f| f.contains("responses/400") && f.contains("code")),
            "{:?}",
            findings.failures
        );
    }

    #[test]
    fn a_202_without_location_or_a_missing_header_fails() {
        let mut spec = minimal();
        spec["paths"]["/v1/things"]["post"]["responses"]["202"]["headers"] = json!({});
        spec["paths"]["/v1/things"]["post"]["parameters"] = json!([]);
        let failures = check(&spec).failures;
        assert!(
            failures
                .iter()
                .any(|f| f.contains("does not declare Location"))
        );
        assert!(failures.iter().any(|f| f.contains("MS-RequestId header")));
    }

    #[test]
    fn the_projects_spec_follows_the_rules() {
        let findings = check(&contract::spec());
        assert_eq!(findings.failures, Vec::<String>::new());
    }

    fn with_link(link: Value) -> Value {
        let mut spec = minimal();
        spec["paths"]["/v1/things/{thingId}"] = json!({ "post": {
            "operationId": "readThing", "summary": "s", "description": "d", "tags": ["t"],
            "parameters": COMMON_HEADERS.iter().map(|h| json!({"name": h, "in": "header"}))
                .chain([json!({"name": "thingId", "in": "path"})]).collect::<Vec<_>>(),
            "responses": { "202": { "description": "ok", "headers": { "Location": {} } } }
        }});
        spec["paths"]["/v1/things"]["post"]["responses"]["202"]["links"] = json!({ "Read": link });
        spec
    }

    #[test]
    fn a_link_to_an_operation_or_parameter_that_does_not_exist_fails_naming_it() {
        let good = json!({ "operationId": "readThing",
            "parameters": { "thingId": "$response.header.Location#regex:things/(.+)" },
            "requestBody": "$request.body" });
        assert_eq!(
            check(&with_link(good.clone())).failures,
            Vec::<String>::new()
        );

        let mut wrong_operation = good.clone();
        wrong_operation["operationId"] = json!("readThings");
        let failures = check(&with_link(wrong_operation)).failures;
        assert!(
            failures.iter().any(|f| f.contains("link Read") && f.contains("\"readThings\" names no operation")),
            "{failures:?}"
        );

        let mut wrong_parameter = good.clone();
        wrong_parameter["parameters"] = json!({ "thing": "$response.body#/id" });
        let failures = check(&with_link(wrong_parameter)).failures;
        assert!(
            failures
                .iter()
                .any(|f| f.contains("link Read") && f.contains("no parameter \"thing\"")),
            "{failures:?}"
        );

        let mut qualified = good.clone();
        qualified["parameters"] = json!({ "path.thingId": "$response.body#/id" });
        assert_eq!(check(&with_link(qualified)).failures, Vec::<String>::new());
        let mut wrong_place = good.clone();
        wrong_place["parameters"] = json!({ "header.thingId": "$response.body#/id" });
        let failures = check(&with_link(wrong_place)).failures;
        assert!(
            failures
                .iter()
                .any(|f| f.contains("no parameter \"header.thingId\"")),
            "{failures:?}"
        );

        let mut not_an_expression = good;
        not_an_expression["parameters"] = json!({ "thingId": "Location" });
        let failures = check(&with_link(not_an_expression)).failures;
        assert!(
            failures
                .iter()
                .any(|f| f.contains("not a runtime expression")),
            "{failures:?}"
        );
    }

    #[test]
    fn capture_groups_are_counted_past_escapes_classes_and_non_capturing_groups() {
        for (pattern, groups) in [
            ("productUpgrades/([^/?#]+)", 1),
            (r"a\(b(c)", 1),
            ("(?:x)(y)", 1),
            ("[(](z)", 1),
            ("(?<id>[0-9a-f-]+)", 1),
            ("(?=a)b", 0),
            ("(a)(b)", 2),
        ] {
            assert_eq!(capture_groups(pattern), groups, "{pattern}");
        }
    }

    #[test]
    fn runtime_expressions_are_told_from_other_text() {
        for good in [
            "$request.body",
            "$response.body#/upgradeId",
            "$response.header.Location",
            "$response.header.Location#regex:productUpgrades/([^/?#]+)",
            "$statusCode",
        ] {
            assert!(is_runtime_expression(good), "{good}");
        }
        for bad in [
            "",
            "upgradeId",
            "$response.body/upgradeId",
            "$response.header.",
            "$response.header.Location#regex:(unclosed",
            "$response.header.Location#regex:no-group",
            "$responses.body#/id",
        ] {
            assert!(!is_runtime_expression(bad), "{bad}");
        }
    }

    #[test]
    fn the_projects_workflow_fits_the_spec_and_a_broken_one_is_named() {
        let spec = contract::spec();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../openapi/product-upgrades.arazzo.yaml");
        let workflow = contract::read_spec(&path).unwrap();
        let mut findings = Findings::default();
        check_workflow(&spec, &workflow, &mut findings);
        assert_eq!(findings.failures, Vec::<String>::new());
        assert!(findings.checks > 10);

        let mut broken = workflow.clone();
        broken["workflows"][0]["steps"][0]["operationId"] =
            json!("$sourceDescriptions.productUpgrades.checkEligibilityX");
        broken["workflows"][0]["steps"][3]["parameters"][0]["name"] = json!("upgrade");
        broken["workflows"][0]["steps"][1]["onSuccess"][0]["stepId"] = json!("nowhere");
        let mut findings = Findings::default();
        check_workflow(&spec, &broken, &mut findings);
        let failures = findings.failures.join("\n");
        assert!(
            failures.contains("step checkEligibility: operationId"),
            "{failures}"
        );
        assert!(
            failures.contains("no path parameter \"upgrade\""),
            "{failures}"
        );
        assert!(
            failures.contains("\"nowhere\", which does not exist"),
            "{failures}"
        );
    }

    #[test]
    fn an_expression_in_a_body_or_criteria_naming_nothing_fails_and_step_ids_are_unique() {
        let spec = contract::spec();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../openapi/product-upgrades.arazzo.yaml");
        let workflow = contract::read_spec(&path).unwrap();
        let mut broken = workflow.clone();
        broken["workflows"][0]["steps"][0]["requestBody"]["payload"]["customerId"] =
            json!("$inputs.customer");
        broken["workflows"][0]["steps"][1]["requestBody"]["payload"]["productFamily"] =
            json!("$steps.checkEligibility.outputs.family");
        broken["workflows"][0]["steps"][2]["successCriteria"][1]["context"] =
            json!("$steps.nowhere.outputs.body");
        broken["workflows"][0]["steps"][3]["stepId"] = json!("createUpgrade");
        let mut findings = Findings::default();
        check_workflow(&spec, &broken, &mut findings);
        let failures = findings.failures.join("\n");
        for expected in [
            "\"$inputs.customer\" names no input",
            "\"$steps.checkEligibility.outputs.family\" names no output",
            "\"$steps.nowhere.outputs.body\" names no output",
            "step createUpgrade: the step id is used twice",
        ] {
            assert!(failures.contains(expected), "{expected} not in {failures}");
        }
    }
}
