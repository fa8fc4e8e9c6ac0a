//! The decision workload of the agreement problems (the two generals'
//! coordinated attack, binary consensus): each node is given an input and
//! must decide a value, once.
//!
//! A client asks a node to take part with an input (`propose V`); the node
//! answers with the value it decided when it decides (the first proposal a
//! node receives is its input; later ones are answered with the same
//! decision). What is judged is what the nodes observe: `Propose` when a
//! node adopts its input, `Decide` when it decides (Agreement, Validity,
//! Integrity, and Termination once the faults stop).

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A client's request: take part with input `0` or `1` (binary protocols)
/// or any value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionRequest {
    Propose(u64),
}

/// The answer: the decision, or a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionResponse {
    /// The node decided this value.
    Decided(u64),
    /// Refused without effect; `hint` names a node worth trying.
    Rejected { reason: String, hint: Option<NodeId> },
    /// May or may not take effect.
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

/// Text form, for scripts and the model checker: `propose V`.
impl std::str::FromStr for DecisionRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<DecisionRequest, String> {
        match s.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["propose", v] => {
                v.parse().map(DecisionRequest::Propose).map_err(|_| format!("'{v}' is not a number"))
            }
            _ => Err(format!("'{s}' is not 'propose VALUE'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_text() {
        assert_eq!("propose 1".parse::<DecisionRequest>(), Ok(DecisionRequest::Propose(1)));
        assert!("propose".parse::<DecisionRequest>().is_err());
        assert!("propose x".parse::<DecisionRequest>().is_err());
        assert!("write 1 2".parse::<DecisionRequest>().is_err());
    }
}
