//! Liveness after the heal: every client must finish, and must have been
//! answered at least once from the replicated state. A definite no (a cas
//! that did not match, a write to a write-once register that chose another
//! value) is such an answer; a refusal to serve is not.

use quorum_core::claims::Violation;
use quorum_core::{Cluster, ConfigError, KvCommand, KvResponse, NodeId, Out, Protocol, RequestId};
use quorum_sim::{run, SimConfig};

/// A toy register per key that some earlier writer already set: every
/// write is answered with a definite no (`CasMismatch`, as a write-once
/// Paxos instance answers a losing write), and reads are refused except
/// the final reader's (the simulator's client number `clients`), so no
/// client is ever answered `ok`: what it is answered from the state is the
/// no. With `serving` off, writes are refused too. Before `refuse_until`
/// (µs) every request is refused, and after it every read is answered (a
/// cluster that elects a leader for a while after the heal).
struct Decided {
    serving: bool,
    final_reader: u64,
    refuse_until: u64,
}

impl Protocol for Decided {
    type Msg = ();
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = ();
    type Timer = u8;
    /// Whether writes are answered, the final reader's client number, and
    /// until when everything is refused.
    type Config = (bool, u64, u64);

    fn validate(_: &(bool, u64, u64), _: &[NodeId]) -> Result<(), ConfigError> {
        Ok(())
    }

    fn start(_: &Cluster, config: &(bool, u64, u64), _: &[()], _: &mut Out<'_, Self>) -> Self {
        let &(serving, final_reader, refuse_until) = config;
        Decided { serving, final_reader, refuse_until }
    }

    fn on_message(&mut self, _: NodeId, _: (), _: &mut Out<'_, Self>) {}

    fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        let electing = out.now().as_micros() < self.refuse_until;
        let response = match request {
            _ if electing => KvResponse::Rejected { reason: "electing".into(), hint: None },
            KvCommand::Write { .. } if self.serving => KvResponse::CasMismatch,
            KvCommand::Read { .. } if id.client == self.final_reader || self.refuse_until > 0 => {
                KvResponse::Read(None)
            }
            _ => KvResponse::Rejected { reason: "unavailable".into(), hint: None },
        };
        out.reply(id, response);
    }
}

fn config() -> SimConfig {
    let mut config = SimConfig::new("decided");
    config.nodes = 3;
    config.cas = false;
    config.ops = 60;
    config.clients = 3;
    config
}

#[test]
fn a_client_answered_only_by_definite_noes_after_the_heal_has_finished() {
    let config = config();
    let outcome = run::<Decided>(&config, &(true, config.clients.into(), 0)).expect("valid settings");
    assert!(outcome.ops_fail > 0, "writes answered no, reads refused");
    assert_eq!(outcome.writes_failed, 0, "a definite no is not a refused write");
    assert!(outcome.liveness_ok);
    assert!(!outcome.violations.contains(&Violation::Liveness));
}

/// The negative twin: a cluster that refuses everything after the heal
/// answers every client, but serves none of them.
#[test]
fn clients_refused_after_the_heal_are_a_liveness_violation() {
    let config = config();
    let outcome = run::<Decided>(&config, &(false, config.clients.into(), 0)).expect("valid settings");
    assert!(outcome.writes_failed > 0, "writes refused");
    assert!(!outcome.liveness_ok);
    assert!(outcome.violations.contains(&Violation::Liveness));
}

/// A client refused after the heal (no leader yet) is not done with that
/// operation: refusals do not count against its operations, so it keeps
/// asking until the cluster serves it. Here every request is refused for
/// 2 s after the heal, longer than the clients' remaining operations last
/// at their pace.
#[test]
fn clients_refused_while_the_cluster_recovers_keep_asking_until_served() {
    let config = config();
    let heal_us = config.safety_ms * 1_000;
    let recovering = (true, config.clients.into(), heal_us + 2_000_000);
    let outcome = run::<Decided>(&config, &recovering).expect("valid settings");
    assert!(outcome.writes_failed > 0, "writes were refused while it recovered");
    assert!(outcome.liveness_ok);
    assert!(!outcome.violations.contains(&Violation::Liveness));
}
