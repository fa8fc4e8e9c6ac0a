//! What crosses the wire between nodes: length-prefixed frames, and the
//! handshake that authenticates a peer before any frame is accepted.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of
//! postcard-encoded [`Frame`]. A length above the limit is a protocol error
//! and closes the connection (a corrupt or hostile peer cannot make us
//! allocate gigabytes).
//!
//! Handshake (dialer D, acceptor A): A sends `MAGIC` and a 16-byte random
//! nonce; D answers with a [`Hello`] frame naming its cluster, its node id,
//! `sha256(nonce || secret)` and the incarnation of its data dir; A checks
//! the first three and answers one byte: `ACCEPTED`, `REPLACED` (A knows
//! D's node id from another data dir: D's disk was replaced, and it must not
//! take part under its old id; see `storage`'s incarnations), or closes. The
//! secret never crosses the wire and a recorded proof is useless against
//! another nonce. A probe (`Hello::probe`) asks only for that answer and
//! carries no frames.

use quorum_core::RequestId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::state::{Command, Output};

pub const MAGIC: &[u8; 8] = b"QUORUM02";
pub const ACCEPTED: u8 = 0xA5;
/// The acceptor knows the dialer's node id from another data dir.
pub const REPLACED: u8 = 0xD1;

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
    /// Random, drawn when the dialer's data dir was initialised.
    pub incarnation: u64,
    /// Only asking whether the acceptor knows this node id from another
    /// data dir: the acceptor answers and records nothing.
    pub probe: bool,
}

/// Who dials: the node, its data dir's incarnation, and whether this is a probe.
#[derive(Clone, Copy, Debug)]
pub struct Dialer {
    pub from: u32,
    pub incarnation: u64,
    pub probe: bool,
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
    #[error("the peer knows this node id from another data dir")]
    Replaced,
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

/// The dialer's half of the handshake: `Ok` on `ACCEPTED`,
/// [`WireError::Replaced`] on `REPLACED`.
pub async fn dial_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: &str,
    dialer: Dialer,
    secret: &str,
) -> Result<(), WireError> {
    let mut greeting = [0u8; 24];
    stream.read_exact(&mut greeting).await?;
    if &greeting[..8] != MAGIC {
        return Err(WireError::Refused("the peer is not a quorum node of this version (bad magic)".into()));
    }
    let nonce: [u8; 16] = greeting[8..].try_into().expect("16 bytes");
    let hello = Hello {
        cluster_id: cluster_id.to_string(),
        from: dialer.from,
        proof: proof(&nonce, secret),
        incarnation: dialer.incarnation,
        probe: dialer.probe,
    };
    let mut buf = Vec::new();
    encode_frame(&hello, &mut buf)?;
    stream.write_all(&buf).await?;
    let mut answer = [0u8; 1];
    match stream.read_exact(&mut answer).await {
        Ok(_) if answer[0] == ACCEPTED => Ok(()),
        Ok(_) if answer[0] == REPLACED => Err(WireError::Replaced),
        Ok(_) => Err(WireError::Refused("unexpected handshake answer".into())),
        Err(_) => {
            Err(WireError::Refused("the peer closed the connection (wrong cluster id or secret?)".into()))
        }
    }
}

/// The acceptor's half, up to its answer: returns the authenticated
/// peer's hello. A node id not in `known` is refused like a wrong secret.
/// The caller answers with [`answer_handshake`].
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cluster_id: &str,
    secret: &str,
    known: &[u32],
    nonce: [u8; 16],
) -> Result<Hello, WireError> {
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
    Ok(hello)
}

/// The acceptor's answer: `ACCEPTED`, or `REPLACED` when it knows the
/// dialer's node id from another data dir.
pub async fn answer_handshake<S: AsyncWrite + Unpin>(
    stream: &mut S,
    accepted: bool,
) -> Result<(), WireError> {
    stream.write_all(&[if accepted { ACCEPTED } else { REPLACED }]).await?;
    Ok(())
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
            let dialer = Dialer { from, incarnation: 11, probe: false };
            let dial =
                tokio::spawn(async move { dial_handshake(&mut a, dial_cluster, dialer, dial_secret).await });
            let accepted = accept_handshake(&mut b, "c1", "s3cret", &[6, 7], [9; 16]).await;
            if accepted.is_ok() {
                answer_handshake(&mut b, true).await.unwrap();
            }
            drop(b);
            let dialed = dial.await.unwrap();
            assert_eq!(accepted.is_ok(), ok, "{accepted:?}");
            assert_eq!(dialed.is_ok(), ok, "{dialed:?}");
            if ok {
                let hello = accepted.unwrap();
                assert_eq!((hello.from, hello.incarnation, hello.probe), (7, 11, false));
            }
        }
    }

    #[tokio::test]
    async fn a_replaced_answer_reaches_the_dialer_as_its_own_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let dialer = Dialer { from: 7, incarnation: 12, probe: true };
        let dial = tokio::spawn(async move { dial_handshake(&mut a, "c1", dialer, "s").await });
        let hello = accept_handshake(&mut b, "c1", "s", &[7], [1; 16]).await.unwrap();
        assert!(hello.probe);
        answer_handshake(&mut b, false).await.unwrap();
        assert!(matches!(dial.await.unwrap(), Err(WireError::Replaced)));
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
