//! Decoding answers and failures into [`Error`]: an error answer's status, headers and body, a
//! generated-client failure, a transport failure with its root cause.

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{Error, ErrorKind, Operation, Sent};
use crate::generated::types;
use crate::response::{CallIds, MS_CV, answered_ids, header_text, parse_retry_after};
use crate::transport::read_bounded;

/// Partner Center's code for an App+User call without multi-factor sign-in (since 2026).
const MFA_REQUIRED: i64 = 900421;

/// The largest error body kept; Partner Center's error descriptions are at most 1024 characters.
const MAX_ERROR_BODY: usize = 64 * 1024;

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
        error.www_authenticate = header_text(headers, &reqwest::header::WWW_AUTHENTICATE);
        error.retry_after = header_text(headers, &RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v, chrono::Utc::now()));
        if kind == ErrorKind::Status {
            if let Ok(service) = serde_json::from_slice::<types::ServiceError>(&body) {
                error.service_error = Some(service.into());
            } else if let Ok(throttling) = serde_json::from_slice::<types::ThrottlingError>(&body) {
                error.throttling = Some(throttling.into());
            }
            // App+User calls without multi-factor sign-in (401, 900421): only signing in again
            // with MFA helps, so it is that kind of error (the status stays), never retried.
            if status == 401 && error.has_service_code(MFA_REQUIRED) {
                error.kind = ErrorKind::SignInAgain;
                error.detail = Some("the sign-in had no multi-factor authentication; run `pc-upgrade login` and complete MFA".into());
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
            // A handshake failure sent nothing; a TLS failure later, while the answer was read,
            // came after the request went out.
            (
                ErrorKind::Tls,
                if e.is_connect() {
                    Sent::No
                } else {
                    Sent::Maybe
                },
            )
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
