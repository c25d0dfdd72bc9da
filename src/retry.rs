//! When to retry a failed call, and after how long: a pure decision, tested as a table.
//!
//! Partner Center throttles all three operations and answers 5xx under load. `MS-RequestId` is
//! the idempotency key, and the client sends the same one on every retry of a call, so retrying
//! a call that may have reached the server (a timeout, a dropped connection) cannot start a
//! second upgrade.

use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// How a client retries. [`RetryPolicy::default`] allows 4 attempts within 2 minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retries.
    pub max_attempts: u32,
    /// No retry starts later than this after the first attempt began.
    pub deadline: Duration,
    /// The first backoff delay; each further one doubles, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// `Retry-After` is honoured, but never below this.
    pub retry_after_floor: Duration,
    /// `Retry-After` is honoured, but never above this.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            deadline: Duration::from_secs(120),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_after_floor: Duration::from_millis(100),
            retry_after_cap: Duration::from_secs(120),
        }
    }
}

/// What failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with this status.
    Status(u16),
    /// No connection could be made.
    Connect,
    /// The request or answer timed out.
    Timeout,
    /// The connection broke while the request or answer was under way.
    Transport,
    /// Anything else (bad input, no token, an answer that breaks the spec): never retried.
    Other,
}

impl Failure {
    /// Classifies an error.
    pub fn of(error: &Error) -> Failure {
        match (error.kind(), error.status()) {
            (ErrorKind::Status, Some(status)) => Failure::Status(status),
            (ErrorKind::Connect, _) => Failure::Connect,
            (ErrorKind::Timeout, _) => Failure::Timeout,
            (ErrorKind::Transport, _) => Failure::Transport,
            _ => Failure::Other,
        }
    }
}

/// The decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send the same request again (same `MS-RequestId`).
    RetryAfter(Duration),
    /// Return the error.
    GiveUp(GiveUpReason),
}

/// Why no further attempt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure is not one that a retry can mend.
    NotRetryable,
    /// The attempts are used up.
    Attempts,
    /// The next attempt would start after the deadline.
    Deadline,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Whether `failure` can be mended by retrying.
    ///
    /// - 408, 429: the server asks to come back later.
    /// - 500, 502, 503, 504: a transient server or gateway failure; Partner Center answers these
    ///   under load, and the same `MS-RequestId` makes the retry safe.
    /// - Connect: nothing was sent.
    /// - Timeout, Transport: the request may have been processed; safe with the same
    ///   `MS-RequestId`.
    /// - 400, 401, 403, 404, 409 and every other status: the same request would fail the same
    ///   way (a 401 needs a new token, a 409 means an upgrade is under way).
    pub fn is_retryable(failure: Failure) -> bool {
        matches!(
            failure,
            Failure::Status(408 | 429 | 500 | 502 | 503 | 504)
                | Failure::Connect
                | Failure::Timeout
                | Failure::Transport
        )
    }

    /// Decides what to do after attempt number `attempt` (1 for the first) failed with
    /// `failure`, `elapsed` after the first attempt began. `retry_after` is the server's
    /// `Retry-After`; `jitter` in `[0, 1]` spreads backoff delays (the delay is between half and
    /// all of the exponential step).
    pub fn decide(
        &self,
        failure: Failure,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Decision {
        if !Self::is_retryable(failure) {
            return Decision::GiveUp(GiveUpReason::NotRetryable);
        }
        if attempt >= self.max_attempts {
            return Decision::GiveUp(GiveUpReason::Attempts);
        }
        let delay = match retry_after {
            Some(wait) => wait.clamp(
                self.retry_after_floor,
                self.retry_after_cap.max(self.retry_after_floor),
            ),
            None => {
                let step = self
                    .base_delay
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
                    .min(self.max_delay);
                // Between half and all of the step; a NaN jitter counts as 0, and a step too
                // long for floating point (Duration::MAX) stays as it is rather than overflow.
                let jitter = if jitter.is_nan() {
                    0.0
                } else {
                    jitter.clamp(0.0, 1.0)
                };
                Duration::try_from_secs_f64(step.as_secs_f64() * (0.5 + 0.5 * jitter))
                    .unwrap_or(step)
                    .min(step)
            }
        };
        if elapsed.saturating_add(delay) > self.deadline {
            return Decision::GiveUp(GiveUpReason::Deadline);
        }
        Decision::RetryAfter(delay)
    }
}

/// A jitter value in `[0, 1]` derived from the request id and the attempt: spreads retries of
/// different calls apart, and repeats exactly for the same call (so tests can rely on it).
pub(crate) fn jitter(request_id: &uuid::Uuid, attempt: u32) -> f64 {
    let mixed = request_id
        .as_u128()
        .rotate_left(attempt.wrapping_mul(23))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    (mixed >> 64) as u64 as f64 / u64::MAX as f64
}

#[cfg(test)]
mod tests {
    use super::Decision::{GiveUp, RetryAfter};
    use super::GiveUpReason::{Attempts, Deadline, NotRetryable};
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn extreme_delays_and_jitter_never_panic() {
        let policy = RetryPolicy {
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            retry_after_floor: Duration::MAX,
            retry_after_cap: Duration::ZERO,
            deadline: Duration::MAX,
            max_attempts: u32::MAX,
        };
        for jitter in [0.0, 0.5, 1.0, f64::NAN, f64::INFINITY, -1.0] {
            for retry_after in [None, Some(Duration::MAX), Some(Duration::ZERO)] {
                for attempt in [1, 2, 64, u32::MAX - 1] {
                    let _ = policy.decide(
                        Failure::Status(503),
                        attempt,
                        Duration::MAX,
                        retry_after,
                        jitter,
                    );
                    let _ = policy.decide(
                        Failure::Timeout,
                        attempt,
                        Duration::ZERO,
                        retry_after,
                        jitter,
                    );
                }
            }
        }
    }

    #[test]
    fn each_failure_is_retried_or_not_as_the_table_says() {
        let policy = RetryPolicy::default();
        let table: &[(Failure, bool)] = &[
            (Failure::Status(408), true),
            (Failure::Status(429), true),
            (Failure::Status(500), true),
            (Failure::Status(502), true),
            (Failure::Status(503), true),
            (Failure::Status(504), true),
            (Failure::Connect, true),
            (Failure::Timeout, true),
            (Failure::Transport, true),
            (Failure::Status(400), false),
            (Failure::Status(401), false),
            (Failure::Status(403), false),
            (Failure::Status(404), false),
            (Failure::Status(409), false),
            (Failure::Status(501), false),
            (Failure::Status(418), false),
            (Failure::Other, false),
        ];
        for &(failure, retried) in table {
            let decision = policy.decide(failure, 1, Duration::ZERO, None, 0.0);
            assert_eq!(
                matches!(decision, RetryAfter(_)),
                retried,
                "{failure:?}: {decision:?}"
            );
            if !retried {
                assert_eq!(decision, GiveUp(NotRetryable));
            }
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_with_jitter_between_half_and_all_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            deadline: S(3600),
            ..RetryPolicy::default()
        };
        let table: &[(u32, f64, Duration)] = &[
            (1, 1.0, MS(500)),
            (1, 0.0, MS(250)),
            (2, 1.0, S(1)),
            (3, 1.0, S(2)),
            (3, 0.5, MS(1500)),
            (7, 1.0, S(30)), // 32 s capped at 30 s
            (9, 0.0, S(15)),
        ];
        for &(attempt, jitter, expected) in table {
            assert_eq!(
                policy.decide(Failure::Status(503), attempt, Duration::ZERO, None, jitter),
                RetryAfter(expected),
                "attempt {attempt}, jitter {jitter}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_within_its_floor_and_cap() {
        let policy = RetryPolicy::default();
        let table: &[(Duration, Duration)] =
            &[(S(30), S(30)), (Duration::ZERO, MS(100)), (S(600), S(120))];
        for &(asked, waited) in table {
            assert_eq!(
                policy.decide(Failure::Status(429), 1, Duration::ZERO, Some(asked), 0.3),
                RetryAfter(waited),
                "Retry-After {asked:?}"
            );
        }
    }

    #[test]
    fn attempts_and_the_deadline_bound_the_retries() {
        let policy = RetryPolicy {
            max_attempts: 3,
            deadline: S(10),
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.decide(Failure::Status(503), 3, S(1), None, 0.0),
            GiveUp(Attempts)
        );
        assert_eq!(
            policy.decide(Failure::Status(429), 1, S(5), Some(S(6)), 0.0),
            GiveUp(Deadline)
        );
        assert_eq!(
            policy.decide(Failure::Status(429), 1, S(5), Some(S(5)), 0.0),
            RetryAfter(S(5))
        );
    }

    #[test]
    fn retries_can_be_switched_off() {
        assert_eq!(
            RetryPolicy::none().decide(Failure::Status(503), 1, Duration::ZERO, None, 0.0),
            GiveUp(Attempts)
        );
    }

    #[test]
    fn jitter_stays_in_range_and_spreads_different_calls_apart() {
        // 1,000 calls (request ids 0..1000, the least random input there is) at attempt 1: every
        // value in [0, 1], and they spread over the range instead of bunching, which is what
        // keeps many clients' retries from landing together.
        let values: Vec<f64> = (0..1000u128)
            .map(|n| jitter(&uuid::Uuid::from_u128(n), 1))
            .collect();
        assert!(values.iter().all(|j| (0.0..=1.0).contains(j)));
        let mut buckets = [0usize; 10];
        for j in &values {
            buckets[((j * 10.0) as usize).min(9)] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (50..=150).contains(&b)),
            "tenths of [0, 1] should each hold about 100 of 1,000: {buckets:?}"
        );
        // The attempt changes the value too, so one call's retries do not repeat one delay.
        let id = uuid::Uuid::from_u128(7);
        let per_attempt: std::collections::BTreeSet<u64> =
            (1..=8).map(|a| jitter(&id, a).to_bits()).collect();
        assert_eq!(per_attempt.len(), 8);
    }
}
