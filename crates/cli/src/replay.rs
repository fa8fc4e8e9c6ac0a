//! Replays as command lines: the simulator hands back a structured
//! [`Replay`] (the run's parameters with its schedule made explicit); this
//! prints the `quorum sim ...` line that reproduces it, naming every
//! setting that differs from the command line's defaults.

use std::fmt::Write as _;

use quorum_sim::{ProtocolChoice, Replay, SimConfig};

/// The `--protocol ... [--variant V] [--bug B] [--config JSON]` arguments.
pub fn protocol_args(choice: &ProtocolChoice) -> String {
    let mut args = format!("--protocol {}", choice.name);
    if let Some(variant) = &choice.variant {
        let _ = write!(args, " --variant {variant}");
    }
    if let Some(bug) = &choice.bug {
        let _ = write!(args, " --bug {bug}");
    }
    if !choice.config.is_empty() {
        let json = serde_json::Value::Object(choice.config.clone());
        let _ = write!(args, " --config '{json}'");
    }
    args
}

/// The one-line command that replays `replay`.
pub fn command(replay: &Replay) -> String {
    let config = &replay.config;
    let mut cmd = format!(
        "quorum sim {} --nodes {} --seed {} --ops {}",
        protocol_args(&config.protocol),
        config.nodes,
        config.seed,
        config.ops
    );
    let defaults = SimConfig::new("");
    let mut flag = |name: &str, differs: bool, value: String| {
        if differs {
            let _ = write!(cmd, " --{name} {value}");
        }
    };
    flag("clients", config.clients != defaults.clients, config.clients.to_string());
    flag("keys", config.keys != defaults.keys, config.keys.to_string());
    flag("ops-per-key", config.ops_per_key != defaults.ops_per_key, config.ops_per_key.to_string());
    let latency = (config.latency_min_us, config.latency_max_us);
    flag(
        "latency-us",
        latency != (defaults.latency_min_us, defaults.latency_max_us),
        format!("{}-{}", latency.0, latency.1),
    );
    flag("max-down", config.max_down != SimConfig::minority(config.nodes), config.max_down.to_string());
    flag("retries", config.retries != 0, config.retries.to_string());
    flag(
        "client-timeout-ms",
        config.client_timeout_ms != defaults.client_timeout_ms,
        config.client_timeout_ms.to_string(),
    );
    flag("safety-ms", config.safety_ms != defaults.safety_ms, config.safety_ms.to_string());
    flag("liveness-ms", config.liveness_ms != defaults.liveness_ms, config.liveness_ms.to_string());
    flag("workload", config.workload != defaults.workload, config.workload.name().to_string());
    flag("clock-skew-ms", config.clock_skew_ms != defaults.clock_skew_ms, config.clock_skew_ms.to_string());
    if !config.byzantine.is_empty() {
        let traitors: Vec<String> = config.byzantine.iter().map(|n| n.0.to_string()).collect();
        let _ = write!(cmd, " --byzantine {} --strategy {}", traitors.join(","), config.strategy);
    }
    let schedule = config.schedule.clone().unwrap_or_default();
    let _ = write!(cmd, " --schedule '{schedule}'");
    cmd
}
