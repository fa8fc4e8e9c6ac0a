//! Claims: what a protocol promises, in the vocabulary of stateright's
//! properties, so that a laboratory run can be judged against it by
//! machine.
//!
//! * An **always** property holds in every run: the protocol never shows a
//!   [`Violation`] of that kind (a linearizability violation, a lost
//!   acknowledged write, two leaders in one term...). A protocol claims a
//!   set of them; the laboratory checks every kind on every run anyway, so
//!   the ones the source text says a weak protocol breaks are shown broken.
//! * A **sometimes** property is reached in at least one run: the hard case
//!   the always properties must survive actually happened (a leader
//!   changed, a snapshot was installed, a retried write was deduplicated, a
//!   cohort was left in doubt). "0 violations" means nothing if the run
//!   never got there. A protocol reports reaching one of its own with
//!   [`Observation::Reached`](crate::Observation::Reached); the ones in
//!   [`reached`] the driver sees for itself.
//! * A [`SystemModel`] says which faults the claims assume: 3PC is
//!   non-blocking and atomic only when nodes fail by stopping and messages
//!   arrive in time.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A kind of broken promise a run can show. Each is an `always` property
/// turned around: a protocol that claims `Linearizability` promises that no
/// run shows a linearizability violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// A protocol invariant (or the simulator) panicked.
    Panic,
    /// The run exceeded a budget (events, queue length, events per simulated
    /// millisecond): a message storm or a zero-delay loop. The run was cut
    /// short; only its safety verdicts so far count.
    Runaway,
    Linearizability,
    LostAckedWrites,
    SplitBrain,
    Divergence,
    Liveness,
    LogSafety,
    ElectionSafety,
    Consensus,
    Termination,
    ClusterInvariant,
    Atomicity,
    Balance,
    /// Lamport, Shostak, Pease 1982, IC1: two loyal lieutenants obeyed
    /// different orders of one commander.
    Ic1,
    /// IC2: a loyal commander's order was not obeyed by a loyal lieutenant.
    Ic2,
}

impl Violation {
    /// Every kind, in the order a run lists them.
    pub const ALL: [Violation; 16] = [
        Violation::Panic,
        Violation::Runaway,
        Violation::Linearizability,
        Violation::LostAckedWrites,
        Violation::SplitBrain,
        Violation::Divergence,
        Violation::Liveness,
        Violation::LogSafety,
        Violation::ElectionSafety,
        Violation::Consensus,
        Violation::Termination,
        Violation::ClusterInvariant,
        Violation::Atomicity,
        Violation::Balance,
        Violation::Ic1,
        Violation::Ic2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Violation::Panic => "panic",
            Violation::Runaway => "runaway",
            Violation::Linearizability => "linearizability",
            Violation::LostAckedWrites => "lost_acked_writes",
            Violation::SplitBrain => "split_brain",
            Violation::Divergence => "divergence",
            Violation::Liveness => "liveness",
            Violation::LogSafety => "log_safety",
            Violation::ElectionSafety => "election_safety",
            Violation::Consensus => "consensus",
            Violation::Termination => "termination",
            Violation::ClusterInvariant => "cluster_invariant",
            Violation::Atomicity => "atomicity",
            Violation::Balance => "balance",
            Violation::Ic1 => "ic1",
            Violation::Ic2 => "ic2",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Violation {
    type Err = String;

    fn from_str(s: &str) -> Result<Violation, String> {
        Violation::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Violation::ALL.iter().map(|v| v.name()).collect();
            format!("unknown violation kind '{s}' (expected one of: {})", names.join(", "))
        })
    }
}

/// The faults a protocol's claims assume (the source text's system models).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemModel {
    /// Crash-recovery nodes (crashes, kills, pauses) on an asynchronous
    /// network (loss, duplication, delay, partitions): every fault the
    /// laboratory has.
    Asynchronous,
    /// Nodes fail only by stopping (and may recover from their logs);
    /// every message arrives, in time. No partitions, loss or delay.
    FailStop,
    /// Nodes never fail and delays are bounded, but any message may be lost
    /// (the two generals' messengers): loss, duplication and partitions,
    /// and a timer fires only once what is in flight has arrived or is gone.
    Lossy,
    /// Lamport, Shostak, Pease 1982's synchronous system with traitors:
    /// every message sent arrives, within a bound every node knows (A1, A3:
    /// a missing message is detected by a timeout and read as the default),
    /// the receiver knows who sent it (A2), clocks agree; nodes never crash,
    /// but up to the protocol's bound of them are Byzantine, driven by a
    /// strategy (`core::byzantine`). The checkers judge the loyal ones.
    Byzantine,
}

/// A "sometimes" property: reached in at least one run of an exploration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Sometimes {
    /// A snake_case name, as reports show it.
    pub name: &'static str,
    /// What reaching it means, in a sentence.
    pub what: &'static str,
}

/// "Sometimes" properties every driver can see for itself, from any
/// protocol's run.
pub mod reached {
    use super::Sometimes;

    pub const LEADER_CHANGED: Sometimes =
        Sometimes { name: "leader_changed", what: "more than one term (view, epoch) had a leader" };
    pub const LEADER_CRASHED: Sometimes = Sometimes {
        name: "leader_crashed",
        what: "a leader crashed and a leader of a higher term took over (failover)",
    };
    pub const WRITE_REFUSED: Sometimes = Sometimes {
        name: "write_refused",
        what: "an update was refused without effect (consistency chosen over availability)",
    };
    pub const OUTCOME_UNKNOWN: Sometimes = Sometimes {
        name: "outcome_unknown",
        what: "a client could not learn whether its operation took effect",
    };
    pub const RECOVERED: Sometimes =
        Sometimes { name: "recovered", what: "a node restarted from durable records and rejoined" };
    pub const RETRIED: Sometimes =
        Sometimes { name: "retried", what: "a client re-sent an update with the same request id" };
    pub const COMMITTED: Sometimes =
        Sometimes { name: "committed", what: "a transaction committed at every participant" };
    pub const ABORTED: Sometimes = Sometimes { name: "aborted", what: "a transaction aborted" };

    /// Every one of them.
    pub const ALL: [Sometimes; 8] = [
        LEADER_CHANGED,
        LEADER_CRASHED,
        WRITE_REFUSED,
        OUTCOME_UNKNOWN,
        RECOVERED,
        RETRIED,
        COMMITTED,
        ABORTED,
    ];
}
