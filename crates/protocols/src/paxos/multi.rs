//! PLACEHOLDER: being written. Rejects every request.

use quorum_core::{ClientOutput, Cluster, NodeId, Out, Protocol, RequestId, StateMachine};
use serde::{Deserialize, Serialize};

/// Deliberately broken variants, for negative controls (`--bug NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    Placeholder,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bug: Option<Bug>,
}

pub struct MultiPaxos<S: StateMachine> {
    state: S,
}

impl<S: StateMachine> Protocol for MultiPaxos<S> {
    type Msg = ();
    type Request = S::Command;
    type Response = S::Output;
    type Record = ();
    type Timer = ();
    type Config = Config;

    fn start(_: &Cluster, _: &Config, _: &[()], _: &mut Out<'_, Self>) -> Self {
        MultiPaxos { state: S::default() }
    }

    fn on_message(&mut self, _: NodeId, _: (), _: &mut Out<'_, Self>) {}

    fn on_timer(&mut self, _: (), _: &mut Out<'_, Self>) {}

    fn on_request(&mut self, id: RequestId, _: S::Command, out: &mut Out<'_, Self>) {
        let _ = &self.state;
        out.reply(id, S::Output::rejected("not implemented yet", None));
    }
}
