//! The HTTP server: accepting connections (at most [`crate::MockConfig::max_connections`] at once;
//! `accept` errors back off instead of spinning), serving each within its timeouts, serving the
//! mock's own pages ([`crate::admin`]) apart from the API, throttling API calls
//! ([`crate::MockConfig::throttle`]) before injecting faults, counting both in the traffic,
//! reading a request body within its limit, and writing the answer with the ids the request
//! sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use rand::Rng;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use crate::faults::Fault;
use crate::ledger::{Answer, Stored};
use crate::routing::{self, header_text, sent_id};
use crate::traffic::Event;
use crate::{DRAIN_LIMIT, Shared, admin, identity};

/// hyper's per-connection read buffer, and the most header bytes a request may send.
const MAX_BUF_BYTES: usize = 64 * 1024;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `listener` until `stopped`: each connection on its own task, within
/// [`crate::MockConfig::max_connections`] (a connection beyond it is closed at once, unanswered).
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let listener = Arc::new(listener);
    accept_loop(
        move || {
            let listener = Arc::clone(&listener);
            async move { listener.accept().await.map(|(stream, _)| stream) }
        },
        stopped,
        move |stream: TcpStream| {
            // Beyond the cap, the connection is closed at once (dropped unanswered).
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                return;
            };
            let open = OpenConnection::new(&shared);
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                serve_connection(shared, stream).await;
                drop((open, slot));
            });
        },
    )
    .await;
}

/// The first wait after an `accept` error, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// The wait after an `accept` error, given the wait after the previous one (`None` when the
/// last accept succeeded): 10 ms, doubling to 1 s.
fn accept_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(ACCEPT_BACKOFF.0, |p| (p * 2).min(ACCEPT_BACKOFF.1))
}

/// Accepts connections until `stopped`, handing each to `serve`. An `accept` error (the process
/// is out of file descriptors, say) is not retried at once, which would spin: the loop waits,
/// longer after each error in a row ([`accept_backoff`]).
async fn accept_loop<S, Fut>(
    mut accept: impl FnMut() -> Fut,
    mut stopped: oneshot::Receiver<()>,
    mut serve: impl FnMut(S),
) where
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut backoff = None;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = accept() => match accepted {
                Ok(stream) => {
                    backoff = None;
                    serve(stream);
                }
                Err(_) => {
                    let wait = accept_backoff(backoff);
                    backoff = Some(wait);
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

/// Serves one connection: headers within [`crate::MockConfig::header_read_timeout`] (also the idle
/// limit between requests), at most [`crate::MockConfig::connection_timeout`] in all.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let config = &shared.config;
    let (header_timeout, lifetime) = (config.header_read_timeout, config.connection_timeout);
    let handler = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&handler);
        async move { handle(&shared, request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_BUF_BYTES)
        .max_header_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // An error here is a dropped connection: injected, timed out, or the client's.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tokio::time::sleep(lifetime) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(header_timeout, connection).await;
}

/// Why the mock closes a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

type Reply = Result<Response<Full<Bytes>>, Dropped>;

/// The throttling answer (the throttle's and the 429 fault's): `Retry-After` and Partner
/// Center's throttling body, whose shape differs from its error body.
fn throttled(retry_after: u64) -> Answer {
    let mut answer = Answer::json(
        429,
        json!({
            "statusCode": 429,
            "message": format!("Rate limit is exceeded. Try again in {retry_after} seconds.")
        }),
    );
    answer
        .headers
        .push(("retry-after", retry_after.to_string()));
    answer
}

/// Serves one request: the mock's own pages apart, the throttle, then a fault, if one is drawn
/// or scripted, then the body read within its limits and the answer [`routing`] decides.
async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let lenient = shared.config.lenient;
    let sent_ids = (
        sent_id(&parts.headers, "ms-requestid", lenient),
        sent_id(&parts.headers, "ms-correlationid", lenient),
    );
    // The mock's own pages are not API calls: not throttled, faulted or counted.
    if let Some(page) = admin::page(parts.uri.path()) {
        let answer = admin::answer(shared, &parts.method, &parts.headers, page);
        return Ok(render(answer, &sent_ids));
    }
    let second = unix_second();
    // The throttle comes before the faults, and only for the partner's API calls: the sign-in
    // service is another service, with limits of its own.
    let admitted = {
        let mut meter = shared.meter();
        meter.record(second, Event::Request);
        let api = !identity::is_endpoint(parts.uri.path());
        let admitted = if api {
            meter.admit(shared.started.elapsed())
        } else {
            Ok(())
        };
        if admitted.is_err() {
            meter.record(second, Event::Throttled);
        }
        admitted
    };
    let fault = {
        let mut ledger = shared.ledger();
        ledger.requests += 1;
        // A throttled request has no effect: it does not use up a scripted fault either.
        match admitted {
            Ok(()) => ledger.scripted.pop_front(),
            Err(_) => None,
        }
    };
    if let Err(retry_after) = admitted {
        return Ok(render(throttled(retry_after).freeze(), &sent_ids));
    }
    let fault = fault.or_else(|| {
        if shared.config.faults.is_none() {
            return None;
        }
        let mut rng = shared.rng.lock().unwrap_or_else(|e| e.into_inner());
        let (roll, pick) = (rng.random::<f64>(), rng.random::<u32>());
        shared.config.faults.draw(roll, pick)
    });
    let counted = match fault {
        Some(Fault::Throttle { .. }) => Some(Event::Fault429),
        Some(Fault::ServerError(_)) => Some(Event::Fault5xx),
        Some(Fault::DropBefore | Fault::DropAfter) => Some(Event::FaultDrop),
        Some(Fault::Slow(_)) | None => None,
    };
    if let Some(event) = counted {
        shared.meter().record(second, event);
    }
    match fault {
        Some(Fault::DropBefore) => return Err(Dropped),
        Some(Fault::Throttle { retry_after }) => {
            return Ok(render(throttled(retry_after).freeze(), &sent_ids));
        }
        Some(Fault::ServerError(502)) => {
            return Ok(render(
                Answer {
                    status: 502,
                    headers: Vec::new(),
                    body: None,
                }
                .freeze(),
                &sent_ids,
            ));
        }
        Some(Fault::ServerError(status)) => {
            return Ok(render(
                Answer::error(
                    status,
                    i64::from(status),
                    "The service is temporarily unavailable.",
                )
                .freeze(),
                &sent_ids,
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropAfter) | None => {}
    }
    let limit = shared.config.max_body_bytes;
    let read = tokio::time::timeout(
        shared.config.body_read_timeout,
        read_body(body, &parts.headers, limit),
    )
    .await;
    let body = match read {
        Ok(Ok(body)) => body,
        refused => {
            let answer = match refused {
                Ok(Err(BodyError::TooLarge)) => Answer::error(
                    413,
                    413,
                    format!("The request body is larger than {limit} bytes."),
                ),
                Err(_) => Answer::error(408, 408, "The request body did not arrive in time."),
                _ => Answer::error(400, 400, "The request body could not be read."),
            };
            // The rest of the body is not read: the connection cannot be reused.
            let answer = answer.freeze().with_header("connection", "close");
            return Ok(render(answer, &sent_ids));
        }
    };
    let answer = routing::answer(
        shared,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        &body,
    )
    .await;
    if fault == Some(Fault::DropAfter) {
        return Err(Dropped);
    }
    Ok(render(answer, &sent_ids))
}

/// The wall clock's second, for the traffic counts (0 before 1970: never, in practice).
fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection failed, or the framing was invalid.
    Unreadable,
}

/// Reads a body of at most `limit` bytes. A longer one is read on and thrown away, up to
/// [`DRAIN_LIMIT`] bytes in all, so that the client, still sending, gets the 413 instead of a
/// reset; memory stays within `limit` plus one frame.
async fn read_body(
    mut body: impl hyper::body::Body<Data = Bytes> + Unpin,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared =
        header_text(headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(BodyError::Unreadable);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else {
            kept = Vec::new();
            if seen > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
}

fn render(
    answer: Stored,
    (request_id, correlation_id): &(Option<String>, Option<String>),
) -> Response<Full<Bytes>> {
    let body = answer.body.clone().unwrap_or_default();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if answer.body.is_some() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    for (name, value) in &answer.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    let id = |sent: &Option<String>| {
        sent.as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| {
                HeaderValue::from_str(&Uuid::new_v4().to_string())
                    .expect("a GUID is a header value")
            })
    };
    headers.insert("ms-requestid", id(request_id));
    headers.insert("ms-correlationid", id(correlation_id));
    headers.insert("ms-cv", HeaderValue::from_static("mockCv00000000000.0"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_from_10_ms_doubling_to_1_s() {
        let mut waits = Vec::new();
        let mut last = None;
        for _ in 0..10 {
            let wait = accept_backoff(last);
            waits.push(wait.as_millis());
            last = Some(wait);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[tokio::test]
    async fn a_failing_accept_does_not_spin() {
        use std::sync::atomic::AtomicU64;
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let (stop, stopped) = oneshot::channel();
        let looping = tokio::spawn(accept_loop(
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                // A real listener yields to the runtime between errors; so does this one.
                async {
                    tokio::task::yield_now().await;
                    Err::<(), _>(std::io::Error::other("too many open files"))
                }
            },
            stopped,
            |()| {},
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop.send(());
        looping.await.unwrap();
        // 10 + 20 + 40 + 80 + 160 ms: about 6 attempts in 500 ms. A loop that retries at once
        // makes hundreds of thousands.
        let calls = calls.load(Ordering::SeqCst);
        assert!((1..=20).contains(&calls), "{calls} accept calls in 500 ms");
    }
}
