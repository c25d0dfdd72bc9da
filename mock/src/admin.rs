//! The mock's own pages, for a test or an operator to compare a client's journal with what the
//! mock did: `GET /_mock/ledger` ([`crate::RunningMock::ledger`]) and `GET /_mock/traffic`
//! ([`crate::RunningMock::traffic`]), as JSON.
//!
//! They take the API's bearer token (the static one or an issued access token), since the
//! ledger names customers. They are matched exactly, before anything else, and are not part of
//! the API: no throttle, no fault, and no count (neither [`crate::RunningMock::requests`] nor
//! the traffic), so reading them does not change what they report. Any other path, under
//! `/_mock/` or not, goes to the spec's routing as before (an unknown one answers 404).

use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderMap;

use crate::Shared;
use crate::ledger::{Answer, Stored};
use crate::routing;

/// One of the mock's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    Ledger,
    Traffic,
}

/// The page `path` names (exactly, a trailing slash allowed), if any.
pub(crate) fn page(path: &str) -> Option<Page> {
    match path.strip_suffix('/').unwrap_or(path) {
        "/_mock/ledger" => Some(Page::Ledger),
        "/_mock/traffic" => Some(Page::Traffic),
        _ => None,
    }
}

/// The answer to a request for `page`: 405 for a method other than GET, 401 without the token,
/// else the page.
pub(crate) fn answer(shared: &Shared, method: &Method, headers: &HeaderMap, page: Page) -> Stored {
    if method != Method::GET {
        let mut answer = Answer::error(405, 405, format!("{method} is not allowed here; use GET."));
        answer.headers.push(("allow", "GET".into()));
        return answer.freeze();
    }
    if let Err(refused) = routing::authorize(shared, headers) {
        return refused.freeze();
    }
    let body = match page {
        // The report is built under the lock and written out after it, so a million customers
        // hold up the API only as long as copying their counts takes.
        Page::Ledger => {
            let report = shared.ledger().report();
            Bytes::from(report.to_json())
        }
        Page::Traffic => {
            let traffic = shared.meter().snapshot();
            Bytes::from(traffic.to_json().to_string())
        }
    };
    Stored {
        status: 200,
        headers: Vec::new(),
        body: Some(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_pages_are_the_mocks_own() {
        assert_eq!(page("/_mock/ledger"), Some(Page::Ledger));
        assert_eq!(page("/_mock/traffic/"), Some(Page::Traffic));
        assert_eq!(page("/_mock/ledger/x"), None);
        assert_eq!(page("/_MOCK/ledger"), None);
        assert_eq!(page("/_mock/"), None);
        assert_eq!(page("/v1/productUpgrades"), None);
    }
}
