//! The decision workload of a consensus protocol whose inputs are its own
//! (Ben-Or's binary consensus: each node's input bit comes from its
//! settings): a client asks a node what it decided for an instance, which
//! starts the instance there if it has not started, and the node answers
//! once it has decided. The consensus properties themselves are judged from
//! the nodes' `Propose` and `Decide` observations, not from these answers.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A client's question: "what did you decide for `instance`?" (starting
/// it if need be). Text form `decision INSTANCE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionQuery {
    pub instance: u64,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionResponse {
    /// The node decided `value`; it never decides anything else.
    Decided(u64),
    /// Refused without effect (too many questions waiting); `hint` names a
    /// node worth trying.
    Rejected { reason: String, hint: Option<NodeId> },
    /// No answer this time (for the `ClientOutput` contract; a question
    /// changes nothing, so it is never in doubt).
    Indeterminate { reason: String },
}

impl crate::ClientOutput for DecisionResponse {
    fn rejected(reason: impl Into<String>, hint: Option<NodeId>) -> Self {
        DecisionResponse::Rejected { reason: reason.into(), hint }
    }

    fn indeterminate(reason: impl Into<String>) -> Self {
        DecisionResponse::Indeterminate { reason: reason.into() }
    }
}

impl std::str::FromStr for DecisionQuery {
    type Err = String;

    fn from_str(s: &str) -> Result<DecisionQuery, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            ["decision", instance] => instance
                .parse()
                .map(|instance| DecisionQuery { instance })
                .map_err(|_| format!("'{instance}' is not an instance number")),
            _ => Err(format!("unknown request '{s}' (expected 'decision INSTANCE')")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_parses_and_nothing_else_does() {
        assert_eq!("decision 7".parse::<DecisionQuery>(), Ok(DecisionQuery { instance: 7 }));
        assert!("decision".parse::<DecisionQuery>().is_err());
        assert!("decision x".parse::<DecisionQuery>().is_err());
        assert!("write 1 2".parse::<DecisionQuery>().is_err());
    }
}
