//! The committed review copy of the generated client (`generated/client.rs`) is exactly what
//! `build.rs` generated for this build, so a spec change shows up in review as a Rust diff.
//!
//! "Fresh" is decided by `review_copy.rs`, the same check as `cargo xtask codegen --check`.

#[path = "../../review_copy.rs"]
mod review_copy;

/// What build.rs generated for this build (the tests turn on `wire`, the variant the copy shows).
const BUILT: &str = include_str!(concat!(env!("OUT_DIR"), "/codegen.rs"));

fn committed_copy() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(review_copy::PATH);
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_review_copy_of_the_generated_client_is_fresh() {
    let copy = committed_copy();
    assert!(
        review_copy::is_fresh(&copy, BUILT),
        "{} is stale for openapi/product-upgrades.yaml (first difference at line {}); run `{}` and commit the result",
        review_copy::PATH,
        review_copy::first_difference(&copy, BUILT).unwrap_or_default(),
        review_copy::FIX,
    );
}

#[test]
fn a_crlf_checkout_of_the_review_copy_still_counts_as_fresh() {
    // What a Windows checkout with `core.autocrlf` holds.
    let crlf = committed_copy().replace("\r\n", "\n").replace('\n', "\r\n");
    assert!(crlf.contains("\r\n"));
    assert!(review_copy::is_fresh(&crlf, BUILT));
    assert_eq!(review_copy::first_difference(&crlf, BUILT), None);
}

#[test]
fn a_copy_that_differs_in_its_code_is_stale_and_names_the_line() {
    let copy = review_copy::contents(BUILT);
    let line = copy.lines().position(|l| l.contains("pub struct")).unwrap() + 1;
    let edited = copy.replacen("pub struct", "pub(crate) struct", 1);
    assert!(!review_copy::is_fresh(&edited, BUILT));
    assert_eq!(review_copy::first_difference(&edited, BUILT), Some(line));
}
