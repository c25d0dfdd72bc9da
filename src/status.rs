//! Upgrade status values: an open set, parsed case-insensitively.
//!
//! Partner Center publishes only `Completed`; its error messages name pending, in-progress and
//! failed upgrades. The generated client uses this type in place of a plain string (see
//! `codegen.rs`), so an unfamiliar value arrives as [`UpgradeStatus::Unknown`] instead of failing
//! the whole response.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of an upgrade or of one of its line items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum UpgradeStatus {
    /// Accepted, not started.
    Pending,
    /// Under way.
    InProgress,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully; the error details say why.
    Failed,
    /// A value this client does not know, kept exactly as the server sent it. Not finished, as
    /// far as this client can tell.
    Unknown(String),
}

impl UpgradeStatus {
    /// Parses a status, ignoring ASCII case and the separators `_`, `-` and space
    /// (`inProgress`, `IN_PROGRESS` and `In Progress` are all [`UpgradeStatus::InProgress`]).
    pub fn parse(value: &str) -> Self {
        let folded: String = value
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "pending" => Self::Pending,
            "inprogress" => Self::InProgress,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => Self::Unknown(value.to_owned()),
        }
    }

    /// The canonical spelling of a known value, or the server's text for an unknown one.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Unknown(value) => value,
        }
    }

    /// True for `Completed` and `Failed`: polling can stop.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl schemars::JsonSchema for UpgradeStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UpgradeStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Any string: unknown values are kept, not refused.
        schemars::json_schema!({ "type": "string" })
    }
}

impl From<String> for UpgradeStatus {
    fn from(value: String) -> Self {
        Self::parse(&value)
    }
}

impl From<UpgradeStatus> for String {
    fn from(value: UpgradeStatus) -> Self {
        match value {
            UpgradeStatus::Unknown(value) => value,
            known => known.as_str().to_owned(),
        }
    }
}

impl FromStr for UpgradeStatus {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl fmt::Display for UpgradeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::UpgradeStatus::{self, *};

    #[test]
    fn known_values_parse_in_any_casing_and_separator_style() {
        let table: &[(&str, UpgradeStatus)] = &[
            ("Completed", Completed),
            ("completed", Completed),
            ("COMPLETED", Completed),
            ("InProgress", InProgress),
            ("inProgress", InProgress),
            ("in_progress", InProgress),
            ("In Progress", InProgress),
            ("in-progress", InProgress),
            ("Pending", Pending),
            ("FAILED", Failed),
        ];
        for (text, expected) in table {
            assert_eq!(&UpgradeStatus::parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn an_unknown_value_is_kept_verbatim_and_is_not_terminal() {
        let status: UpgradeStatus = serde_json::from_str("\"Cancelled\"").unwrap();
        assert_eq!(status, Unknown("Cancelled".into()));
        assert!(!status.is_terminal());
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"Cancelled\"");
        assert_eq!(UpgradeStatus::parse(""), Unknown(String::new()));
    }

    #[test]
    fn only_completed_and_failed_are_terminal() {
        assert!(Completed.is_terminal());
        assert!(Failed.is_terminal());
        assert!(!Pending.is_terminal());
        assert!(!InProgress.is_terminal());
    }

    #[test]
    fn known_values_serialize_in_canonical_spelling() {
        let json = serde_json::to_string(&UpgradeStatus::parse("in_progress")).unwrap();
        assert_eq!(json, "\"InProgress\"");
    }
}
