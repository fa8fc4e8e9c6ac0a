//! Peer transport over TCP.
//!
//! Each node dials every peer (one outbound connection per peer, carrying
//! only that node's frames) and accepts the peers' dials. A dialer keeps
//! reconnecting with capped exponential backoff; frames queued for a peer
//! that is down are dropped, as the protocols expect of a lossy network.
//! Connections are authenticated by the handshake in [`crate::wire`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use quorum_core::NodeId;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::node::Input;
use crate::storage::{Admission, PeerRecords};
use crate::wire::{accept_handshake, answer_handshake, dial_handshake, read_frame, Dialer, Frame, WireError};

/// Frames waiting for one peer; beyond this they are dropped.
pub const PEER_QUEUE: usize = 16 * 1024;
/// Largest frame accepted from a peer (a snapshot travels in one frame).
pub const MAX_PEER_FRAME: usize = 512 * 1024 * 1024;

#[derive(Clone)]
pub struct Identity {
    pub id: NodeId,
    pub cluster_id: String,
    pub secret: String,
    /// This node's data dir's incarnation (see `storage`).
    pub incarnation: u64,
}

impl Identity {
    fn dialer(&self, probe: bool) -> Dialer {
        Dialer { from: self.id.0, incarnation: self.incarnation, probe }
    }
}

/// Connect to `addr` and complete the handshake, within 2 s each.
async fn connect(me: &Identity, addr: &str, probe: bool) -> Result<TcpStream, WireError> {
    let timed_out = |what: &str| WireError::Refused(format!("{what} timed out"));
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect"))??;
    stream.set_nodelay(true)?;
    let handshake = dial_handshake(&mut stream, &me.cluster_id, me.dialer(probe), &me.secret);
    tokio::time::timeout(Duration::from_secs(2), handshake).await.map_err(|_| timed_out("handshake"))??;
    Ok(stream)
}

/// Ask every peer, one after another, whether it knows this node id from
/// another data dir; returns the first that does. A peer that cannot be
/// reached (down, or not started yet: a cluster's first start) cannot tell
/// and is skipped; it will refuse the node's connections later if it does.
pub async fn probe_peers(me: &Identity, peers: &BTreeMap<NodeId, String>) -> Option<NodeId> {
    for (peer, addr) in peers {
        match connect(me, addr, true).await {
            Err(WireError::Replaced) => return Some(*peer),
            Ok(_) => info!(node = me.id.0, %peer, "peer does not know this node from another data dir"),
            Err(e) => warn!(node = me.id.0, %peer, "cannot ask peer whether it knows this node: {e}"),
        }
    }
    None
}

/// Start one dialer per peer; returns the queues the node's writer feeds.
pub fn dial_peers(
    me: &Identity,
    peers: &BTreeMap<NodeId, String>,
    metrics: Arc<Metrics>,
    replaced: mpsc::UnboundedSender<NodeId>,
) -> BTreeMap<NodeId, mpsc::Sender<Vec<u8>>> {
    let mut queues = BTreeMap::new();
    for (peer, addr) in peers {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        queues.insert(*peer, tx);
        tokio::spawn(dialer(me.clone(), *peer, addr.clone(), rx, metrics.clone(), replaced.clone()));
    }
    queues
}

/// Keep one connection to `peer` and write its queue into it. A peer that
/// knows this node id from another data dir is reported on `replaced`
/// (the node must stop) and never sent anything.
async fn dialer(
    me: Identity,
    peer: NodeId,
    addr: String,
    mut queue: mpsc::Receiver<Vec<u8>>,
    metrics: Arc<Metrics>,
    replaced: mpsc::UnboundedSender<NodeId>,
) {
    let mut backoff = Duration::from_millis(20);
    let mut logged_down = false;
    loop {
        let mut stream = match connect(&me, &addr, false).await {
            Ok(stream) => stream,
            Err(WireError::Replaced) => {
                let _ = replaced.send(peer);
                return;
            }
            Err(e) => {
                if !logged_down {
                    warn!(node = me.id.0, %peer, %addr, "peer unreachable, retrying: {e}");
                    logged_down = true;
                }
                // Frames for a peer that is down are dropped, not hoarded.
                while let Ok(_frame) = queue.try_recv() {
                    metrics.peer_frames_dropped.fetch_add(1, Relaxed);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                if queue.is_closed() {
                    return;
                }
                continue;
            }
        };
        info!(node = me.id.0, %peer, %addr, "connected to peer");
        logged_down = false;
        backoff = Duration::from_millis(20);
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let Some(frame) = queue.recv().await else { return };
            buf.clear();
            buf.extend_from_slice(&frame);
            while buf.len() < 256 * 1024 {
                match queue.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if let Err(e) = stream.write_all(&buf).await {
                debug!(node = me.id.0, %peer, "peer connection lost: {e}");
                break;
            }
        }
    }
}

/// Accept peers' connections and feed their frames to the node. A peer is
/// judged by its incarnation against `records` before it is accepted.
pub async fn accept_peers<M: DeserializeOwned + Send + 'static>(
    me: Identity,
    listener: TcpListener,
    known: Vec<NodeId>,
    node: mpsc::Sender<Input<M>>,
    metrics: Arc<Metrics>,
    records: Arc<PeerRecords>,
) {
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("peer listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let me = me.clone();
        let known: Vec<u32> = known.iter().map(|n| n.0).collect();
        let node = node.clone();
        let metrics = metrics.clone();
        let records = records.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Some(from) = admit_peer(&me, &mut stream, remote, &known, &records).await else { return };
            let mut reader = BufReader::with_capacity(256 * 1024, stream);
            let mut body = Vec::new();
            loop {
                if let Err(e) = read_frame(&mut reader, &mut body, MAX_PEER_FRAME).await {
                    debug!(node = me.id.0, %from, "peer connection ends: {e}");
                    return;
                }
                let frame: Frame<M> = match postcard::from_bytes(&body) {
                    Ok(frame) => frame,
                    Err(e) => {
                        warn!(node = me.id.0, %from, "closing a peer connection: undecodable frame: {e}");
                        return;
                    }
                };
                metrics.peer_frames_received.fetch_add(1, Relaxed);
                if node.send(Input::Peer { from, frame }).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The acceptor's handshake and judgement: the peer's id if it is accepted
/// and will send frames (not a probe).
async fn admit_peer(
    me: &Identity,
    stream: &mut TcpStream,
    remote: std::net::SocketAddr,
    known: &[u32],
    records: &PeerRecords,
) -> Option<NodeId> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).ok()?;
    let handshake = accept_handshake(stream, &me.cluster_id, &me.secret, known, nonce);
    let hello = match tokio::time::timeout(Duration::from_secs(2), handshake).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            warn!(node = me.id.0, %remote, "refused a peer connection: {e}");
            return None;
        }
        Err(_) => {
            warn!(node = me.id.0, %remote, "refused a peer connection: handshake timed out");
            return None;
        }
    };
    let accepted = match records.admit(hello.from, hello.incarnation, hello.probe) {
        Ok(Admission::Known | Admission::New) => true,
        Ok(Admission::Replaced { remembered }) => {
            warn!(node = me.id.0, peer = hello.from, remembered, presented = hello.incarnation, "refused node {}: it was seen under another data dir (incarnation {remembered}); its disk was replaced and it forgot its votes and log", hello.from);
            false
        }
        Err(e) => {
            warn!(
                node = me.id.0,
                peer = hello.from,
                "refused a peer connection: cannot record its incarnation: {e:#}"
            );
            return None;
        }
    };
    answer_handshake(stream, accepted).await.ok()?;
    (accepted && !hello.probe).then_some(NodeId(hello.from))
}
