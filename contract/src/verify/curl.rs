//! Reproducing a failed case: every request a case sends is kept as it went out
//! ([`SentRequest`]: method, URL, every header, the body's bytes, and which bearer token, never
//! the token itself), and [`SentRequest::curl`] renders it as a POSIX shell `curl` command that
//! sends the same request again, the token read from an environment variable. [`redact`] keeps
//! the token, and anything shaped like a JSON Web Token, out of whatever a case reports.
//!
//! The command is for `sh` (and bash, zsh, dash): every word the request supplies is single
//! quoted (`'` written `'\''`), so nothing in it expands; only the `Authorization` header is in
//! double quotes, around the variable alone. A body that is not printable UTF-8 (control bytes,
//! invalid UTF-8, invisible format characters) or that starts with `@` (which `--data-binary`
//! would read as a file name) is piped in with `printf` and octal escapes (`\ooo`, POSIX
//! `printf`), read by `--data-binary @-`.

use super::transport::check_base_url;

/// What stands in for anything secret.
pub const REDACTED: &str = "<redacted>";

/// Which bearer token a request carried: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// No `Authorization` header.
    Missing,
    /// `Authorization: Bearer <the target's token>`.
    Token,
    /// `Authorization: Bearer <the target's token><suffix>`: a token the server did not issue.
    TokenWithSuffix(String),
}

/// One request as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// Upper case, e.g. `POST`.
    pub method: String,
    /// The full URL, as sent.
    pub url: String,
    /// The bearer token it carried.
    pub bearer: Bearer,
    /// Every other header set on the request, in the order sent, names in lower case. The
    /// transport adds `Host` and `Content-Length` (curl computes the same ones) and nothing else.
    pub headers: Vec<(String, String)>,
    /// The body's bytes, if it had a body.
    pub body: Option<Vec<u8>>,
}

/// One request of a case and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request, as sent.
    pub request: SentRequest,
    /// The answer's status; `None` when no whole answer came.
    pub status: Option<u16>,
    /// Whether this answer (or the case's check right after it) failed the case.
    pub failed: bool,
}

/// Bodies longer than this get `-H 'Expect:'`: curl would otherwise ask for `100 Continue`
/// first, which the verifier never does.
const CURL_EXPECT_THRESHOLD: usize = 1024;

impl SentRequest {
    /// The request as a POSIX shell `curl` command, over several lines joined by `\`: `-sS -i`,
    /// the method, the URL, every header, and the body. The bearer token is
    /// `"$token_variable"`; curl's own `User-Agent` is removed (the verifier sends none), a
    /// loopback target is reached without a proxy (`--noproxy '*'`), and https uses HTTP/1.1, as
    /// the verifier does.
    ///
    /// # Panics
    ///
    /// If `token_variable` is not a shell variable name.
    pub fn curl(&self, token_variable: &str) -> String {
        assert!(
            is_variable_name(token_variable),
            "{token_variable:?} is not a shell variable name"
        );
        let body = self.body.as_deref().map(BodyWords::of);
        let mut first = String::new();
        if let Some(BodyWords::Piped(printf)) = &body {
            first.push_str(&format!("printf {printf} | "));
        }
        first.push_str("curl -sS -i");
        let url = self.url.trim();
        if url.to_ascii_lowercase().starts_with("https:") {
            first.push_str(" --http1.1");
        }
        if check_base_url(url) == Ok(true) {
            first.push_str(" --noproxy '*'");
        }
        if url.contains(['[', ']', '{', '}']) {
            // Not curl's URL globbing: the URL is sent as it is.
            first.push_str(" -g");
        }
        first.push_str(&format!(" -X {} {}", word(&self.method), quoted(url)));
        let mut lines = vec![first];
        match &self.bearer {
            Bearer::Missing => {}
            Bearer::Token => lines.push(format!("-H \"Authorization: Bearer ${token_variable}\"")),
            Bearer::TokenWithSuffix(suffix) => lines.push(format!(
                "-H \"Authorization: Bearer ${{{token_variable}}}\"{}",
                quoted(suffix)
            )),
        }
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        {
            lines.push("-H 'User-Agent:'".into());
        }
        for (name, value) in &self.headers {
            lines.push(format!("-H {}", quoted(&format!("{name}: {value}"))));
        }
        if let Some(body) = &self.body
            && body.len() > CURL_EXPECT_THRESHOLD
            && !self
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("expect"))
        {
            lines.push("-H 'Expect:'".into());
        }
        match body {
            None => {}
            Some(BodyWords::Inline(text)) => lines.push(format!("--data-binary {text}")),
            Some(BodyWords::Piped(_)) => lines.push("--data-binary @-".into()),
        }
        lines.join(" \\\n  ")
    }

    /// The request with the token (and token-shaped text) taken out of every part of it.
    pub(super) fn redacted(mut self, token: &str) -> Self {
        self.url = redact(&self.url, token);
        for (_, value) in &mut self.headers {
            *value = redact(value, token);
        }
        if let Bearer::TokenWithSuffix(suffix) = &mut self.bearer {
            *suffix = redact(suffix, token);
        }
        if let Some(body) = &mut self.body {
            *body = match std::str::from_utf8(body) {
                Ok(text) => redact(text, token).into_bytes(),
                Err(_) => replace_bytes(body, token.as_bytes()),
            };
        }
        self
    }
}

/// How a body is given to curl.
enum BodyWords {
    /// `--data-binary '...'`: the quoted text.
    Inline(String),
    /// `printf '...' | curl ... --data-binary @-`: printf's quoted format.
    Piped(String),
}

impl BodyWords {
    fn of(body: &[u8]) -> Self {
        match std::str::from_utf8(body) {
            Ok(text) if !text.starts_with('@') && !text.chars().any(unprintable) => {
                BodyWords::Inline(quoted(text))
            }
            _ => BodyWords::Piped(printf_format(body)),
        }
    }
}

/// Characters that would not survive a terminal's copy and paste, or would show other than they
/// are: control characters (tab and line feed included), and invisible format characters
/// (zero-width, bidirectional overrides, line and paragraph separators, the byte order mark).
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// A single-quoted `printf` format that prints exactly `bytes`: printable ASCII as itself (`%`
/// doubled, `\` doubled), every other byte, and `'`, as a three-digit octal escape.
fn printf_format(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    for &byte in bytes {
        match byte {
            b'%' => out.push_str("%%"),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\047"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\{byte:03o}")),
        }
    }
    out.push('\'');
    out
}

/// `text` in single quotes: nothing in it expands; a `'` is written `'\''`.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `text` as it is when the shell would take it as one plain word, else [`quoted`].
fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain { text.to_owned() } else { quoted(text) }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `text` with the token (with or without `Bearer `) and anything shaped like a JSON Web Token
/// replaced by [`REDACTED`]; the rule `pc-upgrade --record` applies to what it writes. A token
/// shorter than 8 characters is not searched for (it would match ordinary text).
pub fn redact(text: &str, token: &str) -> String {
    let mut text = text.to_owned();
    let token = token.trim();
    let bare = token.strip_prefix("Bearer ").unwrap_or(token);
    if bare.len() >= 8 {
        for needle in [format!("Bearer {bare}"), bare.to_owned()] {
            text = text.replace(&needle, REDACTED);
        }
    }
    redact_jwts(&text)
}

/// JSON Web Tokens start `eyJ` (base64url of `{"`) and have dot-separated base64url parts.
fn redact_jwts(text: &str) -> String {
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !is_part(c))
            .unwrap_or(candidate.len());
        let run = &candidate[..end];
        if run.contains('.') && run.len() >= 16 {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        // `end` is at least 3: "eyJ" is made of such characters.
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

/// `bytes` with every occurrence of `needle` (when 8 bytes or more) replaced by [`REDACTED`].
fn replace_bytes(bytes: &[u8], needle: &[u8]) -> Vec<u8> {
    if needle.len() < 8 {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(needle) {
            out.extend_from_slice(REDACTED.as_bytes());
            i += needle.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use super::*;

    fn request(body: Option<&[u8]>, headers: &[(&str, &str)]) -> SentRequest {
        SentRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:4010/v1/productUpgrades/eligibility".into(),
            bearer: Bearer::Token,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
        }
    }

    /// A directory of its own under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "contract-curl-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A `curl` that writes its arguments (NUL-terminated) and its standard input to files.
    fn fake_curl(dir: &Path) {
        let script = dir.join("curl");
        std::fs::write(
            &script,
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$FAKE_CURL_OUT/argv\"\ncat > \"$FAKE_CURL_OUT/stdin\"\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// Runs `command` with `sh` and the fake curl; returns its argv (without `curl`) and stdin.
    fn run_fake(command: &str, token: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        let dir = scratch("fake");
        fake_curl(&dir);
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PATH", path)
            .env("FAKE_CURL_OUT", &dir)
            .env("PARTNER_CENTER_TOKEN", token)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
        let argv = std::fs::read(dir.join("argv")).unwrap();
        let stdin = std::fs::read(dir.join("stdin")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let argv = argv
            .strip_suffix(b"\0")
            .unwrap_or(&argv)
            .split(|b| *b == 0)
            .map(<[u8]>::to_vec)
            .collect();
        (argv, stdin)
    }

    /// What curl is asked to send: method, URL, headers in order, and the body.
    #[derive(Debug, PartialEq, Eq)]
    struct Asked {
        method: String,
        url: String,
        headers: Vec<String>,
        body: Option<Vec<u8>>,
    }

    fn asked(argv: &[Vec<u8>], stdin: &[u8]) -> Asked {
        let text = |b: &Vec<u8>| String::from_utf8(b.clone()).unwrap();
        let mut asked = Asked {
            method: String::new(),
            url: String::new(),
            headers: Vec::new(),
            body: None,
        };
        let mut args = argv.iter();
        while let Some(arg) = args.next() {
            match arg.as_slice() {
                b"-sS" | b"-i" | b"-g" | b"--http1.1" => {}
                b"--noproxy" => assert_eq!(args.next().map(text).as_deref(), Some("*")),
                b"-X" => asked.method = text(args.next().unwrap()),
                b"-H" => asked.headers.push(text(args.next().unwrap())),
                b"--data-binary" => {
                    let value = args.next().unwrap();
                    asked.body = Some(match value.as_slice() {
                        b"@-" => stdin.to_vec(),
                        other => {
                            assert!(!other.starts_with(b"@"), "curl would read a file");
                            other.to_vec()
                        }
                    });
                }
                url => {
                    assert!(asked.url.is_empty(), "a second URL {arg:?}");
                    asked.url = String::from_utf8(url.to_vec()).unwrap();
                }
            }
        }
        asked
    }

    fn expected(request: &SentRequest, token: &str) -> Asked {
        let mut headers = Vec::new();
        match &request.bearer {
            Bearer::Missing => {}
            Bearer::Token => headers.push(format!("Authorization: Bearer {token}")),
            Bearer::TokenWithSuffix(suffix) => {
                headers.push(format!("Authorization: Bearer {token}{suffix}"))
            }
        }
        headers.push("User-Agent:".into());
        headers.extend(request.headers.iter().map(|(n, v)| format!("{n}: {v}")));
        if request
            .body
            .as_ref()
            .is_some_and(|b| b.len() > CURL_EXPECT_THRESHOLD)
        {
            headers.push("Expect:".into());
        }
        Asked {
            method: request.method.clone(),
            url: request.url.clone(),
            headers,
            body: request.body.clone(),
        }
    }

    fn hostile_bodies() -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = [
            r#"{"customerId":"4c721420-72ad-4708-a0a7-371a2f7b0969","productFamily":"Azure"}"#,
            r#"{"note":"it's a 'quote' and \"double\" $HOME `id` $(id) \\ %s %% !! ~ * ?"}"#,
            "@/etc/passwd",
            "line one\nline two\r\n\ttabbed",
            "caf\u{e9} \u{202e}reversed\u{202c} \u{200b}",
            "",
            "'",
            "\\0\\101 %b %c",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        bodies.push(vec![
            0, 1, 2, 0x1b, b'[', b'3', b'1', b'm', 0x7f, 0x80, 0xff, 0xfe,
        ]);
        bodies.push(b"{\"customerId\": ".to_vec());
        bodies.push((0..=255u8).collect());
        bodies.push("x".repeat(3000).into_bytes());
        bodies
    }

    #[test]
    fn every_body_and_header_reaches_curl_byte_for_byte() {
        let token = "tok'en \"with\" $quotes `and` \\ backslash";
        let headers = [
            ("ms-requestid", "4c721420-72ad-4708-a0a7-371a2f7b0969"),
            (
                "ms-partnercenter-application",
                "it's \"ours\" $(id) `id` \\ %",
            ),
            ("accept", "*/*"),
            ("content-type", "application/json"),
        ];
        for body in hostile_bodies() {
            for bearer in [
                Bearer::Token,
                Bearer::Missing,
                Bearer::TokenWithSuffix("-not-issued-by-this-server".into()),
                Bearer::TokenWithSuffix("'$(id)\"!".into()),
            ] {
                let mut sent = request(Some(&body), &headers);
                sent.bearer = bearer;
                let command = sent.curl("PARTNER_CENTER_TOKEN");
                assert!(!command.contains(token));
                let (argv, stdin) = run_fake(&command, token);
                assert_eq!(argv[0], b"-sS", "{command}");
                assert_eq!(asked(&argv, &stdin), expected(&sent, token), "{command}");
            }
        }
    }

    #[test]
    fn urls_methods_and_requests_without_a_body_are_kept_too() {
        let token = "mock-partner-center-token";
        for (method, url) in [
            (
                "GET",
                "http://127.0.0.1:4010/v1/productUpgrades/eligibility",
            ),
            (
                "POST",
                "http://[::1]:4010/v1/productUpgrades/not-a-guid/status?x=['a']&y={b}",
            ),
            ("PATCH", "https://api.partnercenter.microsoft.com/v1/it's"),
        ] {
            let mut sent = request(None, &[("ms-correlationid", "flow-42")]);
            sent.method = method.into();
            sent.url = url.into();
            let command = sent.curl("PARTNER_CENTER_TOKEN");
            let (argv, stdin) = run_fake(&command, token);
            assert_eq!(asked(&argv, &stdin), expected(&sent, token), "{command}");
            assert_eq!(
                command.contains("--noproxy"),
                !url.starts_with("https:"),
                "{command}"
            );
            assert_eq!(command.contains("--http1.1"), url.starts_with("https:"));
        }
    }

    #[test]
    fn the_command_reads_as_the_brief_shows_it_and_parses_with_sh_n() {
        let sent = request(
            Some(br#"{"customerId":"c","productFamily":"it's"}"#),
            &[("ms-requestid", "r1"), ("content-type", "application/json")],
        );
        let command = sent.curl("PARTNER_CENTER_TOKEN");
        assert_eq!(
            command,
            "curl -sS -i --noproxy '*' -X POST 'http://127.0.0.1:4010/v1/productUpgrades/eligibility' \\\n  \
             -H \"Authorization: Bearer $PARTNER_CENTER_TOKEN\" \\\n  \
             -H 'User-Agent:' \\\n  \
             -H 'ms-requestid: r1' \\\n  \
             -H 'content-type: application/json' \\\n  \
             --data-binary '{\"customerId\":\"c\",\"productFamily\":\"it'\\''s\"}'"
        );
        let piped = request(Some(b"\x00\xff'%\\"), &[]).curl("T");
        assert!(
            piped.starts_with(r"printf '\000\377\047%%\\' | curl -sS -i"),
            "{piped}"
        );
        assert!(piped.ends_with("--data-binary @-"), "{piped}");
        for command in [command, piped] {
            let status = Command::new("sh")
                .args(["-n", "-c", &command])
                .status()
                .unwrap();
            assert!(status.success(), "{command}");
        }
    }

    #[test]
    #[should_panic(expected = "not a shell variable name")]
    fn the_token_variable_must_be_a_shell_name() {
        request(None, &[]).curl("$(id)");
    }

    #[test]
    fn the_token_and_token_shaped_text_are_redacted_everywhere() {
        let token = "opaque-secret-token-value";
        let table: &[(&str, &str)] = &[
            ("no secret here", "no secret here"),
            ("x Bearer opaque-secret-token-value y", "x <redacted> y"),
            ("token=opaque-secret-token-value", "token=<redacted>"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end",
                "jwt <redacted> end",
            ),
            ("eyJ short", "eyJ short"),
            ("{\"eyJ\": 1}", "{\"eyJ\": 1}"),
            ("eyJeyJeyJeyJeyJeyJ", "eyJeyJeyJeyJeyJeyJ"),
        ];
        for (input, expected) in table {
            assert_eq!(redact(input, token), *expected, "{input:?}");
        }
        // A short token would match ordinary text: not searched for.
        assert_eq!(redact("the t", "t"), "the t");

        let mut sent = request(
            Some(format!("{{\"echo\":\"{token}\"}}").as_bytes()),
            &[("x-echo", &format!("Bearer {token}"))],
        );
        sent.url.push_str(&format!("?t={token}"));
        sent.bearer = Bearer::TokenWithSuffix(format!("{token}!"));
        let redacted = sent.clone().redacted(token);
        let shown = format!("{redacted:?} {}", redacted.curl("PARTNER_CENTER_TOKEN"));
        assert!(!shown.contains(token), "{shown}");
        let mut binary = request(Some(&[0xff, b'x']), &[]);
        binary.body = Some([&[0xffu8][..], token.as_bytes(), b"!"].concat());
        assert_eq!(
            binary.redacted(token).body.unwrap(),
            [&[0xffu8][..], REDACTED.as_bytes(), b"!"].concat()
        );
    }
}
