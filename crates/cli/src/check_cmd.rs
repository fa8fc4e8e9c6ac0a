//! `quorum check`: judge a history file against a model. Thin: read the
//! file, let `quorum-check` tell its format and model, check, print.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use quorum_check::models::{self, Model};
use quorum_check::parse::{read_history, Format, RecordedHistory};
use quorum_check::{check_recorded_with, Options, Outcome, Verdict};

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
  jepsen-log    Jepsen's text log, one op per jepsen.util line (other lines skipped):
                INFO  jepsen.util - 3	:invoke	:cas	[1 4]

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
    /// Do not shrink a failure to the smallest set of ops that shows it (the
    /// slow part of a failing check): print the verdict only.
    #[arg(long)]
    no_witness: bool,
    /// Print to stderr the time of each phase (parse, verdict, witness), the
    /// best of 3 runs of each; the witness time is that of the check with
    /// the witness minus that of the check without.
    #[arg(long)]
    time: bool,
    /// Write the history, its linearization (or, when there is none, the
    /// longest linearizable sequence and the witness) as one self-contained
    /// HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
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
    /// Jepsen's text log (jepsen.util lines).
    JepsenLog,
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
        FormatArg::JepsenLog => Format::JepsenLog,
    };
    let history = read_history(&text, format).map_err(|e| UsageError(format!("{path}: {e}")))?;
    let (model, chosen) = match args.model {
        Some(model) => (model_of(model), None),
        None => {
            let choice = models::choose(&history).map_err(|e| UsageError(format!("{path}: {e}")))?;
            (choice.model, Some(choice.reason))
        }
    };
    let options = Options { max_states: args.max_states, witness: !args.no_witness, linearizations: false };
    let verdict =
        check_recorded_with(&history, model, &options).map_err(|e| UsageError(format!("{path}: {e}")))?;
    if args.time {
        print_times(&text, format, &history, model, &options, verdict.outcome);
    }
    if let Some(out) = &args.html {
        let options = Options { linearizations: true, ..options };
        let verdict =
            check_recorded_with(&history, model, &options).map_err(|e| UsageError(format!("{path}: {e}")))?;
        let title =
            args.file.file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
        let page = crate::html::page(&title, &history, &verdict);
        std::fs::write(out, page).map_err(|e| UsageError(format!("cannot write {}: {e}", out.display())))?;
    }
    let notes = notes(&history, format, model, chosen);
    Ok(print(&history, &verdict, &notes, args.max_states))
}

/// `--time`: each phase's best of 3 runs, on stderr. The search is
/// deterministic, so the check with the witness repeats the verdict's work
/// exactly and the difference is the witness's.
fn print_times(
    text: &str,
    format: Format,
    history: &RecordedHistory,
    model: Model,
    options: &Options,
    outcome: Outcome,
) {
    fn best(mut run: impl FnMut()) -> Duration {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .min()
            .expect("three runs")
    }
    let parse = best(|| drop(read_history(text, format)));
    let bare = Options { witness: false, ..*options };
    let verdict = best(|| drop(check_recorded_with(history, model, &bare)));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let witness = if outcome != Outcome::NotLinearizable {
        "- (none to find)".to_string()
    } else if options.witness {
        let full = best(|| drop(check_recorded_with(history, model, options)));
        format!("{:.3} ms", ms(full.saturating_sub(verdict)))
    } else {
        "skipped (--no-witness)".to_string()
    };
    eprintln!(
        "time: parse {:.3} ms, verdict {:.3} ms, witness {witness} (best of 3 runs each)",
        ms(parse),
        ms(verdict)
    );
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
