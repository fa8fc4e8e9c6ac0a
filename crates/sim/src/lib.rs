//! quorum-sim: the deterministic laboratory.
//!
//! A discrete-event simulator drives any `quorum_core::Protocol` whose
//! requests are KV commands through a lossy, slow, partitioned network, with
//! crashes, restarts and pauses, from one seed. Everything random — latency,
//! loss, the fault schedule, the workload, each node's RNG — is drawn from
//! independent streams derived from that seed, so the same seed (and the same
//! schedule) gives a byte-identical trace.
//!
//! A run has three phases:
//! 1. **safety**: clients issue operations while the nemesis injects faults
//!    from a schedule (generated from the seed, or given explicitly);
//! 2. **liveness**: at `safety_ms` the network heals, crashed nodes restart,
//!    paused nodes resume; every client must finish its operations, then a
//!    final read of every key establishes the final state;
//! 3. **quiescence**: no client traffic; then the replicas' state digests are
//!    compared (convergence).
//!
//! The resulting history is judged by `quorum-check`: linearizability, lost
//! acknowledged writes, split-brain, convergence, liveness.

pub mod config;
pub mod crdt_workload;
pub mod decision_workload;
pub mod diagram;
pub mod explore;
pub mod faults;
mod network;
pub mod outcome;
pub mod proposal_workload;
pub mod redis_workload;
pub mod script;
pub mod swarm;
pub mod txn_workload;
pub mod workload;
mod world;

pub use config::{Budgets, ConfigError, FaultKind, FaultSet, ProtocolChoice, SimConfig, WorkloadKind};
pub use crdt_workload::{ConvergenceFigures, CrdtWorkload};
pub use decision_workload::{DecisionFigures, DecisionWorkload};
pub use explore::{explore, ExploreReport, FirstViolation, Samples, TxnTotals};
pub use faults::{Fault, Schedule, ScheduledFault};
pub use outcome::{Peaks, Percentiles, Replay, RunOutcome, TxnFigures, TxnOp, Violation};
pub use proposal_workload::ProposalWorkload;
pub use redis_workload::RedisWorkload;
pub use swarm::{Fixed, Swarm};
pub use txn_workload::TxnWorkload;
pub use workload::{Completion, KvWorkload, Verdict, Workload};
pub use world::{
    catch_protocol_panic, quiet_panics_in_runs, run, run_traced, run_with, Capture, KvProtocol, RunError,
};
