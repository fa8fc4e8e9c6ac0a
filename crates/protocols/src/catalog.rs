//! The catalogue: every protocol the CLI can run, with the guarantee it
//! claims. Drivers dispatch on these names; protocols never see them.

/// One row of `quorum list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The `--protocol` name.
    pub name: &'static str,
    /// The source text's section.
    pub section: &'static str,
    /// What it promises (and, where the text says so, what it does not).
    pub claims: &'static str,
    /// Whether the laboratory holds it to linearizability of the KV history.
    pub linearizable: bool,
    /// Whether acknowledged writes must survive every fault it is run under.
    pub durable: bool,
    /// Whether it serves compare-and-set (ABD registers cannot: cas needs consensus).
    pub cas: bool,
    /// Variants accepted by `--variant` (empty: none).
    pub variants: &'static [&'static str],
    /// Deliberately broken variants accepted by `--bug` (negative controls).
    pub bugs: &'static [&'static str],
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "sync",
        section: "Synchronous",
        claims: "N-of-N: a write is acknowledged only once every node has it durably; \
                 linearizable, no acknowledged write lost with N-1 crashes; writes fail while any node is down",
        linearizable: true,
        durable: true,
        cas: true,
        variants: &[],
        bugs: &[],
    },
    Entry {
        name: "async",
        section: "Asynchronous",
        claims: "1-of-N: the primary acknowledges at once and propagates lazily; \
                 stale reads, acknowledged writes lost if the primary dies first; replicas converge when faults stop",
        linearizable: false,
        durable: false,
        cas: true,
        variants: &[],
        bugs: &[],
    },
    Entry {
        name: "primary-backup",
        section: "Master-slave replication",
        claims: "a primary ships its log to backups (sync: waits for them; async: does not); failover by timeout; \
                 lost updates and split-brain under partition",
        linearizable: false,
        durable: false,
        cas: true,
        variants: &["sync", "async"],
        bugs: &[],
    },
    Entry {
        name: "abd",
        section: "Quorums: consensus by majority",
        claims: "a linearizable register from majority quorums (reads write back); \
                 available with a minority down, no leader",
        linearizable: true,
        durable: true,
        cas: false,
        variants: &[],
        bugs: &[],
    },
    Entry {
        name: "paxos",
        section: "Paxos",
        claims: "single-decree consensus per key from proposers, acceptors and learners with ballots (counter, node); \
                 Agreement, Validity, Integrity under all faults; may not terminate with dueling proposers",
        linearizable: true,
        durable: true,
        cas: false,
        variants: &[],
        bugs: &["accept-without-promise-check", "forget-promises"],
    },
    Entry {
        name: "multi-paxos",
        section: "Multi-paxos",
        claims: "a replicated log: a stable leader runs phase 1 once for all slots, fills gaps with no-ops, \
                 batches and pipelines; linearizable, durable with a minority down",
        linearizable: true,
        durable: true,
        cas: true,
        variants: &[],
        bugs: &["skip-phase1-recovery", "unconfirmed-reads"],
    },
    Entry {
        name: "raft",
        section: "Raft",
        claims: "a replicated log with leader election (pre-vote, check-quorum), snapshots, membership change, \
                 ReadIndex reads and leadership transfer; linearizable, durable with a minority down",
        linearizable: true,
        durable: true,
        cas: true,
        variants: &[],
        bugs: &["commit-old-term", "no-persist-vote", "stale-read", "no-sessions"],
    },
    Entry {
        name: "zab",
        section: "ZAB",
        claims: "atomic broadcast with discovery, synchronisation and broadcast phases, epochs and zxids; \
                 primary order, linearizable writes, linearizable reads after sync",
        linearizable: true,
        durable: true,
        cas: true,
        variants: &[],
        bugs: &["skip-sync-truncate", "commit-without-quorum"],
    },
    Entry {
        name: "2pc",
        section: "2-phase-commit",
        claims: "atomic commit of bank transfers across cohorts: forced prepare/decision records, 3n messages \
                 (+n acks); blocks while the coordinator is down, recovers from its log, cooperative termination",
        linearizable: false,
        durable: true,
        cas: false,
        variants: &[],
        bugs: &["no-force-prepare", "no-force-decision"],
    },
    Entry {
        name: "3pc",
        section: "3-phase-commit",
        claims: "canCommit / preCommit / doCommit with timeouts and a promoted recovery coordinator: \
                 no blocking under fail-stop crashes; a partition splits the decision",
        linearizable: false,
        durable: false,
        cas: false,
        variants: &[],
        bugs: &["no-force-prepare"],
    },
];

/// The entry named `name`, if any.
pub fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}
