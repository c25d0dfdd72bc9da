//! `pc-upgrade`: upgrade Cloud Solution Provider customers from Microsoft Azure (MS-AZR-0145P)
//! subscriptions to an Azure plan, from the command line.
//!
//! The access token is read from `PARTNER_CENTER_TOKEN`, never from a flag (flags land in shell
//! history). Results go to stdout (`--output text|json`); progress goes to stderr.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use partner_center_upgrades::{
    Authority, BaseUrl, Client, Cloud, CustomerId, Error, ErrorKind, Finish, PollOptions, Product,
    ProductFamily, RequestIds, RetryPolicy, Start, Upgrade, UpgradeId, UpgradeOutcome,
    UpgradeRequest, printable,
};
use serde_json::json;

/// Exit codes, documented in `--help` and the README.
mod exit {
    /// The call succeeded (eligible, created, read, completed).
    pub const SUCCESS: u8 = 0;
    /// Bad input or configuration; nothing was sent (clap uses the same code for its errors).
    pub const USAGE: u8 = 2;
    /// The customer is not eligible for the upgrade.
    pub const NOT_ELIGIBLE: u8 = 3;
    /// The upgrade finished as Failed.
    pub const UPGRADE_FAILED: u8 = 4;
    /// Partner Center answered with an error, or could not be reached.
    pub const SERVICE_ERROR: u8 = 5;
    /// `--wait` ran out before the upgrade finished; it goes on, and waiting again resumes it.
    pub const STILL_RUNNING: u8 = 6;
    /// Sign in again (`pc-upgrade login`): the refresh token expired or was revoked, or the
    /// sign-in lacked multi-factor authentication (401, 900421); `whoami` also exits 7 for an
    /// app-only, expired or wrong-audience token.
    pub const SIGN_IN_AGAIN: u8 = 7;
}

mod apply;
mod journal;
mod plan;
mod report;
mod sign_in;

const EXIT_CODES: &str = "Exit codes: 0 success; 2 usage error (nothing sent); 3 not eligible; \
4 upgrade failed; 5 service error; 6 still running when --timeout ran out; 7 sign in again.";

#[derive(Parser)]
#[command(name = "pc-upgrade", version, about, after_help = EXIT_CODES)]
/// Upgrade Partner Center customers from Microsoft Azure (MS-AZR-0145P) subscriptions to an
/// Azure plan. Sign in once with `pc-upgrade login` (the refresh token is kept in the
/// credentials file and renewed as it goes), or set PARTNER_CENTER_REFRESH_TOKEN with
/// PARTNER_CENTER_CLIENT_ID and PARTNER_CENTER_TENANT_ID, or a static PARTNER_CENTER_TOKEN.
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Args)]
struct Global {
    /// API base URL; https, or http to a loopback address only [default: the global cloud]
    #[arg(long, global = true, conflicts_with = "cloud")]
    base_url: Option<BaseUrl>,
    /// A documented Partner Center cloud
    #[arg(long, global = true, value_enum, default_value_t = CloudName::Global)]
    cloud: CloudName,
    /// Result format on stdout
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Language of Partner Center's messages (X-Locale), e.g. en-US
    #[arg(long, global = true)]
    locale: Option<String>,
    /// Attempts per call, retries included (1 switches retries off)
    #[arg(long, global = true, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    max_attempts: u32,
    /// No retry starts later than this after a call's first attempt, e.g. 2m
    #[arg(long, global = true, default_value = "2m", value_parser = duration_at_least::<0>)]
    retry_deadline: Duration,
    /// First backoff delay between retries (doubles each time), e.g. 500ms
    #[arg(long, global = true, default_value = "500ms", value_parser = duration_at_least::<1>)]
    retry_delay: Duration,
    /// How long one HTTP request may take, e.g. 60s
    #[arg(long, global = true, default_value = "60s", value_parser = duration_at_least::<1000>)]
    request_timeout: Duration,
    /// Write every exchange (without Authorization or anything token-like) as a JSON file into
    /// DIR, for `cargo xtask contract --recordings DIR`
    #[arg(long, global = true, value_name = "DIR")]
    record: Option<std::path::PathBuf>,
    /// Trace calls and attempts on stderr: -v calls, -vv attempts and retries
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Format of the traces -v turns on
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The credentials file [default: ~/.config/pc-upgrade/credentials.json]
    #[arg(long, global = true, value_name = "FILE")]
    credentials: Option<std::path::PathBuf>,
    /// The sign-in service; https, or http to a loopback address only [default: the cloud's]
    #[arg(long, global = true, value_parser = parse_authority)]
    authority: Option<Authority>,
    /// Which token endpoint redeems refresh tokens [default: v2]
    #[arg(long, global = true, value_enum)]
    token_endpoint: Option<sign_in::EndpointName>,
}

fn parse_authority(text: &str) -> Result<Authority, String> {
    Authority::parse(text).map_err(|e| e.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Traces to stderr, never coloured (escape codes are what this tool keeps off terminals), at
/// the level -v asks for. The library's spans carry ids and the customer, never a token.
fn init_tracing(global: &Global) {
    let level = match global.verbose {
        0 => return,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(level)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CloudName {
    /// api.partnercenter.microsoft.com
    Global,
    /// partner.partnercenterapi.microsoftonline.cn (21Vianet)
    China,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args)]
struct Target {
    /// The customer's tenant id (GUID)
    #[arg(long)]
    customer: CustomerId,
    /// Product family to upgrade to
    #[arg(long, default_value = "Azure")]
    family: ProductFamily,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in with a device code (multi-factor) and keep the refresh token in the credentials file
    Login,
    /// Show who the current access token is for, without printing it (exit 7 when it cannot work)
    Whoami,
    /// Check whether the customer can be upgraded (exit 3 when not)
    Eligibility(Target),
    /// Start the upgrade and print its id
    Create(Target),
    /// Read an upgrade's status
    Status {
        #[command(flatten)]
        target: Target,
        /// The upgrade id (GUID)
        #[arg(long)]
        upgrade: UpgradeId,
    },
    /// Upgrade the customer: follow an upgrade under way, or start one; with --wait, to its end
    Upgrade {
        #[command(flatten)]
        target: Target,
        /// Poll until the upgrade completes or fails
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this long, e.g. 30m (exit 6)
        #[arg(long, default_value = "30m", value_parser = duration_at_least::<1000>)]
        timeout: Duration,
        /// With --wait: time between status polls, unless Partner Center says otherwise
        #[arg(long, default_value = "30s", value_parser = duration_at_least::<1>)]
        poll_interval: Duration,
    },
    /// Check eligibility for every customer in a file and write a plan; creates nothing
    Plan(plan::PlanArgs),
    /// Create and follow the upgrades a plan lists, journalled so a killed run resumes
    Apply(apply::ApplyArgs),
    /// Write CSV, JSON and an HTML page from a journal
    Report(report::ReportArgs),
}

/// A duration of at least `MIN_MS` milliseconds: `--request-timeout 0s` would fail every call
/// after sending it, and a zero poll interval is a tight loop.
fn duration_at_least<const MIN_MS: u64>(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let min = Duration::from_millis(MIN_MS);
    if duration < min {
        return Err(format!(
            "{} is too short; use at least {}",
            humantime::format_duration(duration),
            humantime::format_duration(min)
        ));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(exit::SERVICE_ERROR);
        }
    };
    let output = cli.global.output;
    let code = match cli.command {
        Command::Login => runtime.block_on(sign_in::login(&cli.global)),
        Command::Whoami => runtime.block_on(sign_in::whoami(&cli.global, output)),
        Command::Report(args) => report::report(args, output),
        Command::Apply(args) => runtime.block_on(apply_command(&cli.global, args, output)),
        command => match build_client(&cli.global) {
            Ok(client) => runtime.block_on(run(client, command, output)),
            Err(message) => {
                eprintln!("error: {}", printable(&message));
                exit::USAGE
            }
        },
    };
    ExitCode::from(code)
}

/// Every command's client waits on a throttle: a command that makes one call never meets it,
/// and `plan`, with thousands, shares one across its checks.
fn build_client(global: &Global) -> Result<Client, String> {
    let throttle = partner_center_upgrades::Throttle::new(Default::default());
    build_client_with(global, sign_in::tokens(global)?, Some(throttle))
}

/// `apply`: one throttle for the whole run, and who is running it (from the token's claims).
async fn apply_command(global: &Global, args: apply::ApplyArgs, output: Output) -> u8 {
    let setup = async {
        let throttle = args.throttle()?;
        let tokens: std::sync::Arc<dyn partner_center_upgrades::TokenProvider> =
            std::sync::Arc::from(sign_in::tokens(global)?);
        let client = build_client_with(global, Box::new(tokens.clone()), Some(throttle))?;
        Ok::<_, String>((client, tokens))
    };
    let (client, tokens) = match setup.await {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };
    // Who: the journal's audit trail names the signed-in user when the token says.
    let claims = match sign_in::current_token(tokens.as_ref()).await {
        Ok(token) => sign_in::claims(token.expose()).ok(),
        Err(code) => return code,
    };
    let operator = journal::Operator {
        user: claims
            .as_ref()
            .and_then(|c| sign_in::user(c).or_else(|| c["oid"].as_str()))
            .map(printable),
        tenant: claims
            .as_ref()
            .and_then(|c| c["tid"].as_str())
            .map(printable),
    };
    let code = apply::apply(&client, operator, args, output).await;
    if let Some(problem) = client.recording_error() {
        eprintln!("warning: some exchanges were not recorded: {problem}");
    }
    code
}

fn build_client_with(
    global: &Global,
    token: Box<dyn partner_center_upgrades::TokenProvider>,
    throttle: Option<partner_center_upgrades::Throttle>,
) -> Result<Client, String> {
    let base_url = global
        .base_url
        .clone()
        .unwrap_or_else(|| match global.cloud {
            CloudName::Global => Cloud::Global.base_url(),
            CloudName::China => Cloud::China21Vianet.base_url(),
        });
    let mut builder = Client::builder(base_url, token)
        .application("pc-upgrade")
        .timeout(global.request_timeout)
        .retry(RetryPolicy {
            max_attempts: global.max_attempts,
            deadline: global.retry_deadline,
            base_delay: global.retry_delay,
            ..RetryPolicy::default()
        });
    if let Some(locale) = &global.locale {
        builder = builder.locale(locale);
    }
    if let Some(dir) = &global.record {
        builder = builder.record_exchanges(dir);
    }
    if let Some(throttle) = throttle {
        builder = builder.throttle(throttle);
    }
    builder.build().map_err(|e| e.to_string())
}

async fn run(client: Client, command: Command, output: Output) -> u8 {
    let result = match command {
        // Handled before a client is built.
        Command::Login | Command::Whoami | Command::Apply(_) | Command::Report(_) => {
            Ok(exit::USAGE)
        }
        Command::Eligibility(target) => eligibility(&client, target, output).await,
        Command::Create(target) => create(&client, target, output).await,
        Command::Status { target, upgrade } => status(&client, target, upgrade, output).await,
        Command::Upgrade {
            target,
            wait,
            timeout,
            poll_interval,
        } => {
            let options = PollOptions {
                interval: poll_interval,
                deadline: timeout,
                ..PollOptions::default()
            };
            upgrade(&client, target, wait, &options, output).await
        }
        Command::Plan(args) => Ok(plan::plan(&client, args, output).await),
    };
    let code = result.unwrap_or_else(|error| report_error(&error, output));
    if let Some(problem) = client.recording_error() {
        eprintln!("warning: some exchanges were not recorded: {problem}");
    }
    code
}

fn report_error(error: &Error, output: Output) -> u8 {
    let code = match error.kind() {
        ErrorKind::Deadline => exit::STILL_RUNNING,
        ErrorKind::SignInAgain => exit::SIGN_IN_AGAIN,
        ErrorKind::InvalidInput => exit::USAGE,
        _ => exit::SERVICE_ERROR,
    };
    if output == Output::Json {
        let body = json!({
            "error": report(error),
            "status": error.status(),
            "serviceError": error.service_error(),
            "requestId": error.request_id().map(|id| id.to_string()),
            "correlationId": error.correlation_id().map(|id| id.to_string()),
            "attempts": error.attempts(),
        });
        println!("{body}");
    }
    // The library's Display already escapes server text; escape the rest (a transport cause
    // could quote the server) all the same.
    eprintln!("error: {}", printable(&report(error)));
    code
}

/// The error and its causes, one after another.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

async fn eligibility(client: &Client, target: Target, output: Output) -> Result<u8, Error> {
    let request = UpgradeRequest::new(target.customer, target.family);
    let answer = client.check_eligibility(&request).await?.into_inner();
    match output {
        Output::Json => print_json(&json!(answer)),
        Output::Text => {
            println!(
                "customer {} {} eligible for {}",
                answer.customer_id,
                if answer.is_eligible { "is" } else { "is not" },
                printable(answer.product_family.as_str())
            );
            if let Some(id) = answer.upgrade_id {
                println!("existing upgrade: {id}");
            }
            if let Some(reason) = &answer.reason {
                println!("reason: {}", printable(reason));
            }
        }
    }
    Ok(if answer.is_eligible {
        exit::SUCCESS
    } else {
        exit::NOT_ELIGIBLE
    })
}

async fn create(client: &Client, target: Target, output: Output) -> Result<u8, Error> {
    let request = UpgradeRequest::new(target.customer, target.family);
    let id = client.create_upgrade(&request).await?.into_inner();
    match output {
        Output::Json => print_json(&json!({ "upgradeId": id })),
        Output::Text => println!("{id}"),
    }
    Ok(exit::SUCCESS)
}

async fn status(
    client: &Client,
    target: Target,
    upgrade: UpgradeId,
    output: Output,
) -> Result<u8, Error> {
    let request = UpgradeRequest::new(target.customer, target.family);
    let answer = client
        .get_upgrade_status(upgrade, &request)
        .await?
        .into_inner();
    print_upgrade(&answer, output);
    Ok(match answer.finished() {
        None | Some(Finish::Completed) => exit::SUCCESS,
        Some(_) => exit::UPGRADE_FAILED,
    })
}

/// `name (id)`, with `?` for what the answer left out.
fn product_text(product: Option<&Product>) -> String {
    let name = product.and_then(|p| p.name.as_deref()).unwrap_or("?");
    let id = product.and_then(|p| p.id.as_deref()).unwrap_or("?");
    format!("{} ({})", printable(name), printable(id))
}

fn print_upgrade(upgrade: &Upgrade, output: Output) {
    match output {
        Output::Json => print_json(&json!(upgrade)),
        Output::Text => {
            println!(
                "upgrade {}: {}",
                upgrade.id,
                printable(upgrade.status.as_str())
            );
            for line in &upgrade.line_items {
                println!(
                    "  {} -> {}: {}{}",
                    product_text(line.source_product.as_ref()),
                    product_text(line.target_product.as_ref()),
                    printable(line.status.as_str()),
                    line.upgraded_date
                        .map(|d| format!(", upgraded {d}"))
                        .unwrap_or_default()
                );
            }
            if let Some(text) = upgrade.error_details.as_ref().and_then(|e| e.text()) {
                println!("  error: {}", printable(text));
            }
        }
    }
}

async fn upgrade(
    client: &Client,
    target: Target,
    wait: bool,
    options: &PollOptions,
    output: Output,
) -> Result<u8, Error> {
    if !wait {
        return start_only(client, target, output).await;
    }
    let mut progress = Progress::new();
    let outcome = client
        .upgrade_customer(target.customer, target.family, options, |u| {
            progress.show(u)
        })
        .await;
    progress.finish();
    let outcome = outcome?;
    if output == Output::Json {
        print_json(&json!(outcome));
    }
    Ok(match &outcome {
        UpgradeOutcome::Completed { upgrade, .. } => {
            if output == Output::Text {
                print_upgrade(upgrade, output);
            }
            exit::SUCCESS
        }
        UpgradeOutcome::Failed { upgrade, .. } => {
            if output == Output::Text {
                print_upgrade(upgrade, output);
            }
            exit::UPGRADE_FAILED
        }
        UpgradeOutcome::NotEligible { reason } => {
            if output == Output::Text {
                println!(
                    "not eligible: {}",
                    printable(reason.as_deref().unwrap_or("no reason given"))
                );
            }
            exit::NOT_ELIGIBLE
        }
        _ => exit::SUCCESS,
    })
}

/// Without --wait: the library's one start decision, printed.
async fn start_only(client: &Client, target: Target, output: Output) -> Result<u8, Error> {
    let request = UpgradeRequest::new(target.customer, target.family);
    let start = client.start_upgrade(&request).await?;
    match output {
        Output::Json => print_json(&json!(start)),
        Output::Text => match &start {
            Start::Created { upgrade_id } => println!("{upgrade_id}"),
            Start::Resumed { upgrade_id } => println!("{upgrade_id} (already under way)"),
            Start::NotEligible { reason } => println!(
                "not eligible: {}",
                printable(reason.as_deref().unwrap_or("no reason given"))
            ),
            _ => println!("{}", printable(&json!(start).to_string())),
        },
    }
    Ok(match start {
        Start::NotEligible { .. } => exit::NOT_ELIGIBLE,
        _ => exit::SUCCESS,
    })
}

/// Progress on stderr: a spinner line on a terminal, one line per status change otherwise.
struct Progress {
    terminal: bool,
    started: Instant,
    last: Option<String>,
    frame: usize,
}

impl Progress {
    fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            frame: 0,
        }
    }

    fn show(&mut self, upgrade: &Upgrade) {
        let line = format!(
            "upgrade {}: {}",
            upgrade.id,
            printable(upgrade.status.as_str())
        );
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            self.frame += 1;
            let _ = write!(
                stderr,
                "\r\x1b[2K{} {line} ({}s)",
                FRAMES[self.frame % FRAMES.len()],
                self.started.elapsed().as_secs()
            );
            let _ = stderr.flush();
        } else if self.last.as_deref() != Some(line.as_str()) {
            let _ = writeln!(stderr, "{line}");
        }
        self.last = Some(line);
    }

    fn finish(&self) {
        if self.terminal && self.last.is_some() {
            eprintln!();
        }
    }
}
