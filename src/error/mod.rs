//! The one error type every call returns.
//!
//! An [`Error`] says which operation failed, what kind of failure it was, whether the request
//! reached the server ([`Sent`]), the HTTP status, the parsed Partner Center error or throttling
//! body, `Retry-After`, and the request and correlation ids to quote to Microsoft support. Its
//! `Display` and `Debug` never contain the access token or a raw response body.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::generated::types;
use crate::ids::{CorrelationId, RequestId};

mod decode;

/// Which operation a response or error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /v1/productUpgrades/eligibility`
    CheckEligibility,
    /// `POST /v1/productUpgrades`
    CreateUpgrade,
    /// `POST /v1/productUpgrades/{upgradeId}/status`
    GetUpgradeStatus,
}

impl Operation {
    /// The spec's `operationId`.
    pub const fn operation_id(self) -> &'static str {
        match self {
            Operation::CheckEligibility => "checkEligibility",
            Operation::CreateUpgrade => "createUpgrade",
            Operation::GetUpgradeStatus => "getUpgradeStatus",
        }
    }

    /// The one success status the spec declares.
    pub(crate) const fn success_status(self) -> u16 {
        match self {
            Operation::CreateUpgrade => 202,
            Operation::CheckEligibility | Operation::GetUpgradeStatus => 200,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::CheckEligibility => "check eligibility",
            Operation::CreateUpgrade => "create upgrade",
            Operation::GetUpgradeStatus => "get upgrade status",
        })
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument could not be sent (nothing was sent).
    InvalidInput,
    /// The token provider gave no token (nothing was sent).
    Auth,
    /// The refresh token can no longer be used (expired, revoked, or multi-factor sign-in
    /// required): sign in again (`pc-upgrade login`). Never retried; nothing was sent.
    SignInAgain,
    /// No connection could be made (nothing was sent): refused, unreachable, or a name that
    /// does not resolve; the message says which.
    Connect,
    /// The TLS handshake failed, for example an untrusted or expired certificate (nothing was
    /// sent). Never retried: the same server presents the same certificate.
    Tls,
    /// The request or the answer took longer than the timeout (the server may have acted).
    Timeout,
    /// The connection failed while the request or answer was under way.
    Transport,
    /// The server answered with an error status; see [`Error::status`],
    /// [`Error::service_error`] and [`Error::throttling`].
    Status,
    /// The server answered with a success status but the answer cannot be understood (a body
    /// that does not match the spec, a missing `Location`, an undocumented success status).
    InvalidResponse,
    /// The answer was longer than [`crate::MAX_ANSWER_BYTES`]; it was cut off and not used.
    AnswerTooLarge,
    /// An upgrade did not finish before the wait's deadline; it goes on at Partner Center.
    Deadline,
}

/// Whether the request reached the server: what decides if retrying could repeat its effect.
///
/// Ordered from `No` to `Yes`: an error after several attempts reports the most any attempt
/// may have reached, since an earlier attempt may have acted even if the last never connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Sent {
    /// Nothing left this process, or no connection was made.
    No,
    /// The request may have reached the server (for example a timeout while waiting).
    Maybe,
    /// The server answered.
    Yes,
}

/// A Partner Center error code: real answers send a number, the reference page says string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum ServiceErrorCode {
    /// A numeric code such as `900109`.
    Number(i64),
    /// A textual code.
    Text(String),
}

impl fmt::Display for ServiceErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceErrorCode::Number(n) => write!(f, "{n}"),
            ServiceErrorCode::Text(t) => f.write_str(t),
        }
    }
}

impl From<types::ServiceErrorCode> for ServiceErrorCode {
    fn from(code: types::ServiceErrorCode) -> Self {
        match code {
            types::ServiceErrorCode::Int64(n) => ServiceErrorCode::Number(n),
            types::ServiceErrorCode::String(s) => ServiceErrorCode::Text(s),
        }
    }
}

/// The body of a Partner Center error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServiceError {
    /// Partner Center's error code, for example `900109` (an upgrade is already in progress).
    pub code: ServiceErrorCode,
    /// What went wrong.
    pub description: String,
    /// Values the description refers to.
    pub data: Vec<serde_json::Value>,
    /// The Partner Center component that answered.
    pub source: Option<String>,
}

impl ServiceError {
    /// True when the code is `code`, whether the server sent it as a number or a string.
    pub fn has_code(&self, code: i64) -> bool {
        match &self.code {
            ServiceErrorCode::Number(n) => *n == code,
            ServiceErrorCode::Text(t) => t.trim().parse::<i64>() == Ok(code),
        }
    }
}

impl From<types::ServiceError> for ServiceError {
    fn from(e: types::ServiceError) -> Self {
        Self {
            code: e.code.into(),
            description: e.description,
            data: e.data.unwrap_or_default(),
            source: e.source,
        }
    }
}

/// The body of a `429 Too Many Requests` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Throttling {
    /// The status code the body repeats (429).
    pub status_code: i32,
    /// What to do, for example "Rate limit is exceeded. Try again in 30 seconds."
    pub message: String,
}

impl From<types::ThrottlingError> for Throttling {
    fn from(t: types::ThrottlingError) -> Self {
        Self {
            status_code: t.status_code,
            message: t.message,
        }
    }
}

/// Request and correlation ids, reachable from every response and error.
pub trait RequestIds {
    /// The `MS-RequestId` the call was made under (the server's echo when it sent one).
    fn request_id(&self) -> Option<RequestId>;
    /// The `MS-CorrelationId` the call was made under.
    fn correlation_id(&self) -> Option<CorrelationId>;
}

/// A failed call to the product-upgrade API.
///
/// Its `Display` is one line about this failure; the underlying cause, when there is one, is
/// its [`std::error::Error::source`] (a report prints the chain, so the cause is not repeated).
pub struct Error {
    operation: Operation,
    kind: ErrorKind,
    sent: Sent,
    status: Option<u16>,
    service_error: Option<ServiceError>,
    throttling: Option<Throttling>,
    retry_after: Option<Duration>,
    request_id: Option<RequestId>,
    correlation_id: Option<CorrelationId>,
    ms_cv: Option<String>,
    www_authenticate: Option<String>,
    body: Option<Bytes>,
    detail: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    attempts: u32,
}

impl Error {
    pub(crate) fn new(operation: Operation, kind: ErrorKind, sent: Sent) -> Self {
        Self {
            operation,
            kind,
            sent,
            status: None,
            service_error: None,
            throttling: None,
            retry_after: None,
            request_id: None,
            correlation_id: None,
            ms_cv: None,
            www_authenticate: None,
            body: None,
            detail: None,
            source: None,
            attempts: 1,
        }
    }

    /// A success answer that cannot be used: it names something other than what was asked, or
    /// lacks what the operation needs.
    pub(crate) fn mismatch<T>(
        operation: Operation,
        response: &crate::Response<T>,
        detail: impl Into<String>,
    ) -> Self {
        let mut error = Error::new(operation, ErrorKind::InvalidResponse, Sent::Yes);
        error.status = Some(response.status());
        error.request_id = RequestIds::request_id(response);
        error.correlation_id = RequestIds::correlation_id(response);
        error.ms_cv = response.ms_cv().map(str::to_owned);
        error.with_detail(detail)
    }

    /// The error after `attempts` attempts, the most of which reached `reached`: an earlier
    /// attempt may have acted even when the last one never connected.
    pub(crate) fn after_attempts(mut self, attempts: u32, reached: Sent) -> Self {
        self.attempts = attempts;
        self.sent = self.sent.max(reached);
        self
    }

    /// The answer was cut off at [`crate::MAX_ANSWER_BYTES`]: whatever failed after, the error
    /// is that it was too large.
    pub(crate) fn answer_too_large(mut self) -> Self {
        self.kind = ErrorKind::AnswerTooLarge;
        self.sent = Sent::Yes;
        self.detail = None;
        self.body = None;
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request reached the server, on any attempt: after retries, the most any
    /// attempt may have reached, not only the last one's.
    pub fn sent(&self) -> Sent {
        self.sent
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The Partner Center error body, when the answer carried one.
    pub fn service_error(&self) -> Option<&ServiceError> {
        self.service_error.as_ref()
    }

    /// The throttling body of a 429 answer, when it carried one.
    pub fn throttling(&self) -> Option<&Throttling> {
        self.throttling.as_ref()
    }

    /// How long the server asked to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// `MS-CV`, Partner Center's internal correlation vector, when the answer carried one.
    pub fn ms_cv(&self) -> Option<&str> {
        self.ms_cv.as_deref()
    }

    /// The raw answer body (at most 64 KiB) when it was not a recognised error body: an HTML
    /// page from a gateway, say. Not shown by `Display` or `Debug`.
    pub fn raw_body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// How many attempts were made (1 when the call was not retried). The error is the last
    /// attempt's.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A `401` whose `WWW-Authenticate` or body says the token expired.
    pub(crate) fn says_token_expired(&self) -> bool {
        if self.status != Some(401) {
            return false;
        }
        let expired = |text: &str| text.to_ascii_lowercase().contains("expired");
        self.www_authenticate.as_deref().is_some_and(expired)
            || self
                .service_error
                .as_ref()
                .is_some_and(|e| expired(&e.description))
    }

    /// True when the server answered with Partner Center error code `code`.
    pub fn has_service_code(&self, code: i64) -> bool {
        self.service_error
            .as_ref()
            .is_some_and(|e| e.has_code(code))
    }
}

impl RequestIds for Error {
    fn request_id(&self) -> Option<RequestId> {
        self.request_id
    }
    fn correlation_id(&self) -> Option<CorrelationId> {
        self.correlation_id
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: ", self.operation)?;
        let reason = http_reason(self.status);
        match (self.kind, self.status) {
            (ErrorKind::Status, Some(429)) => {
                write!(f, "throttled (HTTP 429)")?;
                if let Some(wait) = self.retry_after {
                    write!(f, ", retry after {} s", wait.as_secs())?;
                }
            }
            (ErrorKind::Status, Some(status)) => write!(f, "HTTP {status}{reason}")?,
            (ErrorKind::InvalidResponse, Some(status)) => {
                write!(f, "the answer (HTTP {status}{reason}) cannot be understood")?
            }
            (ErrorKind::InvalidInput, _) => f.write_str("invalid input")?,
            (ErrorKind::Auth, _) => f.write_str("no access token")?,
            (ErrorKind::SignInAgain, _) => f.write_str("sign in again")?,
            (ErrorKind::Connect, _) => f.write_str("could not connect")?,
            (ErrorKind::Tls, _) => f.write_str("the TLS handshake failed")?,
            (ErrorKind::Timeout, _) => f.write_str("timed out")?,
            (ErrorKind::Transport, _) => f.write_str("the connection failed")?,
            (ErrorKind::Deadline, _) => f.write_str("the wait ran out")?,
            (ErrorKind::AnswerTooLarge, _) => write!(
                f,
                "the answer{} was longer than {} bytes and was not read",
                self.status
                    .map(|s| format!(" (HTTP {s})"))
                    .unwrap_or_default(),
                crate::transport::MAX_ANSWER_BYTES
            )?,
            (_, _) => f.write_str("the answer cannot be understood")?,
        }
        if let Some(e) = &self.service_error {
            write!(
                f,
                ": Partner Center error {}: {}",
                printable(&cut(&e.code.to_string(), 64)),
                printable(&cut(&e.description, 1024))
            )?;
        } else if let Some(t) = &self.throttling {
            write!(f, ": {}", printable(&cut(&t.message, 1024)))?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {}", printable(detail))?;
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        if let Some(id) = self.request_id {
            write!(f, " (MS-RequestId {id}")?;
            if let Some(cid) = self.correlation_id {
                write!(f, ", MS-CorrelationId {cid}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("operation", &self.operation)
            .field("kind", &self.kind)
            .field("sent", &self.sent)
            .field("status", &self.status)
            .field("service_error", &self.service_error)
            .field("throttling", &self.throttling)
            .field("retry_after", &self.retry_after)
            .field("request_id", &self.request_id)
            .field("correlation_id", &self.correlation_id)
            .field("ms_cv", &self.ms_cv)
            .field("raw_body_bytes", &self.body.as_ref().map(Bytes::len))
            .field("detail", &self.detail)
            .field("source", &self.source)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn http_reason(status: Option<u16>) -> String {
    status
        .and_then(|s| reqwest::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

/// Server text made safe for a terminal or a log line: control characters (escape sequences,
/// carriage returns, forged newlines) and bidirectional overrides are written as `\u{..}`.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn cut(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
