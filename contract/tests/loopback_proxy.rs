//! A loopback target is never reached through a proxy (issue 9, item 3). Its own test binary:
//! it sets the proxy variables of its process, which no other test may see.

mod support;

use std::time::Duration;

use partner_center_contract::verify::{self, Options, Target};

#[tokio::test]
async fn a_loopback_target_is_never_reached_through_a_proxy() {
    let proxy = support::serve(|stream| {
        support::write(
            stream,
            b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
    });
    let server = support::serve(|stream| {
        support::write(
            stream,
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        )
    });
    // SAFETY: this binary's only test, and nothing else runs yet: no thread reads the
    // environment while it changes.
    unsafe {
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::set_var(name, proxy.url());
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let target = Target {
        base_url: server.url(),
        token: "verifier-test-token".into(),
    };
    let options = Options {
        cases: 3,
        concurrency: 1,
        timeout: Duration::from_secs(30),
        ..Options::default()
    };

    verify::run(partner_center_contract::spec(), target, options)
        .await
        .unwrap();

    assert_eq!(proxy.connections(), 0, "the token went through the proxy");
    assert!(server.connections() >= 3);
}
