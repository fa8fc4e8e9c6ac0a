//! A counterexample as a script: the path's steps as script commands, each
//! with the output a script run prints for it, so `quorum script FILE`
//! replays the path step by step and shows every message, persist and
//! observation on the way to the violation.

use std::fmt::Debug;
use std::str::FromStr;

use quorum_core::Protocol;
use quorum_sim::script::{render_blocks, Block, Scripted};

use crate::state::Action;
use crate::{cluster_line, Found, ModelConfig, ModelError};

/// The script of `found`'s path for `model` (the protocol's settings as
/// `config_json`), expected outputs filled in by running it.
pub fn counterexample_script<P>(
    model: &ModelConfig,
    config_json: &str,
    found: &Found<P::Timer>,
) -> Result<String, ModelError>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let b = model.budgets;
    let preamble = format!(
        "# A counterexample found by `quorum model --protocol {} --nodes {}` (per path at most {} losses, \
         {} duplicates, {} crashes, {} timer firings):\n# {}: {}\n# {} steps; replay with `quorum script FILE`.\n\n",
        model.protocol,
        model.nodes,
        b.losses,
        b.duplicates,
        b.crashes,
        b.timeouts,
        found.kind,
        found.what,
        found.path.len()
    );
    path_script::<P>(model, config_json, &[(0, preamble)], &found.path)
}

/// The script of `path` from `model`'s initial cluster, each step's output
/// filled in by running it; `notes` are comment lines put before the
/// commands they name (0: the cluster line, `i`: the path's `i`-th step).
pub(crate) fn path_script<P>(
    model: &ModelConfig,
    config_json: &str,
    notes: &[(usize, String)],
    path: &[Action<P::Timer>],
) -> Result<String, ModelError>
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let mut world = Scripted::<P>::new(P::Config::default());
    let mut blocks = Vec::new();
    let mut outputs = Vec::new();
    let mut command = cluster_line(model, config_json);
    for (i, action) in std::iter::once(None).chain(path.iter().map(Some)).enumerate() {
        if let Some(action) = action {
            command = script_command(&world, model, action);
        }
        let output = world.run_command(&command).map_err(|e| ModelError(format!("replay step {i}: {e}")))?;
        let preamble: String = notes.iter().filter(|(at, _)| *at == i).map(|(_, n)| n.as_str()).collect();
        blocks.push(Block { preamble, line: i + 1, command: command.clone(), expected: String::new() });
        outputs.push(output);
    }
    Ok(render_blocks(&blocks, &outputs))
}

/// The script command that takes `action` in `world`'s current state.
pub(crate) fn script_command<P>(world: &Scripted<P>, model: &ModelConfig, action: &Action<P::Timer>) -> String
where
    P: Protocol + Clone + Debug,
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    let on_link = |verb: &str, index: usize| {
        let (from, to, k) = world.link_position(index);
        format!("{verb} {} {} {k}", world.name(from), world.name(to))
    };
    match action {
        Action::Request(i) => {
            let (node, text) = &model.requests[*i];
            format!("request {} {text}", world.name(*node))
        }
        Action::Deliver(i) => on_link("deliver", *i),
        Action::Lose(i) => on_link("drop", *i),
        Action::Duplicate(i) => on_link("dup", *i),
        Action::Fire(node, timer) => format!("fire {} {timer:?}", world.name(*node)),
        Action::Crash(node) => format!("crash {}", world.name(*node)),
        Action::Tear(node, effects) => format!("crash {} {effects}", world.name(*node)),
        Action::Restart(node) => format!("restart {}", world.name(*node)),
    }
}
