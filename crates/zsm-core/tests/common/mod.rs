//! Helpers of the stack tests: the environment the Go harness sets, a
//! tampering proxy, and the Go CLI.
#![allow(dead_code)]

pub mod cli;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use zsm_core::{Config, DeviceState};

/// A variable the Go harness sets; its absence fails the test.
pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these tests through go test ./tests/rustcore"))
}

static NEXT_IP: AtomicU8 = AtomicU8::new(1);

/// A configuration whose connections leave from their own loopback address
/// (127.0.2.x), so the per-address rate limits of one test never touch
/// another.
pub fn test_config(server: &str, state: Arc<dyn DeviceState>) -> Config {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 2, NEXT_IP.fetch_add(1, Ordering::Relaxed)));
    let mut cfg = Config::new(server, state);
    cfg.device_label = "zsm-core tests".into();
    cfg.http = reqwest::Client::builder()
        .local_address(ip)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    cfg
}

/// Rewrites an answer: (path with query, body) → new body.
pub type Rewrite = Box<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// A proxy in front of the real gateway that lets a test rewrite any
/// answer, as a malicious server could.
pub struct EvilServer {
    pub url: String,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
    status: Arc<Mutex<Option<StatusRewrite>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

/// Replaces an answer's status and body: (path with query) → Some((status, body)).
pub type StatusRewrite = Box<dyn FnMut(&str) -> Option<(u16, Vec<u8>)> + Send>;

/// One captured answer.
pub struct Captured(Arc<Mutex<Option<Vec<u8>>>>);

impl Captured {
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().take()
    }
}

impl EvilServer {
    pub async fn start(gateway: &str) -> EvilServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rewrite: Arc<Mutex<Option<Rewrite>>> = Arc::new(Mutex::new(None));
        let status: Arc<Mutex<Option<StatusRewrite>>> = Arc::new(Mutex::new(None));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let upstream = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        let (gateway, rw, stw, sn) = (
            gateway.trim_end_matches('/').to_owned(),
            rewrite.clone(),
            status.clone(),
            seen.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (gateway, rw, stw, sn, upstream) =
                    (gateway.clone(), rw.clone(), stw.clone(), sn.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, &gateway, &upstream, &rw, &stw, &sn).await;
                });
            }
        });
        EvilServer {
            url,
            rewrite,
            status,
            seen,
        }
    }

    pub fn set(&self, f: Rewrite) {
        *self.rewrite.lock().unwrap() = Some(f);
    }

    pub fn clear(&self) {
        *self.rewrite.lock().unwrap() = None;
        *self.status.lock().unwrap() = None;
    }

    /// Answers requests itself (without forwarding) while `f` returns Some.
    pub fn answer(&self, f: StatusRewrite) {
        *self.status.lock().unwrap() = Some(f);
    }

    /// How many requests went to paths starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    /// Captures the first answer to a path starting with `prefix` and
    /// containing `needle`, passing every answer through unchanged.
    pub fn capture(&self, prefix: &'static str, needle: &str) -> Captured {
        let slot = Arc::new(Mutex::new(None));
        let (s, needle) = (slot.clone(), needle.to_owned());
        self.set(Box::new(move |path: &str, body: Vec<u8>| {
            let mut s = s.lock().unwrap();
            if s.is_none() && path.starts_with(prefix) && path.contains(&needle) {
                *s = Some(body.clone());
            }
            body
        }));
        Captured(slot)
    }

    pub fn requested(&self, prefix: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|p| p.starts_with(prefix))
    }
}

/// Edits a JSON array answer of paths starting with `prefix`.
pub fn rows(prefix: &'static str, edit: impl Fn(&mut Vec<serde_json::Value>) + Send + Sync + 'static) -> Rewrite {
    Box::new(move |path: &str, body: Vec<u8>| {
        if !path.starts_with(prefix) {
            return body;
        }
        let Ok(mut rs) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
            return body;
        };
        edit(&mut rs);
        serde_json::to_vec(&rs).unwrap()
    })
}

/// Serves HTTP/1.1 requests on one connection, forwarding each to the
/// gateway and answering with the (possibly rewritten) body.
async fn serve(
    sock: tokio::net::TcpStream,
    gateway: &str,
    upstream: &reqwest::Client,
    rewrite: &Mutex<Option<Rewrite>>,
    status_rewrite: &Mutex<Option<StatusRewrite>>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Ok(());
        };
        let (method, target) = (method.to_owned(), target.to_owned());
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if matches!(k.as_str(), "authorization" | "content-type" | "prefer" | "accept") {
                    headers.push((k, v));
                }
            }
        }
        let mut body = vec![0u8; length];
        r.read_exact(&mut body).await?;
        seen.lock().unwrap().push(target.clone());
        let own = status_rewrite.lock().unwrap().as_mut().and_then(|f| f(&target));
        if let Some((code, data)) = own {
            let head = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                data.len()
            );
            let sock = r.get_mut();
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(&data).await?;
            sock.flush().await?;
            continue;
        }
        let mut req = upstream.request(method.parse().unwrap(), format!("{gateway}{target}"));
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(_) => return Ok(()),
        };
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut data = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        if let Some(f) = rewrite.lock().unwrap().as_ref() {
            data = f(&target, data);
        }
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            data.len()
        );
        let sock = r.get_mut();
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(&data).await?;
        sock.flush().await?;
    }
}
