//! What crosses the wire between nodes: length-prefixed frames, and the
//! handshake that authenticates a peer before any frame is accepted.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of
//! postcard-encoded [`Frame`]. A length above the limit is a protocol error
//! and closes the connection (a corrupt or hostile peer cannot make us
//! allocate gigabytes).
//!
//! Handshake (dialer D, acceptor A): A sends `MAGIC` and a 16-byte random
//! nonce; D answers with a [`Hello`] frame naming its cluster, its node id and
//! `sha256(nonce || secret)`; A checks all three and answers one byte,
//! `ACCEPTED`, or closes. The secret never crosses the wire and a recorded
//! proof is useless against another nonce.

use quorum_core::RequestId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::state::{Command, Output};

pub const MAGIC: &[u8; 8] = b"QUORUM01";
pub const ACCEPTED: u8 = 0xA5;

/// Everything one node sends another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame<M> {
    /// A protocol message.
    Protocol(M),
    /// A client command a follower relays to the node it believes leads.
    Forward { id: RequestId, command: Command },
    /// The leader's answer to a relayed command.
    ForwardReply { id: RequestId, output: Output },
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub cluster_id: String,
    pub from: u32,
    pub proof: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("handshake refused: {0}")]
    Refused(String),
}

pub fn proof(nonce: &[u8; 16], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// Constant-time equality, so the time a check takes says nothing about how
/// much of a proof was right.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Append one frame (length prefix + postcard body) to `buf`.
pub fn encode_frame<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), WireError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let body = postcard::to_extend(value, std::mem::take(buf))?;
    *buf = body;
    let len = buf.len() - start - 4;
    let len32 = u32::try_from(len).map_err(|_| WireError::TooLarge { len, limit: u32::MAX as usize })?;
    buf[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// Read one frame body (without its prefix) into `buf`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), WireError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(())
}

/// The dialer's half of the handshake.
pub async fn dial_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: &str,
    from: u32,
    secret: &str,
) -> Result<(), WireError> {
    let mut greeting = [0u8; 24];
    stream.read_exact(&mut greeting).await?;
    if &greeting[..8] != MAGIC {
        return Err(WireError::Refused("the peer is not a quorum node (bad magic)".into()));
    }
    let nonce: [u8; 16] = greeting[8..].try_into().expect("16 bytes");
    let hello = Hello { cluster_id: cluster_id.to_string(), from, proof: proof(&nonce, secret) };
    let mut buf = Vec::new();
    encode_frame(&hello, &mut buf)?;
    stream.write_all(&buf).await?;
    let mut answer = [0u8; 1];
    match stream.read_exact(&mut answer).await {
        Ok(_) if answer[0] == ACCEPTED => Ok(()),
        Ok(_) => Err(WireError::Refused("unexpected handshake answer".into())),
        Err(_) => {
            Err(WireError::Refused("the peer closed the connection (wrong cluster id or secret?)".into()))
        }
    }
}

/// The acceptor's half: returns the authenticated peer's node id. A node id
/// not in `known` is refused like a wrong secret, before `ACCEPTED`, so the
/// dialer learns it was refused.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: &str,
    secret: &str,
    known: &[u32],
    nonce: [u8; 16],
) -> Result<u32, WireError> {
    let mut greeting = Vec::with_capacity(24);
    greeting.extend_from_slice(MAGIC);
    greeting.extend_from_slice(&nonce);
    stream.write_all(&greeting).await?;
    let mut buf = Vec::new();
    read_frame(stream, &mut buf, 4096).await?;
    let hello: Hello = postcard::from_bytes(&buf)?;
    if hello.cluster_id != cluster_id {
        return Err(WireError::Refused(format!(
            "node {} belongs to cluster '{}', not '{cluster_id}'",
            hello.from, hello.cluster_id
        )));
    }
    if !same(&hello.proof, &proof(&nonce, secret)) {
        return Err(WireError::Refused(format!("node {} did not prove the cluster secret", hello.from)));
    }
    if !known.contains(&hello.from) {
        return Err(WireError::Refused(format!("node {} is not a configured peer", hello.from)));
    }
    stream.write_all(&[ACCEPTED]).await?;
    Ok(hello.from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handshake_accepts_the_secret_and_refuses_others() {
        for (dial_secret, dial_cluster, from, ok) in [
            ("s3cret", "c1", 7, true),
            ("wrong", "c1", 7, false),
            ("s3cret", "c2", 7, false),
            ("s3cret", "c1", 8, false),
        ] {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            let dial =
                tokio::spawn(async move { dial_handshake(&mut a, dial_cluster, from, dial_secret).await });
            let accepted = accept_handshake(&mut b, "c1", "s3cret", &[6, 7], [9; 16]).await;
            drop(b);
            let dialed = dial.await.unwrap();
            assert_eq!(accepted.is_ok(), ok, "{accepted:?}");
            assert_eq!(dialed.is_ok(), ok, "{dialed:?}");
            if ok {
                assert_eq!(accepted.unwrap(), 7);
            }
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        encode_frame(&Frame::<u64>::Protocol(42), &mut buf).unwrap();
        encode_frame(
            &Frame::<u64>::Forward {
                id: RequestId::new(1, 2),
                command: Command::new(crate::state::Op::Get { key: "k".into() }),
            },
            &mut buf,
        )
        .unwrap();
        let mut reader = &buf[..];
        let mut body = Vec::new();
        read_frame(&mut reader, &mut body, 1024).await.unwrap();
        assert!(matches!(postcard::from_bytes::<Frame<u64>>(&body).unwrap(), Frame::Protocol(42)));
        read_frame(&mut reader, &mut body, 1024).await.unwrap();
        assert!(matches!(postcard::from_bytes::<Frame<u64>>(&body).unwrap(), Frame::Forward { .. }));
        assert!(matches!(read_frame(&mut reader, &mut body, 1024).await, Err(WireError::Closed)));
        let huge = (10_000u32).to_le_bytes();
        assert!(matches!(read_frame(&mut &huge[..], &mut body, 1024).await, Err(WireError::TooLarge { .. })));
    }
}
