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

type Validators = HashMap<String, (Arc<jsonschema::Validator>, Arc<jsonschema::Validator>)>;

/// The spec, read and parsed once for the whole suite (not once per case).
static SPEC: LazyLock<Value> = LazyLock::new(spec::spec);

static VALIDATORS: LazyLock<Mutex<Validators>> = LazyLock::new(Default::default);

/// The spec's validator and the schemars-derived validator for `schema`, built once.
fn validators<T: schemars::JsonSchema>(
    schema: &str,
) -> (Arc<jsonschema::Validator>, Arc<jsonschema::Validator>) {
    let mut cache = VALIDATORS.lock().unwrap();
    cache
        .entry(schema.to_owned())
        .or_insert_with(|| validators_for::<T>(&SPEC, schema))
        .clone()
}

fn validators_for<T: schemars::JsonSchema>(
    spec: &Value,
    schema: &str,
) -> (Arc<jsonschema::Validator>, Arc<jsonschema::Validator>) {
    let from_spec = spec::component_validator(spec, schema);
    let derived = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    let from_rust = jsonschema::options()
        .should_validate_formats(true)
        .build(&derived)
        .unwrap_or_else(|e| panic!("schemars' schema for {schema} does not compile: {e}"));
    (Arc::new(from_spec), Arc::new(from_rust))
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
    conforms_to::<T>(&SPEC, &from_spec, &from_rust, schema, json, field, wrong)
}

/// [`conforms`] against a given spec and its validators.
fn conforms_to<T>(
    spec: &Value,
    from_spec: &jsonschema::Validator,
    from_rust: &jsonschema::Validator,
    schema: &str,
    json: &Value,
    field: usize,
    wrong: &Value,
) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let refused = spec::violations(from_spec, json);
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
    let broken = spec::violations(from_spec, &again);
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

    let required = &spec["components"]["schemas"][schema]["required"];
    let (mutated, changed) = mutate(json, field, wrong, required);
    for candidate in [json.clone(), again, mutated] {
        let spec_accepts = from_spec.is_valid(&candidate);
        // The schema schemars derives cannot see validation typify puts in `TryFrom` (lengths,
        // patterns), so the Rust side accepts what its schema accepts *and* its deserializer does.
        let rust_accepts = from_rust.is_valid(&candidate)
            && serde_json::from_value::<T>(candidate.clone()).is_ok();
        if spec_accepts != rust_accepts {
            let says = |yes: bool| if yes { "accepts" } else { "refuses" };
            return Err(fail(format!(
                "{schema}: the Rust types and the spec drifted apart: the spec {} and the Rust type {} \
                 this JSON (field {changed:?} changed to {wrong} or removed):\n{candidate}",
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
fn mutate(json: &Value, field: usize, wrong: &Value, required: &Value) -> (Value, String) {
    let mut json = json.clone();
    let mut changed = String::from("(the whole value)");
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
            changed = key.clone();
            if field.is_multiple_of(2) || (wrong.is_null() && !is_required) {
                map.remove(&key);
            } else {
                map.insert(key, wrong.clone());
            }
        }
        _ => json = wrong.clone(),
    }
    (json, changed)
}

macro_rules! schema_properties {
    ($($test:ident: $schema:literal => $ty:ty, $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(crate::support::proptest_config(64))]
            $(
                #[test]
                fn $test(json in $strategy, field in any::<usize>(), wrong in s::wrong_value()) {
                    conforms::<$ty>($schema, &json, field, &wrong)?;
                }
            )*
        }

        /// The one table from a schema's name to its Rust type, also used by `examples`:
        /// deserializes `value` as the type for schema `name` and serializes it again.
        pub fn through_generated_type(name: &str, value: &Value) -> Result<Value, String> {
            fn round<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
                let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                serde_json::to_value(&typed).map_err(|e| e.to_string())
            }
            match name {
                $($schema => round::<$ty>(value),)*
                other => Err(format!(
                    "schema {other} has no generated type listed in tests/it/props.rs: add it"
                )),
            }
        }

        /// Every component schema in the spec has a property above.
        #[test]
        fn every_schema_in_the_spec_has_a_property() {
            let covered = [$($schema),*];
            let missing: Vec<&String> = SPEC["components"]["schemas"]
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
    // Guards the properties above by running the same check on a spec the code no longer
    // follows. `reason` made required in the spec: the Rust type still accepts an eligibility
    // answer without it, so removing it (an even `field` removes) is drift, named by schema and
    // field.
    let mut changed = SPEC.clone();
    changed["components"]["schemas"]["ProductUpgradesEligibility"]["required"] =
        serde_json::json!(["customerId", "productFamily", "isEligible", "reason"]);
    let (from_spec, from_rust) =
        validators_for::<wire::ProductUpgradesEligibility>(&changed, "ProductUpgradesEligibility");
    let json = serde_json::json!({
        "customerId": "4c721420-72ad-4708-a0a7-371a2f7b0969",
        "productFamily": "Azure",
        "isEligible": false,
        "reason": "no Azure subscriptions",
        "upgradeId": ""
    });
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    let reason = keys.iter().position(|k| *k == "reason").unwrap();
    // A `field` that picks `reason` and is even, which `mutate` reads as "remove it".
    let field = (0..)
        .find(|f: &usize| f % keys.len() == reason && f.is_multiple_of(2))
        .unwrap();

    let verdict = conforms_to::<wire::ProductUpgradesEligibility>(
        &changed,
        &from_spec,
        &from_rust,
        "ProductUpgradesEligibility",
        &json,
        field,
        &Value::Null,
    );

    let message = verdict
        .expect_err("drift must fail the property")
        .to_string();
    assert!(message.contains("ProductUpgradesEligibility"), "{message}");
    assert!(message.contains("\"reason\""), "{message}");
    assert!(message.contains("drifted apart"), "{message}");
    // And with the real spec the same JSON and mutation pass.
    conforms::<wire::ProductUpgradesEligibility>(
        "ProductUpgradesEligibility",
        &json,
        field,
        &Value::Null,
    )
    .expect("no drift against the real spec");
}
