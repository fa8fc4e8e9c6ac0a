//! Liveness after the heal: every client must finish, and must have been
//! answered at least once from the replicated state. A definite no (a cas
//! that did not match, a write to a write-once register that chose another
//! value) is such an answer; a refusal to serve is not.

use quorum_core::claims::Violation;
use quorum_core::{Cluster, ConfigError, KvCommand, KvResponse, Micros, NodeId, Out, Protocol, RequestId};
use quorum_sim::{run, SimConfig};

/// A toy register per key that some earlier writer already set: every
/// write is answered with a definite no (`CasMismatch`, as a write-once
/// Paxos instance answers a losing write), and reads are refused until
/// [`READS_FROM`], after the clients finished and before the final reads
/// (at the end of quiescence), so no client is ever answered `ok`: what it
/// is answered from the state is the no. With `serving` off, writes are
/// refused too.
struct Decided {
    serving: bool,
}

/// The heal is at 5 s (the safety phase), the final reads 3 s after the
/// clients finish (quiescence).
const READS_FROM: Micros = Micros(7_000_000);

impl Protocol for Decided {
    type Msg = ();
    type Request = KvCommand;
    type Response = KvResponse;
    type Record = ();
    type Timer = u8;
    type Config = bool;

    fn validate(_: &bool, _: &[NodeId]) -> Result<(), ConfigError> {
        Ok(())
    }

    fn start(_: &Cluster, serving: &bool, _: &[()], _: &mut Out<'_, Self>) -> Self {
        Decided { serving: *serving }
    }

    fn on_message(&mut self, _: NodeId, _: (), _: &mut Out<'_, Self>) {}

    fn on_timer(&mut self, _: u8, _: &mut Out<'_, Self>) {}

    fn on_request(&mut self, id: RequestId, request: KvCommand, out: &mut Out<'_, Self>) {
        let response = match request {
            KvCommand::Write { .. } if self.serving => KvResponse::CasMismatch,
            KvCommand::Read { .. } if out.now().as_micros() >= READS_FROM.0 => KvResponse::Read(None),
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
    let outcome = run::<Decided>(&config, &true).expect("valid settings");
    assert_eq!(outcome.ops_ok, u64::from(config.keys), "only the final reads were answered ok");
    assert_eq!(outcome.writes_failed, 0, "a definite no is not a refused write");
    assert!(outcome.liveness_ok);
    assert!(!outcome.violations.contains(&Violation::Liveness));
}

/// The negative twin: a cluster that refuses everything after the heal
/// answers every client, but serves none of them.
#[test]
fn clients_refused_after_the_heal_are_a_liveness_violation() {
    let config = config();
    let outcome = run::<Decided>(&config, &false).expect("valid settings");
    assert_eq!(outcome.ops_ok, u64::from(config.keys), "only the final reads were answered ok");
    assert!(!outcome.liveness_ok);
    assert!(outcome.violations.contains(&Violation::Liveness));
}
