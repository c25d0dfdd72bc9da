//! Where `pc-upgrade` gets its tokens, and the `login` and `whoami` commands.
//!
//! Every command uses the refresh token in the credentials file when there is one (the
//! secure application model: renewed ahead of expiry, rotated into the file); otherwise
//! `PARTNER_CENTER_REFRESH_TOKEN`, which seeds the file; otherwise a static
//! `PARTNER_CENTER_TOKEN`. The client id, tenant and secret come from the environment or the
//! file, never from a flag (flags land in shell history).

use std::path::PathBuf;
use std::sync::Arc;

use partner_center_upgrades::{
    AppCredentials, Authority, Cloud, DeviceSignIn, FileStore, RefreshTokenProvider,
    RefreshTokenStore, Secret, StaticToken, StoredSettings, TokenEndpoint, TokenProvider,
    printable,
};
use serde_json::{Value, json};

use crate::{CloudName, Global, Output, exit};

/// The environment variables other tooling scripts against.
pub const CLIENT_ID: &str = "PARTNER_CENTER_CLIENT_ID";
/// The app's client secret (confidential apps).
pub const CLIENT_SECRET: &str = "PARTNER_CENTER_CLIENT_SECRET";
/// The partner's tenant id or domain.
pub const TENANT_ID: &str = "PARTNER_CENTER_TENANT_ID";
/// A refresh token to start from when the credentials file has none.
pub const REFRESH_TOKEN: &str = "PARTNER_CENTER_REFRESH_TOKEN";
/// A static access token, when no refresh token is available.
pub const ACCESS_TOKEN: &str = "PARTNER_CENTER_TOKEN";

/// The token endpoint's version, as a flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EndpointName {
    V1,
    V2,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `--credentials`, or `$XDG_CONFIG_HOME/pc-upgrade/credentials.json`, or
/// `~/.config/pc-upgrade/credentials.json`.
pub fn credentials_path(global: &Global) -> Option<PathBuf> {
    if let Some(path) = &global.credentials {
        return Some(path.clone());
    }
    let config = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("pc-upgrade").join("credentials.json"))
}

/// What signing in needs: from flags (authority and endpoint only), the environment, the file.
struct Settings {
    store: Option<FileStore>,
    client_id: Option<String>,
    tenant: Option<String>,
    secret: Option<Secret>,
    authority: Authority,
    endpoint: TokenEndpoint,
}

fn settings(global: &Global) -> Result<Settings, String> {
    let store = credentials_path(global).map(FileStore::new);
    let (stored, file_secret) = match &store {
        Some(store) => store.settings().map_err(|e| e.to_string())?,
        None => (StoredSettings::default(), None),
    };
    let authority = match (&global.authority, &stored.authority) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => {
            Authority::parse(url).map_err(|e| format!("the credentials file's authority: {e}"))?
        }
        (None, None) => Authority::of(match global.cloud {
            CloudName::Global => Cloud::Global,
            CloudName::China => Cloud::China21Vianet,
        }),
    };
    let endpoint = match (global.token_endpoint, stored.token_endpoint.as_deref()) {
        (Some(EndpointName::V1), _) | (None, Some("v1")) => TokenEndpoint::V1,
        _ => TokenEndpoint::V2,
    };
    Ok(Settings {
        store,
        client_id: env(CLIENT_ID).or(stored.client_id),
        tenant: env(TENANT_ID).or(stored.tenant_id),
        secret: env(CLIENT_SECRET).map(Secret::new).or(file_secret),
        authority,
        endpoint,
    })
}

/// The credentials file, with a refresh token from the environment to start from: the seed is
/// used only until a redemption returns a rotated token, which goes to the file. A seed that
/// does not work is never written, so it cannot shadow a corrected one later.
struct Seeded {
    file: FileStore,
    seed: std::sync::Mutex<Option<Secret>>,
}

impl RefreshTokenStore for Seeded {
    fn load(&self) -> Result<Option<Secret>, partner_center_upgrades::AuthError> {
        match self.file.load()? {
            Some(stored) => Ok(Some(stored)),
            None => Ok(self.seed.lock().unwrap_or_else(|e| e.into_inner()).clone()),
        }
    }
    fn save(&self, token: &Secret) -> Result<(), partner_center_upgrades::AuthError> {
        self.file.save(token)?;
        *self.seed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

fn provider(
    settings: Settings,
    store: Arc<dyn RefreshTokenStore>,
) -> Result<RefreshTokenProvider, String> {
    let (Some(client_id), Some(tenant)) = (settings.client_id, settings.tenant) else {
        return Err(format!(
            "a refresh token needs the app and the tenant: set {CLIENT_ID} and {TENANT_ID} (or run `pc-upgrade login`)"
        ));
    };
    let app = AppCredentials {
        client_id,
        client_secret: settings.secret,
    };
    RefreshTokenProvider::new(settings.authority, tenant, app, store)
        .map(|p| p.endpoint(settings.endpoint))
        .map_err(|e| e.to_string())
}

/// The token provider every command uses.
pub fn tokens(global: &Global) -> Result<Box<dyn TokenProvider>, String> {
    let settings = settings(global)?;
    if let Some(store) = settings.store.clone() {
        let stored = store.load().map_err(|e| e.to_string())?;
        if stored.is_some() {
            return Ok(Box::new(provider(settings, Arc::new(store))?));
        }
        if let Some(seed) = env(REFRESH_TOKEN) {
            let seeded = Seeded {
                file: store,
                seed: std::sync::Mutex::new(Some(Secret::new(seed))),
            };
            return Ok(Box::new(provider(settings, Arc::new(seeded))?));
        }
    }
    let token = env(ACCESS_TOKEN).ok_or_else(|| {
        format!(
            "no credentials: run `pc-upgrade login`, or set {REFRESH_TOKEN} (with {CLIENT_ID} and {TENANT_ID}) or {ACCESS_TOKEN} (never a flag, so it stays out of shell history)"
        )
    })?;
    let token = StaticToken::new(token).map_err(|e| format!("{ACCESS_TOKEN}: {e}"))?;
    Ok(Box::new(token))
}

/// `pc-upgrade login`: the device-code sign-in; the refresh token goes to the credentials file.
pub async fn login(global: &Global) -> u8 {
    match login_inner(global).await {
        Ok(path) => {
            eprintln!("signed in; the refresh token is in {}", path.display());
            exit::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {}", printable(&message));
            code
        }
    }
}

async fn login_inner(global: &Global) -> Result<PathBuf, (u8, String)> {
    let usage = |m: String| (exit::USAGE, m);
    let settings = settings(global).map_err(usage)?;
    let store = settings.store.clone().ok_or_else(|| {
        usage("no place for the credentials file: pass --credentials FILE".into())
    })?;
    let (Some(client_id), Some(tenant)) = (settings.client_id.clone(), settings.tenant.clone())
    else {
        return Err(usage(format!("set {CLIENT_ID} and {TENANT_ID} to sign in")));
    };
    let sign_in = DeviceSignIn::new(
        settings.authority.clone(),
        &tenant,
        &client_id,
        settings.endpoint,
    )
    .map_err(|e| usage(e.to_string()))?;
    let failed = |e: partner_center_upgrades::AuthError| {
        let code = if e.is_sign_in_again() {
            exit::SIGN_IN_AGAIN
        } else {
            exit::SERVICE_ERROR
        };
        (code, e.to_string())
    };
    let code = sign_in.start().await.map_err(failed)?;
    eprintln!("{}", code.message);
    store
        .save_settings(&StoredSettings {
            client_id: Some(client_id),
            tenant_id: Some(tenant),
            authority: Some(settings.authority.as_str().to_owned()),
            token_endpoint: Some(
                match settings.endpoint {
                    TokenEndpoint::V1 => "v1",
                    _ => "v2",
                }
                .into(),
            ),
        })
        .map_err(|e| usage(e.to_string()))?;
    sign_in.finish(&code, &store).await.map_err(failed)?;
    Ok(store.path().to_owned())
}

/// The claims `whoami` shows, read from the access token (a JSON Web Token) without printing it.
pub fn claims(token: &str) -> Result<Value, String> {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the access token is not a JSON Web Token")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token's claims are not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the access token's claims are not JSON".into())
}

/// What is wrong with a token for Partner Center, plainly: app-only, another audience,
/// expired, or no multi-factor sign-in.
pub fn problems(claims: &Value, now: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let audiences = [
        "https://api.partnercenter.microsoft.com",
        "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd",
    ];
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !audiences.iter().any(|a| aud.trim_end_matches('/') == *a) {
        problems.push(format!(
            "the token is for {:?}, not Partner Center (https://api.partnercenter.microsoft.com)",
            printable(aud)
        ));
    }
    let app_only = claims["idtyp"].as_str() == Some("app")
        || (claims.get("scp").is_none() && claims.get("roles").is_some());
    if app_only {
        problems.push(
            "the token is app-only; Partner Center refuses it (403, 900329): sign in as a user"
                .into(),
        );
    }
    if claims["exp"].as_i64().is_some_and(|exp| exp <= now) {
        problems.push("the token has expired".into());
    }
    let mfa = claims["amr"]
        .as_array()
        .is_some_and(|amr| amr.iter().any(|m| m.as_str() == Some("mfa")));
    if !app_only && !mfa {
        problems.push(
            "the sign-in had no multi-factor authentication (amr lacks mfa); Partner Center refuses such App+User calls (401, 900421)".into(),
        );
    }
    problems
}

/// `pc-upgrade whoami`.
/// A token from `tokens`; when there is none, says why on stderr and gives the exit code.
pub async fn current_token(
    tokens: &dyn TokenProvider,
) -> Result<partner_center_upgrades::AccessToken, u8> {
    tokens.token().await.map_err(|e| {
        eprintln!("error: {}", printable(&e.to_string()));
        if e.is_sign_in_again() {
            exit::SIGN_IN_AGAIN
        } else {
            exit::SERVICE_ERROR
        }
    })
}

/// The signed-in user a token's claims name, if any.
pub fn user(claims: &Value) -> Option<&str> {
    ["upn", "preferred_username", "unique_name", "email"]
        .iter()
        .find_map(|k| claims[*k].as_str())
}

pub async fn whoami(global: &Global, output: Output) -> u8 {
    let tokens = match tokens(global) {
        Ok(tokens) => tokens,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };
    let token = match current_token(tokens.as_ref()).await {
        Ok(token) => token,
        Err(code) => return code,
    };
    let claims = match claims(token.expose()) {
        Ok(claims) => claims,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::SIGN_IN_AGAIN;
        }
    };
    let now = chrono::Utc::now().timestamp();
    let problems = problems(&claims, now);
    let user = user(&claims);
    let summary = json!({
        "audience": claims["aud"], "tenant": claims["tid"], "user": user,
        "scopes": claims["scp"], "roles": claims["roles"], "amr": claims["amr"],
        "expires": claims["exp"].as_i64().and_then(|e| chrono::DateTime::from_timestamp(e, 0)).map(|d| d.to_rfc3339()),
        "problems": problems,
    });
    match output {
        Output::Json => println!("{summary}"),
        Output::Text => {
            for key in [
                "audience", "tenant", "user", "scopes", "roles", "amr", "expires",
            ] {
                let value = &summary[key];
                if !value.is_null() {
                    let text = value
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| value.to_string());
                    println!("{key}: {}", printable(&text));
                }
            }
            for problem in &problems {
                println!("problem: {problem}");
            }
        }
    }
    if problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::SIGN_IN_AGAIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_names_each_problem_a_token_can_have() {
        let good = json!({ "aud": "https://api.partnercenter.microsoft.com", "scp": "user_impersonation", "amr": ["pwd", "mfa"], "exp": 2000 });
        let table: &[(Value, &str)] = &[
            (
                json!({ "aud": "https://graph.microsoft.com", "scp": "x", "amr": ["mfa"], "exp": 2000 }),
                "not Partner Center",
            ),
            (
                json!({ "aud": "https://api.partnercenter.microsoft.com", "roles": ["x"], "idtyp": "app", "exp": 2000 }),
                "app-only",
            ),
            (
                json!({ "aud": "https://api.partnercenter.microsoft.com", "scp": "x", "amr": ["mfa"], "exp": 10 }),
                "expired",
            ),
            (
                json!({ "aud": "https://api.partnercenter.microsoft.com", "scp": "x", "amr": ["pwd"], "exp": 2000 }),
                "multi-factor",
            ),
        ];
        assert!(
            problems(&good, 1000).is_empty(),
            "{:?}",
            problems(&good, 1000)
        );
        for (claims, expected) in table {
            let found = problems(claims, 1000);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{claims}: {found:?}"
            );
        }
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"tid":"t"}"#);
        assert_eq!(
            claims(&format!("eyJhbGciOiJub25lIn0.{payload}.")).unwrap()["tid"],
            "t"
        );
        assert!(claims("opaque").is_err());
    }
}
