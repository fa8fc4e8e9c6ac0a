//! The trace: every delivery, drop, timer, persist and effect of a run as
//! JSON lines, when asked for. A line's body is built only when tracing is
//! on, so an untraced run pays nothing for it.

use quorum_core::{NodeId, Time};
use serde::Serialize;

#[derive(Serialize)]
struct TraceLine<'a> {
    t: u64,
    ev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<u32>,
    #[serde(flatten)]
    body: serde_json::Value,
}

pub(super) struct Trace {
    out: Option<String>,
}

impl Trace {
    pub(super) fn new(enabled: bool) -> Trace {
        Trace { out: enabled.then(String::new) }
    }

    pub(super) fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Append one line; `body` (a JSON object) is built only if tracing.
    pub(super) fn line(
        &mut self,
        now: Time,
        ev: &str,
        node: Option<NodeId>,
        body: impl FnOnce() -> serde_json::Value,
    ) {
        if let Some(out) = self.out.as_mut() {
            let line = TraceLine { t: now.as_micros(), ev, node: node.map(|n| n.0), body: body() };
            out.push_str(&serde_json::to_string(&line).expect("trace lines serialize"));
            out.push('\n');
        }
    }

    pub(super) fn take(&mut self) -> Option<String> {
        self.out.take()
    }
}
