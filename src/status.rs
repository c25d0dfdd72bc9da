//! Upgrade status values: an open set, parsed case-insensitively.
//!
//! Partner Center publishes only `Completed`. The other names are guesses: its error messages
//! speak of pending, in-progress and failed upgrades, and sibling services (Transfers) send
//! `Complete`, `PartiallyComplete`, `Failed` and `Reject`. The generated client uses this type in
//! place of a plain string (see `codegen.rs`), so an unfamiliar value arrives as
//! [`UpgradeStatus::Unknown`] instead of failing the whole response, and the obvious spellings of
//! "finished" are read as final, so that a waiting client does not poll an upgrade that is over.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of an upgrade or of one of its line items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum UpgradeStatus {
    /// Accepted, not started.
    Pending,
    /// Under way.
    InProgress,
    /// Finished successfully.
    Completed,
    /// Finished with some parts done and others not (`PartiallyComplete`, `PartiallyCompleted`).
    PartiallyCompleted,
    /// Cancelled before it finished (`Cancelled`, `Canceled`).
    Cancelled,
    /// Finished unsuccessfully (`Failed`, `Error`, `Rejected`, ...); the error details say why.
    Failed,
    /// A value this client does not know, kept exactly as the server sent it. Not finished, as
    /// far as this client can tell.
    Unknown(String),
}

impl UpgradeStatus {
    /// Parses a status, ignoring ASCII case, surrounding white space and the separators `_`, `-`
    /// and space (`inProgress`, `IN_PROGRESS` and `In Progress` are all
    /// [`UpgradeStatus::InProgress`]), and reading the usual variants of each final state:
    ///
    /// | read as | spellings (after folding) |
    /// |---|---|
    /// | `Pending` | pending, notstarted, queued, accepted, new |
    /// | `InProgress` | inprogress, running, processing, started, upgrading |
    /// | `Completed` | completed, complete, succeeded, success, successful, done |
    /// | `PartiallyCompleted` | partiallycompleted, partiallycomplete, partiallysucceeded, partialsuccess, partial |
    /// | `Cancelled` | cancelled, canceled, aborted |
    /// | `Failed` | failed, failure, error, errored, rejected, reject |
    pub fn parse(value: &str) -> Self {
        let folded: String = value
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' ' | '\t'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "pending" | "notstarted" | "queued" | "accepted" | "new" => Self::Pending,
            "inprogress" | "running" | "processing" | "started" | "upgrading" => Self::InProgress,
            "completed" | "complete" | "succeeded" | "success" | "successful" | "done" => {
                Self::Completed
            }
            "partiallycompleted" | "partiallycomplete" | "partiallysucceeded"
            | "partialsuccess" | "partial" => Self::PartiallyCompleted,
            "cancelled" | "canceled" | "aborted" => Self::Cancelled,
            "failed" | "failure" | "error" | "errored" | "rejected" | "reject" => Self::Failed,
            _ => Self::Unknown(value.to_owned()),
        }
    }

    /// The canonical spelling of a known value, or the server's text for an unknown one.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::PartiallyCompleted => "PartiallyCompleted",
            Self::Cancelled => "Cancelled",
            Self::Failed => "Failed",
            Self::Unknown(value) => value,
        }
    }

    /// True for the final states (`Completed`, `PartiallyCompleted`, `Cancelled`, `Failed`):
    /// polling can stop.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::PartiallyCompleted | Self::Cancelled | Self::Failed
        )
    }
}

#[cfg(feature = "wire")]
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
    fn known_values_and_their_variants_parse_in_any_casing_and_separator_style() {
        let table: &[(&str, UpgradeStatus)] = &[
            ("Completed", Completed),
            ("completed", Completed),
            ("COMPLETED", Completed),
            (" Completed ", Completed),
            ("Complete", Completed),
            ("Succeeded", Completed),
            ("InProgress", InProgress),
            ("inProgress", InProgress),
            ("in_progress", InProgress),
            ("In Progress", InProgress),
            ("in-progress", InProgress),
            ("Running", InProgress),
            ("Pending", Pending),
            ("NotStarted", Pending),
            ("PartiallyComplete", PartiallyCompleted),
            ("PartiallyCompleted", PartiallyCompleted),
            ("partially_completed", PartiallyCompleted),
            ("Cancelled", Cancelled),
            ("Canceled", Cancelled),
            ("FAILED", Failed),
            ("Error", Failed),
            ("Reject", Failed),
            ("Rejected", Failed),
        ];
        for (text, expected) in table {
            assert_eq!(&UpgradeStatus::parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn an_unknown_value_is_kept_verbatim_and_is_not_terminal() {
        let status: UpgradeStatus = serde_json::from_str("\"Migrating\"").unwrap();
        assert_eq!(status, Unknown("Migrating".into()));
        assert!(!status.is_terminal());
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"Migrating\"");
        assert_eq!(UpgradeStatus::parse(""), Unknown(String::new()));
    }

    #[test]
    fn the_final_states_are_terminal_and_the_others_are_not() {
        let table: &[(UpgradeStatus, bool)] = &[
            (Completed, true),
            (PartiallyCompleted, true),
            (Cancelled, true),
            (Failed, true),
            (Pending, false),
            (InProgress, false),
            (Unknown("Migrating".into()), false),
        ];
        for (status, terminal) in table {
            assert_eq!(status.is_terminal(), *terminal, "{status:?}");
        }
    }

    #[test]
    fn known_values_serialize_in_canonical_spelling() {
        let json = serde_json::to_string(&UpgradeStatus::parse("in_progress")).unwrap();
        assert_eq!(json, "\"InProgress\"");
        let json = serde_json::to_string(&UpgradeStatus::parse("Canceled")).unwrap();
        assert_eq!(json, "\"Cancelled\"");
    }
}
