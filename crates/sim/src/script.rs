//! Scripts: drive a cluster step by step from a small text format, in the
//! style of etcd's datadriven tests. Each block is a command, a `----` line,
//! and the output the command must produce, ended by a blank line:
//!
//! ```text
//! cluster 3 names=A,B,C
//! ----
//! A: follower term=0 ...
//!
//! request A write 1 8
//! ----
//! A -> B Append { .. }
//! ```
//!
//! Nothing happens unless a command says so: messages wait in flight until
//! `deliver`, timers until `fire` or `advance`. Commands:
//!
//! | command | effect |
//! | --- | --- |
//! | `cluster N [protocol=P] [variant=V] [names=A,B,..] [seed=S] [config={json}]` | start N fresh nodes (`protocol`, `variant` choose the protocol for `quorum script`) |
//! | `request NODE ARGS..` | a client request (the protocol's text form, e.g. `write 1 8`) |
//! | `admin NODE ARGS..` | an operator command (`Protocol::on_admin`) |
//! | `deliver [N]` | deliver up to N in-flight messages in order (all, with cascades, if omitted) |
//! | `deliver FROM TO` | deliver the first in-flight message from FROM to TO |
//! | `drop [FROM TO]` | drop every in-flight message (or those from FROM to TO) |
//! | `fire NODE TIMER` | fire NODE's pending timer whose form starts with TIMER |
//! | `advance MS` | advance time by MS, firing due timers in order |
//! | `stabilize` | deliver until nothing is in flight (no timer fires) |
//! | `crash NODE`, `restart NODE` | crash (keep persisted records), restart from them |
//! | `partition A B \| C` | cut every link between the groups (in-flight messages across are dropped) |
//! | `heal` | restore every link |
//! | `status` | each node's `describe()` |
//!
//! Every effect prints as a line: `A -> B <message>`, `A persist <record>`,
//! `A checkpoint <record>`, `A reply c0#1 <response>`, `A observe <observation>`.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::{Debug, Write as _};
use std::str::FromStr;

use quorum_core::host::{Carried, Cut, Host};
use quorum_core::{Cluster, Effect, Micros, NodeId, Observation, Out, Protocol, RequestId, Rng, Time};

/// A script that cannot run: the line and why.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ScriptError {
    pub line: usize,
    pub reason: String,
}

/// One block of a script: the command, its expected output, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The `#` comment lines (and blank lines among them) before the command,
    /// kept so that rewriting a script keeps its narration.
    pub preamble: String,
    pub line: usize,
    pub command: String,
    pub expected: String,
}

/// Split a script into blocks. `#` lines outside expected output are comments.
pub fn parse_blocks(text: &str) -> Result<Vec<Block>, ScriptError> {
    let mut blocks = Vec::new();
    let mut preamble = String::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            preamble.push_str(line.trim_end());
            preamble.push('\n');
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let mut expected = String::new();
        match lines.peek() {
            Some((_, sep)) if sep.trim() == "----" => {
                lines.next();
                while let Some((_, out)) = lines.peek() {
                    if out.trim().is_empty() {
                        break;
                    }
                    expected.push_str(out.trim_end());
                    expected.push('\n');
                    lines.next();
                }
            }
            _ => {
                return Err(ScriptError {
                    line: i + 1,
                    reason: format!("'{trimmed}' is not followed by '----'"),
                })
            }
        }
        blocks.push(Block {
            preamble: std::mem::take(&mut preamble),
            line: i + 1,
            command: trimmed.to_string(),
            expected,
        });
    }
    Ok(blocks)
}

/// Render blocks back to the file format, with `outputs` as expected output.
pub fn render_blocks(blocks: &[Block], outputs: &[String]) -> String {
    let mut text = String::new();
    for (block, output) in blocks.iter().zip(outputs) {
        let _ = write!(text, "{}{}\n----\n{}\n", block.preamble, block.command, output);
    }
    text
}

/// A cluster under a script's control.
pub struct Scripted<P: Protocol> {
    config: P::Config,
    names: Vec<String>,
    /// The nodes, each driven through the contract's host (the same effect
    /// semantics as the simulator's).
    nodes: Vec<Host<P>>,
    rngs: Vec<Rng>,
    in_flight: VecDeque<(NodeId, NodeId, P::Msg)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    now: Time,
    next_seq: u64,
    output: String,
    /// Every observation so far, for the checkers: (node, what, when).
    observations: Vec<(NodeId, Observation, Time)>,
}

/// An effect the host carried out, as the script shows it.
enum Shown<P: Protocol> {
    Send { to: NodeId, msg: P::Msg },
    Line(String),
    Observe(Observation),
}

/// The longest line an effect prints; longer ones are cut with `…`.
const LINE_MAX: usize = 240;

impl<P: Protocol> Scripted<P>
where
    P::Request: FromStr,
    <P::Request as FromStr>::Err: std::fmt::Display,
{
    pub fn new(config: P::Config) -> Self {
        Scripted {
            config,
            names: Vec::new(),
            nodes: Vec::new(),
            rngs: Vec::new(),
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            now: Time::ZERO,
            next_seq: 0,
            output: String::new(),
            observations: Vec::new(),
        }
    }

    /// Every observation the nodes made so far, in order, with its time.
    pub fn observations(&self) -> &[(NodeId, Observation, Time)] {
        &self.observations
    }

    /// Run every block; return each block's actual output.
    pub fn run_blocks(&mut self, blocks: &[Block]) -> Result<Vec<String>, ScriptError> {
        blocks
            .iter()
            .map(|b| self.run_command(&b.command).map_err(|reason| ScriptError { line: b.line, reason }))
            .collect()
    }

    /// Run one command and return what it printed.
    pub fn run_command(&mut self, command: &str) -> Result<String, String> {
        self.output.clear();
        let words: Vec<&str> = command.split_whitespace().collect();
        let (verb, args) = words.split_first().ok_or("empty command")?;
        if *verb != "cluster" && self.nodes.is_empty() {
            return Err("start with 'cluster N'".into());
        }
        match *verb {
            "cluster" => self.cluster(command, args)?,
            "request" => self.request(args)?,
            "admin" => self.admin(args)?,
            "deliver" => self.deliver_command(args)?,
            "stabilize" => self.deliver(usize::MAX),
            "drop" => self.drop_command(args)?,
            "fire" => self.fire(args)?,
            "advance" => {
                let [ms] = args else { return Err("advance MS".into()) };
                let ms: u64 = ms.parse().map_err(|_| format!("'{ms}' is not a number of ms"))?;
                self.advance(Micros::from_millis(ms));
            }
            "crash" => {
                let node = self.node(args.first().ok_or("crash NODE")?)?;
                self.nodes[node.0 as usize].crash();
                let line = format!("{} crashed", self.name(node));
                self.line(line);
            }
            "restart" => {
                let node = self.node(args.first().ok_or("restart NODE")?)?;
                if self.nodes[node.0 as usize].is_up() {
                    return Err(format!("{} is running", self.name(node)));
                }
                self.start(node);
            }
            "partition" => self.partition(args)?,
            "heal" => self.cut.clear(),
            "status" => {}
            other => return Err(format!("unknown command '{other}'")),
        }
        if matches!(*verb, "status" | "cluster" | "restart" | "heal" | "partition") {
            self.status();
        }
        Ok(std::mem::take(&mut self.output))
    }

    /// `request NODE ARGS..`: a client request in the protocol's text form.
    fn request(&mut self, args: &[&str]) -> Result<(), String> {
        let node = self.node(args.first().ok_or("request NODE ARGS..")?)?;
        let text = args[1..].join(" ");
        let request = text.parse::<P::Request>().map_err(|e| e.to_string())?;
        self.next_seq += 1;
        let id = RequestId::new(0, self.next_seq);
        self.step(node, |p, out| p.on_request(id, request, out));
        Ok(())
    }

    /// `admin NODE ARGS..`: an operator command; a refusal is printed.
    fn admin(&mut self, args: &[&str]) -> Result<(), String> {
        let node = self.node(args.first().ok_or("admin NODE ARGS..")?)?;
        let text = args[1..].join(" ");
        let mut result = Ok(());
        self.step(node, |p, out| result = p.on_admin(&text, out));
        if let Err(e) = result {
            let line = format!("{}: {e}", self.name(node));
            self.line(line);
        }
        Ok(())
    }

    /// `deliver [N]` or `deliver FROM TO`.
    fn deliver_command(&mut self, args: &[&str]) -> Result<(), String> {
        match args {
            [] => self.deliver(usize::MAX),
            [n] => self.deliver(n.parse().map_err(|_| format!("'{n}' is not a count"))?),
            [from, to] => {
                let (from, to) = (self.node(from)?, self.node(to)?);
                let i =
                    self.in_flight.iter().position(|(f, t, _)| (*f, *t) == (from, to)).ok_or_else(|| {
                        format!("no message in flight from {} to {}", self.name(from), self.name(to))
                    })?;
                let (f, t, msg) = self.in_flight.remove(i).expect("the position exists");
                self.deliver_one(f, t, msg);
            }
            _ => return Err("deliver [N] | deliver FROM TO".into()),
        }
        Ok(())
    }

    /// `drop [FROM TO]`.
    fn drop_command(&mut self, args: &[&str]) -> Result<(), String> {
        match args {
            [] => self.in_flight.clear(),
            [from, to] => {
                let (from, to) = (self.node(from)?, self.node(to)?);
                self.in_flight.retain(|(f, t, _)| (*f, *t) != (from, to));
            }
            _ => return Err("drop [FROM TO]".into()),
        }
        Ok(())
    }

    /// `fire NODE TIMER`: the pending timer whose form starts with TIMER.
    fn fire(&mut self, args: &[&str]) -> Result<(), String> {
        let [node, prefix] = args else { return Err("fire NODE TIMER".into()) };
        let node = self.node(node)?;
        let timer = self.nodes[node.0 as usize]
            .timers()
            .keys()
            .find(|t| format!("{t:?}").starts_with(prefix))
            .cloned()
            .ok_or_else(|| format!("{} has no pending timer '{prefix}'", self.name(node)))?;
        self.nodes[node.0 as usize].cancel_timer(&timer);
        self.step(node, |p, out| p.on_timer(timer, out));
        Ok(())
    }

    fn cluster(&mut self, line: &str, args: &[&str]) -> Result<(), String> {
        let n: u32 = args
            .first()
            .and_then(|n| n.parse().ok())
            .ok_or("cluster N [names=..] [seed=S] [config={json}]")?;
        if n == 0 || n > 64 {
            return Err("a cluster has 1 to 64 nodes".into());
        }
        let mut names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let mut seed = 0;
        for arg in &args[1..] {
            if let Some(list) = arg.strip_prefix("names=") {
                names = list.split(',').map(str::to_string).collect();
                if names.len() != n as usize {
                    return Err(format!("{} names for {n} nodes", names.len()));
                }
            } else if let Some(s) = arg.strip_prefix("seed=") {
                seed = s.parse().map_err(|_| format!("'{s}' is not a seed"))?;
            } else if arg.starts_with("protocol=") || arg.starts_with("variant=") {
                // Read by the CLI to choose the protocol; nothing to do here.
            } else if arg.starts_with("config=") {
                break;
            } else {
                return Err(format!("unknown cluster option '{arg}'"));
            }
        }
        if let Some((_, json)) = line.split_once("config=") {
            self.config = serde_json::from_str(json).map_err(|e| format!("bad config: {e}"))?;
        }
        let members: Vec<NodeId> = (0..n).map(NodeId).collect();
        P::validate(&self.config, &members).map_err(|e| format!("bad config: {e}"))?;
        self.names = names;
        self.nodes = members.iter().map(|&id| Host::new(Cluster::new(id, members.clone()))).collect();
        self.rngs = (0..n).map(|i| Rng::stream(seed, u64::from(i))).collect();
        self.in_flight.clear();
        self.cut.clear();
        self.observations.clear();
        for i in 0..n {
            self.start(NodeId(i));
        }
        Ok(())
    }

    fn partition(&mut self, args: &[&str]) -> Result<(), String> {
        let mut groups: Vec<Vec<NodeId>> = vec![Vec::new()];
        for word in args {
            if *word == "|" {
                groups.push(Vec::new());
            } else {
                let node = self.node(word)?;
                groups.last_mut().expect("at least one group").push(node);
            }
        }
        if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
            return Err("partition A B | C".into());
        }
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a {
                        for y in b {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
        let cut = &self.cut;
        self.in_flight.retain(|(f, t, _)| !cut.contains(&(*f, *t)));
        Ok(())
    }

    fn node(&self, word: &str) -> Result<NodeId, String> {
        if let Some(i) = self.names.iter().position(|n| n == word) {
            return Ok(NodeId(i as u32));
        }
        match word.parse::<u32>() {
            Ok(i) if (i as usize) < self.names.len() => Ok(NodeId(i)),
            _ => Err(format!("no node '{word}'")),
        }
    }

    fn name(&self, id: NodeId) -> &str {
        &self.names[id.0 as usize]
    }

    fn status(&mut self) {
        for (i, host) in self.nodes.iter().enumerate() {
            let line = match host.state() {
                Some(p) => p.describe(),
                None => "crashed".to_string(),
            };
            let status = format!("{}: {}", self.names[i], line);
            let _ = writeln!(self.output, "{}", status.trim_end());
        }
    }

    fn start(&mut self, id: NodeId) {
        let i = id.0 as usize;
        let effects = self.nodes[i].start(&self.config, self.now, &mut self.rngs[i]);
        self.execute(id, effects);
    }

    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut P, &mut Out<'_, P>)) {
        let i = id.0 as usize;
        if !self.nodes[i].is_up() {
            let _ = writeln!(self.output, "{} is crashed: nothing happens", self.names[i]);
            return;
        }
        let effects = self.nodes[i].step(self.now, &mut self.rngs[i], input);
        self.execute(id, effects);
    }

    fn line(&mut self, text: String) {
        let mut text = text;
        if text.chars().count() > LINE_MAX {
            text = text.chars().take(LINE_MAX).collect::<String>() + "…";
        }
        self.output.push_str(&text);
        self.output.push('\n');
    }

    /// Carry out a step's effects through the host (nothing crashes in a
    /// script step: `crash` is a command of its own) and print each one.
    fn execute(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let me = self.name(id).to_string();
        let mut shown: Vec<Shown<P>> = Vec::new();
        self.nodes[id.0 as usize].execute(self.now, effects, Cut::Never, &mut |carried| {
            shown.push(match carried {
                Carried::Send { to, msg } => Shown::Send { to, msg },
                Carried::Persist(r) => Shown::Line(format!("{me} persist {}", compact(r))),
                Carried::Checkpoint(r) => Shown::Line(format!("{me} checkpoint {}", compact(r))),
                Carried::Reply { id: rid, response } => {
                    Shown::Line(format!("{me} reply {rid} {}", compact(&response)))
                }
                Carried::Observe(o) => Shown::Observe(o),
                Carried::Timer { .. } | Carried::Lost { .. } => return,
            })
        });
        for effect in shown {
            match effect {
                Shown::Send { to, msg } if self.cut.contains(&(id, to)) => {
                    self.line(format!("{me} -> {} {} (dropped: partition)", self.name(to), compact(&msg)));
                }
                Shown::Send { to, msg } => {
                    self.line(format!("{me} -> {} {}", self.name(to), compact(&msg)));
                    self.in_flight.push_back((id, to, msg));
                }
                Shown::Line(text) => self.line(text),
                Shown::Observe(o) => {
                    self.line(format!("{me} observe {}", compact(&o)));
                    self.observations.push((id, o, self.now));
                }
            }
        }
    }

    fn deliver(&mut self, max: usize) {
        let mut delivered = 0;
        while delivered < max.min(100_000) {
            let Some((from, to, msg)) = self.in_flight.pop_front() else { break };
            self.deliver_one(from, to, msg);
            delivered += 1;
        }
    }

    fn deliver_one(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        if !self.nodes[to.0 as usize].is_up() {
            let line = format!(
                "{} -> {} {} (dropped: {} is crashed)",
                self.name(from),
                self.name(to),
                compact(&msg),
                self.name(to)
            );
            self.line(line);
            return;
        }
        self.step(to, |p, out| p.on_message(from, msg, out));
    }

    fn advance(&mut self, by: Micros) {
        let until = self.now + by;
        loop {
            // The earliest due timer; ties go to the lower node.
            let due = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, host)| host.next_due(until).map(|(at, timer)| (at, i, timer)))
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let Some((at, i, timer)) = due else { break };
            self.now = self.now.max(at);
            self.nodes[i].cancel_timer(&timer);
            let line = format!("{} timer {}", self.names[i], compact(&timer));
            self.line(line);
            self.step(NodeId(i as u32), |p, out| p.on_timer(timer, out));
        }
        self.now = until;
    }
}

/// `{:?}` on one line.
fn compact<T: Debug>(value: &T) -> String {
    format!("{value:?}")
}
