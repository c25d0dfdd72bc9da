//! The one place the client-generation settings live.
//!
//! `build.rs` includes this file to generate the client into `OUT_DIR`, and the xtask includes the
//! same file to write and check the committed review copy, so both can never disagree. It takes
//! the spec's text and returns formatted Rust source, or an error message that names the problem:
//! progenitor reports some spec problems by panicking, and a build script should say what is
//! wrong, not print a backtrace.

use std::panic::{self, AssertUnwindSafe};

use openapiv3::{OpenAPI, ReferenceOr, StatusCode};

/// Where the spec lives, relative to the library package's root.
pub const SPEC_PATH: &str = "openapi/product-upgrades.yaml";

/// Which build the code is generated for: the derives differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The library as users build it: no `schemars` in the dependency graph.
    Library,
    /// With the `wire` feature, as the tests build it: the generated types also derive
    /// `schemars::JsonSchema`. The review copy (`generated/client.rs`) shows this variant.
    Wire,
}

impl Build {
    /// The variant for a build script's feature set (`CARGO_FEATURE_WIRE` set or not).
    pub fn for_wire_feature(wire: bool) -> Self {
        if wire { Build::Wire } else { Build::Library }
    }
}

/// Generates the client's source code from the spec's YAML text.
pub fn generate(spec_yaml: &str, build: Build) -> Result<String, String> {
    let mut spec: OpenAPI = yaml_serde::from_str(spec_yaml)
        .map_err(|e| format!("{SPEC_PATH} is not a valid OpenAPI 3.0 document: {e}"))?;
    check_operation_ids(&spec)?;
    check_one_success_body(&spec)?;
    raw_error_bodies(&mut spec);

    let mut settings = progenitor::GenerationSettings::new();
    settings
        .with_interface(progenitor::InterfaceStyle::Positional)
        .with_tag(progenitor::TagStyle::Merged)
        // The hand-written `transport` module implements the hooks: it attaches the token and
        // removes the `api-version` header progenitor adds to every request, which Partner Center
        // does not define.
        .with_hooks(progenitor::HooksMode::Expected)
        .with_inner_type(quote::quote! { crate::transport::CallContext })
        // Equality lets the property suite check that round trips are lossless.
        .with_derive("PartialEq")
        // Status values are an open set: a hand-written enum with an `Unknown(String)` variant
        // keeps an unfamiliar value from failing the whole response.
        .with_replacement(
            "UpgradeStatus",
            "crate::status::UpgradeStatus",
            [progenitor::TypeImpl::Display, progenitor::TypeImpl::FromStr].into_iter(),
        );

    if build == Build::Wire {
        // The JSON Schema derive lets the property suite check that the Rust types accept exactly
        // what the spec accepts. Only the `wire` build asks for it, so the library's normal build
        // does not carry `schemars`.
        settings.with_derive("schemars::JsonSchema");
    }

    // progenitor panics on some unsupported shapes (for example two error body types for one
    // operation); catch that and report it as a message naming the spec.
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let generated = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut generator = progenitor::Generator::new(&settings);
        generator.generate_tokens(&spec).map_err(|e| e.to_string())
    }));
    panic::set_hook(previous_hook);

    let tokens = match generated {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(message)) => return Err(format!("progenitor rejected {SPEC_PATH}: {message}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            return Err(format!(
                "progenitor could not generate a client from {SPEC_PATH}: {message}"
            ));
        }
    };
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| format!("progenitor produced code that does not parse: {e}"))?;
    Ok(prettyplease::unparse(&file))
}

/// Every operation needs a unique `operationId`: progenitor names the methods after them.
fn check_operation_ids(spec: &OpenAPI) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in spec.paths.iter() {
        let ReferenceOr::Item(item) = item else {
            return Err(format!(
                "{SPEC_PATH}: path {path} is a $ref; write it out in place"
            ));
        };
        for (method, operation) in item.iter() {
            let Some(id) = operation.operation_id.as_deref() else {
                return Err(format!("{SPEC_PATH}: {method} {path} has no operationId"));
            };
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                return Err(format!(
                    "{SPEC_PATH}: operationId {id} is used by both {other} and {method} {path}"
                ));
            }
        }
    }
    Ok(())
}

/// progenitor supports one success body type per operation and asserts on more; say which
/// operation breaks that, and with which status codes.
fn check_one_success_body(spec: &OpenAPI) -> Result<(), String> {
    for (path, method, operation) in spec.operations() {
        let mut bodies = std::collections::BTreeMap::new();
        for (status, response) in &operation.responses.responses {
            let success = match status {
                StatusCode::Code(code) => (200..300).contains(code),
                StatusCode::Range(range) => *range == 2,
            };
            let ReferenceOr::Item(response) = response else {
                continue;
            };
            if let (true, Some(media)) = (success, response.content.get("application/json")) {
                let body = format!("{:?}", media.schema);
                bodies
                    .entry(body)
                    .or_insert_with(Vec::new)
                    .push(status.to_string());
            }
        }
        if bodies.len() > 1 {
            let codes: Vec<String> = bodies.into_values().flatten().collect();
            return Err(format!(
                "{SPEC_PATH}: {method} {path} declares different bodies for its success responses \
                 ({}); the generated client supports one success body per operation",
                codes.join(", ")
            ));
        }
    }
    Ok(())
}

/// Hands error bodies to the hand-written layer as raw bytes.
///
/// The spec describes each error status with its real body (`ServiceError`, or `ThrottlingError`
/// for 429). progenitor accepts one error body type per operation, and when a typed error body is
/// empty or not JSON it drops the status code. Partner Center's gateways answer 5xx with empty or
/// HTML bodies, so the `error` module reads the bytes and parses them itself, keeping the status
/// and headers. The error schemas still become generated types that the parser uses.
fn raw_error_bodies(spec: &mut OpenAPI) {
    for (_, item) in spec.paths.paths.iter_mut() {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let is_error = match status {
                    StatusCode::Code(code) => *code >= 400,
                    StatusCode::Range(range) => *range >= 4,
                };
                if is_error {
                    let mut raw = openapiv3::Response {
                        description: "error body, parsed by the hand-written layer".into(),
                        ..Default::default()
                    };
                    raw.content.insert(
                        "application/octet-stream".into(),
                        openapiv3::MediaType::default(),
                    );
                    *response = ReferenceOr::Item(raw);
                }
            }
        }
    }
}
