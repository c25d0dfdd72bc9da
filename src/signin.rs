//! Signing in the way Partner Center requires: the secure application model.
//!
//! A partner holds a *refresh token* from a multi-factor sign-in and redeems it, with the app's
//! credentials, for access tokens of about an hour. [`RefreshTokenProvider`] does that as a
//! [`TokenProvider`]: it refreshes at least five minutes before expiry, with one refresh in
//! flight however many calls wait, and it saves the new refresh token that every redemption
//! returns to a [`RefreshTokenStore`] *before* the new access token is used, so a crash never
//! leaves only a stale refresh token behind.
//!
//! Why not a crate: `oauth2` rejects the v1 endpoint's string `expires_in` and pins another
//! reqwest; `azure_identity` hard-codes its authority, so it cannot be pointed at the 21Vianet
//! cloud's or at a loopback mock. What is needed is two form POSTs and their answers, written
//! here against reqwest (already the client's HTTP stack) and tested as tables.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use crate::auth::{AccessToken, AuthError, TokenFuture, TokenProvider};
use crate::base_url::{BaseUrl, BaseUrlError, Cloud};
use crate::retry::{Decision, Failure, RetryPolicy};

/// The resource (v1) and scope (v2) of Partner Center's API.
pub const PARTNER_CENTER_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
const V2_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default offline_access";
/// How long before expiry an access token is replaced (Microsoft's own bulk tool uses 5 minutes).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// The longest access-token lifetime believed (real ones are about an hour).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between device-code polls, and the longest a device code is waited for.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);
const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The largest token-endpoint answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// A secret string: a refresh token or a client secret. Its `Debug` is `<redacted>` and it has
/// no `Display`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, dropping surrounding white space.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().trim().to_owned())
    }

    /// The secret itself, for sending or storing it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which token endpoint redeems the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoint {
    /// `/{tenant}/oauth2/token` with `resource=https://api.partnercenter.microsoft.com`
    /// (Partner Center's documentation; `expires_in` arrives as a string).
    V1,
    /// `/{tenant}/oauth2/v2.0/token` with scope `https://api.partnercenter.microsoft.com/.default`
    /// (MSAL; `expires_in` is a number).
    #[default]
    V2,
}

impl TokenEndpoint {
    fn path(self, tenant: &str) -> String {
        match self {
            TokenEndpoint::V1 => format!("/{tenant}/oauth2/token"),
            TokenEndpoint::V2 => format!("/{tenant}/oauth2/v2.0/token"),
        }
    }

    fn device_code_path(self, tenant: &str) -> String {
        match self {
            TokenEndpoint::V1 => format!("/{tenant}/oauth2/devicecode"),
            TokenEndpoint::V2 => format!("/{tenant}/oauth2/v2.0/devicecode"),
        }
    }

    /// `resource` or `scope`, as the endpoint wants it.
    fn audience(self) -> (&'static str, &'static str) {
        match self {
            TokenEndpoint::V1 => ("resource", PARTNER_CENTER_RESOURCE),
            TokenEndpoint::V2 => ("scope", V2_SCOPE),
        }
    }
}

/// The sign-in service of a cloud: `https://login.microsoftonline.com` for the global cloud,
/// `https://login.chinacloudapi.cn` for 21Vianet, or a loopback `http` URL for tests. The same
/// rules as a [`BaseUrl`] apply: https, or plain http only to loopback.
#[derive(Debug, Clone)]
pub struct Authority(BaseUrl);

impl Authority {
    /// The authority of a documented cloud.
    pub fn of(cloud: Cloud) -> Self {
        let url = match cloud {
            Cloud::China21Vianet => "https://login.chinacloudapi.cn",
            _ => "https://login.microsoftonline.com",
        };
        Self(BaseUrl::parse(url).expect("the clouds' authorities are valid"))
    }

    /// An authority by URL.
    pub fn parse(url: &str) -> Result<Self, BaseUrlError> {
        BaseUrl::parse(url).map(Self)
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn url(&self, path: &str) -> Result<Url, AuthError> {
        Url::parse(&format!("{}{path}", self.0.as_str()))
            .map_err(|_| AuthError::config("the tenant makes the token endpoint's URL invalid"))
    }
}

/// The app registration that redeems refresh tokens: its client id and, for a confidential
/// app, its secret.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret, for a confidential app; `None` for a public client (device code).
    pub client_secret: Option<Secret>,
}

/// Where the current refresh token lives. Each redemption returns a new one, which is saved
/// here before the access token that came with it is used.
pub trait RefreshTokenStore: Send + Sync {
    /// The stored refresh token, if there is one.
    fn load(&self) -> Result<Option<Secret>, AuthError>;
    /// Replaces the stored refresh token; must be durable when it returns.
    fn save(&self, token: &Secret) -> Result<(), AuthError>;
}

/// A refresh token held in memory only (for a token passed in the environment, or tests).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Option<Secret>>);

impl MemoryStore {
    /// A store holding `token`.
    pub fn with(token: Secret) -> Self {
        Self(Mutex::new(Some(token)))
    }
}

impl RefreshTokenStore for MemoryStore {
    fn load(&self) -> Result<Option<Secret>, AuthError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
    fn save(&self, token: &Secret) -> Result<(), AuthError> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(())
    }
}

/// A credentials file: JSON with the refresh token and, optionally, the app and tenant
/// (`clientId`, `tenantId`, `clientSecret`, `authority`, `tokenEndpoint`), so an operator signs
/// in once and every command finds them. Written atomically (a new file beside it, synced, then
/// renamed over it) with owner-only permissions, so a crash leaves either the old file or the
/// new one, never half of one.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: std::path::PathBuf,
}

/// What a credentials file holds besides the refresh token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSettings {
    /// The application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The partner's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The sign-in service's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// `v1` or `v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
}

#[derive(Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsFile {
    #[serde(flatten)]
    settings: StoredSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl FileStore {
    /// A store at `path` (created on the first save).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The settings and client secret the file holds, if it exists.
    pub fn settings(&self) -> Result<(StoredSettings, Option<Secret>), AuthError> {
        let file = self.read()?.unwrap_or_default();
        Ok((file.settings, file.client_secret.map(Secret::new)))
    }

    /// Saves `settings` beside the refresh token already stored.
    pub fn save_settings(&self, settings: &StoredSettings) -> Result<(), AuthError> {
        let mut file = self.read()?.unwrap_or_default();
        file.settings = settings.clone();
        self.write(&file)
    }

    fn read(&self) -> Result<Option<CredentialsFile>, AuthError> {
        use std::io::Read;
        let cannot = |e: std::io::Error| {
            AuthError::config(format!(
                "cannot read the credentials file {}: {e}",
                self.path.display()
            ))
        };
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cannot(e)),
        };
        if !file.metadata().map_err(cannot)?.is_file() {
            return Err(AuthError::config(format!(
                "the credentials file {} is not a regular file",
                self.path.display()
            )));
        }
        let mut text = Vec::new();
        file.take(MAX_TOKEN_ANSWER as u64 + 1)
            .read_to_end(&mut text)
            .map_err(cannot)?;
        if text.len() > MAX_TOKEN_ANSWER {
            return Err(AuthError::config(format!(
                "the credentials file {} is larger than 64 KiB",
                self.path.display()
            )));
        }
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            // serde_json's message names a line and column, never the file's content.
            AuthError::config(format!(
                "the credentials file {} is not valid JSON: {e}",
                self.path.display()
            ))
        })
    }

    fn write(&self, file: &CredentialsFile) -> Result<(), AuthError> {
        use std::io::Write;
        let fail = |what: &str, e: std::io::Error| {
            AuthError::config(format!(
                "cannot {what} the credentials file {}: {e}",
                self.path.display()
            ))
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "credentials".into());
        // A run killed mid-write leaves its temporary file (holding a refresh token) behind:
        // remove leftovers older than a minute (a newer one may be another process's, mid-write).
        let prefix = format!(".{name}.");
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let leftover = entry.file_name().to_string_lossy().into_owned();
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(60));
                if leftover.starts_with(&prefix) && leftover.ends_with(".tmp") && old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // A fresh, unguessable name created exclusively: never a file (or link) someone planted.
        let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let text =
            serde_json::to_vec_pretty(file).map_err(|e| fail("write", std::io::Error::other(e)))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&temporary).map_err(|e| fail("write", e))?;
        out.write_all(&text)
            .and_then(|()| out.sync_all())
            .map_err(|e| fail("write", e))?;
        drop(out);
        std::fs::rename(&temporary, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            fail("replace", e)
        })?;
        // The rename is durable once the folder is synced.
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

impl RefreshTokenStore for FileStore {
    fn load(&self) -> Result<Option<Secret>, AuthError> {
        Ok(self
            .read()?
            .and_then(|f| f.refresh_token)
            .filter(|t| !t.trim().is_empty())
            .map(Secret::new))
    }

    fn save(&self, token: &Secret) -> Result<(), AuthError> {
        let mut file = self.read()?.unwrap_or_default();
        file.refresh_token = Some(token.expose().to_owned());
        self.write(&file)
    }
}

/// What a token endpoint answered.
struct Redeemed {
    access: AccessToken,
    expires_in: Duration,
    refresh: Option<Secret>,
}

/// The clock the provider reads; a test can replace it to simulate hours.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A [`TokenProvider`] that redeems the stored refresh token for Partner Center access tokens.
pub struct RefreshTokenProvider {
    http: reqwest::Client,
    authority: Authority,
    tenant: String,
    endpoint: TokenEndpoint,
    app: AppCredentials,
    store: Arc<dyn RefreshTokenStore>,
    retry: RetryPolicy,
    clock: Clock,
    cached: Mutex<Option<(AccessToken, SystemTime)>>,
    /// Counts redemptions, so a caller that waited for another's sees that one happened.
    generation: std::sync::atomic::AtomicU64,
    refreshing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for RefreshTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenProvider")
            .field("authority", &self.authority.as_str())
            .field("tenant", &self.tenant)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.app.client_id)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenProvider {
    /// A provider for `tenant` (the partner's tenant id or domain) at `authority`.
    pub fn new(
        authority: Authority,
        tenant: impl Into<String>,
        app: AppCredentials,
        store: Arc<dyn RefreshTokenStore>,
    ) -> Result<Self, AuthError> {
        let tenant = tenant.into();
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(AuthError::config(
                "the tenant must be a tenant id or domain (letters, digits, '-', '.', '_')",
            ));
        }
        if app.client_id.trim().is_empty() {
            return Err(AuthError::config("the client id is empty"));
        }
        Ok(Self {
            http: token_http(&authority)?,
            authority,
            tenant,
            endpoint: TokenEndpoint::default(),
            app,
            store,
            retry: RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            },
            clock: Arc::new(SystemTime::now),
            cached: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// Which endpoint to use (default [`TokenEndpoint::V2`]).
    pub fn endpoint(mut self, endpoint: TokenEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// How failed token requests are retried (default: 3 attempts, as API calls are retried).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Replaces the clock (tests simulate hours with it).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn fresh(&self) -> Option<AccessToken> {
        let now = (self.clock)();
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(_, expires)| {
                expires
                    .duration_since(now)
                    .is_ok_and(|left| left > REFRESH_AHEAD)
            })
            .map(|(token, _)| token.clone())
    }

    /// The cached token while it has not expired (margin aside).
    fn unexpired(&self) -> Option<AccessToken> {
        let now = (self.clock)();
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(_, expires)| *expires > now)
            .map(|(token, _)| token.clone())
    }

    async fn refresh(&self) -> Result<AccessToken, AuthError> {
        // Single flight: one caller redeems, the others wait here and then take its token, even
        // when the service granted less than the refresh margin (it is still unexpired).
        use std::sync::atomic::Ordering;
        let seen = self.generation.load(Ordering::Acquire);
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(token) = self.unexpired()
        {
            return Ok(token);
        }
        let refresh = self.store.load()?.ok_or_else(|| {
            AuthError::sign_in_again("no refresh token is stored: run `pc-upgrade login`")
        })?;
        let requested = (self.clock)();
        let redeemed = self.redeem(&refresh).await?;
        // The new refresh token is saved before the access token is used: a crash between the
        // two leaves the newest refresh token on disk.
        if let Some(new) = &redeemed.refresh {
            self.store.save(new)?;
        }
        // The lifetime comes from the network: cap it (a day is far past any real one) so the
        // addition cannot overflow.
        let lifetime = redeemed.expires_in.min(MAX_TOKEN_LIFETIME);
        let expires = requested.checked_add(lifetime).ok_or_else(|| {
            AuthError::unavailable_message("the sign-in service's expires_in is out of range")
        })?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((redeemed.access.clone(), expires));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(redeemed.access)
    }

    async fn redeem(&self, refresh: &Secret) -> Result<Redeemed, AuthError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("client_id", &self.app.client_id)
                .append_pair("refresh_token", refresh.expose());
            let (key, value) = self.endpoint.audience();
            form.append_pair(key, value);
            if let Some(secret) = &self.app.client_secret {
                form.append_pair("client_secret", secret.expose());
            }
            form.finish()
        };
        let url = self.authority.url(&self.endpoint.path(&self.tenant))?;
        post_form_with_retries(&self.http, &url, body, &self.retry)
            .await
            .and_then(|answer| parse_token_answer(&answer))
    }
}

impl TokenProvider for RefreshTokenProvider {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            match self.fresh() {
                Some(token) => Ok(token),
                None => self.refresh().await,
            }
        })
    }

    fn invalidate(&self) -> bool {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
        true
    }
}

/// The HTTP client for the sign-in service: no proxy for loopback, no redirects, bounded time.
fn token_http(authority: &Authority) -> Result<reqwest::Client, AuthError> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(
            crate::client::tls_config().map_err(|e| AuthError::config(e.to_string()))?,
        )
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if authority.0.is_loopback() {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| AuthError::config(format!("the HTTP client could not be set up: {e}")))
}

/// A token endpoint's answer, read to at most [`MAX_TOKEN_ANSWER`] bytes.
pub(crate) struct FormAnswer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// POSTs a form, retrying what API calls retry (408, 429, 5xx, connection failures).
pub(crate) async fn post_form_with_retries(
    http: &reqwest::Client,
    url: &Url,
    body: String,
    policy: &RetryPolicy,
) -> Result<FormAnswer, AuthError> {
    let started = tokio::time::Instant::now();
    let mut attempt = 1;
    loop {
        let result = post_form(http, url, body.clone()).await;
        let failure = match &result {
            Ok(answer) if answer.status < 400 => return result,
            Ok(answer) => Failure::Status(answer.status),
            Err(_) => Failure::Connect,
        };
        let jitter = f64::from(attempt % 4) / 4.0;
        match policy.decide(failure, attempt, started.elapsed(), None, jitter) {
            Decision::RetryAfter(delay) => {
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Decision::GiveUp(_) => return result,
        }
    }
}

async fn post_form(
    http: &reqwest::Client,
    url: &Url,
    body: String,
) -> Result<FormAnswer, AuthError> {
    use futures_util::StreamExt;
    let response = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            AuthError::unavailable("the sign-in service could not be reached", e.without_url())
        })?;
    let status = response.status().as_u16();
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            AuthError::unavailable("the sign-in service's answer broke off", e.without_url())
        })?;
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(AuthError::unavailable_message(
                "the sign-in service's answer is longer than 64 KiB",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(FormAnswer { status, body })
}

/// The fields of a token answer this client reads; `expires_in` is a string on v1, a number on
/// v2.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<i64>,
}

/// Reads `expires_in`: seconds as a number or as a string of digits.
fn expires_in(value: Option<&serde_json::Value>) -> Option<Duration> {
    let seconds = match value? {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// The AAD codes that mean the refresh token can no longer be used: sign in again.
///
/// - 700082: expired after 90 days without use; 70008: expired or revoked;
/// - 50173, 50133: revoked by a password change or an admin;
/// - 50076, 50078, 50079: multi-factor authentication is required;
/// - 65001: consent missing; 700084: a token for a single-page app.
const SIGN_IN_AGAIN_CODES: &[i64] = &[
    700082, 70008, 50173, 50133, 50076, 50078, 50079, 65001, 700084,
];

fn parse_token_answer(answer: &FormAnswer) -> Result<Redeemed, AuthError> {
    let parsed: Result<TokenAnswer, _> = serde_json::from_slice(&answer.body);
    let Ok(parsed) = parsed else {
        return Err(AuthError::unavailable_message(format!(
            "the sign-in service answered HTTP {} with a body that is not a token answer",
            answer.status
        )));
    };
    if let Some(error) = &parsed.error {
        let codes: Vec<String> = parsed
            .error_codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect();
        let description = parsed
            .error_description
            .as_deref()
            .map(|d| crate::error::printable(d.lines().next().unwrap_or_default()))
            .unwrap_or_default();
        // The description usually starts with the code already ("AADSTS700082: ...").
        let codes: Vec<String> = codes
            .into_iter()
            .filter(|c| !description.contains(c.as_str()))
            .collect();
        let message = format!(
            "the sign-in service refused the refresh token: {} {} {}",
            crate::error::printable(error),
            codes.join(","),
            description
        );
        let sign_in_again = matches!(error.as_str(), "invalid_grant" | "interaction_required")
            || parsed
                .error_codes
                .iter()
                .any(|c| SIGN_IN_AGAIN_CODES.contains(c));
        return Err(if sign_in_again {
            AuthError::sign_in_again(format!("{}; run `pc-upgrade login`", message.trim_end()))
        } else {
            AuthError::unavailable_message(message.trim_end().to_owned())
        });
    }
    let access = parsed.access_token.ok_or_else(|| {
        AuthError::unavailable_message("the sign-in service's answer has no access_token")
    })?;
    let access = AccessToken::new(access).map_err(|_| {
        AuthError::unavailable_message("the sign-in service's access token cannot be sent")
    })?;
    let expires_in = expires_in(parsed.expires_in.as_ref()).ok_or_else(|| {
        AuthError::unavailable_message("the sign-in service's answer has no usable expires_in")
    })?;
    Ok(Redeemed {
        access,
        expires_in,
        refresh: parsed
            .refresh_token
            .filter(|t| !t.trim().is_empty())
            .map(Secret::new),
    })
}

/// A device-code sign-in under way: show [`DeviceCode::message`] to the user.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The sign-in service's instructions, ready to print.
    pub message: String,
    device_code: Secret,
    interval: Duration,
    expires_in: Duration,
}

#[derive(Deserialize)]
struct DeviceCodeAnswer {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    verification_url: Option<String>,
    message: Option<String>,
    interval: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The device-code sign-in (RFC 8628), as `New-PartnerAccessToken -UseDeviceAuthentication`
/// does it: ask for a code, let the user sign in (with multi-factor authentication) in a
/// browser, poll until they have, and save the refresh token.
pub struct DeviceSignIn {
    http: reqwest::Client,
    authority: Authority,
    tenant: String,
    endpoint: TokenEndpoint,
    client_id: String,
}

impl DeviceSignIn {
    /// A sign-in for `tenant` with the public client `client_id`.
    pub fn new(
        authority: Authority,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        endpoint: TokenEndpoint,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            http: token_http(&authority)?,
            authority,
            tenant: tenant.into(),
            endpoint,
            client_id: client_id.into(),
        })
    }

    /// Asks for a device code.
    pub async fn start(&self) -> Result<DeviceCode, AuthError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", &self.client_id);
            let (key, value) = self.endpoint.audience();
            form.append_pair(key, value);
            form.finish()
        };
        let url = self
            .authority
            .url(&self.endpoint.device_code_path(&self.tenant))?;
        let answer =
            post_form_with_retries(&self.http, &url, body, &RetryPolicy::default()).await?;
        let parsed: DeviceCodeAnswer = serde_json::from_slice(&answer.body)
            .map_err(|_| AuthError::unavailable_message("the device-code answer is not JSON"))?;
        if let Some(error) = parsed.error {
            return Err(AuthError::config(format!(
                "the sign-in service refused the device-code request: {} {}",
                crate::error::printable(&error),
                crate::error::printable(parsed.error_description.as_deref().unwrap_or_default())
            )));
        }
        let (Some(device_code), Some(user_code)) = (parsed.device_code, parsed.user_code) else {
            return Err(AuthError::unavailable_message(
                "the device-code answer has no device_code or user_code",
            ));
        };
        let verification_uri = parsed
            .verification_uri
            .or(parsed.verification_url)
            .unwrap_or_else(|| "https://microsoft.com/devicelogin".into());
        let message = parsed.message.unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}.")
        });
        Ok(DeviceCode {
            user_code,
            verification_uri,
            message: crate::error::printable(&message),
            device_code: Secret::new(device_code),
            interval: expires_in(parsed.interval.as_ref())
                .unwrap_or(Duration::from_secs(5))
                .clamp(Duration::from_secs(1), MAX_POLL_INTERVAL),
            expires_in: expires_in(parsed.expires_in.as_ref())
                .unwrap_or(Duration::from_secs(900))
                .min(MAX_DEVICE_CODE_LIFETIME),
        })
    }

    /// Polls until the user has signed in, as the protocol says: `authorization_pending` keeps
    /// polling, `slow_down` adds five seconds to the interval, and an expired code, a declined
    /// sign-in or any other error ends it. The refresh token goes to `store`.
    pub async fn finish(
        &self,
        code: &DeviceCode,
        store: &dyn RefreshTokenStore,
    ) -> Result<AccessToken, AuthError> {
        let started = tokio::time::Instant::now();
        let mut interval = code
            .interval
            .clamp(Duration::from_secs(1), MAX_POLL_INTERVAL);
        let lifetime = code.expires_in.min(MAX_DEVICE_CODE_LIFETIME);
        let url = self.authority.url(&self.endpoint.path(&self.tenant))?;
        loop {
            let remaining = lifetime.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(AuthError::sign_in_again(
                    "the device code expired before the sign-in finished; run `pc-upgrade login` again",
                ));
            }
            tokio::time::sleep(interval.min(remaining)).await;
            let body = {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
                    .append_pair("client_id", &self.client_id)
                    .append_pair("device_code", code.device_code.expose());
                if self.endpoint == TokenEndpoint::V1 {
                    form.append_pair("resource", PARTNER_CENTER_RESOURCE)
                        .append_pair("code", code.device_code.expose());
                }
                form.finish()
            };
            // A brief 5xx or dropped connection does not end the sign-in.
            let answer =
                post_form_with_retries(&self.http, &url, body, &RetryPolicy::default()).await?;
            let pending: Option<TokenAnswer> = serde_json::from_slice(&answer.body).ok();
            match pending.as_ref().and_then(|p| p.error.as_deref()) {
                Some("authorization_pending") => continue,
                Some("slow_down") => {
                    interval = (interval + Duration::from_secs(5)).min(MAX_POLL_INTERVAL);
                    continue;
                }
                Some("expired_token") => {
                    return Err(AuthError::sign_in_again(
                        "the device code expired before the sign-in finished; run `pc-upgrade login` again",
                    ));
                }
                Some("authorization_declined" | "access_denied") => {
                    return Err(AuthError::sign_in_again(
                        "the sign-in was declined; run `pc-upgrade login` again",
                    ));
                }
                _ => {}
            }
            let redeemed = parse_token_answer(&answer)?;
            let refresh = redeemed.refresh.ok_or_else(|| {
                AuthError::unavailable_message(
                    "the sign-in gave no refresh token (is offline_access allowed for the app?)",
                )
            })?;
            store.save(&refresh)?;
            return Ok(redeemed.access);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: serde_json::Value) -> FormAnswer {
        FormAnswer {
            status,
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    #[test]
    fn expires_in_is_read_as_a_number_or_a_string() {
        let table: &[(serde_json::Value, Option<u64>)] = &[
            (serde_json::json!(3600), Some(3600)),
            (serde_json::json!("3600"), Some(3600)),
            (serde_json::json!(" 599 "), Some(599)),
            (serde_json::json!("soon"), None),
            (serde_json::json!(-1), None),
            (serde_json::json!(null), None),
        ];
        for (value, expected) in table {
            assert_eq!(
                expires_in(Some(value)),
                expected.map(Duration::from_secs),
                "{value}"
            );
        }
    }

    #[test]
    fn token_endpoint_errors_are_sign_in_again_or_retryable_as_their_codes_say() {
        let table: &[(&str, &[i64], bool)] = &[
            ("invalid_grant", &[700082], true),
            ("invalid_grant", &[50076], true),
            ("interaction_required", &[50078], true),
            ("invalid_grant", &[], true),
            ("temporarily_unavailable", &[], false),
            ("server_error", &[50001], false),
            ("invalid_client", &[7000215], false),
        ];
        for &(error, codes, again) in table {
            let refused = parse_token_answer(&answer(
                400,
                serde_json::json!({ "error": error, "error_codes": codes, "error_description": "AADSTS: text\r\nTrace ID: x" }),
            ))
            .err()
            .expect("an error answer is an error");
            assert_eq!(refused.is_sign_in_again(), again, "{error} {codes:?}");
            assert!(!refused.to_string().contains('\r'), "{refused}");
        }
    }

    #[test]
    fn a_v1_and_a_v2_answer_both_give_a_token_and_the_new_refresh_token() {
        for expires in [serde_json::json!("3599"), serde_json::json!(3599)] {
            let redeemed = parse_token_answer(&answer(
                200,
                serde_json::json!({
                    "token_type": "Bearer", "access_token": "eyJ0.eyJ1.c2ln", "expires_in": expires,
                    "refresh_token": "new-refresh-token", "resource": PARTNER_CENTER_RESOURCE
                }),
            ))
            .unwrap();
            assert_eq!(redeemed.expires_in, Duration::from_secs(3599));
            assert_eq!(
                redeemed.refresh.as_ref().map(Secret::expose),
                Some("new-refresh-token")
            );
        }
    }

    #[test]
    fn the_file_store_keeps_settings_rotates_the_token_and_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("pcu-store-{}", uuid::Uuid::new_v4()));
        let store = FileStore::new(dir.join("credentials.json"));
        assert_eq!(store.load().unwrap(), None);
        let settings = StoredSettings {
            client_id: Some("app".into()),
            tenant_id: Some("contoso.onmicrosoft.com".into()),
            ..StoredSettings::default()
        };
        store.save_settings(&settings).unwrap();
        store.save(&Secret::new("first")).unwrap();
        store.save(&Secret::new("second")).unwrap();
        assert_eq!(store.load().unwrap(), Some(Secret::new("second")));
        assert_eq!(store.settings().unwrap().0, settings);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = Secret::new("hunter2-refresh");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let app = AppCredentials {
            client_id: "app".into(),
            client_secret: Some(Secret::new("client-secret-value")),
        };
        assert!(!format!("{app:?}").contains("client-secret-value"));
    }
}
