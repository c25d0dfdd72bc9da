//! The sign-in service of the mock's tenant ([`crate::MockConfig::tenant`]): the token
//! endpoints a Partner Center client redeems refresh tokens at, and the device-code sign-in, as
//! Microsoft Entra ID answers them. None of this is in the spec (which is Partner Center's API
//! only), so these routes are matched before the spec's operations; the body limit, timeouts and
//! faults of every request apply to them all the same.
//!
//! - `POST /{tenant}/oauth2/token` (v1: `resource`, `expires_in` a string) and
//!   `POST /{tenant}/oauth2/v2.0/token` (v2: `scope`, `expires_in` a number), with
//!   `grant_type=refresh_token` or the device-code grant;
//! - `POST /{tenant}/oauth2/devicecode` and `POST /{tenant}/oauth2/v2.0/devicecode`: a device
//!   code whose polls answer `authorization_pending` a configured number of times (and
//!   optionally one `slow_down`), then tokens, as if the user had signed in.
//!
//! Access tokens are JSON Web Tokens (base64url header, claims, and a keyed hash as signature),
//! so `pc-upgrade whoami` can read their claims; the mock checks the signature and `exp` of a
//! token it issued, and its `amr` when [`crate::MockConfig::require_mfa`] asks. Verifying them
//! keeps no state. Every redemption rotates the refresh token; the old one keeps working, as at
//! Microsoft, but redeeming it is counted ([`SignInCounts::stale_refresh_redemptions`]). Revoked
//! tokens ([`crate::MockConfig::revoked_refresh_tokens`]) and unknown ones answer `invalid_grant`
//! with `AADSTS700082`. What it remembers is bounded: at most [`MAX_REFRESH_TOKENS`] refresh
//! tokens (the oldest are forgotten, and then refused like unknown ones), [`MAX_DEVICE_CODES`]
//! device codes and [`MAX_RECENT_SECRETS`] secrets for [`crate::RunningMock::issued_secrets`].

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;
use hyper::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ledger::Answer;
use crate::routing::{header_text, unauthorized};
use crate::{MockConfig, Shared};

/// Partner Center's resource (v1) and the prefix of its scopes (v2).
pub const PARTNER_CENTER_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long a device code may be polled.
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(900);
/// The polling interval a device code asks for (the shortest the protocol allows).
const DEVICE_CODE_INTERVAL: u64 = 1;
/// The most refresh tokens remembered; past it the oldest are forgotten.
pub const MAX_REFRESH_TOKENS: usize = 10_000;
/// The most device codes remembered; past it the oldest are forgotten.
pub const MAX_DEVICE_CODES: usize = 1_000;
/// The most secrets kept for [`crate::RunningMock::issued_secrets`].
pub const MAX_RECENT_SECRETS: usize = 1_000;
/// The longest text of a request echoed in an error message.
const MAX_ECHO: usize = 64;

/// What the sign-in side of the mock has seen, for tests to assert on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignInCounts {
    /// Requests to a token endpoint (v1 or v2, any grant, any answer, device-code polls too).
    pub token_requests: u64,
    /// Of those, requests to the v1 endpoint (`/oauth2/token`).
    pub v1_token_requests: u64,
    /// Of those, requests to the v2 endpoint (`/oauth2/v2.0/token`).
    pub v2_token_requests: u64,
    /// Requests for a device code.
    pub device_code_requests: u64,
    /// Device-code polls answered `authorization_pending` or `slow_down`.
    pub pending_answers: u64,
    /// Device-code sign-ins completed with tokens.
    pub device_sign_ins: u64,
    /// Refresh tokens redeemed for tokens.
    pub refresh_redemptions: u64,
    /// Of those, redemptions of a refresh token that had been redeemed (rotated) before: a
    /// client that kept using an old refresh token instead of the newest.
    pub stale_refresh_redemptions: u64,
    /// Refresh tokens refused as expired, revoked or unknown (`invalid_grant`, 700082).
    pub refused_refresh_tokens: u64,
    /// API requests accepted with an access token the mock issued.
    pub issued_token_requests: u64,
    /// API requests made with an access token the mock issued, after it expired (401).
    pub expired_token_requests: u64,
    /// API requests refused because the token's sign-in had no multi-factor authentication
    /// (401, `900421`; only with [`crate::MockConfig::require_mfa`]).
    pub mfa_refusals: u64,
}

/// The token endpoint's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A path of the sign-in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token(Version),
    DeviceCode(Version),
}

/// The tenant and endpoint a path names: `/{tenant}/oauth2[/v2.0]/{token|devicecode}` (literal
/// segments ignoring case, a trailing slash allowed), or `None` for any other path.
fn endpoint(path: &str) -> Option<(&str, Endpoint)> {
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let (tenant, rest) = segments.split_first()?;
    if tenant.is_empty() || !rest.first()?.eq_ignore_ascii_case("oauth2") {
        return None;
    }
    let (version, last) = match rest {
        [_, last] => (Version::V1, *last),
        [_, v2, last] if v2.eq_ignore_ascii_case("v2.0") => (Version::V2, *last),
        _ => return None,
    };
    if last.eq_ignore_ascii_case("token") {
        Some((tenant, Endpoint::Token(version)))
    } else if last.eq_ignore_ascii_case("devicecode") {
        Some((tenant, Endpoint::DeviceCode(version)))
    } else {
        None
    }
}

/// Whether `path` is one of the sign-in service's endpoints (of any tenant): such requests are
/// not the partner's API calls, so the throttle does not count them.
pub(crate) fn is_endpoint(path: &str) -> bool {
    endpoint(path).is_some()
}

/// Signs and verifies access tokens: a keyed 128-bit hash of `header.claims`, with keys random
/// per mock, so a client cannot forge a token and another mock's tokens are not accepted.
pub(crate) struct Signer(RandomState, RandomState);

impl Signer {
    pub(crate) fn new() -> Self {
        Signer(RandomState::new(), RandomState::new())
    }

    fn sign(&self, data: &str) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.0.hash_one(data).to_be_bytes());
        bytes[8..].copy_from_slice(&self.1.hash_one(data).to_be_bytes());
        base64url(&bytes)
    }

    /// The expiry and multi-factor flag of a token this signer issued; `None` for any other.
    fn verify(&self, token: &str) -> Option<Issued> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expected = self.sign(&format!("{header}.{claims}"));
        if !crate::routing::same_secret(signature.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let claims: Value = serde_json::from_slice(&base64url_decode(claims)?).ok()?;
        Some(Issued {
            exp: claims["exp"].as_i64()?,
            mfa: claims["amr"]
                .as_array()
                .is_some_and(|amr| amr.iter().any(|m| m == "mfa")),
        })
    }
}

/// What a verified access token says.
#[derive(Debug, PartialEq, Eq)]
struct Issued {
    exp: i64,
    mfa: bool,
}

/// A refresh token the mock issued.
#[derive(Debug)]
struct RefreshRecord {
    /// Whether the sign-in it comes from was multi-factor (its access tokens say so).
    mfa: bool,
    /// Whether it has been redeemed already, so that a newer one replaced it.
    rotated: bool,
}

/// A device code being polled.
#[derive(Debug)]
struct DeviceRecord {
    client_id: String,
    issued: Instant,
    polls: u32,
    slowed_down: bool,
    /// Whether the sign-in returns a refresh token (v1 always; v2 with `offline_access`).
    offline: bool,
}

/// The sign-in service's state: the refresh tokens and device codes it issued, bounded.
#[derive(Default)]
pub(crate) struct Identity {
    refresh: HashMap<String, RefreshRecord>,
    refresh_order: VecDeque<String>,
    latest_refresh: Option<String>,
    devices: HashMap<String, DeviceRecord>,
    device_order: VecDeque<String>,
    recent_secrets: VecDeque<String>,
    pub(crate) counts: SignInCounts,
}

impl Identity {
    /// A new refresh token of a sign-in (`mfa` as it was), remembered within the bound.
    pub(crate) fn new_refresh_token(&mut self, mfa: bool) -> String {
        let token = format!("0.mock-rt.{}", random_text(48));
        self.refresh.insert(
            token.clone(),
            RefreshRecord {
                mfa,
                rotated: false,
            },
        );
        self.refresh_order.push_back(token.clone());
        while self.refresh_order.len() > MAX_REFRESH_TOKENS {
            if let Some(oldest) = self.refresh_order.pop_front() {
                self.refresh.remove(&oldest);
            }
        }
        self.latest_refresh = Some(token.clone());
        self.remember_secret(&token);
        token
    }

    /// The refresh token issued last.
    pub(crate) fn latest_refresh_token(&self) -> Option<String> {
        self.latest_refresh.clone()
    }

    /// The most recent secrets issued, oldest first.
    pub(crate) fn recent_secrets(&self) -> Vec<String> {
        self.recent_secrets.iter().cloned().collect()
    }

    fn remember_secret(&mut self, secret: &str) {
        self.recent_secrets.push_back(secret.to_owned());
        while self.recent_secrets.len() > MAX_RECENT_SECRETS {
            self.recent_secrets.pop_front();
        }
    }

    fn new_device_code(&mut self, client_id: &str, offline: bool) -> String {
        let code = format!("DAQABAAEAAAD.{}", random_text(48));
        self.devices.insert(
            code.clone(),
            DeviceRecord {
                client_id: client_id.to_owned(),
                issued: Instant::now(),
                polls: 0,
                slowed_down: false,
                offline,
            },
        );
        self.device_order.push_back(code.clone());
        while self.device_order.len() > MAX_DEVICE_CODES {
            if let Some(oldest) = self.device_order.pop_front() {
                self.devices.remove(&oldest);
            }
        }
        self.remember_secret(&code);
        code
    }

    fn forget_device_code(&mut self, code: &str) {
        self.devices.remove(code);
        self.device_order.retain(|c| c != code);
    }
}

/// The answer of the sign-in service, when `path` is one of its endpoints; `None` sends the
/// request on to the spec's operations.
pub(crate) fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Answer> {
    let (tenant, endpoint) = endpoint(path)?;
    let config = &shared.config;
    let mut identity = shared.identity();
    match endpoint {
        Endpoint::Token(version) => {
            identity.counts.token_requests += 1;
            match version {
                Version::V1 => identity.counts.v1_token_requests += 1,
                Version::V2 => identity.counts.v2_token_requests += 1,
            }
        }
        Endpoint::DeviceCode(_) => identity.counts.device_code_requests += 1,
    }
    if !tenant.eq_ignore_ascii_case(&config.tenant) {
        return Some(aad_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                echo(tenant)
            ),
        ));
    }
    if method != Method::POST {
        let mut answer = aad_error(
            405,
            "invalid_request",
            900561,
            &format!("The endpoint only accepts POST requests. Received a {method} request."),
        );
        answer.headers.push(("allow", "POST".into()));
        return Some(answer);
    }
    let form_sent = header_text(headers, "content-type").is_some_and(|v| {
        v.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let form = Form::parse(if form_sent { body } else { &[] });
    let answer = match endpoint {
        Endpoint::DeviceCode(version) => device_code(config, &mut identity, version, &form),
        Endpoint::Token(version) => token(config, &shared.signer, &mut identity, version, &form),
    };
    Some(answer.unwrap_or_else(|refused| refused))
}

/// Whether an API request may go on with the `Authorization` it sent, which is not the mock's
/// static token: an access token the mock issued, unexpired, with multi-factor sign-in when
/// [`MockConfig::require_mfa`] asks for it.
pub(crate) fn authorize(shared: &Shared, authorization: &[u8]) -> Result<(), Answer> {
    let token = std::str::from_utf8(authorization)
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .and_then(|token| shared.signer.verify(token))
        .ok_or_else(unauthorized)?;
    let mut identity = shared.identity();
    if now_seconds() >= token.exp {
        identity.counts.expired_token_requests += 1;
        let mut answer = Answer::error(401, 401, "The access token has expired.");
        answer.headers.push((
            "www-authenticate",
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\"".into(),
        ));
        return Err(answer);
    }
    if shared.config.require_mfa && !token.mfa {
        identity.counts.mfa_refusals += 1;
        let mut answer = Answer::error(
            401,
            900421,
            "Multi-factor authentication is required for App+User calls: the access token's sign-in had none (amr lacks mfa). Sign in again with multi-factor authentication.",
        );
        answer.headers.push((
            "www-authenticate",
            "Bearer error=\"invalid_token\", error_description=\"Multi-factor authentication is required\"".into(),
        ));
        return Err(answer);
    }
    identity.counts.issued_token_requests += 1;
    Ok(())
}

/// `POST /{tenant}/oauth2[/v2.0]/devicecode`.
fn device_code(
    config: &MockConfig,
    identity: &mut Identity,
    version: Version,
    form: &Form,
) -> Result<Answer, Answer> {
    let client_id = check_client(config, form)?;
    let offline = check_audience(version, form)?;
    let device_code = identity.new_device_code(&client_id, offline);
    let user_code = user_code();
    let uri = "https://microsoft.com/devicelogin";
    let message = format!(
        "To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."
    );
    let lifetime = DEVICE_CODE_LIFETIME.as_secs();
    Ok(Answer::json(
        200,
        match version {
            // v1 names the URL `verification_url` and writes the numbers as strings.
            Version::V1 => json!({
                "user_code": user_code, "device_code": device_code, "verification_url": uri,
                "expires_in": lifetime.to_string(), "interval": DEVICE_CODE_INTERVAL.to_string(),
                "message": message,
            }),
            Version::V2 => json!({
                "user_code": user_code, "device_code": device_code, "verification_uri": uri,
                "expires_in": lifetime, "interval": DEVICE_CODE_INTERVAL, "message": message,
            }),
        },
    ))
}

/// `POST /{tenant}/oauth2[/v2.0]/token`.
fn token(
    config: &MockConfig,
    signer: &Signer,
    identity: &mut Identity,
    version: Version,
    form: &Form,
) -> Result<Answer, Answer> {
    let Some(grant) = form.get("grant_type") else {
        return Err(missing("grant_type"));
    };
    match grant {
        "refresh_token" => {
            let client_id = check_client(config, form)?;
            let offline = check_audience(version, form)?;
            let Some(refresh) = form.get("refresh_token") else {
                return Err(missing("refresh_token"));
            };
            if let Some(expected) = &config.client_secret
                && form.get("client_secret") != Some(expected.as_str())
            {
                return Err(aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
            let revoked = config.revoked_refresh_tokens.iter().any(|t| t == refresh);
            let Some(record) = identity.refresh.get_mut(refresh).filter(|_| !revoked) else {
                identity.counts.refused_refresh_tokens += 1;
                return Err(aad_error(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. The token was issued on 2026-01-01T00:00:00.0000000Z and was inactive for 90.00:00:00.",
                ));
            };
            if record.rotated {
                identity.counts.stale_refresh_redemptions += 1;
            }
            record.rotated = true;
            let mfa = record.mfa;
            identity.counts.refresh_redemptions += 1;
            Ok(tokens(
                config, signer, identity, version, &client_id, mfa, offline,
            ))
        }
        DEVICE_CODE_GRANT => {
            let client_id = check_client(config, form)?;
            // v2 sends `device_code`; v1 sends `code` (the library sends both there).
            let Some(code) = form.get("device_code").or_else(|| form.get("code")) else {
                return Err(missing("device_code"));
            };
            let Some(device) = identity.devices.get_mut(code) else {
                return Err(aad_error(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided value for the 'device_code' parameter is not valid.",
                ));
            };
            if device.client_id != client_id {
                return Err(aad_error(
                    400,
                    "invalid_grant",
                    70000,
                    "The device code was issued to another application.",
                ));
            }
            if device.issued.elapsed() >= DEVICE_CODE_LIFETIME {
                let code = code.to_owned();
                identity.forget_device_code(&code);
                return Err(aad_error(
                    400,
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
                ));
            }
            if device.polls < config.pending_polls {
                device.polls += 1;
                identity.counts.pending_answers += 1;
                return Err(aad_error(
                    400,
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ));
            }
            if config.slow_down && !device.slowed_down {
                device.slowed_down = true;
                identity.counts.pending_answers += 1;
                return Err(aad_error(
                    400,
                    "slow_down",
                    70016,
                    "OAuth 2.0 device flow error. Polling too fast: slow down.",
                ));
            }
            let offline = device.offline;
            let code = code.to_owned();
            identity.forget_device_code(&code);
            identity.counts.device_sign_ins += 1;
            Ok(tokens(
                config,
                signer,
                identity,
                version,
                &client_id,
                config.mfa_sign_in,
                offline,
            ))
        }
        _ => Err(aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        )),
    }
}

/// A token answer: a new access token and, when `offline`, a new refresh token (the rotation).
fn tokens(
    config: &MockConfig,
    signer: &Signer,
    identity: &mut Identity,
    version: Version,
    client_id: &str,
    mfa: bool,
    offline: bool,
) -> Answer {
    let now = now_seconds();
    let lifetime = config.access_token_lifetime.as_secs();
    let exp = now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
    let access = access_token(signer, &config.tenant, client_id, now, exp, mfa);
    identity.remember_secret(&access);
    let mut body = match version {
        Version::V1 => json!({
            "token_type": "Bearer", "scope": "user_impersonation",
            "expires_in": lifetime.to_string(), "ext_expires_in": lifetime.to_string(),
            "expires_on": exp.to_string(), "not_before": now.to_string(),
            "resource": PARTNER_CENTER_RESOURCE, "access_token": access,
        }),
        Version::V2 => json!({
            "token_type": "Bearer",
            "scope": format!("{PARTNER_CENTER_RESOURCE}/user_impersonation"),
            "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access,
        }),
    };
    if offline {
        body["refresh_token"] = json!(identity.new_refresh_token(mfa));
    }
    let mut answer = Answer::json(200, body);
    answer.headers.push(("cache-control", "no-store".into()));
    answer.headers.push(("pragma", "no-cache".into()));
    answer
}

/// An access token for Partner Center, as Entra ID issues it for an App+User sign-in.
fn access_token(
    signer: &Signer,
    tenant: &str,
    client_id: &str,
    now: i64,
    exp: i64,
    mfa: bool,
) -> String {
    let upn = if tenant.contains('.') {
        format!("admin@{tenant}")
    } else {
        format!("admin@{tenant}.onmicrosoft.com")
    };
    let amr: &[&str] = if mfa { &["pwd", "mfa"] } else { &["pwd"] };
    let header = base64url(
        json!({ "typ": "JWT", "alg": "RS256", "kid": "mock-partner-center" })
            .to_string()
            .as_bytes(),
    );
    let claims = base64url(
        json!({
            "aud": PARTNER_CENTER_RESOURCE,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now, "nbf": now, "exp": exp,
            "tid": tenant, "upn": upn, "unique_name": upn, "name": "Mock Partner Admin",
            "oid": Uuid::new_v4(), "appid": client_id, "idtyp": "user",
            "scp": "user_impersonation", "amr": amr, "ver": "1.0",
            "uti": random_text(16),
        })
        .to_string()
        .as_bytes(),
    );
    let signature = signer.sign(&format!("{header}.{claims}"));
    format!("{header}.{claims}.{signature}")
}

/// The client id, when the app may sign in: any non-empty one, or the configured one.
fn check_client(config: &MockConfig, form: &Form) -> Result<String, Answer> {
    let Some(client_id) = form.get("client_id") else {
        return Err(missing("client_id"));
    };
    if let Some(expected) = &config.client_id
        && client_id != expected
    {
        return Err(aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{}'.",
                echo(client_id),
                echo(&config.tenant)
            ),
        ));
    }
    Ok(client_id.to_owned())
}

/// Checks that the request is for Partner Center (`resource` on v1, `scope` on v2) and says
/// whether a refresh token is wanted (v1 always; v2 with `offline_access`).
fn check_audience(version: Version, form: &Form) -> Result<bool, Answer> {
    match version {
        Version::V1 => {
            let Some(resource) = form.get("resource") else {
                return Err(missing("resource"));
            };
            if resource.trim_end_matches('/') != PARTNER_CENTER_RESOURCE {
                return Err(aad_error(
                    400,
                    "invalid_resource",
                    500011,
                    &format!(
                        "The resource principal named {} was not found in the tenant.",
                        echo(resource)
                    ),
                ));
            }
            Ok(true)
        }
        Version::V2 => {
            let Some(scope) = form.get("scope") else {
                return Err(missing("scope"));
            };
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            let for_partner_center = scopes.iter().any(|s| {
                s.strip_prefix(PARTNER_CENTER_RESOURCE)
                    .is_some_and(|rest| matches!(rest, "/.default" | "/user_impersonation"))
            });
            if !for_partner_center {
                return Err(aad_error(
                    400,
                    "invalid_scope",
                    70011,
                    "The provided value for the input parameter 'scope' is not valid: it names no Partner Center scope.",
                ));
            }
            Ok(scopes.contains(&"offline_access"))
        }
    }
}

fn missing(parameter: &str) -> Answer {
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// An error answer as Entra ID writes it: `error`, a multi-line `error_description` that starts
/// with the code, `error_codes`, and ids.
fn aad_error(status: u16, error: &str, code: i64, text: &str) -> Answer {
    let (trace, correlation) = (Uuid::new_v4(), Uuid::new_v4());
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let mut answer = Answer::json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp.to_string(),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    );
    answer.headers.push(("cache-control", "no-store".into()));
    answer
}

/// Request text as an error message quotes it: at most [`MAX_ECHO`] characters.
fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHO).collect()
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `bytes` random bytes (at most 64), as base64url.
fn random_text(bytes: usize) -> String {
    let random: Vec<u8> = (0..4).flat_map(|_| *Uuid::new_v4().as_bytes()).collect();
    base64url(&random[..bytes.min(random.len())])
}

/// A user code as Entra ID shows it: nine letters and digits that are hard to confuse.
fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ23456789";
    Uuid::new_v4().as_bytes()[..9]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648, section 5), as JSON Web Tokens use it.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// Decodes base64url, with or without padding; `None` for any other character.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE64URL.iter().position(|&a| a == c)?;
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// An `application/x-www-form-urlencoded` body: the first value of each name counts, and an
/// empty value counts as missing.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Form(
            body.split(|&b| b == b'&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let mut halves = pair.splitn(2, |&b| b == b'=');
                    let name = percent_decode(halves.next().unwrap_or_default());
                    let value = percent_decode(halves.next().unwrap_or_default());
                    (name, value)
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// `+` is a space and `%XX` a byte; a `%` without two hex digits stays as it is.
fn percent_decode(text: &[u8]) -> String {
    let hex = |at: usize| text.get(at).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match (text[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            (byte, _, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_rfc_4648_without_padding_and_round_trips() {
        let table: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"\xfb\xff", "-_8"),
            (b"{\"typ\":\"JWT\"}", "eyJ0eXAiOiJKV1QifQ"),
        ];
        for (bytes, text) in table {
            assert_eq!(base64url(bytes), *text);
            assert_eq!(base64url_decode(text).as_deref(), Some(*bytes));
        }
        assert_eq!(base64url_decode("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64url_decode("Z+g"), None, "'+' is not base64url");
    }

    #[test]
    fn forms_decode_escapes_and_plus_and_take_the_first_value() {
        let form = Form::parse(
            b"grant_type=refresh_token&scope=a%2Fb+offline_access&empty=&bad=%zz%4&x=1&x=2",
        );
        assert_eq!(form.get("grant_type"), Some("refresh_token"));
        assert_eq!(form.get("scope"), Some("a/b offline_access"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.get("bad"), Some("%zz%4"));
        assert_eq!(form.get("x"), Some("1"));
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn paths_name_the_tenant_and_the_endpoint() {
        let table: &[(&str, Option<(&str, Endpoint)>)] = &[
            (
                "/mock-tenant/oauth2/token",
                Some(("mock-tenant", Endpoint::Token(Version::V1))),
            ),
            (
                "/t/OAuth2/V2.0/Token/",
                Some(("t", Endpoint::Token(Version::V2))),
            ),
            (
                "/t/oauth2/devicecode",
                Some(("t", Endpoint::DeviceCode(Version::V1))),
            ),
            (
                "/t/oauth2/v2.0/devicecode",
                Some(("t", Endpoint::DeviceCode(Version::V2))),
            ),
            ("/t/oauth2/v2.0/authorize", None),
            ("/t/oauth2/v3.0/token", None),
            ("//oauth2/token", None),
            ("/v1/productUpgrades", None),
            ("/", None),
        ];
        for (path, expected) in table {
            assert_eq!(endpoint(path), *expected, "{path}");
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampered_or_foreign_ones_do_not() {
        let signer = Signer::new();
        let token = access_token(&signer, "mock-tenant", "app", 1000, 2000, true);
        assert_eq!(
            signer.verify(&token),
            Some(Issued {
                exp: 2000,
                mfa: true
            })
        );
        let no_mfa = access_token(&signer, "mock-tenant", "app", 1000, 2000, false);
        assert_eq!(signer.verify(&no_mfa).map(|i| i.mfa), Some(false));
        // Claims changed (a later exp) under the same signature.
        let parts: Vec<&str> = token.split('.').collect();
        let later = base64url(
            String::from_utf8(base64url_decode(parts[1]).unwrap())
                .unwrap()
                .replace("2000", "9999")
                .as_bytes(),
        );
        assert_eq!(
            signer.verify(&format!("{}.{later}.{}", parts[0], parts[2])),
            None
        );
        assert_eq!(Signer::new().verify(&token), None, "another mock's key");
        assert_eq!(signer.verify("mock-partner-center-token"), None);
        assert_eq!(signer.verify(&format!("{token}.extra")), None);
    }

    #[test]
    fn access_tokens_carry_the_claims_partner_center_checks() {
        let token = access_token(&Signer::new(), "mock-tenant", "app-id", 1000, 4600, true);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        let claims: Value =
            serde_json::from_slice(&base64url_decode(token.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims["aud"], PARTNER_CENTER_RESOURCE);
        assert_eq!(claims["tid"], "mock-tenant");
        assert_eq!(claims["upn"], "admin@mock-tenant.onmicrosoft.com");
        assert_eq!(claims["scp"], "user_impersonation");
        assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
        assert_eq!(claims["appid"], "app-id");
        assert_eq!(claims["exp"], 4600);
    }

    #[test]
    fn what_the_sign_in_service_remembers_is_bounded() {
        let mut identity = Identity::default();
        let first = identity.new_refresh_token(true);
        for _ in 0..MAX_REFRESH_TOKENS + 5 {
            identity.new_refresh_token(true);
        }
        for _ in 0..MAX_DEVICE_CODES + 5 {
            identity.new_device_code("app", true);
        }
        assert_eq!(identity.refresh.len(), MAX_REFRESH_TOKENS);
        assert_eq!(identity.refresh_order.len(), MAX_REFRESH_TOKENS);
        assert!(!identity.refresh.contains_key(&first), "the oldest goes");
        assert_eq!(identity.devices.len(), MAX_DEVICE_CODES);
        assert_eq!(identity.device_order.len(), MAX_DEVICE_CODES);
        assert_eq!(identity.recent_secrets.len(), MAX_RECENT_SECRETS);
        let latest = identity.latest_refresh_token().unwrap();
        assert!(identity.refresh.contains_key(&latest));
    }

    #[test]
    fn user_codes_are_nine_unambiguous_characters() {
        for _ in 0..100 {
            let code = user_code();
            assert_eq!(code.len(), 9);
            assert!(
                code.bytes()
                    .all(|b| b"BCDFGHJKLMNPQRSTVWXZ23456789".contains(&b))
            );
        }
    }

    /// The mock on loopback, and raw HTTP/1.1 to it (one request per connection).
    mod over_http {
        use super::*;
        use crate::{MockConfig, RunningMock};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        pub(super) async fn mock(config: MockConfig) -> RunningMock {
            crate::start(config, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap()
        }

        /// Status, lower-cased head, and the body as JSON (`null` when it is none).
        pub(super) async fn send(
            mock: &RunningMock,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &str,
        ) -> (u16, String, Value) {
            let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            request.push_str(body);
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            let answer = String::from_utf8(answer).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            let status = head[9..12].parse().unwrap();
            let body = serde_json::from_str(body).unwrap_or(Value::Null);
            (status, head.to_ascii_lowercase(), body)
        }

        pub(super) async fn form(
            mock: &RunningMock,
            path: &str,
            fields: &[(&str, &str)],
        ) -> (u16, String, Value) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace('/', "%2F").replace(' ', "+")))
                .collect();
            send(
                mock,
                "POST",
                path,
                &[("content-type", "application/x-www-form-urlencoded")],
                &body.join("&"),
            )
            .await
        }

        pub(super) async fn eligibility(mock: &RunningMock, token: &str) -> (u16, String, Value) {
            let body = json!({ "customerId": Uuid::new_v4(), "productFamily": "Azure" });
            send(
                mock,
                "POST",
                "/v1/productUpgrades/eligibility",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {token}")),
                ],
                &body.to_string(),
            )
            .await
        }

        pub(super) async fn redeem(
            mock: &RunningMock,
            version: Version,
            refresh: &str,
        ) -> (u16, String, Value) {
            let (path, audience) = match version {
                Version::V1 => (
                    "/mock-tenant/oauth2/token",
                    ("resource", PARTNER_CENTER_RESOURCE),
                ),
                Version::V2 => (
                    "/mock-tenant/oauth2/v2.0/token",
                    (
                        "scope",
                        "https://api.partnercenter.microsoft.com/.default offline_access",
                    ),
                ),
            };
            form(
                mock,
                path,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "app"),
                    ("refresh_token", refresh),
                    audience,
                ],
            )
            .await
        }
    }

    use over_http::{eligibility, form, mock, redeem, send};

    #[tokio::test]
    async fn a_refresh_token_is_redeemed_rotated_and_its_access_token_opens_the_api() {
        let mock = mock(MockConfig::default()).await;
        let first = mock.issue_refresh_token(true);

        let (status, head, v1) = redeem(&mock, Version::V1, &first).await;
        assert_eq!(status, 200, "{v1}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert_eq!(v1["expires_in"], "3600", "v1 writes a string");
        assert_eq!(v1["resource"], PARTNER_CENTER_RESOURCE);
        let second = v1["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, first, "each redemption rotates the refresh token");
        assert_eq!(
            mock.latest_refresh_token().as_deref(),
            Some(second.as_str())
        );

        let (status, _, v2) = redeem(&mock, Version::V2, &second).await;
        assert_eq!(status, 200, "{v2}");
        assert_eq!(v2["expires_in"], 3600, "v2 writes a number");
        let access = v2["access_token"].as_str().unwrap();
        let (status, _, answer) = eligibility(&mock, access).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(eligibility(&mock, &format!("{access}x")).await.0, 401);

        // The first token still works, as at Microsoft, but that it was used is counted.
        assert_eq!(redeem(&mock, Version::V2, &first).await.0, 200);
        let counts = mock.sign_in_counts();
        assert_eq!(counts.token_requests, 3);
        assert_eq!((counts.v1_token_requests, counts.v2_token_requests), (1, 2));
        assert_eq!(counts.refresh_redemptions, 3);
        assert_eq!(counts.stale_refresh_redemptions, 1);
        assert_eq!(counts.issued_token_requests, 1);
        let secrets = mock.issued_secrets();
        assert!(secrets.contains(&first) && secrets.contains(&access.to_owned()));
        // The static token is accepted as before.
        assert_eq!(eligibility(&mock, crate::DEFAULT_TOKEN).await.0, 200);
    }

    #[tokio::test]
    async fn revoked_and_unknown_refresh_tokens_answer_invalid_grant_700082() {
        let mock = mock(MockConfig {
            revoked_refresh_tokens: vec!["revoked-one".into()],
            ..MockConfig::default()
        })
        .await;
        for token in ["revoked-one", "never-issued"] {
            let (status, _, body) = redeem(&mock, Version::V2, token).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(body["error_codes"], json!([700082]));
            let description = body["error_description"].as_str().unwrap();
            assert!(
                description
                    .starts_with("AADSTS700082: The refresh token has expired due to inactivity.")
            );
            assert!(!description.contains(token), "the token is never echoed");
        }
        assert_eq!(mock.sign_in_counts().refused_refresh_tokens, 2);
        assert_eq!(mock.sign_in_counts().refresh_redemptions, 0);
    }

    #[tokio::test]
    async fn a_device_code_is_pending_then_slows_down_then_signs_in() {
        let mock = mock(MockConfig {
            pending_polls: 2,
            slow_down: true,
            mfa_sign_in: false,
            ..MockConfig::default()
        })
        .await;
        let scope = (
            "scope",
            "https://api.partnercenter.microsoft.com/.default offline_access",
        );
        let (status, _, code) = form(
            &mock,
            "/mock-tenant/oauth2/v2.0/devicecode",
            &[("client_id", "app"), scope],
        )
        .await;
        assert_eq!(status, 200, "{code}");
        assert_eq!(code["interval"], 1);
        assert_eq!(
            code["verification_uri"],
            "https://microsoft.com/devicelogin"
        );
        let user_code = code["user_code"].as_str().unwrap();
        assert!(code["message"].as_str().unwrap().contains(user_code));
        let device_code = code["device_code"].as_str().unwrap();
        let fields = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", "app"),
            ("device_code", device_code),
        ];
        let poll = || form(&mock, "/mock-tenant/oauth2/v2.0/token", &fields);
        let mut errors = Vec::new();
        for _ in 0..3 {
            let (status, _, body) = poll().await;
            assert_eq!(status, 400);
            errors.push(body["error"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            errors,
            [
                "authorization_pending",
                "authorization_pending",
                "slow_down"
            ]
        );
        let (status, _, tokens) = poll().await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["refresh_token"].is_string());
        let claims: Value = serde_json::from_slice(
            &base64url_decode(
                tokens["access_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["amr"],
            json!(["pwd"]),
            "a sign-in without MFA says so"
        );
        assert_eq!(
            poll().await.2["error"],
            "invalid_grant",
            "a code signs in once"
        );

        // v1: `verification_url`, numbers as strings.
        let (status, _, v1) = form(
            &mock,
            "/mock-tenant/oauth2/devicecode",
            &[("client_id", "app"), ("resource", PARTNER_CENTER_RESOURCE)],
        )
        .await;
        assert_eq!(status, 200, "{v1}");
        assert_eq!(
            (v1["interval"].as_str(), v1["expires_in"].as_str()),
            (Some("1"), Some("900"))
        );
        assert!(v1["verification_url"].is_string());
        let counts = mock.sign_in_counts();
        assert_eq!(
            (
                counts.device_code_requests,
                counts.pending_answers,
                counts.device_sign_ins
            ),
            (2, 3, 1)
        );
        assert_eq!(counts.token_requests, 5);
    }

    #[tokio::test]
    async fn an_expired_access_token_answers_401_saying_so() {
        let mock = mock(MockConfig {
            access_token_lifetime: Duration::ZERO,
            ..MockConfig::default()
        })
        .await;
        let refresh = mock.issue_refresh_token(true);
        let (_, _, tokens) = redeem(&mock, Version::V2, &refresh).await;
        assert_eq!(tokens["expires_in"], 0);
        let (status, head, body) =
            eligibility(&mock, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            head.contains("www-authenticate: bearer error=\"invalid_token\", error_description=\"the access token expired\""),
            "{head}"
        );
        assert_eq!(mock.expired_token_requests(), 1);
        assert_eq!(mock.sign_in_counts().issued_token_requests, 0);
    }

    #[tokio::test]
    async fn require_mfa_refuses_a_sign_in_without_it_with_900421() {
        let mock = mock(MockConfig {
            require_mfa: true,
            ..MockConfig::default()
        })
        .await;
        let without = mock.issue_refresh_token(false);
        let with = mock.issue_refresh_token(true);
        let (_, _, no_mfa) = redeem(&mock, Version::V1, &without).await;
        let (status, head, body) =
            eligibility(&mock, no_mfa["access_token"].as_str().unwrap()).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], 900421);
        assert!(
            !head.contains("expired") && !body.to_string().contains("expired"),
            "a client must not take it for an expired token: {head} {body}"
        );
        let (_, _, mfa) = redeem(&mock, Version::V1, &with).await;
        assert_eq!(
            eligibility(&mock, mfa["access_token"].as_str().unwrap())
                .await
                .0,
            200
        );
        assert_eq!(mock.sign_in_counts().mfa_refusals, 1);
    }

    #[tokio::test]
    async fn the_sign_in_service_refuses_what_entra_id_refuses_and_is_bounded_like_the_api() {
        let mock = mock(MockConfig {
            client_id: Some("the-app".into()),
            client_secret: Some("s3cret".into()),
            max_body_bytes: 1024,
            ..MockConfig::default()
        })
        .await;
        let refresh = mock.issue_refresh_token(true);
        let v1 = "/mock-tenant/oauth2/token";
        let base = [
            ("grant_type", "refresh_token"),
            ("client_id", "the-app"),
            ("refresh_token", refresh.as_str()),
            ("resource", PARTNER_CENTER_RESOURCE),
            ("client_secret", "s3cret"),
        ];
        let without = |name: &str| -> Vec<(&str, &str)> {
            base.iter().copied().filter(|(k, _)| *k != name).collect()
        };
        let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
            let mut fields = without(name);
            fields.push((name, value));
            fields
        };
        /// (path, form, status, error, code)
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str, i64);
        let table: Vec<Case> = vec![
            (
                v1.into(),
                with("client_id", "other-app"),
                400,
                "unauthorized_client",
                700016,
            ),
            (
                v1.into(),
                with("client_secret", "wrong"),
                401,
                "invalid_client",
                7000215,
            ),
            (
                v1.into(),
                with("resource", "https://graph.microsoft.com"),
                400,
                "invalid_resource",
                500011,
            ),
            (
                v1.into(),
                without("grant_type"),
                400,
                "invalid_request",
                900144,
            ),
            (
                v1.into(),
                with("grant_type", "password"),
                400,
                "unsupported_grant_type",
                70003,
            ),
            (
                "/other-tenant/oauth2/token".into(),
                base.to_vec(),
                400,
                "invalid_request",
                90002,
            ),
            (
                "/mock-tenant/oauth2/v2.0/token".into(),
                with("scope", "https://graph.microsoft.com/.default"),
                400,
                "invalid_scope",
                70011,
            ),
        ];
        for (path, fields, status, error, code) in table {
            let (got, _, body) = form(&mock, &path, &fields).await;
            assert_eq!(
                (got, body["error"].as_str(), body["error_codes"][0].as_i64()),
                (status, Some(error), Some(code)),
                "{path} {fields:?}: {body}"
            );
        }
        let (status, head, _) = send(&mock, "GET", v1, &[], "").await;
        assert_eq!(status, 405);
        assert!(head.contains("allow: post"), "{head}");
        let (status, _, body) = send(
            &mock,
            "POST",
            v1,
            &[("content-type", "text/plain")],
            "grant_type=refresh_token",
        )
        .await;
        assert_eq!(
            (status, body["error_codes"][0].as_i64()),
            (400, Some(900144)),
            "only a form is read"
        );
        let large = format!("grant_type=refresh_token&padding={}", "x".repeat(2048));
        let (status, _, _) = send(
            &mock,
            "POST",
            v1,
            &[("content-type", "application/x-www-form-urlencoded")],
            &large,
        )
        .await;
        assert_eq!(
            status, 413,
            "the body limit applies to the sign-in service too"
        );
        assert_eq!(
            form(&mock, v1, &base).await.0,
            200,
            "and the right request works"
        );
        assert_eq!(mock.sign_in_counts().refresh_redemptions, 1);
    }
}
