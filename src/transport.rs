//! The glue between the generated client and the public API: the per-call hook that attaches
//! the token, and the decoding of answers and failures into [`Response`] and [`Error`].

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use progenitor_client::{ClientHooks, OperationInfo, ResponseValue};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::AccessToken;
use crate::error::{Error, ErrorKind, Operation, RequestIds, Sent};
use crate::generated::{self, types};
use crate::ids::{CorrelationId, RequestId};
use crate::record::{Recorder, SentRequest};

/// The largest error body kept; Partner Center's error descriptions are at most 1024 characters.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The largest answer read at all. The largest real answer is a status with one line item per
/// subscription: a few KiB. Anything past this is cut off and the call fails with
/// [`ErrorKind::AnswerTooLarge`], so an endless body cannot exhaust memory.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// What the generated client carries for one call: the `Authorization` value, the only
/// origin it may be sent to, where to record the exchange, and whether the answer was cut off.
#[derive(Clone)]
pub struct CallContext {
    authorization: HeaderValue,
    origin: Arc<Origin>,
    recorder: Option<Arc<Recorder>>,
    too_large: Arc<AtomicBool>,
}

/// Scheme, host and port, compared without allocating (a call checks it once).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(crate) fn of(url: &url::Url) -> Self {
        Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str().unwrap_or_default().to_owned(),
            port: url.port_or_known_default(),
        }
    }

    fn matches(&self, url: &url::Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
    }
}

impl CallContext {
    pub(crate) fn new(
        token: &AccessToken,
        origin: Arc<Origin>,
        recorder: Option<Arc<Recorder>>,
    ) -> Self {
        Self {
            authorization: token.header_value().clone(),
            origin,
            recorder,
            too_large: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set when this call's answer was longer than [`MAX_ANSWER_BYTES`] and was cut off.
    pub(crate) fn too_large_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.too_large)
    }

    /// Prepares a request the generated code built: removes progenitor's `api-version` header
    /// (Partner Center defines none), asks for JSON (progenitor derives `Accept` from the
    /// declared bodies, and codegen.rs hands it error bodies as raw bytes), and attaches the
    /// token, only if the request goes to the configured origin.
    fn prepare(&self, request: &mut reqwest::Request) {
        let headers = request.headers_mut();
        headers.remove("api-version");
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.remove(AUTHORIZATION);
        if self.origin.matches(request.url()) {
            request
                .headers_mut()
                .insert(AUTHORIZATION, self.authorization.clone());
        }
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("authorization", &"<redacted>")
            .field("origin", &self.origin)
            .finish()
    }
}

impl ClientHooks<CallContext> for generated::Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        progenitor_client::ClientInfo::inner(self).prepare(request);
        Ok(())
    }

    /// Sends the request and reads the whole answer here, at most [`MAX_ANSWER_BYTES`] of it
    /// (the generated code would read any length), recording the exchange when asked; the
    /// generated code then decodes the bytes read.
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let context = progenitor_client::ClientInfo::inner(self);
        let sent = context.recorder.as_ref().map(|_| SentRequest::of(&request));
        let response = progenitor_client::ClientInfo::client(self)
            .execute(request)
            .await?;
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let (body, cut) = read_bounded(response.bytes_stream(), MAX_ANSWER_BYTES).await?;
        if cut {
            context.too_large.store(true, Ordering::Relaxed);
        }
        if let (Some(recorder), Some(sent)) = (&context.recorder, sent) {
            let secret = String::from_utf8_lossy(context.authorization.as_bytes());
            recorder.write(
                info.operation_id,
                sent,
                status.as_u16(),
                &headers,
                &body,
                &secret,
            );
        }
        let mut answer = http::Response::new(body);
        *answer.status_mut() = status;
        *answer.version_mut() = version;
        *answer.headers_mut() = headers;
        Ok(reqwest::Response::from(answer))
    }
}

/// Reads at most `limit` bytes of a body; the flag says whether more was coming.
async fn read_bounded<S>(mut stream: S, limit: usize) -> Result<(Bytes, bool), reqwest::Error>
where
    S: futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), false))
}

/// A successful answer: the value and the ids it was processed under.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response<T> {
    value: T,
    status: u16,
    request_id: RequestId,
    correlation_id: CorrelationId,
    ms_cv: Option<String>,
    retry_after: Option<Duration>,
    attempts: u32,
}

impl<T> Response<T> {
    /// The answer's value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The answer's value, taken out.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The HTTP status (200, or 202 for create).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// `MS-CV`, Partner Center's internal correlation vector, when the answer carried one.
    pub fn ms_cv(&self) -> Option<&str> {
        self.ms_cv.as_deref()
    }

    /// `Retry-After` on a successful answer: when to poll again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How many attempts the call took (1 when it was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            value: f(self.value),
            status: self.status,
            request_id: self.request_id,
            correlation_id: self.correlation_id,
            ms_cv: self.ms_cv,
            retry_after: self.retry_after,
            attempts: self.attempts,
        }
    }
}

impl<T> RequestIds for Response<T> {
    fn request_id(&self) -> Option<RequestId> {
        Some(self.request_id)
    }
    fn correlation_id(&self) -> Option<CorrelationId> {
        Some(self.correlation_id)
    }
}

/// The ids one call is sent with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallIds {
    pub(crate) request_id: RequestId,
    pub(crate) correlation_id: CorrelationId,
}

const MS_REQUEST_ID: HeaderName = HeaderName::from_static("ms-requestid");
const MS_CORRELATION_ID: HeaderName = HeaderName::from_static("ms-correlationid");
const MS_CV: HeaderName = HeaderName::from_static("ms-cv");

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    header_str(headers, name).map(str::to_owned)
}

/// The ids an answer names, falling back to the ones sent.
fn answered_ids(headers: &HeaderMap, sent: CallIds) -> CallIds {
    CallIds {
        request_id: header_str(headers, &MS_REQUEST_ID)
            .and_then(|v| RequestId::parse(v).ok())
            .unwrap_or(sent.request_id),
        correlation_id: header_str(headers, &MS_CORRELATION_ID)
            .and_then(|v| CorrelationId::parse(v).ok())
            .unwrap_or(sent.correlation_id),
    }
}

pub(crate) fn response<T>(value: ResponseValue<T>, ids: CallIds) -> Response<T> {
    let status = value.status().as_u16();
    let answered = answered_ids(value.headers(), ids);
    let ms_cv = header_text(value.headers(), &MS_CV);
    let retry_after = header_str(value.headers(), &RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
    Response {
        value: value.into_inner(),
        status,
        request_id: answered.request_id,
        correlation_id: answered.correlation_id,
        ms_cv,
        retry_after,
        attempts: 1,
    }
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date (a date in the past means "now").
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

impl Error {
    fn with_ids(mut self, ids: CallIds) -> Self {
        self.request_id = Some(ids.request_id);
        self.correlation_id = Some(ids.correlation_id);
        self
    }

    pub(crate) fn before_send(operation: Operation, kind: ErrorKind, ids: CallIds) -> Self {
        Error::new(operation, kind, Sent::No).with_ids(ids)
    }

    /// Builds an error from an answer's status, headers and body.
    fn from_answer(
        operation: Operation,
        kind: ErrorKind,
        status: u16,
        headers: &HeaderMap,
        body: Bytes,
        ids: CallIds,
    ) -> Self {
        let mut error = Error::new(operation, kind, Sent::Yes).with_ids(answered_ids(headers, ids));
        error.status = Some(status);
        error.ms_cv = header_text(headers, &MS_CV);
        error.retry_after = header_text(headers, &RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v, chrono::Utc::now()));
        if kind == ErrorKind::Status {
            if let Ok(service) = serde_json::from_slice::<types::ServiceError>(&body) {
                error.service_error = Some(service.into());
            } else if let Ok(throttling) = serde_json::from_slice::<types::ThrottlingError>(&body) {
                error.throttling = Some(throttling.into());
            }
        }
        if error.service_error.is_none() && error.throttling.is_none() {
            let content_type = header_text(headers, &reqwest::header::CONTENT_TYPE);
            error.detail = Some(describe_body(&body, content_type.as_deref()));
            if !body.is_empty() {
                error.body = Some(body);
            }
        }
        error
    }

    /// Maps a generated-client failure to our error, reading the body of error answers.
    pub(crate) async fn from_generated(
        operation: Operation,
        ids: CallIds,
        error: progenitor_client::Error<progenitor_client::ByteStream>,
    ) -> Self {
        use progenitor_client::Error as G;
        match error {
            G::InvalidRequest(message) => {
                Error::before_send(operation, ErrorKind::InvalidInput, ids).with_detail(message)
            }
            G::CommunicationError(e) => Error::from_reqwest(operation, ids, e),
            G::ErrorResponse(value) => {
                let status = value.status().as_u16();
                let headers = value.headers().clone();
                match read_capped(value.into_inner().into_inner()).await {
                    Ok(body) => Error::from_answer(
                        operation,
                        ErrorKind::Status,
                        status,
                        &headers,
                        body,
                        ids,
                    ),
                    Err(e) => {
                        let mut error = Error::from_reqwest(operation, ids, e);
                        error.status = Some(status);
                        error.sent = Sent::Yes;
                        error
                    }
                }
            }
            G::UnexpectedResponse(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = match read_capped(response.bytes_stream()).await {
                    Ok(body) => body,
                    Err(e) => {
                        let mut error = Error::from_reqwest(operation, ids, e);
                        error.status = Some(status);
                        error.sent = Sent::Yes;
                        return error;
                    }
                };
                let kind = if (400..600).contains(&status) {
                    ErrorKind::Status
                } else {
                    ErrorKind::InvalidResponse
                };
                let error = Error::from_answer(operation, kind, status, &headers, body, ids);
                if kind == ErrorKind::InvalidResponse {
                    error.with_detail(format!(
                        "the spec declares only HTTP {} for a successful {operation}",
                        operation.success_status()
                    ))
                } else {
                    error
                }
            }
            G::InvalidResponsePayload(body, e) => {
                // progenitor parses only declared success bodies (error bodies arrive raw, see
                // codegen.rs), so the status is the operation's success status.
                let mut error = Error::new(operation, ErrorKind::InvalidResponse, Sent::Yes)
                    .with_ids(ids)
                    .with_detail(format!(
                        "the body ({} bytes) does not match the spec: {e}",
                        body.len()
                    ));
                error.status = Some(operation.success_status());
                error
            }
            G::ResponseBodyError(e) => {
                let mut error = Error::from_reqwest(operation, ids, e);
                error.sent = Sent::Yes;
                error
            }
            G::InvalidUpgrade(e) => Error::from_reqwest(operation, ids, e),
            G::Custom(message) => Error::new(operation, ErrorKind::Transport, Sent::Maybe)
                .with_ids(ids)
                .with_detail(message),
        }
    }

    pub(crate) fn from_reqwest(operation: Operation, ids: CallIds, e: reqwest::Error) -> Self {
        let cause = cause_of(&e);
        let (kind, sent) = if cause == Some("TLS") {
            (ErrorKind::Tls, Sent::No)
        } else if e.is_connect() {
            (ErrorKind::Connect, Sent::No)
        } else if e.is_timeout() {
            (ErrorKind::Timeout, Sent::Maybe)
        } else if e.is_builder() || e.is_request() && e.url().is_none() {
            (ErrorKind::InvalidInput, Sent::No)
        } else {
            (ErrorKind::Transport, Sent::Maybe)
        };
        // reqwest's message names the URL, which holds no secret (the token is a header).
        let error = Error::new(operation, kind, sent).with_ids(ids);
        let error = match cause {
            Some(cause) => error.with_detail(cause_text(cause, &e)),
            None => error,
        };
        error.with_source(e.without_url())
    }
}

/// The root cause of a transport failure, from the error's source chain: reqwest's own message
/// ("error sending request") says nothing of it. `io::Error` hides what it wraps from
/// `source()`, so the walk looks inside it with `get_ref()`.
fn cause_of(e: &reqwest::Error) -> Option<&'static str> {
    let mut cause = None;
    for current in chain(e) {
        if current.is::<rustls::Error>() {
            return Some("TLS");
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            cause = match io.kind() {
                K::ConnectionRefused => Some("connection refused"),
                K::ConnectionReset => Some("connection reset"),
                K::ConnectionAborted => Some("connection aborted"),
                K::TimedOut => Some("timed out"),
                K::UnexpectedEof => Some("connection closed early"),
                _ => cause,
            };
        }
    }
    if cause.is_none() && e.is_timeout() {
        return Some("timed out");
    }
    cause
}

/// Every error under `e`, looking inside `io::Error`s.
fn chain<'a>(e: &'a reqwest::Error) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(current) = next {
        found.push(current);
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        if found.len() > 32 {
            break;
        }
    }
    found
}

fn cause_text(cause: &str, e: &reqwest::Error) -> String {
    if cause != "TLS" {
        return cause.to_owned();
    }
    // The rustls message ("invalid peer certificate: UnknownIssuer") says what to fix.
    chain(e)
        .into_iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
        .map_or_else(|| "TLS".to_owned(), |tls| format!("TLS: {tls}"))
}

/// Reads an error body, keeping at most [`MAX_ERROR_BODY`] bytes.
async fn read_capped<S>(stream: S) -> Result<Bytes, reqwest::Error>
where
    S: futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    read_bounded(stream, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
}

fn describe_body(body: &[u8], content_type: Option<&str>) -> String {
    if body.is_empty() {
        return "the answer has an empty body".into();
    }
    let kind = content_type.unwrap_or("an untyped");
    format!(
        "the answer's body ({kind}, {} bytes) is not a Partner Center error",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap();
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 08:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn the_token_goes_only_to_the_configured_origin_and_api_version_is_removed() {
        let token = AccessToken::new("secret-token").unwrap();
        let origin =
            Origin::of(&url::Url::parse("https://api.partnercenter.microsoft.com").unwrap());
        let context = CallContext::new(&token, std::sync::Arc::new(origin), None);

        let request = |url: &str, headers: &[(&str, &str)]| {
            let mut request =
                reqwest::Request::new(reqwest::Method::POST, url::Url::parse(url).unwrap());
            for (name, value) in headers {
                request.headers_mut().insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            request
        };
        let mut same = request(
            "https://api.partnercenter.microsoft.com/v1/productUpgrades",
            &[("api-version", "1.0.0")],
        );
        context.prepare(&mut same);
        assert!(same.headers().get("api-version").is_none());
        assert_eq!(
            same.headers()[AUTHORIZATION].to_str().unwrap(),
            "Bearer secret-token"
        );

        for elsewhere in [
            "https://evil.example/v1/productUpgrades",
            "http://api.partnercenter.microsoft.com/v1/productUpgrades",
            "https://api.partnercenter.microsoft.com:8443/v1/productUpgrades",
        ] {
            let mut other = request(elsewhere, &[("authorization", "Bearer stale")]);
            context.prepare(&mut other);
            assert!(other.headers().get(AUTHORIZATION).is_none(), "{elsewhere}");
        }
        assert!(!format!("{context:?}").contains("secret-token"));
    }
}
