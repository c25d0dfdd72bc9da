//! What the contract verifier reads from a server (issue 9, item 4): never more than 4 MiB of an
//! answer, never a redirect.

mod support;

use std::time::Duration;

use partner_center_contract::verify::{self, Options, Target};

fn options(cases: usize) -> Options {
    Options {
        cases,
        concurrency: 1,
        // Generous: an answer that is stopped at 4 MiB takes milliseconds.
        timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

fn target(server: &support::Server) -> Target {
    Target {
        base_url: server.url(),
        token: "verifier-test-token".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_a_named_failure_and_is_not_read_past_4_mib() {
    let server = support::serve(|stream| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut written = support::write(stream, head);
        let chunk = [
            format!("{:x}\r\n", 64 * 1024).into_bytes(),
            vec![b' '; 64 * 1024],
            b"\r\n".to_vec(),
        ]
        .concat();
        // Until the client goes away.
        loop {
            match support::write(stream, &chunk) {
                0 => return written,
                n => written += n,
            }
        }
    });

    let verification = verify::run(partner_center_contract::spec(), target(&server), options(3))
        .await
        .unwrap();

    assert_eq!(verification.cases.len(), 3);
    for case in &verification.cases {
        assert!(
            case.failures
                .iter()
                .any(|f| f.contains("answer longer than 4 MiB")),
            "{}: {:?}",
            case.name,
            case.failures
        );
    }
    // The server stops when the verifier hangs up: it wrote the 4 MiB that were read, plus what
    // the sockets' buffers held. Reading on would have taken gigabytes within the timeout.
    std::thread::sleep(Duration::from_millis(200));
    let written = server.written.lock().unwrap().clone();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written.iter().all(|&n| n < 64 << 20), "{written:?}");
}

#[tokio::test]
async fn a_declared_length_over_4_mib_is_a_failure_without_reading() {
    let server = support::serve(|stream| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            5u64 << 20
        );
        let n = support::write(stream, head.as_bytes());
        // Then nothing: a reader waiting for the body would wait for the timeout.
        std::thread::sleep(Duration::from_secs(30));
        n
    });

    let started = std::time::Instant::now();
    let verification = verify::run(partner_center_contract::spec(), target(&server), options(1))
        .await
        .unwrap();

    let failures = &verification.cases[0].failures;
    assert!(
        failures
            .iter()
            .any(|f| f.contains("answer longer than 4 MiB (Content-Length 5242880)")),
        "{failures:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = support::serve(|stream| {
        support::write(
            stream,
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        )
    });
    let location = format!("{}/v1/productUpgrades/eligibility", elsewhere.url());
    let server = support::serve(move |stream| {
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        support::write(stream, answer.as_bytes())
    });

    let verification = verify::run(partner_center_contract::spec(), target(&server), options(6))
        .await
        .unwrap();

    assert_eq!(elsewhere.connections(), 0, "the token followed a redirect");
    assert!(server.connections() >= 6);
    // A 307 is no status the spec declares: every case fails, naming it.
    assert!(
        verification
            .cases
            .iter()
            .all(|c| c.failures.iter().any(|f| f.contains("307"))),
        "{:?}",
        verification.cases
    );
}
