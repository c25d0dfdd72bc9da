//! The resources callers see: our own types, built from the generated ones.
//!
//! Generated structs change shape whenever the spec gains a field, which would break callers'
//! struct literals; these types are `#[non_exhaustive]` and carry every field the spec defines.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::error::ServiceErrorCode;
use crate::generated::types;
use crate::ids::{CustomerId, UpgradeId};
use crate::status::UpgradeStatus;

/// A product family to upgrade to. `Azure` (an Azure plan) is the only documented one;
/// Partner Center compares families case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ProductFamily(String);

/// Why a product family was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the product family is empty; use \"Azure\" to upgrade to an Azure plan")]
pub struct ProductFamilyError;

impl ProductFamily {
    /// `Azure`: upgrade Microsoft Azure (MS-AZR-0145P) subscriptions to an Azure plan.
    pub fn azure() -> Self {
        Self("Azure".into())
    }

    /// A product family by name; surrounding whitespace is dropped and an empty name refused.
    pub fn new(name: impl AsRef<str>) -> Result<Self, ProductFamilyError> {
        let name = name.as_ref().trim();
        if name.is_empty() {
            return Err(ProductFamilyError);
        }
        Ok(Self(name.to_owned()))
    }

    /// The family's name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` and `other` name the same family, ignoring case as Partner Center does.
    pub fn same_as(&self, other: &ProductFamily) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl std::str::FromStr for ProductFamily {
    type Err = ProductFamilyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for ProductFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<types::ProductFamily> for ProductFamily {
    fn from(family: types::ProductFamily) -> Self {
        Self(family.to_string())
    }
}

/// The body of all three operations: which customer, which product family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The customer to upgrade.
    pub customer_id: CustomerId,
    /// The product family to upgrade to.
    pub product_family: ProductFamily,
}

impl UpgradeRequest {
    /// A request for `customer_id` and `product_family`.
    pub fn new(customer_id: CustomerId, product_family: ProductFamily) -> Self {
        Self {
            customer_id,
            product_family,
        }
    }

    /// A request to upgrade `customer_id` to an Azure plan.
    pub fn azure(customer_id: CustomerId) -> Self {
        Self::new(customer_id, ProductFamily::azure())
    }

    pub(crate) fn to_wire(&self) -> Result<types::ProductUpgradeRequest, String> {
        Ok(types::ProductUpgradeRequest {
            customer_id: *self.customer_id.as_uuid(),
            product_family: types::ProductFamily::try_from(self.product_family.0.clone())
                .map_err(|e| format!("product family: {e}"))?,
        })
    }
}

/// Partner Center resource metadata, as sent; clients rarely need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ResourceAttributes {
    /// Entity tag of the resource.
    pub etag: Option<String>,
    /// Name of the resource type.
    pub object_type: Option<String>,
}

impl From<types::ResourceAttributes> for ResourceAttributes {
    fn from(a: types::ResourceAttributes) -> Self {
        Self {
            etag: a.etag,
            object_type: a.object_type,
        }
    }
}

/// Whether a customer can be upgraded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Eligibility {
    /// The customer asked about.
    pub customer_id: CustomerId,
    /// The product family asked about.
    pub product_family: ProductFamily,
    /// True when a new upgrade can be created now.
    pub is_eligible: bool,
    /// An upgrade that already exists for this family: follow it instead of creating another.
    pub upgrade_id: Option<UpgradeId>,
    /// Why the customer is not eligible.
    pub reason: Option<String>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl From<types::ProductUpgradesEligibility> for Eligibility {
    fn from(e: types::ProductUpgradesEligibility) -> Self {
        Self {
            customer_id: e.customer_id.into(),
            product_family: e.product_family.into(),
            is_eligible: e.is_eligible,
            upgrade_id: e
                .upgrade_id
                .as_deref()
                .and_then(|id| existing_upgrade_id(id)),
            reason: e.reason,
            attributes: e.attributes.map(Into::into),
        }
    }
}

/// Eligibility's `upgradeId`: an empty string or the nil GUID means "no upgrade" (Microsoft's own
/// sample tests `IsNullOrEmpty`); the spec's pattern admits nothing else but a GUID.
fn existing_upgrade_id(text: &str) -> Option<UpgradeId> {
    let id = uuid::Uuid::try_parse(text.trim()).ok()?;
    (!id.is_nil()).then(|| UpgradeId::from(id))
}

/// Why an upgrade or a line item failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorDetails {
    /// Partner Center's error code, a number or a string as the server sent it.
    pub code: Option<ServiceErrorCode>,
    /// What went wrong (the SDKs' name).
    pub description: Option<String>,
    /// What went wrong (the resource page's name).
    pub message: Option<String>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl ErrorDetails {
    /// The explanation, whichever field carried it.
    pub fn text(&self) -> Option<&str> {
        self.description.as_deref().or(self.message.as_deref())
    }
}

impl From<types::ProductUpgradeErrorDetails> for ErrorDetails {
    fn from(e: types::ProductUpgradeErrorDetails) -> Self {
        Self {
            code: e.code.map(ServiceErrorCode::from),
            description: e.description,
            message: e.message,
            attributes: e.attributes.map(Into::into),
        }
    }
}

/// A product taking part in an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Product {
    /// The product's identifier (for the source, the Azure subscription id), when sent.
    pub id: Option<String>,
    /// The product's friendly name, when sent.
    pub name: Option<String>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl From<types::UpgradeProduct> for Product {
    fn from(p: types::UpgradeProduct) -> Self {
        Self {
            id: p.id,
            name: p.name,
            attributes: p.attributes.map(Into::into),
        }
    }
}

/// The upgrade of one source product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LineItem {
    /// What is being upgraded, when sent.
    pub source_product: Option<Product>,
    /// What it becomes, when sent.
    pub target_product: Option<Product>,
    /// When this line item was upgraded: `None` when absent, `null`, or the .NET "no date" value
    /// `0001-01-01T00:00:00`. A timestamp without an offset is read as UTC.
    pub upgraded_date: Option<DateTime<Utc>>,
    /// `upgradedDate` exactly as the server sent it, when it sent one.
    pub upgraded_date_text: Option<String>,
    /// This line item's status.
    pub status: UpgradeStatus,
    /// Why this line item failed.
    pub error_details: Option<ErrorDetails>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl From<types::ProductUpgradeLineItem> for LineItem {
    fn from(l: types::ProductUpgradeLineItem) -> Self {
        let upgraded_date_text = l.upgraded_date.map(|date| date.to_string());
        Self {
            source_product: l.source_product.map(Into::into),
            target_product: l.target_product.map(Into::into),
            upgraded_date: upgraded_date_text.as_deref().and_then(parse_upgraded_date),
            upgraded_date_text,
            status: l.status,
            error_details: l.error_details.map(Into::into),
            attributes: l.attributes.map(Into::into),
        }
    }
}

/// An upgrade's overall status and its line items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Upgrade {
    /// The upgrade id.
    pub id: UpgradeId,
    /// The product family upgraded to.
    pub product_family: ProductFamily,
    /// The overall status.
    pub status: UpgradeStatus,
    /// One entry per source product (empty when the answer had none, or `null`).
    pub line_items: Vec<LineItem>,
    /// Why the upgrade failed.
    pub error_details: Option<ErrorDetails>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

/// How an upgrade ended, as [`Upgrade::finished`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Finish {
    /// Every part completed.
    Completed,
    /// Some parts completed and others did not.
    PartiallyCompleted,
    /// Cancelled before it finished.
    Cancelled,
    /// It failed.
    Failed,
}

impl Upgrade {
    /// Whether the upgrade is over, and how. Published statuses are few (only `Completed`), so
    /// the answer as a whole is read, by these rules in order:
    ///
    /// 1. a final overall status ([`UpgradeStatus::is_terminal`]) says how it ended;
    /// 2. top-level `errorDetails` mean it failed, whatever the status says;
    /// 3. when there are line items and every one has a final status, it is over: completed if
    ///    all completed, failed if none completed, partially completed otherwise;
    /// 4. otherwise it is not over (`None`): keep polling.
    pub fn finished(&self) -> Option<Finish> {
        if let Some(finish) = finish_of(&self.status) {
            return Some(finish);
        }
        if self.error_details.is_some() {
            return Some(Finish::Failed);
        }
        if self.line_items.is_empty() || !self.line_items.iter().all(|l| l.status.is_terminal()) {
            return None;
        }
        let completed = self
            .line_items
            .iter()
            .filter(|l| l.status == UpgradeStatus::Completed)
            .count();
        Some(if completed == self.line_items.len() {
            Finish::Completed
        } else if completed == 0
            && self
                .line_items
                .iter()
                .all(|l| l.status == UpgradeStatus::Cancelled)
        {
            Finish::Cancelled
        } else if completed == 0 {
            Finish::Failed
        } else {
            Finish::PartiallyCompleted
        })
    }
}

fn finish_of(status: &UpgradeStatus) -> Option<Finish> {
    match status {
        UpgradeStatus::Completed => Some(Finish::Completed),
        UpgradeStatus::PartiallyCompleted => Some(Finish::PartiallyCompleted),
        UpgradeStatus::Cancelled => Some(Finish::Cancelled),
        UpgradeStatus::Failed => Some(Finish::Failed),
        _ => None,
    }
}

/// Reads `upgradedDate` tolerantly: RFC 3339 with any offset, or no offset at all (UTC, as
/// Partner Center's other answers mean it), with any number of fractional digits (beyond
/// nanoseconds they are dropped); `0001-01-01T00:00:00` (.NET's `DateTime.MinValue`, "no date")
/// and anything unreadable are `None` (the text is kept in [`LineItem::upgraded_date_text`]).
pub fn parse_upgraded_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // Cut fractional digits beyond nanoseconds, which chrono does not read.
    let cut: String = match text.find('.') {
        Some(dot) => {
            let digits = text[dot + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let keep = digits.min(9);
            format!("{}{}", &text[..dot + 1 + keep], &text[dot + 1 + digits..])
        }
        None => text.to_owned(),
    };
    let normalised = cut.replacen([' ', 't'], "T", 1).replace('z', "Z");
    let date = DateTime::parse_from_rfc3339(&normalised)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f%z",
                "%Y-%m-%dT%H:%M:%S%.f%#z",
            ]
            .iter()
            .find_map(|format| {
                if format.ends_with('z') {
                    DateTime::parse_from_str(&normalised, format)
                        .ok()
                        .map(|d| d.with_timezone(&Utc))
                } else {
                    NaiveDateTime::parse_from_str(&normalised, format)
                        .ok()
                        .map(|d| d.and_utc())
                }
            })
            .ok_or(())
        })
        .ok()?;
    // .NET's DateTime.MinValue: "no date".
    (date.timestamp() > NET_MIN_DATE_CUTOFF).then_some(date)
}

/// Anything on 0001-01-01 is .NET's "no date" rather than a moment of an upgrade.
const NET_MIN_DATE_CUTOFF: i64 = -62_135_510_400; // 0001-01-02T00:00:00Z

impl From<types::ProductUpgradesStatus> for Upgrade {
    fn from(s: types::ProductUpgradesStatus) -> Self {
        Self {
            id: s.id.into(),
            product_family: s.product_family.into(),
            status: s.status,
            line_items: s
                .line_items
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            error_details: s.error_details.map(Into::into),
            attributes: s.attributes.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(status: &str, lines: &[&str], error: bool) -> Upgrade {
        let line = |status: &str| LineItem {
            source_product: None,
            target_product: None,
            upgraded_date: None,
            upgraded_date_text: None,
            status: UpgradeStatus::parse(status),
            error_details: None,
            attributes: None,
        };
        Upgrade {
            id: UpgradeId::from(uuid::Uuid::from_u128(1)),
            product_family: ProductFamily::azure(),
            status: UpgradeStatus::parse(status),
            line_items: lines.iter().map(|s| line(s)).collect(),
            error_details: error.then(ErrorDetails::default),
            attributes: None,
        }
    }

    #[test]
    fn an_upgrade_is_over_when_its_status_its_error_details_or_all_its_line_items_say_so() {
        use Finish::*;
        let table: &[(&str, &[&str], bool, Option<Finish>)] = &[
            // Rule 1: a final overall status.
            ("Completed", &[], false, Some(Completed)),
            ("Complete", &["InProgress"], false, Some(Completed)),
            ("PartiallyCompleted", &[], false, Some(PartiallyCompleted)),
            ("Canceled", &[], false, Some(Cancelled)),
            ("Failed", &[], false, Some(Failed)),
            ("Error", &[], false, Some(Failed)),
            // Rule 2: top-level error details.
            ("InProgress", &["InProgress"], true, Some(Failed)),
            ("Migrating", &[], true, Some(Failed)),
            // Rule 3: every line item final.
            (
                "Migrating",
                &["Completed", "Completed"],
                false,
                Some(Completed),
            ),
            (
                "InProgress",
                &["Completed", "Failed"],
                false,
                Some(PartiallyCompleted),
            ),
            ("InProgress", &["Failed", "Cancelled"], false, Some(Failed)),
            ("InProgress", &["Cancelled"], false, Some(Cancelled)),
            // Rule 4: otherwise not over.
            ("InProgress", &["Completed", "InProgress"], false, None),
            ("Migrating", &[], false, None),
            ("Pending", &["Pending"], false, None),
        ];
        for &(status, lines, error, expected) in table {
            assert_eq!(
                upgrade(status, lines, error).finished(),
                expected,
                "{status} {lines:?} error details: {error}"
            );
        }
    }

    #[test]
    fn upgraded_dates_are_read_tolerantly() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let table: &[(&str, Option<DateTime<Utc>>)] = &[
            (
                "2019-08-29T23:47:28.8524555Z",
                Some(utc("2019-08-29T23:47:28.8524555Z")),
            ),
            ("2019-08-29T23:47:28Z", Some(utc("2019-08-29T23:47:28Z"))),
            ("2017-07-25T18:07:36", Some(utc("2017-07-25T18:07:36Z"))),
            ("2017-07-25 18:07:36", Some(utc("2017-07-25T18:07:36Z"))),
            ("2017-07-25t18:07:36z", Some(utc("2017-07-25T18:07:36Z"))),
            (
                "2019-01-09T00:21:45.9263727",
                Some(utc("2019-01-09T00:21:45.9263727Z")),
            ),
            (
                "2019-01-09T00:21:45.123456789012Z",
                Some(utc("2019-01-09T00:21:45.123456789Z")),
            ),
            (
                "2019-08-30T01:47:28+02:00",
                Some(utc("2019-08-29T23:47:28Z")),
            ),
            (
                "2019-08-30T01:47:28+0200",
                Some(utc("2019-08-29T23:47:28Z")),
            ),
            ("0001-01-01T00:00:00", None),
            ("0001-01-01T00:00:00Z", None),
            ("0001-01-01T00:00:00.0000000", None),
            ("2019-13-45T00:00:00Z", None),
            ("yesterday", None),
            ("", None),
        ];
        for &(text, expected) in table {
            assert_eq!(parse_upgraded_date(text), expected, "{text:?}");
        }
    }

    #[test]
    fn eligibility_reads_an_empty_or_nil_upgrade_id_as_none() {
        let table: &[(&str, Option<u128>)] = &[
            ("", None),
            ("00000000-0000-0000-0000-000000000000", None),
            ("{00000000-0000-0000-0000-000000000000}", None),
            ("00000000-0000-0000-0000-000000000001", Some(1)),
        ];
        for &(text, expected) in table {
            assert_eq!(
                existing_upgrade_id(text),
                expected.map(|n| UpgradeId::from(uuid::Uuid::from_u128(n))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_empty_product_family_is_refused_with_a_hint() {
        assert_eq!(ProductFamily::new("  "), Err(ProductFamilyError));
        assert!(ProductFamilyError.to_string().contains("Azure"));
    }

    #[test]
    fn product_families_compare_case_insensitively() {
        let lower = ProductFamily::new(" azure ").unwrap();
        assert_eq!(lower.as_str(), "azure");
        assert!(lower.same_as(&ProductFamily::azure()));
        assert!(!lower.same_as(&ProductFamily::new("Office").unwrap()));
    }
}
