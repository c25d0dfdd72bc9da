//! One throttle for everything a partner sends: Partner Center limits all three operations per
//! partner, and does not publish the limits (`../shared/reference`, throttling), so a bulk run
//! must find the limit itself and share it among its workers.
//!
//! The idea is the AWS SDKs' *adaptive* retry mode: a client-side token bucket whose fill rate
//! falls when answers say "throttled" and grows back along a cubic curve (CUBIC congestion
//! control), so the run settles just under the limit instead of bouncing off it. It is written
//! here because the one maintained implementation lives inside the AWS SDK's runtime; `governor`
//! and friends limit to a rate they are told, they do not learn one.
//!
//! Two departures from AWS, both because a `429` is not always about the sender's rate: Partner
//! Center may also limit per partner *and customer*, and a stray `429` must not collapse a run
//! of thousands.
//! - The rate is cut at most once per window (one second), and only when that window's share of
//!   `429`s rises above the share seen when the run was well under its limit (the noise floor)
//!   by more than chance explains.
//! - Once a limit is known, a `429` pauses *every* caller until its `Retry-After` when the
//!   throttling is partner-wide: the throttled share of the last second is above the noise floor
//!   by more than chance explains (with few answers: at least two `429`s, over a fifth of them).
//!   A lone `429` delays only its own call, whose retry waits the `Retry-After` anyway. The pause
//!   defers requests without forfeiting them: what the rate would have sent goes out after it.
//!
//! Status polls have their own lane: they may use only [`ThrottleConfig::poll_share`] of the rate
//! while other calls are being made, so a thousand upgrades in flight cannot crowd out the
//! creates; with nothing else to send, polls use the whole rate.
//!
//! [`RateController`] is the pure decision (time is a number of seconds), tested as a table;
//! [`Throttle`] is the thin async shell the client waits on before each attempt.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Eligibility checks and creates.
    Calls,
    /// Status polls.
    Polls,
}

/// How a throttle starts and the bounds it keeps to.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// Requests per second before any answer said "throttled"; `None` sends as fast as the
    /// callers do until the first `429` (AWS starts the same way).
    pub initial_rate: Option<f64>,
    /// The rate never falls below this (requests per second).
    pub min_rate: f64,
    /// The rate never rises above this (requests per second).
    pub max_rate: f64,
    /// The share of the rate status polls may use while other calls are being made.
    pub poll_share: f64,
    /// A pause never lasts longer than this, whatever `Retry-After` says.
    pub max_pause: Duration,
}

impl ThrottleConfig {
    /// The configuration with every bound usable: a rate that is not a positive finite number
    /// falls back to the default's, `max_rate` is at least `min_rate`, the share is within
    /// 0 to 1. (Its fields are public; the controller must not panic on a crossed pair.)
    fn sane(self) -> ThrottleConfig {
        let defaults = ThrottleConfig::default();
        let positive = |r: f64, fallback: f64| {
            if r.is_finite() && r > 0.0 {
                r
            } else {
                fallback
            }
        };
        let min_rate = positive(self.min_rate, defaults.min_rate);
        let max_rate = positive(self.max_rate, defaults.max_rate).max(min_rate);
        let poll_share = if self.poll_share.is_finite() {
            self.poll_share.clamp(0.0, 1.0)
        } else {
            defaults.poll_share
        };
        ThrottleConfig {
            initial_rate: self.initial_rate.filter(|r| r.is_finite() && *r > 0.0),
            min_rate,
            max_rate,
            poll_share,
            max_pause: self.max_pause,
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            initial_rate: None,
            min_rate: 0.5,
            max_rate: 10_000.0,
            poll_share: 0.5,
            max_pause: Duration::from_secs(120),
        }
    }
}

/// CUBIC's multiplicative decrease: after a cut the rate is this share of the rate that was
/// throttled. AWS uses 0.7; a cut here is made only on clear evidence (see [`RateController`]),
/// so a shallower one keeps more of the limit while the curve climbs back.
const BETA: f64 = 0.9;
/// CUBIC's scaling constant (AWS's value): how fast the curve climbs back.
const SCALE: f64 = 0.4;
/// Weight of the newest window in the measured send rate (AWS's smoothing).
const SMOOTH: f64 = 0.8;
/// One window: the measured rate, the throttled share and the cut decision are per window.
const WINDOW: f64 = 1.0;
/// Windows whose throttled share sets the noise floor (their lower quartile).
const NOISE_WINDOWS: usize = 16;
/// A window with fewer answers than this says too little about the noise floor.
const MIN_ANSWERS: u32 = 20;
/// The smallest rise above the noise floor that counts as throttling.
const MIN_MARGIN: f64 = 0.01;
/// The noise floor is never taken to be above this: a window with a larger share of `429`s is
/// throttled whatever came before (a run that starts far over its limit must not learn its own
/// overload as noise).
const MAX_NOISE: f64 = 0.2;
/// The bucket holds at most this many seconds of tokens: a short burst, not a second's worth
/// (a full second at once is what trips a server's own bucket).
const BURST_SECONDS: f64 = 0.05;
/// The CUSUM's slack and limit, in standard deviations per window: a rise of about one
/// standard deviation (2% at 300 answers a second) is found within a few windows, chance
/// alone rarely adds up to the limit.
const DRIFT_SLACK: f64 = 0.5;
const DRIFT_LIMIT: f64 = 3.0;
/// Slices of the sliding second the pause decision reads.
const SLICES: usize = 10;

/// What the throttle learned so far, for reports.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ThrottleStats {
    /// The current rate (requests per second), or `None` while no limit has been met.
    pub rate: Option<f64>,
    /// The rate the last cut was made from.
    pub last_max: Option<f64>,
    /// The measured send rate (requests per second).
    pub measured: f64,
    /// The throttled share of answers when the run was under its limit.
    pub noise: f64,
    /// Times the rate was cut.
    pub cuts: u64,
    /// Times every caller was paused.
    pub pauses: u64,
    /// `429` answers seen.
    pub throttled: u64,
    /// Answers seen (`429`s included).
    pub answers: u64,
}

/// The pure rate decision: a token bucket whose fill rate follows CUBIC, fed with answers.
/// `now` is in seconds from any fixed origin.
#[derive(Debug, Clone)]
pub struct RateController {
    config: ThrottleConfig,
    rate: Option<f64>,
    last_max: f64,
    last_cut: f64,
    curve_offset: f64,
    tokens: f64,
    poll_tokens: f64,
    last_refill: f64,
    paused_until: f64,
    /// Requests a pause deferred, sent as soon as it ends (see [`RateController::observe`]).
    deferred: f64,
    // The current window.
    window_start: f64,
    window_sent: u32,
    window_answers: u32,
    window_throttled: u32,
    measured: f64,
    shares: VecDeque<f64>,
    /// Answers and 429s of recent windows spent below the rate of the last cut, uncut.
    calm: VecDeque<(u32, u32)>,
    /// The CUSUM of the 429s' rise above the noise floor, in standard deviations.
    excess: f64,
    noise: f64,
    /// The shares and answer counts of the windows cut in a row, and the rate before them.
    streak: Vec<(f64, u32)>,
    before_streak: Option<f64>,
    // The sliding second, for pauses: (slice start, answers, throttled).
    slices: VecDeque<(f64, u32, u32)>,
    last_asked: [f64; 2],
    stats: ThrottleStats,
}

impl RateController {
    /// A controller that starts at `now`.
    pub fn new(config: ThrottleConfig, now: f64) -> Self {
        let config = config.sane();
        let rate = config
            .initial_rate
            .map(|r| r.clamp(config.min_rate, config.max_rate));
        RateController {
            rate,
            last_max: rate.unwrap_or(0.0),
            last_cut: now,
            curve_offset: 0.0,
            tokens: 1.0,
            poll_tokens: 1.0,
            last_refill: now,
            paused_until: now,
            deferred: 0.0,
            window_start: now,
            window_sent: 0,
            window_answers: 0,
            window_throttled: 0,
            measured: 0.0,
            shares: VecDeque::with_capacity(NOISE_WINDOWS),
            noise: 0.0,
            calm: VecDeque::with_capacity(NOISE_WINDOWS),
            excess: 0.0,
            streak: Vec::with_capacity(3),
            before_streak: None,
            slices: VecDeque::with_capacity(SLICES + 1),
            last_asked: [f64::NEG_INFINITY; 2],
            stats: ThrottleStats {
                rate,
                last_max: None,
                measured: 0.0,
                noise: 0.0,
                cuts: 0,
                pauses: 0,
                throttled: 0,
                answers: 0,
            },
            config,
        }
    }

    /// What the controller learned so far.
    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            rate: self.rate,
            measured: self.measured,
            noise: self.noise,
            ..self.stats
        }
    }

    /// Takes a token for one request on `lane` at `now`, or says how many seconds to wait
    /// before asking again.
    ///
    /// Each lane has its own bucket. While both lanes are asking, polls fill at
    /// [`ThrottleConfig::poll_share`] of the rate and calls at the rest; a lane alone uses the
    /// whole rate.
    pub fn try_acquire(&mut self, lane: Lane, now: f64) -> Result<(), f64> {
        self.roll_window(now);
        self.last_asked[lane as usize] = now;
        if now < self.paused_until {
            return Err(self.paused_until - now);
        }
        let Some(rate) = self.rate else {
            self.window_sent += 1;
            return Ok(());
        };
        self.refill(rate, now);
        if self.deferred >= 1.0 {
            self.deferred -= 1.0;
            self.window_sent += 1;
            return Ok(());
        }
        let (calls_rate, polls_rate) = self.lane_rates(rate, now);
        let (tokens, lane_rate) = match lane {
            Lane::Calls => (&mut self.tokens, calls_rate),
            Lane::Polls => (&mut self.poll_tokens, polls_rate),
        };
        if *tokens < 1.0 {
            return Err((1.0 - *tokens) / lane_rate.max(1e-9));
        }
        *tokens -= 1.0;
        self.window_sent += 1;
        Ok(())
    }

    /// The fill rates of the calls' and the polls' buckets.
    fn lane_rates(&self, rate: f64, now: f64) -> (f64, f64) {
        let active = |lane: Lane| now - self.last_asked[lane as usize] < WINDOW;
        let share = self.config.poll_share.clamp(0.0, 1.0);
        match (active(Lane::Calls), active(Lane::Polls)) {
            (true, true) => (rate * (1.0 - share), rate * share),
            _ => (rate, rate),
        }
    }

    fn refill(&mut self, rate: f64, now: f64) {
        let elapsed = (now - self.last_refill).max(0.0);
        self.last_refill = now;
        let (calls, polls) = self.lane_rates(rate, now);
        let capacity = |r: f64| (r * BURST_SECONDS).max(1.0);
        self.tokens = (self.tokens + elapsed * calls).min(capacity(calls));
        self.poll_tokens = (self.poll_tokens + elapsed * polls).min(capacity(polls));
    }

    /// Feeds one answer: `throttled` when it was a `429`, with its `Retry-After`. Returns the
    /// pause every caller now waits, if this answer started or lengthened one.
    pub fn observe(
        &mut self,
        throttled: bool,
        retry_after: Option<Duration>,
        now: f64,
    ) -> Option<Duration> {
        self.roll_window(now);
        self.stats.answers += 1;
        self.window_answers += 1;
        // While paused, answers are to requests sent before the pause: the pause already
        // covers them, and counting them would start the next pause from old news.
        if now >= self.paused_until {
            self.slice(now, throttled);
        }
        if !throttled {
            return None;
        }
        self.stats.throttled += 1;
        self.window_throttled += 1;
        // Before a limit is known, a 429 delays only its own call (its retry waits the
        // Retry-After): pausing on the first ones would leave nothing to measure the rate by.
        let (answers, throttled_recently) = self.recent(now);
        if self.rate.is_none() || !self.is_throttling(answers, throttled_recently) {
            return None;
        }
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1))
            .min(self.config.max_pause);
        let until = now + pause.as_secs_f64();
        if until > self.paused_until {
            // A pause defers requests, it does not forfeit them: what the rate would have sent
            // during it goes out when it ends, so the run's average rate is kept and only its
            // timing moves. A server's own bucket fills during the pause just the same.
            // Half a second's worth at most: more at once would meet the server's bucket
            // just as it refilled, and be throttled again.
            let paused = (until - self.paused_until.max(now)).min(WINDOW / 2.0);
            let rate = self.rate.unwrap_or(self.measured);
            self.deferred = (self.deferred + rate * paused).min(rate * WINDOW / 2.0);
            self.slices.clear();
            self.paused_until = until;
            self.stats.pauses += 1;
            Some(pause)
        } else {
            None
        }
    }

    /// Whether `throttled` of `answers` is more than the noise floor and chance explain.
    fn is_throttling(&self, answers: u32, throttled: u32) -> bool {
        if throttled == 0 {
            return false;
        }
        // Three standard deviations of the share noise alone would give to this many answers:
        // a few answers need a large share to count, many answers a small rise.
        let n = f64::from(answers);
        let share = f64::from(throttled) / n;
        if answers < MIN_ANSWERS {
            // Too few answers to tell a limit from chance: it takes more than one 429, and
            // more of them than noise is ever taken to be.
            return throttled >= 2 && share > MAX_NOISE;
        }
        let p = self.noise.clamp(0.001, 0.999);
        let margin = (3.0 * (p * (1.0 - p) / n).sqrt()).max(MIN_MARGIN);
        share > self.noise + margin
    }

    fn slice(&mut self, now: f64, throttled: bool) {
        let width = WINDOW / SLICES as f64;
        match self.slices.back_mut() {
            Some((start, answers, hits)) if now - *start < width => {
                *answers += 1;
                *hits += u32::from(throttled);
            }
            _ => self.slices.push_back((now, 1, u32::from(throttled))),
        }
        while self
            .slices
            .front()
            .is_some_and(|(start, _, _)| now - *start >= WINDOW)
        {
            self.slices.pop_front();
        }
    }

    fn recent(&self, now: f64) -> (u32, u32) {
        self.slices
            .iter()
            .filter(|(start, _, _)| now - *start < WINDOW)
            .fold((0, 0), |(a, t), (_, answers, hits)| (a + answers, t + hits))
    }

    /// Closes every window that ended by `now`: measures the send rate, then cuts the rate or
    /// lets it climb.
    fn roll_window(&mut self, now: f64) {
        while now - self.window_start >= WINDOW {
            let sent = f64::from(self.window_sent);
            self.measured = SMOOTH * (sent / WINDOW) + (1.0 - SMOOTH) * self.measured;
            let (answers, throttled) = (self.window_answers, self.window_throttled);
            let end = self.window_start + WINDOW;
            // The bucket starts at the first window that shows a limit (a window, not a lone
            // answer: the rate it starts from must be measured).
            let enough = self.rate.is_some() || answers >= MIN_ANSWERS;
            let share = f64::from(throttled) / f64::from(answers.max(1));
            if enough
                && (self.is_throttling(answers, throttled) || self.drifting(answers, throttled))
            {
                self.excess = 0.0;
                if self.streak.is_empty() {
                    self.before_streak = self.rate;
                }
                self.cut(end);
                if answers >= MIN_ANSWERS {
                    self.streak.push((share, answers));
                }
                self.undo_if_noise();
            } else {
                self.streak.clear();
                let recovering = self.rate.is_some_and(|rate| rate < 0.97 * self.last_max);
                self.climb(end);
                if answers >= MIN_ANSWERS && recovering {
                    // Below the rate the last cut was made from, and not cut: what 429s come
                    // now are noise. Their pooled share is the best floor there is.
                    if self.calm.len() == NOISE_WINDOWS {
                        self.calm.pop_front();
                    }
                    self.calm.push_back((answers, throttled));
                }
                if answers >= MIN_ANSWERS {
                    // The noise floor: a low quantile of the shares of windows that were not
                    // cut. Not the lowest: the lowest of many windows is the luckiest, and
                    // chance above it would read as a limit.
                    if self.shares.len() == NOISE_WINDOWS {
                        self.shares.pop_front();
                    }
                    self.shares.push_back(share);
                    self.update_noise();
                }
            }
            self.window_start = end;
            self.window_sent = 0;
            self.window_answers = 0;
            self.window_throttled = 0;
            // A long idle gap: no need to replay every empty window.
            if now - self.window_start > 60.0 * WINDOW {
                self.window_start = now;
            }
        }
    }

    /// A small rise above the noise floor, kept up over several windows (a CUSUM): one window
    /// of `n` answers cannot tell a 2% rise from chance, five in a row can.
    fn drifting(&mut self, answers: u32, throttled: u32) -> bool {
        if self.rate.is_none() || answers < MIN_ANSWERS {
            return false;
        }
        let n = f64::from(answers);
        let p = self.noise.clamp(0.001, 0.999);
        let z = (f64::from(throttled) - p * n) / (n * p * (1.0 - p)).sqrt();
        self.excess = (self.excess + z - DRIFT_SLACK).max(0.0);
        self.excess > DRIFT_LIMIT
    }

    fn update_noise(&mut self) {
        if self.calm.len() >= 3 {
            let (answers, throttled) = self.calm.iter().fold((0u64, 0u64), |(a, t), (n, h)| {
                (a + u64::from(*n), t + u64::from(*h))
            });
            self.noise = (throttled as f64 / answers as f64).min(MAX_NOISE);
            return;
        }
        let mut sorted: Vec<f64> = self.shares.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        self.noise = sorted
            .get(sorted.len() / 4)
            .copied()
            .unwrap_or(0.0)
            .min(MAX_NOISE);
    }

    /// Cuts that change nothing are not about the rate: three windows in a row cut, each with
    /// the same share of 429s (within chance) and no more than noise is ever taken to be, make
    /// that share the noise floor, and the rate goes back to where it was before them.
    fn undo_if_noise(&mut self) {
        if self.streak.len() < 3 {
            return;
        }
        let answers: u32 = self.streak.iter().map(|(_, n)| n).sum();
        let mean = self
            .streak
            .iter()
            .map(|(s, n)| s * f64::from(*n))
            .sum::<f64>()
            / f64::from(answers);
        let steady = self.streak.iter().all(|(share, n)| {
            let sigma = (mean * (1.0 - mean) / f64::from(*n)).sqrt();
            (share - mean).abs() <= 3.0 * sigma + MIN_MARGIN
        });
        if steady && mean <= MAX_NOISE {
            self.shares.clear();
            self.calm.clear();
            self.shares.push_back(mean);
            self.update_noise();
            if let Some(rate) = self.before_streak {
                self.rate = Some(rate);
                self.last_max = rate;
                self.curve_offset = 0.0;
                self.stats.rate = self.rate;
            }
            self.stats.cuts = self.stats.cuts.saturating_sub(self.streak.len() as u64);
        }
        self.streak.clear();
    }

    /// CUBIC's decrease: remember the rate that was throttled, fall to [`BETA`] of it.
    fn cut(&mut self, now: f64) {
        // From the bucket's rate, or before there is one, from what was being sent. (Not the
        // smaller of the two, as AWS does: a window cut short by a pause would read as a low
        // rate. The climb is held to twice the measured rate instead.)
        let from = self
            .rate
            .unwrap_or_else(|| self.measured.max(self.config.min_rate));
        self.last_max = from.clamp(self.config.min_rate, self.config.max_rate);
        self.last_cut = now;
        self.curve_offset = (self.last_max * (1.0 - BETA) / SCALE).cbrt();
        self.rate = Some((self.last_max * BETA).clamp(self.config.min_rate, self.config.max_rate));
        self.stats.cuts += 1;
        self.stats.last_max = Some(self.last_max);
        self.stats.rate = self.rate;
    }

    /// CUBIC's growth: back to the throttled rate along the curve, then beyond it, never
    /// more than twice what is being sent (a rate no one uses proves nothing).
    fn climb(&mut self, now: f64) {
        let Some(_) = self.rate else { return };
        let t = now - self.last_cut - self.curve_offset;
        let curve = SCALE * t * t * t + self.last_max;
        let ceiling = (2.0 * self.measured).max(self.last_max * BETA);
        let rate = curve
            .min(ceiling)
            .clamp(self.config.min_rate, self.config.max_rate);
        self.rate = Some(rate);
        self.stats.rate = self.rate;
    }
}

/// The throttle a client waits on before every attempt; clones share it. See the module docs.
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Mutex<RateController>>,
    origin: Instant,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Throttle {
    /// A throttle starting now.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            inner: Arc::new(Mutex::new(RateController::new(config, 0.0))),
            origin: Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateController> {
        // The controller holds numbers only; a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a request on `lane` may be sent.
    pub async fn acquire(&self, lane: Lane) {
        loop {
            let wait = match self.lock().try_acquire(lane, self.now()) {
                Ok(()) => return,
                Err(wait) => wait,
            };
            // Never a busy loop: at least a millisecond, at most the longest pause.
            let wait = Duration::from_secs_f64(wait.clamp(0.001, 120.0));
            tokio::time::sleep(wait).await;
        }
    }

    /// Feeds an answer's status and `Retry-After`.
    pub fn observe(&self, status: u16, retry_after: Option<Duration>) {
        let pause = self.lock().observe(status == 429, retry_after, self.now());
        if let Some(pause) = pause {
            tracing::debug!(
                pause_ms = pause.as_millis() as u64,
                "throttled: every caller waits"
            );
        }
    }

    /// What the throttle learned so far.
    pub fn stats(&self) -> ThrottleStats {
        self.lock().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(initial: Option<f64>) -> RateController {
        RateController::new(
            ThrottleConfig {
                initial_rate: initial,
                ..ThrottleConfig::default()
            },
            0.0,
        )
    }

    #[test]
    fn with_no_limit_met_every_request_goes_at_once() {
        let mut c = controller(None);
        for i in 0..1000 {
            assert_eq!(c.try_acquire(Lane::Calls, f64::from(i) * 1e-4), Ok(()));
        }
    }

    #[test]
    fn a_throttled_window_starts_the_bucket_and_then_a_429_pauses_everyone() {
        let mut c = controller(None);
        // One second of 100 requests, half of them throttled.
        for i in 0..100 {
            let t = f64::from(i) * 0.01;
            c.try_acquire(Lane::Calls, t).unwrap();
            assert_eq!(c.observe(i % 2 == 0, Some(Duration::from_secs(3)), t), None);
        }
        assert_eq!(c.stats().rate, None, "no bucket before the window closes");
        c.try_acquire(Lane::Calls, 1.0).unwrap();
        assert!(
            c.stats().rate.is_some(),
            "the throttled window started the bucket"
        );
        // Now a 429 among many: every caller waits its Retry-After.
        for i in 0..20 {
            c.observe(
                true,
                Some(Duration::from_secs(3)),
                1.0 + f64::from(i) * 0.001,
            );
        }
        assert_eq!(c.try_acquire(Lane::Calls, 2.0).unwrap_err().round(), 2.0);
        assert_eq!(c.try_acquire(Lane::Polls, 2.0).unwrap_err().round(), 2.0);
        assert!(c.try_acquire(Lane::Calls, 4.1).is_ok(), "after the pause");
        assert!(c.stats().pauses >= 1);
    }

    #[test]
    fn a_lone_429_among_many_answers_pauses_no_one() {
        let mut c = controller(Some(1000.0));
        for i in 0..200 {
            let t = f64::from(i) * 0.004;
            let _ = c.try_acquire(Lane::Calls, t);
            c.observe(false, None, t);
        }
        assert_eq!(c.observe(true, Some(Duration::from_secs(5)), 0.8), None);
        assert!(c.try_acquire(Lane::Calls, 0.81).is_ok());
    }

    #[test]
    fn a_bucket_spaces_requests_at_its_rate() {
        let mut c = controller(Some(10.0));
        // One token to start; the next comes a tenth of a second later.
        assert!(c.try_acquire(Lane::Calls, 0.0).is_ok());
        let wait = c.try_acquire(Lane::Calls, 0.0).unwrap_err();
        assert!((wait - 0.1).abs() < 1e-9, "{wait}");
        assert!(c.try_acquire(Lane::Calls, 0.1).is_ok());
    }

    #[test]
    fn polls_get_their_share_while_calls_are_made_and_the_whole_rate_otherwise() {
        let mut c = controller(Some(100.0));
        // Calls and polls both asking, for one second: polls get about half.
        let (mut calls, mut polls) = (0, 0);
        let mut t = 0.0;
        while t < 0.999 {
            if c.try_acquire(Lane::Calls, t).is_ok() {
                calls += 1;
            }
            if c.try_acquire(Lane::Polls, t).is_ok() {
                polls += 1;
            }
            t += 0.001;
        }
        assert!(calls + polls <= 106, "{calls} + {polls}");
        assert!((40..=60).contains(&polls), "polls {polls}, calls {calls}");
        // A second later with no calls: polls take the whole rate.
        let mut polls = 0;
        let mut t = 2.0;
        while t < 2.999 {
            if c.try_acquire(Lane::Polls, t).is_ok() {
                polls += 1;
            }
            t += 0.001;
        }
        assert!(polls >= 90, "polls alone {polls}");
    }

    /// Sends at `offered` requests per second for `seconds` against a server admitting `limit`
    /// per second (a token bucket) that also answers `noise` of its requests 429 at random;
    /// returns (requests sent, those throttled by the limit) after the first `warm_up` seconds.
    fn simulate(limit: f64, noise: f64, seconds: f64, warm_up: f64) -> (u64, u64, RateController) {
        let mut c = controller(None);
        let mut server_tokens = limit;
        let mut t = 0.0;
        let step = 1.0 / 2000.0;
        let (mut sent, mut limited) = (0u64, 0u64);
        // A fixed pseudo-random sequence: the test is deterministic.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while t < seconds {
            server_tokens = (server_tokens + step * limit).min(limit);
            if c.try_acquire(Lane::Calls, t).is_ok() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let roll = (x % 10_000) as f64 / 10_000.0;
                let throttled_by_limit = server_tokens < 1.0;
                if !throttled_by_limit {
                    server_tokens -= 1.0;
                }
                let throttled = throttled_by_limit || roll < noise;
                if t >= warm_up {
                    sent += 1;
                    limited += u64::from(throttled_by_limit);
                }
                c.observe(throttled, Some(Duration::from_secs(1)), t + 0.001);
            }
            t += step;
        }
        (sent, limited, c)
    }

    #[test]
    fn under_a_limit_the_rate_settles_just_below_it() {
        let (sent, limited, c) = simulate(300.0, 0.0, 120.0, 30.0);
        let rate = sent as f64 / 90.0;
        let share = limited as f64 / sent as f64;
        eprintln!(
            "no noise: rate {rate:.0}/s, throttled share {share:.4}, {:?}",
            c.stats()
        );
        assert!(rate >= 0.9 * 300.0, "rate {rate:.0}/s, {:?}", c.stats());
        assert!(share <= 0.02, "throttled share {share:.3}, {:?}", c.stats());
    }

    #[test]
    fn random_429s_do_not_collapse_the_rate() {
        // A tenth of all answers are 429s at random, whatever the rate: the noise floor is
        // learned and the run still uses most of the limit (a model only: benches/README.md
        // has the figures measured against the mock).
        let (sent, limited, c) = simulate(300.0, 0.1, 120.0, 30.0);
        let rate = sent as f64 / 90.0;
        let share = limited as f64 / sent as f64;
        eprintln!(
            "noise: rate {rate:.0}/s, throttled share {share:.4}, {:?}",
            c.stats()
        );
        assert!((0.08..0.12).contains(&c.stats().noise), "{:?}", c.stats());
        assert!(rate >= 0.8 * 300.0, "rate {rate:.0}/s, {:?}", c.stats());
        assert!(share <= 0.02, "throttled share {share:.3}, {:?}", c.stats());
    }

    #[test]
    fn a_crossed_or_nonsense_configuration_is_made_usable_not_a_panic() {
        for config in [
            ThrottleConfig {
                max_rate: 0.1,
                initial_rate: Some(1.0),
                ..ThrottleConfig::default()
            },
            ThrottleConfig {
                min_rate: f64::NAN,
                max_rate: f64::INFINITY,
                poll_share: f64::NAN,
                initial_rate: Some(-3.0),
                ..ThrottleConfig::default()
            },
        ] {
            let mut c = RateController::new(config, 0.0);
            for i in 0..3000 {
                let t = f64::from(i) * 0.001;
                let _ = c.try_acquire(Lane::Polls, t);
                c.observe(i % 2 == 0, Some(Duration::from_millis(10)), t);
            }
            let rate = c.stats().rate.unwrap();
            assert!(rate.is_finite() && rate > 0.0, "{rate}");
        }
    }

    #[test]
    fn the_rate_stays_within_its_bounds() {
        let mut c = RateController::new(
            ThrottleConfig {
                initial_rate: Some(5.0),
                min_rate: 2.0,
                max_rate: 8.0,
                ..ThrottleConfig::default()
            },
            0.0,
        );
        for i in 0..200 {
            let t = f64::from(i) * 0.05;
            let _ = c.try_acquire(Lane::Calls, t);
            c.observe(true, Some(Duration::ZERO), t);
        }
        let rate = c.stats().rate.unwrap();
        assert!((2.0..=8.0).contains(&rate), "{rate}");
    }

    /// The async shell under paused time: one caller's 429 holds back every other caller,
    /// on both lanes, for the `Retry-After`, and no longer.
    #[tokio::test(start_paused = true)]
    async fn a_429_seen_by_one_caller_holds_back_every_caller_for_its_retry_after() {
        let throttle = Throttle::new(ThrottleConfig {
            initial_rate: Some(1000.0),
            ..ThrottleConfig::default()
        });
        for _ in 0..30 {
            throttle.acquire(Lane::Calls).await;
            throttle.observe(200, None);
        }
        let start = Instant::now();
        // A burst of 429s, as one worker meets a partner-wide limit.
        for _ in 0..10 {
            throttle.observe(429, Some(Duration::from_secs(5)));
        }
        let other = throttle.clone();
        let caller = tokio::spawn(async move {
            other.acquire(Lane::Calls).await;
            Instant::now()
        });
        let poller = {
            let other = throttle.clone();
            tokio::spawn(async move {
                other.acquire(Lane::Polls).await;
                Instant::now()
            })
        };
        let (called, polled) = (caller.await.unwrap(), poller.await.unwrap());
        for at in [called, polled] {
            let waited = at - start;
            assert!(
                waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100),
                "{waited:?}"
            );
        }
        assert!(throttle.stats().pauses >= 1);
    }
}
