//! A [`Recording`] drawn as an SVG space-time diagram, by hand: one vertical
//! line per client and per node, time flowing down, one row per step (a
//! delivery, a timer, a request, a start or a crash, with the effects it
//! had), so that bursts stay readable and quiet gaps take no room; the time
//! of each row is written on the left.
//!
//! What is drawn, with the class each element carries (the tests count
//! them): `msg` an arrow from a send to its delivery (a duplicate delivers
//! twice), `msg-drop` a message the network or a crashed target lost (a
//! cross where it died), `msg-lost` a message still in a dying node's send
//! queue, `msg-inflight` one sent but not delivered within the window;
//! `persist` a square, `timer` a circle, `crash` a cross on the lifeline,
//! `start` a bar (a restart is labelled); `req` / `reply` a client's request
//! and its answer (`req-drop`, `reply-drop` when a partition cut them off,
//! `timeout` when the client gave up); `role` where a node's role changes
//! (the lifeline is thick red while it leads, orange while it campaigns,
//! dashed while it is down); `mark` a decision; `fault` a nemesis action
//! (a dotted line across); `partition` the lanes shaded by side while the
//! network is cut.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{Clock, Recording, What};

/// How to draw a recording.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The first line of the picture.
    pub title: String,
    /// Only the events with `at` in `[from, to]` (in the recording's clock:
    /// µs or steps); arrows that cross the window's edges are cut there.
    pub window: Option<(u64, u64)>,
}

const ROW_H: f64 = 18.0;
const LANE_W: f64 = 118.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 84.0;
/// Below the last row: room for the messages still in flight at the end.
const BOTTOM: f64 = 60.0;

/// The state of a lane at a row, for its lifeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Down,
    Up,
    Follower,
    Candidate,
    Leader,
}

/// Draw `recording` as one self-contained SVG document.
pub fn render(recording: &Recording, options: &Options) -> String {
    let (from, to) = options.window.unwrap_or((0, u64::MAX));
    let before: Vec<&What> = recording.events.iter().filter(|e| e.at < from).map(|e| &e.what).collect();
    let shown = recording.window(from, to);
    let layout = Layout::of(recording, &shown);
    let mut svg = Svg::new(&layout);
    svg.header(&options.title, &shown, options.window);
    svg.time_axis(&shown, &layout);
    svg.partitions(&before, &shown, &layout);
    svg.lifelines(&before, &shown, &layout);
    svg.faults(&shown, &layout);
    svg.messages(&shown, &layout);
    svg.clients(&shown, &layout);
    svg.node_marks(&shown, &layout);
    svg.finish()
}

/// Where things go: each event's row, each lane's x.
struct Layout {
    rows: Vec<usize>,
    row_count: usize,
    clients: Vec<u32>,
    nodes: Vec<String>,
    clock: Clock,
}

impl Layout {
    fn of(full: &Recording, shown: &Recording) -> Layout {
        let mut rows = Vec::with_capacity(shown.events.len());
        let mut row: Option<usize> = None;
        for event in &shown.events {
            if event.what.opens_row() || row.is_none() {
                row = Some(row.map_or(0, |r| r + 1));
            }
            rows.push(row.expect("set above"));
        }
        let clients: BTreeSet<u32> = shown.events.iter().filter_map(|e| client_of(&e.what)).collect();
        Layout {
            rows,
            row_count: row.map_or(0, |r| r + 1),
            clients: clients.into_iter().collect(),
            nodes: full.nodes.clone(),
            clock: full.clock,
        }
    }

    fn lanes(&self) -> usize {
        self.clients.len() + self.nodes.len()
    }

    fn width(&self) -> f64 {
        LEFT + LANE_W * self.lanes() as f64 + RIGHT
    }

    fn height(&self) -> f64 {
        TOP + ROW_H * self.row_count.max(1) as f64 + BOTTOM
    }

    fn client_x(&self, client: u32) -> f64 {
        let i = self.clients.iter().position(|c| *c == client).unwrap_or(0);
        LEFT + LANE_W * (i as f64 + 0.5)
    }

    fn node_x(&self, node: u32) -> f64 {
        LEFT + LANE_W * ((self.clients.len() + node as usize) as f64 + 0.5)
    }

    fn y(&self, row: usize) -> f64 {
        TOP + ROW_H * (row as f64 + 0.5)
    }

    fn bottom(&self) -> f64 {
        TOP + ROW_H * self.row_count.max(1) as f64
    }
}

fn client_of(what: &What) -> Option<u32> {
    match what {
        What::Invoke { client, .. }
        | What::Complete { client, .. }
        | What::Request { client, .. }
        | What::Reply { client, .. } => Some(*client),
        _ => None,
    }
}

/// The SVG being written.
struct Svg {
    out: String,
}

/// `text` with XML's five special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` if cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
}

const STYLE: &str = "text{font-family:sans-serif;font-size:10px}\
.small{font-size:9px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}\
.msg line,.msg .loop,.msg-inflight line{stroke:#1f5fa8;stroke-width:1.1}\
.msg-drop line,.msg-drop .loop,.msg-lost line{stroke:#b03030;stroke-width:1.1;stroke-dasharray:4 2}\
.msg-inflight line{stroke-dasharray:2 3}\
.req line,.reply line{stroke:#2a8a3a;stroke-width:1.1}\
.req-drop line,.reply-drop line{stroke:#2a8a3a;stroke-width:1.1;stroke-dasharray:4 2}\
.x{stroke:#b03030;stroke-width:2}\
.fault line{stroke:#7a4a9a;stroke-dasharray:1 3}";

impl Svg {
    fn new(layout: &Layout) -> Svg {
        let (w, h) = (layout.width(), layout.height());
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}">"#
        );
        let _ = writeln!(out, "<style>{STYLE}</style>");
        let _ = writeln!(
            out,
            r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#
        );
        let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
        Svg { out }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            escape(text)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
        let _ = writeln!(self.out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#);
    }

    /// A cross centred on `(x, y)`.
    fn cross(&mut self, (x, y): (f64, f64), size: f64) {
        let _ = writeln!(
            self.out,
            r#"<path class="x" d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}"/>"#,
            x - size,
            y - size,
            x + size,
            y + size,
            x - size,
            y + size,
            x + size,
            y - size
        );
    }

    /// An arrow of class `class` from `a` to `b`, with a tooltip and a
    /// label at its middle; a cross at `b` instead of a head if `cut`.
    fn arrow(&mut self, class: &str, a: (f64, f64), b: (f64, f64), label: &str, detail: &str, cut: bool) {
        let _ = write!(self.out, r#"<g class="{class}"><title>{}</title>"#, escape(detail));
        let head = if cut { "" } else { r#"marker-end="url(#arrow)""# };
        let (mut mx, my) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0 - 2.0);
        if (a.0 - b.0).abs() < 1.0 && (b.1 - a.1).abs() > 1.0 {
            // A message to oneself: a loop out to the right of the line.
            let bulge = a.0 + 34.0;
            let _ = write!(
                self.out,
                r#"<path d="M{:.1},{:.1} C{bulge:.1},{:.1} {bulge:.1},{:.1} {:.1},{:.1}" class="loop" fill="none" {head}/>"#,
                a.0, a.1, a.1, b.1, b.0, b.1
            );
            mx += 30.0;
        } else {
            self.line(a, b, head);
        }
        if cut {
            self.cross(b, 3.5);
        }
        if !label.is_empty() {
            self.text(mx, my, "middle", "small", &short(label, 22));
        }
        self.out.push_str("</g>\n");
    }

    fn header(&mut self, title: &str, shown: &Recording, window: Option<(u64, u64)>) {
        self.text(12.0, 18.0, "start", "", title);
        let unit = |at: u64| match shown.clock {
            Clock::Micros => format!("{:.1} ms", at as f64 / 1000.0),
            Clock::Steps => format!("step {at}"),
        };
        let span = match (shown.events.first(), shown.events.last()) {
            (Some(a), Some(b)) => format!("{} to {}", unit(a.at), unit(b.at)),
            _ => "nothing happened".to_string(),
        };
        let window = window.map_or(String::new(), |(a, b)| format!(" (window {} to {})", unit(a), unit(b)));
        self.text(12.0, 32.0, "start", "small", &format!("{} events, {span}{window}", shown.events.len()));
        let legend = "→ message   ✕ lost   ■ persist   ○ timer   ✕ on a line: crash   ▬ (re)start   \
                      red line: leader   orange: candidate   dashed: down   shaded: partition";
        self.text(12.0, 46.0, "start", "small", legend);
    }

    /// The lanes' names and each row's time, where it changed.
    fn time_axis(&mut self, shown: &Recording, layout: &Layout) {
        for (i, c) in layout.clients.iter().enumerate() {
            let name =
                if layout.clock == Clock::Steps { "client".to_string() } else { format!("client {c}") };
            self.text(LEFT + LANE_W * (i as f64 + 0.5), TOP - 8.0, "middle", "", &name);
        }
        for (i, name) in layout.nodes.iter().enumerate() {
            self.text(layout.node_x(i as u32), TOP - 8.0, "middle", "", name);
        }
        let mut last: Option<u64> = None;
        let mut last_row = usize::MAX;
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            if row == last_row || last == Some(event.at) {
                continue;
            }
            let label = match layout.clock {
                Clock::Micros => format!("{:.3} ms", event.at as f64 / 1000.0),
                Clock::Steps => format!("{}", event.at),
            };
            self.text(LEFT - 10.0, layout.y(row) + 3.0, "end", "small", &label);
            (last, last_row) = (Some(event.at), row);
        }
    }

    /// Shade each lane by its side of the partition, for the rows the
    /// network is cut.
    fn partitions(&mut self, before: &[&What], shown: &Recording, layout: &Layout) {
        let mut blocked: Vec<(u32, u32)> = before
            .iter()
            .rev()
            .find_map(|w| match w {
                What::Fault { blocked: Some(b), .. } => Some(b.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let mut since = 0;
        let changes = shown.events.iter().zip(&layout.rows).filter_map(|(e, &row)| match &e.what {
            What::Fault { blocked: Some(b), .. } => Some((row, b.clone())),
            _ => None,
        });
        for (row, next) in changes.chain(std::iter::once((layout.row_count, Vec::new()))) {
            self.shade(&blocked, since, row, layout);
            (blocked, since) = (next, row);
        }
    }

    fn shade(&mut self, blocked: &[(u32, u32)], from_row: usize, to_row: usize, layout: &Layout) {
        if blocked.is_empty() || to_row <= from_row {
            return;
        }
        const SIDES: [&str; 4] = ["#4c78a8", "#f58518", "#54a24b", "#b279a2"];
        let sides = sides(layout.nodes.len() as u32, blocked);
        let (y, h) = (TOP + ROW_H * from_row as f64, ROW_H * (to_row - from_row) as f64);
        let _ = writeln!(self.out, r#"<g class="partition">"#);
        for (node, side) in sides.iter().enumerate() {
            let x = layout.node_x(node as u32) - LANE_W / 2.0 + 6.0;
            let _ = writeln!(
                self.out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}" fill-opacity="0.13"/>"#,
                LANE_W - 12.0,
                SIDES[side % SIDES.len()]
            );
        }
        self.out.push_str("</g>\n");
    }
}

/// Each node's side of a partition: nodes that reach each other both ways
/// are on one side (the components of the two-way links), numbered in
/// node order; a node cut one way only from the rest gets a side of its own
/// too, so the shading shows it.
fn sides(nodes: u32, blocked: &[(u32, u32)]) -> Vec<usize> {
    let cut: BTreeSet<(u32, u32)> = blocked.iter().copied().collect();
    let mut side = vec![usize::MAX; nodes as usize];
    let mut next = 0;
    for start in 0..nodes {
        if side[start as usize] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        side[start as usize] = next;
        while let Some(a) = stack.pop() {
            for b in 0..nodes {
                let linked = !cut.contains(&(a, b)) && !cut.contains(&(b, a));
                if side[b as usize] == usize::MAX && linked {
                    side[b as usize] = next;
                    stack.push(b);
                }
            }
        }
        next += 1;
    }
    side
}

impl Svg {
    /// Each node's lifeline, styled by what it is at each row.
    fn lifelines(&mut self, before: &[&What], shown: &Recording, layout: &Layout) {
        let nodes = layout.nodes.len();
        let mut life = vec![Life::Down; nodes];
        for what in before {
            step_life(&mut life, what);
        }
        let mut since = vec![0usize; nodes];
        let mut last_role: BTreeMap<u32, String> = BTreeMap::new();
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            let mut next = life.clone();
            step_life(&mut next, &event.what);
            for node in 0..nodes {
                if next[node] != life[node] {
                    self.lifeline(node as u32, life[node], since[node], row, layout);
                    since[node] = row;
                }
            }
            if let What::Role { node, role, term } = &event.what {
                let text = format!("{role} t{term}");
                if last_role.get(node) != Some(&text) {
                    let (x, y) = (layout.node_x(*node), layout.y(row));
                    let _ = write!(self.out, r#"<g class="role">"#);
                    self.text(x - 6.0, y + 3.0, "end", "small", &text);
                    self.out.push_str("</g>\n");
                    last_role.insert(*node, text);
                }
            }
            life = next;
        }
        for node in 0..nodes {
            self.lifeline(node as u32, life[node], since[node], layout.row_count, layout);
        }
        for client in layout.clients.clone() {
            let x = layout.client_x(client);
            self.line(
                (x, TOP),
                (x, layout.bottom()),
                r##"stroke="#2a8a3a" stroke-width="1" stroke-opacity="0.6""##,
            );
        }
    }

    fn lifeline(&mut self, node: u32, life: Life, from_row: usize, to_row: usize, layout: &Layout) {
        let x = layout.node_x(node);
        let (y1, y2) = (TOP + ROW_H * from_row as f64, TOP + ROW_H * to_row as f64);
        if y2 <= y1 {
            return;
        }
        let style = match life {
            Life::Down => r##"stroke="#999" stroke-width="1" stroke-dasharray="3 4""##,
            Life::Up | Life::Follower => r##"stroke="#444" stroke-width="1.5""##,
            Life::Candidate => r##"stroke="#ff8c1a" stroke-width="3.5""##,
            Life::Leader => r##"stroke="#d62728" stroke-width="5""##,
        };
        self.line((x, y1), (x, y2), style);
    }
}

fn step_life(life: &mut [Life], what: &What) {
    match what {
        What::Start { node, .. } => life[*node as usize] = Life::Up,
        What::Crash { node, .. } => life[*node as usize] = Life::Down,
        What::Role { node, role, .. } => {
            life[*node as usize] = match role.as_str() {
                "leader" => Life::Leader,
                "candidate" => Life::Candidate,
                _ => Life::Follower,
            }
        }
        _ => {}
    }
}

impl Svg {
    fn faults(&mut self, shown: &Recording, layout: &Layout) {
        let right = layout.width() - RIGHT;
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            if let What::Fault { label, .. } = &event.what {
                let y = layout.y(row);
                let _ = write!(self.out, r#"<g class="fault"><title>{}</title>"#, escape(label));
                self.line((LEFT, y), (right, y), "");
                self.text(right + 6.0, y + 3.0, "start", "small", &short(label, 34));
                self.out.push_str("</g>\n");
            }
        }
    }

    /// Every message: sends matched with their deliveries and drops by id.
    fn messages(&mut self, shown: &Recording, layout: &Layout) {
        let mut sent: BTreeMap<u64, (usize, u32, u32, &str, &str)> = BTreeMap::new();
        let mut arrived: BTreeSet<u64> = BTreeSet::new();
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            let y = layout.y(row);
            match &event.what {
                What::Send { id, from, to, label, detail } => {
                    sent.insert(*id, (row, *from, *to, label, detail));
                }
                What::Deliver { id, from, to } | What::DropOnArrival { id, from, to } => {
                    arrived.insert(*id);
                    let cut = matches!(event.what, What::DropOnArrival { .. });
                    let (start, label, detail) = match sent.get(id) {
                        Some(&(r, _, _, label, detail)) => (layout.y(r), label, detail),
                        None => (TOP, "", "sent before the window"),
                    };
                    let class = if cut { "msg-drop" } else { "msg" };
                    let (a, b) = ((layout.node_x(*from), start), (layout.node_x(*to), y));
                    self.arrow(class, a, b, label, detail, cut);
                }
                What::DropOnSend { from, to, why, label, detail, .. } => {
                    let (x1, x2) = (layout.node_x(*from), layout.node_x(*to));
                    let b = (x1 + (x2 - x1) * 0.4, y + ROW_H * 0.5);
                    let detail = format!("dropped ({why}): {detail}");
                    self.arrow("msg-drop", (x1, y), b, label, &detail, true);
                }
                What::LostInCrash { from, to } => {
                    let (x1, x2) = (layout.node_x(*from), layout.node_x(*to));
                    let b = (x1 + (x2 - x1) * 0.2, y + ROW_H * 0.3);
                    self.arrow("msg-lost", (x1, y), b, "", "lost in the send queue of a crashed node", true);
                }
                _ => {}
            }
        }
        for (id, (row, from, to, label, detail)) in sent {
            if !arrived.contains(&id) {
                let end = layout.bottom() + ROW_H * 1.8;
                let (a, b) = ((layout.node_x(from), layout.y(row)), (layout.node_x(to), end));
                let detail = format!("in flight at the end: {detail}");
                self.arrow("msg-inflight", a, b, label, &detail, false);
            }
        }
    }
}

impl Svg {
    /// Client requests and answers, matched by request id in order.
    fn clients(&mut self, shown: &Recording, layout: &Layout) {
        let mut invoked: BTreeMap<&str, (usize, u32)> = BTreeMap::new();
        let mut replied: BTreeMap<&str, (usize, u32, &str)> = BTreeMap::new();
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            let y = layout.y(row);
            match &event.what {
                What::Invoke { client, node, rid, label, dropped, .. } => {
                    if *dropped {
                        let (x1, x2) = (layout.client_x(*client), layout.node_x(*node));
                        let b = (x1 + (x2 - x1) * 0.4, y + ROW_H * 0.5);
                        self.arrow(
                            "req-drop",
                            (x1, y),
                            b,
                            label,
                            &format!("{rid} {label} (partition)"),
                            true,
                        );
                    } else {
                        invoked.insert(rid, (row, *client));
                    }
                }
                What::Request { client, node, rid, label } => {
                    let start = invoked.remove(rid.as_str()).map_or(y, |(r, _)| layout.y(r));
                    let (a, b) = ((layout.client_x(*client), start), (layout.node_x(*node), y));
                    self.arrow("req", a, b, label, &format!("{rid} {label}"), false);
                }
                What::Reply { node, client, rid, label, dropped } => {
                    self.reply(layout, (row, *node, *client), rid, label, *dropped, &mut replied);
                }
                What::Complete { client, node: Some(_), rid, .. } => {
                    if let Some((r, node, label)) = replied.remove(rid.as_str()) {
                        let (a, b) = ((layout.node_x(node), layout.y(r)), (layout.client_x(*client), y));
                        self.arrow("reply", a, b, label, &format!("{rid} {label}"), false);
                    }
                }
                What::Complete { client, node: None, rid, .. } => {
                    let x = layout.client_x(*client);
                    let _ =
                        write!(self.out, r#"<g class="timeout"><title>{} timed out</title>"#, escape(rid));
                    self.cross((x, y), 4.0);
                    self.text(x - 7.0, y + 3.0, "end", "small", "timeout");
                    self.out.push_str("</g>\n");
                }
                _ => {}
            }
        }
        // Answers never heard within the window (late, or past its end).
        for (rid, (row, node, label)) in replied {
            let (x1, y) = (layout.node_x(node), layout.y(row));
            let b = (x1 - LANE_W * 0.3, y + ROW_H * 0.4);
            self.arrow(
                "reply",
                (x1, y),
                b,
                label,
                &format!("{rid} {label} (not heard in the window)"),
                false,
            );
        }
    }

    /// A node's answer: dropped here, drawn across the row at once in a
    /// script (no client latency), else matched with its arrival later.
    fn reply<'a>(
        &mut self,
        layout: &Layout,
        (row, node, client): (usize, u32, u32),
        rid: &'a str,
        label: &'a str,
        dropped: bool,
        replied: &mut BTreeMap<&'a str, (usize, u32, &'a str)>,
    ) {
        let (x1, x2, y) = (layout.node_x(node), layout.client_x(client), layout.y(row));
        if dropped {
            let b = (x1 + (x2 - x1) * 0.4, y + ROW_H * 0.5);
            self.arrow("reply-drop", (x1, y), b, label, &format!("{rid} {label} (partition)"), true);
        } else if layout.clock == Clock::Steps {
            self.arrow("reply", (x1, y), (x2, y), label, &format!("{rid} {label}"), false);
        } else {
            replied.insert(rid, (row, node, label));
        }
    }

    /// What happens on a node's line: persists, timers, crashes, starts,
    /// decisions.
    fn node_marks(&mut self, shown: &Recording, layout: &Layout) {
        let mut persists_in_row: BTreeMap<(usize, u32), usize> = BTreeMap::new();
        for (event, &row) in shown.events.iter().zip(&layout.rows) {
            let y = layout.y(row);
            match &event.what {
                What::Persist { node, label } => {
                    let k = persists_in_row.entry((row, *node)).or_default();
                    let x = layout.node_x(*node) + 5.0 + 7.0 * *k as f64;
                    *k += 1;
                    let _ = writeln!(
                        self.out,
                        r##"<rect class="persist" x="{x:.1}" y="{:.1}" width="5" height="5" fill="#333"><title>persist {}</title></rect>"##,
                        y - 2.5,
                        escape(label)
                    );
                }
                What::Timer { node, label } => {
                    let x = layout.node_x(*node);
                    let _ = writeln!(
                        self.out,
                        r##"<g class="timer"><title>timer {}</title><circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#fff" stroke="#555"/></g>"##,
                        escape(label)
                    );
                    self.text(x - 7.0, y + 3.0, "end", "small", &short(label, 18));
                }
                What::Crash { node, how } => self.crash(layout.node_x(*node), y, how),
                What::Start { node, restart } => self.start(layout.node_x(*node), y, *restart),
                What::Mark { node, label } => {
                    let x = layout.node_x(*node);
                    let _ = write!(self.out, r#"<g class="mark"><title>{}</title>"#, escape(label));
                    let _ = write!(
                        self.out,
                        r##"<path d="M{x:.1},{:.1} l4,4 l-4,4 l-4,-4 z" fill="#7a4a9a"/>"##,
                        y - 4.0
                    );
                    self.text(x + 22.0, y + 3.0, "start", "small", &short(label, 24));
                    self.out.push_str("</g>\n");
                }
                _ => {}
            }
        }
    }

    fn crash(&mut self, x: f64, y: f64, how: &str) {
        let _ = write!(self.out, r#"<g class="crash"><title>crash: {}</title>"#, escape(how));
        self.cross((x, y), 6.0);
        self.text(x + 9.0, y + 3.0, "start", "small", &format!("crash ({how})"));
        self.out.push_str("</g>\n");
    }

    fn start(&mut self, x: f64, y: f64, restart: bool) {
        let _ = write!(self.out, r#"<g class="start">"#);
        self.line((x - 8.0, y), (x + 8.0, y), r##"stroke="#444" stroke-width="3""##);
        if restart {
            self.text(x + 11.0, y + 3.0, "start", "small", "restart");
        }
        self.out.push_str("</g>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_follow_two_way_links() {
        // 0.1 | 2.3.4
        let mut blocked = Vec::new();
        for a in [0, 1] {
            for b in [2, 3, 4] {
                blocked.push((a, b));
                blocked.push((b, a));
            }
        }
        assert_eq!(sides(5, &blocked), vec![0, 0, 1, 1, 1]);
        assert_eq!(sides(3, &[]), vec![0, 0, 0], "no cut: one side");
        assert_eq!(sides(3, &[(0, 1), (0, 2)]), vec![0, 1, 1], "cut one way: a side of its own");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
