//! `quorum model --protocol P --flp`: FLP's bivalent configurations and the
//! adversary that keeps them (see `quorum_model::flp`), summarised, with
//! the run as a script.

use std::process::ExitCode;

use quorum_core::NodeId;
use quorum_model::{Budgets, FlpConfig, FlpReport, ModelConfig, Valence};
use quorum_registry::flp::INPUTS;
use quorum_registry::Registered;
use quorum_sim::ProtocolChoice;

use crate::model_cmd::ModelArgs;
use crate::UsageError;

/// Timer firings each valence walk (and each search for σ) may use.
const TIMEOUTS: u32 = 8;
/// The longest valence walk.
const WALK_EVENTS: u32 = 200;

/// Exit code 0: a lasso, nothing broken; 1: a property broke; 3: no lasso
/// within `--steps` (or no bivalent start).
pub(crate) fn flp(
    args: &ModelArgs,
    registered: &Registered,
    choice: &ProtocolChoice,
    nodes: u32,
) -> Result<ExitCode, UsageError> {
    let mut model = ModelConfig::new(registered.entry.name, nodes);
    model.budgets = Budgets { timeouts: args.timeouts.unwrap_or(TIMEOUTS), ..Budgets::default() };
    model.max_depth = args.max_depth.unwrap_or(WALK_EVENTS);
    model.requests = (0..nodes).map(|n| (NodeId(n), INPUTS[0].to_string())).collect();
    let config = FlpConfig {
        model,
        inputs: INPUTS.map(String::from),
        steps: args.steps,
        sigma_states: args.sigma_states,
        walks: args.walks.max(1),
    };
    let report = registered.flp(choice, &config)?;
    if let Some(path) = &args.script {
        std::fs::write(path, &report.script)
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        println!("{}", serde_json::json!({ "config": flp_json(&config), "report": report }));
    } else {
        print_report(&config, &report, args.script.is_some());
    }
    Ok(match (&report.violation, report.lasso) {
        (Some(_), _) => ExitCode::from(1),
        (None, None) => ExitCode::from(3),
        (None, Some(_)) => ExitCode::SUCCESS,
    })
}

fn flp_json(config: &FlpConfig) -> serde_json::Value {
    serde_json::json!({
        "protocol": config.model.protocol,
        "nodes": config.model.nodes,
        "inputs": config.inputs,
        "walks": config.walks,
        "walk_events": config.model.max_depth,
        "timer_firings": config.model.budgets.timeouts,
        "sigma_states": config.sigma_states,
        "steps": config.steps,
    })
}

fn print_report(config: &FlpConfig, report: &FlpReport, wrote_script: bool) {
    let m = &config.model;
    println!(
        "FLP on {} ({} nodes): asynchronous, nothing lost, no crash; inputs `{}` / `{}`",
        m.protocol, m.nodes, config.inputs[0], config.inputs[1]
    );
    println!(
        "valence         by {} random walks of at most {} events and {} timer firings",
        config.walks, m.max_depth, m.budgets.timeouts
    );
    println!("Lemma 2         the initial configurations (inputs of n0..n{}):", m.nodes - 1);
    for initial in &report.initial {
        let inputs: Vec<String> = initial.inputs.iter().map(u8::to_string).collect();
        println!("                  {}   {}", inputs.join(" "), valence_text(&initial.valence));
    }
    match &report.start {
        Some(inputs) => {
            let inputs: Vec<String> = inputs.iter().map(u8::to_string).collect();
            println!("start           {} (bivalent)", inputs.join(" "));
        }
        None => println!("start           none found bivalent: nothing to keep undecided"),
    }
    print_run(report);
    match &report.violation {
        Some(what) => println!("verdict         VIOLATED: {what}"),
        None => println!(
            "verdict         agreement and validity hold on every one of the {} states the searches stepped through ({} ms)",
            report.states, report.wall_ms
        ),
    }
    if wrote_script {
        println!("script          written: replay it with `quorum script FILE`");
    }
}

fn print_run(report: &FlpReport) {
    let detours = report.steps.iter().filter(|s| !s.sigma.is_empty()).count();
    let longest = report.steps.iter().map(|s| s.sigma.len()).max().unwrap_or(0);
    println!(
        "Lemma 3         {} steps, each the oldest pending event after a detour σ that keeps the \
         configuration bivalent (σ empty in {}, longest {})",
        report.steps.len(),
        report.steps.len() - detours,
        longest
    );
    if let Some(stuck) = &report.stuck {
        println!("stopped         {stuck}");
    }
    match report.lasso {
        Some(lasso) => {
            println!(
                "lasso           a stem of {} events, then a loop of {} events gone round {} times: \
                 every configuration bivalent, no node decides",
                lasso.stem, lasso.period, lasso.repeats
            );
            for event in &report.events[lasso.stem..lasso.stem + lasso.period] {
                println!("  loop          {event}");
            }
        }
        None => {
            println!("lasso           none closed within {} events (try more --steps)", report.events.len())
        }
    }
}

fn valence_text(v: &Valence) -> String {
    let at = |d: Option<usize>| d.map_or("none found".to_string(), |d| format!("after {d} events"));
    format!("{:<9} (decides 0 {}, 1 {})", v.name(), at(v.zero), at(v.one))
}
