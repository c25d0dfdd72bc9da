//! `cargo bench --bench client`: the client's per-call overhead against a hand-written reqwest
//! call to the same loopback server with the same payload (target: ratio at most 1.10), and the
//! throughput of concurrent eligibility checks against the mock at concurrency 1, 8 and 64.
//! Figures, machine and command: benches/README.md.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use partner_center_upgrades::{
    BaseUrl, Client, CorrelationId, CustomerId, RequestId, RetryPolicy, StaticToken, UpgradeRequest,
};
use tokio::net::TcpListener;

const TOKEN: &str = "bench-token";
const CUSTOMER: &str = "4c721420-72ad-4708-a0a7-371a2f7b0969";
const ANSWER: &str = r#"{"customerId":"4c721420-72ad-4708-a0a7-371a2f7b0969","productFamily":"Azure","isEligible":true}"#;

/// A loopback server that reads the request and answers the same eligibility body every time,
/// so the benchmark measures the clients, not the server.
async fn fixed_server() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = request.into_body().collect().await;
                        let mut response =
                            hyper::Response::new(Full::new(Bytes::from_static(ANSWER.as_bytes())));
                        response.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn client(url: &str, token: &str) -> Client {
    Client::builder(
        BaseUrl::parse(url).unwrap(),
        StaticToken::new(token).unwrap(),
    )
    .locale("en-US")
    .application("bench")
    .retry(RetryPolicy::none())
    .build()
    .unwrap()
}

/// What a careful hand-written call sends and reads: the same headers and body, and the answer
/// parsed into a struct.
#[derive(serde::Deserialize)]
#[allow(dead_code, reason = "parsed for a fair comparison, not read")]
struct HandEligibility {
    #[serde(rename = "customerId")]
    customer_id: uuid::Uuid,
    #[serde(rename = "productFamily")]
    product_family: String,
    #[serde(rename = "isEligible")]
    is_eligible: bool,
}

/// The request body, serialized on every call as any real caller would.
#[derive(serde::Serialize)]
struct HandRequest<'a> {
    #[serde(rename = "customerId")]
    customer_id: &'a str,
    #[serde(rename = "productFamily")]
    product_family: &'a str,
}

async fn hand_written(http: &reqwest::Client, url: &str) -> HandEligibility {
    let response = http
        .post(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("ms-requestid", RequestId::new_random().to_string())
        .header("ms-correlationid", CorrelationId::new_random().to_string())
        .header("x-locale", "en-US")
        .header("ms-partnercenter-application", "bench")
        .body(
            serde_json::to_vec(&HandRequest {
                customer_id: CUSTOMER,
                product_family: "Azure",
            })
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(fixed_server());
    let ours = client(&url, TOKEN);
    // The same explicit TLS setup as the client's (no process-wide provider), for a fair
    // comparison; the fixed server is plain http on loopback.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .unwrap();
    let request = UpgradeRequest::azure(CustomerId::parse(CUSTOMER).unwrap());
    let endpoint = format!("{url}/v1/productUpgrades/eligibility");

    let mut group = c.benchmark_group("per_call_overhead");
    group.bench_function("hand_written_reqwest", |b| {
        b.to_async(&runtime).iter(|| hand_written(&http, &endpoint))
    });
    group.bench_function("partner_center_upgrades_client", |b| {
        b.to_async(&runtime)
            .iter(|| async { ours.check_eligibility(&request).await.unwrap().into_inner() })
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime
        .block_on(partner_center_mock::start(
            partner_center_mock::MockConfig::default(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .unwrap();
    let ours = Arc::new(client(&mock.url(), mock.token()));
    const CALLS: usize = 256;
    let mut group = c.benchmark_group("concurrent_eligibility_against_the_mock");
    group.throughput(Throughput::Elements(CALLS as u64));
    group.sample_size(20);
    for concurrency in [1usize, 8, 64] {
        group.bench_function(format!("concurrency_{concurrency}"), |b| {
            b.to_async(&runtime).iter(|| {
                let ours = Arc::clone(&ours);
                async move {
                    futures_util::stream::iter(0..CALLS)
                        .map(|_| {
                            let ours = Arc::clone(&ours);
                            async move {
                                let request = UpgradeRequest::azure(CustomerId::from_uuid(
                                    uuid::Uuid::new_v4(),
                                ));
                                ours.check_eligibility(&request).await.unwrap();
                            }
                        })
                        .buffer_unordered(concurrency)
                        .collect::<Vec<()>>()
                        .await
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, overhead, throughput);
criterion_main!(benches);
