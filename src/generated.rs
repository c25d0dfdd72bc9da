//! The one door to the code progenitor generates from `openapi/product-upgrades.yaml`.
//!
//! Nothing outside this crate sees these types: the public API uses the hand-written types in
//! `model`, `error` and `ids`. `build.rs` writes the code; `codegen.rs` holds the settings.

#![allow(
    missing_docs,
    unused_imports,
    dead_code,
    reason = "generated code: its docs come from the spec's descriptions, which the spec checks cover"
)]
#![allow(
    clippy::all,
    clippy::pedantic,
    reason = "generated code is not hand-edited"
)]

include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
