//! `quorum anti-entropy-cost`: what Merkle-tree reconciliation of two
//! replicas of a key space costs against the number of keys on which they
//! differ, beside a full-state exchange of the same replicas
//! (`protocols::anti_entropy`). Replica A holds `--keys` keys; replica B
//! is A with `d` keys (drawn with `--seed`) given new values. For each `d`
//! the table gives the tree's round trips, hashes, entries and bytes, the
//! full exchange's bytes, and checks that both exchanges leave the
//! replicas equal (and equal to each other). `--svg` plots bytes against
//! `d` (plotters).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use plotters::prelude::*;
use quorum_core::Rng;
use quorum_protocols::anti_entropy::{full_state_exchange, reconcile, KeySpace, Shape};
use serde::Serialize;

use crate::UsageError;

#[derive(Args)]
pub struct AntiEntropyArgs {
    /// Keys each replica holds.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Children per inner node of the tree.
    #[arg(long, default_value_t = 16)]
    fanout: u32,
    /// Levels below the root (fanout^depth leaves).
    #[arg(long, default_value_t = 5)]
    depth: u32,
    /// Numbers of differing keys, comma-separated (each at most --keys).
    #[arg(long, value_delimiter = ',', default_value = "0,1,10,100,1000,10000,100000,1000000")]
    differing: Vec<u64>,
    /// Seed choosing which keys differ.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// The figures of one number of differing keys.
#[derive(Serialize)]
struct Row {
    differing: u64,
    leaves_differing: u64,
    tree_round_trips: u64,
    tree_hashes: u64,
    tree_entries: u64,
    tree_bytes: u64,
    full_round_trips: u64,
    full_entries: u64,
    full_bytes: u64,
}

pub fn anti_entropy(args: AntiEntropyArgs) -> Result<ExitCode, UsageError> {
    let shape = Shape { fanout: args.fanout, depth: args.depth }.validate().map_err(UsageError)?;
    if args.keys == 0 || args.differing.is_empty() {
        return Err(UsageError("--keys and --differing must not be empty".into()));
    }
    if let Some(d) = args.differing.iter().find(|d| **d > args.keys) {
        return Err(UsageError(format!("--differing {d} is more than --keys {}", args.keys)));
    }
    let a: KeySpace = (0..args.keys).map(|k| (k, k.wrapping_mul(0x9e37_79b9) | 1)).collect();
    if !args.json {
        println!(
            "{} keys, tree fanout {} depth {} ({} leaves); bytes both ways: hash, key, value 8 each",
            args.keys,
            shape.fanout,
            shape.depth,
            shape.leaves()
        );
    }
    let mut rows = Vec::new();
    for &d in &args.differing {
        let row = measure(&a, d, shape, args.seed)?;
        if !args.json {
            println!(
                "differing {:>8}  tree: {:>2} round trips, {:>8} hashes, {:>8} entries, {:>11} bytes   full state: {} round trip, {:>8} entries, {:>11} bytes   tree/full {:.5}",
                row.differing, row.tree_round_trips, row.tree_hashes, row.tree_entries, row.tree_bytes,
                row.full_round_trips, row.full_entries, row.full_bytes, row.tree_bytes as f64 / row.full_bytes as f64
            );
        }
        rows.push(row);
    }
    if let Some(path) = &args.svg {
        plot(&rows, args.keys, shape, path)
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
    }
    Ok(ExitCode::SUCCESS)
}

/// B is A with `d` keys (drawn with `seed`) given new, larger values;
/// reconcile copies both ways and check they end equal.
fn measure(a: &KeySpace, d: u64, shape: Shape, seed: u64) -> Result<Row, UsageError> {
    let mut rng = Rng::stream(seed, d);
    let keys = a.len() as u64;
    let mut chosen = BTreeSet::new();
    if d == keys {
        chosen.extend(a.keys().copied());
    }
    while (chosen.len() as u64) < d {
        chosen.insert(rng.range(0, keys));
    }
    let mut b = a.clone();
    for key in &chosen {
        *b.get_mut(key).expect("a key of A") += 1;
    }
    let (mut tree_a, mut tree_b) = (a.clone(), b.clone());
    let tree = reconcile(&mut tree_a, &mut tree_b, shape);
    let (mut full_a, mut full_b) = (a.clone(), b);
    let full = full_state_exchange(&mut full_a, &mut full_b);
    if tree_a != tree_b || full_a != full_b || tree_a != full_a {
        return Err(UsageError(format!("reconciliation with {d} differing keys left the replicas apart")));
    }
    Ok(Row {
        differing: d,
        leaves_differing: tree.leaves_differing,
        tree_round_trips: tree.round_trips,
        tree_hashes: tree.hashes_sent,
        tree_entries: tree.entries_sent,
        tree_bytes: tree.bytes,
        full_round_trips: full.round_trips,
        full_entries: full.entries_sent,
        full_bytes: full.bytes,
    })
}

/// A plotted line: its name, colour, and the figure it shows.
type Series = (&'static str, RGBColor, fn(&Row) -> u64);

fn plot(rows: &[Row], keys: u64, shape: Shape, path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let plotted: Vec<&Row> = rows.iter().filter(|r| r.differing > 0).collect();
    let x_max = plotted.iter().map(|r| r.differing).max().unwrap_or(1) as f64 * 2.0;
    let y_max = plotted.iter().map(|r| r.tree_bytes.max(r.full_bytes)).max().unwrap_or(1) as f64 * 3.0;
    let caption = format!(
        "Merkle anti-entropy, {keys} keys, fanout {} depth {}: bytes to reconcile",
        shape.fanout, shape.depth
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.7f64..x_max).log_scale(), (10f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("keys that differ (log scale)")
        .y_desc("bytes exchanged, both ways (log scale)")
        .draw()?;
    let series: [Series; 2] =
        [("Merkle tree", BLUE, |r| r.tree_bytes), ("full state", RED, |r| r.full_bytes)];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = plotted.iter().map(|r| (r.differing as f64, value(r) as f64)).collect();
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
