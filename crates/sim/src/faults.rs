//! The nemesis: a fault schedule is plain data (a time-ordered list of
//! faults), generated from the seed or given on the command line, so a failing
//! run can be shrunk by deleting entries and replayed from one line.
//!
//! Text form (`--schedule`), comma separated, each entry `<ms>:<fault>`:
//! `crash=N` (now), `crash=N/K` (during N's next step, after K of its
//! effects), `restart=N`, `kill=N+D` (kill N as its next step that
//! persists finishes, restart it D ms later), `torn=N+D/K` (kill N right
//! after K messages of its next step that sends left, restart it D ms later),
//! `disarm=N` (cancel a pending kill or torn send), `pause=N`, `resume=N`, `part=0.1|2.3.4` (groups
//! that cannot reach each other), `oneway=0.1>2` (0 and 1 cannot send to 2),
//! `heal`, `loss=0.2`, `dup=0.1`, `delay=50` (extra ms, 0 ends it).

use std::fmt;

use quorum_core::{NodeId, Rng, Time};

use crate::config::{ConfigError, FaultKind, SimConfig};

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Crash `node`; with `after_effects: Some(k)`, the crash happens during its
    /// next step, after `k` of that step's effects were carried out.
    Crash {
        node: NodeId,
        after_effects: Option<u32>,
    },
    Restart {
        node: NodeId,
    },
    /// Kill `node` at the end of its next step that persisted anything
    /// (after all of that step's effects), and restart it
    /// `restart_after_ms` later.
    Kill {
        node: NodeId,
        restart_after_ms: u64,
    },
    /// Kill `node` right after `sends` messages of one of its steps that
    /// send left (while armed, each such step is struck with chance 1/4;
    /// all of its messages, if it sends fewer; nothing after the cut in
    /// that step happens: no later send, persist or reply), and restart it
    /// `restart_after_ms` later: whatever the messages promised that was
    /// not yet durable is forgotten.
    TornSend {
        node: NodeId,
        restart_after_ms: u64,
        sends: u32,
    },
    /// Kill every node of `nodes` (those up) at the end of a step of one of
    /// them that sends (while armed, each such step is struck with chance
    /// 1/4), and restart them `restart_after_ms` later.
    PowerLoss {
        nodes: Vec<NodeId>,
        restart_after_ms: u64,
    },
    /// Cancel a kill, torn send or power loss that has not happened yet.
    Disarm {
        node: NodeId,
    },
    Pause {
        node: NodeId,
    },
    Resume {
        node: NodeId,
    },
    /// Nodes in different groups cannot reach each other.
    Partition {
        groups: Vec<Vec<NodeId>>,
    },
    /// Messages from `from` to `to` are dropped; the other direction works.
    OneWay {
        from: Vec<NodeId>,
        to: Vec<NodeId>,
    },
    Heal,
    Loss {
        probability: f64,
    },
    Dup {
        probability: f64,
    },
    Delay {
        extra_ms: u64,
    },
    /// Jepsen's leader-targeted nemesis, as a torn broadcast: for the next
    /// `armed_ms`, the first step that persists something on a node that
    /// leads (it announced `Role::Leader` and has not stepped down) dies
    /// just after its first disk write with only `after_effects - 1` of its
    /// messages out, and the node restarts `restart_after_ms` later. A leader that dies between its disk write
    /// and the end of its broadcast leaves its newest entry on a minority:
    /// the raw material of Raft's figure 8 (§5.4.2), which a fault aimed
    /// at a random node almost never produces.
    CrashLeader {
        after_effects: u32,
        restart_after_ms: u64,
        armed_ms: u64,
    },
    /// For the next `armed_ms`, the first step that persists something on
    /// a node while another node campaigns (it announced `Role::Candidate`
    /// and nothing since) kills that node at the end of the step (its vote
    /// is out), and it restarts `restart_after_ms` later, while the election
    /// goes on: what it answered but did not force is forgotten in time to
    /// be answered again, differently.
    KillVoter {
        restart_after_ms: u64,
        armed_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledFault {
    pub at: Time,
    pub fault: Fault,
}

/// A time-ordered fault schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule(pub Vec<ScheduledFault>);

fn fmt_nodes(nodes: &[NodeId]) -> String {
    nodes.iter().map(|n| n.0.to_string()).collect::<Vec<_>>().join(".")
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node, after_effects: None } => write!(f, "crash={}", node.0),
            Fault::Crash { node, after_effects: Some(k) } => write!(f, "crash={}/{k}", node.0),
            Fault::Restart { node } => write!(f, "restart={}", node.0),
            Fault::Kill { node, restart_after_ms } => write!(f, "kill={}+{restart_after_ms}", node.0),
            Fault::TornSend { node, restart_after_ms, sends } => {
                write!(f, "torn={}+{restart_after_ms}/{sends}", node.0)
            }
            Fault::PowerLoss { nodes, restart_after_ms } => {
                write!(f, "power={}+{restart_after_ms}", fmt_nodes(nodes))
            }
            Fault::Disarm { node } => write!(f, "disarm={}", node.0),
            Fault::Pause { node } => write!(f, "pause={}", node.0),
            Fault::Resume { node } => write!(f, "resume={}", node.0),
            Fault::Partition { groups } => {
                let g: Vec<String> = groups.iter().map(|g| fmt_nodes(g)).collect();
                write!(f, "part={}", g.join("|"))
            }
            Fault::OneWay { from, to } => write!(f, "oneway={}>{}", fmt_nodes(from), fmt_nodes(to)),
            Fault::Heal => f.write_str("heal"),
            Fault::Loss { probability } => write!(f, "loss={probability}"),
            Fault::Dup { probability } => write!(f, "dup={probability}"),
            Fault::Delay { extra_ms } => write!(f, "delay={extra_ms}"),
            Fault::CrashLeader { after_effects, restart_after_ms, armed_ms } => {
                write!(f, "crash-leader={after_effects}+{restart_after_ms}~{armed_ms}")
            }
            Fault::KillVoter { restart_after_ms, armed_ms } => {
                write!(f, "kill-voter={restart_after_ms}~{armed_ms}")
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let entries: Vec<String> =
            self.0.iter().map(|e| format!("{}:{}", e.at.as_millis(), e.fault)).collect();
        f.write_str(&entries.join(","))
    }
}

fn parse_nodes(s: &str) -> Result<Vec<NodeId>, String> {
    s.split('.')
        .map(|n| n.parse::<u32>().map(NodeId).map_err(|_| format!("'{n}' is not a node id")))
        .collect()
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("'{s}' is not a probability"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("probability {p} is not in [0, 1]"))
    }
}

/// `s` as a number, or an error naming what it should have been.
fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("'{s}' is not {what}"))
}

fn node_id(s: &str) -> Result<NodeId, String> {
    number(s, "a node id").map(NodeId)
}

fn delay_ms(s: &str) -> Result<u64, String> {
    number(s, "a delay in ms")
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let (name, arg) = s.split_once('=').unwrap_or((s, ""));
        Ok(match name {
            "crash" => match arg.split_once('/') {
                Some((n, k)) => {
                    Fault::Crash { node: node_id(n)?, after_effects: Some(number(k, "an effect count")?) }
                }
                None => Fault::Crash { node: node_id(arg)?, after_effects: None },
            },
            "restart" => Fault::Restart { node: node_id(arg)? },
            "kill" => {
                let (n, d) = arg.split_once('+').ok_or("kill needs NODE+MS")?;
                Fault::Kill { node: node_id(n)?, restart_after_ms: delay_ms(d)? }
            }
            "torn" => {
                let (n, rest) = arg.split_once('+').ok_or("torn needs NODE+MS/K")?;
                let (d, k) = rest.split_once('/').ok_or("torn needs NODE+MS/K")?;
                let sends: u32 = number(k, "a number of sends")?;
                if sends == 0 {
                    return Err("torn needs at least one send (K >= 1)".into());
                }
                Fault::TornSend { node: node_id(n)?, restart_after_ms: delay_ms(d)?, sends }
            }
            "power" => {
                let (n, d) = arg.split_once('+').ok_or("power needs NODES+MS")?;
                Fault::PowerLoss { nodes: parse_nodes(n)?, restart_after_ms: delay_ms(d)? }
            }
            "disarm" => Fault::Disarm { node: node_id(arg)? },
            "pause" => Fault::Pause { node: node_id(arg)? },
            "resume" => Fault::Resume { node: node_id(arg)? },
            "part" => Fault::Partition { groups: arg.split('|').map(parse_nodes).collect::<Result<_, _>>()? },
            "oneway" => {
                let (from, to) = arg.split_once('>').ok_or("oneway needs FROM>TO")?;
                Fault::OneWay { from: parse_nodes(from)?, to: parse_nodes(to)? }
            }
            "heal" => Fault::Heal,
            "loss" => Fault::Loss { probability: parse_probability(arg)? },
            "dup" => Fault::Dup { probability: parse_probability(arg)? },
            "delay" => Fault::Delay { extra_ms: delay_ms(arg)? },
            "crash-leader" => {
                let (k, rest) = arg.split_once('+').ok_or("crash-leader needs K+D~W")?;
                let (d, w) = rest.split_once('~').ok_or("crash-leader needs K+D~W")?;
                Fault::CrashLeader {
                    after_effects: number(k, "an effect count")?,
                    restart_after_ms: delay_ms(d)?,
                    armed_ms: number(w, "a duration in ms")?,
                }
            }
            "kill-voter" => {
                let (d, w) = arg.split_once('~').ok_or("kill-voter needs D~W")?;
                Fault::KillVoter { restart_after_ms: delay_ms(d)?, armed_ms: number(w, "a duration in ms")? }
            }
            other => return Err(format!("unknown fault '{other}'")),
        })
    }
}

impl std::str::FromStr for Schedule {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Schedule, ConfigError> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Schedule::default());
        }
        let mut entries = Vec::new();
        for entry in s.split(',') {
            let (at, fault) = entry
                .split_once(':')
                .ok_or_else(|| ConfigError::Schedule(format!("'{entry}' is not <ms>:<fault>")))?;
            let at: u64 = at
                .trim()
                .parse()
                .map_err(|_| ConfigError::Schedule(format!("'{at}' is not a time in ms")))?;
            let fault: Fault = fault.trim().parse().map_err(ConfigError::Schedule)?;
            entries.push(ScheduledFault { at: Time::from_millis(at), fault });
        }
        entries.sort_by_key(|e| e.at);
        Ok(Schedule(entries))
    }
}

impl Schedule {
    /// Every node a fault names exists.
    pub fn validate(&self, nodes: u32) -> Result<(), ConfigError> {
        for entry in &self.0 {
            let named: Vec<NodeId> = match &entry.fault {
                Fault::Crash { node, .. }
                | Fault::Restart { node }
                | Fault::Kill { node, .. }
                | Fault::TornSend { node, .. }
                | Fault::Disarm { node }
                | Fault::Pause { node }
                | Fault::Resume { node } => vec![*node],
                Fault::Partition { groups } => groups.iter().flatten().copied().collect(),
                Fault::PowerLoss { nodes, .. } => nodes.clone(),
                Fault::OneWay { from, to } => from.iter().chain(to).copied().collect(),
                _ => Vec::new(),
            };
            if let Some(bad) = named.iter().find(|n| n.0 >= nodes) {
                return Err(ConfigError::Schedule(format!(
                    "fault '{}' names node {} but there are only {nodes} nodes",
                    entry.fault, bad.0
                )));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This schedule without entry `index`.
    pub fn without(&self, index: usize) -> Schedule {
        let mut entries = self.0.clone();
        entries.remove(index);
        Schedule(entries)
    }

    /// A random schedule over the safety phase, from the seed's nemesis stream.
    /// Faults come as episodes (a start and its end); crash and pause episodes
    /// never take more than `max_down` nodes down at once.
    pub fn generate(config: &SimConfig) -> Schedule {
        let kinds = &config.faults.0;
        if kinds.is_empty() {
            return Schedule::default();
        }
        let mut nemesis = Nemesis {
            rng: Rng::stream(config.seed, NEMESIS_STREAM),
            nodes: (0..config.nodes).map(NodeId).collect(),
            max_down: config.max_down as usize,
            down: Vec::new(),
            busy_until: [0; FaultKind::KNOWN.len()],
            entries: Vec::new(),
        };
        let end_ms = config.safety_ms;
        let mut t = nemesis.rng.range(100, 400);
        while t < end_ms {
            let kind = kinds[nemesis.rng.range(0, kinds.len() as u64) as usize];
            let length = nemesis.rng.range(config.fault_length_ms.0, config.fault_length_ms.1);
            nemesis.episode(kind, t, (t + length).min(end_ms));
            t += nemesis.rng.range(config.fault_gap_ms.0, config.fault_gap_ms.1);
        }
        let mut entries = nemesis.entries;
        entries.sort_by_key(|e| e.at);
        Schedule(entries)
    }
}

/// The generator's state while it lays out episodes.
struct Nemesis {
    rng: Rng,
    nodes: Vec<NodeId>,
    max_down: usize,
    /// Down intervals [start, end) in ms, for the max_down budget: the
    /// node, or `None` for a leader or voter kill (the node is not known yet).
    down: Vec<(Option<NodeId>, u64, u64)>,
    /// Partition and network-mode episodes do not overlap their own kind.
    busy_until: [u64; FaultKind::KNOWN.len()],
    entries: Vec<ScheduledFault>,
}

impl Nemesis {
    fn push(&mut self, ms: u64, fault: Fault) {
        self.entries.push(ScheduledFault { at: Time::from_millis(ms), fault });
    }

    /// One episode of `kind` over `[t, stop)`, if the budgets allow it.
    fn episode(&mut self, kind: FaultKind, t: u64, stop: u64) {
        match kind {
            FaultKind::Crash | FaultKind::Pause | FaultKind::Kill | FaultKind::TornSend => {
                self.node_episode(kind, t, stop)
            }
            FaultKind::CrashLeader => self.leader_episode(t, stop),
            FaultKind::KillVoter => self.voter_episode(t, stop),
            FaultKind::PowerLoss => self.power_loss_episode(t, stop),
            FaultKind::Partition | FaultKind::Loss | FaultKind::Dup | FaultKind::Delay => {
                let slot = kind as usize;
                if self.busy_until[slot] <= t {
                    self.busy_until[slot] = stop;
                    self.network_episode(kind, t, stop);
                }
            }
        }
    }

    /// A crash, pause, kill or torn send of a node that is up throughout,
    /// within the `max_down` budget. A kill (or torn send) may keep its
    /// node down until its restart, after `stop`.
    fn node_episode(&mut self, kind: FaultKind, t: u64, stop: u64) {
        let restarts_itself = matches!(kind, FaultKind::Kill | FaultKind::TornSend);
        let until = if restarts_itself { stop + KILL_RESTART_MS.1 } else { stop };
        let candidates = self.up_throughout(t, until);
        if overlapping(&self.down, None, t, until) >= self.max_down || candidates.is_empty() {
            return;
        }
        let node = *self.rng.pick(&candidates).expect("candidates is not empty");
        match kind {
            FaultKind::Kill | FaultKind::TornSend => {
                // Armed over [t, stop); the node is down at most the restart
                // delay after the strike, before stop + D.
                let restart_after_ms = self.rng.range(KILL_RESTART_MS.0, KILL_RESTART_MS.1);
                self.down.push((Some(node), t, stop + restart_after_ms));
                let fault = if kind == FaultKind::Kill {
                    Fault::Kill { node, restart_after_ms }
                } else {
                    // The first message only, a few, or the whole broadcast.
                    let sends = *self.rng.pick(&[1, 2, 64]).expect("not empty");
                    Fault::TornSend { node, restart_after_ms, sends }
                };
                self.push(t, fault);
                self.push(stop, Fault::Disarm { node });
            }
            FaultKind::Crash => {
                self.down.push((Some(node), t, stop));
                let after_effects = self.rng.chance(0.5).then(|| self.rng.range(0, 4) as u32);
                self.push(t, Fault::Crash { node, after_effects });
                self.push(stop, Fault::Restart { node });
            }
            _ => {
                self.down.push((Some(node), t, stop));
                self.push(t, Fault::Pause { node });
                self.push(stop, Fault::Resume { node });
            }
        }
    }

    /// Armed over [t, stop); whichever node it strikes is down at most the
    /// restart delay after, before stop + D. Any node may be the leader
    /// then, so it takes a slot of the budget without naming one.
    fn leader_episode(&mut self, t: u64, stop: u64) {
        let until = stop + LEADER_RESTART_MS.1;
        if overlapping(&self.down, None, t, until) >= self.max_down {
            return;
        }
        // Cut after the disk write, with at most a minority of the nodes
        // (the leader included) holding it: persist + up to nodes/2 - 1 sends.
        let after_effects = self.rng.range(1, self.nodes.len() as u64 / 2 + 1) as u32;
        let restart_after_ms = self.rng.range(LEADER_RESTART_MS.0, LEADER_RESTART_MS.1);
        self.down.push((None, t, stop + restart_after_ms));
        self.push(t, Fault::CrashLeader { after_effects, restart_after_ms, armed_ms: stop - t });
    }

    /// Armed over [t, stop); whichever node it strikes restarts within the
    /// kill delay, before stop + D. Like a leader crash, it takes a slot of
    /// the budget without naming a node.
    fn voter_episode(&mut self, t: u64, stop: u64) {
        let restart_after_ms = self.rng.range(KILL_RESTART_MS.0, KILL_RESTART_MS.1);
        let until = stop + restart_after_ms;
        if overlapping(&self.down, None, t, until) >= self.max_down {
            return;
        }
        self.down.push((None, t, until));
        self.push(t, Fault::KillVoter { restart_after_ms, armed_ms: stop - t });
    }

    /// The nodes no episode takes down during `[t, until)`.
    fn up_throughout(&self, t: u64, until: u64) -> Vec<NodeId> {
        self.nodes.iter().copied().filter(|n| overlapping(&self.down, Some(*n), t, until) == 0).collect()
    }

    /// Arm a power loss over `[t, stop)` for as many nodes as the budget
    /// allows (a random number of them, two or more where it allows two);
    /// they are down at most the restart delay after the strike.
    fn power_loss_episode(&mut self, t: u64, stop: u64) {
        let restart_after_ms = self.rng.range(KILL_RESTART_MS.0, KILL_RESTART_MS.1);
        let until = stop + restart_after_ms;
        let budget = self.max_down.saturating_sub(overlapping(&self.down, None, t, until));
        let mut up = self.up_throughout(t, until);
        let most = budget.min(up.len());
        if most == 0 {
            return;
        }
        let struck = self.rng.range(most.min(2) as u64, most as u64 + 1) as usize;
        self.rng.shuffle(&mut up);
        up.truncate(struck);
        up.sort();
        for node in &up {
            self.down.push((Some(*node), t, until));
            self.push(stop, Fault::Disarm { node: *node });
        }
        self.push(t, Fault::PowerLoss { nodes: up, restart_after_ms });
    }

    /// A partition, or a period of loss, duplication or extra delay.
    fn network_episode(&mut self, kind: FaultKind, t: u64, stop: u64) {
        let (start, end) = match kind {
            FaultKind::Partition => (random_partition(&mut self.rng, &self.nodes), Fault::Heal),
            FaultKind::Loss => {
                let probability = (self.rng.range(5, 31) as f64) / 100.0;
                (Fault::Loss { probability }, Fault::Loss { probability: 0.0 })
            }
            FaultKind::Dup => {
                let probability = (self.rng.range(5, 31) as f64) / 100.0;
                (Fault::Dup { probability }, Fault::Dup { probability: 0.0 })
            }
            _ => (Fault::Delay { extra_ms: self.rng.range(5, 101) }, Fault::Delay { extra_ms: 0 }),
        };
        self.push(t, start);
        self.push(stop, end);
    }
}

/// How long a killed node stays down, in ms, `[lo, hi)`: a process
/// supervisor restarting it.
pub const KILL_RESTART_MS: (u64, u64) = (1, 51);

/// How long a node struck by `crash-leader` stays down, in ms, `[lo, hi)`
/// (as long as a `crash` episode): the cluster elects a leader without
/// it, often more than one, before it is back with its torn entry.
pub const LEADER_RESTART_MS: (u64, u64) = (200, 1_500);

/// Down intervals in `down` that overlap `[from, until)`: all of them for
/// `node: None`, else those of `node`.
fn overlapping(down: &[(Option<NodeId>, u64, u64)], node: Option<NodeId>, from: u64, until: u64) -> usize {
    down.iter().filter(|(d, s, e)| node.is_none_or(|n| *d == Some(n)) && *s < until && from < *e).count()
}

/// The label of the nemesis's random stream.
pub(crate) const NEMESIS_STREAM: u64 = 1 << 40;

fn random_partition(rng: &mut Rng, nodes: &[NodeId]) -> Fault {
    let mut shuffled = nodes.to_vec();
    rng.shuffle(&mut shuffled);
    let n = shuffled.len();
    match rng.range(0, 4) {
        // Random halves.
        0 => {
            let cut = rng.range(1, n as u64) as usize;
            let (a, b) = shuffled.split_at(cut);
            Fault::Partition { groups: sorted_groups(vec![a.to_vec(), b.to_vec()]) }
        }
        // A majority and a minority.
        1 => {
            let cut = n.div_ceil(2).max(1).min(n - 1);
            let (a, b) = shuffled.split_at(n - cut);
            Fault::Partition { groups: sorted_groups(vec![a.to_vec(), b.to_vec()]) }
        }
        // Isolate one node.
        2 => {
            let (a, b) = shuffled.split_at(1);
            Fault::Partition { groups: sorted_groups(vec![a.to_vec(), b.to_vec()]) }
        }
        // One-way: one node cannot hear from the others (it can still send).
        _ => {
            let (a, b) = shuffled.split_at(1);
            let mut from = b.to_vec();
            from.sort();
            Fault::OneWay { from, to: a.to_vec() }
        }
    }
}

fn sorted_groups(mut groups: Vec<Vec<NodeId>>) -> Vec<Vec<NodeId>> {
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultKind, FaultSet};

    #[test]
    fn schedules_round_trip_through_text() {
        let mut config = SimConfig::new("x");
        config.faults = FaultSet::all();
        for seed in 0..50 {
            config.seed = seed;
            let schedule = Schedule::generate(&config);
            let text = schedule.to_string();
            let parsed: Schedule = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn generated_schedules_respect_max_down() {
        let mut config = SimConfig::new("x");
        config.faults = "crash,pause".parse().unwrap();
        config.max_down = 1;
        for seed in 0..200 {
            config.seed = seed;
            let mut down = std::collections::BTreeSet::new();
            let mut saw_fault = false;
            for e in Schedule::generate(&config).0 {
                match e.fault {
                    Fault::Crash { node, .. } | Fault::Pause { node } => {
                        saw_fault = true;
                        down.insert(node);
                    }
                    Fault::Restart { node } | Fault::Resume { node } => {
                        down.remove(&node);
                    }
                    _ => {}
                }
                assert!(down.len() <= 1, "seed {seed}: {down:?} down at once");
            }
            assert!(saw_fault || seed > 0);
        }
    }

    #[test]
    fn leader_crashes_are_asked_for_by_name_and_keep_the_budget() {
        let mut config = SimConfig::new("x");
        config.faults = "crash-leader,crash".parse().unwrap();
        config.max_down = 2;
        let mut struck = 0;
        for seed in 0..200 {
            config.seed = seed;
            let schedule = Schedule::generate(&config);
            assert_eq!(schedule.to_string().parse::<Schedule>().unwrap(), schedule);
            // Down intervals, a leader crash counting until it lapses plus
            // its restart delay (whoever it strikes).
            let mut windows: Vec<(u64, u64)> = Vec::new();
            let mut crashed: std::collections::BTreeMap<NodeId, u64> = Default::default();
            for e in &schedule.0 {
                let ms = e.at.as_millis();
                match e.fault {
                    Fault::CrashLeader { after_effects, restart_after_ms, armed_ms } => {
                        struck += 1;
                        assert!(
                            (1..=2).contains(&after_effects),
                            "at most a minority of 5 holds the torn write"
                        );
                        assert!((LEADER_RESTART_MS.0..LEADER_RESTART_MS.1).contains(&restart_after_ms));
                        windows.push((ms, ms + armed_ms + restart_after_ms));
                    }
                    Fault::Crash { node, .. } => {
                        crashed.insert(node, ms);
                    }
                    Fault::Restart { node } => windows.push((crashed.remove(&node).unwrap(), ms)),
                    _ => {}
                }
            }
            for &(start, _) in &windows {
                let down = windows.iter().filter(|(s, e)| *s <= start && start < *e).count();
                assert!(down <= 2, "seed {seed}: {down} down at {start} ms");
            }
        }
        assert!(struck > 0);
        // `all` stays the seven kinds it was, so its schedules do not change.
        config.faults = FaultSet::all();
        for seed in 0..50 {
            config.seed = seed;
            let schedule = Schedule::generate(&config);
            assert!(!schedule.0.iter().any(|e| matches!(e.fault, Fault::CrashLeader { .. })));
        }
    }

    #[test]
    fn power_losses_strike_groups_within_the_budget() {
        let mut config = SimConfig::new("x");
        config.faults = "power-loss,crash".parse().unwrap();
        let (mut groups, mut pairs) = (0, 0);
        for (nodes, max_down) in [(3, 2), (5, 2), (5, 4), (3, 1)] {
            config.nodes = nodes;
            config.max_down = max_down;
            for seed in 0..100 {
                config.seed = seed;
                let schedule = Schedule::generate(&config);
                assert_eq!(schedule.to_string().parse::<Schedule>().unwrap(), schedule);
                // Each armed group stays within the budget with the crashes
                // around it: a power loss counts until its disarm plus its
                // restart delay.
                let mut windows: Vec<(u64, u64)> = Vec::new();
                let mut crashed: std::collections::BTreeMap<NodeId, u64> = Default::default();
                let mut armed: std::collections::BTreeMap<NodeId, (u64, u64)> = Default::default();
                for e in &schedule.0 {
                    let ms = e.at.as_millis();
                    match &e.fault {
                        Fault::PowerLoss { nodes: group, restart_after_ms } => {
                            groups += 1;
                            assert!(!group.is_empty() && group.len() <= max_down as usize);
                            pairs += usize::from(group.len() >= 2);
                            assert!((KILL_RESTART_MS.0..KILL_RESTART_MS.1).contains(restart_after_ms));
                            for n in group {
                                armed.insert(*n, (ms, *restart_after_ms));
                            }
                        }
                        Fault::Disarm { node } => {
                            let (from, d) = armed.remove(node).unwrap();
                            windows.push((from, ms + d));
                        }
                        Fault::Crash { node, .. } => {
                            crashed.insert(*node, ms);
                        }
                        Fault::Restart { node } => windows.push((crashed.remove(node).unwrap(), ms)),
                        _ => {}
                    }
                }
                for &(start, _) in &windows {
                    let down = windows.iter().filter(|(s, e)| *s <= start && start < *e).count();
                    assert!(down <= max_down as usize, "seed {seed}: {down} down at {start} ms");
                }
            }
        }
        assert!(groups > 0 && pairs > 0, "{groups} groups, {pairs} of two or more");
        assert!("10:power=0.2+17".parse::<Schedule>().unwrap().validate(3).is_ok());
        assert!("10:power=0.3+17".parse::<Schedule>().unwrap().validate(3).is_err());
    }

    #[test]
    fn voter_kills_are_asked_for_by_name_and_keep_the_budget() {
        let mut config = SimConfig::new("x");
        config.faults = "kill-voter,crash".parse().unwrap();
        config.max_down = 1;
        let mut armed = 0;
        for seed in 0..200 {
            config.seed = seed;
            let schedule = Schedule::generate(&config);
            assert_eq!(schedule.to_string().parse::<Schedule>().unwrap(), schedule);
            // Down intervals: an armed voter kill until it lapses plus its
            // restart delay (whoever it strikes), crashes until restart.
            let mut windows: Vec<(u64, u64)> = Vec::new();
            let mut crashed: std::collections::BTreeMap<NodeId, u64> = Default::default();
            for e in &schedule.0 {
                let ms = e.at.as_millis();
                match e.fault {
                    Fault::KillVoter { restart_after_ms, armed_ms } => {
                        armed += 1;
                        assert!((KILL_RESTART_MS.0..KILL_RESTART_MS.1).contains(&restart_after_ms));
                        windows.push((ms, ms + armed_ms + restart_after_ms));
                    }
                    Fault::Crash { node, .. } => {
                        crashed.insert(node, ms);
                    }
                    Fault::Restart { node } => windows.push((crashed.remove(&node).unwrap(), ms)),
                    _ => {}
                }
            }
            for &(start, _) in &windows {
                let down = windows.iter().filter(|(s, e)| *s <= start && start < *e).count();
                assert!(down <= 1, "seed {seed}: {down} down at {start} ms");
            }
        }
        assert!(armed > 0);
        assert!(!FaultSet::all().contains(FaultKind::KillVoter), "all keeps its schedules");
        assert!("10:kill-voter=20".parse::<Schedule>().is_err(), "kill-voter needs D~W");
    }

    #[test]
    fn bad_schedules_are_rejected() {
        assert!("10:crash-leader=1+20".parse::<Schedule>().is_err());
        assert!("10:explode=1".parse::<Schedule>().is_err());
        assert!("x:crash=1".parse::<Schedule>().is_err());
        let s: Schedule = "10:crash=7".parse().unwrap();
        assert!(s.validate(3).is_err());
    }
}
