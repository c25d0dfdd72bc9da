//! `cargo xtask mock`: serve the stateful mock, and the sign-in service of its tenant, until
//! stopped.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use partner_center_mock::{Breakage, FaultRates, MockConfig};

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
    pub fn config(&self) -> MockConfig {
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
            ..MockConfig::default()
        }
    }
}

pub fn run(options: &Options) -> Result<bool, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mock = partner_center_mock::start(
            options.config(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)),
        )
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
        println!("mock listening on {}", mock.url());
        println!("token: {}", mock.token());
        let config = options.config();
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
        println!("press Ctrl-C to stop");
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        let sign_ins = mock.sign_in_counts();
        println!(
            "stopped after {} requests, {} upgrades created, {} token requests ({} refresh-token redemptions, {} device-code sign-ins), {} requests with an expired token",
            mock.requests(),
            mock.upgrades_created(),
            sign_ins.token_requests,
            sign_ins.refresh_redemptions,
            sign_ins.device_sign_ins,
            sign_ins.expired_token_requests
        );
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
