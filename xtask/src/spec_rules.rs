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
}
