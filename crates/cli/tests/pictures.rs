//! Pictures through the real binary: `sim --svg` and `script --svg` draw
//! every message the run counted, and `explore --html` writes one
//! well-formed page whose figures are the exploration's own, with the first
//! violation's diagram when there is one (a `--bug` run) and none when no
//! run violated anything (its positive twin).

mod common;

use common::{json, quorum};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("quorum-pictures-{}-{name}", std::process::id()))
}

/// Elements whose `class` is `class`.
fn count(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants().filter(|n| n.attribute("class") == Some(class)).count()
}

/// The text of the element with `id`.
fn by_id<'a>(doc: &'a roxmltree::Document<'_>, id: &str) -> &'a str {
    let node = doc.descendants().find(|n| n.attribute("id") == Some(id));
    node.and_then(|n| n.text()).unwrap_or_else(|| panic!("no element #{id}"))
}

#[test]
fn sim_svg_draws_every_delivery_and_drop_the_run_counted() {
    let path = tmp("sim.svg");
    let p = path.to_str().unwrap();
    let run = json(&[
        "sim",
        "--protocol",
        "raft",
        "--nodes",
        "3",
        "--ops",
        "30",
        "--seed",
        "4",
        "--faults",
        "partition,loss",
        "--svg",
        p,
        "--json",
    ]);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(count(&doc, "msg") as u64, run["messages_delivered"].as_u64().unwrap());
    assert_eq!(count(&doc, "msg-drop") as u64, run["messages_dropped"].as_u64().unwrap());
    assert!(run["messages_dropped"].as_u64().unwrap() > 0, "loss and partitions drop messages");
    assert_eq!(count(&doc, "persist") as u64, run["persists"].as_u64().unwrap());
    std::fs::remove_file(&path).ok();
}

#[test]
fn script_svg_draws_the_paxos_walkthrough_and_a_bad_window_is_refused() {
    let path = tmp("paxos.svg");
    let p = path.to_str().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../protocols/scenarios/paxos/walkthrough.txt");
    let out = quorum(&["script", script, "--svg", p]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert!(count(&doc, "msg") > 20 && count(&doc, "req") >= 2 && count(&doc, "mark") >= 3);
    let windowed = quorum(&["script", script, "--svg", p, "--svg-window", "10..20"]);
    assert!(windowed.status.success());
    let part = std::fs::read_to_string(&path).unwrap();
    let part = roxmltree::Document::parse(&part).expect("well-formed SVG");
    assert!(count(&part, "msg") < count(&doc, "msg"), "a window draws less");
    let bad = quorum(&["script", script, "--svg", p, "--svg-window", "20..10"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1, "one line");
    std::fs::remove_file(&path).ok();
}

/// The page as XML (its `<!DOCTYPE html>` allowed).
fn xhtml(page: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(page, options).expect("well-formed XHTML")
}

/// Explore with `--json` and `--html` at once: the page's figures are the
/// JSON's.
fn explore_page(args: &[&str], name: &str) -> (serde_json::Value, String) {
    let path = tmp(name);
    let mut all = vec!["explore", "--json", "--html", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let report = json(&all);
    let page = std::fs::read_to_string(&path).expect("the page is written");
    std::fs::remove_file(&path).ok();
    (report, page)
}

#[test]
fn explore_html_of_a_bug_shows_its_violations_and_the_first_ones_diagram() {
    let (report, page) = explore_page(
        &["--protocol", "raft", "--bug", "stale-read", "--nodes", "3", "--seeds", "12"],
        "bug.html",
    );
    let doc = xhtml(&page);
    let violating = report["violating_runs"].as_u64().unwrap();
    assert!(violating > 0, "the negative control violates");
    assert_eq!(by_id(&doc, "violating-runs"), violating.to_string());
    assert_eq!(by_id(&doc, "runs"), "12");
    let stale = report["violations"]["linearizability"].as_u64().unwrap();
    assert_eq!(by_id(&doc, "violations-linearizability"), stale.to_string());
    for s in report["properties"]["sometimes"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        assert_eq!(by_id(&doc, &format!("reached-{name}")), s["reached"].to_string());
    }
    assert_eq!(by_id(&doc, "replay"), report["first"]["replay"].as_str().unwrap());
    let diagram = doc.descendants().find(|n| n.attribute("id") == Some("diagram")).expect("a diagram");
    let arrows = diagram.descendants().filter(|n| n.attribute("class") == Some("msg")).count();
    assert!(arrows > 0, "the first violation's run is drawn");
    let plots = doc.descendants().filter(|n| n.attribute("class") == Some("plot")).count();
    assert_eq!(plots, 3, "latency p50, p99 and failover");
}

#[test]
fn explore_html_of_a_correct_run_shows_no_violation_and_no_diagram() {
    let (report, page) = explore_page(&["--protocol", "raft", "--nodes", "3", "--seeds", "12"], "ok.html");
    let doc = xhtml(&page);
    assert_eq!(report["violating_runs"].as_u64(), Some(0));
    assert_eq!(by_id(&doc, "violating-runs"), "0");
    assert_eq!(by_id(&doc, "verdict"), "no violation");
    assert!(by_id(&doc, "first").starts_with("None"));
    assert!(doc.descendants().all(|n| n.attribute("id") != Some("diagram")));
    assert_eq!(count(&doc, "msg"), 0);
}
