//! The spec's operations as data: for each one its operationId, method, path template, declared
//! statuses and the schemas of its request and success bodies, read from the spec at run time.
//!
//! Provider verification, the recordings check and the mock's router all take the API's paths
//! and methods from here, so none of them restates the spec's operation table by hand. A
//! [`Template`] matches a request path (literal segments compared ignoring case, as Partner
//! Center does; a trailing slash and a query are ignored) and renders a path from parameter
//! values such as `{upgradeId}`. Operations are kept in operationId order, whatever order the
//! spec's JSON map keeps, so a seeded run sends the same cases.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::resolve;

/// The HTTP methods an OpenAPI path item may declare, lower case as in the spec.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the spec.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The operationId, or `METHOD template` when the spec gives none.
    pub id: String,
    /// Upper case, e.g. `POST`.
    pub method: String,
    /// The path template, e.g. `/v1/productUpgrades/{upgradeId}/status`.
    pub template: Template,
    /// Every status the operation declares (`"200"`, `"400"`, ...), `default` included if any.
    pub declared_statuses: BTreeSet<String>,
    /// The request body's JSON schema as the spec writes it (often a `$ref`), if there is one.
    pub request_schema: Option<Value>,
    /// Whether the spec requires a request body.
    pub request_required: bool,
    /// The JSON schema of the body of the operation's first declared 2xx answer, if it has one
    /// (a `202 Accepted` with an empty body has none).
    pub success_schema: Option<Value>,
}

impl Operation {
    /// The operation's object in `spec` (`paths/{template}/{method}`), the path item resolved.
    pub fn in_spec<'s>(&self, spec: &'s Value) -> &'s Value {
        &resolve(spec, &spec["paths"][self.template.as_str()])[self.method.to_ascii_lowercase()]
    }

    /// The operation's path item in `spec` (`paths/{template}`), resolved: where parameters
    /// shared by its operations are declared.
    pub fn path_item<'s>(&self, spec: &'s Value) -> &'s Value {
        resolve(spec, &spec["paths"][self.template.as_str()])
    }

    /// The first 2xx status the operation declares, e.g. `202`.
    pub fn success_status(&self) -> Option<u16> {
        self.declared_statuses
            .iter()
            .filter_map(|s| s.parse::<u16>().ok())
            .find(|s| (200..300).contains(s))
    }
}

/// Every operation of a spec, in operationId order.
#[derive(Debug, Clone)]
pub struct Operations(Vec<Operation>);

impl Operations {
    /// Reads the operations of `spec`, or says what is missing (an operation without responses).
    pub fn from_spec(spec: &Value) -> Result<Self, String> {
        let mut found = Vec::new();
        for (template, item) in spec["paths"].as_object().into_iter().flatten() {
            let item = resolve(spec, item);
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let method = method.to_ascii_uppercase();
                let id = operation["operationId"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{method} {template}"));
                let declared_statuses: BTreeSet<String> = operation["responses"]
                    .as_object()
                    .ok_or_else(|| format!("the spec has no responses for {id}"))?
                    .keys()
                    .cloned()
                    .collect();
                let body = operation.get("requestBody").map(|b| resolve(spec, b));
                let success_schema = declared_statuses
                    .iter()
                    .find(|s| s.starts_with('2'))
                    .and_then(|s| json_schema(resolve(spec, &operation["responses"][s])));
                found.push(Operation {
                    request_schema: body.and_then(json_schema),
                    request_required: body.and_then(|b| b["required"].as_bool()).unwrap_or(false),
                    success_schema,
                    declared_statuses,
                    template: Template::parse(template),
                    method,
                    id,
                });
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Operations(found))
    }

    /// The operations of the compiled-in spec.
    ///
    /// # Panics
    /// Never for a built crate: the spec's own tests fail first when an operation has no
    /// responses.
    pub fn embedded() -> Self {
        Operations::from_spec(&crate::embedded_spec()).expect("the embedded spec's operations")
    }

    /// Every operation, in operationId order.
    pub fn iter(&self) -> std::slice::Iter<'_, Operation> {
        self.0.iter()
    }

    /// How many operations the spec declares.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the spec declares no operation.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The operation with this operationId.
    pub fn get(&self, id: &str) -> Option<&Operation> {
        self.0.iter().find(|o| o.id == id)
    }

    /// The operation a request's method (compared exactly: HTTP methods are case-sensitive) and
    /// path name, with its index in [`Operations::iter`] and the path's parameter values. When
    /// several templates match, the one with the most literal segments wins.
    pub fn find<'o, 'p>(
        &'o self,
        method: &str,
        path: &'p str,
    ) -> Option<(usize, &'o Operation, PathMatch<'o, 'p>)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, o)| o.method == method)
            .filter_map(|(i, o)| Some((i, o, o.template.matches(path)?)))
            .max_by_key(|(_, _, found)| found.literals)
    }

    /// The methods declared for a path (for an `Allow` header), in operationId order; empty when
    /// no template matches it.
    pub fn methods_at(&self, path: &str) -> Vec<&str> {
        let mut methods: Vec<&str> = Vec::new();
        for operation in &self.0 {
            if operation.template.matches(path).is_some()
                && !methods.contains(&operation.method.as_str())
            {
                methods.push(&operation.method);
            }
        }
        methods
    }
}

impl<'a> IntoIterator for &'a Operations {
    type Item = &'a Operation;
    type IntoIter = std::slice::Iter<'a, Operation>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::ops::Index<usize> for Operations {
    type Output = Operation;

    fn index(&self, index: usize) -> &Operation {
        &self.0[index]
    }
}

/// The `application/json` schema of a request body or response object, if it has one.
fn json_schema(object: &Value) -> Option<Value> {
    object["content"]["application/json"]["schema"]
        .as_object()
        .map(|schema| Value::Object(schema.clone()))
}

/// A path template such as `/v1/productUpgrades/{upgradeId}/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
}

/// A path a [`Template`] matches: the parameters' values, and how many literal segments matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatch<'t, 'p> {
    /// How many of the template's segments are literals (more is a more specific match).
    pub literals: usize,
    /// Each path parameter's name and the path's segment for it, as sent (not decoded).
    pub values: Vec<(&'t str, &'p str)>,
}

impl<'p> PathMatch<'_, 'p> {
    /// The value of the named path parameter.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| *value)
    }
}

/// The segments of a path or template after its leading `/`, without a trailing `/` or query.
fn parts(path: &str) -> impl Iterator<Item = &str> {
    let path = path.split('?').next().unwrap_or_default();
    path.trim_end_matches('/').split('/').skip(1)
}

impl Template {
    /// Reads a template; `{name}` segments are parameters, the others literals.
    pub fn parse(text: &str) -> Template {
        let segments = parts(text)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Parameter(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Template {
            text: text.to_owned(),
            segments,
        }
    }

    /// The template as the spec writes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template has the path parameter `name`.
    pub fn has_parameter(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Parameter(n) if n == name))
    }

    /// The last literal segment, e.g. `productUpgrades` for `/v1/productUpgrades`.
    pub fn last_literal(&self) -> Option<&str> {
        self.segments.iter().rev().find_map(|s| match s {
            Segment::Literal(l) => Some(l.as_str()),
            Segment::Parameter(_) => None,
        })
    }

    /// Whether `path` (a query and a trailing `/` ignored) fits the template, literal segments
    /// compared ignoring case; if so, the parameters' values.
    pub fn matches<'t, 'p>(&'t self, path: &'p str) -> Option<PathMatch<'t, 'p>> {
        let mut found = PathMatch {
            literals: 0,
            values: Vec::new(),
        };
        let mut given = parts(path);
        for segment in &self.segments {
            let part = given.next()?;
            match segment {
                Segment::Literal(l) if l.eq_ignore_ascii_case(part) => found.literals += 1,
                Segment::Literal(_) => return None,
                Segment::Parameter(name) => found.values.push((name.as_str(), part)),
            }
        }
        given.next().is_none().then_some(found)
    }

    /// The path with each parameter replaced by its value in `values` (a parameter without one
    /// stays `{name}`; values the template does not name are ignored). Values are used as given.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let mut path = String::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(l) => path.push_str(l),
                Segment::Parameter(name) => match values.iter().find(|(n, _)| n == name) {
                    Some((_, value)) => path.push_str(value),
                    None => {
                        path.push('{');
                        path.push_str(name);
                        path.push('}');
                    }
                },
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_come_from_the_spec_in_operation_id_order() {
        let operations = Operations::from_spec(&crate::spec()).unwrap();

        let table: Vec<(&str, &str, &str)> = operations
            .iter()
            .map(|o| (o.id.as_str(), o.method.as_str(), o.template.as_str()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "checkEligibility",
                    "POST",
                    "/v1/productUpgrades/eligibility"
                ),
                ("createUpgrade", "POST", "/v1/productUpgrades"),
                (
                    "getUpgradeStatus",
                    "POST",
                    "/v1/productUpgrades/{upgradeId}/status"
                ),
            ]
        );
        let create = operations.get("createUpgrade").unwrap();
        assert_eq!(create.success_status(), Some(202));
        assert!(create.success_schema.is_none());
        assert!(create.declared_statuses.contains("409"));
        assert!(create.request_required);
        let status = operations.get("getUpgradeStatus").unwrap();
        assert_eq!(
            status.success_schema,
            Some(serde_json::json!({ "$ref": "#/components/schemas/ProductUpgradesStatus" }))
        );
        assert_eq!(
            status.request_schema,
            Some(serde_json::json!({ "$ref": "#/components/schemas/ProductUpgradeRequest" }))
        );
        assert_eq!(
            status.in_spec(&crate::spec())["operationId"],
            "getUpgradeStatus"
        );
    }

    #[test]
    fn paths_match_ignoring_case_a_trailing_slash_and_a_query() {
        let operations = Operations::from_spec(&crate::spec()).unwrap();
        let id = |method, path| operations.find(method, path).map(|(_, o, _)| o.id.as_str());

        assert_eq!(id("POST", "/v1/productUpgrades"), Some("createUpgrade"));
        assert_eq!(id("POST", "/V1/PRODUCTUPGRADES/"), Some("createUpgrade"));
        assert_eq!(
            id("POST", "/v1/productupgrades/eligibility?x=1"),
            Some("checkEligibility")
        );
        assert_eq!(id("GET", "/v1/productUpgrades"), None);
        assert_eq!(id("post", "/v1/productUpgrades"), None);
        assert_eq!(id("POST", "/v1/productUpgrades/berechtigung"), None);
        assert_eq!(id("POST", "/"), None);
        let (_, status, found) = operations
            .find("POST", "/v1/productUpgrades/eligibility/status")
            .unwrap();
        assert_eq!(status.id, "getUpgradeStatus");
        assert_eq!(found.get("upgradeId"), Some("eligibility"));
        assert_eq!(
            operations.methods_at("/v1/productUpgrades/x/status"),
            ["POST"]
        );
        assert!(operations.methods_at("/v2/anything").is_empty());
    }

    #[test]
    fn templates_render_their_parameters() {
        let template = Template::parse("/v1/productUpgrades/{upgradeId}/status");

        assert_eq!(
            template.render(&[("upgradeId", "42"), ("other", "x")]),
            "/v1/productUpgrades/42/status"
        );
        assert_eq!(
            template.render(&[]),
            "/v1/productUpgrades/{upgradeId}/status"
        );
        assert!(template.has_parameter("upgradeId"));
        assert_eq!(template.last_literal(), Some("status"));
        assert_eq!(
            Template::parse("/v1/productUpgrades").last_literal(),
            Some("productUpgrades")
        );
        assert!(
            template
                .matches("/v1/productUpgrades/42/status/more")
                .is_none()
        );
        assert!(template.matches("/v1/productUpgrades/42").is_none());
    }
}
