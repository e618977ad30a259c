//! Criterion benches for the hot paths of the foundation: append (one awaited caller; 64
//! concurrent callers), full verify, and event hashing. `cargo bench -p kvitto-bench`.

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kvitto_bench::{append_concurrently, drafts, fresh_ledger};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let stream = drafts(20_000, 1);
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Elements(1));
    g.bench_function("single_awaited_caller", |b| {
        let (_d, _p, ledger) = rt.block_on(fresh_ledger());
        let mut i = 0;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    ledger.append(stream[i % stream.len()].clone()).await.expect("append");
                    i += 1;
                }
                start.elapsed()
            })
        });
    });

    const EVENTS: usize = 8_192;
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("64_concurrent_callers", |b| {
        b.iter_batched(
            || rt.block_on(fresh_ledger()),
            |(_d, _p, ledger)| rt.block_on(append_concurrently(&ledger, &stream[..EVENTS], 64)),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let rt = runtime();
    const EVENTS: usize = 50_000;
    let (_d, _p, ledger) = rt.block_on(fresh_ledger());
    let stream = drafts(EVENTS, 2);
    rt.block_on(async {
        for batch in stream.chunks(1000) {
            ledger.append_batch(batch.to_vec()).await.expect("append");
        }
    });
    let mut g = c.benchmark_group("verify");
    g.sample_size(10).throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("full_50k", |b| b.iter(|| assert!(rt.block_on(ledger.verify()).expect("verify").is_ok())));
    g.finish();
}

fn hash(c: &mut Criterion) {
    let e = kvitto_core::json::event_from_json(
        serde_json::from_str::<serde_json::Value>(
            r#"{"seq":7,"prev_hash":"b7feedfacc2015443066316f43a62cc6abd57c7587a97294d5167044f33259f9","recorded_at":"2026-01-05T10:00:00.000123Z","occurred_at":"2026-01-05T09:59:58Z","event_id":"0194312a-8b00-7000-8000-000000000007","controller":"kalejdo","actor":"crm","subject_id":"2f0c797906675cdee371fd128a1ae7dc","subject_seq":1,"subject_prev":"b7feedfacc2015443066316f43a62cc6abd57c7587a97294d5167044f33259f9","type":"data_collected","register":"kundregister","categories":["name","address","contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject"}"#,
        )
        .expect("json")
        .as_object()
        .expect("object"),
    )
    .expect("event");
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_and_hash", |b| b.iter(|| kvitto_core::event_hash(&kvitto_core::encode_event(&e))));
    let bytes = kvitto_core::encode_event(&e);
    g.bench_function("decode", |b| b.iter(|| kvitto_core::decode_event(&bytes).expect("decode")));
    g.finish();
}

criterion_group!(benches, append, verify, hash);
criterion_main!(benches);
