//! `pc-upgrade` signing in as a process, against the mock's own sign-in service on loopback
//! (`--authority` and `--base-url` both the mock, `--credentials` a file of the test's own):
//! device-code login, runs longer than an access token lives, a refresh token from the
//! environment, expired and revoked refresh tokens, a sign-in without multi-factor
//! authentication, what a run writes, and a run killed after redeeming a refresh token.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use partner_center_mock::{MockConfig, RunningMock};
use serde_json::Value;

const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
/// A client secret no other text contains, so a scan for it finds only a leak.
const CLIENT_SECRET: &str = "cs~Distinctive.Client-Secret_7f3a9c";

/// A folder of the test's own for the credentials file (and whatever else a run writes).
struct Folder(PathBuf);

impl Folder {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pcu-signin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }

    fn credentials(&self) -> PathBuf {
        self.0.join("credentials.json")
    }

    /// The credentials file as JSON (`null` when there is none).
    fn stored(&self) -> Value {
        std::fs::read(self.credentials())
            .map(|text| serde_json::from_slice(&text).unwrap())
            .unwrap_or(Value::Null)
    }

    fn refresh_token(&self) -> Option<String> {
        self.stored()["refreshToken"].as_str().map(str::to_owned)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pc-upgrade` aimed at the mock for both the API and sign-in, with the folder's credentials
/// file, quick retries, and nothing from the machine's environment.
fn command(mock: &RunningMock, folder: &Folder) -> Command {
    let mut command = crate::support::pc_upgrade_command();
    command
        .args(["--authority", &mock.url(), "--base-url", &mock.url()])
        .arg("--credentials")
        .arg(folder.credentials())
        .args(["--retry-delay", "10ms"]);
    command
}

/// The app and tenant in the environment, as `login` and a seeded run need them.
fn with_app(command: &mut Command, mock: &RunningMock) {
    command
        .env("PARTNER_CENTER_CLIENT_ID", CLIENT_ID)
        .env("PARTNER_CENTER_TENANT_ID", mock.tenant());
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_stdout(output: &Output) -> Value {
    serde_json::from_slice(output.stdout.trim_ascii())
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", text(output)))
}

fn customer() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `upgrade --wait` with 1 s between polls, results as JSON.
fn upgrade_wait(command: &mut Command, customer: &str) {
    command.args([
        "--output",
        "json",
        "upgrade",
        "--customer",
        customer,
        "--wait",
        "--poll-interval",
        "1s",
    ]);
}

/// Device-code login, then a waited upgrade with nothing but the credentials file: for the v1
/// and the v2 token endpoint (the file remembers which).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_device_code_then_a_waited_upgrade_needs_no_static_token_v1_and_v2() {
    for endpoint in ["v1", "v2"] {
        let mock = crate::support::start_mock(MockConfig::default()).await;
        let folder = Folder::new();

        let mut login = command(&mock, &folder);
        with_app(&mut login, &mock);
        login.args(["--token-endpoint", endpoint, "login"]);
        let login = run(login).await;

        assert_eq!(login.status.code(), Some(0), "{endpoint}: {}", text(&login));
        assert!(
            stderr(&login).contains("https://microsoft.com/devicelogin")
                && stderr(&login).contains("enter the code"),
            "{endpoint}: the device-code message is shown: {}",
            text(&login)
        );
        let stored = folder.stored();
        assert_eq!(
            folder.refresh_token(),
            mock.latest_refresh_token(),
            "{endpoint}: {stored}"
        );
        assert_eq!(stored["clientId"], CLIENT_ID);
        assert_eq!(stored["tenantId"], mock.tenant());
        assert_eq!(stored["tokenEndpoint"], endpoint);
        let signed_in = mock.sign_in_counts();
        assert_eq!(
            (signed_in.device_code_requests, signed_in.device_sign_ins),
            (1, 1),
            "{endpoint}"
        );

        // No environment at all: the app, tenant and endpoint come from the file.
        let id = customer();
        let mut upgrade = command(&mock, &folder);
        upgrade_wait(&mut upgrade, &id);
        let upgrade = run(upgrade).await;

        assert_eq!(
            upgrade.status.code(),
            Some(0),
            "{endpoint}: {}",
            text(&upgrade)
        );
        assert_eq!(json_stdout(&upgrade)["outcome"], "completed", "{endpoint}");
        assert_eq!(mock.upgrades_created(), 1, "{endpoint}");
        let counts = mock.sign_in_counts();
        assert_eq!(
            counts.refresh_redemptions, 1,
            "{endpoint}: one token an hour"
        );
        assert_eq!(counts.stale_refresh_redemptions, 0, "{endpoint}");
        let (used, other) = match endpoint {
            "v1" => (counts.v1_token_requests, counts.v2_token_requests),
            _ => (counts.v2_token_requests, counts.v1_token_requests),
        };
        assert_eq!(
            (used, other),
            (counts.token_requests, 0),
            "{endpoint}: every token request went to the endpoint login chose"
        );
        assert!(counts.issued_token_requests >= 3, "{counts:?}");
        assert_eq!(
            folder.refresh_token(),
            mock.latest_refresh_token(),
            "{endpoint}: the rotated refresh token is in the file"
        );
    }
}

/// A waited upgrade whose polls span more than an access token lives, with a credentials file
/// holding a refresh token the mock issued; returns the sign-in counts.
async fn long_run(lifetime: Duration) -> partner_center_mock::SignInCounts {
    // 10 polls, 1 s apart: the run lasts at least 9 s, longer than the token lives.
    let mock = crate::support::start_mock(MockConfig {
        access_token_lifetime: lifetime,
        polls_to_complete: 10,
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();
    let seed = mock.issue_refresh_token(true);
    let id = customer();
    let mut upgrade = command(&mock, &folder);
    with_app(&mut upgrade, &mock);
    upgrade.env("PARTNER_CENTER_REFRESH_TOKEN", &seed);
    upgrade_wait(&mut upgrade, &id);
    let output = run(upgrade).await;

    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(json_stdout(&output)["outcome"], "completed");
    assert_eq!(mock.upgrades_created(), 1);
    let counts = mock.sign_in_counts();
    assert_eq!(
        mock.expired_token_requests(),
        0,
        "no request carried an expired token: {counts:?}"
    );
    assert_eq!(counts.stale_refresh_redemptions, 0, "{counts:?}");
    assert_eq!(counts.refused_refresh_tokens, 0, "{counts:?}");
    assert_eq!(folder.refresh_token(), mock.latest_refresh_token());
    // Eligibility, create and 10 status polls.
    assert_eq!(counts.issued_token_requests, 12, "{counts:?}");
    counts
}

/// Access tokens of 7 s, far under the 5-minute refresh margin: every call redeems, and none
/// is sent expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_an_access_token_lives_never_sends_an_expired_one() {
    let counts = long_run(Duration::from_secs(7)).await;
    assert_eq!(
        counts.refresh_redemptions, counts.issued_token_requests,
        "a token that lives less than the margin is renewed for every call: {counts:?}"
    );
    eprintln!("7 s access tokens over a 10-poll run: {counts:?}");
}

/// Access tokens of 5 min 3 s, just over the refresh margin: each is reused for about 3 s and
/// renewed ahead of its expiry, so a 9-second run needs more than one and fewer than one a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_just_over_the_refresh_margin_is_reused_then_renewed_ahead_of_expiry() {
    let counts = long_run(partner_center_upgrades::REFRESH_AHEAD + Duration::from_secs(3)).await;
    assert!(
        (2..=counts.issued_token_requests).contains(&counts.refresh_redemptions),
        "{counts:?}"
    );
    eprintln!("5 min 3 s access tokens over a 10-poll run: {counts:?}");
}

/// PARTNER_CENTER_REFRESH_TOKEN with no credentials file: the run works, the rotated token
/// replaces the seed in the file, and from then on the file wins over the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_from_the_environment_seeds_the_file_and_the_rotated_one_replaces_it() {
    let mock = crate::support::start_mock(MockConfig {
        revoked_refresh_tokens: vec!["revoked-refresh-token".into()],
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();
    let seed = mock.issue_refresh_token(true);
    assert!(!folder.credentials().exists());

    let mut first = command(&mock, &folder);
    with_app(&mut first, &mock);
    first.env("PARTNER_CENTER_REFRESH_TOKEN", &seed).args([
        "eligibility",
        "--customer",
        &customer(),
    ]);
    let first = run(first).await;

    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let stored = folder
        .refresh_token()
        .expect("the file holds a refresh token");
    assert_ne!(stored, seed, "the seed was rotated");
    assert_eq!(Some(&stored), mock.latest_refresh_token().as_ref());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(folder.credentials())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }

    // The file's token comes first: a (revoked) token in the environment is not even tried.
    let mut second = command(&mock, &folder);
    with_app(&mut second, &mock);
    second
        .env("PARTNER_CENTER_REFRESH_TOKEN", "revoked-refresh-token")
        .args(["eligibility", "--customer", &customer()]);
    let second = run(second).await;

    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let counts = mock.sign_in_counts();
    assert_eq!(counts.refused_refresh_tokens, 0, "{counts:?}");
    assert_eq!(counts.stale_refresh_redemptions, 0, "{counts:?}");
    assert_eq!(counts.refresh_redemptions, 2, "{counts:?}");
}

/// A seed from the environment that does not work is never written to the file, so a corrected
/// one works at once (before, the bad seed was stored first and shadowed every later one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_seed_is_not_stored_and_a_corrected_one_works() {
    let mock = crate::support::start_mock(MockConfig {
        revoked_refresh_tokens: vec!["revoked-refresh-token".into()],
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();

    let mut bad = command(&mock, &folder);
    with_app(&mut bad, &mock);
    bad.env("PARTNER_CENTER_REFRESH_TOKEN", "revoked-refresh-token")
        .args(["eligibility", "--customer", &customer()]);
    let bad = run(bad).await;
    assert_eq!(bad.status.code(), Some(7), "{}", text(&bad));
    assert_eq!(folder.refresh_token(), None, "the refused seed was stored");

    let mut good = command(&mock, &folder);
    with_app(&mut good, &mock);
    good.env(
        "PARTNER_CENTER_REFRESH_TOKEN",
        mock.issue_refresh_token(true),
    )
    .args(["eligibility", "--customer", &customer()]);
    let good = run(good).await;

    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    assert_eq!(folder.refresh_token(), mock.latest_refresh_token());
}

/// A refresh token expired by inactivity or revoked, from the environment or the file: exit 7,
/// naming AADSTS700082 and `login`, after one token request and no API request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_revoked_refresh_token_exits_7_naming_the_code_and_login_without_retrying() {
    // Revoked, through the environment.
    let mock = crate::support::start_mock(MockConfig {
        revoked_refresh_tokens: vec!["revoked-refresh-token".into()],
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();
    let mut revoked = command(&mock, &folder);
    with_app(&mut revoked, &mock);
    revoked
        .env("PARTNER_CENTER_REFRESH_TOKEN", "revoked-refresh-token")
        .args(["upgrade", "--customer", &customer(), "--wait"]);
    let revoked = run(revoked).await;

    assert_eq!(revoked.status.code(), Some(7), "{}", text(&revoked));
    assert!(
        stderr(&revoked).contains("AADSTS700082") && stderr(&revoked).contains("login"),
        "{}",
        text(&revoked)
    );
    assert_eq!(mock.token_requests(), 1, "never retried");
    assert_eq!(mock.requests(), 1, "no API request without a token");
    assert_eq!(mock.upgrades_created(), 0);

    // Unknown to the sign-in service (expired and forgotten), through the credentials file.
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let folder = Folder::new();
    let file = serde_json::json!({
        "clientId": CLIENT_ID, "tenantId": mock.tenant(), "authority": mock.url(),
        "tokenEndpoint": "v1", "refreshToken": "a-refresh-token-90-days-old"
    });
    std::fs::write(folder.credentials(), file.to_string()).unwrap();
    let mut expired = crate::support::pc_upgrade_command();
    expired
        .args(["--base-url", &mock.url(), "--credentials"])
        .arg(folder.credentials())
        .args(["--output", "json", "eligibility", "--customer", &customer()]);
    let expired = run(expired).await;

    assert_eq!(expired.status.code(), Some(7), "{}", text(&expired));
    assert!(
        stderr(&expired).contains("AADSTS700082") && stderr(&expired).contains("login"),
        "{}",
        text(&expired)
    );
    let counts = mock.sign_in_counts();
    assert_eq!(
        (counts.token_requests, counts.v1_token_requests),
        (1, 1),
        "{counts:?}"
    );
    assert_eq!(mock.requests(), 1);
}

/// `--require-mfa` and a sign-in without multi-factor authentication: the sign-in service
/// issues the token, Partner Center refuses it (401, 900421) and pc-upgrade exits 7 (sign in
/// again, with MFA) saying so; `whoami` names the problem and exits 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_without_mfa_is_refused_by_partner_center_with_900421_and_whoami_says_why() {
    let mock = crate::support::start_mock(MockConfig {
        require_mfa: true,
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();
    let seed = mock.issue_refresh_token(false);

    let mut refused = command(&mock, &folder);
    with_app(&mut refused, &mock);
    refused.env("PARTNER_CENTER_REFRESH_TOKEN", &seed).args([
        "eligibility",
        "--customer",
        &customer(),
    ]);
    let refused = run(refused).await;

    assert_eq!(
        refused.status.code(),
        Some(7),
        "a 401 with 900421 means sign in again with MFA: {}",
        text(&refused)
    );
    assert!(
        stderr(&refused).contains("900421") && stderr(&refused).contains("login"),
        "{}",
        text(&refused)
    );
    let counts = mock.sign_in_counts();
    assert_eq!(counts.mfa_refusals, 1, "not retried: {counts:?}");
    assert_eq!(
        counts.token_requests, 1,
        "not taken for an expired token: {counts:?}"
    );

    let mut whoami = command(&mock, &folder);
    with_app(&mut whoami, &mock);
    whoami.arg("whoami");
    let whoami = run(whoami).await;

    assert_eq!(whoami.status.code(), Some(7), "{}", text(&whoami));
    let shown = String::from_utf8_lossy(&whoami.stdout);
    assert!(
        shown.contains("multi-factor") && shown.contains("900421"),
        "{}",
        text(&whoami)
    );
}

/// Every file under `dir` but `except`, with its content.
fn files_under(dir: &Path, except: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path != except {
                let content = std::fs::read(&path).unwrap();
                found.push((path, content));
            }
        }
    }
    found
}

/// Login, a waited upgrade (-vv traces, recordings into the credentials folder) and whoami
/// (JSON traces): stdout, stderr and every file in the credentials folder but the credentials
/// file hold no refresh token, access token (nor its signature), device code or client secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_run_writes_contains_a_token_or_the_client_secret() {
    let mock = crate::support::start_mock(MockConfig {
        client_secret: Some(CLIENT_SECRET.into()),
        // Short-lived tokens: many are issued, each one more that must not leak.
        access_token_lifetime: Duration::from_secs(30),
        ..MockConfig::default()
    })
    .await;
    let folder = Folder::new();
    let recordings = folder.0.join("recordings");
    let mut outputs = Vec::new();

    let mut login = command(&mock, &folder);
    with_app(&mut login, &mock);
    login
        .env("PARTNER_CENTER_CLIENT_SECRET", CLIENT_SECRET)
        .args(["-vv", "login"]);
    outputs.push(("login", run(login).await));

    let mut upgrade = command(&mock, &folder);
    upgrade
        .env("PARTNER_CENTER_CLIENT_SECRET", CLIENT_SECRET)
        .arg("-vv")
        .arg("--record")
        .arg(&recordings);
    upgrade_wait(&mut upgrade, &customer());
    outputs.push(("upgrade", run(upgrade).await));

    let mut whoami = command(&mock, &folder);
    whoami
        .env("PARTNER_CENTER_CLIENT_SECRET", CLIENT_SECRET)
        .args(["-vvv", "--log-format", "json", "--output", "json", "whoami"]);
    outputs.push(("whoami", run(whoami).await));

    for (name, output) in &outputs {
        assert_eq!(output.status.code(), Some(0), "{name}: {}", text(output));
    }
    let mut secrets = vec![CLIENT_SECRET.to_owned()];
    for secret in mock.issued_secrets() {
        // An access token's signature alone is as secret as the token.
        if let Some(signature) = secret.split('.').nth(2).filter(|s| s.len() >= 16) {
            secrets.push(signature.to_owned());
        }
        secrets.push(secret);
    }
    let counts = mock.sign_in_counts();
    assert!(
        counts.device_sign_ins == 1 && counts.refresh_redemptions >= 2,
        "the scan has tokens to look for: {counts:?}"
    );
    let files = files_under(&folder.0, &folder.credentials());
    assert!(
        files.iter().any(|(path, _)| path.starts_with(&recordings)),
        "the recordings are scanned too: {files:?}"
    );
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, output) in outputs {
        assert!(!output.stderr.is_empty(), "{name} traced something");
        written.push((format!("{name} stdout"), output.stdout));
        written.push((format!("{name} stderr"), output.stderr));
    }
    written.extend(
        files
            .into_iter()
            .map(|(path, content)| (path.display().to_string(), content)),
    );
    for (what, content) in &written {
        let content = String::from_utf8_lossy(content);
        for secret in &secrets {
            assert!(
                !content.contains(secret.as_str()),
                "{what} contains a secret ({} characters of it): {content}",
                secret.len()
            );
        }
    }
    // The credentials file is where the refresh token belongs, and only the newest one.
    assert_eq!(folder.refresh_token(), mock.latest_refresh_token());
    assert!(!folder.stored().to_string().contains(CLIENT_SECRET));
}

/// A run killed (SIGKILL) once it has redeemed the refresh token and used the access token it
/// got: the file holds the newest refresh token the mock issued, and the next run, starting
/// from it, finishes the upgrade without a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_redeeming_leaves_the_newest_refresh_token_and_the_next_run_uses_it() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let folder = Folder::new();
    let seed = mock.issue_refresh_token(true);
    let id = customer();

    let mut first = command(&mock, &folder);
    with_app(&mut first, &mock);
    first
        .env("PARTNER_CENTER_REFRESH_TOKEN", &seed)
        .args([
            "upgrade",
            "--customer",
            &id,
            "--wait",
            "--poll-interval",
            "1h",
            "--timeout",
            "2h",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = first.spawn().unwrap();
    // Redeemed, saved, then used: the first API request with the new access token is the
    // proof the client got past the save. (Killing it right after the mock answered the
    // redemption could land before the client saved, and then only the seed is on disk: a
    // window no client can close.)
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.sign_in_counts().issued_token_requests == 0 {
        assert!(
            Instant::now() < deadline,
            "no API request within 60 s: {:?}",
            mock.sign_in_counts()
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(mock.token_requests() >= 1);
    child.kill().unwrap();
    child.wait().unwrap();

    let stored = folder.refresh_token().expect("a refresh token is stored");
    assert_ne!(stored, seed);
    assert_eq!(
        Some(&stored),
        mock.latest_refresh_token().as_ref(),
        "the newest refresh token the mock issued is on disk"
    );

    let mut second = command(&mock, &folder);
    with_app(&mut second, &mock);
    upgrade_wait(&mut second, &id);
    let second = run(second).await;

    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(json_stdout(&second)["outcome"], "completed");
    assert_eq!(mock.upgrades_created(), 1);
    let counts = mock.sign_in_counts();
    assert_eq!(counts.refresh_redemptions, 2, "{counts:?}");
    assert_eq!(
        counts.stale_refresh_redemptions, 0,
        "the second run redeemed the newest token: {counts:?}"
    );
    assert_eq!(folder.refresh_token(), mock.latest_refresh_token());
}
