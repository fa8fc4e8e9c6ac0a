//! Quorum arithmetic: how many answers decide, and what a quorum has reached.
//!
//! Every protocol here decides by counting answers, and every count is safe
//! for the same reason: any two quorums share a member, and that member
//! carries what the first quorum decided into the second ("Paxos Made Simple",
//! §2.2; the source text's "Majorities"). Lamport generalises majorities to any
//! sets with that property ("Fast Paxos", 2006, §3, "any two quorums have
//! non-empty intersection"), and each protocol that needs larger quorums
//! states the stronger intersection it relies on:
//!
//! - **Majorities** ([`majority`]): ⌊n/2⌋ + 1 of n. Two majorities together
//!   hold more than n members, so they share one. Raft, ZAB, Paxos and
//!   Multi-Paxos count nothing else.
//! - **The commit point** ([`committed`]): given how far each voter has got
//!   (the highest log index it stores, the latest heartbeat round it
//!   acknowledged, the last time it was heard from), the largest value that
//!   a quorum has reached is the quorum-th highest of them: etcd's
//!   `quorum/majority.go` (`CommittedIndex`). Raft's commit index (§5.3,
//!   §5.4.2), ReadIndex rounds and check-quorum, ZAB's commit point and
//!   leader lease, and Multi-Paxos's read confirmation are all this one
//!   function.
//! - **A vote tally** ([`Tally`]): grants and refusals, one per voter; won
//!   once the grants reach the quorum, lost once the refusals leave too few
//!   voters to reach it.
//! - **Larger quorums**, for the protocols that decide faster or tolerate
//!   lies: Fast Paxos ([`FastPaxos`]: a classic quorum and *two* fast quorums
//!   must share a member), EPaxos ([`EPaxos`]: N = 2F + 1, a fast path of
//!   F + ⌊(F+1)/2⌋) and Byzantine quorums ([`byzantine_quorum`]: n = 3f + 1,
//!   quorums of 2f + 1, any two sharing f + 1 members, so at least one
//!   correct one).
//!
//! The tests check each intersection requirement by building the worst case
//! (quorums that overlap as little as their sizes allow) for every n up to
//! 50, confirm that construction against brute force on small n, show that
//! one member less breaks the requirement, and check [`committed`] against a
//! naive reference.

use std::collections::BTreeSet;

use quorum_core::NodeId;

/// The smallest majority of `n`: ⌊n/2⌋ + 1. Any two sets of this size drawn
/// from the same `n` members intersect. `majority(0)` is 1: an empty
/// membership has no quorum.
pub const fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The commit point: the largest value that at least `quorum` of the voters
/// have reached, given each voter's value (its acknowledged index, round,
/// contact time). It is the `quorum`-th highest value, counting duplicates:
/// at least `quorum` values are at or above it and fewer than `quorum` are
/// above it. `None` if fewer than `quorum` values were given.
///
/// The caller passes exactly one value per voter (its own included), so a
/// voter is never counted twice.
///
/// # Panics
///
/// If `quorum` is 0: "reached by no one" is not a commit point.
pub fn committed<T: Ord + Copy>(acks: impl IntoIterator<Item = T>, quorum: usize) -> Option<T> {
    assert!(quorum > 0, "a quorum has at least one member");
    let mut values: Vec<T> = acks.into_iter().collect();
    if values.len() < quorum {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    let point = values[quorum - 1];
    assert!(values[..quorum].iter().all(|v| *v >= point), "a quorum has reached the point");
    assert!(values[quorum..].iter().all(|v| *v <= point), "no one outside it is further");
    Some(point)
}

/// Where a vote stands, against a quorum out of a number of voters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The grants reach the quorum.
    Won,
    /// So many refused that the voters left cannot make a quorum.
    Lost,
    /// Neither yet.
    Pending,
}

/// The answers to one campaign (a ballot, a term): which voters granted and
/// which refused, each voter counted once, however often its answer is
/// delivered.
///
/// A grant is final: a refusal after it is ignored (a voter grants one
/// candidate per term or ballot and never takes it back). A refusal is not:
/// a voter that refused may grant later, once its state allows it, and then
/// counts as granted (a Raft voter that refused because it followed a
/// leader, which it does not persist, may grant after a restart). So
/// [`Outcome::Lost`] is final exactly where refusals are binding, as a Paxos
/// acceptor's, which never promises below what it promised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    granted: BTreeSet<NodeId>,
    refused: BTreeSet<NodeId>,
}

impl Tally {
    /// No answers yet.
    pub fn new() -> Tally {
        Tally::default()
    }

    /// A tally that starts with `voter`'s own grant (a candidate votes for
    /// itself).
    pub fn granted_by(voter: NodeId) -> Tally {
        let mut tally = Tally::new();
        tally.grant(voter);
        tally
    }

    /// Count `voter`'s grant. Returns whether it is new (not a duplicate).
    pub fn grant(&mut self, voter: NodeId) -> bool {
        self.refused.remove(&voter);
        self.granted.insert(voter)
    }

    /// Count `voter`'s refusal, unless it granted already. Returns whether it
    /// changed the tally.
    pub fn refuse(&mut self, voter: NodeId) -> bool {
        if self.granted.contains(&voter) {
            return false;
        }
        self.refused.insert(voter)
    }

    /// How many voters granted.
    pub fn granted(&self) -> usize {
        self.granted.len()
    }

    /// How many voters refused (and have not granted since).
    pub fn refused(&self) -> usize {
        self.refused.len()
    }

    pub fn has_granted(&self, voter: NodeId) -> bool {
        self.granted.contains(&voter)
    }

    /// Whether `voter` answered at all, granting or refusing.
    pub fn has_answered(&self, voter: NodeId) -> bool {
        self.granted.contains(&voter) || self.refused.contains(&voter)
    }

    /// Forget every answer (a new campaign).
    pub fn clear(&mut self) {
        self.granted.clear();
        self.refused.clear();
    }

    /// Where the vote stands against `quorum` out of `voters`: won once the
    /// grants reach the quorum, lost once more than `voters - quorum`
    /// refused.
    ///
    /// # Panics
    ///
    /// If `quorum` is 0 or above `voters`, or more voters answered than
    /// there are.
    pub fn outcome(&self, quorum: usize, voters: usize) -> Outcome {
        assert!(quorum > 0 && quorum <= voters, "a quorum of 1..={voters} voters, not {quorum}");
        assert!(self.granted.is_disjoint(&self.refused), "a voter is counted once");
        assert!(self.granted() + self.refused() <= voters, "more answers than voters");
        if self.granted() >= quorum {
            Outcome::Won
        } else if self.refused() > voters - quorum {
            Outcome::Lost
        } else {
            Outcome::Pending
        }
    }
}

/// Quorum sizes for Fast Paxos (Lamport, "Fast Paxos", Distributed Computing
/// 19(2), 2006). A value is chosen in a round when a quorum of that round
/// accepted it; in a *fast* round acceptors accept proposals straight from
/// the proposers, so two fast quorums may have accepted different values,
/// and a coordinator recovering the round must still see which one can have
/// been chosen. §3.1 states the *Quorum Requirement* that makes this safe:
/// for any rounds i and j, (a) any i-quorum and any j-quorum intersect, and
/// (b) if j is fast, any i-quorum and any two j-quorums intersect.
///
/// §3.4.1 counts it: with N acceptors, classic quorums of N − F and fast
/// quorums of N − E (E ≤ F), the requirement holds iff N > 2F and N > 2E + F.
/// The two natural choices maximise one tolerance or the other:
/// [`FastPaxos::most_classic_faults`] (F = ⌈N/2⌉ − 1, E = ⌊N/4⌋: majority
/// classic quorums, fast quorums of ⌈3N/4⌉) and
/// [`FastPaxos::most_fast_faults`] (E = F = ⌈N/3⌉ − 1: one size, ⌊2N/3⌋ + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPaxos {
    pub acceptors: usize,
    /// Acceptors a classic round needs (phase 1, and phase 2 of a classic round).
    pub classic: usize,
    /// Acceptors that must accept the same value in a fast round.
    pub fast: usize,
}

impl FastPaxos {
    /// Classic rounds as tolerant as Paxos: F = ⌈N/2⌉ − 1 (classic quorums
    /// are majorities) and E = ⌊N/4⌋ (fast quorums of ⌈3N/4⌉).
    pub fn most_classic_faults(acceptors: usize) -> FastPaxos {
        assert!(acceptors > 0, "Fast Paxos needs an acceptor");
        let classic_faults = acceptors.div_ceil(2) - 1;
        let fast_faults = acceptors / 4;
        FastPaxos::from_faults(acceptors, classic_faults, fast_faults)
    }

    /// Fast rounds as tolerant as classic ones: E = F = ⌈N/3⌉ − 1, so both
    /// quorums hold ⌊2N/3⌋ + 1 acceptors.
    pub fn most_fast_faults(acceptors: usize) -> FastPaxos {
        assert!(acceptors > 0, "Fast Paxos needs an acceptor");
        let faults = acceptors.div_ceil(3) - 1;
        FastPaxos::from_faults(acceptors, faults, faults)
    }

    fn from_faults(acceptors: usize, classic_faults: usize, fast_faults: usize) -> FastPaxos {
        assert!(fast_faults <= classic_faults, "fast quorums are never the smaller");
        let sizes =
            FastPaxos { acceptors, classic: acceptors - classic_faults, fast: acceptors - fast_faults };
        assert!(sizes.meets_quorum_requirement(), "{sizes:?} breaks §3.4.1");
        sizes
    }

    /// Acceptors that may fail with classic rounds still deciding (F).
    pub fn classic_faults(&self) -> usize {
        self.acceptors - self.classic
    }

    /// Acceptors that may fail with fast rounds still deciding (E).
    pub fn fast_faults(&self) -> usize {
        self.acceptors - self.fast
    }

    /// The Quorum Requirement (§3.1) for quorums defined by size: two
    /// classic quorums intersect, and so do a classic or fast quorum and any
    /// two fast quorums. Sets of sizes a, b, c out of N share at least
    /// a + b + c − 2N members, and sets that overlap no more exist, so the
    /// sizes suffice exactly when those bounds are positive.
    pub fn meets_quorum_requirement(&self) -> bool {
        let n = self.acceptors;
        let (classic, fast) = (self.classic, self.fast);
        classic <= n && fast <= n && 2 * classic > n && classic + 2 * fast > 2 * n && 3 * fast > 2 * n
    }
}

/// Quorum sizes for EPaxos (Moraru, Andersen, Kaminsky, "There Is More
/// Consensus in Egalitarian Parliaments", SOSP 2013). N = 2F + 1 replicas
/// tolerate F failures (§4.1). A command leader that gets identical
/// PreAccept answers from a *fast-path quorum* commits at once; otherwise it
/// runs Paxos-Accept on a *slow-path quorum* of F + 1, a majority (§4.3).
/// The basic protocol's fast path needs 2F (§4.3); the optimised protocol's
/// needs only F + ⌊(F+1)/2⌋ replicas, the command leader included (§4.4).
///
/// What makes the smaller fast path safe is what recovery sees: a replica
/// taking over a command whose leader failed asks a slow-path quorum that
/// need not include that leader, and meets at least ⌊(F+1)/2⌋ of the other
/// fast-path quorum members ([`EPaxos::recovery_witnesses`]), enough to
/// recognise a command that may have committed on the fast path (§4.4; with
/// the basic quorum it meets F = ⌊N/2⌋, the threshold of figure 3, line 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EPaxos {
    pub replicas: usize,
    /// F: the replicas that may fail.
    pub faults: usize,
    /// The optimised fast-path quorum, F + ⌊(F+1)/2⌋, command leader included.
    pub fast: usize,
    /// The slow-path (Paxos-Accept) quorum, F + 1.
    pub slow: usize,
}

impl EPaxos {
    /// The quorums of N = 2F + 1 replicas. With F = 0 (one replica) the
    /// formula's fast quorum is 0; the command leader alone is both quorums.
    pub fn tolerating(faults: usize) -> EPaxos {
        let slow = faults + 1;
        // ⌊(F+1)/2⌋ = ⌈F/2⌉.
        let fast = (faults + faults.div_ceil(2)).max(slow);
        let sizes = EPaxos { replicas: 2 * faults + 1, faults, fast, slow };
        assert!(sizes.slow == majority(sizes.replicas), "the slow path is a majority");
        assert!(sizes.fast >= sizes.slow && sizes.fast <= sizes.replicas);
        sizes
    }

    /// The quorums of `replicas`, which must be odd (N = 2F + 1): an even
    /// replica adds no tolerance, and F + 1 of an even N is no majority.
    pub fn for_replicas(replicas: usize) -> Option<EPaxos> {
        (replicas % 2 == 1).then(|| EPaxos::tolerating(replicas / 2))
    }

    /// The basic protocol's fast-path quorum, 2F (§4.3); the whole cluster
    /// when F = 0.
    pub fn basic_fast(&self) -> usize {
        (2 * self.faults).max(self.slow)
    }

    /// The fewest fast-path quorum members other than the command leader
    /// that any slow-path quorum without the leader contains: ⌊(F+1)/2⌋ (§4.4).
    pub fn recovery_witnesses(&self) -> usize {
        self.faults.div_ceil(2)
    }
}

/// The Byzantine faults `n` replicas tolerate: f = ⌊(n − 1)/3⌋, the largest f
/// with n ≥ 3f + 1 (Castro and Liskov, "Practical Byzantine Fault Tolerance",
/// OSDI 1999, §3: a replica must be able to proceed on n − f answers, of which
/// f may come from liars, and the n − 2f honest ones must outnumber them).
///
/// # Panics
///
/// If `n` is 0.
pub const fn byzantine_faults(n: usize) -> usize {
    assert!(n > 0, "no replicas tolerate nothing");
    (n - 1) / 3
}

/// The smallest Byzantine quorum of `n` replicas: ⌈(n + f + 1)/2⌉ with
/// f = [`byzantine_faults`]`(n)`, so that any two quorums share at least
/// f + 1 replicas, at least one of them correct (Malkhi and Reiter,
/// "Byzantine Quorum Systems", 1998, dissemination quorums), while the n − f
/// correct replicas still make one. For n = 3f + 1 it is PBFT's 2f + 1
/// (Castro and Liskov, §4.2: prepared and committed certificates).
///
/// # Panics
///
/// If `n` is 0.
pub const fn byzantine_quorum(n: usize) -> usize {
    let f = byzantine_faults(n);
    (n + f + 1).div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::subsequence;

    const N_MAX: usize = 50;

    /// Sets of `sizes` out of `0..n` that overlap as little as possible: the
    /// complement of each is the next run of `n - size` members, wrapping
    /// round, so the complements are disjoint until they cover everything.
    /// Their common members number max(0, Σ size − (k − 1)·n).
    fn least_overlapping(n: usize, sizes: &[usize]) -> Vec<BTreeSet<usize>> {
        let mut start = 0;
        let mut sets = Vec::new();
        for &size in sizes {
            assert!(size <= n);
            let excluded: BTreeSet<usize> = (start..start + (n - size)).map(|i| i % n.max(1)).collect();
            sets.push((0..n).filter(|i| !excluded.contains(i)).collect());
            start += n - size;
        }
        sets
    }

    fn common(sets: &[BTreeSet<usize>]) -> usize {
        let Some((first, rest)) = sets.split_first() else { return 0 };
        first.iter().filter(|m| rest.iter().all(|s| s.contains(m))).count()
    }

    /// The fewest members that sets of `sizes` out of `n` can share.
    fn worst_overlap(n: usize, sizes: &[usize]) -> usize {
        common(&least_overlapping(n, sizes))
    }

    fn subsets_of_size(n: usize, size: usize) -> Vec<BTreeSet<usize>> {
        (0u32..1 << n)
            .filter(|mask| mask.count_ones() as usize == size)
            .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
            .collect()
    }

    /// Brute force on small n: no sets of these sizes share fewer members
    /// than `least_overlapping` builds, so its answer is the true worst case.
    #[test]
    fn least_overlapping_is_the_worst_case() {
        for n in 1..=6 {
            for a in 0..=n {
                for b in a..=n {
                    let pairs = subsets_of_size(n, a).into_iter().flat_map(|x| {
                        subsets_of_size(n, b).into_iter().map(move |y| common(&[x.clone(), y]))
                    });
                    assert_eq!(pairs.min(), Some(worst_overlap(n, &[a, b])), "n={n} sizes {a},{b}");
                    for c in b..=n {
                        let brute = subsets_of_size(n, a)
                            .into_iter()
                            .flat_map(|x| subsets_of_size(n, b).into_iter().map(move |y| (x.clone(), y)))
                            .flat_map(|(x, y)| {
                                subsets_of_size(n, c)
                                    .into_iter()
                                    .map(move |z| common(&[x.clone(), y.clone(), z]))
                            })
                            .min();
                        assert_eq!(brute, Some(worst_overlap(n, &[a, b, c])), "n={n} sizes {a},{b},{c}");
                    }
                }
            }
        }
    }

    #[test]
    fn majorities_intersect_and_one_less_does_not() {
        assert_eq!([1, 2, 3, 4, 5, 6, 7].map(majority), [1, 2, 2, 3, 3, 4, 4]);
        assert_eq!(majority(0), 1);
        for n in 1..=N_MAX {
            let q = majority(n);
            assert!(worst_overlap(n, &[q, q]) >= 1, "n={n}");
            assert_eq!(worst_overlap(n, &[q - 1, q - 1]), 0, "n={n}: {} is not enough", q - 1);
        }
    }

    /// Fast Paxos §3.4.1: the sizes of both choices, and the Quorum
    /// Requirement of §3.1 for every n: classic ∩ classic, classic ∩ fast ∩
    /// fast and fast ∩ fast ∩ fast are never empty.
    #[test]
    fn fast_paxos_quorums_meet_the_quorum_requirement() {
        let sizes = |n| {
            let q = FastPaxos::most_classic_faults(n);
            (q.classic, q.fast)
        };
        assert_eq!([3, 4, 5, 7, 9, 13].map(sizes), [(2, 3), (3, 3), (3, 4), (4, 6), (5, 7), (7, 10)]);
        for n in 1..=N_MAX {
            for q in [FastPaxos::most_classic_faults(n), FastPaxos::most_fast_faults(n)] {
                let (c, f) = (q.classic, q.fast);
                assert!(q.meets_quorum_requirement());
                assert!(worst_overlap(n, &[c, c]) >= 1, "{q:?}");
                assert!(worst_overlap(n, &[c, f]) >= 1, "{q:?}");
                assert!(worst_overlap(n, &[c, f, f]) >= 1, "{q:?}");
                assert!(worst_overlap(n, &[f, f, f]) >= 1, "{q:?}");
                assert!(q.fast_faults() <= q.classic_faults());
                assert!(n > 2 * q.classic_faults() && n > 2 * q.fast_faults() + q.classic_faults());
            }
            let most = FastPaxos::most_classic_faults(n);
            assert_eq!(most.classic, majority(n));
            assert_eq!(most.fast, (3 * n).div_ceil(4), "⌈3N/4⌉");
            let equal = FastPaxos::most_fast_faults(n);
            assert_eq!((equal.classic, equal.fast), (2 * n / 3 + 1, 2 * n / 3 + 1), "⌊2N/3⌋ + 1");
        }
    }

    /// Each choice is tight: a fast quorum one smaller lets a classic quorum
    /// and two fast quorums miss each other, and (with E = F) a quorum one
    /// smaller breaks the requirement too.
    #[test]
    fn fast_paxos_quorums_are_the_smallest_that_work() {
        for n in 2..=N_MAX {
            let most = FastPaxos::most_classic_faults(n);
            let smaller = FastPaxos { fast: most.fast - 1, ..most };
            assert!(!smaller.meets_quorum_requirement(), "{smaller:?}");
            assert_eq!(worst_overlap(n, &[most.classic, most.fast - 1, most.fast - 1]), 0, "n={n}");
            let equal = FastPaxos::most_fast_faults(n);
            let q = equal.fast - 1;
            let shrunk = FastPaxos { classic: q, fast: q, ..equal };
            assert!(!shrunk.meets_quorum_requirement(), "{shrunk:?}");
            assert_eq!(worst_overlap(n, &[q, q, q]), 0, "n={n}");
        }
    }

    /// EPaxos §4.3, §4.4: the sizes, and the intersections recovery needs.
    #[test]
    fn epaxos_quorums_let_recovery_see_a_fast_path_commit() {
        let sizes = |f| {
            let q = EPaxos::tolerating(f);
            (q.replicas, q.fast, q.slow, q.basic_fast())
        };
        assert_eq!(
            [0, 1, 2, 3, 4].map(sizes),
            [(1, 1, 1, 1), (3, 2, 2, 2), (5, 3, 3, 4), (7, 5, 4, 6), (9, 6, 5, 8)]
        );
        assert_eq!(EPaxos::for_replicas(4), None);
        assert_eq!(EPaxos::for_replicas(5), Some(EPaxos::tolerating(2)));
        for f in 0..=(N_MAX - 1) / 2 {
            let q = EPaxos::tolerating(f);
            let n = q.replicas;
            assert_eq!(q.slow, majority(n));
            assert!(worst_overlap(n, &[q.slow, q.slow]) >= 1, "{q:?}");
            assert!(worst_overlap(n, &[q.fast, q.fast]) >= 1, "{q:?}");
            // A recovery quorum that lacks the command leader, among the 2F
            // others, against the fast-path quorum's other members.
            let others = n - 1;
            let witnesses = worst_overlap(others, &[q.slow.min(others), q.fast - 1]);
            assert!(witnesses >= q.recovery_witnesses(), "{q:?}: {witnesses}");
            let basic = worst_overlap(others, &[q.slow.min(others), q.basic_fast() - 1]);
            assert!(basic >= n / 2, "{q:?}: the basic fast path leaves ⌊N/2⌋ witnesses");
        }
    }

    /// PBFT: n = 3f + 1 gives quorums of 2f + 1; for every n, two quorums
    /// share f + 1 replicas, the correct ones can form a quorum, and one
    /// replica less would share only f.
    #[test]
    fn byzantine_quorums_share_a_correct_replica() {
        for f in 0..=16 {
            assert_eq!(byzantine_faults(3 * f + 1), f);
            assert_eq!(byzantine_quorum(3 * f + 1), 2 * f + 1);
        }
        assert_eq!([1, 2, 3, 4, 5, 6, 7].map(byzantine_quorum), [1, 2, 2, 3, 4, 4, 5]);
        for n in 1..=N_MAX {
            let (f, q) = (byzantine_faults(n), byzantine_quorum(n));
            assert!(n > 3 * f && n < 3 * (f + 1) + 1, "f is the largest with n ≥ 3f + 1");
            assert!(worst_overlap(n, &[q, q]) > f, "n={n}: two quorums share f + 1");
            assert!(q <= n - f, "n={n}: the correct replicas make a quorum");
            assert!(worst_overlap(n, &[q - 1, q - 1]) <= f, "n={n}: {} is too few", q - 1);
        }
    }

    #[test]
    fn committed_is_the_quorum_th_highest() {
        assert_eq!(committed([5, 3, 9], 2), Some(5));
        assert_eq!(committed([5, 3, 9], 3), Some(3));
        assert_eq!(committed([5, 3, 9], 1), Some(9));
        assert_eq!(committed([5, 3, 9], 4), None, "fewer voters than the quorum");
        assert_eq!(committed([7, 7, 7, 1, 1], 3), Some(7), "duplicates count once per voter");
        assert_eq!(committed(Vec::<u64>::new(), 1), None);
    }

    #[test]
    fn tally_counts_each_voter_once() {
        let (a, b, c, d, e) = (NodeId(0), NodeId(1), NodeId(2), NodeId(3), NodeId(4));
        let mut tally = Tally::granted_by(a);
        assert!(!tally.grant(a), "a duplicate grant");
        assert_eq!((tally.granted(), tally.outcome(3, 5)), (1, Outcome::Pending));
        assert!(tally.refuse(b));
        assert!(!tally.refuse(b), "a duplicate refusal");
        assert!(!tally.refuse(a), "a grant is final");
        assert!(tally.has_answered(b) && !tally.has_granted(b) && !tally.has_answered(c));
        assert!(tally.refuse(c));
        assert_eq!(tally.outcome(3, 5), Outcome::Pending, "d and e can still make three");
        assert!(tally.refuse(d));
        assert_eq!(tally.outcome(3, 5), Outcome::Lost);
        assert!(tally.grant(b), "a refusal can be revised");
        assert_eq!((tally.granted(), tally.refused()), (2, 2));
        assert!(tally.grant(e));
        assert_eq!(tally.outcome(3, 5), Outcome::Won);
        tally.clear();
        assert_eq!((tally.granted(), tally.refused()), (0, 0));
    }

    /// The commit point as its definition says: the largest acknowledged
    /// value that at least `quorum` acknowledgements reach.
    fn committed_naive(acks: &[u64], quorum: usize) -> Option<u64> {
        acks.iter().copied().filter(|v| acks.iter().filter(|a| *a >= v).count() >= quorum).max()
    }

    /// A cluster size n in `1..=N_MAX` and one random subset of `0..n` per
    /// size that `sizes(n)` lists.
    fn random_quorums(sizes: fn(usize) -> Vec<usize>) -> impl Strategy<Value = (usize, Vec<Vec<usize>>)> {
        (1..=N_MAX).prop_flat_map(move |n| {
            let all: Vec<usize> = (0..n).collect();
            let sets: Vec<_> = sizes(n).into_iter().map(|size| subsequence(all.clone(), size)).collect();
            (Just(n), sets)
        })
    }

    fn intersection(sets: &[Vec<usize>]) -> usize {
        let sets: Vec<BTreeSet<usize>> = sets.iter().map(|s| s.iter().copied().collect()).collect();
        common(&sets)
    }

    proptest! {
        #[test]
        fn committed_matches_the_naive_definition(
            acks in proptest::collection::vec(0u64..12, 0..16),
            quorum in 1usize..18,
        ) {
            let point = committed(acks.iter().copied(), quorum);
            prop_assert_eq!(point, committed_naive(&acks, quorum));
            if let Some(point) = point {
                prop_assert!(acks.iter().filter(|a| **a >= point).count() >= quorum);
                prop_assert!(acks.iter().filter(|a| **a > point).count() < quorum);
            }
        }

        #[test]
        fn any_two_majorities_intersect((_, sets) in random_quorums(|n| vec![majority(n); 2])) {
            prop_assert!(intersection(&sets) >= 1);
        }

        #[test]
        fn fast_paxos_classic_and_two_fast_quorums_intersect(
            (_, sets) in random_quorums(|n| {
                let q = FastPaxos::most_classic_faults(n);
                vec![q.classic, q.fast, q.fast]
            }),
        ) {
            prop_assert!(intersection(&sets) >= 1);
        }

        #[test]
        fn fast_paxos_equal_quorums_intersect_three_ways(
            (_, sets) in random_quorums(|n| vec![FastPaxos::most_fast_faults(n).fast; 3]),
        ) {
            prop_assert!(intersection(&sets) >= 1);
        }

        #[test]
        fn byzantine_quorums_share_f_plus_one(
            (n, sets) in random_quorums(|n| vec![byzantine_quorum(n); 2]),
        ) {
            prop_assert!(intersection(&sets) > byzantine_faults(n));
        }

        #[test]
        fn a_tally_counts_each_voter_once(
            answers in proptest::collection::vec((0u32..7, any::<bool>()), 0..40),
        ) {
            let mut tally = Tally::new();
            for (voter, granted) in &answers {
                if *granted { tally.grant(NodeId(*voter)); } else { tally.refuse(NodeId(*voter)); }
            }
            let granted: BTreeSet<u32> = answers.iter().filter(|(_, g)| *g).map(|(v, _)| *v).collect();
            let answered: BTreeSet<u32> = answers.iter().map(|(v, _)| *v).collect();
            prop_assert_eq!(tally.granted(), granted.len());
            prop_assert_eq!(tally.refused(), answered.len() - granted.len());
            for quorum in 1..=7 {
                let expected = if granted.len() >= quorum {
                    Outcome::Won
                } else if answered.len() - granted.len() > 7 - quorum {
                    Outcome::Lost
                } else {
                    Outcome::Pending
                };
                prop_assert_eq!(tally.outcome(quorum, 7), expected);
            }
        }
    }
}
