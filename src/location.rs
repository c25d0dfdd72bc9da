//! Reading the upgrade id out of the create operation's `Location` header.
//!
//! Partner Center documents `Location: productUpgrades/{upgradeId}`, a relative reference without
//! `/v1`. Microsoft's own samples split it on `/` and take element 1, which breaks on an absolute
//! URL, a leading slash or a `/v1/` prefix. This parser accepts all of those and refuses anything
//! that does not end in `productUpgrades/{GUID}`, so an id is never picked out of an unrelated URL.

use crate::ids::UpgradeId;

/// Why a `Location` header does not name an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The 202 answer had no `Location` header.
    #[error("the answer has no Location header, so the new upgrade's id is unknown")]
    Missing,
    /// The header is not visible ASCII text.
    #[error("the Location header is not text")]
    NotText,
    /// The answer carried more than one `Location` header, so which upgrade it names is unclear.
    #[error("the answer has {0} Location headers; it must have exactly one")]
    Several(usize),
    /// The header is present but does not end in `productUpgrades/{GUID}`.
    #[error("the Location header {value:?} does not end in productUpgrades/{{upgrade id}}")]
    Malformed {
        /// The header's value, cut to 200 characters.
        value: String,
    },
}

/// Extracts the upgrade id from a `Location` header value.
///
/// Accepted: `productUpgrades/{id}` in any letter case, with or without a leading `/`, a `v1/`
/// (or any other) prefix, a scheme and host, a trailing `/`, a trailing `/status`, a query or a
/// fragment. Everything else is [`LocationError::Malformed`].
pub fn upgrade_id_from_location(value: &str) -> Result<UpgradeId, LocationError> {
    let malformed = || LocationError::Malformed {
        value: value.chars().take(200).collect(),
    };
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(LocationError::Missing);
    }
    rest = rest.split(['?', '#']).next().unwrap_or_default();
    // Drop `scheme://authority` or a network-path `//authority`, keeping only the path.
    if let Some(after_scheme) = rest.find("://").map(|i| &rest[i + 3..]) {
        rest = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    } else if let Some(after_slashes) = rest.strip_prefix("//") {
        rest = after_slashes.find('/').map_or("", |i| &after_slashes[i..]);
    }
    let mut segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .last()
        .is_some_and(|s| s.eq_ignore_ascii_case("status"))
    {
        segments.pop();
    }
    match segments.as_slice() {
        [.., collection, id] if collection.eq_ignore_ascii_case("productUpgrades") => {
            UpgradeId::parse(id).map_err(|_| malformed())
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "42d075a4-bfe7-43e7-af6d-7c68a57edcb4";

    fn accepts(value: &str) {
        assert_eq!(
            upgrade_id_from_location(value),
            Ok(UpgradeId::parse(ID).unwrap()),
            "{value:?} should be accepted"
        );
    }

    fn rejects(value: &str) {
        assert!(
            matches!(
                upgrade_id_from_location(value),
                Err(LocationError::Malformed { .. })
            ),
            "{value:?} should be rejected as malformed"
        );
    }

    #[test]
    fn the_documented_relative_reference() {
        accepts(&format!("productUpgrades/{ID}"));
    }

    #[test]
    fn a_leading_slash() {
        accepts(&format!("/productUpgrades/{ID}"));
    }

    #[test]
    fn a_v1_prefix_with_and_without_leading_slash() {
        accepts(&format!("/v1/productUpgrades/{ID}"));
        accepts(&format!("v1/productUpgrades/{ID}"));
    }

    #[test]
    fn an_absolute_url() {
        accepts(&format!(
            "https://api.partnercenter.microsoft.com/v1/productUpgrades/{ID}"
        ));
        accepts(&format!("http://127.0.0.1:8080/v1/productUpgrades/{ID}"));
    }

    #[test]
    fn a_network_path_reference() {
        accepts(&format!(
            "//api.partnercenter.microsoft.com/v1/productUpgrades/{ID}"
        ));
    }

    #[test]
    fn a_trailing_slash() {
        accepts(&format!("productUpgrades/{ID}/"));
        accepts(&format!("/v1/productUpgrades/{ID}//"));
    }

    #[test]
    fn either_casing_of_the_collection_and_the_id() {
        accepts(&format!("productupgrades/{ID}"));
        accepts(&format!("PRODUCTUPGRADES/{}", ID.to_uppercase()));
    }

    #[test]
    fn a_status_suffix() {
        accepts(&format!("/v1/productUpgrades/{ID}/status"));
    }

    #[test]
    fn a_query_or_fragment() {
        accepts(&format!("productUpgrades/{ID}?api-version=1"));
        accepts(&format!("productUpgrades/{ID}#top"));
    }

    #[test]
    fn surrounding_whitespace() {
        accepts(&format!("  productUpgrades/{ID}\t"));
    }

    #[test]
    fn an_empty_header_is_missing() {
        assert_eq!(upgrade_id_from_location(""), Err(LocationError::Missing));
        assert_eq!(upgrade_id_from_location("   "), Err(LocationError::Missing));
    }

    #[test]
    fn a_bare_id_without_the_collection() {
        rejects(ID);
    }

    #[test]
    fn another_collection() {
        rejects(&format!("customers/{ID}"));
        rejects(&format!("/v1/productUpgradesX/{ID}"));
    }

    #[test]
    fn the_collection_without_an_id() {
        rejects("productUpgrades");
        rejects("productUpgrades/");
        rejects("https://api.partnercenter.microsoft.com");
    }

    #[test]
    fn an_id_that_is_not_a_guid() {
        rejects("productUpgrades/42d075a4");
        rejects("productUpgrades/eligibility");
    }

    #[test]
    fn extra_segments_after_the_id() {
        rejects(&format!("productUpgrades/{ID}/lineItems"));
        rejects(&format!("productUpgrades/{ID}/{ID}"));
    }

    #[test]
    fn the_error_quotes_the_header() {
        let err = upgrade_id_from_location("customers/nope").unwrap_err();
        assert!(err.to_string().contains("customers/nope"), "{err}");
    }
}
