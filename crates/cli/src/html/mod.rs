//! `quorum check --html`: one self-contained HTML page (inline CSS and
//! script, no network) showing a history the way Porcupine's visualisation
//! does: for each key, one row per process, each op a bar from its invoke to
//! its completion, numbered in the order the checker linearized it. Where a
//! key is not linearizable the numbers are the longest linearizable sequence
//! the search found and the witness's ops are outlined in red. Hovering an
//! op shows its details and lights up the ops linearized up to it; the
//! buttons and Ctrl+wheel zoom the time axis.
//!
//! The page is data plus a fixed viewer: this module turns the history and
//! the verdict into JSON (the events' positions in the history are the time
//! axis, as in Porcupine), and `viewer.js` and `viewer.css`, included as
//! they are, draw it in the browser. Presentation only: the orders come
//! from `quorum_check` ([`quorum_check::Linearization`]).

use std::collections::{BTreeMap, BTreeSet};

use quorum_check::datum::Datum;
use quorum_check::parse::RecordedHistory;
use quorum_check::{OpType, Outcome, Verdict};
use serde_json::{json, Value as Json};

const STYLE: &str = include_str!("viewer.css");
const SCRIPT: &str = include_str!("viewer.js");

/// The page for `history` and its `verdict` (checked with
/// `Options::linearizations`), titled `title`.
pub(crate) fn page(title: &str, history: &RecordedHistory, verdict: &Verdict) -> String {
    let data = data(title, history, verdict);
    // `</` may not appear inside a script element.
    let data = data.to_string().replace("</", "<\\/");
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}: quorum check</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <div id=\"viewer\"></div>\n\
         <script type=\"application/json\" id=\"history\">{data}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Linearizable => "linearizable",
        Outcome::NotLinearizable => "not linearizable",
        Outcome::Unknown => "unknown",
    }
}

/// The JSON the viewer draws: the verdict, the keys (objects) with their
/// outcome, and every op with its process, key, bar, rank and witness flag.
fn data(title: &str, history: &RecordedHistory, verdict: &Verdict) -> Json {
    let keyed = verdict.model.is_keyed();
    let group_of = |op_key: &Option<Datum>| if keyed { op_key.clone() } else { None };
    // Every key with an op, and those the checker linearized, in key order.
    let mut groups: BTreeMap<Option<Datum>, usize> = BTreeMap::new();
    for key in history
        .ops
        .iter()
        .map(|op| group_of(&op.key))
        .chain(verdict.linearizations.iter().map(|l| l.key.clone()))
    {
        groups.entry(key).or_insert(0);
    }
    for (index, slot) in groups.values_mut().enumerate() {
        *slot = index;
    }
    let mut rank: BTreeMap<usize, usize> = BTreeMap::new();
    let mut keys: Vec<Json> = groups
        .keys()
        .map(|key| json!({"name": key_name(key, keyed), "outcome": "linearizable", "linearized": 0}))
        .collect();
    for linearization in &verdict.linearizations {
        let group = groups[&linearization.key];
        keys[group]["outcome"] = json!(outcome_name(linearization.outcome));
        keys[group]["linearized"] = json!(linearization.order.len());
        for (at, &call) in linearization.order.iter().enumerate() {
            rank.insert(call, at + 1);
        }
    }
    let witness: BTreeSet<usize> = verdict.witness.iter().copied().collect();
    let ops = ops(history, &rank, &witness, |key| groups[&group_of(key)]);
    json!({
        "title": title,
        "verdict": outcome_name(verdict.outcome),
        "explanation": verdict.explanation,
        "model": verdict.model.name(),
        "format": history.format.name(),
        "events": history.ops.len(),
        "keys": keys,
        "ops": ops,
    })
}

fn key_name(key: &Option<Datum>, keyed: bool) -> String {
    match key {
        Some(key) => format!("key {key}"),
        None if keyed => "no key".to_string(),
        None => "the object".to_string(),
    }
}

/// One entry per invoke: its completion found by process, as the reader
/// guarantees every completion has a pending invoke.
fn ops(
    history: &RecordedHistory,
    rank: &BTreeMap<usize, usize>,
    witness: &BTreeSet<usize>,
    group: impl Fn(&Option<Datum>) -> usize,
) -> Vec<Json> {
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    let mut ops: Vec<Json> = Vec::new();
    for (position, op) in history.ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            pending.insert(op.process, ops.len());
            ops.push(json!({
                "process": op.process,
                "f": op.f.name(),
                "key": op.key.as_ref().map(Datum::to_string),
                "value": op.value.to_string(),
                "type": "pending",
                "start": position,
                "end": null,
                "line": op.line,
                "group": group(&op.key),
                "rank": rank.get(&position),
                "witness": witness.contains(&position),
            }));
        } else if let Some(at) = pending.remove(&op.process) {
            let entry = &mut ops[at];
            entry["type"] = json!(op.kind.name());
            entry["end"] = json!(position);
            entry["result"] = json!(op.value.to_string());
            entry["end_line"] = json!(op.line);
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_check::parse::{read_history, Format};
    use quorum_check::{check_recorded_with, Model, Options};

    fn verdict(text: &str, model: Model) -> (RecordedHistory, Verdict) {
        let history = read_history(text, Format::Auto).expect("parses");
        let options = Options { max_states: 100_000, witness: true, linearizations: true };
        let verdict = check_recorded_with(&history, model, &options).expect("checks");
        (history, verdict)
    }

    #[test]
    fn every_op_gets_its_rank_and_the_witness_is_marked() {
        let (history, verdict) = verdict(
            "{:type :invoke :f :write :value 1 :process 0}
             {:type :ok :f :write :value 1 :process 0}
             {:type :invoke :f :write :value 2 :process 1}
             {:type :ok :f :write :value 2 :process 1}
             {:type :invoke :f :read :process 2}
             {:type :ok :f :read :value 1 :process 2}",
            Model::Register,
        );
        let data = data("t", &history, &verdict);
        let ops = data["ops"].as_array().expect("ops");
        assert_eq!(ops.len(), 3);
        // The two writes linearize; the stale read cannot follow them.
        let ranks: Vec<Json> = ops.iter().map(|o| o["rank"].clone()).collect();
        assert_eq!(ranks, [json!(1), json!(2), Json::Null]);
        assert!(ops.iter().all(|o| o["witness"] == json!(true)));
        assert_eq!(data["keys"][0]["outcome"], json!("not linearizable"));
    }

    #[test]
    fn a_linearizable_history_ranks_every_ok_op_and_marks_no_witness() {
        let (history, verdict) = verdict(
            "{:type :invoke :f :write :value 1 :process 0 :key \"a\"}
             {:type :invoke :f :read :process 1 :key \"a\"}
             {:type :ok :f :read :value 1 :process 1 :key \"a\"}
             {:type :ok :f :write :value 1 :process 0 :key \"a\"}
             {:type :invoke :f :read :process 1 :key \"b\"}
             {:type :ok :f :read :value nil :process 1 :key \"b\"}",
            Model::Kv,
        );
        let data = data("t", &history, &verdict);
        let ops = data["ops"].as_array().expect("ops");
        let ranks: Vec<Json> = ops.iter().map(|o| o["rank"].clone()).collect();
        assert_eq!(ranks, [json!(1), json!(2), json!(1)]);
        assert!(ops.iter().all(|o| o["witness"] == json!(false)));
        assert_eq!(data["keys"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_data_cannot_close_the_script_element() {
        let (history, verdict) = verdict(
            "{:type :invoke :f :write :value \"</script><b>\" :process 0}
             {:type :ok :f :write :value \"</script><b>\" :process 0}",
            Model::Register,
        );
        let page = page("<t>", &history, &verdict);
        assert_eq!(page.matches("</script>").count(), 2, "only the two script elements close");
        assert!(page.contains("<title>&lt;t&gt;: quorum check</title>"));
    }
}
