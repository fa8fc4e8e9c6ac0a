//! `quorum fast-paxos-collisions`: Fast Paxos's collision rate and latency
//! as contention grows (Lamport, "Fast Paxos", §3.2). A trial is one fresh
//! instance on an `--nodes` cluster with no faults: `c` distinct proposers
//! each propose their own value, starting at times drawn uniformly in
//! `[0, --window-us)`; every message takes a one-way latency drawn
//! uniformly in `[d/2, 3d/2]` (d = `--latency-us`), so proposals reach the
//! acceptors in different orders. The trial ends when every proposer has
//! learned. Per contention level it reports how the instance was decided —
//! in the fast round, by the recovery round 2 (no phase 1), or by a classic
//! round with phase 1 (a proposer's fallback) — and each proposer's latency
//! from its proposal to its learning, in units of d. Contention 1 is the
//! baseline: no collision is possible. `--svg` plots both (plotters).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use plotters::prelude::*;
use quorum_core::{Cluster, Effect, KvCommand, KvStore, NodeId, Out, Protocol, RequestId, Rng, Time};
use quorum_protocols::fast_paxos::{Config, FastPaxos, Msg, Recovery, Timer};
use serde::Serialize;

use crate::UsageError;

type Node = FastPaxos<KvStore>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecoveryArg {
    Coordinated,
    Uncoordinated,
}

#[derive(Args)]
pub struct CollisionsArgs {
    /// Cluster size (acceptors; fast quorums of ⌈3n/4⌉).
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// Contention levels: concurrent proposers of one instance, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    proposers: Vec<u32>,
    /// Trials (instances) per contention level.
    #[arg(long, default_value_t = 2000)]
    trials: u64,
    /// Mean one-way latency d, in microseconds.
    #[arg(long, default_value_t = 1000)]
    latency_us: u64,
    /// The proposals start within this window, in microseconds.
    #[arg(long, default_value_t = 1000)]
    window_us: u64,
    /// How a collision is recovered (§3.2).
    #[arg(long, value_enum, default_value = "coordinated")]
    recovery: RecoveryArg,
    /// Write the plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// How one trial's instance was decided.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Fast,
    Recovery,
    Classic,
}

/// The figures of one contention level.
#[derive(Serialize)]
struct Row {
    proposers: u32,
    trials: u64,
    /// Share of instances decided in the fast round.
    fast: f64,
    /// Share decided by the recovery round 2 (a collision, no phase 1).
    recovered: f64,
    /// Share that needed a classic round with phase 1.
    classic: f64,
    /// Proposal-to-learning latency of each proposer, in units of d.
    latency_mean_d: f64,
    latency_p50_d: f64,
    latency_p99_d: f64,
    messages_per_instance: f64,
}

pub fn collisions(args: CollisionsArgs) -> Result<std::process::ExitCode, UsageError> {
    if args.nodes < 3 || args.trials == 0 || args.latency_us < 2 {
        return Err(UsageError(
            "--nodes must be at least 3, --trials positive, --latency-us at least 2".into(),
        ));
    }
    if let Some(bad) = args.proposers.iter().find(|c| **c == 0 || **c > args.nodes) {
        return Err(UsageError(format!("--proposers {bad}: each level must be between 1 and --nodes")));
    }
    let recovery = match args.recovery {
        RecoveryArg::Coordinated => Recovery::Coordinated,
        RecoveryArg::Uncoordinated => Recovery::Uncoordinated,
    };
    let config = Config { recovery, ..Config::default() };
    let mut rows = Vec::new();
    for &c in &args.proposers {
        let mut trials = Vec::new();
        for seed in 0..args.trials {
            trials.push(trial(&args, &config, c, seed));
        }
        rows.push(row(c, &trials, args.latency_us));
        if !args.json {
            let r = rows.last().expect("pushed");
            println!(
                "proposers {:>2}  fast {:>5.1}%  recovered (round 2) {:>5.1}%  classic (phase 1) {:>5.1}%  latency mean {:>5.2} d  p50 {:>5.2} d  p99 {:>6.2} d  messages {:>5.1}",
                r.proposers,
                100.0 * r.fast,
                100.0 * r.recovered,
                100.0 * r.classic,
                r.latency_mean_d,
                r.latency_p50_d,
                r.latency_p99_d,
                r.messages_per_instance
            );
        }
    }
    if let Some(path) = &args.svg {
        plot(&rows, path, args.nodes)
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What one trial measured.
struct Trial {
    path: Path,
    /// Each proposer's proposal-to-learning time, in µs.
    latencies: Vec<u64>,
    messages: u64,
}

enum Event {
    Request(NodeId, KvCommand),
    Deliver(NodeId, NodeId, Msg<KvCommand>),
    Timer(NodeId, Timer, u64),
}

/// One instance with `c` concurrent proposers, to its end.
struct World {
    nodes: Vec<Node>,
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    /// The latest arming of each node's timers.
    armed: BTreeMap<(NodeId, Timer), u64>,
    latency_us: u64,
    messages: u64,
    path: Path,
}

impl World {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    /// Carry out `effects` of `node` at `now`; the learning time of a reply.
    fn execute(&mut self, node: NodeId, now: u64, effects: Vec<Effect<Node>>) -> Option<u64> {
        let mut replied = None;
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    self.messages += 1;
                    match &msg {
                        Msg::Prepare { .. } => self.path = Path::Classic,
                        Msg::Accept { ballot, .. } if ballot.counter == 2 && self.path == Path::Fast => {
                            self.path = Path::Recovery;
                        }
                        Msg::Accepted { ballot, .. } if ballot.counter == 2 && self.path == Path::Fast => {
                            self.path = Path::Recovery;
                        }
                        _ => {}
                    }
                    let d = self.latency_us;
                    let delay = self.rng.range(d / 2, d + d / 2 + 1);
                    self.schedule(now + delay, Event::Deliver(node, to, msg));
                }
                Effect::SetTimer { timer, after } => {
                    self.seq += 1;
                    self.armed.insert((node, timer.clone()), self.seq);
                    let generation = self.seq;
                    self.schedule(now + after.0, Event::Timer(node, timer, generation));
                }
                Effect::CancelTimer(timer) => {
                    self.armed.remove(&(node, timer));
                }
                Effect::Reply { .. } => replied = Some(now),
                Effect::Persist(_) | Effect::Checkpoint(_) | Effect::Observe(_) => {}
            }
        }
        replied
    }

    fn step(
        &mut self,
        node: NodeId,
        now: u64,
        input: impl FnOnce(&mut Node, &mut Out<'_, Node>),
    ) -> Option<u64> {
        let mut rng = Rng::seed(self.rng.next_u64());
        let mut out = Out::new(Time(now), &mut rng);
        input(&mut self.nodes[node.0 as usize], &mut out);
        self.nodes[node.0 as usize].invariants();
        let effects = out.into_effects();
        self.execute(node, now, effects)
    }
}

fn trial(args: &CollisionsArgs, config: &Config, c: u32, seed: u64) -> Trial {
    let members: Vec<NodeId> = (0..args.nodes).map(NodeId).collect();
    let mut rng = Rng::seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(c));
    let mut world = World {
        nodes: Vec::new(),
        rng: Rng::seed(rng.next_u64()),
        queue: BinaryHeap::new(),
        events: BTreeMap::new(),
        seq: 0,
        armed: BTreeMap::new(),
        latency_us: args.latency_us,
        messages: 0,
        path: Path::Fast,
    };
    for &id in &members {
        let mut out = Out::new(Time(0), &mut rng);
        let node = Node::start(&Cluster::new(id, members.clone()), config, &[], &mut out);
        world.nodes.push(node);
        // The start's only effect is the sync timer: anti-entropy plays no
        // part in one instance, so it is not armed.
    }
    // `c` distinct proposers, at random nodes and times.
    let mut proposers: Vec<NodeId> = members.clone();
    for i in (1..proposers.len()).rev() {
        proposers.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    proposers.truncate(c as usize);
    let mut started = BTreeMap::new();
    for (i, &p) in proposers.iter().enumerate() {
        let at = rng.range(0, args.window_us.max(1));
        started.insert(p, at);
        world.schedule(at, Event::Request(p, KvCommand::Write { key: 1, value: 100 + i as u64 }));
    }
    let mut learned_at: BTreeMap<NodeId, u64> = BTreeMap::new();
    while let Some(Reverse((now, seq))) = world.queue.pop() {
        let event = world.events.remove(&seq).expect("scheduled");
        let (node, replied) = match event {
            Event::Request(p, command) => {
                (p, world.step(p, now, |n, out| n.on_request(RequestId::new(0, 1), command, out)))
            }
            Event::Deliver(from, to, msg) => (to, world.step(to, now, |n, out| n.on_message(from, msg, out))),
            Event::Timer(node, timer, generation) => {
                if world.armed.get(&(node, timer.clone())) != Some(&generation) {
                    continue;
                }
                world.armed.remove(&(node, timer.clone()));
                (node, world.step(node, now, |n, out| n.on_timer(timer, out)))
            }
        };
        if let Some(at) = replied {
            learned_at.insert(node, at);
        }
        if learned_at.len() == proposers.len() {
            break;
        }
    }
    assert_eq!(learned_at.len(), proposers.len(), "every proposer answered (seed {seed}, {c} proposers)");
    let chosen = world.nodes[proposers[0].0 as usize].learned(1).cloned();
    for p in &proposers {
        assert_eq!(world.nodes[p.0 as usize].learned(1).cloned(), chosen, "agreement");
    }
    let latencies = proposers.iter().map(|p| learned_at[p] - started[p]).collect();
    Trial { path: world.path, latencies, messages: world.messages }
}

fn row(c: u32, trials: &[Trial], d: u64) -> Row {
    let n = trials.len() as f64;
    let share = |path: Path| trials.iter().filter(|t| t.path == path).count() as f64 / n;
    let mut latencies: Vec<u64> = trials.iter().flat_map(|t| t.latencies.iter().copied()).collect();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / d as f64
    };
    Row {
        proposers: c,
        trials: trials.len() as u64,
        fast: share(Path::Fast),
        recovered: share(Path::Recovery),
        classic: share(Path::Classic),
        latency_mean_d: latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / d as f64,
        latency_p50_d: at(0.5),
        latency_p99_d: at(0.99),
        messages_per_instance: trials.iter().map(|t| t.messages).sum::<u64>() as f64 / n,
    }
}

type Series = (&'static str, RGBColor, fn(&Row) -> f64);

fn plot(rows: &[Row], path: &PathBuf, nodes: u32) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(380);
    let x_max = rows.iter().map(|r| r.proposers).max().unwrap_or(1) + 1;
    let shares: [Series; 3] = [
        ("fast round", BLUE, |r| 100.0 * r.fast),
        ("recovery round 2", GREEN, |r| 100.0 * r.recovered),
        ("classic (phase 1)", RED, |r| 100.0 * r.classic),
    ];
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("Fast Paxos, {nodes} nodes: decided by"), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(1u32..x_max, 0f64..100f64)?;
    chart.configure_mesh().x_desc("concurrent proposers").y_desc("% of instances").draw()?;
    for (label, color, value) in shares {
        let points: Vec<(u32, f64)> = rows.iter().map(|r| (r.proposers, value(r))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    let y_max = rows.iter().map(|r| r.latency_p99_d).fold(1.0, f64::max) * 1.2;
    let latencies: [Series; 3] = [
        ("mean", BLUE, |r| r.latency_mean_d),
        ("p50", GREEN, |r| r.latency_p50_d),
        ("p99", RED, |r| r.latency_p99_d),
    ];
    let mut chart = ChartBuilder::on(&right)
        .caption("proposal to learning (units of d)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(1u32..x_max, 0f64..y_max)?;
    chart.configure_mesh().x_desc("concurrent proposers").y_desc("message delays d").draw()?;
    for (label, color, value) in latencies {
        let points: Vec<(u32, f64)> = rows.iter().map(|r| (r.proposers, value(r))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
