//! `quorum check`: judge a history file against a model. Thin: read the
//! file, let `quorum-check` tell its format and model, check, print.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use quorum_check::models::{self, Model};
use quorum_check::parse::{read_history, Format, RecordedHistory};
use quorum_check::{check_recorded, Outcome, Verdict};

use crate::UsageError;

#[derive(Args)]
#[command(after_help = "\
Formats (one op per line; told apart by the first line unless --format says):
  json          our JSON lines, as `quorum sim --history` writes them:
                {\"type\":\"invoke\",\"f\":\"write\",\"key\":\"a\",\"value\":1,\"process\":0}
  edn           Jepsen op maps, with keys and values of any type (integers, strings,
                keywords, vectors, sets); :time orders the ops when every op has one:
                {:type :invoke, :f :append, :key :x, :value 3, :process 0, :time 120}
  porcupine-kv  Porcupine's key-value logs (:get, :put, :append on strings; a key never
                written reads \"\", and append concatenates)

Models and their ops (without --model, the one that fits the ops seen, named in the output):
  register, cas-register  read, write, cas on one register (keys ignored)
  kv                      read, write, cas, append (strings) on a register per key
  list-append             append, read (returns the list); set: add, read (returns the set)
  counter                 add or increment, read; queue: enqueue, dequeue (FIFO)
  mutex                   acquire, release
Every model but register and cas-register checks each :key alone.

Exit codes: 0 linearizable, 1 not (with the smallest set of ops that shows it),
2 unreadable history or usage error, 3 unknown (the search budget ran out).")]
pub(crate) struct CheckArgs {
    /// History file: our JSON lines, Jepsen EDN op maps, or Porcupine's key-value log, one op per line.
    file: PathBuf,
    /// The model to check against [default: the one that fits the ops in the file].
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// The file's format.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Most search states to explore before answering `unknown` (exit code 3).
    #[arg(long, default_value_t = 50_000_000)]
    max_states: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    /// One register: read and write (keys ignored).
    Register,
    /// One register: read, write, cas (keys ignored).
    CasRegister,
    /// Independent cas registers, one per key; append concatenates strings.
    Kv,
    /// One list per key: append an element, read the whole list.
    ListAppend,
    /// One set per key: add, read.
    Set,
    /// One counter per key: add (or increment), read.
    Counter,
    /// One FIFO queue per key: enqueue, dequeue.
    Queue,
    /// One lock per key: acquire, release.
    Mutex,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// Tell from the file.
    Auto,
    /// Our JSON lines.
    Json,
    /// Jepsen EDN op maps.
    Edn,
    /// Porcupine's key-value log.
    PorcupineKv,
}

pub(crate) fn check(args: CheckArgs) -> Result<ExitCode, UsageError> {
    let path = args.file.display();
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| UsageError(format!("cannot read {path}: {e}")))?;
    let format = match args.format {
        FormatArg::Auto => Format::Auto,
        FormatArg::Json => Format::Json,
        FormatArg::Edn => Format::Edn,
        FormatArg::PorcupineKv => Format::PorcupineKv,
    };
    let history = read_history(&text, format).map_err(|e| UsageError(format!("{path}: {e}")))?;
    let (model, chosen) = match args.model {
        Some(model) => (model_of(model), None),
        None => {
            let choice = models::choose(&history).map_err(|e| UsageError(format!("{path}: {e}")))?;
            (choice.model, Some(choice.reason))
        }
    };
    let verdict =
        check_recorded(&history, model, args.max_states).map_err(|e| UsageError(format!("{path}: {e}")))?;
    let notes = notes(&history, format, model, chosen);
    Ok(print(&history, &verdict, &notes, args.max_states))
}

fn model_of(model: ModelArg) -> Model {
    match model {
        ModelArg::Register => Model::Register,
        ModelArg::CasRegister => Model::CasRegister,
        ModelArg::Kv => Model::Kv,
        ModelArg::ListAppend => Model::ListAppend,
        ModelArg::Set => Model::Set,
        ModelArg::Counter => Model::Counter,
        ModelArg::Queue => Model::Queue,
        ModelArg::Mutex => Model::Mutex,
    }
}

/// What the reader should know about how the file was read: the model and
/// format when they were chosen for it, and a reordering by time.
fn notes(history: &RecordedHistory, format: Format, model: Model, chosen: Option<String>) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(reason) = chosen {
        let detected = if format == Format::Auto { ", detected" } else { "" };
        notes.push(format!(
            "model {} ({reason}; --model to choose another), format {}{detected}",
            model.name(),
            history.format.name()
        ));
    }
    if history.reordered_by_time {
        notes.push("the ops were put in :time order (the file was not)".to_string());
    }
    notes
}

fn print(history: &RecordedHistory, verdict: &Verdict, notes: &[String], max_states: u64) -> ExitCode {
    let verdict_line = match verdict.outcome {
        Outcome::Linearizable => "linearizable",
        Outcome::NotLinearizable => "not linearizable",
        Outcome::Unknown => "unknown",
    };
    println!("{verdict_line}");
    for note in notes {
        println!("{note}");
    }
    match verdict.outcome {
        Outcome::Linearizable => ExitCode::SUCCESS,
        Outcome::NotLinearizable => {
            println!("{}", verdict.explanation);
            println!("smallest set of operations that shows it:");
            for &position in &verdict.witness {
                println!("{}", history.ops[position].to_json_line());
            }
            ExitCode::from(1)
        }
        Outcome::Unknown => {
            println!(
                "gave up after {} states (raise --max-states, now {max_states})",
                verdict.states_explored
            );
            ExitCode::from(3)
        }
    }
}
