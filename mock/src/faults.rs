//! Fault injection: which requests get a 429, a 5xx, a dropped connection or a slow answer.
//!
//! Faults are drawn from a seeded generator, so a run with the same seed and the same requests in
//! the same order injects the same faults. A script of faults can also be queued; scripted faults
//! apply, in order, to the next requests before any random ones.

use std::str::FromStr;
use std::time::Duration;

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `Retry-After` (seconds) and the throttling body; the request has no effect.
    Throttle {
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// Answer this 5xx status (502 with an empty body, others with a Partner Center error body);
    /// the request has no effect.
    ServerError(u16),
    /// Close the connection without answering; the request has no effect.
    DropBefore,
    /// Process the request, then close the connection without answering: the effect happens
    /// but the answer is lost, as when a client times out.
    DropAfter,
    /// Wait this long, then process the request normally.
    Slow(Duration),
}

/// Probabilities of each fault, per request.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// Chance of a 429.
    pub throttle: f64,
    /// Chance of a 5xx.
    pub server_error: f64,
    /// Chance of a connection dropped before processing.
    pub drop_before: f64,
    /// Chance of a connection dropped after processing.
    pub drop_after: f64,
    /// Chance of a slow answer.
    pub slow: f64,
    /// How slow a slow answer is.
    pub slow_delay: Duration,
    /// The `Retry-After` seconds sent with a 429.
    pub retry_after: u64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            throttle: 0.0,
            server_error: 0.0,
            drop_before: 0.0,
            drop_after: 0.0,
            slow: 0.0,
            slow_delay: Duration::from_millis(1500),
            retry_after: 1,
        }
    }
}

impl FaultRates {
    /// True when no fault can be drawn.
    pub fn is_none(&self) -> bool {
        self.throttle + self.server_error + self.drop_before + self.drop_after + self.slow == 0.0
    }

    /// Draws the fault for one request from `roll` (uniform in `[0, 1)`) and `pick` (any value,
    /// used to choose the 5xx status).
    pub fn draw(&self, roll: f64, pick: u32) -> Option<Fault> {
        let mut edge = 0.0;
        let mut next = |rate: f64| {
            edge += rate;
            roll < edge
        };
        if next(self.throttle) {
            Some(Fault::Throttle {
                retry_after: self.retry_after,
            })
        } else if next(self.server_error) {
            Some(Fault::ServerError([500, 502, 503, 504][pick as usize % 4]))
        } else if next(self.drop_before) {
            Some(Fault::DropBefore)
        } else if next(self.drop_after) {
            Some(Fault::DropAfter)
        } else if next(self.slow) {
            Some(Fault::Slow(self.slow_delay))
        } else {
            None
        }
    }
}

/// Why a `--faults` specification was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpecError(String);

impl std::fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; expected comma-separated KEY=VALUE with keys 429, 5xx, drop, drop-after, slow \
             (rates from 0 to 1), slow-ms and retry-after (whole numbers), e.g. 429=0.1,5xx=0.05",
            self.0
        )
    }
}

impl std::error::Error for FaultSpecError {}

impl FromStr for FaultRates {
    type Err = FaultSpecError;

    /// Parses `429=0.1,5xx=0.05,drop=0.02,drop-after=0.02,slow=0.05,slow-ms=1500,retry-after=1`.
    /// `none` or an empty string means no faults.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut rates = FaultRates::default();
        let spec = spec.trim();
        if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
            return Ok(rates);
        }
        for part in spec.split(',').map(str::trim) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| FaultSpecError(format!("{part:?} has no '='")))?;
            let rate = || -> Result<f64, FaultSpecError> {
                let rate: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| FaultSpecError(format!("{value:?} is not a number")))?;
                if (0.0..=1.0).contains(&rate) {
                    Ok(rate)
                } else {
                    Err(FaultSpecError(format!(
                        "rate {rate} for {key} is not between 0 and 1"
                    )))
                }
            };
            let whole = || -> Result<u64, FaultSpecError> {
                value
                    .trim()
                    .parse()
                    .map_err(|_| FaultSpecError(format!("{value:?} is not a whole number")))
            };
            match key.trim() {
                "429" => rates.throttle = rate()?,
                "5xx" => rates.server_error = rate()?,
                "drop" => rates.drop_before = rate()?,
                "drop-after" => rates.drop_after = rate()?,
                "slow" => rates.slow = rate()?,
                "slow-ms" => rates.slow_delay = Duration::from_millis(whole()?),
                "retry-after" => rates.retry_after = whole()?,
                other => return Err(FaultSpecError(format!("unknown key {other:?}"))),
            }
        }
        let total =
            rates.throttle + rates.server_error + rates.drop_before + rates.drop_after + rates.slow;
        if total > 1.0 {
            return Err(FaultSpecError(format!(
                "the rates add up to {total}, more than 1"
            )));
        }
        Ok(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_specification_parses() {
        let rates: FaultRates =
            "429=0.1, 5xx=0.2,drop=0.05,drop-after=0.05,slow=0.1,slow-ms=20,retry-after=3"
                .parse()
                .unwrap();
        assert_eq!(rates.throttle, 0.1);
        assert_eq!(rates.server_error, 0.2);
        assert_eq!(rates.slow_delay, Duration::from_millis(20));
        assert_eq!(rates.retry_after, 3);
        assert!("none".parse::<FaultRates>().unwrap().is_none());
    }

    #[test]
    fn bad_specifications_say_what_is_wrong() {
        for (spec, says) in [
            ("429", "no '='"),
            ("429=lots", "not a number"),
            ("429=1.5", "not between 0 and 1"),
            ("teapot=0.1", "unknown key"),
            ("429=0.6,5xx=0.6", "more than 1"),
            ("slow-ms=-1", "whole number"),
        ] {
            let err = spec.parse::<FaultRates>().unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn draws_follow_the_rates_in_order() {
        let rates: FaultRates = "429=0.1,5xx=0.1,drop=0.1,drop-after=0.1,slow=0.1"
            .parse()
            .unwrap();
        assert_eq!(
            rates.draw(0.05, 0),
            Some(Fault::Throttle { retry_after: 1 })
        );
        assert_eq!(rates.draw(0.15, 1), Some(Fault::ServerError(502)));
        assert_eq!(rates.draw(0.25, 0), Some(Fault::DropBefore));
        assert_eq!(rates.draw(0.35, 0), Some(Fault::DropAfter));
        assert!(matches!(rates.draw(0.45, 0), Some(Fault::Slow(_))));
        assert_eq!(rates.draw(0.55, 0), None);
    }
}
