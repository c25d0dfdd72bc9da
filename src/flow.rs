//! Following an upgrade to its end, and the whole upgrade flow.
//!
//! Nothing here keeps state of its own: Partner Center holds the upgrade, and eligibility names
//! the one under way. Dropping a future of this module at any point loses nothing — calling
//! [`Client::upgrade_customer`] again finds the same upgrade and follows it.

use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use crate::client::Client;
use crate::error::RequestIds;
use crate::error::{Error, ErrorKind, Operation, Sent};
use crate::ids::{CorrelationId, CustomerId, RequestId, UpgradeId};
use crate::model::{Eligibility, Finish, ProductFamily, Upgrade, UpgradeRequest};
use crate::response::Response;
use crate::status::UpgradeStatus;

/// How an upgrade is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOptions {
    /// Time between status polls, unless the answer's `Retry-After` says otherwise.
    pub interval: Duration,
    /// The shortest wait between polls, whatever `Retry-After` says.
    pub min_interval: Duration,
    /// Give up (with [`ErrorKind::Deadline`]) when the upgrade has not finished by then.
    pub deadline: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            interval: Duration::from_secs(30),
            min_interval: Duration::from_secs(1),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// The shortest wait between two polls whatever the options say: a `PollOptions` of zeros must
/// not turn into a tight loop against a throttled API.
pub const POLL_FLOOR: Duration = Duration::from_millis(100);

/// The wait before the next poll: `Retry-After` when the answer gave one, else the interval;
/// never below `min_interval` or [`POLL_FLOOR`], and never past the deadline (the last poll is
/// made at the deadline).
pub fn next_poll_delay(
    options: &PollOptions,
    retry_after: Option<Duration>,
    remaining: Duration,
) -> Duration {
    retry_after
        .unwrap_or(options.interval)
        .max(options.min_interval)
        .max(POLL_FLOOR)
        .min(remaining)
}

/// How starting an upgrade went: the one decision between creating an upgrade and following the
/// one Partner Center already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "start", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Start {
    /// A new upgrade was created.
    Created {
        /// Its id.
        upgrade_id: UpgradeId,
    },
    /// An upgrade was already under way (named by eligibility, or met as a `409` on create):
    /// follow it.
    Resumed {
        /// Its id.
        upgrade_id: UpgradeId,
    },
    /// The customer cannot be upgraded.
    NotEligible {
        /// Partner Center's reason.
        reason: Option<String>,
    },
}

impl Start {
    /// The upgrade to follow, unless the customer is not eligible.
    pub fn upgrade_id(&self) -> Option<UpgradeId> {
        match self {
            Start::Created { upgrade_id } | Start::Resumed { upgrade_id } => Some(*upgrade_id),
            Start::NotEligible { .. } => None,
        }
    }
}

/// How an upgrade flow ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
#[non_exhaustive]
pub enum UpgradeOutcome {
    /// The upgrade completed.
    Completed {
        /// The final status, with its line items.
        upgrade: Upgrade,
        /// True when the flow followed an upgrade that already existed instead of creating one.
        resumed: bool,
    },
    /// The upgrade ended without completing: it failed, completed only in part, or was
    /// cancelled ([`Upgrade::finished`] says which); its error details say why.
    Failed {
        /// The final status, with its line items and error details.
        upgrade: Upgrade,
        /// True when the flow followed an upgrade that already existed.
        resumed: bool,
    },
    /// The customer cannot be upgraded.
    NotEligible {
        /// Partner Center's reason.
        reason: Option<String>,
    },
}

impl Client {
    /// Polls `upgrade_id` until the upgrade is over ([`Upgrade::finished`]), or `options.deadline`
    /// passes.
    ///
    /// `on_status` sees every status read, intermediate ones and unknown values included; an
    /// unknown value on an upgrade that is otherwise not over keeps polling. Each poll is one call with its own
    /// retries (see [`crate::RetryPolicy`]).
    pub async fn wait_for_completion(
        &self,
        upgrade_id: UpgradeId,
        request: &UpgradeRequest,
        options: &PollOptions,
        mut on_status: impl FnMut(&Upgrade),
    ) -> Result<Upgrade, Error> {
        let started = Instant::now();
        loop {
            let answer = self.get_upgrade_status(upgrade_id, request).await?;
            let retry_after = answer.retry_after();
            let upgrade = answer.into_inner();
            on_status(&upgrade);
            if upgrade.finished().is_some() {
                return Ok(upgrade);
            }
            // The poll just made is the last when the deadline has passed; otherwise sleep, at
            // most until the deadline, and poll again (so the last status is read at it).
            let remaining = options.deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(deadline_error(
                    upgrade_id,
                    &upgrade.status,
                    options.deadline,
                ));
            }
            tokio::time::sleep(next_poll_delay(options, retry_after, remaining)).await;
        }
    }

    /// A client for one flow: the same `MS-CorrelationId` on every call (this client's, or a
    /// new one), so support can find a whole upgrade by one id (`openapi/ERRATA.md`, C14).
    fn for_flow(&self) -> Client {
        match self.correlation_id() {
            Some(_) => self.clone(),
            None => self.with_correlation_id(CorrelationId::new_random()),
        }
    }

    /// Starts upgrading the customer `request` names, or finds the upgrade already under way:
    /// the one decision behind [`Client::upgrade_customer`] and `pc-upgrade upgrade`.
    ///
    /// - not eligible, and eligibility names an upgrade: [`Start::Resumed`] (it may be finished);
    /// - not eligible, no upgrade named: [`Start::NotEligible`];
    /// - eligible (an upgrade it names, if any, is an earlier one that ended): create one,
    ///   [`Start::Created`]; a `409` "already in progress" is a race with another caller, and
    ///   eligibility, asked again, names the upgrade to follow: [`Start::Resumed`].
    ///
    /// Every call of it shares one `MS-CorrelationId`. It keeps no state: calling it again
    /// after any failure finds the same upgrade instead of starting another.
    pub async fn start_upgrade(&self, request: &UpgradeRequest) -> Result<Start, Error> {
        self.start_upgrade_as(request, RequestId::new_random(), |_| {})
            .await
    }

    /// [`Client::start_upgrade`] with the create's `MS-RequestId` chosen (and kept) by the
    /// caller, and every call it makes reported to `on_call` as it returns: what a journal
    /// needs. Called again with the same `create_request_id` after a crash at any point, it
    /// settles the earlier attempt: eligibility names the upgrade if the create was processed
    /// and the upgrade is under way, and otherwise the create, sent again under the same id,
    /// gets the first create's answer, or makes the one upgrade if the first never arrived.
    pub async fn start_upgrade_as(
        &self,
        request: &UpgradeRequest,
        create_request_id: RequestId,
        mut on_call: impl FnMut(&CallReport),
    ) -> Result<Start, Error> {
        let client = self.for_flow();
        let answer = client.check_eligibility(request).await;
        report_eligibility(&mut on_call, &answer);
        let eligibility = answer?.into_inner();
        match (eligibility.is_eligible, eligibility.upgrade_id) {
            (false, Some(existing)) => Ok(Start::Resumed {
                upgrade_id: existing,
            }),
            (false, None) => Ok(Start::NotEligible {
                reason: eligibility.reason,
            }),
            (true, _) => match client.create_upgrade_as(request, create_request_id).await {
                Ok(created) => {
                    on_call(&CallReport::of_response(
                        Operation::CreateUpgrade,
                        &created,
                        created.value().to_string(),
                    ));
                    Ok(Start::Created {
                        upgrade_id: created.into_inner(),
                    })
                }
                Err(conflict) if conflict.status() == Some(409) => {
                    on_call(&CallReport::of_error(&conflict));
                    Ok(Start::Resumed {
                        upgrade_id: client
                            .existing_upgrade(request, conflict, &mut on_call)
                            .await?,
                    })
                }
                Err(error) => {
                    on_call(&CallReport::of_error(&error));
                    Err(error)
                }
            },
        }
    }

    /// Upgrades `customer` to `family` from start to finish: [`Client::start_upgrade`], then
    /// [`Client::wait_for_completion`], under one `MS-CorrelationId`.
    ///
    /// Calling it again after a failure or a dropped future resumes the same upgrade instead of
    /// starting another.
    pub async fn upgrade_customer(
        &self,
        customer: CustomerId,
        family: ProductFamily,
        options: &PollOptions,
        mut on_status: impl FnMut(&Upgrade),
    ) -> Result<UpgradeOutcome, Error> {
        let client = self.for_flow();
        let request = UpgradeRequest::new(customer, family);
        let (upgrade_id, resumed) = match client.start_upgrade(&request).await? {
            Start::Created { upgrade_id } => (upgrade_id, false),
            Start::Resumed { upgrade_id } => (upgrade_id, true),
            Start::NotEligible { reason } => return Ok(UpgradeOutcome::NotEligible { reason }),
        };
        let upgrade = client
            .wait_for_completion(upgrade_id, &request, options, &mut on_status)
            .await?;
        Ok(match upgrade.finished() {
            Some(Finish::Completed) => UpgradeOutcome::Completed { upgrade, resumed },
            _ => UpgradeOutcome::Failed { upgrade, resumed },
        })
    }

    /// After a 409 on create: the upgrade under way, as eligibility names it.
    async fn existing_upgrade(
        &self,
        request: &UpgradeRequest,
        conflict: Error,
        on_call: &mut impl FnMut(&CallReport),
    ) -> Result<UpgradeId, Error> {
        let answer = self.check_eligibility(request).await;
        report_eligibility(on_call, &answer);
        let eligibility = answer?.into_inner();
        // Only an upgrade that blocks eligibility is the one under way; an eligible customer's
        // named upgrade is an earlier one that ended, not the one the 409 meant.
        match (eligibility.is_eligible, eligibility.upgrade_id) {
            (false, Some(under_way)) => Ok(under_way),
            _ => Err(conflict),
        }
    }
}

/// One call a flow made, as it returned: for an audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CallReport {
    /// Which operation.
    pub operation: Operation,
    /// Its `MS-RequestId`.
    pub request_id: Option<RequestId>,
    /// Its `MS-CorrelationId`.
    pub correlation_id: Option<CorrelationId>,
    /// The answer's HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Attempts made, retries included.
    pub attempts: u32,
    /// What the answer said, in one printable line (no token, no body that could hold one).
    pub detail: String,
}

impl CallReport {
    /// A call that succeeded; `detail` says what it answered.
    pub fn of_response<T>(
        operation: Operation,
        response: &Response<T>,
        detail: impl Into<String>,
    ) -> CallReport {
        CallReport {
            operation,
            request_id: response.request_id(),
            correlation_id: response.correlation_id(),
            status: Some(response.status()),
            attempts: response.attempts(),
            detail: detail.into(),
        }
    }

    /// A call that failed.
    pub fn of_error(error: &Error) -> CallReport {
        CallReport {
            operation: error.operation(),
            request_id: error.request_id(),
            correlation_id: error.correlation_id(),
            status: error.status(),
            attempts: error.attempts(),
            detail: crate::error::printable(&error.to_string()),
        }
    }
}

/// Reports an eligibility check.
fn report_eligibility(
    on_call: &mut impl FnMut(&CallReport),
    answer: &Result<Response<Eligibility>, Error>,
) {
    match answer {
        Ok(response) => {
            let value = response.value();
            let detail = match (value.is_eligible, value.upgrade_id, &value.reason) {
                (true, _, _) => "eligible".to_owned(),
                (false, Some(id), _) => format!("not eligible; upgrade {id} named"),
                (false, None, Some(reason)) => {
                    format!("not eligible: {}", crate::error::printable(reason))
                }
                (false, None, None) => "not eligible".to_owned(),
            };
            on_call(&CallReport::of_response(
                Operation::CheckEligibility,
                response,
                detail,
            ));
        }
        Err(error) => on_call(&CallReport::of_error(error)),
    }
}

fn deadline_error(upgrade_id: UpgradeId, last: &UpgradeStatus, deadline: Duration) -> Error {
    Error::new(Operation::GetUpgradeStatus, ErrorKind::Deadline, Sent::Yes).with_detail(format!(
        "upgrade {upgrade_id} had not finished after {} s (last status: {}); it goes on at Partner \
         Center, and waiting again resumes it",
        deadline.as_secs(),
        last
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_zeros_still_wait_the_floor_between_polls() {
        let zeros = PollOptions {
            interval: Duration::ZERO,
            min_interval: Duration::ZERO,
            deadline: Duration::ZERO,
        };
        let long = Duration::from_secs(600);
        assert_eq!(next_poll_delay(&zeros, None, long), POLL_FLOOR);
        assert_eq!(
            next_poll_delay(&zeros, Some(Duration::ZERO), long),
            POLL_FLOOR
        );
    }

    #[test]
    fn the_next_poll_follows_retry_after_within_its_floor_and_the_deadline() {
        let options = PollOptions {
            interval: Duration::from_secs(30),
            min_interval: Duration::from_secs(1),
            deadline: Duration::from_secs(600),
        };
        let long = Duration::from_secs(600);
        let table: &[(Option<u64>, Duration, u64)] = &[
            (None, long, 30),
            (Some(5), long, 5),
            (Some(0), long, 1),
            (None, Duration::ZERO, 0),
            (Some(120), long, 120),
            (None, Duration::from_secs(7), 7),
            (Some(90), Duration::from_secs(20), 20),
        ];
        for &(retry_after, remaining, expected) in table {
            assert_eq!(
                next_poll_delay(&options, retry_after.map(Duration::from_secs), remaining),
                Duration::from_secs(expected),
                "Retry-After {retry_after:?}, remaining {remaining:?}"
            );
        }
    }
}
