//! The client's calls are observable: one span per logical call and one per attempt, with the
//! ids and the outcome, and never a token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use partner_center_upgrades::{BaseUrl, Client, RetryPolicy, StaticToken};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, CUSTOMER, TOKEN};

/// A span's id, name, and the fields it was given or recorded later (events have id 0).
type Captured = (u64, String, Vec<(String, String)>);

/// Every span and event seen.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0.lock().unwrap().push((id.into_u64(), name, fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(span) = spans.iter_mut().find(|s| s.0 == id.into_u64()) {
            values.record(&mut Fields(&mut span.2));
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push((0, "event".into(), fields));
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.1 == name)
            .map(|s| s.2.clone())
            .collect()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

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
    let client = Client::builder(
        BaseUrl::parse(&server.uri()).unwrap(),
        StaticToken::new(TOKEN).unwrap(),
    )
    .retry(RetryPolicy {
        base_delay: Duration::from_millis(1),
        ..RetryPolicy::default()
    })
    .build()
    .unwrap();
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

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
