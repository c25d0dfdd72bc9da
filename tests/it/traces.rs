//! The client's calls are observable: one span per logical call and one per attempt, with the
//! ids and the outcome, and never a token.

use std::time::Duration;

use partner_center_upgrades::RetryPolicy;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::traces::{Spans, field};
use crate::support::{self, CUSTOMER, TOKEN};

#[tokio::test(flavor = "current_thread")]
async fn a_retried_call_is_one_call_span_with_one_span_per_attempt_and_no_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "customerId": CUSTOMER, "productFamily": "Azure", "isEligible": true
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    let client = support::client_with(
        &server.uri(),
        TOKEN,
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        Duration::from_secs(10),
    );
    let (spans, _guard) = Spans::capture();

    let answer = client
        .check_eligibility(&support::azure_request())
        .await
        .unwrap();

    let calls = spans.named("partner_center.call");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(field(call, "operation"), Some("checkEligibility"));
    assert_eq!(field(call, "customer"), Some(CUSTOMER));
    assert_eq!(field(call, "attempts"), Some("2"));
    assert_eq!(field(call, "outcome"), Some("ok"));
    let sent_id = answer.value().customer_id.to_string();
    assert_eq!(sent_id, CUSTOMER);
    assert!(field(call, "ms_request_id").is_some() && field(call, "ms_correlation_id").is_some());
    let attempts = spans.named("partner_center.attempt");
    assert_eq!(attempts.len(), 2);
    assert_eq!(field(&attempts[0], "attempt"), Some("1"));
    assert_eq!(field(&attempts[0], "status"), Some("503"));
    assert!(field(&attempts[0], "retry_in_ms").is_some());
    assert_eq!(field(&attempts[1], "attempt"), Some("2"));
    assert_eq!(field(&attempts[1], "status"), Some("200"));
    let everything = format!("{:?}", spans.0.lock().unwrap());
    assert!(!everything.contains(TOKEN), "a trace holds the token");
}
