//! A successful answer and what every answer carries besides its value: the ids it was
//! processed under, `MS-CV`, `Retry-After`.

use std::time::Duration;

use progenitor_client::ResponseValue;
use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};

use crate::error::RequestIds;
use crate::ids::{CorrelationId, RequestId};

/// A successful answer: the value and the ids it was processed under.
#[derive(Debug, Clone)]
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

pub(crate) const MS_REQUEST_ID: HeaderName = HeaderName::from_static("ms-requestid");
pub(crate) const MS_CORRELATION_ID: HeaderName = HeaderName::from_static("ms-correlationid");
pub(crate) const MS_CV: HeaderName = HeaderName::from_static("ms-cv");

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(crate) fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    header_str(headers, name).map(str::to_owned)
}

/// The ids an answer names, falling back to the ones sent.
pub(crate) fn answered_ids(headers: &HeaderMap, sent: CallIds) -> CallIds {
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
}
