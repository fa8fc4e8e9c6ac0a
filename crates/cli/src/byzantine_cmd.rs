//! `quorum byzantine-table`: for every n and m in range, does some traitor
//! strategy break IC1 or IC2 of OM(m) and SM(m)? (Lamport, Shostak, Pease
//! 1982: OM(m) fails with 3m or fewer generals, §2 and §3, and holds with
//! more, Theorem 1; SM(m) holds with any number, Theorem 2.)
//!
//! Each cell runs one instance, commander node 0, for every placement of 1
//! to m traitors among the n generals, both orders of the commander, and
//! every strategy of a family: `silent`, `lie`, and `equivocate@S` for
//! every one of the 2^n plans S (the traitors collude: all tell general i
//! the i-th bit of S, whether commanding or relaying). That is every
//! traitor behaviour that depends only on the receiver, not every
//! behaviour there is: a cell with no violation is evidence, a cell with
//! one is a proof (its witness is printed). The runs use the protocols'
//! own code, the same adversary as the simulator (`quorum_core::byzantine`),
//! and a lock-step driver: every message sent in a round arrives before
//! the round's end (A1, A3), the model the algorithms assume. Each cell
//! also counts the messages and rounds of one decision with no traitors,
//! beside the paper's: m + 1 rounds, and for OM(m)
//! (n − 1) + (n − 1)(n − 2) + ... messages.

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Args;
use quorum_check::byzantine::OrderLog;
use quorum_core::byzantine::{Adversary, Strategy, Tampered};
use quorum_core::host::{Carried, Cut, Host};
use quorum_core::{Cluster, Effect, NodeId, Observation, Protocol, Rng, Time};
use quorum_protocols::byzantine_generals::om::Om;
use quorum_protocols::byzantine_generals::sm::Sm;
use quorum_protocols::byzantine_generals::{Commanders, Config, OralMessages, SignedMessages, Timer, Votes};
use serde::Serialize;

use crate::UsageError;

#[derive(Args)]
pub struct TableArgs {
    /// Largest number of generals.
    #[arg(long, default_value_t = 7)]
    nodes_max: u32,
    /// Largest m (traitors the algorithm is built for; each cell places 1 to m).
    #[arg(long, default_value_t = 2)]
    m_max: u32,
    /// Print the cells as JSON lines.
    #[arg(long)]
    json: bool,
}

/// One cell of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub algorithm: &'static str,
    pub n: u32,
    pub m: u32,
    /// Runs tried (placements × orders × strategies).
    pub runs: u64,
    /// The first run that broke IC1 or IC2, described; `None`: no run did.
    pub violation: Option<String>,
    /// What the paper says: a violation exists.
    pub paper_violation: bool,
    /// Messages and rounds of one decision with no traitor (commander
    /// ordering ATTACK), and the paper's counts.
    pub messages: u64,
    pub paper_messages: u64,
    pub rounds: u32,
}

/// One instance's run in lock step: what the loyal nodes observed, messages
/// sent and the rounds that ended.
struct Run {
    orders: OrderLog,
    decided: Vec<(NodeId, u64)>,
    messages: u64,
    rounds: u32,
}

fn config(n: u32, m: u32, order: u64) -> Config {
    let mut bits = vec!['0'; n as usize];
    bits[0] = if order == 1 { '1' } else { '0' };
    Config {
        m,
        votes: Votes::Bits(bits.into_iter().collect()),
        commanders: Commanders::One,
        instances: 1,
        ..Config::default()
    }
}

/// Carry out `effects` of `node`: sends through the adversary (a traitor's)
/// into `flight`, timers into `timers`, loyal observations into `run`.
fn carry<P: Protocol<Timer = Timer>>(
    now: Time,
    host: &mut Host<P>,
    effects: Vec<Effect<P>>,
    adversary: &mut Adversary<P>,
    flight: &mut Vec<(NodeId, NodeId, P::Msg)>,
    timers: &mut BTreeSet<(Time, NodeId, u64, Timer)>,
    run: &mut Run,
) {
    let me = host.id();
    let mut carried = Vec::new();
    host.execute(now, effects, Cut::Never, &mut |c| match c {
        Carried::Send { to, msg } => carried.push((to, msg)),
        Carried::Timer { timer, armed } => {
            timers.insert((armed.due, me, armed.generation, timer.clone()));
        }
        Carried::Observe(o) if !adversary.is_traitor(me) => {
            run.orders.observe(me, &o);
            if let Observation::Decide { value, .. } = o {
                run.decided.push((me, value));
            }
        }
        _ => {}
    });
    for (to, msg) in carried {
        let msg = if adversary.is_traitor(me) {
            match adversary.tamper(me, to, msg) {
                Tampered::Honest(msg) | Tampered::Forged(msg) => msg,
                Tampered::Withheld => continue,
            }
        } else {
            msg
        };
        run.messages += 1;
        flight.push((me, to, msg));
    }
}

/// One instance of `P` on `n` generals with `traitors` following `strategy`.
fn run_once<P: Protocol<Config = Config, Timer = Timer>>(
    config: &Config,
    n: u32,
    traitors: &[NodeId],
    strategy: &Strategy,
) -> Run {
    let members: Vec<NodeId> = (0..n).map(NodeId).collect();
    let mut hosts: Vec<Host<P>> =
        members.iter().map(|&id| Host::new(Cluster::new(id, members.clone())).with_secret(7)).collect();
    let mut adversary = Adversary::<P>::new(traitors, strategy.clone(), n, 1, 7);
    let mut rng = Rng::seed(1);
    let (mut flight, mut timers) = (Vec::new(), BTreeSet::new());
    let mut run = Run { orders: OrderLog::new(), decided: Vec::new(), messages: 0, rounds: 0 };
    for host in &mut hosts {
        let effects = host.start(config, Time::ZERO, &mut rng);
        carry(Time::ZERO, host, effects, &mut adversary, &mut flight, &mut timers, &mut run);
    }
    while let Some(&(due, ..)) = timers.first() {
        // Every timer due now fires (every node's round ends together),
        // then every message sent arrives, before the next round ends.
        while timers.first().is_some_and(|(at, ..)| *at == due) {
            let (_, node, generation, timer) = timers.pop_first().expect("a timer is due");
            let host = &mut hosts[node.0 as usize];
            if !host.take_timer(&timer, generation) {
                continue;
            }
            if node.0 == 0 {
                run.rounds += u32::from(matches!(timer, Timer::Round { round, .. } if round > 0));
            }
            let effects = host.step(due, &mut rng, |p, out| p.on_timer(timer, out));
            carry(due, host, effects, &mut adversary, &mut flight, &mut timers, &mut run);
        }
        while !flight.is_empty() {
            for (from, to, msg) in std::mem::take(&mut flight) {
                if adversary.is_traitor(to) {
                    adversary.heard(to, &msg);
                }
                let host = &mut hosts[to.0 as usize];
                let effects = host.step(due, &mut rng, |p, out| p.on_message(from, msg, out));
                carry(due, host, effects, &mut adversary, &mut flight, &mut timers, &mut run);
            }
        }
    }
    run
}

/// The first broken condition of a run among the loyal, if any.
fn broken(run: &Run, traitors: &[NodeId]) -> Option<String> {
    if let Some(v) = run.orders.check(traitors).first() {
        return Some(v.to_string());
    }
    let first = run.decided.first()?;
    let other = run.decided.iter().find(|(_, v)| *v != first.1)?;
    Some(format!("agreement: {} decided {}, {} decided {}", first.0, first.1, other.0, other.1))
}

/// Every set of 1 to `m` traitors among `n` generals.
fn placements(n: u32, m: u32) -> Vec<Vec<NodeId>> {
    let mut all = Vec::new();
    for mask in 1u32..(1 << n) {
        if mask.count_ones() <= m {
            all.push((0..n).filter(|i| mask & (1 << i) != 0).map(NodeId).collect());
        }
    }
    all
}

/// The strategy family: silent, lie, and every plan of equivocation.
fn strategies(n: u32) -> Vec<Strategy> {
    let mut all: Vec<Strategy> = ["silent", "lie"].iter().map(|s| s.parse().expect("tactics")).collect();
    let equivocate: Strategy = "equivocate+collude".parse().expect("tactics");
    for plan in 0u32..(1 << n) {
        let sides = (0..n).map(|i| ((plan >> i) & 1) as u8).collect();
        all.push(Strategy { sides: Some(sides), ..equivocate.clone() });
    }
    all
}

/// One cell: `P` with OM's or SM's name and message count.
fn cell<P: Protocol<Config = Config, Timer = Timer>>(
    algorithm: &'static str,
    n: u32,
    m: u32,
    paper_violation: bool,
    paper_messages: u64,
) -> Cell {
    let honest = run_once::<P>(&config(n, m, 1), n, &[], &Strategy::default());
    let mut cell = Cell {
        algorithm,
        n,
        m,
        runs: 0,
        violation: None,
        paper_violation,
        messages: honest.messages,
        paper_messages,
        rounds: honest.rounds,
    };
    let family = strategies(n);
    for traitors in placements(n, m) {
        for order in [1, 0] {
            for strategy in &family {
                cell.runs += 1;
                let run = run_once::<P>(&config(n, m, order), n, &traitors, strategy);
                if let Some(why) = broken(&run, &traitors) {
                    let who: Vec<String> = traitors.iter().map(|t| t.to_string()).collect();
                    cell.violation =
                        Some(format!("traitors {} ({strategy}), order {order}: {why}", who.join(",")));
                    return cell;
                }
            }
        }
    }
    cell
}

/// Every cell for n up to `nodes_max` and m from 1 to `m_max` (n ≥ m + 2:
/// with fewer, at most one loyal lieutenant is left and there is nothing to
/// agree on).
pub fn table(nodes_max: u32, m_max: u32) -> Vec<Cell> {
    let mut cells = Vec::new();
    for m in 1..=m_max {
        for n in (m + 2)..=nodes_max {
            cells.push(cell::<OralMessages>("OM", n, m, n <= 3 * m, Om::messages(u64::from(n), m)));
        }
    }
    for m in 1..=m_max {
        for n in (m + 2)..=nodes_max {
            cells.push(cell::<SignedMessages>("SM", n, m, false, Sm::messages(u64::from(n), m)));
        }
    }
    cells
}

fn print(cells: &[Cell]) {
    println!(
        "| algorithm | m | n | n ≤ 3m | runs | IC1/IC2 broken? | paper | messages (paper) | rounds (paper) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for c in cells {
        let found = if c.violation.is_some() { "violation" } else { "none" };
        let paper = if c.paper_violation { "violation" } else { "none" };
        println!(
            "| {}({}) | {} | {} | {} | {} | {found} | {paper} | {} ({}) | {} ({}) |",
            c.algorithm,
            c.m,
            c.m,
            c.n,
            if c.n <= 3 * c.m { "yes" } else { "no" },
            c.runs,
            c.messages,
            c.paper_messages,
            c.rounds,
            c.m + 1
        );
    }
    println!();
    for c in cells.iter().filter(|c| c.violation.is_some()) {
        println!("{}({}) n={}: {}", c.algorithm, c.m, c.n, c.violation.as_deref().unwrap_or_default());
    }
}

pub fn byzantine_table(args: TableArgs) -> Result<ExitCode, UsageError> {
    if args.m_max == 0 || args.m_max > 3 || args.nodes_max > 9 || args.nodes_max < args.m_max + 2 {
        return Err(UsageError(
            "byzantine-table needs 1 ≤ --m-max ≤ 3 and --m-max + 2 ≤ --nodes-max ≤ 9".into(),
        ));
    }
    let cells = table(args.nodes_max, args.m_max);
    if args.json {
        for c in &cells {
            println!("{}", serde_json::to_string(c).expect("cells serialize"));
        }
    } else {
        print(&cells);
    }
    let agree = cells.iter().all(|c| c.violation.is_some() == c.paper_violation && c.rounds == c.m + 1);
    Ok(if agree { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's small cells, pinned: OM(1) breaks with 3 generals and
    /// holds with 4 and 5 (9 and 28 messages... its counts); SM(1) holds
    /// with 3. A cell that holds only because nothing ran would show
    /// `runs` 0.
    #[test]
    fn the_small_cells_agree_with_the_paper() {
        let cells = table(5, 1);
        let summary: Vec<(&str, u32, bool, u64, u32)> =
            cells.iter().map(|c| (c.algorithm, c.n, c.violation.is_some(), c.messages, c.rounds)).collect();
        assert_eq!(
            summary,
            vec![
                ("OM", 3, true, 4, 2),
                ("OM", 4, false, 9, 2),
                ("OM", 5, false, 16, 2),
                ("SM", 3, false, 4, 2),
                ("SM", 4, false, 9, 2),
                ("SM", 5, false, 16, 2),
            ]
        );
        assert!(cells.iter().all(|c| c.messages == c.paper_messages && c.runs > 0));
        let three = &cells[0];
        assert!(three.violation.as_deref().unwrap().contains("IC"), "{:?}", three.violation);
    }

    /// The negative control of the driver: with OM's bug (one round short)
    /// four generals and one traitor break it too.
    #[test]
    fn a_short_om_breaks_where_om_holds() {
        let mut config = config(4, 1, 1);
        config.bug = Some(quorum_protocols::byzantine_generals::Bug::OneRoundShort);
        let equivocate: Strategy = "equivocate@0110".parse().unwrap();
        let run = run_once::<OralMessages>(&config, 4, &[NodeId(0)], &equivocate);
        assert!(broken(&run, &[NodeId(0)]).is_some_and(|why| why.starts_with("IC1")));
        let config = super::config(4, 1, 1);
        let run = run_once::<OralMessages>(&config, 4, &[NodeId(0)], &equivocate);
        assert_eq!(broken(&run, &[NodeId(0)]), None);
    }
}
