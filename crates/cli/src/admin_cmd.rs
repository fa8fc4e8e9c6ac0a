//! `quorum admin --addr A status`: ask a node, then every other node whose
//! client address it knows, for `ADMIN STATUS`, and print one row per
//! member: role, term, commit / applied / last index, and the leader's
//! view of each follower's match index and lag.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use quorum_resp::client::Client;
use quorum_resp::codec::Value;
use serde_json::Value as Json;

use crate::UsageError;

#[derive(Args)]
pub struct AdminArgs {
    /// A node's client (RESP) address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// AUTH with this password.
    #[arg(long, env = "QUORUM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Members, roles, terms, applied and commit indexes, each follower's lag.
    Status {
        /// Print every node's answer as one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub fn admin(args: AdminArgs) -> Result<ExitCode, UsageError> {
    let AdminCommand::Status { json } = args.command;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))?;
    let nodes = rt.block_on(statuses(&args.addr, args.password.as_deref()))?;
    if json {
        let answers: Vec<&Json> = nodes.values().filter_map(|(_, s)| s.as_ref().ok()).collect();
        println!("{}", serde_json::to_string(&answers).expect("serializable"));
    } else {
        print!("{}", table(&nodes));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every node's answer (or why there is none), by id, with its address.
type Answers = BTreeMap<u64, (String, Result<Json, String>)>;

async fn statuses(addr: &str, password: Option<&str>) -> Result<Answers, UsageError> {
    let first = status(addr, password).await.map_err(|e| UsageError(format!("{addr}: {e}")))?;
    let mut nodes = Answers::new();
    let id = first["id"].as_u64().unwrap_or_default();
    let mut others: BTreeMap<u64, Option<String>> = BTreeMap::new();
    for member in
        ["voters", "learners"].iter().flat_map(|k| first[*k].as_array().cloned().unwrap_or_default())
    {
        others.insert(member.as_u64().unwrap_or_default(), None);
    }
    for (node, peer_addr) in first["client_addrs"].as_object().into_iter().flatten() {
        others.insert(node.parse().unwrap_or_default(), peer_addr.as_str().map(str::to_string));
    }
    nodes.insert(id, (addr.to_string(), Ok(first)));
    for (node, peer_addr) in others.into_iter().filter(|(node, _)| *node != id) {
        let answer = match &peer_addr {
            Some(a) => status(a, password).await,
            None => Err("client address unknown (start it with --peer-clients)".to_string()),
        };
        nodes.insert(node, (peer_addr.unwrap_or_else(|| "?".into()), answer));
    }
    Ok(nodes)
}

async fn status(addr: &str, password: Option<&str>) -> Result<Json, String> {
    let ask = async {
        let mut client = Client::connect(addr).await.map_err(|e| e.to_string())?;
        if let Some(password) = password {
            client.call(&[b"AUTH", password.as_bytes()]).await.map_err(|e| e.to_string())?;
        }
        match client.call(&[b"ADMIN", b"STATUS"]).await.map_err(|e| e.to_string())? {
            Value::Bulk(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}")),
            Value::Error(e) => Err(e),
            other => Err(format!("unexpected answer {other:?}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .unwrap_or_else(|_| Err("no answer within 3 s".into()))
}

fn table(nodes: &Answers) -> String {
    let leader = nodes.values().filter_map(|(_, s)| s.as_ref().ok()).find(|s| s["role"] == "leader");
    let lag_of = |node: u64, key: &str| -> String {
        let followers = leader.and_then(|l| l["followers"].as_array());
        let row = followers.and_then(|f| f.iter().find(|r| r["id"].as_u64() == Some(node)));
        row.map_or("-".to_string(), |r| r[key].to_string())
    };
    let mut out = format!(
        "{:<5} {:<22} {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
        "node", "address", "role", "term", "commit", "applied", "last", "match", "lag"
    );
    for (node, (addr, answer)) in nodes {
        match answer {
            Ok(s) => out.push_str(&format!(
                "{:<5} {:<22} {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
                node,
                addr,
                s["role"].as_str().unwrap_or("?"),
                s["term"].to_string(),
                s["commit_index"].to_string(),
                s["applied_index"].to_string(),
                s["last_index"].to_string(),
                lag_of(*node, "match_index"),
                lag_of(*node, "lag"),
            )),
            Err(e) => out.push_str(&format!("{node:<5} {addr:<22} unreachable: {e}\n")),
        }
    }
    match leader {
        Some(l) => out.push_str(&format!(
            "leader: node {} (term {}); at the leader: {} writes committed, {} failed, commit latency p50 {} us, p99 {} us, {} snapshots sent, {} leader changes seen\n",
            l["id"], l["term"], l["proposals_committed"], l["proposals_failed"],
            l["commit_latency_us"]["p50"], l["commit_latency_us"]["p99"], l["snapshot_sends"], l["leader_changes_seen"]
        )),
        None => out.push_str("no node that answered leads (an election, or the leader is unreachable)\n"),
    }
    out
}
