//! RESP2 for quorum: the codec its server parses client commands with, a
//! small async client, and the load generator behind `quorum bench`, which
//! drives quorum, Redis and etcd with one workload so their figures compare.
//!
//! - [`codec`]: parse commands and replies (never panics, bounded by
//!   [`codec::Limits`]), encode replies and commands.
//! - [`client`]: one connection, `call` and `pipeline`.
//! - [`bench`]: closed-loop load generator with HDR latency histograms.
//! - [`etcd`] and [`http`]: etcd v3's JSON gateway over a minimal HTTP/1.1
//!   client, so the same generator can measure etcd as a baseline.

pub mod bench;
pub mod client;
pub mod codec;
pub mod etcd;
pub mod http;

pub use client::{Client, ClientError};
pub use codec::{encode, encode_command, parse_command, parse_value, Limits, ProtocolError, Value};
