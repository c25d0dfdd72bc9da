//! Sending verification's requests within the token's rules: only to a base URL
//! [`check_base_url`] allows, never through a proxy for loopback, never following a redirect,
//! and never reading more than [`MAX_ANSWER_BYTES`] of an answer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Target;
use super::check::{Answer, Contract, Findings};
use super::coverage::Coverage;
use super::curl::{Bearer, Exchange, SentRequest};
use super::plan::{Probe, Token};

/// The most of one answer the verifier reads. A longer answer is a failed case, named "answer
/// longer than 4 MiB"; the rest is never read, so memory stays bounded whatever a server sends.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Where verification may send a token: `https`, or plain `http` to a loopback host
/// (`localhost`, 127.0.0.0/8, `::1`) only, and no user name or password in the URL; the same
/// rule as the client's `BaseUrl`. Returns whether the host is loopback (reached without a
/// proxy), or why the URL is refused (the URL shown without its user-info part).
pub fn check_base_url(base_url: &str) -> Result<bool, String> {
    let shown = without_userinfo(base_url);
    let refuse = |reason: &str| format!("base URL {shown:?} is refused: {reason}");
    let url =
        reqwest::Url::parse(base_url.trim()).map_err(|_| refuse("it is not an absolute URL"))?;
    let Some(host) = url.host_str() else {
        return Err(refuse("it has no host"));
    };
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => std::net::IpAddr::is_loopback(&ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(refuse(
                "plain http would send the token unencrypted; use https (http is allowed only for loopback addresses)",
            ));
        }
        _ => return Err(refuse("the scheme must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a user name or password"));
    }
    Ok(loopback)
}

/// `value` with any `user:password@` part replaced, so that an error never echoes a password.
fn without_userinfo(value: &str) -> String {
    let Some(start) = value.find("://").map(|i| i + 3) else {
        return value.chars().take(200).collect();
    };
    let end = value[start..]
        .find(['/', '?', '#'])
        .map_or(value.len(), |i| start + i);
    let shown = match value[start..end].rfind('@') {
        Some(at) => format!(
            "{}<userinfo removed>{}",
            &value[..start],
            &value[start + at..]
        ),
        None => value.to_owned(),
    };
    shown.chars().take(200).collect()
}

/// A reqwest client for verification. TLS is rustls with the `ring` provider, configured here
/// for this client alone ([`tls_config`]) rather than by installing a process-wide default
/// provider. Redirects are never followed (the token would follow them); a loopback target is
/// never reached through a proxy (`HTTP_PROXY` and the like would otherwise get the token of a
/// local server).
pub(super) fn http_client(
    timeout: Duration,
    https: bool,
    loopback: bool,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(https)?)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if loopback {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// rustls with the `ring` provider, the safe default protocol versions, HTTP/1.1 and the
/// platform's certificate verifier (as the client itself uses), configured here rather than by
/// installing a process-wide provider.
fn tls_config(_https: bool) -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("cannot load the platform's certificate verifier: {e}"))?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`] of it, a chunk at a time.
async fn read_bounded(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, String> {
    let too_long =
        |read: String| format!("{what}: answer longer than 4 MiB ({read}); the rest was not read");
    if let Some(declared) = response.content_length()
        && declared > MAX_ANSWER_BYTES as u64
    {
        return Err(too_long(format!("Content-Length {declared}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{what}: the body could not be read: {e}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_long(format!(
                "over {} bytes sent",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What every case of a run shares: the HTTP client, the target and the compiled spec.
pub(super) struct Runner {
    pub(super) http: reqwest::Client,
    pub(super) target: Target,
    pub(super) contract: Contract,
}

/// What one case has seen: what it exercised, what was found, and every request it sent.
#[derive(Default)]
pub(super) struct Case {
    pub(super) coverage: Coverage,
    pub(super) findings: Findings,
    sent: Vec<Logged>,
}

/// One request of a case, and how far the case's findings were when it was sent.
struct Logged {
    request: SentRequest,
    status: Option<u16>,
    failures_before: usize,
    warnings_before: usize,
}

impl Case {
    /// What the case exercised, its failures and warnings (graded by [`Findings::finish`]) and,
    /// when it failed, every request it sent ([`Case::exchanges`]).
    pub(super) fn finish(
        self,
        strict: bool,
    ) -> (Coverage, Vec<String>, Vec<String>, Vec<Exchange>) {
        let findings = &self.findings;
        let failed = !findings.failures.is_empty() || (strict && !findings.warnings.is_empty());
        let exchanges = if failed {
            self.exchanges(strict)
        } else {
            Vec::new()
        };
        let (failures, warnings) = self.findings.finish(strict);
        (self.coverage, failures, warnings, exchanges)
    }

    /// Every request the case sent, in order, each marked failed when failures (or, in a strict
    /// run, warnings) were found from its sending to the next request's: the checks of an answer
    /// and of what follows from it come right after it.
    fn exchanges(&self, strict: bool) -> Vec<Exchange> {
        let ends = self
            .sent
            .iter()
            .skip(1)
            .map(|l| (l.failures_before, l.warnings_before))
            .chain([(self.findings.failures.len(), self.findings.warnings.len())]);
        self.sent
            .iter()
            .zip(ends)
            .map(|(logged, (failures, warnings))| Exchange {
                request: logged.request.clone(),
                status: logged.status,
                failed: failures > logged.failures_before
                    || (strict && warnings > logged.warnings_before),
            })
            .collect()
    }
}

/// What a wrong token is: the right one with this appended.
const NOT_ISSUED: &str = "-not-issued-by-this-server";

impl Runner {
    /// The request a probe stands for, built whole (every header but those the connection adds:
    /// `Host`, `Content-Length`), so that what is kept of it is what is sent.
    fn build(&self, probe: &Probe) -> Result<reqwest::Request, reqwest::Error> {
        let url = format!(
            "{}{}",
            self.target.base_url.trim_end_matches('/'),
            probe.path
        );
        // reqwest's default, set here so that the request kept for a reproduction has it.
        let mut request = self
            .http
            .request(probe.method.clone(), &url)
            .header(reqwest::header::ACCEPT, "*/*");
        match probe.token {
            Token::Right => {
                request = request.header("authorization", format!("Bearer {}", self.target.token))
            }
            Token::Wrong => {
                let wrong = format!("{}{NOT_ISSUED}", self.target.token);
                request = request.header("authorization", format!("Bearer {wrong}"))
            }
            Token::Missing => {}
        }
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &probe.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        request.build()
    }

    /// What is kept of a request: all of it but the token, which is named, not copied.
    fn kept(&self, probe: &Probe, built: Option<&reqwest::Request>) -> SentRequest {
        let bearer = match probe.token {
            Token::Right => Bearer::Token,
            Token::Wrong => Bearer::TokenWithSuffix(NOT_ISSUED.into()),
            Token::Missing => Bearer::Missing,
        };
        let kept = match built {
            Some(request) => SentRequest {
                method: request.method().as_str().to_owned(),
                url: request.url().as_str().to_owned(),
                bearer,
                headers: request
                    .headers()
                    .iter()
                    .filter(|(name, _)| *name != reqwest::header::AUTHORIZATION)
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: request
                    .body()
                    .and_then(reqwest::Body::as_bytes)
                    .map(<[u8]>::to_vec),
            },
            // Not sent (reqwest refused to build it): what the probe asked for.
            None => SentRequest {
                method: probe.method.to_string(),
                url: format!(
                    "{}{}",
                    self.target.base_url.trim_end_matches('/'),
                    probe.path
                ),
                bearer,
                headers: probe.headers.clone(),
                body: probe.body.clone(),
            },
        };
        kept.redacted(&self.target.token)
    }

    async fn send(&self, probe: &Probe) -> (SentRequest, Result<Answer, String>) {
        let what = format!("{} {}", probe.method, probe.path);
        let request = match self.build(probe) {
            Ok(request) => request,
            Err(e) => {
                let kept = self.kept(probe, None);
                return (kept, Err(format!("{what}: cannot be sent: {e}")));
            }
        };
        let kept = self.kept(probe, Some(&request));
        let answer = async {
            let response = self
                .http
                .execute(request)
                .await
                .map_err(|e| format!("{what}: no answer: {e}"))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = read_bounded(response, &what).await?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        }
        .await;
        (kept, answer)
    }

    /// Sends one probe, keeps the request, and checks the answer.
    pub(super) async fn exchange(
        &self,
        probe: &Probe,
        case: &mut Case,
    ) -> Option<(Answer, Option<Value>)> {
        let (failures_before, warnings_before) =
            (case.findings.failures.len(), case.findings.warnings.len());
        let (request, answer) = self.send(probe).await;
        case.sent.push(Logged {
            request,
            status: answer.as_ref().ok().map(|a| a.status),
            failures_before,
            warnings_before,
        });
        match answer {
            Ok(answer) => {
                let body = self.contract.check(
                    &probe.sent(),
                    &answer,
                    &mut case.coverage,
                    &mut case.findings,
                );
                Some((answer, body))
            }
            Err(e) => {
                case.findings.failures.push(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_over_https_or_to_loopback() {
        for (url, loopback) in [
            ("https://api.partnercenter.microsoft.com", false),
            ("https://127.0.0.1:8443", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.3.4.5", true),
            ("http://[::1]:4010/", true),
            ("http://localhost:4010", true),
            ("http://LocalHost", true),
        ] {
            assert_eq!(check_base_url(url), Ok(loopback), "{url}");
        }
        for (url, reason) in [
            ("http://10.0.0.1:8080", "plain http"),
            ("http://api.partnercenter.microsoft.com", "plain http"),
            ("http://localhost.example.com", "plain http"),
            ("http://[::2]", "plain http"),
            ("ftp://127.0.0.1", "scheme must be https"),
            ("127.0.0.1:8080", "not an absolute URL"),
            ("ws://localhost", "scheme must be https"),
            ("not a url", "not an absolute URL"),
            (
                "https://user:hunter2secret@127.0.0.1",
                "user name or password",
            ),
        ] {
            let refused = check_base_url(url).unwrap_err();
            assert!(refused.contains(reason), "{url}: {refused}");
            assert!(!refused.contains("hunter2secret"), "{refused}");
        }
    }

    #[test]
    fn a_plain_http_client_needs_no_roots_and_installs_no_process_provider() {
        assert!(http_client(Duration::from_secs(1), false, true).is_ok());
        assert!(tls_config(false).unwrap().alpn_protocols == [b"http/1.1".to_vec()]);
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
