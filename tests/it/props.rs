//! Property-based conformance: for every schema in the spec, JSON the spec allows deserializes
//! into the generated type, serializing it again gives JSON the spec allows, the round trip is
//! lossless, and the Rust types accept exactly what the spec accepts — on the same generated
//! JSON, and on the same JSON with one field removed or given a wrong type. "The Rust types
//! accept" means the JSON Schema `schemars` derives from them accepts it and so does their
//! deserializer (the derived schema cannot see the length and pattern checks typify generates).
//!
//! The spec is read at test time: change a field in the spec without changing the code, and a
//! property fails naming the schema and the field. Cases per property: `PROPTEST_CASES`
//! (default 64).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use partner_center_upgrades::{UpgradeStatus, wire};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::support::{spec, strategies as s};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        ..ProptestConfig::default()
    }
}

type Validators = HashMap<String, (Arc<jsonschema::Validator>, Arc<jsonschema::Validator>)>;

static VALIDATORS: LazyLock<Mutex<Validators>> = LazyLock::new(Default::default);

/// The spec's validator and the schemars-derived validator for `schema`, built once.
fn validators<T: schemars::JsonSchema>(
    schema: &str,
) -> (Arc<jsonschema::Validator>, Arc<jsonschema::Validator>) {
    let mut cache = VALIDATORS.lock().unwrap();
    cache
        .entry(schema.to_owned())
        .or_insert_with(|| {
            let spec = spec::spec();
            let from_spec = spec::component_validator(&spec, schema);
            let derived = serde_json::to_value(schemars::schema_for!(T)).unwrap();
            let from_rust = jsonschema::options()
                .should_validate_formats(true)
                .build(&derived)
                .unwrap_or_else(|e| panic!("schemars' schema for {schema} does not compile: {e}"));
            (Arc::new(from_spec), Arc::new(from_rust))
        })
        .clone()
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// The properties for one schema and the Rust type generated from it.
fn conforms<T>(schema: &str, json: &Value, field: usize, wrong: &Value) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + schemars::JsonSchema,
{
    let (from_spec, from_rust) = validators::<T>(schema);
    let refused = spec::violations(&from_spec, json);
    if !refused.is_empty() {
        return Err(fail(format!(
            "the strategy for {schema} made JSON the spec refuses — the spec and \
             tests/it/support/strategies.rs disagree: {refused:?}\n{json}"
        )));
    }
    let value: T = serde_json::from_value(json.clone()).map_err(|e| {
        fail(format!(
            "{schema}: JSON the spec allows is refused by the generated type: {e}\n{json}"
        ))
    })?;
    let again = serde_json::to_value(&value).map_err(|e| fail(format!("{schema}: {e}")))?;
    let broken = spec::violations(&from_spec, &again);
    if !broken.is_empty() {
        return Err(fail(format!(
            "{schema}: the generated type serializes JSON the spec refuses: {broken:?}\n{again}"
        )));
    }
    let back: T = serde_json::from_value(again.clone()).map_err(|e| {
        fail(format!(
            "{schema}: the generated type cannot read its own JSON: {e}\n{again}"
        ))
    })?;
    prop_assert_eq!(
        &back,
        &value,
        "{}: the round trip through JSON lost data",
        schema
    );

    let required = spec::spec()["components"]["schemas"][schema]["required"].clone();
    for candidate in [json.clone(), again, mutate(json, field, wrong, &required)] {
        let spec_accepts = from_spec.is_valid(&candidate);
        // The schema schemars derives cannot see validation typify puts in `TryFrom` (lengths,
        // patterns), so the Rust side accepts what its schema accepts *and* its deserializer does.
        let rust_accepts = from_rust.is_valid(&candidate)
            && serde_json::from_value::<T>(candidate.clone()).is_ok();
        if spec_accepts != rust_accepts {
            let says = |yes: bool| if yes { "accepts" } else { "refuses" };
            return Err(fail(format!(
                "{schema}: the Rust types and the spec drifted apart: the spec {} and the Rust type {} \
                 this JSON (field #{field} changed to {wrong} or removed):\n{candidate}",
                says(spec_accepts),
                says(rust_accepts)
            )));
        }
    }
    Ok(())
}

/// The same JSON with one of its fields (chosen by `field`) removed, or given `wrong`.
///
/// One deliberate exception: serde reads `null` on an optional field as "absent", while the spec
/// refuses `null` wherever a field is not `nullable` (and OpenAPI 3.0.3 cannot mark a `$ref`
/// nullable). That leniency of the reader is not drift, so `null` is only put into required
/// fields; an optional field is removed instead.
fn mutate(json: &Value, field: usize, wrong: &Value, required: &Value) -> Value {
    let mut json = json.clone();
    match &mut json {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(field % map.len())
                .cloned()
                .expect("non-empty");
            let is_required = required
                .as_array()
                .is_some_and(|r| r.iter().any(|k| k == &Value::String(key.clone())));
            if field.is_multiple_of(2) || (wrong.is_null() && !is_required) {
                map.remove(&key);
            } else {
                map.insert(key, wrong.clone());
            }
        }
        _ => json = wrong.clone(),
    }
    json
}

macro_rules! schema_properties {
    ($($test:ident: $schema:literal => $ty:ty, $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $test(json in $strategy, field in any::<usize>(), wrong in s::wrong_value()) {
                    conforms::<$ty>($schema, &json, field, &wrong)?;
                }
            )*
        }

        /// Every component schema in the spec has a property above.
        #[test]
        fn every_schema_in_the_spec_has_a_property() {
            let covered = [$($schema),*];
            let spec = spec::spec();
            let missing: Vec<&String> = spec["components"]["schemas"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|name| !covered.contains(&name.as_str()))
                .collect();
            assert!(missing.is_empty(), "schemas without a property in tests/it/props.rs: {missing:?}");
        }
    };
}

schema_properties! {
    upgrade_requests_conform: "ProductUpgradeRequest" => wire::ProductUpgradeRequest, s::request();
    product_families_conform: "ProductFamily" => wire::ProductFamily, s::family();
    eligibility_answers_conform: "ProductUpgradesEligibility" => wire::ProductUpgradesEligibility, s::eligibility();
    status_values_conform: "UpgradeStatus" => UpgradeStatus, s::status();
    upgrade_status_answers_conform: "ProductUpgradesStatus" => wire::ProductUpgradesStatus, s::upgrade_status();
    line_items_conform: "ProductUpgradeLineItem" => wire::ProductUpgradeLineItem, s::line_item();
    products_conform: "UpgradeProduct" => wire::UpgradeProduct, s::product();
    error_details_conform: "ProductUpgradeErrorDetails" => wire::ProductUpgradeErrorDetails, s::error_details();
    resource_attributes_conform: "ResourceAttributes" => wire::ResourceAttributes, s::resource_attributes();
    service_errors_conform: "ServiceError" => wire::ServiceError, s::service_error();
    service_error_codes_conform: "ServiceErrorCode" => wire::ServiceErrorCode, s::service_error_code();
    throttling_bodies_conform: "ThrottlingError" => wire::ThrottlingError, s::throttling();
    locales_conform: "Locale" => wire::Locale, s::locale();
    application_names_conform: "ApplicationName" => wire::ApplicationName, s::application_name();
}

#[test]
fn a_spec_change_the_code_does_not_follow_fails_naming_schema_and_field() {
    // Guards the properties above: with `isEligible` retyped in the spec, the strategy's JSON is
    // refused and the message names the schema and the field.
    let mut spec = spec::spec();
    spec["components"]["schemas"]["ProductUpgradesEligibility"]["properties"]["isEligible"] =
        serde_json::json!({ "type": "string" });
    let validator = spec::component_validator(&spec, "ProductUpgradesEligibility");
    let json = serde_json::json!({
        "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969", "productFamily": "Azure", "isEligible": true
    });
    let violations = spec::violations(&validator, &json);
    assert!(
        violations.iter().any(|v| v.contains("/isEligible")),
        "{violations:?}"
    );
}
