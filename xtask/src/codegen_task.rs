//! `cargo xtask codegen`: the committed review copy of the generated client.
//!
//! `generated/client.rs` is what `build.rs` generates from the spec, produced here by the same
//! `codegen.rs`, so a spec change shows up in review as a diff of the Rust it produces.
//! `--check` (and `cargo test`) fail when the copy is stale.

use std::path::{Path, PathBuf};

#[path = "../../codegen.rs"]
#[allow(dead_code, reason = "shared with build.rs, which uses every item")]
mod codegen;

#[path = "../../review_copy.rs"]
mod review_copy;

/// The command that refreshes the copy.
pub const FIX: &str = review_copy::FIX;

/// Options of `cargo xtask codegen`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Only check that the copy is fresh; change nothing.
    #[arg(long)]
    pub check: bool,
}

/// Where the review copy lives.
pub fn copy_path(root: &Path) -> PathBuf {
    root.join(review_copy::PATH)
}

/// The generated code the review copy must hold: the `wire` build's, which is the one the tests
/// compile and compare it with.
fn generated(root: &Path) -> Result<String, String> {
    let spec = std::fs::read_to_string(root.join(codegen::SPEC_PATH))
        .map_err(|e| format!("cannot read {}: {e}", codegen::SPEC_PATH))?;
    codegen::generate(&spec, codegen::Build::Wire)
}

/// `None` when the committed copy matches the spec; otherwise what is wrong and how to fix it.
pub fn stale(root: &Path) -> Result<Option<String>, String> {
    let generated = generated(root)?;
    let path = copy_path(root);
    match std::fs::read_to_string(&path) {
        Ok(actual) => Ok(review_copy::first_difference(&actual, &generated).map(|line| {
            format!(
                "{} is stale for the spec (first difference at line {line}); run `{FIX}` and commit the result",
                path.display(),
            )
        })),
        Err(_) => Ok(Some(format!("{} is missing; run `{FIX}`", path.display()))),
    }
}

pub fn run(root: &Path, options: &Options) -> Result<bool, String> {
    if options.check {
        return match stale(root)? {
            None => {
                println!("{} is fresh", copy_path(root).display());
                Ok(true)
            }
            Some(problem) => {
                eprintln!("{problem}");
                Ok(false)
            }
        };
    }
    let path = copy_path(root);
    std::fs::create_dir_all(path.parent().expect("a parent")).map_err(|e| e.to_string())?;
    let generated = generated(root)?;
    // A fresh copy is left alone, whatever its line endings: rewriting it would change nothing.
    let fresh = std::fs::read_to_string(&path)
        .is_ok_and(|actual| review_copy::is_fresh(&actual, &generated));
    if !fresh {
        std::fs::write(&path, review_copy::contents(&generated))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!(
        "{} {}",
        path.display(),
        if fresh { "unchanged" } else { "written" }
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root holding the project's spec and the given review copy, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn with_copy(name: &str, copy: &str) -> Root {
            let root = std::env::temp_dir().join(format!("codegen-{name}-{}", std::process::id()));
            let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            std::fs::create_dir_all(root.join("openapi")).unwrap();
            std::fs::create_dir_all(root.join("generated")).unwrap();
            std::fs::copy(
                project.join(codegen::SPEC_PATH),
                root.join(codegen::SPEC_PATH),
            )
            .unwrap();
            std::fs::write(root.join(review_copy::PATH), copy).unwrap();
            Root(root)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_header_names_the_command_and_the_spec() {
        assert!(review_copy::HEADER.contains(&format!("`{FIX}`")));
        assert!(review_copy::HEADER.contains(codegen::SPEC_PATH));
    }

    #[test]
    fn a_crlf_checkout_of_a_fresh_copy_is_fresh_and_an_edited_one_is_stale() {
        let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let lf = review_copy::contents(&generated(&project).unwrap());

        let crlf = Root::with_copy("crlf", &lf.replace('\n', "\r\n"));
        assert_eq!(stale(&crlf.0).unwrap(), None);

        let edited = lf.replacen("pub struct", "pub(crate) struct", 1);
        let line = lf.lines().position(|l| l.contains("pub struct")).unwrap() + 1;
        let stale_copy = Root::with_copy("edited", &edited.replace('\n', "\r\n"));
        let problem = stale(&stale_copy.0).unwrap().unwrap();
        assert!(
            problem.contains(&format!("first difference at line {line}")),
            "{problem}"
        );
        assert!(problem.contains(&format!("run `{FIX}`")), "{problem}");
    }
}
