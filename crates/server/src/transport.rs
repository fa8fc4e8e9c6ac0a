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
use crate::wire::{accept_handshake, dial_handshake, read_frame, Frame};

/// Frames waiting for one peer; beyond this they are dropped.
pub const PEER_QUEUE: usize = 16 * 1024;
/// Largest frame accepted from a peer (a snapshot travels in one frame).
pub const MAX_PEER_FRAME: usize = 512 * 1024 * 1024;

#[derive(Clone)]
pub struct Identity {
    pub id: NodeId,
    pub cluster_id: String,
    pub secret: String,
}

/// Start one dialer per peer; returns the queues the node's writer feeds.
pub fn dial_peers(
    me: &Identity,
    peers: &BTreeMap<NodeId, String>,
    metrics: Arc<Metrics>,
) -> BTreeMap<NodeId, mpsc::Sender<Vec<u8>>> {
    let mut queues = BTreeMap::new();
    for (peer, addr) in peers {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        queues.insert(*peer, tx);
        tokio::spawn(dialer(me.clone(), *peer, addr.clone(), rx, metrics.clone()));
    }
    queues
}

async fn dialer(
    me: Identity,
    peer: NodeId,
    addr: String,
    mut queue: mpsc::Receiver<Vec<u8>>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Duration::from_millis(20);
    let mut logged_down = false;
    loop {
        let connected = async {
            let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            tokio::time::timeout(
                Duration::from_secs(2),
                dial_handshake(&mut stream, &me.cluster_id, me.id.0, &me.secret),
            )
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        }
        .await;
        let mut stream = match connected {
            Ok(stream) => stream,
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

/// Accept peers' connections and feed their frames to the node.
pub async fn accept_peers<M: DeserializeOwned + Send + 'static>(
    me: Identity,
    listener: TcpListener,
    known: Vec<NodeId>,
    node: mpsc::Sender<Input<M>>,
    metrics: Arc<Metrics>,
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
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut nonce = [0u8; 16];
            if getrandom::fill(&mut nonce).is_err() {
                return;
            }
            let from = match tokio::time::timeout(
                Duration::from_secs(2),
                accept_handshake(&mut stream, &me.cluster_id, &me.secret, &known, nonce),
            )
            .await
            {
                Ok(Ok(from)) => NodeId(from),
                Ok(Err(e)) => {
                    warn!(node = me.id.0, %remote, "refused a peer connection: {e}");
                    return;
                }
                Err(_) => {
                    warn!(node = me.id.0, %remote, "refused a peer connection: handshake timed out");
                    return;
                }
            };
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
