//! `quorum tour`: every registered protocol explored under its swarm, its
//! claims judged: the always properties it keeps, what it breaks where the
//! source text says it does, and the hard cases the runs reached. Every
//! verdict replays from its seed.

use std::process::ExitCode;

use quorum_registry::claims::Properties;
use quorum_registry::{Registered, PROTOCOLS};
use quorum_sim::{ExploreReport, FaultKind, SimConfig};

use crate::UsageError;

pub fn tour(seeds: u64) -> Result<ExitCode, UsageError> {
    if seeds == 0 {
        return Err(UsageError("--seeds must be at least 1".into()));
    }
    println!(
        "quorum tour: every protocol explored over {seeds} seeds at 5 nodes, each seed drawing its own faults\n\
         (swarm); every verdict replays from its seed.\n"
    );
    let mut replays = Vec::new();
    let mut broken_claims = false;
    for registered in PROTOCOLS {
        let variants: Vec<Option<&str>> = match registered.entry.variants {
            [] => vec![None],
            names => names.iter().map(|v| Some(*v)).collect(),
        };
        for variant in variants {
            let stop = Stop { registered, variant, seeds };
            broken_claims |= stop.visit(&mut replays)?;
        }
    }
    if !replays.is_empty() {
        println!("\nreplay the first break of each (shrunk):");
        for r in replays {
            println!("  {r}");
        }
    }
    Ok(if broken_claims { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

struct Stop<'a> {
    registered: &'a Registered,
    variant: Option<&'a str>,
    seeds: u64,
}

impl Stop<'_> {
    /// Explore, print the protocol's lines; whether a claim broke.
    fn visit(&self, replays: &mut Vec<String>) -> Result<bool, UsageError> {
        let entry = self.registered.entry;
        let label = match self.variant {
            Some(v) => format!("{} --variant {v}", entry.name),
            None => entry.name.to_string(),
        };
        let report = self.explore(false)?;
        let p = Properties::of(entry, &report);
        let claimed = p.always.iter().filter(|a| a.claimed).count();
        let kept = if p.claims_broken.is_empty() {
            format!("all {claimed} claims kept")
        } else {
            format!("CLAIMS BROKEN: {}", p.claims_broken.join(", "))
        };
        println!("{label:<30} {} runs, {kept}; {}", report.runs, entry.summary);
        let reached: Vec<String> =
            p.sometimes.iter().filter(|s| s.declared).map(|s| format!("{} {}", s.name, s.reached)).collect();
        println!("{:<30} hard cases reached: {}", "", reached.join(", "));
        if !entry.breaks.is_empty() {
            // Breaks outside the protocol's own system model need every fault.
            let beyond = entry.model != quorum_core::claims::SystemModel::Asynchronous;
            let breaks = if beyond { self.explore(true)? } else { report };
            let shown: Vec<String> =
                entry.breaks.iter().map(|v| format!("{v} in {} runs", breaks.violations[v.name()])).collect();
            let how = if beyond { " (with every fault, beyond its model)" } else { "" };
            println!("{:<30} breaks, as the text says{how}: {}", "", shown.join(", "));
            if let Some(first) = &breaks.first {
                replays.push(crate::replay::command(&first.replay));
            }
        }
        Ok(!p.claims_broken.is_empty())
    }

    /// The stop's exploration; with `every_fault`, beyond the protocol's
    /// system model (its breaks as the text names them).
    fn explore(&self, every_fault: bool) -> Result<ExploreReport, UsageError> {
        let registered = self.registered;
        let choice = registered.choose(self.variant, None, None)?;
        let mut config = registered.sim_config(choice);
        if let (true, Some(swarm)) = (every_fault, config.swarm.as_mut()) {
            swarm.kinds = FaultKind::KNOWN.to_vec();
            swarm.timely = false;
        }
        registered.validate(&config.protocol, config.nodes)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let run = |c: &SimConfig| registered.run(c, false).expect("settings validated");
        Ok(quorum_sim::explore(&config, self.seeds, threads, registered.entry.breaks, &run, &|| {}))
    }
}
