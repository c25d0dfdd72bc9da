//! `cargo xtask mock`: serve the stateful mock, and the sign-in service of its tenant, until
//! stopped; optionally with a scenario of per-customer outcomes (`--scenario FILE`, refused at
//! start when the spec would reject its answers) and a rate limit (`--throttle RPS[,burst=N]`).
//! While traffic flows it logs one line every 10 s on stderr (requests and their rate, throttled
//! requests, injected faults), so an operator sees a client's pace without a debugger;
//! `GET /_mock/ledger` and `GET /_mock/traffic` (with the token) say the rest.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use partner_center_mock::{
    Breakage, FaultRates, MockConfig, Outcome, RunningMock, Scenario, ThrottleConfig, TrafficCounts,
};

/// How often the traffic line is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Options of `cargo xtask mock`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the fault generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Faults to inject, e.g. `429=0.1,5xx=0.05,drop=0.02,drop-after=0.02,slow=0.05,slow-ms=1500,retry-after=1`.
    #[arg(long, default_value = "none")]
    pub faults: FaultRates,
    /// The bearer token to accept.
    #[arg(long, default_value = partner_center_mock::DEFAULT_TOKEN)]
    pub token: String,
    /// Status polls an upgrade takes to finish.
    #[arg(long, default_value_t = 2)]
    pub polls: u32,
    /// Break the contract on purpose: missing-field, missing-location, wrong-status,
    /// duplicate-on-replay, wrong-type, malformed-date.
    #[arg(long = "break")]
    pub breakage: Option<Breakage>,
    /// Behave like a server written from Microsoft's pages alone: accept request and
    /// correlation ids that are not GUIDs, any X-Locale and application name, and echo the ids as
    /// given; still reject malformed bodies, invalid customer ids (400, 900118) and bad tokens (401).
    #[arg(long)]
    pub lenient: bool,
    /// The tenant whose sign-in service the mock is (`/{tenant}/oauth2/...`).
    #[arg(long, default_value = partner_center_mock::DEFAULT_TENANT)]
    pub tenant: String,
    /// The only app allowed to sign in [default: any client id].
    #[arg(long)]
    pub client_id: Option<String>,
    /// How long issued access tokens live, e.g. 10m, 90s, 1h.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub access_token_lifetime: Duration,
    /// Refuse access tokens whose sign-in had no multi-factor authentication (401, 900421).
    #[arg(long)]
    pub require_mfa: bool,
    /// Device-code sign-ins are without multi-factor authentication (amr without mfa).
    #[arg(long)]
    pub no_mfa_sign_in: bool,
    /// Device-code polls answered authorization_pending before the sign-in completes.
    #[arg(long, default_value_t = 1)]
    pub pending_polls: u32,
    /// Outcomes per customer, a JSON file: {"customers": {"GUID": {"outcome": "notEligible",
    /// "reason": "...", "code": 900108, "status": 403} | {"outcome": "underWay"} |
    /// {"outcome": "failsAtPoll", "poll": 3, "code": 900120, "description": "..."} |
    /// {"outcome": "slow", "polls": 20, "delayMs": 200}}}. Refused at start if the spec would
    /// reject an answer it makes the mock send.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Rate-limit API calls with a token bucket: RPS requests per second, bursts of N (default:
    /// one second's worth); beyond it, 429 with Retry-After. E.g. 10 or 0.5,burst=3.
    #[arg(long, value_name = "RPS[,burst=N]")]
    pub throttle: Option<ThrottleConfig>,
    /// How long a new upgrade stays invisible to eligibility and to create's conflict check
    /// (an eventually consistent Partner Center), e.g. 3s.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub eligibility_lag: Duration,
}

/// A duration as `90`, `90s`, `10m` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 1h"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

impl Options {
    /// The mock's configuration, with the scenario read from `--scenario` (read once, by
    /// [`run`]).
    pub fn config(&self, scenario: Option<Scenario>) -> MockConfig {
        MockConfig {
            token: self.token.clone(),
            seed: self.seed,
            faults: self.faults.clone(),
            polls_to_complete: self.polls,
            breakage: self.breakage,
            lenient: self.lenient,
            tenant: self.tenant.clone(),
            client_id: self.client_id.clone(),
            access_token_lifetime: self.access_token_lifetime,
            require_mfa: self.require_mfa,
            mfa_sign_in: !self.no_mfa_sign_in,
            pending_polls: self.pending_polls,
            scenario,
            throttle: self.throttle,
            eligibility_lag: self.eligibility_lag,
            ..MockConfig::default()
        }
    }
}

/// `notEligible 3, underWay 1, ...`: how many customers each outcome has.
fn scenario_summary(scenario: &Scenario) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, outcome) in scenario.iter() {
        match counts.iter_mut().find(|(name, _)| *name == outcome.name()) {
            Some((_, n)) => *n += 1,
            None => counts.push((outcome.name(), 1)),
        }
    }
    counts.sort_unstable();
    counts
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The traffic line for `delta`, counted over `seconds`:
/// `requests N (R/s), throttled N, faults 429 N, 5xx N, drop N`.
fn traffic_line(delta: &TrafficCounts, seconds: f64) -> String {
    format!(
        "requests {} ({:.1}/s), throttled {}, faults 429 {}, 5xx {}, drop {}",
        delta.requests,
        delta.requests as f64 / seconds.max(f64::MIN_POSITIVE),
        delta.throttled,
        delta.fault429,
        delta.fault5xx,
        delta.fault_drop
    )
}

/// Logs the traffic of every [`LOG_EVERY`] that had any, on stderr, until dropped.
async fn log_traffic(mock: Arc<RunningMock>) {
    let mut ticks = tokio::time::interval(LOG_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut last = mock.traffic().totals;
    loop {
        ticks.tick().await;
        let now = mock.traffic().totals;
        let delta = now.since(&last);
        if delta.requests > 0 {
            eprintln!("mock: {}", traffic_line(&delta, LOG_EVERY.as_secs_f64()));
        }
        last = now;
    }
}

pub fn run(options: &Options) -> Result<bool, String> {
    let scenario = options
        .scenario
        .as_deref()
        .map(Scenario::read)
        .transpose()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let config = options.config(scenario);
        let mock = partner_center_mock::start(
            config.clone(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)),
        )
        .await
        .map_err(|e| match e.kind() {
            // A scenario or throttle refused: the message says which customer and field.
            std::io::ErrorKind::InvalidInput => e.to_string(),
            _ => format!("cannot listen on 127.0.0.1:{}: {e}", options.port),
        })?;
        let mock = Arc::new(mock);
        println!("mock listening on {}", mock.url());
        println!("token: {}", mock.token());
        let base = format!("{}/{}/oauth2", mock.url(), mock.tenant());
        println!(
            "sign-in service of tenant {} (pc-upgrade --authority {}):",
            mock.tenant(),
            mock.url()
        );
        println!(
            "  token endpoints: {} (v1), {} (v2)",
            mock.token_endpoint_v1(),
            mock.token_endpoint_v2()
        );
        println!("  device codes: {base}/devicecode (v1), {base}/v2.0/devicecode (v2)");
        println!(
            "  access tokens live {} s{}; device-code sign-ins {} multi-factor and complete after {} pending poll(s)",
            config.access_token_lifetime.as_secs(),
            if config.require_mfa {
                " and must come from a multi-factor sign-in (401, 900421 otherwise)"
            } else {
                ""
            },
            if config.mfa_sign_in { "are" } else { "are not" },
            config.pending_polls
        );
        println!(
            "  a refresh token to start from (PARTNER_CENTER_REFRESH_TOKEN): {}",
            mock.issue_refresh_token(config.mfa_sign_in)
        );
        println!(
            "limits: bodies up to {} KiB, {} MiB of remembered answers, {} upgrades, {} connections, headers within {} s",
            config.max_body_bytes / 1024,
            config.replay_budget_bytes >> 20,
            config.max_upgrades,
            config.max_connections,
            config.header_read_timeout.as_secs()
        );
        if let Some(scenario) = &config.scenario {
            let under_way = scenario
                .iter()
                .filter(|(_, outcome)| **outcome == Outcome::UnderWay)
                .count();
            println!(
                "scenario: {} customers ({}), checked against the spec; {under_way} upgrades under way from the start",
                scenario.len(),
                scenario_summary(scenario)
            );
        }
        if let Some(throttle) = config.throttle {
            println!(
                "throttle: {} requests/s, bursts of {} (API calls only; beyond it 429 with Retry-After)",
                throttle.rate, throttle.burst
            );
        }
        println!(
            "ledger and traffic (with the token): {0}/_mock/ledger, {0}/_mock/traffic",
            mock.url()
        );
        println!("press Ctrl-C to stop");
        let logger = tokio::spawn(log_traffic(Arc::clone(&mock)));
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        logger.abort();
        let sign_ins = mock.sign_in_counts();
        let traffic = mock.traffic().totals;
        println!(
            "stopped after {} requests ({} throttled), {} upgrades created, {} token requests ({} refresh-token redemptions, {} device-code sign-ins), {} requests with an expired token",
            mock.requests(),
            traffic.throttled,
            mock.upgrades_created(),
            sign_ins.token_requests,
            sign_ins.refresh_redemptions,
            sign_ins.device_sign_ins,
            sign_ins.expired_token_requests
        );
        Ok(true)
    })
}

/// The mock with `config` on a free loopback port, and the runtime that serves it (keep both
/// while it is used): what the xtask's checks run against.
pub fn embedded(
    config: MockConfig,
) -> Result<(tokio::runtime::Runtime, partner_center_mock::RunningMock), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let mock = runtime
        .block_on(partner_center_mock::start(
            config,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .map_err(|e| format!("cannot start the embedded mock: {e}"))?;
    Ok((runtime, mock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traffic_line_gives_counts_and_the_rate() {
        let delta = TrafficCounts {
            requests: 125,
            throttled: 7,
            fault429: 1,
            fault5xx: 2,
            fault_drop: 3,
        };
        assert_eq!(
            traffic_line(&delta, 10.0),
            "requests 125 (12.5/s), throttled 7, faults 429 1, 5xx 2, drop 3"
        );
    }

    #[test]
    fn scenario_and_throttle_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: Options,
        }
        let cli =
            Cli::try_parse_from(["mock", "--throttle", "0.5,burst=3", "--scenario", "s.json"])
                .unwrap();
        assert_eq!(
            cli.options.throttle,
            Some(ThrottleConfig {
                rate: 0.5,
                burst: 3
            })
        );
        assert_eq!(cli.options.scenario, Some(PathBuf::from("s.json")));
        assert!(Cli::try_parse_from(["mock", "--throttle", "0"]).is_err());
        let scenario = Scenario::from_json(
            r#"{"customers": {"4c721420-72ad-4708-a0a7-371a2f7b0969": {"outcome": "underWay"},
                "00000000-0000-4000-8000-000000000001": {"outcome": "slow", "delayMs": 5},
                "00000000-0000-4000-8000-000000000002": {"outcome": "underWay"}}}"#,
        )
        .unwrap();
        assert_eq!(scenario_summary(&scenario), "slow 1, underWay 2");
        assert!(cli.options.config(Some(scenario)).scenario.is_some());
    }

    #[test]
    fn durations_read_seconds_minutes_and_hours() {
        let table: &[(&str, Option<u64>)] = &[
            ("90", Some(90)),
            ("90s", Some(90)),
            ("10m", Some(600)),
            ("1h", Some(3600)),
            ("0s", Some(0)),
            ("10 m", None),
            ("m", None),
            ("1d", None),
            ("-1s", None),
        ];
        for (text, seconds) in table {
            assert_eq!(
                parse_duration(text).ok(),
                seconds.map(Duration::from_secs),
                "{text}"
            );
        }
    }
}
