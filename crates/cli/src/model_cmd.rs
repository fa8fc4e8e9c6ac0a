//! `quorum model`: exhaustive search of a small configuration (see the
//! `quorum_model` crate), its verdict, and a counterexample as a script.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quorum_core::NodeId;
use quorum_model::{Budgets, ModelConfig, Outcome, Strategy};

use crate::UsageError;

#[derive(Args)]
pub(crate) struct ModelArgs {
    #[command(flatten)]
    pub(crate) protocol: crate::ProtocolArgs,
    /// Number of nodes [default: 3, or the protocol's own size: 2 for two-generals].
    #[arg(long)]
    pub(crate) nodes: Option<u32>,
    /// A client request, issued once at any point: NODE:TEXT, e.g. `0:write 1 10` (repeat the flag
    /// for more) [default: `0:write 1 10` and `1:write 1 11` for key-value protocols, `0:transfer 1 2 30`
    /// for transactions].
    #[arg(long = "request", value_name = "NODE:TEXT")]
    requests: Vec<String>,
    /// Faults each path may contain, one of each kind named: a comma list of loss, dup, crash, timer
    /// (timer: one timer firing). `--losses` and the like set a count instead.
    #[arg(long, default_value = "")]
    faults: String,
    /// Messages a path may lose.
    #[arg(long)]
    losses: Option<u32>,
    /// Messages a path may deliver twice.
    #[arg(long)]
    dups: Option<u32>,
    /// Crashes a path may contain (a crashed node may restart at any point).
    #[arg(long)]
    crashes: Option<u32>,
    /// Timer firings a path may contain (retransmissions, elections, terminations).
    #[arg(long)]
    pub(crate) timeouts: Option<u32>,
    /// Do not extend paths longer than this [default: 64; with --flp, the longest valence walk: 200].
    #[arg(long)]
    pub(crate) max_depth: Option<u32>,
    /// Give up (exit code 3) after this many distinct states.
    #[arg(long, default_value_t = 2_000_000)]
    max_states: u64,
    /// Let timers fire at any time even for a fail-stop protocol (2PC, 3PC), whose model assumes a
    /// timely network: by default their timers fire only when no message is in flight.
    #[arg(long)]
    asynchronous: bool,
    /// Print the chain of runs behind the two generals' impossibility instead of searching: every
    /// message delivered, then the last one lost, then the one before, down to the first; each
    /// neighbour pair, the general who cannot tell the two runs apart, and where the decisions split.
    #[arg(long, conflicts_with_all = ["losses", "dups", "crashes", "faults", "dfs", "script", "max_states"])]
    chain: bool,
    /// FLP (paxos, raft): find a bivalent initial configuration (Lemma 2), then let the adversary
    /// apply the oldest pending event each step, after the shortest detour that keeps the
    /// configuration bivalent (Lemma 3), until the run closes a lasso: a loop, gone round twice,
    /// that never decides. Asynchronous, nothing lost; inputs are writes of 0 or 1 to key 1.
    #[arg(long, conflicts_with_all = [
        "losses", "dups", "crashes", "faults", "dfs", "chain", "max_states", "requests", "asynchronous", "threads"
    ])]
    flp: bool,
    /// With --flp: most Lemma 3 steps before giving up on a lasso (exit code 3).
    #[arg(long, default_value_t = 1_000, requires = "flp")]
    pub(crate) steps: usize,
    /// With --flp: random walks that look for each decision still reachable (a valence).
    #[arg(long, default_value_t = 64, requires = "flp")]
    pub(crate) walks: u32,
    /// With --flp: states each search for a detour (σ in Lemma 3) may visit.
    #[arg(long, default_value_t = 10_000, requires = "flp")]
    pub(crate) sigma_states: u64,
    /// Depth-first instead of breadth-first (which finds a shortest counterexample).
    #[arg(long)]
    dfs: bool,
    /// Threads expanding a breadth-first level [default: every core].
    #[arg(long)]
    threads: Option<usize>,
    /// Write the counterexample script (with --flp: the lasso's run) to this file (replay it with
    /// `quorum script FILE`).
    #[arg(long)]
    pub(crate) script: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn model(args: ModelArgs) -> Result<ExitCode, UsageError> {
    let (registered, choice) = args.protocol.choose()?;
    let nodes = args.nodes.unwrap_or(registered.default_nodes(3));
    registered.validate(&choice, nodes)?;
    if args.flp {
        return crate::flp_cmd::flp(&args, registered, &choice, nodes);
    }
    let mut model = ModelConfig::new(registered.entry.name, nodes);
    model.requests = match args.requests.is_empty() {
        true => registered.default_requests(),
        false => args.requests.iter().map(|r| parse_request(r)).collect::<Result<_, _>>()?,
    };
    model.budgets = budgets(&args, registered.requests_first())?;
    model.timely = registered.timely() && !args.asynchronous;
    model.requests_first = registered.requests_first();
    model.max_depth = args.max_depth.unwrap_or(64);
    model.max_states = args.max_states;
    model.strategy = if args.dfs { Strategy::DepthFirst } else { Strategy::BreadthFirst };
    if let Some(threads) = args.threads {
        model.threads = threads.max(1);
    }
    if args.chain {
        return print_chain(registered, &choice, &model, args.json);
    }
    let bar = progress_bar(args.json);
    let mut progress = |depth: u32, states: u64| bar.set_message(format!("depth {depth}: {states} states"));
    let outcome = registered.model(&choice, &model, &mut progress)?;
    bar.finish_and_clear();
    if let (Some(path), Some(found)) = (&args.script, &outcome.violation) {
        std::fs::write(path, &found.script)
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        let json = serde_json::json!({ "model": model, "outcome": outcome });
        println!("{json}");
    } else {
        print_summary(&model, &outcome, args.script.is_some());
    }
    Ok(exit_code(&outcome))
}

/// The chain of runs (`--chain`); exit code 1 if some run splits.
fn print_chain(
    registered: &quorum_registry::Registered,
    choice: &quorum_sim::ProtocolChoice,
    model: &ModelConfig,
    json: bool,
) -> Result<ExitCode, UsageError> {
    let runs = registered.chain(choice, model)?;
    let split = runs.iter().position(|r| r.split());
    if json {
        println!("{}", serde_json::json!({ "model": model, "chain": runs, "first_split": split }));
    } else {
        println!(
            "the chain of runs of {} ({} nodes): each loses one message earlier",
            model.protocol, model.nodes
        );
        for (i, run) in runs.iter().enumerate() {
            let lost = run.lost.map_or("none lost".to_string(), |m| format!("message {m} lost"));
            let decided: Vec<String> = run
                .decisions
                .iter()
                .enumerate()
                .map(|(n, d)| format!("n{n} {}", d.map_or("-".to_string(), |v| v.to_string())))
                .collect();
            let mark = if run.split() { "   <- SPLIT" } else { "" };
            println!("R{i}  {lost:<16} {} delivered   decided: {}{mark}", run.delivered, decided.join(", "));
            for (n, view) in run.views.iter().enumerate() {
                println!("      n{n}: {view}");
            }
            if !run.same_as_next.is_empty() {
                let same: Vec<String> = run.same_as_next.iter().map(|n| format!("n{n}")).collect();
                println!("    {} cannot tell R{i} from R{}: the same state in both", same.join(", "), i + 1);
            }
        }
        match split {
            Some(i) => println!("verdict         agreement broken in R{i}"),
            None => println!("verdict         no run of the chain splits"),
        }
    }
    Ok(if split.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// 1: a property broke; 3: gave up at `--max-states`; else 0.
fn exit_code(outcome: &Outcome) -> ExitCode {
    match (&outcome.violation, outcome.gave_up) {
        (Some(_), _) => ExitCode::from(1),
        (None, true) => ExitCode::from(3),
        (None, false) => ExitCode::SUCCESS,
    }
}

/// `NODE:TEXT`.
fn parse_request(text: &str) -> Result<(NodeId, String), UsageError> {
    let (node, request) = text
        .split_once(':')
        .ok_or_else(|| UsageError(format!("--request '{text}' is not NODE:TEXT (e.g. '0:write 1 10')")))?;
    let node = node.trim().trim_start_matches('n');
    let node: u32 =
        node.parse().map_err(|_| UsageError(format!("--request '{text}': '{node}' is not a node")))?;
    Ok((NodeId(node), request.trim().to_string()))
}

/// Timer firings a path of an agreement protocol gets unless told: enough
/// for two generals' dawns and a randomized exchange's rounds.
const TIMERS_TO_DECIDE: u32 = 64;

fn budgets(args: &ModelArgs, decides_on_timers: bool) -> Result<Budgets, UsageError> {
    let mut budgets = Budgets::default();
    for kind in args.faults.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        match kind {
            "loss" => budgets.losses = 1,
            "dup" => budgets.duplicates = 1,
            "crash" => budgets.crashes = 1,
            "timer" => budgets.timeouts = 1,
            other => {
                return Err(UsageError(format!(
                    "unknown fault '{other}' (expected: loss, dup, crash, timer)"
                )))
            }
        }
    }
    budgets.losses = args.losses.unwrap_or(budgets.losses);
    budgets.duplicates = args.dups.unwrap_or(budgets.duplicates);
    budgets.crashes = args.crashes.unwrap_or(budgets.crashes);
    budgets.timeouts = args.timeouts.unwrap_or(budgets.timeouts);
    if args.timeouts.is_none() && decides_on_timers {
        // An agreement protocol decides on its timers (dawn, the rounds):
        // by default let them all run out.
        budgets.timeouts = budgets.timeouts.max(TIMERS_TO_DECIDE);
    }
    Ok(budgets)
}

/// `1 loss, 0 duplicates, 1 crash, 2 timer firings`.
pub(crate) fn budget_text(b: &Budgets) -> String {
    let n = |count: u32, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    [
        n(b.losses, "loss", "losses"),
        n(b.duplicates, "duplicate", "duplicates"),
        n(b.crashes, "crash", "crashes"),
        n(b.timeouts, "timer firing", "timer firings"),
    ]
    .join(", ")
}

fn progress_bar(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn print_summary(model: &ModelConfig, outcome: &Outcome, wrote_script: bool) {
    let requests: Vec<String> = model.requests.iter().map(|(n, r)| format!("{n}: {r}")).collect();
    let timing =
        if model.timely { "timely network: timers fire when nothing is in flight" } else { "asynchronous" };
    println!("protocol        {} ({} nodes, {timing})", model.protocol, model.nodes);
    println!("requests        {}", requests.join("; "));
    println!("budgets         {} per path", budget_text(&model.budgets));
    println!(
        "states          {} distinct, {} transitions, {} terminal, depth {}{}",
        outcome.states,
        outcome.transitions,
        outcome.terminal,
        outcome.depth,
        if outcome.depth_bounded { format!(" (paths cut at {})", model.max_depth) } else { String::new() }
    );
    println!("speed           {} states/s, {} ms", outcome.states_per_second, outcome.wall_ms);
    let reached: Vec<String> = outcome.reached.iter().map(|(k, v)| format!("{k} ({v})")).collect();
    println!(
        "sometimes       {}",
        if reached.is_empty() { "none reached".to_string() } else { reached.join(", ") }
    );
    let verdict = match (&outcome.violation, outcome.gave_up) {
        (Some(found), _) => format!("VIOLATED: {}: {} ({} steps)", found.kind, found.what, found.steps),
        (None, true) => {
            format!("gave up after {} states (--max-states): no violation so far", outcome.states)
        }
        (None, false) if outcome.depth_bounded => "no violation on any path up to --max-depth".to_string(),
        (None, false) => "no violation: every reachable state holds every always property".to_string(),
    };
    println!("verdict         {verdict}");
    if let Some(found) = &outcome.violation {
        if !wrote_script {
            println!("\n# counterexample (save it and replay with `quorum script FILE`):\n");
            print!("{}", found.script);
        }
    }
}
