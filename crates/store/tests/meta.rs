//! The data dir's identity file: stamped once, checked on every start.

use std::fs;

use quorum_store::{check_or_init_meta, NodeMeta, StoreError, Wal, WalOptions, META_FILE};

fn node(cluster_id: &str, node_id: u32) -> NodeMeta {
    NodeMeta { cluster_id: cluster_id.to_string(), node_id, protocol: None }
}

fn running(cluster_id: &str, node_id: u32, protocol: &str) -> NodeMeta {
    NodeMeta { protocol: Some(protocol.to_string()), ..node(cluster_id, node_id) }
}

#[test]
fn first_start_stamps_the_dir_and_later_starts_accept_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node-1");
    check_or_init_meta(&dir, &node("alpha", 1)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(META_FILE)).unwrap()).unwrap();
    assert_eq!(json, serde_json::json!({"version": 1, "cluster_id": "alpha", "node_id": 1}));
    check_or_init_meta(&dir, &node("alpha", 1)).unwrap();
    let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![META_FILE]);
}

#[test]
fn another_cluster_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    check_or_init_meta(dir.path(), &node("alpha", 1)).unwrap();
    let error = check_or_init_meta(dir.path(), &node("beta", 1)).unwrap_err();
    let message = error.to_string();
    match error {
        StoreError::Mismatch { found, expected, .. } => {
            assert_eq!(found.as_deref(), Some(&node("alpha", 1)));
            assert_eq!(*expected, node("beta", 1));
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert!(message.contains("cluster \"alpha\" node 1"), "{message}");
    assert!(message.contains("cluster \"beta\" node 1"), "{message}");
}

#[test]
fn another_node_id_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    check_or_init_meta(dir.path(), &node("alpha", 1)).unwrap();
    let message = check_or_init_meta(dir.path(), &node("alpha", 2)).unwrap_err().to_string();
    assert!(message.contains("node 1, but this node is cluster \"alpha\" node 2"), "{message}");
}

#[test]
fn a_log_without_an_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(b"someone's record").unwrap();
    wal.sync().unwrap();
    drop(wal);
    match check_or_init_meta(dir.path(), &node("alpha", 1)) {
        Err(StoreError::Mismatch { found: None, .. }) => {}
        other => panic!("expected Mismatch without a found identity, got {other:?}"),
    }
    assert!(!dir.path().join(META_FILE).exists(), "the dir must not be stamped");
}

#[test]
fn a_damaged_identity_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(META_FILE), b"{\"version\": 1, \"cluster_id\": \"alpha\"").unwrap();
    assert!(matches!(check_or_init_meta(dir.path(), &node("alpha", 1)), Err(StoreError::Corrupt { .. })));
    fs::write(dir.path().join(META_FILE), b"{\"version\": 9, \"cluster_id\": \"alpha\", \"node_id\": 1}")
        .unwrap();
    assert!(matches!(check_or_init_meta(dir.path(), &node("alpha", 1)), Err(StoreError::Corrupt { .. })));
}

#[test]
fn another_protocol_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    check_or_init_meta(dir.path(), &running("alpha", 1, "raft")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join(META_FILE)).unwrap()).unwrap();
    assert_eq!(json["protocol"], "raft");
    check_or_init_meta(dir.path(), &running("alpha", 1, "raft")).unwrap();
    let message = check_or_init_meta(dir.path(), &running("alpha", 1, "zab")).unwrap_err().to_string();
    assert!(
        message.contains("node 1 running raft, but this node is cluster \"alpha\" node 1 running zab"),
        "{message}"
    );
}

/// A meta.json from before the protocol was recorded names none: any
/// protocol may open it (the records themselves are still checked).
#[test]
fn an_identity_without_a_protocol_admits_any() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(META_FILE), b"{\"version\": 1, \"cluster_id\": \"alpha\", \"node_id\": 1}")
        .unwrap();
    check_or_init_meta(dir.path(), &running("alpha", 1, "zab")).unwrap();
    check_or_init_meta(dir.path(), &running("alpha", 1, "raft")).unwrap();
    assert!(check_or_init_meta(dir.path(), &running("alpha", 2, "raft")).is_err());
}
