//! A minimal HTTP/1.1 client: POST with a body over one keep-alive
//! connection, enough to drive etcd's JSON gateway from the same load
//! generator that drives RESP servers, without an HTTP stack's own costs
//! (connection pools, TLS, compression) muddying the comparison.
//!
//! Responses are framed by `Content-Length`, by `Transfer-Encoding: chunked`
//! (Go's `net/http`, behind etcd's gateway, switches to chunked for bodies it
//! has not buffered whole), or by the server closing the connection. Heads are
//! bounded to [`HEAD_MAX_BYTES`] and bodies to [`BODY_MAX_BYTES`], so a broken
//! server cannot make the client buffer without limit.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head (status line and headers) accepted.
pub const HEAD_MAX_BYTES: usize = 64 * 1024;
/// Largest response body accepted.
pub const BODY_MAX_BYTES: usize = 64 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why an exchange failed. The connection is unusable after any of these.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection I/O: {0}")]
    Io(#[from] io::Error),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("HTTP response head longer than {HEAD_MAX_BYTES} bytes")]
    HeadTooLarge,
    #[error("HTTP response body longer than {BODY_MAX_BYTES} bytes")]
    BodyTooLarge,
    #[error("server closed the connection before the response was complete")]
    Closed,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// False when the server said `Connection: close` (or spoke HTTP/1.0).
    pub keep_alive: bool,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Parse a response head from the front of `buf`: `Ok(None)` until the blank
/// line ending it has arrived, then the head and its length.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > HEAD_MAX_BYTES {
            return Err(HttpError::HeadTooLarge);
        }
        return Ok(None);
    };
    if end > HEAD_MAX_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::Malformed("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or(HttpError::Malformed("status line has no status code"))?;
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::Malformed("not an HTTP/1.x status line")),
    };
    let mut framing = Framing::UntilClose;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HttpError::Malformed("header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse().map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(length);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().split(',').any(|coding| coding.trim() == "chunked") {
                // RFC 9112 §6.3: chunked wins over Content-Length.
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                keep_alive = false;
            } else if value.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    // RFC 9112 §6.3: these responses never have a body.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    if let Framing::Length(length) = framing {
        if length > BODY_MAX_BYTES {
            return Err(HttpError::BodyTooLarge);
        }
    }
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some((Head { status, framing, keep_alive }, end + 4)))
}

/// Decode a chunked body from the front of `buf`: `Ok(None)` until the last
/// chunk and the trailers have arrived, then the body and the bytes used.
/// Chunks are located first and copied only once all have arrived, so a body
/// arriving in many reads costs O(chunks) per call, not O(bytes).
fn parse_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut spans = Vec::new();
    let mut total: usize = 0;
    let mut at = 0;
    loop {
        let Some(line_len) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return if buf.len() - at > 1024 {
                Err(HttpError::Malformed("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line =
            std::str::from_utf8(&buf[at..at + line_len]).map_err(|_| HttpError::Malformed("chunk size"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
        at += line_len + 2;
        if size == 0 {
            let Some(end) = skip_trailers(buf, at)? else { return Ok(None) };
            let body = spans.iter().flat_map(|&(start, end)| &buf[start..end]).copied().collect();
            return Ok(Some((body, end)));
        }
        total = total.saturating_add(size);
        if total > BODY_MAX_BYTES {
            return Err(HttpError::BodyTooLarge);
        }
        // Cannot overflow: size <= BODY_MAX_BYTES and at <= buf.len().
        let chunk_end = at + size;
        if buf.len() < chunk_end + 2 {
            return Ok(None);
        }
        if &buf[chunk_end..chunk_end + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF"));
        }
        spans.push((at, chunk_end));
        at = chunk_end + 2;
    }
}

/// Skip trailer lines after the last chunk, up to and including the blank line.
fn skip_trailers(buf: &[u8], mut at: usize) -> Result<Option<usize>, HttpError> {
    loop {
        let Some(line_len) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return if buf.len() - at > HEAD_MAX_BYTES { Err(HttpError::HeadTooLarge) } else { Ok(None) };
        };
        at += line_len + 2;
        if line_len == 0 {
            return Ok(Some(at));
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct HttpConnection {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    request: Vec<u8>,
}

impl HttpConnection {
    /// Connect to `addr` (`host:port`), which is also sent as the `Host` header.
    pub async fn connect(addr: &str) -> Result<HttpConnection, HttpError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection { stream, host: addr.to_string(), buf: Vec::new(), request: Vec::new() })
    }

    /// POST `body` as JSON to `path` and read the whole response. If the
    /// response says the server will close the connection, the caller must
    /// reconnect before the next request (see [`Response::keep_alive`]).
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<Response, HttpError> {
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let (head, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            self.fill(true).await?;
        };
        let body = loop {
            let rest = &self.buf[head_len..];
            let complete = match head.framing {
                Framing::Length(length) => (rest.len() >= length).then(|| (rest[..length].to_vec(), length)),
                Framing::Chunked => parse_chunked(rest)?,
                Framing::UntilClose => None,
            };
            if let Some((body, used)) = complete {
                self.buf.drain(..head_len + used);
                break body;
            }
            if rest.len() > BODY_MAX_BYTES {
                return Err(HttpError::BodyTooLarge);
            }
            if !self.fill(head.framing != Framing::UntilClose).await? {
                let body = self.buf[head_len..].to_vec();
                self.buf.clear();
                break body;
            }
        };
        Ok(Response { status: head.status, body, keep_alive: head.keep_alive })
    }

    /// Read more bytes; `Ok(false)` at end of stream when that is allowed.
    async fn fill(&mut self, eof_is_error: bool) -> Result<bool, HttpError> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK_BYTES, 0);
        let read = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read? {
            0 if eof_is_error => Err(HttpError::Closed),
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: x\r\n\r\n{}";
        let (head, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head, Head { status: 200, framing: Framing::Length(2), keep_alive: true });
        assert_eq!(&raw[used..], b"{}");
    }

    #[test]
    fn incomplete_head_needs_more() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
    }

    #[test]
    fn chunked_overrides_length_and_close_is_seen() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let (head, _) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head, Head { status: 404, framing: Framing::Chunked, keep_alive: false });
    }

    #[test]
    fn http10_without_length_reads_until_close() {
        let (head, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.framing, Framing::UntilClose);
        assert!(!head.keep_alive);
    }

    #[test]
    fn bad_heads_are_errors() {
        for raw in [&b"SMTP 220\r\n\r\n"[..], b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n"]
        {
            assert!(matches!(parse_head(raw), Err(HttpError::Malformed(_))), "{raw:?}");
        }
        assert!(matches!(parse_head(&vec![b'a'; HEAD_MAX_BYTES + 1]), Err(HttpError::HeadTooLarge)));
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", BODY_MAX_BYTES + 1);
        assert!(matches!(parse_head(huge.as_bytes()), Err(HttpError::BodyTooLarge)));
    }

    #[test]
    fn chunked_body_decodes_incrementally() {
        let raw = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (body, used) = parse_chunked(raw).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&raw[used..], b"NEXT");
        for cut in 0..raw.len() - 4 {
            assert_eq!(parse_chunked(&raw[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        assert!(parse_chunked(b"zz\r\n").is_err());
        assert!(parse_chunked(b"2\r\nabX\r\n").is_err());
        assert!(parse_chunked(b"ffffffffffffffff\r\n").is_err());
    }
}
