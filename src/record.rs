//! Recording real exchanges, so that real traffic can check the spec
//! (`cargo xtask contract --recordings DIR`).
//!
//! One JSON file per exchange (the format `partner_center_contract::recordings` reads):
//! method, API path, request and response headers as `[name, value]` pairs, raw bodies, status.
//! Nothing secret reaches the disk: `Authorization` and other credential headers are dropped,
//! and every occurrence of the call's access token, and anything shaped like a JSON Web Token,
//! is replaced by `<redacted>` in every header value and body before the file is written.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::HeaderMap;
use serde::Serialize;

/// What stands in for anything secret.
const REDACTED: &str = "<redacted>";

/// Writes one file per exchange into a directory.
#[derive(Debug)]
pub(crate) struct Recorder {
    dir: PathBuf,
    /// When this run started, so that two runs into one directory sort apart.
    run: String,
    next: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Serialize)]
struct Recording<'a> {
    method: &'a str,
    path: &'a str,
    request: Half,
    response: ResponseHalf,
}

#[derive(Serialize)]
struct Half {
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Serialize)]
struct ResponseHalf {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// The request half of an exchange, taken before the request is sent.
pub(crate) struct SentRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorder {
    /// A recorder writing into `dir`, which is created if it does not exist.
    pub(crate) fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            run: chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            next: AtomicU64::new(1),
            first_error: Mutex::new(None),
        })
    }

    /// The first write that failed, if any (recording never fails a call).
    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes one exchange; `secret` is the `Authorization` value the call carried.
    pub(crate) fn write(
        &self,
        operation_id: &str,
        request: SentRequest,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
    ) {
        let recording = Recording {
            method: &request.method,
            path: &request.path,
            request: Half {
                headers: redact_pairs(request.headers, secret),
                body: redact(&request.body, secret),
            },
            response: ResponseHalf {
                status,
                headers: redact_pairs(header_pairs(headers), secret),
                body: redact(&String::from_utf8_lossy(body), secret),
            },
        };
        if let Err(e) = self.write_file(operation_id, status, &recording) {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| format!("{}: {e}", self.dir.display()));
        }
    }

    fn write_file(
        &self,
        operation_id: &str,
        status: u16,
        recording: &Recording<'_>,
    ) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(recording).map_err(std::io::Error::other)?;
        // A fresh name every time: never overwrite an earlier run's recordings.
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("{}-{n:04}-{operation_id}-{status}.json", self.run));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => return file.write_all(&text),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl SentRequest {
    /// Takes what will be recorded of `request` (no credential header is kept).
    pub(crate) fn of(request: &reqwest::Request) -> Self {
        let path = request.url().path();
        // The API path, without a base URL's own prefix.
        let path = path.find("/v1/").map_or(path, |at| &path[at..]);
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        Self {
            method: request.method().as_str().to_owned(),
            path: path.to_owned(),
            headers: header_pairs(request.headers()),
            body,
        }
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Drops credential headers and redacts the rest.
fn redact_pairs(pairs: Vec<(String, String)>, secret: &str) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter(|(name, _)| !is_credential_header(name))
        .map(|(name, value)| {
            let value = if is_token_like_name(&name) {
                REDACTED.to_owned()
            } else {
                redact(&value, secret)
            };
            (name, value)
        })
        .collect()
}

fn is_credential_header(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    )
}

fn is_token_like_name(name: &str) -> bool {
    ["token", "secret", "key", "auth", "password", "signature"]
        .iter()
        .any(|word| name.contains(word))
        && name != "www-authenticate"
}

/// Replaces the secret (the whole `Authorization` value, and the token inside it) and anything
/// shaped like a JSON Web Token.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    let mut text = text.to_owned();
    let token = secret.strip_prefix("Bearer ").unwrap_or(secret);
    for needle in [secret, token] {
        if needle.len() >= 8 {
            text = text.replace(needle, REDACTED);
        }
    }
    redact_jwts(&text)
}

/// JSON Web Tokens start `eyJ` (base64url of `{"`) and have dot-separated base64url parts.
fn redact_jwts(text: &str) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate
            .char_indices()
            .find(|&(_, c)| !(is_b64(c) || c == '.'))
            .map_or(candidate.len(), |(i, _)| i);
        let run = &candidate[..end];
        if run.matches('.').count() >= 1 && run.len() >= 16 {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        rest = &candidate[end..];
        if end == 0 {
            // Not reachable ("eyJ" is base64url), but never loop forever.
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_token_shaped_text_are_redacted() {
        let secret = "Bearer opaque-secret-token-value";
        let table: &[(&str, &str)] = &[
            ("no secret here", "no secret here"),
            ("x Bearer opaque-secret-token-value y", "x <redacted> y"),
            ("token=opaque-secret-token-value", "token=<redacted>"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end",
                "jwt <redacted> end",
            ),
            ("eyJ short", "eyJ short"),
            ("{\"eyJ\": 1}", "{\"eyJ\": 1}"),
        ];
        for (input, expected) in table {
            assert_eq!(redact(input, secret), *expected, "{input:?}");
        }
    }

    #[test]
    fn credential_headers_are_dropped_and_token_like_ones_blanked() {
        let pairs = vec![
            ("authorization".to_owned(), "Bearer abcdefghijkl".to_owned()),
            ("x-api-key".to_owned(), "k".to_owned()),
            ("ms-requestid".to_owned(), "1".to_owned()),
            ("www-authenticate".to_owned(), "OAuth realm=x".to_owned()),
        ];
        let kept = redact_pairs(pairs, "Bearer abcdefghijkl");
        assert_eq!(
            kept,
            vec![
                ("x-api-key".to_owned(), REDACTED.to_owned()),
                ("ms-requestid".to_owned(), "1".to_owned()),
                ("www-authenticate".to_owned(), "OAuth realm=x".to_owned()),
            ]
        );
    }
}
