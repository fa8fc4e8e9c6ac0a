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
//! | `deliver FROM TO [K]` | deliver the first (or the K-th, from 1) in-flight message from FROM to TO |
//! | `drop [FROM TO [K]]` | drop every in-flight message (or those from FROM to TO, or the K-th of them) |
//! | `dup FROM TO [K]` | deliver a copy of the first (or K-th) message from FROM to TO, keeping it in flight |
//! | `fire NODE TIMER` | fire NODE's pending timer written TIMER (or, if none, the first whose form starts with it) |
//! | `advance MS` | advance time by MS, firing due timers in order |
//! | `stabilize` | deliver until nothing is in flight (no timer fires) |
//! | `crash NODE`, `restart NODE` | crash (keep persisted records), restart from them |
//! | `crash NODE K` | crash NODE during its next step, after K of that step's effects (nothing after them happens) |
//! | `partition A B \| C` | cut every link between the groups (in-flight messages across are dropped) |
//! | `heal` | restore every link |
//! | `traitor NODE[,NODE..] STRATEGY` | from now on those nodes are Byzantine: each send goes through the strategy (`quorum_core::byzantine`: `silent`, `lie`, `equivocate[@BITS]`, `replay`, `collude`, joined by `+`) |
//! | `status` | each node's `describe()` |
//!
//! Every effect prints as a line: `A -> B <message>`, `A persist <record>`,
//! `A checkpoint <record>`, `A reply c0#1 <response>`, `A observe <observation>`.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::{Debug, Write as _};
use std::str::FromStr;

use quorum_core::byzantine::{Adversary, Strategy, Tampered};
use quorum_core::host::{Carried, Cut, Host};

use crate::diagram::{self, Recording, StepRecorder, What};
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
#[derive(Clone)]
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
    /// Replies sent since [`Scripted::take_replies`] last took them.
    replies: Vec<(RequestId, P::Response)>,
    /// Print nothing (a model checker's steps): effects run, lines are not
    /// formatted.
    quiet: bool,
    /// Per node: crash during its next step after this many effects.
    armed_cuts: Vec<Option<u32>>,
    /// The typed events of the run, for a diagram, when asked for
    /// ([`Scripted::record`]); boxed, so a model checker's copies of a
    /// cluster that does not record stay small.
    recorder: Option<Box<StepRecorder>>,
    /// The traitors and their strategy (`traitor` command), if any.
    adversary: Option<Box<Adversary<P>>>,
}

/// An effect the host carried out, as the script shows it.
enum Shown<P: Protocol> {
    Send {
        to: NodeId,
        msg: P::Msg,
    },
    /// A persist or checkpoint: its line, and its label in a diagram.
    Persist(String, String),
    /// A reply: its line, the request, and the answer's label.
    Reply(String, RequestId, String),
    Observe(Observation),
    Lost(NodeId),
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
            replies: Vec::new(),
            quiet: false,
            armed_cuts: Vec::new(),
            recorder: None,
            adversary: None,
        }
    }

    /// Record every step from the next `cluster` command on, for a
    /// space-time diagram ([`Scripted::take_recording`]).
    pub fn record(&mut self) {
        self.recorder = Some(Box::new(StepRecorder::new(self.names.clone())));
    }

    /// What was recorded, if [`Scripted::record`] was asked for.
    pub fn take_recording(&mut self) -> Option<Recording> {
        self.recorder.take().map(|r| r.recording)
    }

    fn record_input(&mut self, what: What) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.push(what);
        }
    }

    /// Crash `node` during its next step, after `effects` of its effects.
    pub fn arm_cut(&mut self, node: NodeId, effects: u32) {
        self.armed_cuts[node.0 as usize] = Some(effects);
        let line = format!("{} will crash during its next step, after {effects} effects", self.name(node));
        self.line(line);
    }

    /// The crash armed for `node`'s next step, if any.
    pub fn armed_cut(&self, node: NodeId) -> Option<u32> {
        self.armed_cuts[node.0 as usize]
    }

    /// Print nothing from now on (or again, with `false`).
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// The messages in flight, oldest first: (from, to, message).
    pub fn in_flight(&self) -> &VecDeque<(NodeId, NodeId, P::Msg)> {
        &self.in_flight
    }

    /// The nodes, by id.
    pub fn hosts(&self) -> &[Host<P>] {
        &self.nodes
    }

    /// Take the observations made since the last call.
    pub fn take_observations(&mut self) -> Vec<(NodeId, Observation, Time)> {
        std::mem::take(&mut self.observations)
    }

    /// The replies nodes sent since the last call, oldest first.
    pub fn take_replies(&mut self) -> Vec<(RequestId, P::Response)> {
        std::mem::take(&mut self.replies)
    }

    /// The id the next request will carry.
    pub fn next_request_id(&self) -> RequestId {
        RequestId::new(0, self.next_seq + 1)
    }

    /// Where in-flight message `index` sits on its link: (from, to, K) for
    /// `deliver FROM TO K` (K counts from 1, oldest first).
    pub fn link_position(&self, index: usize) -> (NodeId, NodeId, usize) {
        let (from, to, _) = self.in_flight[index];
        let k = self.in_flight.iter().take(index).filter(|(f, t, _)| (*f, *t) == (from, to)).count();
        (from, to, k + 1)
    }

    /// Deliver in-flight message `index` (dropped if its target is down).
    pub fn deliver_at(&mut self, index: usize) {
        let (from, to, msg) = self.in_flight.remove(index).expect("a message in flight");
        let id = self.recorder.as_mut().map_or(0, |r| r.remove(index));
        self.deliver_one(from, to, msg, id);
    }

    /// Lose in-flight message `index`.
    pub fn drop_at(&mut self, index: usize) {
        let (from, to, _) = self.in_flight.remove(index).expect("a message in flight");
        if let Some(recorder) = self.recorder.as_mut() {
            let id = recorder.remove(index);
            recorder.push(What::DropOnArrival { id, from: from.0, to: to.0 });
        }
    }

    /// Deliver a copy of in-flight message `index`, which stays in flight.
    pub fn duplicate_at(&mut self, index: usize) {
        let (from, to, msg) = self.in_flight[index].clone();
        let id = self.recorder.as_ref().map_or(0, |r| r.get(index));
        self.deliver_one(from, to, msg, id);
    }

    /// Fire `node`'s pending `timer`.
    pub fn fire_timer(&mut self, node: NodeId, timer: P::Timer) {
        self.nodes[node.0 as usize].cancel_timer(&timer);
        if self.recorder.is_some() {
            self.record_input(What::Timer { node: node.0, label: diagram::labels(&timer).1 });
        }
        self.step(node, |p, out| p.on_timer(timer, out));
    }

    /// A client request to `node`.
    pub fn request_to(&mut self, node: NodeId, request: P::Request) {
        self.next_seq += 1;
        let id = RequestId::new(0, self.next_seq);
        if self.recorder.is_some() {
            // The request reaches the node as it is sent (no client
            // latency): the diagram draws it across this step's row.
            let (rid, label) = (id.to_string(), diagram::labels(&request).1);
            self.record_input(What::Request { client: 0, node: node.0, rid, label });
        }
        self.step(node, |p, out| p.on_request(id, request, out));
    }

    /// Crash `node` (its durable records stay).
    pub fn crash_node(&mut self, node: NodeId) {
        self.nodes[node.0 as usize].crash();
        self.record_input(What::Crash { node: node.0, how: "crash".into() });
        self.armed_cuts[node.0 as usize] = None;
        let line = format!("{} crashed", self.name(node));
        self.line(line);
    }

    /// Restart `node` from its durable records; it must be down.
    pub fn restart_node(&mut self, node: NodeId) {
        self.start(node);
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
            "dup" => self.dup_command(args)?,
            "fire" => self.fire(args)?,
            "advance" => {
                let [ms] = args else { return Err("advance MS".into()) };
                let ms: u64 = ms.parse().map_err(|_| format!("'{ms}' is not a number of ms"))?;
                self.advance(Micros::from_millis(ms));
            }
            "crash" => match args {
                [node] => {
                    let node = self.node(node)?;
                    self.crash_node(node);
                }
                [node, k] => {
                    let node = self.node(node)?;
                    self.arm_cut(node, k.parse().map_err(|_| format!("'{k}' is not a number of effects"))?);
                }
                _ => return Err("crash NODE [K]".into()),
            },
            "restart" => {
                let node = self.node(args.first().ok_or("restart NODE")?)?;
                if self.nodes[node.0 as usize].is_up() {
                    return Err(format!("{} is running", self.name(node)));
                }
                self.start(node);
            }
            "partition" => self.partition(args)?,
            "heal" => {
                self.cut.clear();
                self.record_input(What::Fault { label: "heal".into(), blocked: Some(Vec::new()) });
            }
            "traitor" => self.traitor(args)?,
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
        self.request_to(node, request);
        Ok(())
    }

    /// `traitor NODE[,NODE..] STRATEGY`: those nodes' sends go through the
    /// strategy from now on (`quorum_core::byzantine`; e.g. `equivocate@0110`
    /// tells node i the i-th bit).
    fn traitor(&mut self, args: &[&str]) -> Result<(), String> {
        let [nodes, strategy] = args else { return Err("traitor NODE[,NODE..] STRATEGY".into()) };
        let traitors = nodes.split(',').map(|n| self.node(n)).collect::<Result<Vec<_>, _>>()?;
        let strategy: Strategy = strategy.parse()?;
        let n = self.nodes.len() as u32;
        if strategy.sides.as_ref().is_some_and(|s| s.len() != n as usize) {
            return Err(format!("a strategy's sides need one bit per node ({n})"));
        }
        self.adversary = Some(Box::new(Adversary::new(&traitors, strategy, n, 0, 0)));
        Ok(())
    }

    /// A traitor's send as its strategy bends it: `None` if withheld.
    fn betray(&mut self, id: NodeId, me: &str, effect: Shown<P>) -> Option<Shown<P>> {
        let Some(adversary) = self.adversary.as_mut().filter(|a| a.is_traitor(id)) else {
            return Some(effect);
        };
        let Shown::Send { to, msg } = effect else { return Some(effect) };
        match adversary.tamper(id, to, msg.clone()) {
            Tampered::Honest(msg) => Some(Shown::Send { to, msg }),
            Tampered::Forged(forged) => {
                let line = format!("{me} (traitor) forges {} for {}", compact(&msg), self.name(to));
                self.line(line);
                Some(Shown::Send { to, msg: forged })
            }
            Tampered::Withheld => {
                let line = format!("{me} (traitor) withholds {} from {}", compact(&msg), self.name(to));
                self.line(line);
                None
            }
        }
    }

    /// `admin NODE ARGS..`: an operator command; a refusal is printed.
    fn admin(&mut self, args: &[&str]) -> Result<(), String> {
        let node = self.node(args.first().ok_or("admin NODE ARGS..")?)?;
        let text = args[1..].join(" ");
        if self.recorder.is_some() {
            let rid = "admin".to_string();
            let label = format!("admin {text}");
            self.record_input(What::Request { client: 0, node: node.0, rid, label });
        }
        let mut result = Ok(());
        self.step(node, |p, out| result = p.on_admin(&text, out));
        if let Err(e) = result {
            let line = format!("{}: {e}", self.name(node));
            self.line(line);
        }
        Ok(())
    }

    /// `deliver [N]` or `deliver FROM TO [K]`.
    fn deliver_command(&mut self, args: &[&str]) -> Result<(), String> {
        match args {
            [] => self.deliver(usize::MAX),
            [n] => self.deliver(n.parse().map_err(|_| format!("'{n}' is not a count"))?),
            [from, to, k @ ..] if k.len() <= 1 => {
                let index = self.on_link(from, to, k.first())?;
                self.deliver_at(index);
            }
            _ => return Err("deliver [N] | deliver FROM TO [K]".into()),
        }
        Ok(())
    }

    /// `drop [FROM TO [K]]`.
    fn drop_command(&mut self, args: &[&str]) -> Result<(), String> {
        match args {
            [] => self.drop_where(|_, _| true),
            [from, to] => {
                let (from, to) = (self.node(from)?, self.node(to)?);
                self.drop_where(|f, t| (f, t) == (from, to));
            }
            [from, to, k] => {
                let index = self.on_link(from, to, Some(k))?;
                self.drop_at(index);
            }
            _ => return Err("drop [FROM TO [K]]".into()),
        }
        Ok(())
    }

    /// `dup FROM TO [K]`.
    fn dup_command(&mut self, args: &[&str]) -> Result<(), String> {
        let [from, to, k @ ..] = args else { return Err("dup FROM TO [K]".into()) };
        if k.len() > 1 {
            return Err("dup FROM TO [K]".into());
        }
        let index = self.on_link(from, to, k.first())?;
        self.duplicate_at(index);
        Ok(())
    }

    /// The in-flight index of the K-th message (from 1; the first if
    /// `k` is absent) from `from` to `to`.
    fn on_link(&self, from: &str, to: &str, k: Option<&&str>) -> Result<usize, String> {
        let (from, to) = (self.node(from)?, self.node(to)?);
        let k: usize = match k {
            Some(k) => {
                k.parse().ok().filter(|k| *k >= 1).ok_or_else(|| format!("'{k}' is not a position (1..)"))?
            }
            None => 1,
        };
        self.in_flight
            .iter()
            .enumerate()
            .filter(|(_, (f, t, _))| (*f, *t) == (from, to))
            .nth(k - 1)
            .map(|(i, _)| i)
            .ok_or_else(|| format!("no message {k} in flight from {} to {}", self.name(from), self.name(to)))
    }

    /// `fire NODE TIMER`: the pending timer written TIMER, or else the
    /// first whose form starts with it.
    fn fire(&mut self, args: &[&str]) -> Result<(), String> {
        let [node, words @ ..] = args else { return Err("fire NODE TIMER".into()) };
        if words.is_empty() {
            return Err("fire NODE TIMER".into());
        }
        let prefix = words.join(" ");
        let prefix = prefix.as_str();
        let node = self.node(node)?;
        let timers = self.nodes[node.0 as usize].timers();
        let timer = timers
            .keys()
            .find(|t| format!("{t:?}") == *prefix)
            .or_else(|| timers.keys().find(|t| format!("{t:?}").starts_with(prefix)))
            .cloned()
            .ok_or_else(|| format!("{} has no pending timer '{prefix}'", self.name(node)))?;
        self.fire_timer(node, timer);
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
        if self.recorder.is_some() {
            self.recorder = Some(Box::new(StepRecorder::new(self.names.clone())));
        }
        self.nodes = members.iter().map(|&id| Host::new(Cluster::new(id, members.clone()))).collect();
        self.rngs = (0..n).map(|i| Rng::stream(seed, u64::from(i))).collect();
        self.armed_cuts = vec![None; n as usize];
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
        let cut = std::mem::take(&mut self.cut);
        if self.recorder.is_some() {
            let label = format!("partition {}", args.join(" "));
            let blocked = cut.iter().map(|(f, t)| (f.0, t.0)).collect();
            self.record_input(What::Fault { label, blocked: Some(blocked) });
        }
        self.drop_where(|f, t| cut.contains(&(f, t)));
        self.cut = cut;
        Ok(())
    }

    /// Lose every in-flight message whose link `(from, to)` matches.
    fn drop_where(&mut self, lost: impl Fn(NodeId, NodeId) -> bool) {
        if let Some(recorder) = self.recorder.as_mut() {
            let keep: Vec<bool> = self.in_flight.iter().map(|(f, t, _)| !lost(*f, *t)).collect();
            let links: Vec<(NodeId, NodeId)> = self.in_flight.iter().map(|(f, t, _)| (*f, *t)).collect();
            let gone = recorder.retain(&keep);
            let lost_links = links.iter().zip(&keep).filter(|(_, k)| !**k).map(|(l, _)| *l);
            for (id, (from, to)) in gone.into_iter().zip(lost_links) {
                recorder.push(What::DropOnArrival { id, from: from.0, to: to.0 });
            }
        }
        self.in_flight.retain(|(f, t, _)| !lost(*f, *t));
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

    /// The node's name in this script.
    pub fn name(&self, id: NodeId) -> &str {
        &self.names[id.0 as usize]
    }

    fn status(&mut self) {
        if self.quiet {
            return;
        }
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
        let restart = self.nodes[i].incarnation() > 0;
        self.record_input(What::Start { node: id.0, restart });
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
        if self.quiet {
            return;
        }
        let mut text = text;
        if text.chars().count() > LINE_MAX {
            text = text.chars().take(LINE_MAX).collect::<String>() + "…";
        }
        self.output.push_str(&text);
        self.output.push('\n');
    }

    /// Carry out a step's effects through the host (nothing crashes in a
    /// script step unless `crash NODE K` armed it) and print each one.
    fn execute(&mut self, id: NodeId, effects: Vec<Effect<P>>) {
        let quiet = self.quiet;
        let recording = self.recorder.is_some();
        let me = self.name(id).to_string();
        let mut shown: Vec<Shown<P>> = Vec::new();
        let cut = match self.armed_cuts.get_mut(id.0 as usize).and_then(Option::take) {
            Some(k) => Cut::AfterEffects(k),
            None => Cut::Never,
        };
        let done = self.nodes[id.0 as usize].execute(self.now, effects, cut, &mut |carried| {
            shown.push(match carried {
                Carried::Send { to, msg } => Shown::Send { to, msg },
                Carried::Observe(o) => Shown::Observe(o),
                Carried::Reply { id: rid, response } if quiet && !recording => {
                    self.replies.push((rid, response));
                    return;
                }
                _ if quiet && !recording => return,
                Carried::Persist(r) => {
                    Shown::Persist(format!("{me} persist {}", compact(r)), diagram::labels(r).0)
                }
                Carried::Checkpoint(r) => Shown::Persist(
                    format!("{me} checkpoint {}", compact(r)),
                    format!("checkpoint {}", diagram::labels(r).0),
                ),
                Carried::Reply { id: rid, response } => {
                    let shown = Shown::Reply(
                        format!("{me} reply {rid} {}", compact(&response)),
                        rid,
                        diagram::labels(&response).1,
                    );
                    self.replies.push((rid, response));
                    shown
                }
                Carried::Lost { to } if recording => Shown::Lost(to),
                Carried::Timer { .. } | Carried::Lost { .. } => return,
            })
        });
        for effect in shown {
            if let Some(effect) = self.betray(id, &me, effect) {
                self.show(id, &me, effect);
            }
        }
        if done.crashed {
            self.line(format!("{me} crashed (mid-step)"));
            self.record_input(What::Crash { node: id.0, how: "mid-step".into() });
        }
    }

    /// Print one carried effect of `id`'s step (named `me`), put its
    /// message in flight, keep its observation, and record it.
    fn show(&mut self, id: NodeId, me: &str, effect: Shown<P>) {
        let node = id.0;
        match effect {
            Shown::Send { to, msg } if self.cut.contains(&(id, to)) => {
                if !self.quiet {
                    self.line(format!("{me} -> {} {} (dropped: partition)", self.name(to), compact(&msg)));
                }
                if let Some(recorder) = self.recorder.as_mut() {
                    let (label, detail) = diagram::labels(&msg);
                    let (id, why) = (recorder.next_id(), "partition".to_string());
                    recorder.push(What::DropOnSend { id, from: node, to: to.0, why, label, detail });
                }
            }
            Shown::Send { to, msg } => {
                if !self.quiet {
                    self.line(format!("{me} -> {} {}", self.name(to), compact(&msg)));
                }
                if let Some(recorder) = self.recorder.as_mut() {
                    let (label, detail) = diagram::labels(&msg);
                    recorder.send(node, to.0, label, detail);
                }
                self.in_flight.push_back((id, to, msg));
            }
            Shown::Persist(text, label) => {
                self.line(text);
                self.record_input(What::Persist { node, label });
            }
            Shown::Reply(text, rid, label) => {
                self.line(text);
                // The client hears it at once (a script has no client
                // latency): the diagram draws the answer across this row.
                let (client, rid) = (rid.client as u32, rid.to_string());
                self.record_input(What::Reply { node, client, rid, label, dropped: false });
            }
            Shown::Lost(to) => self.record_input(What::LostInCrash { from: node, to: to.0 }),
            Shown::Observe(o) => {
                if !self.quiet {
                    self.line(format!("{me} observe {}", compact(&o)));
                }
                if let Some(what) = self.recorder.is_some().then(|| diagram::observed(node, &o)).flatten() {
                    self.record_input(what);
                }
                self.observations.push((id, o, self.now));
            }
        }
    }

    fn deliver(&mut self, max: usize) {
        let mut delivered = 0;
        while delivered < max.min(100_000) {
            let Some((from, to, msg)) = self.in_flight.pop_front() else { break };
            let id = self.recorder.as_mut().map_or(0, |r| r.remove(0));
            self.deliver_one(from, to, msg, id);
            delivered += 1;
        }
    }

    fn deliver_one(&mut self, from: NodeId, to: NodeId, msg: P::Msg, id: u64) {
        let up = self.nodes[to.0 as usize].is_up();
        if self.recorder.is_some() {
            let (from, to) = (from.0, to.0);
            self.record_input(if up {
                What::Deliver { id, from, to }
            } else {
                What::DropOnArrival { id, from, to }
            });
        }
        if !up {
            if self.quiet {
                return;
            }
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
        if let Some(adversary) = self.adversary.as_mut() {
            adversary.heard(to, &msg);
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
            if self.recorder.is_some() {
                self.record_input(What::Timer { node: i as u32, label: diagram::labels(&timer).1 });
            }
            self.step(NodeId(i as u32), |p, out| p.on_timer(timer, out));
        }
        self.now = until;
    }
}

/// `{:?}` on one line.
fn compact<T: Debug>(value: &T) -> String {
    format!("{value:?}")
}
