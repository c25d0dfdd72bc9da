//! Coverage: which operations and statuses a run exercised, and which fields of the spec's
//! response schemas it saw. What is declared is read from the spec: every operation's declared
//! statuses, and every component schema with properties that some response body can contain.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::check::Contract;
use crate::resolve;

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

    /// Adds what another part of the run saw.
    pub(super) fn merge(&mut self, from: Coverage) {
        for (op, statuses) in from.seen_statuses {
            self.seen_statuses.entry(op).or_default().extend(statuses);
        }
        for (schema, fields) in from.seen_fields {
            self.seen_fields.entry(schema).or_default().extend(fields);
        }
    }
}

/// Coverage with nothing seen yet: the spec's operations with their declared statuses, and the
/// properties of every component schema a response body can contain.
pub(super) fn declared(contract: &Contract) -> Coverage {
    let spec = &contract.spec;
    let mut coverage = Coverage::default();
    let mut schemas = BTreeSet::new();
    for operation in &contract.operations {
        coverage
            .declared_statuses
            .insert(operation.id.clone(), operation.declared_statuses.clone());
        let responses = &operation.in_spec(spec)["responses"];
        for status in &operation.declared_statuses {
            let response = resolve(spec, &responses[status]);
            components(
                spec,
                &response["content"]["application/json"]["schema"],
                &mut schemas,
            );
        }
    }
    for name in schemas {
        if let Some(properties) = spec["components"]["schemas"][&name]["properties"].as_object() {
            coverage
                .declared_fields
                .insert(name, properties.keys().cloned().collect());
        }
    }
    coverage
}

/// Adds to `found` the name of every component schema `schema` refers to, directly or through
/// properties, items and compositions.
fn components(spec: &Value, schema: &Value, found: &mut BTreeSet<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        if let Some(name) = reference.strip_prefix("#/components/schemas/")
            && found.insert(name.to_owned())
        {
            components(spec, &spec["components"]["schemas"][name], found);
        }
        return;
    }
    for child in schema["properties"].as_object().into_iter().flatten() {
        components(spec, child.1, found);
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            components(spec, &schema[key], found);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for child in schema[key].as_array().into_iter().flatten() {
            components(spec, child, found);
        }
    }
}

/// Records which of `schema`'s declared properties `value` has, and those of the schemas its
/// properties name.
pub(super) fn record_fields(spec: &Value, schema: &str, value: &Value, coverage: &mut Coverage) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_schemas_are_those_a_response_body_can_contain() {
        let contract = Contract::new(crate::spec()).unwrap();

        let coverage = declared(&contract);

        let schemas: Vec<&str> = coverage
            .declared_fields
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            schemas,
            [
                "ProductUpgradeErrorDetails",
                "ProductUpgradeLineItem",
                "ProductUpgradesEligibility",
                "ProductUpgradesStatus",
                "ResourceAttributes",
                "ServiceError",
                "ThrottlingError",
                "UpgradeProduct",
            ]
        );
        // The request's schema is in no answer.
        assert!(
            !coverage
                .declared_fields
                .contains_key("ProductUpgradeRequest")
        );
        let operations: Vec<&str> = coverage
            .declared_statuses
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            operations,
            ["checkEligibility", "createUpgrade", "getUpgradeStatus"]
        );
        assert!(coverage.declared_statuses["createUpgrade"].contains("202"));
        assert_eq!(
            coverage.unexercised_operations().len(),
            3,
            "nothing is seen yet"
        );
    }
}
