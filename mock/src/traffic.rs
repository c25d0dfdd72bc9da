//! Throttling and traffic counts: one token bucket for the mock's one partner
//! ([`crate::MockConfig::throttle`]), checked for every API request before faults are drawn, and
//! what every request got, per second (a bounded ring of the last [`TRAFFIC_WINDOW_SECONDS`])
//! and since start.
//!
//! The bucket is a pure value driven by the caller's clock, so its arithmetic is tested without
//! waiting: it holds at most `burst` tokens, gains `rate` a second, and a request takes one. An
//! empty bucket tells how long until the next token; the mock answers 429 with that many whole
//! seconds (at least 1) in `Retry-After`, and a throttled request takes nothing, so a client
//! that waits as told gets through.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};

/// How many seconds of per-second counts the mock keeps: 4 hours.
pub const TRAFFIC_WINDOW_SECONDS: u64 = 4 * 3600;

/// The mock's rate limit: a token bucket per partner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Tokens gained per second: the sustained rate, in requests per second.
    pub rate: f64,
    /// The most tokens held: how many requests may come at once after a quiet spell.
    pub burst: u32,
}

impl ThrottleConfig {
    /// Why this configuration cannot run, if it cannot: a rate that is not a positive finite
    /// number, or a burst of zero (no request could ever pass).
    pub fn problem(&self) -> Option<String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Some(format!(
                "the throttle's rate {} is not a positive number of requests per second",
                self.rate
            ));
        }
        (self.burst == 0).then(|| "the throttle's burst must be at least 1".to_owned())
    }
}

impl FromStr for ThrottleConfig {
    type Err = String;

    /// Parses `RPS[,burst=N]`, e.g. `10`, `0.5,burst=3`. Without `burst`, it is one second's
    /// worth of requests (at least 1).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let expected = "expected RPS[,burst=N], e.g. 10 or 0.5,burst=3";
        let mut parts = spec.split(',').map(str::trim);
        let rate: f64 = parts
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("{spec:?}: the rate is not a number; {expected}"))?;
        let mut burst = None;
        for part in parts {
            let value = part
                .strip_prefix("burst=")
                .ok_or_else(|| format!("{spec:?}: unknown part {part:?}; {expected}"))?;
            burst = Some(value.trim().parse::<u32>().map_err(|_| {
                format!("{spec:?}: burst {value:?} is not a whole number; {expected}")
            })?);
        }
        let config = ThrottleConfig {
            rate,
            // One second's worth, so `--throttle 10` lets ten requests arrive together.
            burst: burst.unwrap_or_else(|| rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32),
        };
        match config.problem() {
            Some(problem) => Err(format!("{spec:?}: {problem}; {expected}")),
            None => Ok(config),
        }
    }
}

/// A token bucket on the caller's clock (`now` is any monotonic time since a fixed start).
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time zero.
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        TokenBucket {
            rate: config.rate,
            burst: f64::from(config.burst),
            tokens: f64::from(config.burst),
            last: Duration::ZERO,
        }
    }

    /// Takes a token at `now`; when there is none, takes nothing and says how many whole
    /// seconds (at least 1) until one is there.
    pub(crate) fn take(&mut self, now: Duration) -> Result<(), u64> {
        // A clock that went backwards gains nothing (and loses nothing).
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / self.rate;
        // `as` saturates: a very small rate gives a very long, but finite, wait.
        Err((wait.ceil() as u64).max(1))
    }
}

/// What requests got, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Requests that reached the mock (API and sign-in; the `/_mock/` admin pages are not
    /// counted), throttled and faulted ones included.
    pub requests: u64,
    /// Requests answered 429 by the throttle ([`crate::MockConfig::throttle`]).
    pub throttled: u64,
    /// Requests answered 429 by an injected fault.
    pub fault429: u64,
    /// Requests answered with an injected 5xx.
    pub fault5xx: u64,
    /// Connections dropped by an injected fault, before or after processing.
    pub fault_drop: u64,
}

impl TrafficCounts {
    fn add(&mut self, event: Event) {
        match event {
            Event::Request => self.requests += 1,
            Event::Throttled => self.throttled += 1,
            Event::Fault429 => self.fault429 += 1,
            Event::Fault5xx => self.fault5xx += 1,
            Event::FaultDrop => self.fault_drop += 1,
        }
    }

    /// The counts as JSON: `{requests, throttled, fault429, fault5xx, faultDrop}`.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "throttled": self.throttled,
            "fault429": self.fault429,
            "fault5xx": self.fault5xx,
            "faultDrop": self.fault_drop,
        })
    }

    /// `self - earlier`, each count (for a rate over an interval).
    pub fn since(&self, earlier: &TrafficCounts) -> TrafficCounts {
        TrafficCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            fault429: self.fault429.saturating_sub(earlier.fault429),
            fault5xx: self.fault5xx.saturating_sub(earlier.fault5xx),
            fault_drop: self.fault_drop.saturating_sub(earlier.fault_drop),
        }
    }
}

/// One second's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSecond {
    /// The second, in seconds since the Unix epoch (UTC), so it lines up with a client's
    /// timestamps.
    pub second: u64,
    /// What the requests of that second got.
    pub counts: TrafficCounts,
}

/// The mock's traffic: per second, for the seconds that had any within the last
/// [`TRAFFIC_WINDOW_SECONDS`] (oldest first), and since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Seconds with traffic, oldest first.
    pub seconds: Vec<TrafficSecond>,
    /// Every count since start (never forgotten).
    pub totals: TrafficCounts,
}

impl Traffic {
    /// The traffic as JSON, as `GET /_mock/traffic` serves it:
    /// `{"seconds": [{second, requests, throttled, fault429, fault5xx, faultDrop}], "totals": {...}}`.
    pub fn to_json(&self) -> Value {
        let seconds: Vec<Value> = self
            .seconds
            .iter()
            .map(|s| {
                let mut counts = s.counts.to_json();
                counts["second"] = json!(s.second);
                counts
            })
            .collect();
        json!({ "seconds": seconds, "totals": self.totals.to_json() })
    }
}

/// Something a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Request,
    Throttled,
    Fault429,
    Fault5xx,
    FaultDrop,
}

/// The bucket, if any, and the counts.
#[derive(Debug)]
pub(crate) struct Meter {
    bucket: Option<TokenBucket>,
    ring: VecDeque<TrafficSecond>,
    totals: TrafficCounts,
}

impl Meter {
    pub(crate) fn new(throttle: Option<ThrottleConfig>) -> Self {
        Meter {
            bucket: throttle.map(TokenBucket::new),
            ring: VecDeque::new(),
            totals: TrafficCounts::default(),
        }
    }

    /// Takes a token at `now` (always granted without a throttle).
    pub(crate) fn admit(&mut self, now: Duration) -> Result<(), u64> {
        self.bucket
            .as_mut()
            .map_or(Ok(()), |bucket| bucket.take(now))
    }

    /// Counts `event` in `second` (Unix seconds). A second earlier than the newest (the wall
    /// clock stepped back) is counted in the newest, so the ring stays in order.
    pub(crate) fn record(&mut self, second: u64, event: Event) {
        self.totals.add(event);
        match self.ring.back_mut() {
            Some(newest) if newest.second >= second => newest.counts.add(event),
            _ => {
                let mut counts = TrafficCounts::default();
                counts.add(event);
                self.ring.push_back(TrafficSecond { second, counts });
            }
        }
        let newest = self.ring.back().map_or(second, |s| s.second);
        while self.ring.front().is_some_and(|oldest| {
            oldest.second + TRAFFIC_WINDOW_SECONDS <= newest
                || self.ring.len() as u64 > TRAFFIC_WINDOW_SECONDS
        }) {
            self.ring.pop_front();
        }
    }

    pub(crate) fn snapshot(&self) -> Traffic {
        Traffic {
            seconds: self.ring.iter().copied().collect(),
            totals: self.totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bucket_lets_a_burst_through_then_says_when_the_next_token_comes() {
        let mut bucket = TokenBucket::new(ThrottleConfig {
            rate: 0.5,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(bucket.take(secs(0.0)), Ok(()));
        }
        // Empty: one token takes 2 s at 0.5/s.
        assert_eq!(bucket.take(secs(0.0)), Err(2));
        // A refused request took nothing: 1.5 s later, 0.75 of a token, 0.5 s to go, rounded up.
        assert_eq!(bucket.take(secs(1.5)), Err(1));
        assert_eq!(bucket.take(secs(2.0)), Ok(()));
        // A long quiet spell refills to the burst, no further.
        for _ in 0..3 {
            assert_eq!(bucket.take(secs(1000.0)), Ok(()));
        }
        assert_eq!(bucket.take(secs(1000.0)), Err(2));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let mut fast = TokenBucket::new(ThrottleConfig {
            rate: 100.0,
            burst: 1,
        });
        assert_eq!(fast.take(secs(0.0)), Ok(()));
        assert_eq!(fast.take(secs(0.0)), Err(1), "10 ms is said as 1 s");
        let mut slow = TokenBucket::new(ThrottleConfig {
            rate: 0.001,
            burst: 1,
        });
        assert_eq!(slow.take(secs(0.0)), Ok(()));
        assert_eq!(slow.take(secs(0.0)), Err(1000));
        assert_eq!(slow.take(secs(0.5)), Err(1000), "999.5 s rounds up");
        // A clock that steps back neither refills nor breaks the bucket.
        assert_eq!(slow.take(secs(0.1)), Err(1000));
    }

    #[test]
    fn throttle_specifications_parse_or_say_what_is_wrong() {
        assert_eq!(
            "10".parse(),
            Ok(ThrottleConfig {
                rate: 10.0,
                burst: 10
            })
        );
        assert_eq!(
            "0.5, burst=3".parse(),
            Ok(ThrottleConfig {
                rate: 0.5,
                burst: 3
            })
        );
        assert_eq!(
            "0.2".parse::<ThrottleConfig>().map(|t| t.burst),
            Ok(1),
            "at least one"
        );
        for (spec, says) in [
            ("fast", "not a number"),
            ("0", "positive"),
            ("-1", "positive"),
            ("NaN", "positive"),
            ("inf", "positive"),
            ("1,burst=0", "at least 1"),
            ("1,burst=x", "whole number"),
            ("1,size=3", "unknown part"),
        ] {
            let error = spec.parse::<ThrottleConfig>().unwrap_err();
            assert!(error.contains(says), "{spec}: {error}");
        }
    }

    #[test]
    fn the_ring_keeps_four_hours_of_seconds_and_the_totals_forever() {
        let mut meter = Meter::new(None);
        meter.record(100, Event::Request);
        meter.record(100, Event::Throttled);
        meter.record(101, Event::Request);
        meter.record(99, Event::FaultDrop); // the clock stepped back: counted in 101
        let traffic = meter.snapshot();
        assert_eq!(traffic.seconds.len(), 2);
        assert_eq!(traffic.seconds[0].counts.throttled, 1);
        assert_eq!(traffic.seconds[1].counts.fault_drop, 1);
        meter.record(100 + TRAFFIC_WINDOW_SECONDS, Event::Fault5xx);
        let traffic = meter.snapshot();
        assert_eq!(
            traffic.seconds.iter().map(|s| s.second).collect::<Vec<_>>(),
            [101, 100 + TRAFFIC_WINDOW_SECONDS],
            "second 100 is four hours old"
        );
        assert_eq!(
            traffic.totals,
            TrafficCounts {
                requests: 2,
                throttled: 1,
                fault429: 0,
                fault5xx: 1,
                fault_drop: 1
            }
        );
        for second in 0..2 * TRAFFIC_WINDOW_SECONDS {
            meter.record(200_000 + second, Event::Request);
        }
        assert_eq!(meter.ring.len() as u64, TRAFFIC_WINDOW_SECONDS);
        assert_eq!(
            meter.snapshot().to_json()["seconds"][0]["second"],
            json!(200_000 + TRAFFIC_WINDOW_SECONDS)
        );
    }
}
