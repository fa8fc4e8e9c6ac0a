//! Swarm testing: every seed draws its own fault mix, fault rates, how many
//! nodes may be down at once, network timing, workload shape and the
//! protocol's optional features (Groce, Zhang, Eide, Chen, Regehr, "Swarm
//! Testing", ISSTA 2012; TigerBeetle's VOPR does the same).
//!
//! One fixed mix, however rich, spreads each seed's faults thin: with every
//! fault kind on at once, a run rarely holds the one pattern a bug needs
//! for long enough (three leaders crashing in a row for Raft's figure 8, a
//! majority of acceptors restarting mid-ballot for a Paxos acceptor that
//! forgets its promises). Leaving kinds *out* at random, and varying how
//! hard the rest hit, lets many seeds each push one corner hard.
//!
//! A drawn run is an ordinary run: [`SimConfig::resolve`] writes what was
//! drawn into the config (the fault kinds, `max_down`, latency, keys,
//! clients, the episode rates) and a caller that knows the protocol draws
//! its settings with [`Swarm::draw_settings`], so the replay of a swarm
//! seed names every value and replays exactly, with no swarm.

use quorum_core::byzantine::Strategy;
use quorum_core::{NodeId, Rng};

use crate::config::{FaultKind, FaultSet, SimConfig, WorkloadKind};

/// The label of the swarm's random stream.
const SWARM_STREAM: u64 = 1 << 44;

/// What a seed may draw, and what the caller fixed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Swarm {
    /// The fault kinds a seed draws its mix from (the protocol's system
    /// model: every kind, or only fail-stop crashes).
    pub kinds: Vec<FaultKind>,
    /// Protocol settings a seed may draw: a `Config` field and the values
    /// (JSON) it may take. Drawn by the caller, [`Swarm::draw_settings`].
    pub settings: Vec<(String, Vec<serde_json::Value>)>,
    /// The protocol assumes a timely network (a synchronous system:
    /// messages arrive well within its timeouts): latency is drawn from the
    /// low spreads only.
    pub timely: bool,
    /// Parameters the caller fixed on the command line: not drawn.
    pub fixed: Fixed,
    /// The protocol tolerates traitors: a seed draws some
    /// ([`Swarm::draw_traitors`], by a caller that knows the bound) and
    /// their strategy.
    pub byzantine: bool,
    /// The most traitors a seed draws, when the caller sets it (beyond the
    /// protocol's bound for a negative control); `None`: the protocol's
    /// bound.
    pub traitors_max: Option<u32>,
}

/// Which run parameters the caller fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixed {
    pub max_down: bool,
    pub latency: bool,
    pub keys: bool,
    pub clients: bool,
    pub safety: bool,
    pub clock_skew: bool,
    /// The traitors and their strategy (`--byzantine`, `--strategy`).
    pub byzantine: bool,
}

impl SimConfig {
    /// The run this config describes for its seed: with a swarm (and no
    /// explicit schedule), everything the seed draws is written in and the
    /// swarm removed; otherwise the config as it is.
    pub fn resolve(&self) -> SimConfig {
        let mut config = self.clone();
        let Some(swarm) = config.swarm.take() else { return config };
        if config.schedule.is_some() {
            return config;
        }
        let mut rng = Rng::stream(config.seed, SWARM_STREAM);
        draw_shape(&mut config, &swarm, &mut rng);
        config.faults = draw_mix(&swarm.kinds, &config, &mut rng);
        draw_rates(&mut config, &mut rng);
        config
    }
}

/// How many nodes may be down (a minority up to all but one), the network's
/// latency, and the workload's keys and clients.
fn draw_shape(config: &mut SimConfig, swarm: &Swarm, rng: &mut Rng) {
    let fixed = &swarm.fixed;
    if !fixed.max_down {
        let minority = u64::from(SimConfig::minority(config.nodes));
        config.max_down = rng.range(minority, u64::from(config.nodes.max(1))) as u32;
    }
    if !fixed.latency {
        let min = *rng.pick(&[100, 500, 1_000]).expect("not empty");
        let spreads: &[u64] = if swarm.timely { &[1, 4] } else { &[1, 4, 20] };
        let spread = *rng.pick(spreads).expect("not empty");
        (config.latency_min_us, config.latency_max_us) = (min, min * spread);
    }
    if !fixed.keys {
        config.keys = *rng.pick(&[1, 2, 3, 5]).expect("not empty");
    }
    if !fixed.clients {
        config.clients = (*rng.pick(&[3, 5, 8]).expect("not empty")).min(config.ops);
    }
    if !fixed.safety {
        config.safety_ms = *rng.pick(&[5_000, 15_000]).expect("not empty");
    }
    // Only stamps read the clocks, and only the Redis workload stamps: the
    // other workloads' draws stay as they were.
    if config.workload == WorkloadKind::Redis && !fixed.clock_skew {
        config.clock_skew_ms = *rng.pick(&[0, 5, 20, 50]).expect("not empty");
    }
}

/// The seed's fault mix from `kinds`, without the kinds this cluster
/// cannot bear: half the seeds keep each kind with probability 1/2 (a broad
/// mix), the other half one or two kinds only (one corner, hit hard). An
/// empty draw is drawn again, so few seeds run without faults.
fn draw_mix(kinds: &[FaultKind], config: &SimConfig, rng: &mut Rng) -> FaultSet {
    let mut bearable: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|k| !(k.takes_nodes_down() && config.max_down == 0))
        .filter(|k| !(*k == FaultKind::Partition && config.nodes < 2))
        .collect();
    if bearable.is_empty() {
        return FaultSet::none();
    }
    if rng.chance(0.5) {
        rng.shuffle(&mut bearable);
        bearable.truncate(rng.range(1, 3) as usize);
        bearable.sort();
        return FaultSet(bearable);
    }
    for _ in 0..3 {
        let mix: Vec<FaultKind> = bearable.iter().copied().filter(|_| rng.chance(0.5)).collect();
        if !mix.is_empty() {
            return FaultSet(mix);
        }
    }
    FaultSet::none()
}

/// How often fault episodes start and how long they last: sparse and long,
/// the default, or dense and short.
fn draw_rates(config: &mut SimConfig, rng: &mut Rng) {
    let (length, gap) = *rng
        .pick(&[((200, 1_500), (100, 700)), ((100, 600), (50, 300)), ((500, 3_000), (300, 1_500))])
        .expect("not empty");
    config.fault_length_ms = length;
    config.fault_gap_ms = gap;
}

impl Swarm {
    /// The traitors seed `seed` draws among `nodes`, at most `max` of them
    /// (none a quarter of the time, so the loyal-only case stays covered),
    /// and one strategy they all follow ([`Strategy::drawable`]).
    pub fn draw_traitors(&self, seed: u64, nodes: u32, max: u32) -> (Vec<NodeId>, Strategy) {
        let mut rng = Rng::stream(seed, SWARM_STREAM - 1);
        let strategies = Strategy::drawable();
        let strategy = rng.pick(&strategies).expect("not empty").clone();
        let max = max.min(nodes);
        let count = if max == 0 || rng.chance(0.25) { 0 } else { rng.range(1, u64::from(max) + 1) as u32 };
        let mut all: Vec<NodeId> = (0..nodes).map(NodeId).collect();
        rng.shuffle(&mut all);
        let mut traitors: Vec<NodeId> = all.into_iter().take(count as usize).collect();
        traitors.sort();
        (traitors, strategy)
    }

    /// The protocol settings seed `seed` draws, as JSON fields, skipping
    /// those `pinned` names. `attempt` picks another draw of the same seed
    /// (for a caller whose protocol refuses a combination).
    pub fn draw_settings(
        &self,
        seed: u64,
        attempt: u64,
        pinned: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut rng = Rng::stream(seed, SWARM_STREAM + 1 + attempt);
        let mut drawn = serde_json::Map::new();
        for (name, values) in &self.settings {
            if let Some(value) = rng.pick(values) {
                if !pinned.contains_key(name) {
                    drawn.insert(name.clone(), value.clone());
                }
            }
        }
        drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm_config(seed: u64) -> SimConfig {
        let mut config = SimConfig::new("x");
        config.seed = seed;
        config.swarm = Some(Swarm { kinds: FaultKind::KNOWN.to_vec(), ..Swarm::default() });
        config
    }

    #[test]
    fn a_seed_draws_the_same_run_every_time_and_seeds_differ() {
        let a = swarm_config(7).resolve();
        assert_eq!(a.swarm, None);
        let b = swarm_config(7).resolve();
        assert_eq!(
            (a.faults.clone(), a.max_down, a.latency_min_us, a.keys),
            (b.faults, b.max_down, b.latency_min_us, b.keys)
        );
        let mixes: std::collections::BTreeSet<String> =
            (0..64).map(|s| swarm_config(s).resolve().faults.to_string()).collect();
        assert!(mixes.len() > 20, "seeds draw many mixes: {mixes:?}");
        for seed in 0..64 {
            let c = swarm_config(seed).resolve();
            c.validate().unwrap();
            assert!((2..=4).contains(&c.max_down), "a minority up to all but one of 5: {}", c.max_down);
        }
        let lengths: std::collections::BTreeSet<u64> =
            (0..64).map(|s| swarm_config(s).resolve().safety_ms).collect();
        assert_eq!(lengths, [5_000, 15_000].into(), "short and long safety phases");
    }

    #[test]
    fn fixed_parameters_and_pinned_settings_are_not_drawn() {
        let mut config = swarm_config(3);
        config.max_down = 1;
        config.keys = 9;
        config.safety_ms = 7_000;
        let swarm = config.swarm.as_mut().unwrap();
        swarm.fixed = Fixed {
            max_down: true,
            latency: false,
            keys: true,
            clients: false,
            safety: true,
            clock_skew: false,
            byzantine: false,
        };
        swarm.settings = vec![("pre_vote".into(), vec![true.into(), false.into()])];
        let resolved = config.resolve();
        assert_eq!((resolved.max_down, resolved.keys, resolved.safety_ms), (1, 9, 7_000));
        let swarm = config.swarm.as_ref().unwrap();
        assert_eq!(swarm.draw_settings(3, 0, &Default::default()).len(), 1);
        let pinned: serde_json::Map<_, _> = [("pre_vote".to_string(), false.into())].into_iter().collect();
        assert!(swarm.draw_settings(3, 0, &pinned).is_empty());
    }

    #[test]
    fn an_explicit_schedule_draws_nothing() {
        let mut config = swarm_config(5);
        config.schedule = Some(Default::default());
        let resolved = config.resolve();
        assert_eq!(resolved.swarm, None);
        assert_eq!(resolved.faults, FaultSet::none());
        assert_eq!(resolved.keys, SimConfig::new("x").keys);
    }

    #[test]
    fn a_cluster_that_cannot_bear_a_fault_does_not_draw_it() {
        let mut config = swarm_config(1);
        config.nodes = 1;
        for seed in 0..32 {
            config.seed = seed;
            let c = config.resolve();
            assert!(
                c.faults.0.iter().all(|k| !k.takes_nodes_down() && *k != FaultKind::Partition),
                "{}",
                c.faults
            );
        }
    }
}
