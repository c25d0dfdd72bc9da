//! The public client: builds each call's ids and token, calls the generated code, and turns the
//! answer into our own types.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::auth::TokenProvider;
use crate::base_url::BaseUrl;
use crate::error::{Error, ErrorKind, Operation};
use crate::generated::{self, types};
use crate::ids::{CorrelationId, RequestId, UpgradeId};
use crate::location::{LocationError, upgrade_id_from_location};
use crate::model::{Eligibility, Upgrade, UpgradeRequest};
use crate::record::Recorder;
use crate::response::{self, CallIds, Response};
use crate::retry::{Decision, Failure, RetryPolicy, jitter};
use crate::throttle::{Lane, Throttle};
use crate::transport::CallContext;

/// How long to wait for a connection, unless [`ClientBuilder::connect_timeout`] says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take in all, unless [`ClientBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The locale is not a language tag such as `en-US` (the text shows at most 40 characters).
    #[error("locale {0:?} is not a language tag such as en-US")]
    Locale(String),
    /// The application name is empty, longer than 256 characters, or holds control characters.
    #[error("the application name must be 1 to 256 characters, without control characters")]
    ApplicationName,
    /// A timeout of zero: every call would fail after being sent.
    #[error("timeouts must be longer than zero")]
    Timeout,
    /// The directory for recordings could not be created.
    #[error("cannot record exchanges in {path}: {reason}")]
    Record {
        /// The directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, for example).
    #[error("the HTTP client could not be set up: {0}")]
    Http(String),
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    base_url: BaseUrl,
    tokens: Arc<dyn TokenProvider>,
    locale: Option<String>,
    application: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
    retry: RetryPolicy,
    record: Option<std::path::PathBuf>,
    throttle: Option<Throttle>,
}

impl ClientBuilder {
    /// Writes every exchange (request and answer, headers and bodies, with `Authorization` and
    /// anything token-like removed) as one JSON file into `dir`, for
    /// `cargo xtask contract --recordings DIR` to check against the spec.
    pub fn record_exchanges(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.record = Some(dir.into());
        self
    }

    /// How failed calls are retried (default [`RetryPolicy::default`]; [`RetryPolicy::none`]
    /// switches retries off).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sends `X-Locale` with every call, so messages come in that language (default: none, which
    /// Partner Center treats as `en-US`).
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Sends `MS-PartnerCenter-Application` with every call, naming the calling application.
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// How long to wait for a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one call may take in all (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Waits on `throttle` before every attempt and feeds it every answer: share one
    /// [`Throttle`] among every client of a partner, so a `429` slows them all.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<Client, BuildError> {
        let locale = self
            .locale
            .map(|l| match is_language_tag(&l) {
                true => Ok(types::Locale(l)),
                false => Err(BuildError::Locale(l.chars().take(40).collect())),
            })
            .transpose()?;
        let application = self
            .application
            .map(|a| match is_application_name(&a) {
                true => Ok(types::ApplicationName(a)),
                false => Err(BuildError::ApplicationName),
            })
            .transpose()?;
        let recorder = self
            .record
            .map(|dir| {
                Recorder::new(&dir)
                    .map(Arc::new)
                    .map_err(|e| BuildError::Record {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    })
            })
            .transpose()?;
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(BuildError::Timeout);
        }
        let mut http = reqwest::Client::builder();
        // A proxy named by HTTP_PROXY or ALL_PROXY would receive a loopback call's token in plain
        // text, so loopback is never proxied. An https base URL may go through the environment's
        // proxy (corporate networks need it): the proxy sees only the host in CONNECT, and the
        // token travels inside TLS to the configured origin.
        if self.base_url.is_loopback() {
            http = http.no_proxy();
        }
        let http = http
            .tls_backend_preconfigured(tls_config()?)
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            // Partner Center does not redirect these calls; following a redirect could carry the
            // request somewhere unexpected, so a 3xx is reported as an error instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "partner-center-upgrades/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(Client {
            shared: Arc::new(Shared {
                recorder,
                http,
                base_url: self.base_url,
                tokens: self.tokens,
                locale,
                application,
                retry: self.retry,
                throttle: self.throttle,
            }),
            correlation_id: None,
        })
    }
}

/// Strict in what we send: the spec states no limit on `X-Locale` (no source does), but the client
/// sends only a well-formed BCP 47 tag such as `en-US`: 2 to 35 characters, a 2–8 letter language
/// and `-`-separated 1–8 character subtags.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    (2..=35).contains(&tag.len())
        && (2..=8).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Strict in what we send: a name that fits in a header and in Partner Center's logs.
fn is_application_name(name: &str) -> bool {
    (1..=256).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// TLS through rustls with the `ring` provider and the platform's certificate roots, configured
/// here rather than by installing a process-wide default provider.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, BuildError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Http(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| BuildError::Http(e.to_string()))?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Whether a call's answer was cut off at [`crate::MAX_ANSWER_BYTES`] (set by the transport).
struct TooLarge(Arc<std::sync::atomic::AtomicBool>);

impl TooLarge {
    /// A failure to read a cut-off answer is that it was too large, whatever failed after.
    fn check(&self, error: Error) -> Error {
        if self.0.load(std::sync::atomic::Ordering::Relaxed) {
            error.answer_too_large()
        } else {
            error
        }
    }
}

struct Shared {
    recorder: Option<Arc<Recorder>>,
    http: reqwest::Client,
    base_url: BaseUrl,
    tokens: Arc<dyn TokenProvider>,
    locale: Option<types::Locale>,
    application: Option<types::ApplicationName>,
    retry: RetryPolicy,
    throttle: Option<Throttle>,
}

/// A client for the product-upgrade API. Cheap to clone; clones share connections.
///
/// Every call sends `Authorization` (only to the configured base URL), a new `MS-RequestId`, and
/// an `MS-CorrelationId`: a new one per call, or the one set with
/// [`Client::with_correlation_id`] for every call of a flow.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    correlation_id: Option<CorrelationId>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.shared.base_url)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client for `base_url` (a [`crate::Cloud`] or a [`BaseUrl`]) that takes
    /// its tokens from `tokens`.
    pub fn builder(
        base_url: impl Into<BaseUrl>,
        tokens: impl TokenProvider + 'static,
    ) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            tokens: Arc::new(tokens),
            locale: None,
            application: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            record: None,
            throttle: None,
        }
    }

    /// The first recording that could not be written, if any: recording never fails a call, so
    /// a caller that asked for recordings should check this at the end.
    pub fn recording_error(&self) -> Option<String> {
        self.shared.recorder.as_ref().and_then(|r| r.first_error())
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &BaseUrl {
        &self.shared.base_url
    }

    /// A client that sends `correlation_id` with every call, tying a flow's calls together.
    pub fn with_correlation_id(&self, correlation_id: CorrelationId) -> Client {
        Client {
            shared: Arc::clone(&self.shared),
            correlation_id: Some(correlation_id),
        }
    }

    /// The correlation id set with [`Client::with_correlation_id`], if any.
    pub fn correlation_id(&self) -> Option<CorrelationId> {
        self.correlation_id
    }

    /// The throttle every attempt waits on, when the client was built with one.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.shared.throttle.as_ref()
    }

    /// The retry policy calls use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }

    /// Runs one logical call: the same ids on every attempt, retried as the policy decides.
    ///
    /// Traced as one `partner_center.call` span (operation, ids, customer, attempts, outcome)
    /// with one `partner_center.attempt` span per attempt (its number, the status, the delay
    /// before the next). No span or event carries a token.
    async fn with_retries<T, F, Fut>(
        &self,
        operation: Operation,
        request: &UpgradeRequest,
        attempt: F,
    ) -> Result<Response<T>, Error>
    where
        F: Fn(CallIds) -> Fut,
        Fut: std::future::Future<Output = Result<Response<T>, Error>>,
    {
        self.with_retries_as(operation, request, self.new_ids(), attempt)
            .await
    }

    /// [`Client::with_retries`] under ids the caller chose.
    async fn with_retries_as<T, F, Fut>(
        &self,
        operation: Operation,
        request: &UpgradeRequest,
        ids: CallIds,
        attempt: F,
    ) -> Result<Response<T>, Error>
    where
        F: Fn(CallIds) -> Fut,
        Fut: std::future::Future<Output = Result<Response<T>, Error>>,
    {
        let call = tracing::info_span!(
            "partner_center.call",
            operation = operation.operation_id(),
            ms_request_id = %ids.request_id,
            ms_correlation_id = %ids.correlation_id,
            customer = %request.customer_id,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let lane = match operation {
            Operation::GetUpgradeStatus => Lane::Polls,
            _ => Lane::Calls,
        };
        self.retry_loop(ids, lane, attempt).instrument(call).await
    }

    async fn retry_loop<T, F, Fut>(
        &self,
        ids: CallIds,
        lane: Lane,
        attempt: F,
    ) -> Result<Response<T>, Error>
    where
        F: Fn(CallIds) -> Fut,
        Fut: std::future::Future<Output = Result<Response<T>, Error>>,
    {
        let call = tracing::Span::current();
        let started = tokio::time::Instant::now();
        let policy = &self.shared.retry;
        let mut attempts = 1;
        // The most any attempt may have reached: an earlier attempt may have acted at Partner
        // Center even when the last one could not connect.
        let mut reached = crate::Sent::No;
        let mut renewed_token = false;
        loop {
            let span = tracing::debug_span!(
                "partner_center.attempt",
                attempt = attempts,
                status = tracing::field::Empty,
                retry_in_ms = tracing::field::Empty,
            );
            let throttle = self.shared.throttle.as_ref();
            if let Some(throttle) = throttle {
                throttle.acquire(lane).instrument(span.clone()).await;
            }
            let result = attempt(ids).instrument(span.clone()).await;
            if let Some(throttle) = throttle {
                match &result {
                    Ok(response) => throttle.observe(response.status(), None),
                    Err(error) => {
                        if let Some(status) = error.status() {
                            throttle.observe(status, error.retry_after());
                        }
                    }
                }
            }
            match result {
                Ok(response) => {
                    span.record("status", response.status());
                    call.record("attempts", attempts);
                    call.record("outcome", "ok");
                    return Ok(response.with_attempts(attempts));
                }
                Err(error) => {
                    if let Some(status) = error.status() {
                        span.record("status", status);
                    }
                    reached = reached.max(error.sent());
                    // A 401 that says the token expired: one new token and one more attempt,
                    // never a loop (a second 401 is returned).
                    if !renewed_token
                        && error.says_token_expired()
                        && self.shared.tokens.invalidate()
                    {
                        renewed_token = true;
                        tracing::debug!(parent: &span, "the token expired; renewing it once");
                        attempts += 1;
                        continue;
                    }
                    let decision = policy.decide(
                        Failure::of(&error),
                        attempts,
                        started.elapsed(),
                        error.retry_after(),
                        jitter(ids.request_id.as_uuid(), attempts),
                    );
                    match decision {
                        Decision::RetryAfter(delay) => {
                            span.record("retry_in_ms", delay.as_millis() as u64);
                            tracing::debug!(parent: &span, kind = ?error.kind(), "retrying");
                            tokio::time::sleep(delay).await;
                            attempts += 1;
                        }
                        Decision::GiveUp(reason) => {
                            call.record("attempts", attempts);
                            call.record("outcome", tracing::field::debug(error.kind()));
                            tracing::debug!(parent: &span, ?reason, "giving up");
                            return Err(error.after_attempts(attempts, reached));
                        }
                    }
                }
            }
        }
    }

    fn new_ids(&self) -> CallIds {
        CallIds {
            request_id: RequestId::new_random(),
            correlation_id: self
                .correlation_id
                .unwrap_or_else(CorrelationId::new_random),
        }
    }

    /// Fetches the token and builds the generated client for one call.
    async fn prepare(
        &self,
        operation: Operation,
        request: &UpgradeRequest,
        ids: CallIds,
    ) -> Result<(generated::Client, types::ProductUpgradeRequest, TooLarge), Error> {
        let body = request.to_wire().map_err(|detail| {
            Error::before_send(operation, ErrorKind::InvalidInput, ids).with_detail(detail)
        })?;
        let token = self.shared.tokens.token().await.map_err(|e| {
            let (message, sign_in_again, cause) = e.into_parts();
            let kind = if sign_in_again {
                ErrorKind::SignInAgain
            } else {
                ErrorKind::Auth
            };
            let error = Error::before_send(operation, kind, ids).with_detail(message);
            match cause {
                Some(cause) => error.with_source(cause),
                None => error,
            }
        })?;
        let context = CallContext::new(
            &token,
            self.shared.base_url.origin().clone(),
            self.shared.recorder.clone(),
        );
        let too_large = TooLarge(context.too_large_flag());
        let client = generated::Client::new_with_client(
            self.shared.base_url.as_str(),
            self.shared.http.clone(),
            context,
        );
        Ok((client, body, too_large))
    }

    /// Checks whether the customer can be upgraded, and whether an upgrade already exists.
    pub async fn check_eligibility(
        &self,
        request: &UpgradeRequest,
    ) -> Result<Response<Eligibility>, Error> {
        self.with_retries(Operation::CheckEligibility, request, |ids| {
            self.check_eligibility_once(request, ids)
        })
        .await
    }

    async fn check_eligibility_once(
        &self,
        request: &UpgradeRequest,
        ids: CallIds,
    ) -> Result<Response<Eligibility>, Error> {
        let operation = Operation::CheckEligibility;
        let (client, body, too_large) = self.prepare(operation, request, ids).await?;
        let shared = &self.shared;
        match client
            .check_eligibility(
                // MS-CV: optional; Partner Center starts the vector when it is absent.
                None,
                Some(ids.correlation_id.as_uuid()),
                shared.application.as_ref(),
                Some(ids.request_id.as_uuid()),
                shared.locale.as_ref(),
                &body,
            )
            .await
        {
            Ok(value) => {
                let response = response::response(value, ids).map(Eligibility::from);
                let answer = response.value();
                if answer.customer_id != request.customer_id
                    || !answer.product_family.same_as(&request.product_family)
                {
                    return Err(Error::mismatch(
                        operation,
                        &response,
                        format!(
                            "the answer is about customer {} and family {:?}, not the {} and {:?} asked about",
                            answer.customer_id,
                            crate::error::printable(&answer.product_family.to_string()),
                            request.customer_id,
                            request.product_family.as_str()
                        ),
                    ));
                }
                Ok(response)
            }
            Err(e) => Err(too_large.check(Error::from_generated(operation, ids, e).await)),
        }
    }

    /// Starts the upgrade and returns its id, read from the answer's `Location` header.
    ///
    /// Retries send the same `MS-RequestId`, so a create whose answer was lost and that is sent
    /// again gets the first answer instead of starting a second upgrade.
    pub async fn create_upgrade(
        &self,
        request: &UpgradeRequest,
    ) -> Result<Response<UpgradeId>, Error> {
        self.create_upgrade_as(request, RequestId::new_random())
            .await
    }

    /// [`Client::create_upgrade`] under an `MS-RequestId` the caller chose and kept: sending
    /// the same create again with it, even from another process after a crash, gets the first
    /// create's answer instead of starting a second upgrade. Keep it (in a journal, say)
    /// *before* calling, so the call can be settled whatever happens to this process.
    pub async fn create_upgrade_as(
        &self,
        request: &UpgradeRequest,
        request_id: RequestId,
    ) -> Result<Response<UpgradeId>, Error> {
        let ids = CallIds {
            request_id,
            ..self.new_ids()
        };
        self.with_retries_as(Operation::CreateUpgrade, request, ids, |ids| {
            self.create_upgrade_once(request, ids)
        })
        .await
    }

    async fn create_upgrade_once(
        &self,
        request: &UpgradeRequest,
        ids: CallIds,
    ) -> Result<Response<UpgradeId>, Error> {
        let operation = Operation::CreateUpgrade;
        let (client, body, too_large) = self.prepare(operation, request, ids).await?;
        let shared = &self.shared;
        let answer = match client
            .create_upgrade(
                // MS-CV: optional; Partner Center starts the vector when it is absent.
                None,
                Some(ids.correlation_id.as_uuid()),
                shared.application.as_ref(),
                Some(ids.request_id.as_uuid()),
                shared.locale.as_ref(),
                &body,
            )
            .await
        {
            Ok(value) => value,
            Err(e) => return Err(too_large.check(Error::from_generated(operation, ids, e).await)),
        };
        let mut locations = answer.headers().get_all(reqwest::header::LOCATION).iter();
        let location = match (locations.next(), locations.count()) {
            (None, _) => Err(LocationError::Missing),
            (Some(value), 0) => value
                .to_str()
                .map_err(|_| LocationError::NotText)
                .and_then(upgrade_id_from_location),
            (Some(_), more) => Err(LocationError::Several(more + 1)),
        };
        let response = response::response(answer, ids);
        match location {
            Ok(upgrade_id) => Ok(response.map(|()| upgrade_id)),
            Err(e) => Err(Error::mismatch(
                operation,
                &response,
                format!("{e}; the upgrade was probably created; check eligibility to find its id"),
            )),
        }
    }

    /// Reads an upgrade's status. `request` must name the customer the upgrade belongs to.
    pub async fn get_upgrade_status(
        &self,
        upgrade_id: UpgradeId,
        request: &UpgradeRequest,
    ) -> Result<Response<Upgrade>, Error> {
        self.with_retries(Operation::GetUpgradeStatus, request, |ids| {
            self.get_upgrade_status_once(upgrade_id, request, ids)
        })
        .await
    }

    async fn get_upgrade_status_once(
        &self,
        upgrade_id: UpgradeId,
        request: &UpgradeRequest,
        ids: CallIds,
    ) -> Result<Response<Upgrade>, Error> {
        let operation = Operation::GetUpgradeStatus;
        let (client, body, too_large) = self.prepare(operation, request, ids).await?;
        let shared = &self.shared;
        match client
            .get_upgrade_status(
                upgrade_id.as_uuid(),
                // MS-CV: optional; Partner Center starts the vector when it is absent.
                None,
                Some(ids.correlation_id.as_uuid()),
                shared.application.as_ref(),
                Some(ids.request_id.as_uuid()),
                shared.locale.as_ref(),
                &body,
            )
            .await
        {
            Ok(value) => {
                let response = response::response(value, ids).map(Upgrade::from);
                if response.value().id != upgrade_id {
                    return Err(Error::mismatch(
                        operation,
                        &response,
                        format!(
                            "the answer is the status of upgrade {}, not of {upgrade_id}",
                            response.value().id
                        ),
                    ));
                }
                Ok(response)
            }
            Err(e) => Err(too_large.check(Error::from_generated(operation, ids, e).await)),
        }
    }
}
