//! A client for Microsoft Partner Center's **product-upgrade API**: the three operations a Cloud
//! Solution Provider partner uses to move a customer from legacy Microsoft Azure (MS-AZR-0145P)
//! subscriptions to an Azure plan — check eligibility, create the upgrade, follow its status.
//!
//! The wire format comes from one hand-written OpenAPI 3.0 document,
//! `openapi/product-upgrades.yaml`, which `build.rs` compiles with progenitor. This crate's public
//! API is a small hand-written layer over that code: typed ids, a token provider, a single
//! [`Error`] type, and status values that tolerate what the server has not told us about yet.
//!
//! ```no_run
//! use partner_center_upgrades::{Client, Cloud, CustomerId, StaticToken, UpgradeRequest};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let token = StaticToken::new(std::env::var("PARTNER_CENTER_TOKEN")?)?;
//! let client = Client::builder(Cloud::Global, token).locale("en-US").build()?;
//! let request = UpgradeRequest::azure(CustomerId::parse("4c721420-72ad-4708-a0a7-371a2f7b0969")?);
//!
//! let eligibility = client.check_eligibility(&request).await?.into_inner();
//! if eligibility.is_eligible {
//!     let upgrade_id = client.create_upgrade(&request).await?.into_inner();
//!     let upgrade = client.get_upgrade_status(upgrade_id, &request).await?.into_inner();
//!     println!("upgrade {upgrade_id}: {}", upgrade.status);
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod base_url;
mod client;
mod error;
mod flow;
mod generated;
mod ids;
mod location;
mod model;
mod record;
mod response;
mod retry;
mod signin;
mod status;
mod throttle;
mod transport;

pub use auth::{AccessToken, AuthError, StaticToken, TokenFuture, TokenProvider};
pub use base_url::{BaseUrl, BaseUrlError, Cloud};
pub use client::{BuildError, Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use error::{
    Error, ErrorKind, Operation, RequestIds, Sent, ServiceError, ServiceErrorCode, Throttling,
    printable,
};
pub use flow::{CallReport, POLL_FLOOR, PollOptions, Start, UpgradeOutcome, next_poll_delay};
pub use ids::{CorrelationId, CustomerId, IdError, RequestId, UpgradeId};
pub use location::{LocationError, upgrade_id_from_location};
pub use model::{
    Eligibility, ErrorDetails, Finish, LineItem, Product, ProductFamily, ProductFamilyError,
    ResourceAttributes, Upgrade, UpgradeRequest, parse_upgraded_date,
};
pub use response::{Response, parse_retry_after};
pub use retry::{Decision, Failure, GiveUpReason, RetryPolicy};
pub use signin::{
    AppCredentials, Authority, Clock, DeviceCode, DeviceSignIn, FileStore, MemoryStore,
    PARTNER_CENTER_RESOURCE, REFRESH_AHEAD, RefreshTokenProvider, RefreshTokenStore, Secret,
    StoredSettings, TokenEndpoint,
};
pub use status::UpgradeStatus;
pub use throttle::{Lane, RateController, Throttle, ThrottleConfig, ThrottleStats};
pub use transport::MAX_ANSWER_BYTES;

/// The generated wire types, exactly as the spec defines them (feature `wire`).
///
/// For contract tests and tools that must check payloads against the spec. Not a stable API:
/// these types change whenever `openapi/product-upgrades.yaml` does. Use the types at the crate
/// root instead.
#[cfg(feature = "wire")]
pub mod wire {
    pub use crate::generated::types::*;
}

/// The README's example, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
