//! The mock's limits: its default token is public, so any local process can
//! reach it, and nothing it is sent may grow it without bound or hold it open forever. Memory is
//! checked with the mock's own accounting (`retained_bytes`, `replay_bytes`), connections with
//! its gauge (`open_connections`). Time bounds are generous: a closed connection must be seen
//! closed within 10 s, however slow the machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use partner_center_mock::{MockConfig, RunningMock};
use serde_json::{Value, json};
use uuid::Uuid;

/// How long a test waits for something that should happen much sooner.
const GENEROUS: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    crate::support::raw_http_builder()
        .timeout(GENEROUS)
        .build()
        .unwrap()
}

/// Sends `body` to `path` with the mock's token and `request_id`; the status and the JSON body.
async fn post(
    http: &reqwest::Client,
    mock: &RunningMock,
    path: &str,
    request_id: Uuid,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Option<Value>) {
    let response = http
        .post(format!("{}{path}", mock.url()))
        .bearer_auth(mock.token())
        .header("ms-requestid", request_id.to_string())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).ok())
}

/// A create body for `customer`, padded (the spec allows extra properties) to `size` bytes.
/// Written by hand: serde_json's generic serialiser, built unoptimised in the tests, takes tens
/// of milliseconds a megabyte.
fn padded_body(customer: Uuid, size: usize) -> Vec<u8> {
    let text = |padding: &str| {
        format!(r#"{{"customerId":"{customer}","productFamily":"Azure","padding":"{padding}"}}"#)
    };
    let padding = size.saturating_sub(text("").len());
    text(&"x".repeat(padding)).into_bytes()
}

fn body(customer: Uuid) -> Vec<u8> {
    padded_body(customer, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_one_megabyte_creates_are_refused_with_413_and_leave_nothing_behind() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let http = http();

    for _ in 0..300 {
        let (status, headers, answer) = post(
            &http,
            &mock,
            "/v1/productUpgrades",
            Uuid::new_v4(),
            padded_body(Uuid::new_v4(), 1_000_000),
        )
        .await;
        assert_eq!(status, 413, "{answer:?}");
        let answer = answer.expect("a 413 carries the Partner Center error body");
        assert_eq!(answer["code"], json!(413), "{answer}");
        assert!(answer["description"].is_string(), "{answer}");
        assert!(headers.get("ms-requestid").is_some());
    }
    // Stated bound: the mock keeps under 64 KiB for 300 MB of refused bodies (nothing, in fact).
    assert!(
        mock.retained_bytes() < 64 * 1024,
        "{}",
        mock.retained_bytes()
    );
    assert_eq!(mock.upgrades_created(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_under_the_limit_are_answered_and_only_a_fingerprint_of_them_is_kept() {
    let mock = crate::support::start_mock(MockConfig::default()).await;
    let http = http();
    let size = 60 * 1024;

    let mut first = None;
    for _ in 0..300 {
        let (customer, id) = (Uuid::new_v4(), Uuid::new_v4());
        let (status, headers, _) = post(
            &http,
            &mock,
            "/v1/productUpgrades",
            id,
            padded_body(customer, size),
        )
        .await;
        assert_eq!(status, 202);
        first.get_or_insert((customer, id, headers["location"].clone()));
    }
    // 300 x 60 KiB (18 MiB) were accepted; keeping them would retain at least that. Stated bound:
    // under 1 KiB an upgrade, answer and upgrade record together.
    assert!(
        mock.retained_bytes() < 300 * 1024,
        "{} bytes retained",
        mock.retained_bytes()
    );
    // The fingerprint still tells a replay from another request under the same id.
    let (customer, id, location) = first.unwrap();
    let replay = post(
        &http,
        &mock,
        "/v1/productUpgrades",
        id,
        padded_body(customer, size),
    )
    .await;
    assert_eq!((replay.0, &replay.1["location"]), (202, &location));
    let other = post(
        &http,
        &mock,
        "/v1/productUpgrades",
        id,
        padded_body(customer, size - 1),
    )
    .await;
    assert_eq!(
        other.0, 409,
        "another request under a reused id is not a replay"
    );
    assert_eq!(mock.upgrades_created(), 300);
}

#[tokio::test]
async fn the_replay_cache_forgets_its_oldest_answers_past_its_byte_budget() {
    let budget = 8 * 1024;
    let mock = crate::support::start_mock(MockConfig {
        replay_budget_bytes: budget,
        ..MockConfig::default()
    })
    .await;
    let http = http();

    let mut creates = Vec::new();
    for _ in 0..200 {
        let (customer, id) = (Uuid::new_v4(), Uuid::new_v4());
        let (status, headers, _) =
            post(&http, &mock, "/v1/productUpgrades", id, body(customer)).await;
        assert_eq!(status, 202);
        creates.push((customer, id, headers["location"].clone()));
        assert!(mock.replay_bytes() <= budget, "{}", mock.replay_bytes());
    }
    assert!(mock.replay_bytes() > budget / 2, "{}", mock.replay_bytes());
    let (customer, id, location) = creates.last().unwrap().clone();
    let latest = post(&http, &mock, "/v1/productUpgrades", id, body(customer)).await;
    assert_eq!((latest.0, &latest.1["location"]), (202, &location));
    // The oldest answer was forgotten: its replay is a new create, refused while the upgrade it
    // started is in progress. It never starts a second upgrade.
    let (customer, id, _) = creates[0].clone();
    let oldest = post(&http, &mock, "/v1/productUpgrades", id, body(customer)).await;
    assert_eq!(oldest.0, 409, "{:?}", oldest.2);
    assert_eq!(mock.upgrades_of(customer), 1);
}

#[tokio::test]
async fn past_the_upgrade_cap_the_oldest_finished_upgrade_is_forgotten_or_create_answers_503() {
    let mock = crate::support::start_mock(MockConfig {
        max_upgrades: 3,
        polls_to_complete: 1,
        ..MockConfig::default()
    })
    .await;
    let http = http();
    let create = |customer| {
        let http = http.clone();
        let url = mock.url();
        let token = mock.token().to_owned();
        async move {
            let response = http
                .post(format!("{url}/v1/productUpgrades"))
                .bearer_auth(token)
                .header("ms-requestid", Uuid::new_v4().to_string())
                .json(&json!({ "customerId": customer, "productFamily": "Azure" }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.json::<Value>().await.ok())
        }
    };
    let customers: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let mut upgrades = Vec::new();
    for customer in &customers[..3] {
        let (status, headers, _) = create(*customer).await;
        assert_eq!(status, 202);
        let location = headers["location"].to_str().unwrap().to_owned();
        upgrades.push(location.rsplit('/').next().unwrap().to_owned());
    }

    let (status, headers, answer) = create(customers[3]).await;
    assert_eq!(status, 503, "all three upgrades are in progress");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(answer.unwrap()["code"], json!(503));
    assert_eq!(mock.upgrades_held(), 3);

    let path = format!("/v1/productUpgrades/{}/status", upgrades[0]);
    let (status, _, answer) = post(&http, &mock, &path, Uuid::new_v4(), body(customers[0])).await;
    assert_eq!(
        (status, answer.unwrap()["status"].clone()),
        (200, json!("Completed"))
    );

    // The 503 was not remembered; a new create takes the finished upgrade's place.
    let (status, _, _) = create(customers[3]).await;
    assert_eq!(status, 202);
    assert_eq!(mock.upgrades_held(), 3);
    let (status, _, _) = post(&http, &mock, &path, Uuid::new_v4(), body(customers[0])).await;
    assert_eq!(status, 404, "the forgotten upgrade is unknown");
    let (_, _, eligibility) = post(
        &http,
        &mock,
        "/v1/productUpgrades/eligibility",
        Uuid::new_v4(),
        body(customers[0]),
    )
    .await;
    let eligibility = eligibility.unwrap();
    assert_eq!(eligibility["isEligible"], json!(true), "{eligibility}");
    assert!(eligibility.get("upgradeId").is_none(), "{eligibility}");
}

/// Connects and sends `sent` (part of a request, or nothing).
fn half_sent(mock: &RunningMock, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(mock.addr()).unwrap();
    stream.write_all(sent).unwrap();
    stream
}

/// Whether the mock closes `stream` within `GENEROUS`, reading (and returning) whatever it
/// answers first.
fn closed_by_the_mock(mut stream: TcpStream) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + GENEROUS;
    let mut answered = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, answered);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return (true, answered),
            Ok(n) => answered.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return (true, answered);
            }
            Err(_) => return (false, answered),
        }
    }
}

/// Waits (up to `GENEROUS`) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + GENEROUS;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

const HALF_A_REQUEST: &[u8] = b"POST /v1/productUpgrades HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once_and_the_cap_is_never_exceeded() {
    let cap = 8;
    let mock = crate::support::start_mock(MockConfig {
        max_connections: cap,
        header_read_timeout: Duration::from_secs(120),
        ..MockConfig::default()
    })
    .await;

    let held: Vec<TcpStream> = (0..cap).map(|_| half_sent(&mock, HALF_A_REQUEST)).collect();
    assert!(
        eventually(|| mock.open_connections() == cap).await,
        "{} open",
        mock.open_connections()
    );
    let extra: Vec<TcpStream> = (0..4 * cap)
        .map(|_| half_sent(&mock, HALF_A_REQUEST))
        .collect();
    let closed = tokio::task::spawn_blocking(move || {
        extra
            .into_iter()
            .filter(|s| closed_by_the_mock(s.try_clone().unwrap()).0)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 4 * cap, "every connection beyond the cap is closed");
    assert_eq!(mock.open_connections(), cap);

    // Closing the held ones frees their places.
    drop(held);
    assert!(
        eventually(|| mock.open_connections() == 0).await,
        "{} open",
        mock.open_connections()
    );
    let (status, _, _) = post(
        &http(),
        &mock,
        "/v1/productUpgrades/eligibility",
        Uuid::new_v4(),
        body(Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_and_an_idle_connection_are_closed_after_the_header_timeout() {
    let mock = crate::support::start_mock(MockConfig {
        header_read_timeout: Duration::from_millis(200),
        ..MockConfig::default()
    })
    .await;

    let streams = vec![half_sent(&mock, HALF_A_REQUEST), half_sent(&mock, b"")];
    let outcomes = tokio::task::spawn_blocking(move || {
        streams
            .into_iter()
            .map(closed_by_the_mock)
            .map(|(closed, _)| closed)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(outcomes, [true, true]);
    assert!(eventually(|| mock.open_connections() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_answers_408_and_the_connection_is_closed() {
    let mock = crate::support::start_mock(MockConfig {
        body_read_timeout: Duration::from_millis(200),
        ..MockConfig::default()
    })
    .await;
    let head = format!(
        "POST /v1/productUpgrades HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"customerId\"",
        mock.token()
    );
    let stream = half_sent(&mock, head.as_bytes());
    let (closed, answered) = tokio::task::spawn_blocking(move || closed_by_the_mock(stream))
        .await
        .unwrap();
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_at_the_end_of_its_lifetime() {
    let mock = crate::support::start_mock(MockConfig {
        header_read_timeout: Duration::from_secs(120),
        connection_timeout: Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await;
    let stream = half_sent(&mock, b"");
    let (closed, _) = tokio::task::spawn_blocking(move || closed_by_the_mock(stream))
        .await
        .unwrap();
    assert!(closed);
}
