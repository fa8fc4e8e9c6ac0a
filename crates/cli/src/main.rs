//! `quorum`: the command-line face of the laboratory. Thin by design: parse
//! flags, call a library function, print.

mod admin_cmd;
mod anti_entropy_cmd;
mod byzantine_cmd;
mod check_cmd;
mod collisions_cmd;
mod flp_cmd;
mod html;
mod model_cmd;
mod pictures;
mod replay;
mod report;
mod rounds_cmd;
mod server_cmds;
mod tour;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quorum_sim::{ExploreReport, FaultSet, Schedule, SimConfig, Violation, WorkloadKind};

use quorum_registry::Registered;
use quorum_sim::ProtocolChoice;

#[derive(Parser)]
#[command(
    name = "quorum",
    version,
    about = "Replication and consensus protocols, run in a deterministic laboratory and judged by checkers",
    long_about = "Replication and consensus protocols, run in a deterministic laboratory and judged by checkers.\n\n\
                  Every run is a function of its seed: `quorum sim --seed S` replays it exactly, and every \
                  violation `quorum explore` finds comes with a one-line replay command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One simulated run of a protocol under faults, judged by every checker.
    Sim(SimArgs),
    /// Many seeds over all cores; the first violation is shrunk and printed with a replay command.
    Explore(ExploreArgs),
    /// Check a history file (our JSON lines, Jepsen EDN, Porcupine's key-value log) for linearizability.
    Check(check_cmd::CheckArgs),
    /// Every protocol with the guarantee it claims, its bugs and variants.
    List(ListArgs),
    /// A short tour: each protocol under faults, with the checkers' verdicts.
    Tour(TourArgs),
    /// Drive a cluster step by step from a script file (deliver this, drop that, crash that node).
    Script(ScriptArgs),
    /// Check every interleaving of a small configuration exhaustively; a counterexample is a script.
    Model(model_cmd::ModelArgs),
    /// Run one node of a replicated key-value server that speaks the Redis protocol.
    Serve(server_cmds::ServeArgs),
    /// Start an N-node server cluster on loopback in one command (Ctrl-C stops it; run again to resume).
    Cluster(server_cmds::ClusterArgs),
    /// Operate a running server cluster: `status` shows members, roles, terms, indexes and lag.
    Admin(admin_cmd::AdminArgs),
    /// Load-generate against a Redis-protocol server (or etcd) and report throughput and latency percentiles.
    Bench(server_cmds::BenchArgs),
    /// Ben-Or's rounds to decide against the cluster size (local coins, split inputs); optionally plotted as SVG.
    BenOrRounds(rounds_cmd::RoundsArgs),
    /// Fast Paxos's collision rate and latency as concurrent proposers grow; optionally plotted as SVG.
    FastPaxosCollisions(collisions_cmd::CollisionsArgs),
    /// The Byzantine generals' n against m: does a traitor strategy break OM(m) or SM(m)? With message counts.
    ByzantineTable(byzantine_cmd::TableArgs),
    /// Merkle-tree anti-entropy's bytes and round trips against the keys that differ, beside a full-state exchange; optionally plotted as SVG.
    AntiEntropyCost(anti_entropy_cmd::AntiEntropyArgs),
}

#[derive(Args)]
struct ScriptArgs {
    /// Script file: blocks of `command`, `----`, expected output, blank line (see the README).
    file: PathBuf,
    /// Protocol [default: the `protocol=` option of the script's `cluster` command].
    #[arg(long, short = 'p')]
    protocol: Option<String>,
    /// Protocol variant, where it has some.
    #[arg(long)]
    variant: Option<String>,
    /// Compare each command's output with the script's expected output; exit 1 on a difference.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    picture: pictures::SvgArgs,
}

/// The protocol a command runs, as `quorum sim`, `explore` and `model` name it.
#[derive(Args, Clone)]
pub(crate) struct ProtocolArgs {
    /// Protocol (see `quorum list`).
    #[arg(long, short = 'p')]
    protocol: String,
    /// Protocol variant, where it has some (primary-backup: sync or async).
    #[arg(long)]
    variant: Option<String>,
    /// A deliberately broken variant (a negative control; see `quorum list`).
    #[arg(long)]
    bug: Option<String>,
    /// Protocol settings as a JSON object, e.g. '{"election_timeout":300000}' (see the protocol's Config).
    #[arg(long)]
    config: Option<String>,
}

impl ProtocolArgs {
    /// The registered protocol and the choice the flags make, checked
    /// against its entry and its `Config`.
    pub(crate) fn choose(&self) -> Result<(&'static Registered, ProtocolChoice), UsageError> {
        let registered = quorum_registry::find(&self.protocol)?;
        let choice =
            registered.choose(self.variant.as_deref(), self.bug.as_deref(), self.config.as_deref())?;
        Ok((registered, choice))
    }
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Number of nodes [default: 5, or the protocol's own size: 2 for two-generals].
    #[arg(long)]
    nodes: Option<u32>,
    /// Client operations in total.
    #[arg(long, default_value_t = 300)]
    ops: u32,
    /// Concurrent clients [default: 5; under swarm, drawn per seed].
    #[arg(long)]
    clients: Option<u32>,
    /// Keys in use at once [default: 3; under swarm, drawn per seed].
    #[arg(long)]
    keys: Option<u32>,
    /// Operations a key takes before it is retired for a fresh one (so a lost write is not masked by later ones).
    #[arg(long, default_value_t = 30)]
    ops_per_key: u32,
    /// Faults to inject. `swarm` (the default): each seed draws its own mix from the faults the protocol's
    /// claims assume, its own fault rates, max-down, latency, keys, clients and the protocol's explorable
    /// settings (flags given pin theirs; the replay names what was drawn). Or a fixed comma list of none,
    /// crash, partition, loss, dup, delay, pause, kill (kill as a write finishes, restart within 50 ms), all
    /// (these seven), crash-leader (crash the leader in the middle of its next disk write and broadcast,
    /// restart within 1.5 s), torn-send (kill a node right after the first messages of one of its steps,
    /// restart within 50 ms), power-loss (kill a group of nodes together at the end of a step of one of
    /// them, restart within 50 ms), kill-voter (kill a node as it answers an election, restart within
    /// 50 ms); the last four only by name. With a fixed list nothing else is drawn.
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// Most nodes down (crashed or paused) at once [default: a minority; under swarm, drawn per seed].
    #[arg(long)]
    max_down: Option<u32>,
    /// One-way message latency in simulated µs: `MIN-MAX` (uniform) or one
    /// value (fixed: no jitter, for counting round trips) [default: 500-2000; under swarm, drawn per seed].
    #[arg(long)]
    latency_us: Option<String>,
    /// Times a client re-sends a timed-out update with the same request id to another node
    /// before it gives up [default: 2 for protocols with client sessions (raft), else 0].
    #[arg(long)]
    retries: Option<u32>,
    /// How long a client waits for an answer, in simulated ms, before it re-sends an update
    /// (if it has retries left) or records the operation as indeterminate [default: 1000].
    #[arg(long)]
    client_timeout_ms: Option<u64>,
    /// Length of the safety phase (faults on), in simulated ms [default: 5000; under swarm, drawn per
    /// seed: 5000 or 15000].
    #[arg(long)]
    safety_ms: Option<u64>,
    /// How long clients have to finish after the heal, in simulated ms.
    #[arg(long, default_value_t = 10_000)]
    liveness_ms: u64,
    /// What the clients send: `default` (the protocol's own workload: read / write / cas for KV
    /// protocols) or `redis` (GET, SET with PX, MSET, MULTI/EXEC, stamped by the receiving node's
    /// clock; raft, zab and multi-paxos).
    #[arg(long, default_value = "default")]
    workload: String,
    /// Clock skew: each node's and client's clock is off true time by up to this many ms, fixed per
    /// run (only the redis workload's stamps read clocks) [default: 0; under swarm with --workload
    /// redis, drawn per seed: 0, 5, 20 or 50].
    #[arg(long)]
    clock_skew_ms: Option<u64>,
    /// Byzantine nodes (traitors), a comma list of node numbers, or `none`; their sends go through
    /// --strategy and the checkers judge only the others [default: for Byzantine protocols (om, sm), under
    /// swarm, drawn per seed up to what the protocol tolerates].
    #[arg(long)]
    byzantine: Option<String>,
    /// What the traitors do: tactics joined by `+`: silent, lie (the opposite value), equivocate (each peer
    /// hears the value a seeded plan gives it; `equivocate@0110` fixes node i's to the i-th bit), replay
    /// (half the time an old message instead), collude (the traitors share the plan) [default: with
    /// --byzantine, equivocate; under swarm, drawn].
    #[arg(long)]
    strategy: Option<String>,
    /// Under swarm, the most traitors a seed draws [default: what the protocol tolerates with its
    /// settings, e.g. m for OM(m) on more than 3m nodes]; above that bound, a negative control.
    #[arg(long)]
    traitors_max: Option<u32>,
}

#[derive(Args)]
struct SimArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Seed: same seed, same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// An explicit fault schedule, as printed by replay commands (replaces the generated one).
    #[arg(long)]
    schedule: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// Write the full trace (every delivery, drop, timer, persist, effect) as JSON lines.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the client history as JSON lines (KV: readable by `quorum check`; 2pc/3pc: each transfer and its outcome).
    #[arg(long)]
    history: Option<PathBuf>,
    #[command(flatten)]
    picture: pictures::SvgArgs,
}

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed_start: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Report (and shrink) the first run showing one of these kinds of violation (a comma list:
    /// linearizability, lost_acked_writes, split_brain, divergence, liveness, log_safety, election_safety,
    /// consensus, termination, cluster_invariant, atomicity, balance, panic, runaway)
    /// [default: with --bug, what catches that bug; else any].
    #[arg(long)]
    focus: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report: verdicts, violation kinds, the claims table, latency and
    /// failover distributions, and the first violation's space-time diagram (its seed run again, recorded).
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(Args)]
struct ListArgs {
    /// Print every catalogue entry as JSON (claims, system model, sometimes properties, bugs, explorable
    /// settings, whether the server runs it).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TourArgs {
    /// Seeds per protocol (and variant).
    #[arg(long, default_value_t = 200)]
    seeds: u64,
}

/// A usage error: one line on stderr, exit code 2.
pub(crate) struct UsageError(pub(crate) String);

/// `--help` and `--version` print as clap renders them (exit 0); a bad
/// command line is one line on stderr, naming where to look, exit code 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    // clap's first paragraph is the error (a list of missing arguments is
    // indented below it); usage and tips follow a blank line.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (try --help)");
    ExitCode::from(2)
}

/// Die quietly on a closed pipe (`quorum list | head`), as Unix tools do,
/// instead of panicking in `println!`: Rust ignores SIGPIPE by default.
/// Only for the commands that print and exit: a server must not die when a
/// client closes its socket.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at the start of
    // main, before any thread exists, has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    if !matches!(cli.command, Command::Serve(_) | Command::Cluster(_) | Command::Bench(_)) {
        default_sigpipe();
    }
    let result = match cli.command {
        Command::Sim(args) => sim(args),
        Command::Explore(args) => {
            quorum_sim::quiet_panics_in_runs();
            explore(args)
        }
        Command::Check(args) => check_cmd::check(args),
        Command::List(args) => {
            list(args.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Tour(args) => {
            quorum_sim::quiet_panics_in_runs();
            tour::tour(args.seeds)
        }
        Command::Script(args) => script(args),
        Command::Model(args) => {
            quorum_sim::quiet_panics_in_runs();
            model_cmd::model(args)
        }
        Command::Serve(args) => server_cmds::serve(args),
        Command::Cluster(args) => server_cmds::cluster(args),
        Command::Bench(args) => server_cmds::bench(args),
        Command::Admin(args) => admin_cmd::admin(args),
        Command::BenOrRounds(args) => rounds_cmd::rounds(args),
        Command::FastPaxosCollisions(args) => collisions_cmd::collisions(args),
        Command::ByzantineTable(args) => byzantine_cmd::byzantine_table(args),
        Command::AntiEntropyCost(args) => anti_entropy_cmd::anti_entropy(args),
    };
    match result {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

impl From<quorum_registry::Error> for UsageError {
    fn from(e: quorum_registry::Error) -> UsageError {
        UsageError(e.0)
    }
}

fn sim_config(
    run: &RunArgs,
    registered: &Registered,
    choice: ProtocolChoice,
) -> Result<SimConfig, UsageError> {
    let mut config = registered.sim_config(choice);
    match (run.faults.as_str(), config.swarm.as_mut()) {
        ("swarm", Some(swarm)) => {
            swarm.fixed = quorum_sim::Fixed {
                max_down: run.max_down.is_some(),
                latency: run.latency_us.is_some(),
                keys: run.keys.is_some(),
                clients: run.clients.is_some(),
                safety: run.safety_ms.is_some(),
                clock_skew: run.clock_skew_ms.is_some(),
                byzantine: run.byzantine.is_some(),
            };
            swarm.traitors_max = run.traitors_max;
        }
        (faults, _) => {
            config.faults = faults.parse::<FaultSet>().map_err(|e| UsageError(format!("{e}")))?;
            config.swarm = None;
        }
    }
    config.nodes = run.nodes.unwrap_or(config.nodes);
    config.ops = run.ops;
    config.clients = run.clients.unwrap_or(config.clients);
    config.keys = run.keys.unwrap_or(config.keys);
    config.ops_per_key = run.ops_per_key;
    config.max_down = run.max_down.unwrap_or_else(|| SimConfig::minority(config.nodes));
    if let Some(retries) = run.retries {
        config.retries = retries;
    }
    if let Some(timeout) = run.client_timeout_ms {
        config.client_timeout_ms = timeout;
    }
    config.safety_ms = run.safety_ms.unwrap_or(config.safety_ms);
    config.liveness_ms = run.liveness_ms;
    config.clock_skew_ms = run.clock_skew_ms.unwrap_or(0);
    config.workload = workload(&run.workload, registered, &config.protocol)?;
    if let Some(latency) = &run.latency_us {
        let (min, max) = latency.split_once('-').unwrap_or((latency, latency));
        let parse = |v: &str| {
            v.trim().parse::<u64>().map_err(|_| {
                UsageError(format!("--latency-us takes MIN-MAX or one value in µs, got '{latency}'"))
            })
        };
        (config.latency_min_us, config.latency_max_us) = (parse(min)?, parse(max)?);
    }
    byzantine_flags(run, registered, &mut config)?;
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    registered.validate(&config.protocol, config.nodes)?;
    Ok(config)
}

/// `--workload`, checked against the protocol and its bug.
fn workload(
    name: &str,
    registered: &Registered,
    choice: &ProtocolChoice,
) -> Result<WorkloadKind, UsageError> {
    let kind = match name {
        "default" => WorkloadKind::Default,
        "redis" if registered.speaks_redis() => WorkloadKind::Redis,
        "redis" => {
            let speakers: Vec<&str> = quorum_registry::PROTOCOLS
                .iter()
                .filter(|r| r.speaks_redis())
                .map(|r| r.entry.name)
                .collect();
            return Err(UsageError(format!(
                "--workload redis runs on {}, not '{}'",
                speakers.join(", "),
                registered.entry.name
            )));
        }
        other => return Err(UsageError(format!("unknown workload '{other}' (expected default or redis)"))),
    };
    if choice.bug.as_deref() == Some(quorum_registry::WORKLOAD_BUG) && kind != WorkloadKind::Redis {
        return Err(UsageError(format!(
            "--bug {} is a bug of --workload redis",
            quorum_registry::WORKLOAD_BUG
        )));
    }
    Ok(kind)
}

/// `--byzantine`, `--strategy` and `--traitors-max` into the config.
fn byzantine_flags(run: &RunArgs, registered: &Registered, config: &mut SimConfig) -> Result<(), UsageError> {
    let byzantine_model = registered.entry.model == quorum_core::claims::SystemModel::Byzantine;
    let asked = run.byzantine.is_some() || run.strategy.is_some() || run.traitors_max.is_some();
    if asked && !byzantine_model {
        return Err(UsageError(format!(
            "'{}' does not run with traitors (--byzantine, --strategy, --traitors-max are for om and sm)",
            registered.entry.name
        )));
    }
    if let Some(traitors) = &run.byzantine {
        config.byzantine = quorum_core::byzantine::parse_traitors(traitors)
            .map_err(|e| UsageError(format!("--byzantine: {e}")))?;
        config.strategy = "equivocate".parse().expect("a tactic");
    }
    if let Some(strategy) = &run.strategy {
        // Without --byzantine, it is what the drawn traitors do.
        config.strategy = strategy.parse().map_err(|e| UsageError(format!("--strategy: {e}")))?;
    }
    Ok(())
}

fn sim(args: SimArgs) -> Result<ExitCode, UsageError> {
    let (registered, choice) = args.run.protocol.choose()?;
    let mut config = sim_config(&args.run, registered, choice)?;
    config.seed = args.seed;
    if let Some(schedule) = &args.schedule {
        let schedule: Schedule = schedule.parse().map_err(|e| UsageError(format!("{e}")))?;
        config.schedule = Some(schedule);
        // An explicit schedule is the whole run: nothing is drawn.
        config.swarm = None;
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    args.picture.window(quorum_sim::diagram::Clock::Micros)?;
    let capture = quorum_sim::Capture { trace: args.trace.is_some(), record: args.picture.wanted() };
    let outcome = registered.run_captured(&config, capture).map_err(|e| UsageError(e.to_string()))?;
    if let Some(path) = &args.trace {
        write_file(path, outcome.trace.as_deref().unwrap_or_default())?;
    }
    if let Some(recording) = &outcome.recording {
        let title = replay::command(&outcome.replay);
        args.picture.write(recording, title)?;
    }
    if let Some(path) = &args.history {
        write_file(path, &outcome.history_json_lines())?;
    }
    if args.json {
        let mut value = serde_json::to_value(&outcome).expect("outcomes serialize");
        value["replay"] = replay::command(&outcome.replay).into();
        println!("{value}");
    } else {
        print_outcome(&outcome);
    }
    Ok(if outcome.violated() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub(crate) fn write_file(path: &PathBuf, contents: &str) -> Result<(), UsageError> {
    std::fs::write(path, contents).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))
}

fn print_outcome(o: &quorum_sim::RunOutcome) {
    println!("protocol        {}", o.protocol);
    println!("seed            {}   nodes {}   faults {}", o.seed, o.nodes, o.faults);
    println!("schedule        {}", o.schedule);
    println!(
        "ops             {} ok, {} fail, {} info   ({} writes refused)",
        o.ops_ok, o.ops_fail, o.ops_info, o.writes_failed
    );
    println!("linearizable    {}", o.linearizability);
    if let Some(why) = &o.linearizability_explanation {
        println!("                {why}");
    }
    if o.commands_acked.is_empty() {
        println!("lost writes     {} acknowledged writes missing from the final state", o.lost_acked_writes);
    } else {
        let acked: Vec<String> = o.commands_acked.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("commands        acknowledged: {}", acked.join(", "));
        println!("lost writes     judged with linearizability (each key's final read is in the history)");
    }
    println!("split-brain     {}", o.split_brain);
    let converged = match o.converged {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    };
    println!("converged       {converged}");
    println!(
        "liveness        {}",
        if o.liveness_ok { "all clients finished after heal" } else { "clients did NOT finish after heal" }
    );
    if let Some(panic) = &o.panic {
        println!("panic           {panic}");
    }
    println!(
        "messages        {} sent, {} delivered, {} dropped; {} persists; {} events; {} ms simulated",
        o.messages_sent, o.messages_delivered, o.messages_dropped, o.persists, o.events, o.sim_time_ms
    );
    let l = &o.update_latency_us;
    println!(
        "update latency  p50 {} µs, p99 {} µs, max {} µs over {} acknowledged updates",
        l.p50, l.p99, l.max, l.samples
    );
    if let Some(t) = &o.txn {
        print_txn(t);
    }
    if !o.traitors.is_empty() {
        let traitors: Vec<String> = o.traitors.iter().map(|t| format!("n{t}")).collect();
        println!("traitors        {} ({}); the checkers judge the others", traitors.join(","), o.strategy);
    }
    for v in o.ic1_violations.iter().chain(&o.ic2_violations).chain(&o.consensus_violations).take(3) {
        println!("                {v}");
    }
    if let Some(c) = &o.convergence {
        print_convergence(c);
    }
    if o.violations.is_empty() {
        println!("verdict         no violation");
    } else {
        let kinds: Vec<&str> = o.violations.iter().map(|v| v.name()).collect();
        println!("verdict         VIOLATED: {}", kinds.join(", "));
        println!("replay          {}", replay::command(&o.replay));
    }
}

fn print_convergence(c: &quorum_sim::ConvergenceFigures) {
    match (c.converge_ms, c.rounds_to_converge, c.bytes_to_converge) {
        (Some(ms), Some(rounds), Some(bytes)) => println!(
            "convergence     {ms:.1} ms after the heal and the last update: {rounds} gossip rounds, {bytes} bytes \
             ({} gossip bytes in the whole run)",
            c.gossip_bytes_total
        ),
        _ => println!("convergence     the replicas did NOT converge ({} gossip bytes sent)", c.gossip_bytes_total),
    }
    println!("stale reads     {} (reads that missed an acknowledged add)", c.stale_reads);
    for over in &c.counters_over {
        println!("                counter above every possible sum: {over}");
    }
}

fn print_txn(t: &quorum_sim::TxnFigures) {
    println!(
        "transactions    {} decided: {} committed, {} aborted (clients saw {} committed, {} aborted)",
        t.decided, t.committed, t.aborted, t.client_committed, t.client_aborted
    );
    if t.atomicity_violations.is_empty() {
        println!("atomicity       every participant decided alike");
    } else {
        println!("atomicity       VIOLATED in {} transactions", t.atomicity_violations.len());
        for v in t.atomicity_violations.iter().take(3) {
            println!("                {v}");
        }
    }
    match &t.balance {
        None => println!("balance         final balances sum to {} of {}", t.final_total, t.expected_total),
        Some(why) => println!("balance         VIOLATED: {why}"),
    }
    println!(
        "blocked         {} ms in doubt in total, longest {} ms, {} still in doubt at the end",
        t.blocked_ms_total, t.blocked_ms_max, t.still_in_doubt
    );
    println!(
        "per txn         {:.2} messages (+{:.2} outcome acks), {:.2} forced writes, {:.2} cohorts",
        t.messages_per_txn, t.acks_per_txn, t.forced_writes_per_txn, t.cohorts_per_txn
    );
}

fn explore(args: ExploreArgs) -> Result<ExitCode, UsageError> {
    let (registered, choice) = args.run.protocol.choose()?;
    let mut config = sim_config(&args.run, registered, choice)?;
    config.seed = args.seed_start;
    if args.seeds == 0 {
        return Err(UsageError("--seeds must be at least 1".into()));
    }
    let focus = focus_of(args.focus.as_deref(), registered, args.run.protocol.bug.as_deref())?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err(UsageError("--threads must be at least 1".into()));
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(args.seeds);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} seeds  {elapsed} (eta {eta})")
                .expect("the template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    let report = quorum_sim::explore(
        &config,
        args.seeds,
        threads,
        &focus,
        &|c| registered.run(c, false).expect("settings validated before exploring"),
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    let wall_ms = started.elapsed().as_millis() as u64;
    let properties = quorum_registry::claims::Properties::of(registered.entry, &report);
    if let Some(path) = &args.html {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let command = format!("quorum {}", args.join(" "));
        let page = report::Page { command, report: &report, properties: &properties, wall_ms };
        write_file(path, &report::html(&page, registered))?;
    }
    if args.json {
        let mut value = serde_json::to_value(&report).expect("reports serialize");
        value["properties"] = serde_json::to_value(&properties).expect("properties serialize");
        if let Some(first) = &report.first {
            value["first"]["replay"] = replay::command(&first.replay).into();
        }
        value["wall_ms"] = wall_ms.into();
        value["events_per_second"] = (report.events * 1000 / wall_ms.max(1)).into();
        println!("{value}");
    } else {
        print_report(&report, wall_ms);
        print_properties(&properties);
    }
    Ok(if report.violating_runs > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The kinds explore reports first: `--focus` (a comma list), else what a
/// `--bug`'s negative control catches, else any.
fn focus_of(
    focus: Option<&str>,
    registered: &Registered,
    bug: Option<&str>,
) -> Result<Vec<Violation>, UsageError> {
    match (focus, bug.and_then(|b| registered.entry.bug(b))) {
        (Some(list), _) => list.split(',').map(|k| k.trim().parse().map_err(UsageError)).collect(),
        (None, Some(bug)) => Ok(bug.caught_as.to_vec()),
        (None, None) => Ok(Vec::new()),
    }
}

fn print_report(r: &ExploreReport, wall_ms: u64) {
    println!("protocol        {}   faults {}   nodes {}", r.protocol, r.faults, r.nodes);
    println!(
        "runs            {}   ({} ms wall, {} simulated events, {} events/s)",
        r.runs,
        wall_ms,
        r.events,
        r.events * 1000 / wall_ms.max(1)
    );
    println!("violating runs  {}", r.violating_runs);
    if !r.focus.is_empty() {
        let kinds: Vec<&str> = r.focus.iter().map(|v| v.name()).collect();
        println!("  showing {:<14}{} (focus)", kinds.join("|"), r.focus_runs);
    }
    for (kind, count) in r.violations.iter().filter(|(_, n)| **n > 0) {
        println!("  {kind:<22}{count}");
    }
    println!("clients done    {} of {} runs finished after heal", r.runs_live, r.runs);
    if let Some(f) = &r.failover_ms {
        println!(
            "failover        {} leader crashes: new leader after p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            f.count, f.p50, f.p99, f.max
        );
    }
    println!("writes refused  {} (in {} runs)", r.writes_failed, r.runs_with_failed_writes);
    if let Some(t) = &r.txn {
        println!(
            "transactions    {} decided ({} committed, {} aborted); per txn {:.2} messages (+{:.2} acks), {:.2} forced writes",
            t.decided, t.committed, t.aborted, t.messages_per_txn, t.acks_per_txn, t.forced_writes_per_txn
        );
        println!(
            "blocked         in doubt while up: p50 {} ms, p99 {} ms, max {} ms; {} ms in total; {} still in doubt",
            t.blocked_ms_p50, t.blocked_ms_p99, t.blocked_ms_max, t.blocked_ms_total, t.still_in_doubt
        );
    }
    if let Some(first) = &r.first {
        println!(
            "first           seed {}: {} (schedule shrunk {} -> {} faults)",
            first.seed,
            first.violations.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
            first.faults_before_shrink,
            first.faults_after_shrink
        );
        if let Some(why) = &first.explanation {
            println!("                {why}");
        }
        println!("replay          {}", replay::command(&first.replay));
    }
}

/// The claims table: always properties (claimed, or broken as the source
/// text says), sometimes properties reached, and those never reached.
fn print_properties(p: &quorum_registry::claims::Properties) {
    let claimed: Vec<String> =
        p.always.iter().filter(|a| a.claimed).map(|a| format!("{} {}", a.name, a.held)).collect();
    println!("always          held in runs: {}", claimed.join(", "));
    let broken: Vec<String> = p
        .always
        .iter()
        .filter(|a| !a.claimed && a.broken > 0)
        .map(|a| format!("{} ({})", a.name, a.broken))
        .collect();
    if !broken.is_empty() {
        println!("                broken, not claimed: {}", broken.join(", "));
    }
    if !p.claims_broken.is_empty() {
        println!("                CLAIMS BROKEN: {}", p.claims_broken.join(", "));
    }
    let reached: Vec<String> =
        p.sometimes.iter().filter(|s| s.declared).map(|s| format!("{} {}", s.name, s.reached)).collect();
    println!("sometimes       reached in runs: {}", reached.join(", "));
    if !p.never_reached.is_empty() {
        println!(
            "                NEVER REACHED: {} (the hard case never happened)",
            p.never_reached.join(", ")
        );
    }
}

fn script(args: ScriptArgs) -> Result<ExitCode, UsageError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", args.file.display())))?;
    let blocks = quorum_sim::script::parse_blocks(&text)
        .map_err(|e| UsageError(format!("{}: {e}", args.file.display())))?;
    let option = |key: &str| {
        blocks
            .iter()
            .filter(|b| b.command.starts_with("cluster "))
            .flat_map(|b| b.command.split_whitespace())
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    let protocol = args.protocol.or(option("protocol=")).ok_or_else(|| {
        UsageError(format!(
            "{}: name the protocol with --protocol or `cluster N protocol=P`",
            args.file.display()
        ))
    })?;
    let variant = args.variant.or(option("variant="));
    let registered = quorum_registry::find(&protocol)?;
    let choice = registered.choose(variant.as_deref(), None, None)?;
    args.picture.window(quorum_sim::diagram::Clock::Steps)?;
    let run = if args.picture.wanted() {
        registered.script_recorded(&choice, &blocks)
    } else {
        registered.script(&choice, &blocks)
    };
    let run = run.map_err(|e| UsageError(format!("{}: {e}", args.file.display())))?;
    let mut differ = false;
    for (block, output) in blocks.iter().zip(&run.outputs) {
        println!("{}\n----\n{}", block.command, output);
        if args.check && block.expected != *output {
            differ = true;
            eprintln!(
                "{}:{}: output differs from the script's expected output",
                args.file.display(),
                block.line
            );
        }
    }
    if let Some(verdict) = registered.judge_script(&run) {
        println!("# {verdict}");
    }
    if let Some(broken) = Registered::judge_observations(&run) {
        println!("# VIOLATED: {broken}");
    }
    if let Some(recording) = &run.recording {
        let name = args.file.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        args.picture.write(recording, format!("quorum script {name} ({protocol})"))?;
    }
    Ok(if differ { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn list(json: bool) {
    if json {
        let entries: Vec<serde_json::Value> = quorum_registry::PROTOCOLS
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r.entry).expect("entries serialize");
                value["serves"] = r.serves().into();
                value
            })
            .collect();
        println!("{}", serde_json::Value::Array(entries));
        return;
    }
    println!("{:<16} {:<32} claims", "protocol", "source section");
    for r in quorum_registry::PROTOCOLS {
        let e = r.entry;
        let variants = if e.variants.is_empty() {
            String::new()
        } else {
            format!(" (--variant {})", e.variants.join("|"))
        };
        println!("{:<16} {:<32} {}{}", e.name, e.section, e.summary, variants);
        if !e.bugs.is_empty() {
            let bugs: Vec<&str> = e.bugs.iter().map(|b| b.name).collect();
            println!("{:<16} {:<32} --bug {}", "", "", bugs.join(" | "));
        }
    }
}
