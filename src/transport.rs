//! The progenitor hook, and nothing else: it attaches the token (only for the configured
//! origin), asks for JSON, drops progenitor's `api-version`, and sends each request, reading the
//! answer through one bound and recording the exchange when asked.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use progenitor_client::{ClientHooks, OperationInfo};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};

use crate::auth::AccessToken;
use crate::base_url::Origin;
use crate::generated;
use crate::record::{Recorder, SentRequest};

/// The largest answer read at all. The largest real answer is a status with one line item per
/// subscription: a few KiB. Anything past this is cut off and the call fails with
/// [`crate::ErrorKind::AnswerTooLarge`], so an endless body cannot exhaust memory.
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
        let body = without_token(body, &context.authorization);
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

/// The answer with every copy of the token it was sent with replaced: a server that echoes the
/// token (in an error's description, a reason) must not put it into an error, a journal or a
/// report. A body that is not UTF-8 is kept as it is: it cannot be parsed, and what is printed
/// of it goes through `from_utf8_lossy` (where a token would be as plain as here; such a body
/// is a broken server's, kept only as an error's raw bytes).
fn without_token(body: Bytes, authorization: &http::HeaderValue) -> Bytes {
    let value = authorization.to_str().unwrap_or_default();
    let token = value.strip_prefix("Bearer ").unwrap_or(value);
    match std::str::from_utf8(&body) {
        // Shorter "tokens" are a test's, and would match ordinary text.
        Ok(text) if token.len() >= 8 && text.contains(token) => {
            Bytes::from(text.replace(token, "[REDACTED]"))
        }
        _ => body,
    }
}

/// Reads at most `limit` bytes of a body; the flag says whether more was coming.
pub(crate) async fn read_bounded<S>(
    mut stream: S,
    limit: usize,
) -> Result<(Bytes, bool), reqwest::Error>
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderName;

    #[test]
    fn an_answer_that_echoes_the_token_is_read_without_it() {
        let header = http::HeaderValue::from_static("Bearer eyJhbGciOi.secret-value.sig");
        let body = Bytes::from_static(
            br#"{"code":900100,"description":"bad request from Bearer eyJhbGciOi.secret-value.sig"}"#,
        );
        let read = without_token(body, &header);
        let text = std::str::from_utf8(&read).unwrap();
        assert!(!text.contains("secret-value"), "{text}");
        assert!(
            text.contains("bad request from Bearer [REDACTED]"),
            "{text}"
        );
        let plain = Bytes::from_static(b"{\"ok\":true}");
        assert_eq!(without_token(plain.clone(), &header), plain);
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
