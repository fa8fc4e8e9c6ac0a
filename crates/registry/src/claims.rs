//! An exploration judged against a protocol's claims: for every always
//! property, in how many runs it held and whether the protocol claims it
//! (or the source text says it breaks); for every sometimes property, in how
//! many runs it was reached. "0 violating" means little until the table
//! shows the hard cases were reached.

use quorum_core::claims::Violation;
use quorum_protocols::catalog::Entry;
use quorum_sim::ExploreReport;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Always {
    pub name: &'static str,
    /// The protocol claims it (under its system model).
    pub claimed: bool,
    /// The source text says the protocol breaks it.
    pub breaks: bool,
    pub held: u64,
    pub broken: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sometimes {
    pub name: String,
    /// The protocol's entry lists it (others are reached by the driver's
    /// own properties, shown for information).
    pub declared: bool,
    pub reached: u64,
}

/// The claims table of one exploration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Properties {
    pub always: Vec<Always>,
    pub sometimes: Vec<Sometimes>,
    /// Declared sometimes properties that no run reached: the exploration
    /// never got to the case they name.
    pub never_reached: Vec<&'static str>,
    /// Claimed always properties some run broke.
    pub claims_broken: Vec<&'static str>,
}

impl Properties {
    pub fn of(entry: &Entry, report: &ExploreReport) -> Properties {
        let always: Vec<Always> = Violation::ALL
            .iter()
            .map(|&v| {
                let broken = report.violations.get(v.name()).copied().unwrap_or(0);
                Always {
                    name: v.name(),
                    claimed: entry.claims(v),
                    breaks: entry.breaks.contains(&v),
                    held: report.runs - broken,
                    broken,
                }
            })
            .collect();
        let count = |name: &str| report.reached.get(name).copied().unwrap_or(0);
        let mut sometimes: Vec<Sometimes> = entry
            .sometimes
            .iter()
            .map(|s| Sometimes { name: s.name.to_string(), declared: true, reached: count(s.name) })
            .collect();
        for (name, reached) in &report.reached {
            if !entry.sometimes.iter().any(|s| s.name == name) {
                sometimes.push(Sometimes { name: name.clone(), declared: false, reached: *reached });
            }
        }
        Properties {
            never_reached: entry.sometimes.iter().filter(|s| count(s.name) == 0).map(|s| s.name).collect(),
            claims_broken: always.iter().filter(|a| a.claimed && a.broken > 0).map(|a| a.name).collect(),
            always,
            sometimes,
        }
    }
}
