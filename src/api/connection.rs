//! hyper's own answers to a request head it cannot parse, in the surface's shape.
//!
//! hyper refuses some requests before any service sees them, and answers with an empty body:
//! 414 when the request target is longer than 65,534 bytes (a constant of its HTTP/1 parser, not
//! configurable), 431 when the head outgrows its read buffer or has more than 100 headers, and
//! 400 when the request line or a header is malformed. These answers cannot be reached from a
//! tower layer, so the connection itself is watched: the first bytes of each request line as they
//! are read, and each answer as it is written. An answer that is exactly hyper's parse-error
//! response (its status line, then `connection: close` and `content-length: 0`, written right
//! after reading) is replaced by the same status with the error body of the request's surface.
//! Everything else passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{ApiError, Surface};
use super::limits::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};

/// Enough of a request line to see its surface, even in absolute form
/// (`GET http://host:port/xms/...`).
const TARGET_PREFIX: usize = 256;

/// hyper's parse-error answers never exceed this (status line, three short headers).
const MAX_HYPER_ANSWER: usize = 256;

pub struct ShapedConnection<S> {
    inner: S,
    /// Bytes were read since the last write: what is written next answers them.
    read_since_write: bool,
    /// The start of the request line being read, and its length so far.
    line: Vec<u8>,
    line_len: usize,
    line_complete: bool,
    /// Our answer in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S> ShapedConnection<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            read_since_write: false,
            line: Vec::with_capacity(TARGET_PREFIX),
            line_len: 0,
            line_complete: false,
            replacement: None,
        }
    }

    fn saw_read(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if !self.read_since_write {
            // The first bytes after an answer begin the next request (pipelined requests read
            // together are seen as one: their hyper errors take the first one's surface).
            self.read_since_write = true;
            self.line.clear();
            self.line_len = 0;
            self.line_complete = false;
        }
        if self.line_complete {
            return;
        }
        let end = data.iter().position(|&b| b == b'\n');
        let part = &data[..end.unwrap_or(data.len())];
        let room = TARGET_PREFIX.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
        self.line_complete = end.is_some();
    }

    /// Our answer when `written` is hyper's answer to a head it could not parse.
    fn replacement_for(&self, written: &[u8]) -> Option<Vec<u8>> {
        if !self.read_since_write || written.len() > MAX_HYPER_ANSWER {
            return None;
        }
        let status = hyper_parse_error(written)?;
        // hyper checks the head's size before the target's length: a target too long to fit
        // the buffer is answered 431, though it is the target that is too long.
        let target_too_long = self.target_len() > MAX_URI_BYTES;
        let error = match status {
            StatusCode::URI_TOO_LONG => ApiError::UriTooLong {
                limit: MAX_URI_BYTES,
            },
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE if target_too_long => {
                ApiError::UriTooLong {
                    limit: MAX_URI_BYTES,
                }
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge {
                headers: MAX_HEADERS,
                bytes: MAX_HEAD_BYTES,
            },
            _ => ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                detail: "the request line or a header is not valid HTTP/1.1".into(),
            },
        };
        Some(http1_answer(error, self.surface()))
    }

    /// The request target's length, as far as it was read.
    fn target_len(&self) -> usize {
        let method = self
            .line
            .iter()
            .position(|&b| b == b' ')
            .map_or(0, |at| at + 1);
        let version = if self.line_complete {
            " HTTP/1.1\r".len()
        } else {
            0
        };
        self.line_len.saturating_sub(method + version)
    }

    fn surface(&self) -> Surface {
        let line = String::from_utf8_lossy(&self.line);
        let target = line.split(' ').nth(1).unwrap_or("");
        let path = match target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
            None => target,
        };
        Surface::of(path)
    }
}

/// The status of `written` when it is hyper's answer to an unparsable head:
/// `HTTP/1.1 <status> <reason>`, then `connection: close` and `content-length: 0`, no body.
fn hyper_parse_error(written: &[u8]) -> Option<StatusCode> {
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?.strip_prefix("HTTP/1.1 ")?;
    let status = StatusCode::from_bytes(status_line.get(..3)?.as_bytes()).ok()?;
    let refusal = [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ];
    let hyper_shape = lines.next()? == "connection: close"
        && lines.next()? == "content-length: 0"
        && lines.all(|line| line.starts_with("date: "));
    (refusal.contains(&status) && hyper_shape).then_some(status)
}

fn http1_answer(error: ApiError, surface: Surface) -> Vec<u8> {
    let rendered = error.rendered(surface);
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\n",
        rendered.status.as_str(),
        rendered.status.canonical_reason().unwrap_or("Error")
    )
    .into_bytes();
    for (name, value) in &rendered.headers {
        answer.extend_from_slice(name.as_str().as_bytes());
        answer.extend_from_slice(b": ");
        answer.extend_from_slice(value.as_bytes());
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            rendered.body.len()
        )
        .as_bytes(),
    );
    answer.extend_from_slice(&rendered.body);
    answer
}

impl<S: AsyncRead + Unpin> AsyncRead for ShapedConnection<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.saw_read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> ShapedConnection<S> {
    /// Writes our replacement whole, then reports hyper's `len` bytes as written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        while let Some((answer, written)) = &mut self.replacement {
            if *written == answer.len() {
                self.replacement = None;
                self.read_since_write = false;
                return Poll::Ready(Ok(len));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(len))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ShapedConnection<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none()
            && let Some(answer) = this.replacement_for(buf)
        {
            this.replacement = Some((answer, 0));
        }
        if this.replacement.is_some() {
            // hyper writes the same bytes again until they are taken: ours are written instead.
            return this.poll_replacement(cx, buf.len());
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if written > 0 {
            this.read_since_write = false;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut non_empty = bufs.iter().filter(|buf| !buf.is_empty());
        // hyper's parse-error answer has no body: it comes as one buffer.
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && (this.replacement.is_some() || this.replacement_for(only).is_some())
        {
            return Pin::new(this).poll_write(cx, only);
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            this.read_since_write = false;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_parse_error_answers_are_recognised() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\
                      date: Thu, 03 Dec 2026 07:05:01 GMT\r\n\r\n";
        assert_eq!(hyper_parse_error(hyper), Some(StatusCode::URI_TOO_LONG));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
                     content-length: 2\r\nconnection: close\r\n\r\n{}";
        assert_eq!(hyper_parse_error(ours), None);
        let handler = b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_parse_error(handler), None);
    }

    #[test]
    fn the_surface_comes_from_the_request_line() {
        let mut connection = ShapedConnection::new(());
        connection.saw_read(b"GET /xms/v1/abc/groups?x=");
        connection.saw_read(b"1 HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(connection.surface(), Surface::Sinch);
        assert_eq!(connection.target_len(), "/xms/v1/abc/groups?x=1".len());
        connection.read_since_write = false;
        connection.saw_read(b"GET http://roster:8080/xms/v1/a HTTP/1.1\r\n");
        assert_eq!(connection.surface(), Surface::Sinch);
        connection.read_since_write = false;
        connection.saw_read(b"POST /api/contactgroups HTTP/1.1\r\n");
        assert_eq!(connection.surface(), Surface::Native);
    }
}
