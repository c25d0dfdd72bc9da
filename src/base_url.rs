//! Where the API lives: the documented clouds and validated custom base URLs.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// A Partner Center cloud in which the API is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cloud {
    /// Global Partner Center, `https://api.partnercenter.microsoft.com`. Product upgrades are
    /// documented for this cloud.
    Global,
    /// Partner Center operated by 21Vianet, `https://partner.partnercenterapi.microsoftonline.cn`.
    China21Vianet,
}

impl Cloud {
    /// The cloud's API base URL, without a trailing slash.
    pub const fn url(self) -> &'static str {
        match self {
            Cloud::Global => "https://api.partnercenter.microsoft.com",
            Cloud::China21Vianet => "https://partner.partnercenterapi.microsoftonline.cn",
        }
    }

    /// The cloud's base URL as a [`BaseUrl`].
    pub fn base_url(self) -> BaseUrl {
        BaseUrl::parse(self.url()).expect("the documented clouds are valid base URLs")
    }
}

/// Why a base URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("base URL {value:?} is refused: {reason}")]
pub struct BaseUrlError {
    value: String,
    reason: &'static str,
}

/// A validated API base URL: `https`, or plain `http` to a loopback address only; no user name,
/// password, query or fragment; no trailing slash and no `/v1` (the client adds the paths).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    url: Url,
    text: String,
    origin: std::sync::Arc<Origin>,
}

/// The URL text with any `user:password@` part replaced, so that an error never echoes a
/// password.
fn without_userinfo(value: &str) -> String {
    let Some(start) = value.find("://").map(|i| i + 3) else {
        return value.to_owned();
    };
    // A password may hold '/', '?' or '#' (then the URL does not even parse): hide everything
    // up to the last '@' anywhere after the scheme.
    match value[start..].rfind('@') {
        Some(at) => format!(
            "{}<userinfo removed>{}",
            &value[..start],
            &value[start + at..]
        ),
        None => value.to_owned(),
    }
}

impl BaseUrl {
    /// Parses and validates a base URL. A trailing slash is dropped.
    pub fn parse(value: &str) -> Result<Self, BaseUrlError> {
        let refuse = |reason| BaseUrlError {
            value: without_userinfo(value).chars().take(200).collect(),
            reason,
        };
        let url = Url::parse(value.trim()).map_err(|_| refuse("it is not an absolute URL"))?;
        let loopback = match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => return Err(refuse("it has no host")),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(refuse(
                    "plain http would send the access token unencrypted; use https (http is allowed only for loopback addresses)",
                ));
            }
            _ => return Err(refuse("the scheme must be https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it carries a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("it has a query or fragment"));
        }
        let text = url.as_str().trim_end_matches('/').to_owned();
        if text.to_ascii_lowercase().ends_with("/v1") {
            return Err(refuse("leave out /v1: the client adds the API's paths"));
        }
        let origin = std::sync::Arc::new(Origin::of(&url));
        Ok(Self { url, text, origin })
    }

    /// True for a loopback host (`localhost`, 127.0.0.0/8, `::1`): the only hosts plain http may
    /// go to, and hosts no proxy is ever used for.
    pub fn is_loopback(&self) -> bool {
        match self.url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
    }

    /// The base URL without a trailing slash, ready to have `/v1/...` appended.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Scheme, host and port: the only origin the access token is ever sent to.
    pub(crate) fn origin(&self) -> &std::sync::Arc<Origin> {
        &self.origin
    }
}

impl From<Cloud> for BaseUrl {
    fn from(cloud: Cloud) -> Self {
        cloud.base_url()
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = BaseUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({})", self.text)
    }
}

/// Scheme, host and port, compared without allocating (a call checks it once).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(crate) fn of(url: &url::Url) -> Self {
        Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str().unwrap_or_default().to_owned(),
            port: url.port_or_known_default(),
        }
    }

    pub(crate) fn matches(&self, url: &url::Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_clouds_are_valid() {
        assert_eq!(
            Cloud::Global.base_url().as_str(),
            "https://api.partnercenter.microsoft.com"
        );
        assert_eq!(
            Cloud::China21Vianet.base_url().as_str(),
            "https://partner.partnercenterapi.microsoftonline.cn"
        );
    }

    #[test]
    fn trailing_slashes_are_dropped_and_a_path_prefix_is_kept() {
        for (input, expected) in [
            (
                "https://api.partnercenter.microsoft.com/",
                "https://api.partnercenter.microsoft.com",
            ),
            (
                "https://proxy.example/partner-center//",
                "https://proxy.example/partner-center",
            ),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("http://localhost:9", "http://localhost:9"),
            ("http://[::1]:9/", "http://[::1]:9"),
            ("http://127.1.2.3", "http://127.1.2.3"),
        ] {
            assert_eq!(BaseUrl::parse(input).unwrap().as_str(), expected, "{input}");
        }
    }

    #[test]
    fn unsafe_or_unusable_urls_are_refused_with_a_reason() {
        for (input, reason) in [
            ("http://api.partnercenter.microsoft.com", "unencrypted"),
            ("http://10.0.0.1", "unencrypted"),
            ("ftp://127.0.0.1", "scheme"),
            ("api.partnercenter.microsoft.com", "absolute"),
            (
                "https://user:pw@api.partnercenter.microsoft.com",
                "password",
            ),
            ("https://api.partnercenter.microsoft.com/?x=1", "query"),
            ("https://api.partnercenter.microsoft.com/v1/", "/v1"),
            ("", "absolute"),
        ] {
            let err = BaseUrl::parse(input).unwrap_err();
            assert!(err.to_string().contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_never_echoed() {
        for input in [
            "https://user:hunter2secret@api.partnercenter.microsoft.com",
            "http://user:hunter2secret@10.0.0.1/x",
            "https://:hunter2secret@127.0.0.1:8080",
            "https://a@b:hunter2secret@127.0.0.1",
            "https://u:hunter2#secret@127.0.0.1",
            "https://u:hunter2/secret@127.0.0.1",
        ] {
            let err = BaseUrl::parse(input).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2secret"), "{shown}");
        }
    }
}
