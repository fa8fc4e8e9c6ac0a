//! The Paxos family: single-decree Paxos, one write-once instance per key
//! ([`single`], Paxos Made Simple §2), and Multi-Paxos, a replicated log of
//! instances under a stable leader ([`multi`], §3). Each is split by role as
//! its module doc maps; both count with [`crate::quorum`].

pub mod multi;
pub mod single;

use quorum_core::claims::{reached, SystemModel, Violation};

use crate::catalog;

/// The catalogue entry of single-decree Paxos (source text, "Paxos").
pub const PAXOS: catalog::Entry = catalog::Entry {
    name: "paxos",
    section: "Paxos",
    summary: "single-decree consensus per key from proposers, acceptors and learners with ballots (counter, node); \
              Agreement, Validity, Integrity under all faults; may not terminate with dueling proposers",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::RECOVERED, reached::OUTCOME_UNKNOWN],
    workload: catalog::Workload::Kv { cas: false },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "accept-without-promise-check",
            what: "an acceptor accepts a proposal below the ballot it promised (Paxos Made Simple §2.2, P1a)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
        catalog::Bug {
            name: "forget-promises",
            what: "an acceptor does not force promises and acceptances: after a restart it forgot them (§2.3)",
            caught_as: &[Violation::Consensus, Violation::Linearizability],
        },
    ],
    explorable: &[],
    retries: 0,
};

/// The catalogue entry of Multi-Paxos (source text, "Multi-paxos").
pub const MULTI_PAXOS: catalog::Entry = catalog::Entry {
    name: "multi-paxos",
    section: "Multi-paxos",
    summary: "a replicated log: a stable leader runs phase 1 once for all slots, fills gaps with no-ops, \
              batches and pipelines; linearizable, durable with a minority down",
    model: SystemModel::Asynchronous,
    always: catalog::EVERYTHING,
    breaks: &[],
    sometimes: &[reached::LEADER_CHANGED, reached::LEADER_CRASHED, reached::RECOVERED],
    workload: catalog::Workload::Kv { cas: true },
    variants: &[],
    bugs: &[
        catalog::Bug {
            name: "skip-phase1-recovery",
            what: "a new leader ignores the values its promises report and proposes after its own prefix",
            caught_as: &[Violation::LogSafety, Violation::Linearizability, Violation::LostAckedWrites],
        },
        catalog::Bug {
            name: "unconfirmed-reads",
            what: "the leader answers reads from its state without confirming it still leads",
            caught_as: &[Violation::Linearizability],
        },
    ],
    explorable: &[catalog::Setting { name: "check_quorum", values: catalog::ON_OFF }],
    retries: 0,
};
