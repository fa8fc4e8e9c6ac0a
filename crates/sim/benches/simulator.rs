//! Simulator throughput: simulated events per wall-clock second for one
//! 5-node `abd` run under all faults. Run with `cargo bench -p quorum-sim`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quorum_protocols::replication::abd::Abd;
use quorum_sim::SimConfig;

fn config(seed: u64) -> SimConfig {
    let mut config = SimConfig::new("abd");
    config.seed = seed;
    config.cas = false;
    config.faults = "all".parse().expect("valid");
    config
}

fn bench(c: &mut Criterion) {
    let events = quorum_sim::run::<Abd>(&config(1), &Default::default()).expect("valid").events;
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("abd_5_nodes_all_faults_one_run", |b| {
        b.iter(|| quorum_sim::run::<Abd>(&config(1), &Default::default()).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
