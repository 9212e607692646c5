//! The metrics endpoint: a minimal HTTP/1.1 responder (RFC 9112) for
//! `GET /metrics`, enough for a Prometheus scraper and `curl`. The request
//! head is read into a bounded buffer and parsed by [`parse_head`] (no
//! I/O); each connection answers one request and closes
//! (`Connection: close`). Anything but `GET /metrics` gets 404 or 405;
//! a head that is malformed, too large or too slow ends the connection
//! with 400 or nothing.

use super::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 16;

/// The media type of the text exposition format `prometheus-client`
/// writes (OpenMetrics 1.0).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a complete request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// `GET` of another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
}

/// A request head that is not HTTP/1.x (answered 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) &'static str);

/// Parses the request head at the start of `buf`: `Ok(None)` until the
/// blank line that ends it has arrived (RFC 9112 §2.1).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Asked>, BadRequest> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| BadRequest("not text"))?;
    let request_line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(BadRequest("not HTTP/1.x"));
    }
    if method != "GET" {
        return Ok(Some(Asked::MethodNotAllowed));
    }
    let path = target.split('?').next().unwrap_or_default();
    Ok(Some(if path == "/metrics" {
        Asked::Metrics
    } else {
        Asked::NotFound
    }))
}

/// A complete response with `Connection: close`.
pub(crate) fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         {allow}Connection: close\r\n\r\n{body}",
        len = body.len()
    )
    .into_bytes()
}

/// Serves `metrics` on `listener` until `stop`. Before each scrape,
/// `refresh` runs on a blocking thread (it scans the spool).
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn(&Metrics) + Send + Sync>,
    stop: CancellationToken,
) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metrics listening");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, refresh) = (metrics.clone(), refresh.clone());
        tasks.spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(stream, metrics, refresh)).await;
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Reads one request head and answers it.
async fn answer(
    mut stream: TcpStream,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn(&Metrics) + Send + Sync>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let asked = loop {
        match parse_head(&buf) {
            Ok(Some(asked)) => break asked,
            Ok(None) if buf.len() >= MAX_HEAD => {
                let reply = response("431 Request Header Fields Too Large", "text/plain", "");
                return stream.write_all(&reply).await;
            }
            Ok(None) => {}
            Err(BadRequest(why)) => {
                let reply = response("400 Bad Request", "text/plain", &format!("{why}\n"));
                return stream.write_all(&reply).await;
            }
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let reply = match asked {
        Asked::Metrics => {
            let body = tokio::task::spawn_blocking(move || {
                refresh(&metrics);
                metrics.encode()
            })
            .await
            .map_err(std::io::Error::other)?;
            response("200 OK", CONTENT_TYPE, &body)
        }
        Asked::NotFound => response("404 Not Found", "text/plain", "try /metrics\n"),
        Asked::MethodNotAllowed => response("405 Method Not Allowed", "text/plain", ""),
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(Asked::Metrics))
        );
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ok(Some(Asked::Metrics))
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Some(Asked::NotFound))
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Ok(Some(Asked::MethodNotAllowed))
        );
        assert_eq!(
            parse_head(b"GET /metrics\r\n\r\n"),
            Err(BadRequest("malformed request line"))
        );
        assert_eq!(
            parse_head(b"GET /metrics SPDY/3\r\n\r\n"),
            Err(BadRequest("not HTTP/1.x"))
        );
    }

    #[test]
    fn responses_carry_length_and_close() {
        let text = String::from_utf8(response("200 OK", CONTENT_TYPE, "abc")).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: close\r\n\r\nabc"));
        let text = String::from_utf8(response("405 Method Not Allowed", "text/plain", "")).unwrap();
        assert!(text.contains("Allow: GET\r\n"));
    }
}
