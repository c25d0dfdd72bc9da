//! Typed identifiers: each id is its own type, parsed once, so a customer id can never be passed
//! where an upgrade id belongs, and a request id never where a correlation id does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {input:?} {reason}")]
pub struct IdError {
    kind: &'static str,
    input: String,
    reason: &'static str,
}

impl IdError {
    /// Which kind of id was being parsed ("customer id", "upgrade id", ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The text that failed to parse (ids are not secrets; at most 100 characters are kept).
    pub fn input(&self) -> &str {
        &self.input
    }
}

macro_rules! guid_id {
    ($(#[$doc:meta])* $name:ident, $label:literal, nil_allowed: $nil_allowed:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing GUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The GUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses a GUID in any of its usual forms: hyphenated, braced (`{...}`), simple
            /// (32 hex digits) or `urn:uuid:`, ignoring surrounding whitespace.
            pub fn parse(input: &str) -> Result<Self, IdError> {
                let refuse = |reason| IdError {
                    kind: $label,
                    input: input.chars().take(100).collect(),
                    reason,
                };
                let id = Uuid::try_parse(input.trim()).map_err(|_| {
                    refuse("is not a GUID (expected the form 4c721420-72ad-4708-a0a7-371a2f7b0969)")
                })?;
                if id.is_nil() && !$nil_allowed {
                    return Err(refuse("is the nil GUID, which names nothing"));
                }
                Ok(Self(id))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }
    };
}

guid_id!(
    /// A customer's tenant id (the "Microsoft ID" on the customer's account page).
    CustomerId,
    "customer id",
    nil_allowed: false
);
guid_id!(
    /// The id of one product upgrade, from the create operation's `Location` or from
    /// eligibility's `upgradeId`.
    UpgradeId,
    "upgrade id",
    nil_allowed: false
);
guid_id!(
    /// `MS-RequestId`: the idempotency key of one logical call. The client sends a new one for
    /// every call.
    RequestId,
    "request id",
    nil_allowed: true
);
guid_id!(
    /// `MS-CorrelationId`: ties the calls of one flow together in Partner Center's logs.
    CorrelationId,
    "correlation id",
    nil_allowed: true
);

impl RequestId {
    /// A new random request id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl CorrelationId {
    /// A new random correlation id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usual_guid_form_parses_to_the_same_id() {
        let expected = CustomerId::parse("4c721420-72ad-4708-a0a7-371a2f7b0969").unwrap();
        for form in [
            "4C721420-72AD-4708-A0A7-371A2F7B0969",
            "{4c721420-72ad-4708-a0a7-371a2f7b0969}",
            "4c72142072ad4708a0a7371a2f7b0969",
            "urn:uuid:4c721420-72ad-4708-a0a7-371a2f7b0969",
            "  4c721420-72ad-4708-a0a7-371a2f7b0969\n",
        ] {
            assert_eq!(CustomerId::parse(form), Ok(expected), "{form:?}");
        }
        assert_eq!(expected.to_string(), "4c721420-72ad-4708-a0a7-371a2f7b0969");
    }

    #[test]
    fn a_malformed_guid_names_the_kind_of_id_and_the_input() {
        for bad in [
            "",
            "azure",
            "4c721420-72ad-4708-a0a7",
            "4c721420-72ad-4708-a0a7-371a2f7b096g",
        ] {
            let err = UpgradeId::parse(bad).unwrap_err();
            assert_eq!(err.kind(), "upgrade id");
            assert_eq!(err.input(), bad);
            assert!(err.to_string().contains("upgrade id"), "{err}");
        }
    }

    #[test]
    fn the_nil_guid_is_not_an_upgrade_or_a_customer() {
        let nil = "00000000-0000-0000-0000-000000000000";
        let err = UpgradeId::parse(nil).unwrap_err();
        assert!(err.to_string().contains("nil GUID"), "{err}");
        assert!(CustomerId::parse(nil).is_err());
        assert!(RequestId::parse(nil).is_ok());
    }

    #[test]
    fn a_very_long_input_is_cut_in_the_error() {
        let long = "x".repeat(10_000);
        assert_eq!(CustomerId::parse(&long).unwrap_err().input().len(), 100);
    }
}
