//! The nemesis: a fault schedule is plain data (a time-ordered list of
//! faults), generated from the seed or given on the command line, so a failing
//! run can be shrunk by deleting entries and replayed from one line.
//!
//! Text form (`--schedule`), comma separated, each entry `<ms>:<fault>`:
//! `crash=N` (now), `crash=N/K` (during N's next step, after K of its
//! effects), `restart=N`, `kill=N+D` (kill N as its next step that
//! persists finishes, restart it D ms later), `disarm=N` (cancel a pending
//! kill), `pause=N`, `resume=N`, `part=0.1|2.3.4` (groups
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
    /// Cancel a kill that has not happened yet.
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

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let (name, arg) = s.split_once('=').unwrap_or((s, ""));
        let node = || -> Result<NodeId, String> {
            arg.parse::<u32>().map(NodeId).map_err(|_| format!("'{arg}' is not a node id"))
        };
        Ok(match name {
            "crash" => match arg.split_once('/') {
                Some((n, k)) => Fault::Crash {
                    node: NodeId(n.parse().map_err(|_| format!("'{n}' is not a node id"))?),
                    after_effects: Some(k.parse().map_err(|_| format!("'{k}' is not an effect count"))?),
                },
                None => Fault::Crash { node: node()?, after_effects: None },
            },
            "restart" => Fault::Restart { node: node()? },
            "kill" => {
                let (n, d) = arg.split_once('+').ok_or("kill needs NODE+MS")?;
                Fault::Kill {
                    node: NodeId(n.parse().map_err(|_| format!("'{n}' is not a node id"))?),
                    restart_after_ms: d.parse().map_err(|_| format!("'{d}' is not a delay in ms"))?,
                }
            }
            "disarm" => Fault::Disarm { node: node()? },
            "pause" => Fault::Pause { node: node()? },
            "resume" => Fault::Resume { node: node()? },
            "part" => Fault::Partition { groups: arg.split('|').map(parse_nodes).collect::<Result<_, _>>()? },
            "oneway" => {
                let (from, to) = arg.split_once('>').ok_or("oneway needs FROM>TO")?;
                Fault::OneWay { from: parse_nodes(from)?, to: parse_nodes(to)? }
            }
            "heal" => Fault::Heal,
            "loss" => Fault::Loss { probability: parse_probability(arg)? },
            "dup" => Fault::Dup { probability: parse_probability(arg)? },
            "delay" => {
                Fault::Delay { extra_ms: arg.parse().map_err(|_| format!("'{arg}' is not a delay in ms"))? }
            }
            "crash-leader" => {
                let (k, rest) = arg.split_once('+').ok_or("crash-leader needs K+D~W")?;
                let (d, w) = rest.split_once('~').ok_or("crash-leader needs K+D~W")?;
                Fault::CrashLeader {
                    after_effects: k.parse().map_err(|_| format!("'{k}' is not an effect count"))?,
                    restart_after_ms: d.parse().map_err(|_| format!("'{d}' is not a delay in ms"))?,
                    armed_ms: w.parse().map_err(|_| format!("'{w}' is not a duration in ms"))?,
                }
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
                | Fault::Disarm { node }
                | Fault::Pause { node }
                | Fault::Resume { node } => vec![*node],
                Fault::Partition { groups } => groups.iter().flatten().copied().collect(),
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
        let mut rng = Rng::stream(config.seed, NEMESIS_STREAM);
        let kinds = &config.faults.0;
        let mut entries = Vec::new();
        if kinds.is_empty() {
            return Schedule(entries);
        }
        let end_ms = config.safety_ms;
        let nodes: Vec<NodeId> = (0..config.nodes).map(NodeId).collect();
        // Down intervals [start, end) in ms, for the max_down budget: the
        // node, or `None` for a leader crash (the leader is not known yet).
        let mut down: Vec<(Option<NodeId>, u64, u64)> = Vec::new();
        // Partition and network-mode episodes do not overlap their own kind.
        let mut busy_until = [0u64; FaultKind::KNOWN.len()];
        let mut t = rng.range(100, 400);
        while t < end_ms {
            let kind = kinds[rng.range(0, kinds.len() as u64) as usize];
            let length = rng.range(200, 1_500);
            let stop = (t + length).min(end_ms);
            let slot = kind as usize;
            let at = |ms: u64| Time::from_millis(ms);
            match kind {
                FaultKind::Crash | FaultKind::Pause | FaultKind::Kill => {
                    // A kill may take its node down until its restart, after stop.
                    let until = if kind == FaultKind::Kill { stop + KILL_RESTART_MS.1 } else { stop };
                    let candidates: Vec<NodeId> = nodes
                        .iter()
                        .copied()
                        .filter(|n| overlapping(&down, Some(*n), t, until) == 0)
                        .collect();
                    if overlapping(&down, None, t, until) < config.max_down as usize && !candidates.is_empty()
                    {
                        let node = *rng.pick(&candidates).expect("candidates is not empty");
                        if kind == FaultKind::Kill {
                            // Armed over [t, stop); the node is down at most
                            // the restart delay after the kill, before stop + D.
                            let restart_after_ms = rng.range(KILL_RESTART_MS.0, KILL_RESTART_MS.1);
                            down.push((Some(node), t, stop + restart_after_ms));
                            entries.push(ScheduledFault {
                                at: at(t),
                                fault: Fault::Kill { node, restart_after_ms },
                            });
                            entries.push(ScheduledFault { at: at(stop), fault: Fault::Disarm { node } });
                        } else if kind == FaultKind::Crash {
                            down.push((Some(node), t, stop));
                            let after_effects = rng.chance(0.5).then(|| rng.range(0, 4) as u32);
                            entries.push(ScheduledFault {
                                at: at(t),
                                fault: Fault::Crash { node, after_effects },
                            });
                            entries.push(ScheduledFault { at: at(stop), fault: Fault::Restart { node } });
                        } else {
                            down.push((Some(node), t, stop));
                            entries.push(ScheduledFault { at: at(t), fault: Fault::Pause { node } });
                            entries.push(ScheduledFault { at: at(stop), fault: Fault::Resume { node } });
                        }
                    }
                }
                FaultKind::CrashLeader => {
                    // Armed over [t, stop); whichever node it strikes is down
                    // at most the restart delay after, before stop + D. Any
                    // node may be the leader then, so it takes a slot of the
                    // budget without naming one.
                    let until = stop + LEADER_RESTART_MS.1;
                    if overlapping(&down, None, t, until) < config.max_down as usize {
                        // Cut after the disk write, with at most a minority
                        // of the nodes (the leader included) holding it:
                        // persist + up to nodes/2 - 1 sends.
                        let after_effects = rng.range(1, nodes.len() as u64 / 2 + 1) as u32;
                        let restart_after_ms = rng.range(LEADER_RESTART_MS.0, LEADER_RESTART_MS.1);
                        down.push((None, t, stop + restart_after_ms));
                        entries.push(ScheduledFault {
                            at: at(t),
                            fault: Fault::CrashLeader { after_effects, restart_after_ms, armed_ms: stop - t },
                        });
                    }
                }
                FaultKind::Partition if busy_until[slot] <= t => {
                    busy_until[slot] = stop;
                    entries.push(ScheduledFault { at: at(t), fault: random_partition(&mut rng, &nodes) });
                    entries.push(ScheduledFault { at: at(stop), fault: Fault::Heal });
                }
                FaultKind::Loss if busy_until[slot] <= t => {
                    busy_until[slot] = stop;
                    let probability = (rng.range(5, 31) as f64) / 100.0;
                    entries.push(ScheduledFault { at: at(t), fault: Fault::Loss { probability } });
                    entries.push(ScheduledFault { at: at(stop), fault: Fault::Loss { probability: 0.0 } });
                }
                FaultKind::Dup if busy_until[slot] <= t => {
                    busy_until[slot] = stop;
                    let probability = (rng.range(5, 31) as f64) / 100.0;
                    entries.push(ScheduledFault { at: at(t), fault: Fault::Dup { probability } });
                    entries.push(ScheduledFault { at: at(stop), fault: Fault::Dup { probability: 0.0 } });
                }
                FaultKind::Delay if busy_until[slot] <= t => {
                    busy_until[slot] = stop;
                    let extra_ms = rng.range(5, 101);
                    entries.push(ScheduledFault { at: at(t), fault: Fault::Delay { extra_ms } });
                    entries.push(ScheduledFault { at: at(stop), fault: Fault::Delay { extra_ms: 0 } });
                }
                _ => {}
            }
            t += rng.range(100, 700);
        }
        entries.sort_by_key(|e| e.at);
        Schedule(entries)
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
    use crate::config::FaultSet;

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
    fn bad_schedules_are_rejected() {
        assert!("10:crash-leader=1+20".parse::<Schedule>().is_err());
        assert!("10:explode=1".parse::<Schedule>().is_err());
        assert!("x:crash=1".parse::<Schedule>().is_err());
        let s: Schedule = "10:crash=7".parse().unwrap();
        assert!(s.validate(3).is_err());
    }
}
