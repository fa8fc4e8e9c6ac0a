//! `quorum explore ... --html report.html`: one self-contained page (no
//! script, no network) with an exploration's verdicts, its violation kinds,
//! the always / sometimes claims table, latency and failover distributions
//! plotted with plotters' SVG backend, and the first violation's space-time
//! diagram, drawn from a rerun of that seed with the recorder on.
//!
//! The page is XHTML-compatible (every element closed, no named entities
//! but XML's), so an XML parser reads it: the tests do.

use std::fmt::Write as _;

use plotters::prelude::*;
use quorum_registry::claims::Properties;
use quorum_registry::Registered;
use quorum_sim::diagram::{svg, Recording, What};
use quorum_sim::{Capture, ExploreReport};

use crate::replay;

/// The most events the report draws of the first violation's run; a
/// longer run is drawn from its first fault on, this many events.
const DIAGRAM_EVENTS_MAX: usize = 2_000;

/// What the page shows besides the report: how it was made.
pub(crate) struct Page<'a> {
    pub(crate) command: String,
    pub(crate) report: &'a ExploreReport,
    pub(crate) properties: &'a Properties,
    pub(crate) wall_ms: u64,
}

/// The whole page.
pub(crate) fn html(page: &Page<'_>, registered: &Registered) -> String {
    let r = page.report;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n");
    out.push_str("<meta charset=\"utf-8\"/>\n");
    let _ = writeln!(out, "<title>quorum explore: {}</title>", esc(&r.protocol));
    let _ = writeln!(out, "<style>{CSS}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1>quorum explore: {}</h1>", esc(&r.protocol));
    let _ = writeln!(out, "<p><code>{}</code></p>", esc(&page.command));
    verdicts(&mut out, page);
    violation_kinds(&mut out, r);
    claims(&mut out, page.properties);
    plots(&mut out, r);
    first_violation(&mut out, r, registered);
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
td.n{text-align:right}.bad{color:#b03030;font-weight:bold}.good{color:#2a7a3a}\
.plots{display:flex;flex-wrap:wrap;gap:12px}.scroll{overflow:auto;max-height:900px;border:1px solid #ddd}\
code{background:#f4f4f4;padding:1px 4px}";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A table row whose value cell carries `id`, so a reader (or a test) can
/// find the figure.
fn row(out: &mut String, name: &str, id: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "<tr><th>{name}</th><td class=\"n\" id=\"{id}\">{value}</td></tr>");
}

fn verdicts(out: &mut String, page: &Page<'_>) {
    let r = page.report;
    let (class, verdict) = if r.violating_runs == 0 {
        ("good", "no violation".to_string())
    } else {
        ("bad", format!("{} of {} runs violated a property", r.violating_runs, r.runs))
    };
    let _ = writeln!(out, "<h2>Verdict: <span class=\"{class}\" id=\"verdict\">{verdict}</span></h2>");
    out.push_str("<table>\n");
    let _ = writeln!(out, "<tr><th>faults</th><td>{}</td></tr>", esc(&r.faults));
    row(out, "nodes", "nodes", r.nodes);
    row(out, "runs", "runs", r.runs);
    row(out, "violating runs", "violating-runs", r.violating_runs);
    row(out, "runs whose clients finished after the heal", "runs-live", r.runs_live);
    row(out, "operations ok / fail / info", "ops", format!("{} / {} / {}", r.ops_ok, r.ops_fail, r.ops_info));
    row(
        out,
        "writes refused (runs)",
        "writes-refused",
        format!("{} ({})", r.writes_failed, r.runs_with_failed_writes),
    );
    row(out, "simulated events", "events", r.events);
    row(out, "wall time, ms", "wall-ms", page.wall_ms);
    if let Some(f) = &r.failover_ms {
        let text = format!("{} crashes: p50 {:.1}, p99 {:.1}, max {:.1} ms", f.count, f.p50, f.p99, f.max);
        row(out, "failover", "failover", text);
    }
    out.push_str("</table>\n");
}

fn violation_kinds(out: &mut String, r: &ExploreReport) {
    out.push_str("<h2>Violation kinds</h2>\n<table>\n<tr><th>kind</th><th>runs</th></tr>\n");
    for (kind, runs) in &r.violations {
        let class = if *runs > 0 { " bad" } else { "" };
        let _ = writeln!(
            out,
            "<tr><td>{kind}</td><td class=\"n{class}\" id=\"violations-{kind}\">{runs}</td></tr>"
        );
    }
    out.push_str("</table>\n");
}

fn claims(out: &mut String, p: &Properties) {
    out.push_str("<h2>Always properties</h2>\n<table>\n");
    out.push_str("<tr><th>property</th><th>claimed</th><th>held in runs</th><th>broken in runs</th></tr>\n");
    for a in &p.always {
        let claim = if a.claimed {
            "claimed"
        } else if a.breaks {
            "breaks (source text)"
        } else {
            "not claimed"
        };
        let class = if a.claimed && a.broken > 0 { " bad" } else { "" };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{claim}</td><td class=\"n\">{}</td><td class=\"n{class}\" id=\"broken-{}\">{}</td></tr>",
            a.name, a.held, a.name, a.broken
        );
    }
    out.push_str("</table>\n<h2>Sometimes properties (hard cases reached)</h2>\n<table>\n");
    out.push_str("<tr><th>property</th><th>declared</th><th>runs that reached it</th></tr>\n");
    for s in &p.sometimes {
        let class = if s.declared && s.reached == 0 { " bad" } else { "" };
        let declared = if s.declared { "yes" } else { "no (the simulator's)" };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{declared}</td><td class=\"n{class}\" id=\"reached-{}\">{}</td></tr>",
            esc(&s.name),
            esc(&s.name),
            s.reached
        );
    }
    out.push_str("</table>\n");
    if !p.never_reached.is_empty() {
        let _ = writeln!(out, "<p class=\"bad\">Never reached: {}</p>", p.never_reached.join(", "));
    }
}

fn plots(out: &mut String, r: &ExploreReport) {
    let s = &r.samples;
    out.push_str("<h2>Distributions</h2>\n<div class=\"plots\">\n");
    let plots = [
        ("update latency, median of each run", "ms", &s.update_latency_p50_us),
        ("update latency, 99th percentile of each run", "ms", &s.update_latency_p99_us),
        ("failover: leader crash to next leader", "ms", &s.failover_us),
    ];
    for (title, unit, samples) in plots {
        match histogram(title, unit, samples) {
            Some(svg) => {
                let _ = writeln!(out, "<div class=\"plot\">{svg}</div>");
            }
            None => {
                let _ = writeln!(out, "<p>{title}: no samples.</p>");
            }
        }
    }
    out.push_str("</div>\n");
}

/// A histogram of `samples_us` in ms (20 bins), as an SVG element; `None`
/// without samples.
fn histogram(title: &str, unit: &str, samples_us: &[u64]) -> Option<String> {
    let max_us = *samples_us.iter().max()?;
    const BINS: u64 = 20;
    let bin_us = (max_us / BINS + 1).max(1);
    let mut counts = [0u32; BINS as usize + 1];
    for &v in samples_us {
        counts[(v / bin_us).min(BINS) as usize] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1);
    let bin_ms = bin_us as f64 / 1000.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let caption = format!("{title} ({} samples)", samples_us.len());
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..(bin_ms * (BINS + 1) as f64), 0u32..top + top / 10 + 1)
            .ok()?;
        chart.configure_mesh().x_desc(unit).y_desc("count").disable_x_mesh().draw().ok()?;
        let bars = counts.iter().enumerate().map(|(i, &n)| {
            let x = i as f64 * bin_ms;
            Rectangle::new([(x, 0), (x + bin_ms * 0.92, n)], RGBColor(31, 95, 168).filled())
        });
        chart.draw_series(bars).ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The first violation's run again with the recorder on, drawn.
fn first_violation(out: &mut String, r: &ExploreReport, registered: &Registered) {
    let Some(first) = &r.first else {
        out.push_str("<h2>First violation</h2>\n<p id=\"first\">None: no run violated a property.</p>\n");
        return;
    };
    let kinds: Vec<&str> = first.violations.iter().map(|v| v.name()).collect();
    let command = replay::command(&first.replay);
    let _ = writeln!(out, "<h2>First violation: seed {}, {}</h2>", first.seed, kinds.join(", "));
    let _ = writeln!(
        out,
        "<p id=\"first\">Replay (schedule shrunk from {} to {} faults): <code id=\"replay\">{}</code></p>",
        first.faults_before_shrink,
        first.faults_after_shrink,
        esc(&command)
    );
    if let Some(why) = &first.explanation {
        let _ = writeln!(out, "<p>{}</p>", esc(why));
    }
    let rerun = registered.run_captured(&first.replay.config, Capture::RECORD);
    let Some(recording) = rerun.ok().and_then(|o| o.recording) else {
        out.push_str("<p>The rerun could not be recorded.</p>\n");
        return;
    };
    let window = window_of(&recording);
    let picture = svg::render(&recording, &svg::Options { title: command.clone(), window });
    if let Some((from, to)) = window {
        let _ = writeln!(
            out,
            "<p>The run has {} events; drawn: {} to {} ms (<code>{} --svg run.svg --svg-window FROM..TO</code> draws any other part).</p>",
            recording.events.len(),
            from / 1000,
            to.div_ceil(1000),
            esc(&command)
        );
    }
    let _ = writeln!(out, "<div class=\"scroll\" id=\"diagram\">{}</div>", picture.trim_end());
}

/// All of a short run; of a long one, [`DIAGRAM_EVENTS_MAX`] events from
/// just before its first fault.
fn window_of(recording: &Recording) -> Option<(u64, u64)> {
    let events = &recording.events;
    if events.len() <= DIAGRAM_EVENTS_MAX {
        return None;
    }
    let first_fault = events.iter().position(|e| matches!(e.what, What::Fault { .. } | What::Crash { .. }));
    let start = first_fault.unwrap_or(0).saturating_sub(100);
    let end = (start + DIAGRAM_EVENTS_MAX).min(events.len() - 1);
    Some((events[start].at, events[end].at))
}
