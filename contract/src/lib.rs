//! The product-upgrade spec as data: reading it, following its references, finding its examples,
//! and checking JSON against its own component schemas with a real JSON Schema validator.
//!
//! Shared by the library's tests and by `cargo xtask contract`, so both check against the same
//! spec file in the same way. OpenAPI 3.0 schemas are JSON Schema Draft 4 plus a few keywords;
//! the one that changes meaning is `nullable`, translated here to a `"null"` type. The formats
//! `uuid` and `date-time` are checked.

#![deny(missing_docs)]

pub use jsonschema;

pub mod operations;
pub mod recordings;
pub mod verify;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The spec's text, compiled in, for tools that run outside the source tree (the mock).
pub const SPEC_YAML: &str = include_str!("../../openapi/product-upgrades.yaml");

/// The compiled-in spec as JSON.
///
/// # Panics
/// Never for a built crate: the spec's tests and build fail first when it is not valid YAML.
pub fn embedded_spec() -> Value {
    yaml_serde::from_str(SPEC_YAML).expect("the embedded spec is valid YAML")
}

/// A validator for the named component schema (`#/components/schemas/{name}`).
pub fn component_validator(spec: &Value, name: &str) -> jsonschema::Validator {
    validator(
        spec,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
    )
}

/// The spec's path: `openapi/product-upgrades.yaml` in the library package.
pub fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("openapi/product-upgrades.yaml")
}

/// Reads a spec file as JSON, or says why it cannot.
pub fn read_spec(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    yaml_serde::from_str(&text).map_err(|e| format!("{} is not valid YAML: {e}", path.display()))
}

/// The project's spec as JSON; panics with the reason if it cannot be read (for tests).
pub fn spec() -> Value {
    read_spec(&spec_path()).unwrap_or_else(|e| panic!("{e}"))
}

/// Follows a local `$ref` (`#/components/...`) until a non-reference is reached.
///
/// # Panics
/// On a reference that is not local or that points nowhere.
pub fn resolve<'a>(spec: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are used: {reference}"));
        node = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"));
    }
    node
}

/// Rewrites OpenAPI 3.0 schema keywords into their JSON Schema equivalents.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "nullable" | "example" | "discriminator" | "xml" | "externalDocs"
                    | "deprecated" | "readOnly" | "writeOnly" => {}
                    k if k.starts_with("x-") => {}
                    "properties" => {
                        let props = value
                            .as_object()
                            .expect("properties is an object")
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect();
                        out.insert(key.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(key.clone(), to_json_schema(value));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                // `nullable` beside a composition (`type: object, nullable: true, allOf: [$ref]`,
                // the 3.0.3 way to make a referenced schema nullable): null, or whatever the
                // rest allows. Widening `type` alone would not do: the referenced schema's own
                // `type` inside `allOf` still refuses null.
                if ["allOf", "anyOf", "oneOf"]
                    .iter()
                    .any(|k| out.contains_key(*k))
                {
                    return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
                }
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
                // `nullable` beside a composition with no `type` (`nullable: true` with
                // `allOf: [$ref]`, the usual way to make a referenced schema nullable): null, or
                // whatever the rest allows.
                if !out.contains_key("type") && !out.contains_key("enum") {
                    return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// A validator for `schema`, a schema object from the spec (often just a `$ref`), resolving
/// references against the spec's own `components/schemas`.
///
/// # Panics
/// When the schema does not compile, which means the spec itself is broken.
pub fn validator(spec: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = to_json_schema(schema);
    let schemas = to_json_schema(&spec["components"]["schemas"]);
    root.as_object_mut()
        .expect("a schema is an object")
        .insert("components".into(), json!({ "schemas": schemas }));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .with_format("uuid", |s: &str| uuid::Uuid::try_parse(s).is_ok())
        .build(&root)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

/// Every error the validator finds, one per line with the JSON path it concerns (none for the
/// value itself).
pub fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| match e.instance_path().to_string() {
            path if path.is_empty() => e.to_string(),
            path => format!("at {path}: {e}"),
        })
        .collect()
}

/// One example in the spec: where it is, the schema it must satisfy, its value.
#[derive(Debug, Clone)]
pub struct Example {
    /// A JSON pointer-like location (`#/paths/...`).
    pub location: String,
    /// The schema the example must satisfy (often a `$ref`).
    pub schema: Value,
    /// The example's value.
    pub value: Value,
}

/// Every example the spec holds: in media types (`example` and `examples`), in parameters and
/// headers, and on schemas and their properties.
pub fn examples(spec: &Value) -> Vec<Example> {
    let mut found = Vec::new();
    walk(spec, spec, "#".into(), &mut found);
    found
}

fn walk(spec: &Value, node: &Value, location: String, found: &mut Vec<Example>) {
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                walk(spec, item, format!("{location}/{i}"), found);
            }
        }
        return;
    };
    if map.contains_key("$ref") {
        return;
    }
    // A media type, parameter or header: its examples must satisfy its `schema`.
    if let Some(schema) = map.get("schema") {
        if let Some(example) = map.get("example") {
            found.push(Example {
                location: format!("{location}/example"),
                schema: schema.clone(),
                value: example.clone(),
            });
        }
        if let Some(Value::Object(named)) = map.get("examples") {
            for (name, example) in named {
                let example = resolve(spec, example);
                found.push(Example {
                    location: format!("{location}/examples/{name}"),
                    schema: schema.clone(),
                    value: example["value"].clone(),
                });
            }
        }
    } else if let (Some(example), true) = (map.get("example"), is_schema(map)) {
        // A schema: its own example must satisfy it.
        found.push(Example {
            location: format!("{location}/example"),
            schema: node.clone(),
            value: example.clone(),
        });
    }
    for (key, child) in map {
        if key == "example" || key == "examples" {
            continue;
        }
        walk(
            spec,
            child,
            format!("{location}/{}", key.replace('/', "~1")),
            found,
        );
    }
}

fn is_schema(map: &serde_json::Map<String, Value>) -> bool {
    ["type", "oneOf", "anyOf", "allOf", "properties", "items"]
        .iter()
        .any(|k| map.contains_key(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_allows_null_with_a_type_an_enum_or_a_composition() {
        let spec = json!({ "components": { "schemas": {
            "Thing": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } }
        } } });
        let typed = validator(&spec, &json!({ "type": "string", "nullable": true }));
        let listed = validator(&spec, &json!({ "enum": ["a"], "nullable": true }));
        let composed = validator(
            &spec,
            &json!({ "nullable": true, "allOf": [{ "$ref": "#/components/schemas/Thing" }] }),
        );
        let plain = validator(
            &spec,
            &json!({ "allOf": [{ "$ref": "#/components/schemas/Thing" }] }),
        );

        for v in [&typed, &listed, &composed] {
            assert!(v.is_valid(&Value::Null));
        }
        assert!(composed.is_valid(&json!({ "id": "x" })));
        assert!(!composed.is_valid(&json!({})));
        assert!(!plain.is_valid(&Value::Null));
        assert!(!typed.is_valid(&json!(1)));
    }
}
