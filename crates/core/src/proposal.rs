//! The proposal workload of the agreement problems whose inputs come from
//! clients (the two generals' coordinated attack): each node is given an
//! input and must decide a value, once. The answer is a
//! [`DecisionResponse`](crate::decision::DecisionResponse).
//!
//! A client asks a node to take part with an input (`propose V`); the node
//! answers with the value it decided when it decides (the first proposal a
//! node receives is its input; later ones are answered with the same
//! decision). What is judged is what the nodes observe: `Propose` when a
//! node adopts its input, `Decide` when it decides (Agreement, Validity,
//! Integrity, and Termination once the faults stop).

use serde::{Deserialize, Serialize};

/// A client's request: take part with input `0` or `1` (binary protocols)
/// or any value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalRequest {
    Propose(u64),
}

/// Text form, for scripts and the model checker: `propose V`.
impl std::str::FromStr for ProposalRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<ProposalRequest, String> {
        match s.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["propose", v] => {
                v.parse().map(ProposalRequest::Propose).map_err(|_| format!("'{v}' is not a number"))
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
        assert_eq!("propose 1".parse::<ProposalRequest>(), Ok(ProposalRequest::Propose(1)));
        assert!("propose".parse::<ProposalRequest>().is_err());
        assert!("propose x".parse::<ProposalRequest>().is_err());
        assert!("write 1 2".parse::<ProposalRequest>().is_err());
    }
}
