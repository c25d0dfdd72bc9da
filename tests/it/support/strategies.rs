//! proptest strategies for every schema in the spec, producing the JSON the spec allows,
//! edges included: absent and `null` optional fields, unknown extra fields, status values in odd
//! casing and unknown ones, integer and string error codes, timestamps with 0–7 fractional
//! digits and any offset.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A GUID in lower or upper case.
pub fn guid() -> impl Strategy<Value = String> {
    (any::<u128>(), any::<bool>()).prop_map(|(n, upper)| {
        let id = uuid::Uuid::from_u128(n).to_string();
        if upper { id.to_uppercase() } else { id }
    })
}

/// An RFC 3339 timestamp with 0 to 7 fractional digits and a `Z` or numeric offset.
pub fn timestamp() -> impl Strategy<Value = String> {
    (
        0i64..4_102_444_800, // 1970 to 2100
        0u32..=7,
        0u32..10_000_000,
        prop_oneof![
            Just(None),
            (-14i32..=14, prop_oneof![Just(0), Just(30), Just(45)]).prop_map(Some)
        ],
    )
        .prop_map(|(seconds, digits, ticks, offset)| {
            let at = chrono::DateTime::from_timestamp(seconds, 0).expect("in range");
            let fraction = if digits == 0 {
                String::new()
            } else {
                format!(".{:07}", ticks)[..=digits as usize].to_owned()
            };
            let zone = match offset {
                None => "Z".to_owned(),
                Some((hours, minutes)) => {
                    format!(
                        "{}{:02}:{minutes:02}",
                        if hours < 0 { '-' } else { '+' },
                        hours.abs()
                    )
                }
            };
            format!("{}{fraction}{zone}", at.format("%Y-%m-%dT%H:%M:%S"))
        })
}

/// Any text, including empty, non-ASCII and JSON-special characters.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 .,:'-]{1,40}",
        any::<String>().prop_map(|s| s.chars().take(60).collect()),
    ]
}

/// A status: a known value in its canonical spelling or in odd casing, or an unknown value.
pub fn status() -> impl Strategy<Value = Value> {
    let known = prop_oneof![
        Just("Pending"),
        Just("InProgress"),
        Just("Completed"),
        Just("Failed")
    ];
    prop_oneof![
        known.clone().prop_map(|s| json!(s)),
        (known, any::<u64>()).prop_map(|(s, mask)| {
            json!(
                s.chars()
                    .enumerate()
                    .map(|(i, c)| if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    })
                    .collect::<String>()
            )
        }),
        Just(json!("in_progress")),
        text().prop_map(|s| json!(s)),
    ]
}

/// A product family: `Azure` in any casing, or another non-empty name.
pub fn family() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("Azure")),
        Just(json!("azure")),
        Just(json!("AZURE")),
        "[A-Za-z][A-Za-z0-9 ]{0,20}".prop_map(|s| json!(s)),
    ]
}

/// Unknown fields a newer server might add; names that no schema uses.
fn extras() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "futureField[A-Z][a-z]{0,6}",
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(json!({ "nested": [1, "two", null] })),
        ],
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
}

/// An object of `required` fields, `optional` ones (each absent or present), and unknown extras.
fn object(
    required: Vec<(&'static str, BoxedStrategy<Value>)>,
    optional: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Value> {
    let required = required
        .into_iter()
        .map(|(name, s)| s.prop_map(move |v| (name, Some(v))).boxed())
        .collect::<Vec<_>>();
    let optional = optional
        .into_iter()
        .map(|(name, s)| prop::option::of(s).prop_map(move |v| (name, v)).boxed())
        .collect::<Vec<_>>();
    (required, optional, extras())
        .prop_map(|(required, optional, extras)| {
            let mut map = extras;
            for (name, value) in required.into_iter().chain(optional) {
                if let Some(value) = value {
                    map.insert(name.to_owned(), value);
                }
            }
            Value::Object(map)
        })
        .boxed()
}

fn nullable(strategy: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 3 => strategy].boxed()
}

fn string(s: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    s.prop_map(Value::from).boxed()
}

pub fn resource_attributes() -> BoxedStrategy<Value> {
    object(
        vec![],
        vec![("etag", string(text())), ("objectType", string(text()))],
    )
}

pub fn request() -> BoxedStrategy<Value> {
    object(
        vec![
            ("customerId", string(guid())),
            ("productFamily", family().boxed()),
        ],
        vec![],
    )
}

pub fn eligibility() -> BoxedStrategy<Value> {
    object(
        vec![
            ("customerId", string(guid())),
            ("productFamily", family().boxed()),
            ("isEligible", any::<bool>().prop_map(Value::from).boxed()),
        ],
        vec![
            ("upgradeId", nullable(string(guid()))),
            ("reason", nullable(string(text()))),
            ("attributes", resource_attributes()),
        ],
    )
}

pub fn error_details() -> BoxedStrategy<Value> {
    object(
        vec![],
        vec![
            ("code", string(prop_oneof!["9[0-9]{5}", text()])),
            ("description", string(text())),
            ("message", string(text())),
            ("attributes", resource_attributes()),
        ],
    )
}

pub fn product() -> BoxedStrategy<Value> {
    object(
        vec![
            ("id", string(prop_oneof![guid().boxed(), text().boxed()])),
            ("name", string(text())),
        ],
        vec![("attributes", resource_attributes())],
    )
}

pub fn line_item() -> BoxedStrategy<Value> {
    object(
        vec![
            ("sourceProduct", product()),
            ("targetProduct", product()),
            ("status", status().boxed()),
        ],
        vec![
            ("upgradedDate", nullable(string(timestamp()))),
            ("errorDetails", error_details()),
            ("attributes", resource_attributes()),
        ],
    )
}

pub fn upgrade_status() -> BoxedStrategy<Value> {
    object(
        vec![
            ("id", string(guid())),
            ("productFamily", family().boxed()),
            ("status", status().boxed()),
        ],
        vec![
            (
                "lineItems",
                prop::collection::vec(line_item(), 0..4)
                    .prop_map(Value::from)
                    .boxed(),
            ),
            ("errorDetails", error_details()),
            ("attributes", resource_attributes()),
        ],
    )
}

pub fn service_error_code() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (400i64..1_000_000).prop_map(Value::from),
        string(text()),
    ]
    .boxed()
}

pub fn service_error() -> BoxedStrategy<Value> {
    object(
        vec![
            ("code", service_error_code()),
            ("description", string(text())),
        ],
        vec![
            (
                "data",
                prop::collection::vec(
                    prop_oneof![
                        string(text()),
                        any::<i64>().prop_map(Value::from).boxed(),
                        Just(Value::Null).boxed()
                    ],
                    0..3,
                )
                .prop_map(Value::from)
                .boxed(),
            ),
            ("source", string(text())),
        ],
    )
}

pub fn throttling() -> BoxedStrategy<Value> {
    object(
        vec![
            ("statusCode", (0i32..1000).prop_map(Value::from).boxed()),
            ("message", string(text())),
        ],
        vec![],
    )
}

pub fn locale() -> BoxedStrategy<Value> {
    string("[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,2}")
}

pub fn application_name() -> BoxedStrategy<Value> {
    string("[A-Za-z0-9 ._-]{1,256}")
}

/// A wrong value for a field: another JSON type than any the spec allows there.
pub fn wrong_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(12345)),
        Just(json!(true)),
        Just(json!(["list"])),
        Just(json!({ "object": 1 })),
        Just(json!("not-a-guid-or-date")),
        Just(json!("")),
        Just(Value::Null),
    ]
}
