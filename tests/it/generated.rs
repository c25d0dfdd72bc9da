//! The committed review copy of the generated client (`generated/client.rs`) is exactly what
//! `build.rs` generated for this build, so a spec change shows up in review as a Rust diff.

#[test]
fn the_review_copy_of_the_generated_client_is_fresh() {
    let built = include_str!(concat!(env!("OUT_DIR"), "/codegen.rs"));
    let copy_path = concat!(env!("CARGO_MANIFEST_DIR"), "/generated/client.rs");
    let copy = std::fs::read_to_string(copy_path).unwrap_or_default();
    let body = copy.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
    assert!(
        body == built,
        "generated/client.rs is stale for openapi/product-upgrades.yaml; run `cargo xtask codegen` and commit the result"
    );
}
