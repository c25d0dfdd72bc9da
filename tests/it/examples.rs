//! Every example in the spec satisfies its schema and deserializes into the generated type.

use serde_json::Value;

use crate::support::spec;

use crate::props::through_generated_type;

#[test]
fn every_example_in_the_spec_satisfies_its_schema_and_deserializes_into_the_generated_type() {
    let spec = spec::spec();
    let examples = spec::examples(&spec);
    assert!(
        examples.len() >= 30,
        "expected the spec's examples, found only {}",
        examples.len()
    );
    let mut failures = Vec::new();
    let mut typed = 0;
    for example in &examples {
        let validator = spec::validator(&spec, &example.schema);
        for violation in spec::violations(&validator, &example.value) {
            failures.push(format!("{}: {violation}", example.location));
        }
        let Some(name) = example
            .schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        else {
            continue;
        };
        typed += 1;
        match through_generated_type(name, &example.value) {
            Ok(again) => {
                for violation in spec::violations(&validator, &again) {
                    failures.push(format!(
                        "{}: re-serialized {name} breaks its schema {violation}",
                        example.location
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: not a {name}: {e}", example.location)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        typed >= 15,
        "only {typed} examples were checked against a generated type"
    );
}

#[test]
fn every_component_schema_has_a_generated_type() {
    let spec = spec::spec();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        let example = schema.get("example").cloned().unwrap_or(Value::Null);
        if let Err(e) = through_generated_type(name, &example) {
            assert!(!e.contains("has no generated type"), "{e}");
        }
    }
}

#[test]
fn the_validator_rejects_what_the_spec_forbids() {
    // Guards the test above: a validator that accepted anything would make it pass vacuously.
    let spec = spec::spec();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/ProductUpgradesEligibility" });
    let validator = spec::validator(&spec, &schema);
    for bad in [
        serde_json::json!({ "customerId": "not-a-guid", "productFamily": "Azure", "isEligible": true }),
        serde_json::json!({ "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969", "productFamily": "Azure" }),
        serde_json::json!({ "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969", "productFamily": "Azure", "isEligible": "yes" }),
        serde_json::json!({ "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969", "productFamily": "", "isEligible": true }),
    ] {
        assert!(
            !spec::violations(&validator, &bad).is_empty(),
            "{bad} was accepted"
        );
    }
    let nullable = serde_json::json!({
        "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969", "productFamily": "Azure",
        "isEligible": true, "upgradeId": null, "reason": null
    });
    assert_eq!(
        spec::violations(&validator, &nullable),
        Vec::<String>::new()
    );
}
