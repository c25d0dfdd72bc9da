//! `cargo xtask mock`: serve the stateful mock until stopped.

use std::net::{Ipv4Addr, SocketAddr};

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
        if options.lenient {
            println!(
                "lenient: non-GUID request and correlation ids, any X-Locale and application name are accepted and echoed"
            );
        }
        println!(
            "customers: {} has no Azure subscriptions, {} fails its upgrades",
            partner_center_mock::NO_AZURE_CUSTOMER,
            partner_center_mock::FAILING_CUSTOMER
        );
        let config = options.config();
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
        println!(
            "stopped after {} requests, {} upgrades created",
            mock.requests(),
            mock.upgrades_created()
        );
        Ok(true)
    })
}
