//! A tiny raw HTTP/1.1 server on 127.0.0.1, for answers no real server library would send.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A server answering every request with `respond`; it counts connections and the bytes each
/// answer wrote before the client went away.
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub written: Arc<Mutex<Vec<usize>>>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts a server whose `respond` writes one answer and returns how many bytes it wrote; the
/// connection is closed after it.
pub fn serve(respond: impl Fn(&mut TcpStream) -> usize + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let (counted, recorded) = (Arc::clone(&connections), Arc::clone(&written));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let (respond, recorded) = (Arc::clone(&respond), Arc::clone(&recorded));
            std::thread::spawn(move || {
                if read_request(&mut stream).is_some() {
                    let n = respond(&mut stream);
                    recorded.lock().unwrap().push(n);
                }
            });
        }
    });
    Server {
        addr,
        connections,
        written,
    }
}

/// Reads one request's head and body; `None` if the client went away first.
fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(())
}

/// Writes `text`; its length, or 0 if the client went away.
pub fn write(stream: &mut TcpStream, text: &[u8]) -> usize {
    stream.write_all(text).map_or(0, |()| text.len())
}
