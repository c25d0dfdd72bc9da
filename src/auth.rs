//! Access tokens and where they come from.
//!
//! A token is a secret: [`AccessToken`] has no `Display`, its `Debug` prints `<redacted>`, and the
//! header it becomes is marked sensitive. The client fetches a token from a [`TokenProvider`]
//! before every call, so a provider that refreshes tokens keeps long polls working.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// An OAuth 2.0 bearer access token for Partner Center (App+User).
///
/// Holds the ready `Authorization` value (marked sensitive), so a call does not format it again.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(reqwest::header::HeaderValue);

impl AccessToken {
    /// Checks that `token` can be sent as a bearer token (RFC 6750: letters, digits and
    /// `-._~+/`, optionally followed by `=` padding) and wraps it. Pass the token alone, without
    /// the `Bearer ` prefix.
    pub fn new(token: impl Into<String>) -> Result<Self, AuthError> {
        let token = token.into();
        let trimmed = token.trim();
        if trimmed.is_empty() {
            return Err(AuthError::new("the access token is empty"));
        }
        // Compared by characters, not bytes: a token pasted from a web page may have a
        // multi-byte character (a non-breaking space) where the space would be.
        let mut chars = trimmed.chars();
        let scheme: String = chars.by_ref().take(6).collect();
        if scheme.eq_ignore_ascii_case("bearer") && chars.next().is_some_and(char::is_whitespace) {
            return Err(AuthError::new(
                "the access token starts with \"Bearer \": pass the token alone, the client adds the scheme",
            ));
        }
        let body = trimmed.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(AuthError::new(
                "the access token has characters a bearer token cannot contain (spaces, quotes, control or non-ASCII characters)",
            ));
        }
        let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {trimmed}"))
            .map_err(|_| AuthError::new("the access token cannot be sent as a header"))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }

    /// The token itself, for tools that must read its claims (`pc-upgrade whoami`). Never
    /// print it.
    pub fn expose(&self) -> &str {
        let value = self.0.to_str().unwrap_or_default();
        value.strip_prefix("Bearer ").unwrap_or(value)
    }

    /// The `Authorization` header value for this token, marked sensitive so that `http` and
    /// `reqwest` never print it.
    pub(crate) fn header_value(&self) -> &reqwest::header::HeaderValue {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    message: String,
    sign_in_again: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AuthError {
    /// An error with a message. The message must not contain the token or any other secret.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            sign_in_again: false,
            source: None,
        }
    }

    /// The refresh token can no longer be used (expired, revoked, multi-factor sign-in needed):
    /// only a new sign-in helps, so it is never retried.
    pub fn sign_in_again(message: impl Into<String>) -> Self {
        Self {
            sign_in_again: true,
            ..Self::new(message)
        }
    }

    /// True when only a new sign-in helps.
    pub fn is_sign_in_again(&self) -> bool {
        self.sign_in_again
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(message)
    }

    pub(crate) fn unavailable_message(message: impl Into<String>) -> Self {
        Self::new(message)
    }

    pub(crate) fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::with_source(message, source)
    }

    /// The message and the cause, for the call's [`crate::Error`] (its detail and its source).
    pub(crate) fn into_parts(
        self,
    ) -> (
        String,
        bool,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ) {
        (self.message, self.sign_in_again, self.source)
    }

    /// An error with a message and the underlying cause (for example an HTTP error from the
    /// identity provider). Neither may contain a secret.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            sign_in_again: false,
            source: Some(Box::new(source)),
        }
    }
}

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, AuthError>> + Send + 'a>>;

/// Supplies access tokens; the client asks before every call.
///
/// Implement it to redeem a refresh token from the secure application model, read a token from a
/// vault, or cache and renew tokens. [`StaticToken`] serves one fixed token.
pub trait TokenProvider: Send + Sync {
    /// Returns a token that is valid now.
    fn token(&self) -> TokenFuture<'_>;

    /// Forgets the current token because Partner Center said it expired. Returns true when
    /// the next [`TokenProvider::token`] gets a new one (then the call is retried once); the
    /// default, for providers that cannot renew, returns false.
    fn invalidate(&self) -> bool {
        false
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for Box<T> {
    fn token(&self) -> TokenFuture<'_> {
        (**self).token()
    }
    fn invalidate(&self) -> bool {
        (**self).invalidate()
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for std::sync::Arc<T> {
    fn token(&self) -> TokenFuture<'_> {
        (**self).token()
    }
    fn invalidate(&self) -> bool {
        (**self).invalidate()
    }
}

/// A [`TokenProvider`] that always returns the same token, for scripts and tests.
#[derive(Debug, Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// Validates `token` (see [`AccessToken::new`]) and serves it for every call.
    pub fn new(token: impl Into<String>) -> Result<Self, AuthError> {
        AccessToken::new(token).map(Self)
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_shaped_token_is_accepted_and_never_printed() {
        let token = AccessToken::new("eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl-_==").unwrap();
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        let provider = StaticToken::new("eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl").unwrap();
        assert!(!format!("{provider:?}").contains("eyJ0eXAi"));
        let header = token.header_value();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("eyJ0eXAi"));
    }

    #[test]
    fn unusable_tokens_are_refused_with_a_message_that_does_not_echo_them() {
        for bad in [
            "",
            "   ",
            "Bearer abc.def",
            "abc def",
            "abc\ndef",
            "tök",
            "\"abc\"",
            "===",
            "Bearer\u{a0}abc.def",
            "bearer\tabc.def",
            "Bearé abc",
            "ü",
        ] {
            let err = AccessToken::new(bad).unwrap_err();
            if !bad.trim().is_empty() {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn no_text_a_user_can_paste_panics_or_reaches_a_message(
            prefix in proptest::sample::select(vec!["", "Bearer ", "Bearer\u{a0}", "bearer\t", "BEARER", " \u{a0}"]),
            token in "\\PC{12,40}",
        ) {
            let input = format!("{prefix}{token}");
            let shown = match AccessToken::new(input.clone()) {
                Ok(token) => format!("{token:?} {:?}", StaticToken(token.clone())),
                Err(e) => format!("{e} {e:?}"),
            };
            proptest::prop_assert!(!shown.contains(token.trim()), "{shown}");
        }
    }
}
