//! `--svg` and `--svg-window` of `quorum sim` and `quorum script`: a run's
//! space-time diagram (`quorum_sim::diagram`) written to a file.

use std::path::PathBuf;

use clap::Args;
use quorum_sim::diagram::{svg, Clock, Recording};

use crate::UsageError;

#[derive(Args, Clone, Debug, Default)]
pub(crate) struct SvgArgs {
    /// Write the run's space-time diagram as SVG: nodes as lines in time, messages as arrows (lost ones
    /// crossed), persists, timers, crashes, restarts, partitions, client requests and replies, roles.
    #[arg(long)]
    pub(crate) svg: Option<PathBuf>,
    /// Draw only part of the run: `FROM..TO` in simulated ms for `sim` (e.g. 1200..1900), in steps for
    /// `script` (either end may be left out: `..40`, `100..`).
    #[arg(long, requires = "svg")]
    pub(crate) svg_window: Option<String>,
}

impl SvgArgs {
    pub(crate) fn wanted(&self) -> bool {
        self.svg.is_some()
    }

    /// The window in the recording's clock (µs for a run, steps for a
    /// script), checked before anything runs.
    pub(crate) fn window(&self, clock: Clock) -> Result<Option<(u64, u64)>, UsageError> {
        let Some(text) = &self.svg_window else { return Ok(None) };
        let bad = || UsageError(format!("--svg-window takes FROM..TO (e.g. 100..250), got '{text}'"));
        let (from, to) = text.split_once("..").ok_or_else(bad)?;
        let scale = |v: &str, default: u64| -> Result<u64, UsageError> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(default);
            }
            match clock {
                Clock::Micros => {
                    let ms: f64 = v.parse().map_err(|_| bad())?;
                    (ms.is_finite() && ms >= 0.0).then_some((ms * 1000.0).round() as u64).ok_or_else(bad)
                }
                Clock::Steps => v.parse().map_err(|_| bad()),
            }
        };
        let (from, to) = (scale(from, 0)?, scale(to, u64::MAX)?);
        if from > to {
            return Err(bad());
        }
        Ok(Some((from, to)))
    }

    /// Draw `recording` under `title` into the `--svg` file; one line on
    /// stderr says what it holds.
    pub(crate) fn write(&self, recording: &Recording, title: String) -> Result<(), UsageError> {
        let Some(path) = &self.svg else { return Ok(()) };
        let window = self.window(recording.clock)?;
        let picture = svg::render(recording, &svg::Options { title, window });
        crate::write_file(path, &picture)?;
        let shown = window.map_or(recording.events.len(), |(a, b)| recording.window(a, b).events.len());
        eprintln!("wrote {} ({shown} events, {} bytes)", path.display(), picture.len());
        Ok(())
    }
}
