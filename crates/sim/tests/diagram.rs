//! Space-time diagrams are drawn from the run's own record, and every
//! message, drop and persist the run counted is drawn once: each test
//! counts the SVG's elements against the run's counters (or a script's
//! printed lines), so a recorder that misses an event fails it.

use quorum_core::KvStore;
use quorum_protocols::paxos::single::Paxos;
use quorum_protocols::raft::Raft;
use quorum_sim::diagram::svg::{render, Options};
use quorum_sim::diagram::{Recording, What};
use quorum_sim::script::{parse_blocks, Scripted};
use quorum_sim::{run_with, Capture, FaultSet, KvWorkload, RunOutcome, SimConfig};

/// Elements of the SVG whose `class` is `class`.
fn count(svg: &str, class: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("the diagram is well-formed XML");
    doc.descendants().filter(|n| n.attribute("class") == Some(class)).count()
}

fn raft_run(seed: u64, faults: &str, capture: Capture) -> RunOutcome {
    let mut config = SimConfig::new("raft");
    config.seed = seed;
    config.nodes = 3;
    config.ops = 20;
    config.faults = faults.parse::<FaultSet>().unwrap();
    config.safety_ms = 1500;
    config.liveness_ms = 3000;
    run_with::<Raft<KvStore>, KvWorkload>(&config, &Default::default(), capture).expect("valid settings")
}

fn draw(recording: &Recording) -> String {
    render(recording, &Options { title: "test".into(), window: None })
}

#[test]
fn every_delivery_drop_and_persist_of_a_run_is_drawn_once() {
    let mut faults_seen = 0;
    for seed in 0..4 {
        let outcome = raft_run(seed, "crash,partition,loss,dup", Capture::RECORD);
        let svg = draw(outcome.recording.as_ref().expect("recorded"));
        assert!(outcome.messages_delivered > 100, "a run with traffic");
        assert_eq!(
            count(&svg, "msg") as u64,
            outcome.messages_delivered,
            "seed {seed}: one arrow per delivery"
        );
        assert_eq!(
            count(&svg, "msg-drop") as u64,
            outcome.messages_dropped,
            "seed {seed}: one cross per drop"
        );
        assert_eq!(count(&svg, "persist") as u64, outcome.persists, "seed {seed}: one square per persist");
        assert!(count(&svg, "role") > 0, "raft's roles are drawn");
        assert!(count(&svg, "req") > 0 && count(&svg, "reply") > 0, "client requests and replies");
        faults_seen += count(&svg, "crash") + count(&svg, "partition");
    }
    assert!(faults_seen > 0, "some seed crashed a node or cut the network");
}

/// The negative control: a record missing one delivery draws one arrow
/// fewer, so the counts above can fail.
#[test]
fn a_record_missing_a_delivery_draws_one_arrow_fewer() {
    let outcome = raft_run(1, "none", Capture::RECORD);
    let mut recording = outcome.recording.expect("recorded");
    let svg = draw(&recording);
    let (full, in_flight) = (count(&svg, "msg"), count(&svg, "msg-inflight"));
    let at = recording.events.iter().position(|e| matches!(e.what, What::Deliver { .. })).unwrap();
    recording.events.remove(at);
    let svg = draw(&recording);
    assert_eq!(count(&svg, "msg"), full - 1);
    assert_eq!(count(&svg, "msg-inflight"), in_flight + 1, "its send is now a message never delivered");
}

/// Recording changes nothing about the run, and is not kept unless asked.
#[test]
fn recording_does_not_change_the_run() {
    let plain = raft_run(2, "all", Capture::NONE);
    let recorded = raft_run(2, "all", Capture::RECORD);
    assert!(plain.recording.is_none());
    assert_eq!(plain.events, recorded.events);
    assert_eq!(plain.messages_sent, recorded.messages_sent);
    assert_eq!(plain.violations, recorded.violations);
    assert_eq!(plain.history_json_lines(), recorded.history_json_lines());
}

#[test]
fn a_window_draws_only_its_part() {
    let outcome = raft_run(3, "none", Capture::RECORD);
    let recording = outcome.recording.expect("recorded");
    let all = count(&draw(&recording), "msg");
    // The window ends as a message is sent: it is cut at the window's edge.
    let end = recording
        .events
        .iter()
        .find(|e| e.at > 200_000 && matches!(e.what, What::Send { .. }))
        .expect("raft sends after 200 ms")
        .at;
    let part = render(&recording, &Options { title: String::new(), window: Some((0, end)) });
    let (inside, crossing) = (count(&part, "msg"), count(&part, "msg-inflight"));
    assert!(inside > 0 && inside < all, "{inside} of {all} arrows in the first {end} µs");
    let delivered_inside = recording.window(0, end).count(|w| matches!(w, What::Deliver { .. }));
    assert_eq!(inside, delivered_inside);
    assert!(crossing > 0, "messages sent near the end of the window are cut at its edge");
    let empty = render(&recording, &Options { title: String::new(), window: Some((u64::MAX - 1, u64::MAX)) });
    assert_eq!(count(&empty, "msg"), 0);
}

/// A script's diagram: each message it printed as sent is drawn once, as
/// delivered, dropped or still in flight.
#[test]
fn a_scripts_sends_are_each_drawn_once() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocols/scenarios/paxos/walkthrough.txt"
    ))
    .unwrap();
    let blocks = parse_blocks(&text).unwrap();
    let mut cluster = Scripted::<Paxos<KvStore>>::new(Default::default());
    cluster.record();
    let outputs = cluster.run_blocks(&blocks).unwrap();
    let printed = outputs.join("");
    let sends = printed.lines().filter(|l| l.contains(" -> ") && !l.contains("(dropped")).count();
    let lost_on_arrival =
        printed.lines().filter(|l| l.contains("(dropped: ") && l.contains("is crashed")).count();
    let persists = printed.lines().filter(|l| l.contains(" persist ")).count();
    let svg = draw(&cluster.take_recording().expect("recorded"));
    let drawn = count(&svg, "msg") + count(&svg, "msg-inflight") + count(&svg, "msg-drop");
    assert!(sends > 20, "the walkthrough sends");
    assert_eq!(drawn, sends, "{lost_on_arrival} of them lost at a crashed node");
    assert_eq!(count(&svg, "persist"), persists);
    assert!(count(&svg, "req") >= 2, "two proposals");
    assert!(count(&svg, "mark") >= 3, "decisions are marked");
}
