//! Plausible answers: every shape a real Partner Center answer could take that the one published
//! example does not show (offset-less and .NET "no date" timestamps, 0 to 7 fractional digits,
//! numeric error codes, `null`s, missing optional fields, empty or nil upgrade ids, odd casing,
//! unknown fields, unpublished status names). Each must be valid against the spec's own schema
//! (so every language's generated client accepts it) and must come through the generated client
//! and the public types as a typed value, never an `InvalidResponse`.

use chrono::{TimeZone, Utc};
use partner_center_upgrades::{
    Eligibility, Finish, ServiceErrorCode, Upgrade, UpgradeId, UpgradeStatus,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, CUSTOMER, UPGRADE, spec};

/// A completed line item as published, with `changes` merged in (`null` removes a field).
fn line_item(changes: Value) -> Value {
    let mut item = json!({
        "sourceProduct": { "id": "b1beb621-3cad-4d7a-b360-62db33ce028e", "name": "AzureSubscription" },
        "targetProduct": { "id": "d231908e-31c1-de0e-027b-bc5ce11f09d9", "name": "Microsoft Azure plan" },
        "upgradedDate": "2019-08-29T23:47:28.8524555Z",
        "status": "Completed"
    });
    merge(&mut item, changes);
    item
}

/// The published status answer with `changes` merged in.
fn status_answer(changes: Value) -> Value {
    let mut answer = json!({
        "id": UPGRADE,
        "status": "Completed",
        "productFamily": "Azure",
        "lineItems": [line_item(json!({}))]
    });
    merge(&mut answer, changes);
    answer
}

/// Sets each field of `changes` on `target`; the string `"<absent>"` removes it.
fn merge(target: &mut Value, changes: Value) {
    let (Value::Object(target), Value::Object(changes)) = (target, changes) else {
        panic!("merge takes objects");
    };
    for (key, value) in changes {
        if value == json!("<absent>") {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

type Check<T> = fn(&T);

fn date(text: &str) -> Value {
    status_answer(json!({ "lineItems": [line_item(json!({ "upgradedDate": text }))] }))
}

fn first_date(upgrade: &Upgrade) -> Option<chrono::DateTime<Utc>> {
    upgrade.line_items[0].upgraded_date
}

fn status_table() -> Vec<(&'static str, Value, Check<Upgrade>)> {
    vec![
        ("the published example", status_answer(json!({})), |u| {
            assert_eq!(u.finished(), Some(Finish::Completed));
            assert_eq!(first_date(u).unwrap().timestamp_subsec_nanos(), 852_455_500);
        }),
        (
            "a date without an offset is UTC",
            date("2017-07-25T18:07:36"),
            |u| {
                assert_eq!(
                    first_date(u),
                    Some(Utc.with_ymd_and_hms(2017, 7, 25, 18, 7, 36).unwrap())
                );
            },
        ),
        (
            "the .NET no-date value means none",
            date("0001-01-01T00:00:00"),
            |u| {
                assert_eq!(first_date(u), None);
                assert_eq!(
                    u.line_items[0].upgraded_date_text.as_deref(),
                    Some("0001-01-01T00:00:00")
                );
            },
        ),
        ("no fractional digits", date("2019-08-29T23:47:28Z"), |u| {
            assert_eq!(first_date(u).unwrap().timestamp_subsec_nanos(), 0);
        }),
        (
            "one fractional digit",
            date("2019-08-29T23:47:28.5Z"),
            |u| {
                assert_eq!(first_date(u).unwrap().timestamp_subsec_nanos(), 500_000_000);
            },
        ),
        (
            "three fractional digits",
            date("2019-08-29T23:47:28.123Z"),
            |u| {
                assert_eq!(first_date(u).unwrap().timestamp_subsec_nanos(), 123_000_000);
            },
        ),
        (
            "seven fractional digits without an offset",
            date("2019-01-09T00:21:45.9263727"),
            |u| {
                assert_eq!(first_date(u).unwrap().timestamp_subsec_nanos(), 926_372_700);
            },
        ),
        (
            "a positive offset",
            date("2019-08-30T01:47:28+02:00"),
            |u| {
                assert_eq!(
                    first_date(u),
                    Some(Utc.with_ymd_and_hms(2019, 8, 29, 23, 47, 28).unwrap())
                );
            },
        ),
        ("a null date", date_null(), |u| {
            assert_eq!(first_date(u), None)
        }),
        (
            "a line item with only a status",
            status_answer(
                json!({ "status": "InProgress", "lineItems": [{ "status": "InProgress" }] }),
            ),
            |u| {
                let line = &u.line_items[0];
                assert!(line.source_product.is_none() && line.target_product.is_none());
                assert_eq!(u.finished(), None);
            },
        ),
        (
            "products without id or name, and explicit nulls",
            status_answer(json!({ "lineItems": [line_item(json!({
                "sourceProduct": { "id": null },
                "targetProduct": {},
                "errorDetails": null,
                "attributes": null
            }))] })),
            |u| {
                let line = &u.line_items[0];
                assert_eq!(line.source_product.as_ref().unwrap().id, None);
                assert_eq!(line.target_product.as_ref().unwrap().name, None);
            },
        ),
        (
            "lineItems is null",
            status_answer(json!({ "lineItems": null })),
            |u| {
                assert!(u.line_items.is_empty());
            },
        ),
        (
            "lineItems is absent",
            status_answer(json!({ "lineItems": "<absent>" })),
            |u| {
                assert!(u.line_items.is_empty());
                assert_eq!(u.finished(), Some(Finish::Completed));
            },
        ),
        (
            "a numeric error-details code",
            status_answer(
                json!({ "status": "Failed", "errorDetails": { "code": 900120, "description": "no" } }),
            ),
            |u| {
                let code = u.error_details.as_ref().unwrap().code.clone();
                assert_eq!(code, Some(ServiceErrorCode::Number(900120)));
                assert_eq!(u.finished(), Some(Finish::Failed));
            },
        ),
        (
            "a string error-details code with message instead of description",
            status_answer(
                json!({ "status": "Failed", "errorDetails": { "code": "900120", "message": "no" } }),
            ),
            |u| {
                let details = u.error_details.as_ref().unwrap();
                assert_eq!(details.code, Some(ServiceErrorCode::Text("900120".into())));
                assert_eq!(details.text(), Some("no"));
            },
        ),
        (
            "unknown extra fields everywhere",
            status_answer(json!({
                "futureField": { "nested": [1, 2] },
                "lineItems": [line_item(json!({ "subscriptionName": "Contoso dev" }))]
            })),
            |u| assert_eq!(u.status, UpgradeStatus::Completed),
        ),
        (
            "odd casing of the status",
            status_answer(json!({ "status": "COMPLETED" })),
            |u| {
                assert_eq!(u.status, UpgradeStatus::Completed);
            },
        ),
        (
            "lower-case product family",
            status_answer(json!({ "productFamily": "azure" })),
            |u| {
                assert_eq!(u.product_family.as_str(), "azure");
            },
        ),
        (
            "Complete",
            status_answer(json!({ "status": "Complete" })),
            |u| {
                assert_eq!(u.finished(), Some(Finish::Completed));
            },
        ),
        (
            "PartiallyComplete",
            status_answer(json!({ "status": "PartiallyComplete" })),
            |u| {
                assert_eq!(u.finished(), Some(Finish::PartiallyCompleted));
            },
        ),
        (
            "Canceled",
            status_answer(json!({ "status": "Canceled" })),
            |u| {
                assert_eq!(u.finished(), Some(Finish::Cancelled));
            },
        ),
        ("Error", status_answer(json!({ "status": "Error" })), |u| {
            assert_eq!(u.finished(), Some(Finish::Failed));
        }),
        (
            "an unknown status whose line items are all finished",
            status_answer(json!({ "status": "Finalizing" })),
            |u| {
                assert_eq!(u.status, UpgradeStatus::Unknown("Finalizing".into()));
                assert_eq!(u.finished(), Some(Finish::Completed));
            },
        ),
        (
            "an unknown status with top-level error details",
            status_answer(json!({ "status": "Finalizing", "errorDetails": { "code": 900120 } })),
            |u| assert_eq!(u.finished(), Some(Finish::Failed)),
        ),
        (
            "an unknown status with line items still running",
            status_answer(json!({
                "status": "Migrating",
                "lineItems": [line_item(json!({})), line_item(json!({ "status": "InProgress", "upgradedDate": null }))]
            })),
            |u| assert_eq!(u.finished(), None),
        ),
    ]
}

fn date_null() -> Value {
    status_answer(json!({ "lineItems": [line_item(json!({ "upgradedDate": null }))] }))
}

fn eligibility_table() -> Vec<(&'static str, Value, Check<Eligibility>)> {
    let base = |changes: Value| {
        let mut answer =
            json!({ "customerId": CUSTOMER, "productFamily": "azure", "isEligible": true });
        merge(&mut answer, changes);
        answer
    };
    vec![
        ("the published example", base(json!({})), |e| {
            assert!(e.is_eligible && e.upgrade_id.is_none());
        }),
        (
            "an empty upgrade id means none",
            base(json!({ "upgradeId": "" })),
            |e| {
                assert_eq!(e.upgrade_id, None);
            },
        ),
        (
            "the nil GUID means none",
            base(json!({ "upgradeId": "00000000-0000-0000-0000-000000000000" })),
            |e| assert_eq!(e.upgrade_id, None),
        ),
        (
            "a null upgrade id and reason",
            base(json!({ "upgradeId": null, "reason": null })),
            |e| {
                assert_eq!((e.upgrade_id, e.reason.as_deref()), (None, None));
            },
        ),
        (
            "an upper-case braced upgrade id",
            base(
                json!({ "isEligible": false, "upgradeId": "{42D075A4-BFE7-43E7-AF6D-7C68A57EDCB4}" }),
            ),
            |e| assert_eq!(e.upgrade_id, Some(UpgradeId::parse(UPGRADE).unwrap())),
        ),
        (
            "null attributes and unknown fields",
            base(json!({ "attributes": null, "eligibilityCheckedAt": "2026-01-01T00:00:00" })),
            |e| assert!(e.attributes.is_none()),
        ),
        (
            "attributes in the resource style",
            base(
                json!({ "attributes": { "objectType": "ProductUpgradesEligibility", "etag": null } }),
            ),
            |e| {
                let attributes = e.attributes.as_ref().unwrap();
                assert_eq!(
                    attributes.object_type.as_deref(),
                    Some("ProductUpgradesEligibility")
                );
            },
        ),
    ]
}

fn schema_violations(schema: &str, value: &Value) -> Vec<String> {
    let spec = spec::spec();
    let validator = spec::component_validator(&spec, schema);
    spec::violations(&validator, value)
}

#[tokio::test]
async fn plausible_status_answers_are_valid_and_become_typed_values() {
    let mut failures = Vec::new();
    for (name, answer, check) in status_table() {
        let violations = schema_violations("ProductUpgradesStatus", &answer);
        if !violations.is_empty() {
            failures.push(format!("{name}: the spec rejects it: {violations:?}"));
            continue;
        }
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/v1/productUpgrades/{UPGRADE}/status")))
            .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
            .mount(&server)
            .await;
        let client = support::client(&server);
        let upgrade_id = UpgradeId::parse(UPGRADE).unwrap();
        match client
            .get_upgrade_status(upgrade_id, &support::azure_request())
            .await
        {
            Ok(upgrade) => check(upgrade.value()),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn plausible_eligibility_answers_are_valid_and_become_typed_values() {
    let mut failures = Vec::new();
    for (name, answer, check) in eligibility_table() {
        let violations = schema_violations("ProductUpgradesEligibility", &answer);
        if !violations.is_empty() {
            failures.push(format!("{name}: the spec rejects it: {violations:?}"));
            continue;
        }
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/productUpgrades/eligibility"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
            .mount(&server)
            .await;
        let client = support::client(&server);
        match client.check_eligibility(&support::azure_request()).await {
            Ok(eligibility) => check(eligibility.value()),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn an_answer_that_says_the_upgrade_is_over_ends_the_wait_at_the_first_poll() {
    for status in ["Finalizing", "PartiallyComplete", "Canceled", "Error"] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/v1/productUpgrades/{UPGRADE}/status")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(status_answer(json!({ "status": status }))),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = support::client(&server);
        let options = partner_center_upgrades::PollOptions::default();
        let upgrade = client
            .wait_for_completion(
                UpgradeId::parse(UPGRADE).unwrap(),
                &support::azure_request(),
                &options,
                |_| {},
            )
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert!(upgrade.finished().is_some(), "{status}");
    }
}

#[test]
fn the_spec_still_rejects_what_no_source_allows() {
    // Guards the tables above: tolerance must not become "anything goes".
    let table: &[(&str, Value)] = &[
        ("a malformed date", date("yesterday")),
        (
            "a status that is not a string",
            status_answer(json!({ "status": 3 })),
        ),
        ("no status", status_answer(json!({ "status": "<absent>" }))),
        (
            "an upgrade id that is not a GUID",
            status_answer(json!({ "id": "42" })),
        ),
        (
            "lineItems that is not an array",
            status_answer(json!({ "lineItems": {} })),
        ),
    ];
    for (name, answer) in table {
        assert!(
            !schema_violations("ProductUpgradesStatus", answer).is_empty(),
            "{name} was accepted"
        );
    }
    let not_a_guid = json!({ "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": false, "upgradeId": "none" });
    assert!(!schema_violations("ProductUpgradesEligibility", &not_a_guid).is_empty());
}
