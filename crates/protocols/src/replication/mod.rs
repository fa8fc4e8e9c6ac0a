//! The replication family of the survey's first sections: synchronous
//! (N-of-N), asynchronous (1-of-N), primary-backup with failover, and ABD
//! (a linearizable register from majority quorums).

pub mod abd;
pub mod asynchronous;
pub mod primary_backup;
pub mod sync;
