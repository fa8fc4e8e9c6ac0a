//! A small async RESP2 client over one TCP connection.
//!
//! It sends commands as arrays of bulk strings and reads replies with
//! [`parse_value`]. An error *reply* (`-ERR ...`, `-MOVED ...`) is an ordinary
//! `Ok(Value::Error(..))`: the server answered. A [`ClientError`] means the
//! connection itself failed (I/O, a reply that is not RESP2, the peer closed);
//! after one the connection's framing is unknown, so the client refuses
//! further calls with [`ClientError::Broken`] and the caller reconnects.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::codec::{encode_command, parse_value, Limits, ProtocolError, Value};

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why a call failed. The connection is unusable after any of these.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection I/O: {0}")]
    Io(#[from] io::Error),
    #[error("reply is not RESP2: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("server closed the connection before replying")]
    Closed,
    #[error("connection is broken by an earlier error; reconnect")]
    Broken,
}

/// One connection to a RESP2 server; one call (or pipeline) at a time.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Received bytes; `[read_start, len)` is not yet parsed.
    read_buf: Vec<u8>,
    read_start: usize,
    write_buf: Vec<u8>,
    limits: Limits,
    broken: bool,
}

impl Client {
    /// Connect to `addr`, with Nagle's algorithm off: every call is a small
    /// request followed by a wait for its reply, the worst case for Nagle.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            read_buf: Vec::with_capacity(READ_CHUNK_BYTES),
            read_start: 0,
            write_buf: Vec::new(),
            limits: Limits::default(),
            broken: false,
        })
    }

    /// Replace the limits replies are parsed with (default [`Limits::default`]).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Send one command and wait for its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, ClientError> {
        self.check_usable()?;
        self.write_buf.clear();
        encode_command(args, &mut self.write_buf);
        let result = self.exchange(1).await;
        self.finish(result)?.into_iter().next().ok_or(ClientError::Closed)
    }

    /// Send several commands in one write and wait for all their replies, in
    /// order: one round trip instead of `cmds.len()`.
    pub async fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Value>, ClientError> {
        self.check_usable()?;
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        self.write_buf.clear();
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            encode_command(&args, &mut self.write_buf);
        }
        let result = self.exchange(cmds.len()).await;
        self.finish(result)
    }

    fn check_usable(&self) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Broken);
        }
        Ok(())
    }

    fn finish<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Write `write_buf`, then read `count` replies.
    async fn exchange(&mut self, count: usize) -> Result<Vec<Value>, ClientError> {
        self.stream.write_all(&self.write_buf).await?;
        let mut replies = Vec::with_capacity(count);
        while replies.len() < count {
            replies.push(self.read_value().await?);
        }
        Ok(replies)
    }

    async fn read_value(&mut self) -> Result<Value, ClientError> {
        loop {
            if let Some((value, used)) = parse_value(&self.read_buf[self.read_start..], &self.limits)? {
                self.read_start += used;
                if self.read_start == self.read_buf.len() {
                    self.read_buf.clear();
                    self.read_start = 0;
                }
                return Ok(value);
            }
            self.fill().await?;
        }
    }

    /// Read more bytes, first moving the unparsed tail to the front if the
    /// parsed head is the larger part (amortised O(1) per byte).
    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.read_start > 0 && self.read_start >= self.read_buf.len() - self.read_start {
            self.read_buf.drain(..self.read_start);
            self.read_start = 0;
        }
        let len = self.read_buf.len();
        self.read_buf.resize(len + READ_CHUNK_BYTES, 0);
        let read = self.stream.read(&mut self.read_buf[len..]).await;
        self.read_buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read? {
            0 => Err(ClientError::Closed),
            _ => Ok(()),
        }
    }
}
