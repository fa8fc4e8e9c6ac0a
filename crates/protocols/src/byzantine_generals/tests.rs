//! The pure parts of the Byzantine generals: the majority with its
//! default, the paper's message counts, SM's signatures against a forger,
//! and the settings refused.

use quorum_core::byzantine::Keys;
use quorum_core::{NodeId, Protocol};

use super::om::{Om, Order};
use super::sm::{content, Signed, Sm};
use super::*;

#[test]
fn majority_breaks_ties_to_retreat() {
    assert_eq!(majority(&[ATTACK, ATTACK, RETREAT]), ATTACK);
    assert_eq!(majority(&[ATTACK, RETREAT]), RETREAT, "a tie is no majority: the default");
    assert_eq!(majority(&[]), RETREAT);
}

/// §3: OM(m) sends (n − 1) + (n − 1)(n − 2) + ... messages; OM(1) with
/// four generals sends 3 + 6 = 9.
#[test]
fn om_message_counts_are_the_papers() {
    assert_eq!(Om::messages(4, 1), 9);
    assert_eq!(Om::messages(4, 0), 3);
    assert_eq!(Om::messages(7, 2), 6 + 30 + 120);
    assert_eq!(Sm::messages(4, 1), 9);
    assert_eq!(Sm::messages(4, 2), 9, "a loyal commander's value is relayed once by each lieutenant");
}

/// A4: a traitor can re-sign only his own signature. As commander he signs
/// any order; as a relay, the order he changes no longer verifies.
#[test]
fn a_forged_relay_fails_verification_and_a_traitor_commander_signs_freely() {
    let (a, c) = (Keys::new(9, NodeId(0)), Keys::new(9, NodeId(2)));
    let by_a = a.sign(content(0, ATTACK, &[NodeId(0)]));
    let by_c = c.sign(content(0, ATTACK, &[NodeId(0), NodeId(2)]));
    let relayed = Signed { value: ATTACK, chain: vec![by_a, by_c] };
    let forged = <Sm as Algorithm>::forge(0, &relayed, RETREAT, &c).expect("he may try");
    assert!(!c.verify(&forged.chain[0], content(0, RETREAT, &[NodeId(0)])), "A never signed RETREAT");
    assert!(c.verify(&forged.chain[1], content(0, RETREAT, &[NodeId(0), NodeId(2)])), "C's own mark is good");
    let ordered = Signed { value: ATTACK, chain: vec![by_a] };
    let lie = <Sm as Algorithm>::forge(0, &ordered, RETREAT, &a).expect("a commander signs what he likes");
    assert!(a.verify(&lie.chain[0], content(0, RETREAT, &[NodeId(0)])));
    assert_eq!(
        <Sm as Algorithm>::forge(0, &ordered, RETREAT, &c),
        None,
        "C holds no signature of his own here"
    );
    let oral = Order { path: vec![NodeId(0)], value: ATTACK };
    assert_eq!(<Om as Algorithm>::forge(0, &oral, RETREAT, &c).map(|o| o.value), Some(RETREAT));
}

#[test]
fn bad_settings_are_refused_in_one_line() {
    let nodes = |n: u32| (0..n).map(NodeId).collect::<Vec<_>>();
    let om = |c: &Config, n| OralMessages::validate(c, &nodes(n));
    assert!(om(&Config::default(), 4).is_ok());
    assert!(om(&Config { m: 2, ..Config::default() }, 3).unwrap_err().0.contains("m + 2"));
    assert!(om(&Config { votes: Votes::Bits("10".into()), ..Config::default() }, 4).is_err());
    assert!(om(&Config { bug: Some(Bug::SkipVerification), ..Config::default() }, 4).is_err(), "SM's bug");
    let sm = |c: &Config, n| SignedMessages::validate(c, &nodes(n));
    assert!(sm(&Config { bug: Some(Bug::SkipVerification), ..Config::default() }, 3).is_ok());
    assert_eq!(OralMessages::traitors_max(&Config::default(), 4), 1);
    assert_eq!(OralMessages::traitors_max(&Config::default(), 3), 0, "3 generals cannot bear one traitor");
    assert_eq!(SignedMessages::traitors_max(&Config::default(), 3), 1, "with signatures they can");
    assert_eq!(SignedMessages::traitors_max(&Config { m: 3, ..Config::default() }, 5), 3);
}
