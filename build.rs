//! Generates the Partner Center client from the spec into `OUT_DIR/codegen.rs`.
//!
//! All settings live in `codegen.rs`, which `cargo xtask codegen` shares.

#[path = "codegen.rs"]
mod codegen;

fn main() {
    println!("cargo::rerun-if-changed={}", codegen::SPEC_PATH);
    println!("cargo::rerun-if-changed=codegen.rs");
    let spec = match std::fs::read_to_string(codegen::SPEC_PATH) {
        Ok(spec) => spec,
        Err(e) => fail(&format!("cannot read {}: {e}", codegen::SPEC_PATH)),
    };
    // Cargo runs the build script once per feature set, and says whether `wire` is on.
    let build = codegen::Build::for_wire_feature(std::env::var_os("CARGO_FEATURE_WIRE").is_some());
    let code = codegen::generate(&spec, build).unwrap_or_else(|message| fail(&message));
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("codegen.rs");
    if let Err(e) = std::fs::write(&out, code) {
        fail(&format!("cannot write {}: {e}", out.display()));
    }
}

fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    std::process::exit(1);
}
