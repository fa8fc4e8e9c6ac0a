//! Linearizability checker throughput on a 10,000-op, 8-client, 8-key
//! history (with real concurrency, a few info and failed ops), linearizable
//! and with one injected stale read. Run with
//! `cargo bench -p quorum-check`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use quorum_check::gen::{generate_history, inject_stale_read};
use quorum_check::linearizability::{check, Model, Outcome};

const SEED: u64 = 1;
const OPS: usize = 10_000;
const CLIENTS: usize = 8;
const KEYS: u64 = 8;

fn linearizable(c: &mut Criterion) {
    let history = generate_history(SEED, OPS, CLIENTS, KEYS);
    assert_eq!(check(&history, Model::Kv).outcome, Outcome::Linearizable);
    c.bench_function("kv_10k_ops_8_clients_8_keys_linearizable", |b| {
        b.iter(|| check(black_box(&history), Model::Kv))
    });

    let one_key = generate_history(SEED, OPS, CLIENTS, 1);
    assert_eq!(check(&one_key, Model::CasRegister).outcome, Outcome::Linearizable);
    c.bench_function("cas_register_10k_ops_8_clients_linearizable", |b| {
        b.iter(|| check(black_box(&one_key), Model::CasRegister))
    });
}

fn not_linearizable(c: &mut Criterion) {
    let mut history = generate_history(SEED, OPS, CLIENTS, KEYS);
    assert!(inject_stale_read(&mut history, SEED));
    let report = check(&history, Model::Kv);
    assert_eq!(report.outcome, Outcome::NotLinearizable);
    c.bench_function("kv_10k_ops_8_clients_8_keys_stale_read_with_witness", |b| {
        b.iter(|| check(black_box(&history), Model::Kv))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = linearizable, not_linearizable
}
criterion_main!(benches);
