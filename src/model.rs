//! The resources callers see: our own types, built from the generated ones.
//!
//! Generated structs change shape whenever the spec gains a field, which would break callers'
//! struct literals; these types are `#[non_exhaustive]` and carry every field the spec defines.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

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
            upgrade_id: e.upgrade_id.map(UpgradeId::from),
            reason: e.reason,
            attributes: e.attributes.map(Into::into),
        }
    }
}

/// Why an upgrade or a line item failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorDetails {
    /// Partner Center's error code.
    pub code: Option<String>,
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
            code: e.code,
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
    /// The product's identifier (for the source, the Azure subscription id).
    pub id: String,
    /// The product's friendly name.
    pub name: String,
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
    /// What is being upgraded.
    pub source_product: Product,
    /// What it becomes.
    pub target_product: Product,
    /// When this line item was upgraded.
    pub upgraded_date: Option<DateTime<Utc>>,
    /// This line item's status.
    pub status: UpgradeStatus,
    /// Why this line item failed.
    pub error_details: Option<ErrorDetails>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl From<types::ProductUpgradeLineItem> for LineItem {
    fn from(l: types::ProductUpgradeLineItem) -> Self {
        Self {
            source_product: l.source_product.into(),
            target_product: l.target_product.into(),
            upgraded_date: l.upgraded_date,
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
    /// One entry per source product.
    pub line_items: Vec<LineItem>,
    /// Why the upgrade failed.
    pub error_details: Option<ErrorDetails>,
    /// Resource metadata, when sent.
    pub attributes: Option<ResourceAttributes>,
}

impl From<types::ProductUpgradesStatus> for Upgrade {
    fn from(s: types::ProductUpgradesStatus) -> Self {
        Self {
            id: s.id.into(),
            product_family: s.product_family.into(),
            status: s.status,
            line_items: s.line_items.into_iter().map(Into::into).collect(),
            error_details: s.error_details.map(Into::into),
            attributes: s.attributes.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
