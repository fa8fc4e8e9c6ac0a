//! `quorum ben-or-rounds`: rounds to decide against the cluster size, for
//! Ben-Or's protocol with local coins and inputs split as evenly as `n`
//! allows (the worst case). Each seed is one simulated run with no faults
//! (latency uniform in [500 µs, 2 ms], so messages arrive in a random
//! order) deciding `--instances` independent instances; a sample is one
//! instance: the highest round any node was in when it decided. The
//! figures are the mean, median and 99th percentile over all samples of
//! each `n`; `--svg` plots them (plotters).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use plotters::prelude::*;
use quorum_sim::FaultSet;
use serde::Serialize;

use crate::UsageError;

#[derive(Args)]
pub struct RoundsArgs {
    /// Cluster sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3,5,7,9,11,13,15")]
    nodes: Vec<u32>,
    /// Seeds (runs) per cluster size.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Instances decided in each run.
    #[arg(long, default_value_t = 20)]
    instances: u32,
    /// Write the plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// The figures of one cluster size.
#[derive(Serialize)]
struct Row {
    nodes: u32,
    /// The crashes tolerated, ⌊(n-1)/2⌋, and so n - f, the messages each
    /// phase waits for.
    f: u32,
    samples: usize,
    mean: f64,
    median: u64,
    p99: u64,
    max: u64,
    /// Instances decided in round 1.
    round_one_share: f64,
}

pub fn rounds(args: RoundsArgs) -> Result<ExitCode, UsageError> {
    if args.nodes.is_empty() || args.nodes.contains(&0) || args.seeds == 0 || args.instances == 0 {
        return Err(UsageError("--nodes, --seeds and --instances must be positive".into()));
    }
    let registered = quorum_registry::find("ben-or")?;
    let mut rows = Vec::new();
    for &n in &args.nodes {
        let mut samples = samples(registered, n, &args)?;
        samples.sort_unstable();
        rows.push(row(n, &samples));
        if !args.json {
            let r = rows.last().expect("pushed");
            println!(
                "n={:>2} f={:>2}  instances {:>6}  rounds mean {:>8.2}  median {:>4}  p99 {:>5}  max {:>5}  decided in round 1: {:.1}%",
                r.nodes, r.f, r.samples, r.mean, r.median, r.p99, r.max, 100.0 * r.round_one_share
            );
        }
    }
    if let Some(path) = &args.svg {
        plot(&rows, path).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every instance's rounds to decide, over `args.seeds` runs at `n` nodes.
fn samples(
    registered: &quorum_registry::Registered,
    n: u32,
    args: &RoundsArgs,
) -> Result<Vec<u64>, UsageError> {
    let choice = registered.choose(None, None, Some(r#"{"inputs":"split"}"#))?;
    let mut config = registered.sim_config(choice);
    config.swarm = None;
    config.faults = FaultSet::none();
    config.nodes = n;
    config.clients = 1;
    config.ops = args.instances * 2;
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let next = Mutex::new(0u64);
    let found: Mutex<Result<Vec<u64>, String>> = Mutex::new(Ok(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = {
                    let mut next = next.lock().expect("no panic holding it");
                    *next += 1;
                    *next - 1
                };
                if seed >= args.seeds {
                    return;
                }
                let mut c = config.clone();
                c.seed = seed;
                let result = registered.run(&c, false).map_err(|e| e.to_string()).and_then(|outcome| {
                    if outcome.violated() {
                        return Err(format!("seed {seed} at {n} nodes violated {:?}", outcome.violations));
                    }
                    Ok(outcome.decision.map(|d| d.rounds).unwrap_or_default())
                });
                let mut found = found.lock().expect("no panic holding it");
                match (found.as_mut(), result) {
                    (Ok(all), Ok(rounds)) => all.extend(rounds),
                    (Ok(_), Err(e)) => *found = Err(e),
                    (Err(_), _) => {}
                }
            });
        }
    });
    found.into_inner().expect("threads joined").map_err(UsageError)
}

fn row(n: u32, sorted: &[u64]) -> Row {
    let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    Row {
        nodes: n,
        f: (n - 1) / 2,
        samples: sorted.len(),
        mean: sorted.iter().sum::<u64>() as f64 / sorted.len() as f64,
        median: at(0.5),
        p99: at(0.99),
        max: *sorted.last().expect("samples"),
        round_one_share: sorted.iter().filter(|r| **r == 1).count() as f64 / sorted.len() as f64,
    }
}

/// A plotted line: its name, colour, and the figure it shows.
type Series = (&'static str, RGBColor, fn(&Row) -> f64);

fn plot(rows: &[Row], path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = rows.iter().map(|r| r.nodes).max().unwrap_or(1) + 1;
    let y_max = rows.iter().map(|r| r.p99.max(r.mean.ceil() as u64)).max().unwrap_or(1) as f64 * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption("Ben-Or, local coins, split inputs: rounds to decide", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1u32..x_max, (0.8f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("nodes n (f = (n-1)/2 crashes tolerated)")
        .y_desc("rounds (log scale)")
        .draw()?;
    let series: [Series; 3] =
        [("mean", BLUE, |r| r.mean), ("median", GREEN, |r| r.median as f64), ("p99", RED, |r| r.p99 as f64)];
    for (name, color, value) in series {
        let points: Vec<(u32, f64)> = rows.iter().map(|r| (r.nodes, value(r))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
