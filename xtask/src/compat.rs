//! The one compatibility policy for the spec's `info.version`, shared by `cargo xtask diff` and
//! `cargo xtask publish`: which part of the version a set of changes must raise
//! (`required_bump`), and whether a new version does (`check`).
//!
//! A change that breaks existing clients needs a higher major part; any other change to the
//! contract (compatible, or breaking only for existing servers) needs a higher version; no change
//! needs nothing. The version never goes down. Versions are semantic versions (`semver`).

use crate::diff::Finding;

/// The least a version must be raised by. Ordered: a larger bump satisfies a smaller one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bump {
    /// Nothing to raise.
    None,
    /// A higher version, whichever part: a patch, minor or major raise.
    Patch,
    /// A higher major part.
    Major,
}

/// What `changes` ask of `info.version`.
pub fn required_bump(changes: &[Finding]) -> Bump {
    if changes.iter().any(|c| c.breaks_clients) {
        Bump::Major
    } else if changes.is_empty() {
        Bump::None
    } else {
        Bump::Patch
    }
}

fn parse(which: &str, text: &str) -> Result<semver::Version, String> {
    semver::Version::parse(text)
        .map_err(|e| format!("the {which} info.version {text:?} is not a semantic version: {e}"))
}

/// `Ok` when going from `old_version` to `new_version` raises what `required` asks; otherwise
/// why not, naming both versions and the least version that would do.
pub fn check(old_version: &str, new_version: &str, required: Bump) -> Result<(), String> {
    let (old, new) = (parse("old", old_version)?, parse("new", new_version)?);
    if new < old {
        return Err(format!(
            "info.version went down, from {old} to {new}: a version is never reused or lowered"
        ));
    }
    match required {
        Bump::Major if new.major <= old.major => Err(format!(
            "the change breaks existing clients, but info.version went from {old} to {new}: \
             raise its major part (to {}.0.0), or keep the change compatible",
            old.major + 1
        )),
        Bump::Patch if new <= old => Err(format!(
            "the contract changed, but info.version stayed at {new}: raise it (to {}.{}.{} at least)",
            old.major,
            old.minor,
            old.patch + 1
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(breaks_clients: bool, breaks_servers: bool) -> Finding {
        Finding {
            path: "#/components/schemas/Thing".into(),
            message: "changed".into(),
            breaks_clients,
            breaks_servers,
            found_by: "test",
        }
    }

    #[test]
    fn the_required_bump_is_the_largest_any_change_asks_for() {
        let compatible = finding(false, false);
        let breaks_servers = finding(false, true);
        let breaks_clients = finding(true, false);
        let table: &[(&[Finding], Bump)] = &[
            (&[], Bump::None),
            (std::slice::from_ref(&compatible), Bump::Patch),
            (std::slice::from_ref(&breaks_servers), Bump::Patch),
            (&[compatible.clone(), breaks_servers.clone()], Bump::Patch),
            (std::slice::from_ref(&breaks_clients), Bump::Major),
            (
                &[
                    compatible.clone(),
                    breaks_clients.clone(),
                    breaks_servers.clone(),
                ],
                Bump::Major,
            ),
        ];
        for (changes, bump) in table {
            assert_eq!(required_bump(changes), *bump, "{changes:?}");
        }
    }

    #[test]
    fn a_version_passes_when_it_raises_what_the_changes_ask() {
        use Bump::*;
        let table = [
            // (old, new, required, passes)
            ("1.2.0", "1.2.0", None, true),
            ("1.2.0", "1.3.0", None, true),
            ("1.2.0", "1.1.9", None, false),
            ("1.2.0", "1.2.0", Patch, false),
            ("1.2.0", "1.2.1", Patch, true),
            ("1.2.0", "1.3.0", Patch, true),
            ("1.2.0", "2.0.0", Patch, true),
            ("2.0.0", "1.9.0", Patch, false),
            ("1.2.0", "1.2.0", Major, false),
            ("1.2.0", "1.3.0", Major, false),
            ("1.2.0", "2.0.0", Major, true),
            ("1.2.0", "3.1.4", Major, true),
            ("1.2.0", "2.0.0-rc.1", Major, true),
            ("2.0.0-rc.1", "2.0.0", Patch, true),
            ("1.2.0", "v2.0.0", Major, false),
            ("1.2", "2.0.0", Major, false),
        ];
        for (old, new, required, passes) in table {
            assert_eq!(
                check(old, new, required).is_ok(),
                passes,
                "{old} -> {new} for {required:?}: {:?}",
                check(old, new, required)
            );
        }
    }

    #[test]
    fn a_refusal_names_both_versions_and_the_least_that_would_do() {
        let major = check("1.2.0", "1.3.0", Bump::Major).unwrap_err();
        assert!(
            major.contains("from 1.2.0 to 1.3.0") && major.contains("to 2.0.0"),
            "{major}"
        );
        let patch = check("1.2.0", "1.2.0", Bump::Patch).unwrap_err();
        assert!(
            patch.contains("stayed at 1.2.0") && patch.contains("1.2.1"),
            "{patch}"
        );
        let unparsable = check("1.2", "2.0.0", Bump::Major).unwrap_err();
        assert!(unparsable.contains("\"1.2\""), "{unparsable}");
    }
}
