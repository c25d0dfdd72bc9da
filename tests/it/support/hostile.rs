//! A hostile server on loopback: raw TCP, so it can do what no well-behaved HTTP framework does
//! (endless bodies, garbage instead of TLS, answering once and then vanishing). Each accepted
//! connection reads one request head and its body, then runs the next behaviour in the script
//! (the last one repeats).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one connection.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Writes these bytes verbatim, then closes.
    Raw(Vec<u8>),
    /// Answers `200` with a chunked JSON-looking body that never ends (until the client hangs
    /// up, or `limit` bytes were written).
    Endless {
        /// A safety stop, so a broken client cannot make the test run for ever.
        limit: usize,
    },
    /// Answers, then stops listening: later connections are refused.
    RawThenVanish(Vec<u8>),
}

/// A running hostile server.
pub struct Hostile {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bytes_written: Arc<AtomicUsize>,
}

impl Hostile {
    /// Starts the server with a script of behaviours, one per connection.
    pub async fn start(script: Vec<Behaviour>) -> Hostile {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes_written = Arc::new(AtomicUsize::new(0));
        let (count, written) = (connections.clone(), bytes_written.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let behaviour = script[n.min(script.len() - 1)].clone();
                n += 1;
                let vanish = matches!(behaviour, Behaviour::RawThenVanish(_));
                let written = written.clone();
                let handle = tokio::spawn(serve(stream, behaviour, written));
                if vanish {
                    let _ = handle.await;
                    return; // drops the listener: the port now refuses connections
                }
            }
        });
        Hostile {
            addr,
            connections,
            bytes_written,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT` (the server does not speak TLS).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Body bytes written so far by endless answers.
    pub fn bytes_written(&self) -> usize {
        self.bytes_written.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 answer with a JSON body and `Connection: close`.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if !body.is_empty() {
        text.push_str("content-type: application/json\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, written: Arc<AtomicUsize>) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    match behaviour {
        Behaviour::Raw(bytes) | Behaviour::RawThenVanish(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Endless { limit } => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
            let mut sent = 0;
            while sent < limit {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return; // the client hung up, as it should
                }
                sent += 64 * 1024;
                written.fetch_add(64 * 1024, Ordering::SeqCst);
            }
        }
    }
}

/// Reads one request head and a `content-length` body; `None` when the client sent nothing
/// usable (for example a TLS hello, which is read and left unanswered by `Raw`).
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buffer).await.ok()?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buffer[..n]);
            }
            return Some(data);
        }
        if data.len() > 1 << 20 || !data.is_ascii() && data.len() > 5 {
            // Not HTTP (a TLS hello is binary): answer whatever the script says all the same.
            return Some(data);
        }
    }
}
