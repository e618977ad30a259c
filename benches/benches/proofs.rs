//! Proofs on a 1M-event ledger (`KVITTO_BENCH_EVENTS`): inclusion and consistency proof
//! generation from stored nodes, export + offline verification of a 100-event subject's
//! complete bundle, and checkpoint signing (the first one commits the subject map).

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use kvitto::Draft;

fn bench(c: &mut Criterion) {
    let events: usize = std::env::var("KVITTO_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let (ledger, _) = rt.block_on(kvitto_bench::big_ledger(dir.path(), events, 3));
    // One customer with 100 events spread through the ledger's tail.
    rt.block_on(async {
        for i in 0..100 {
            let d = Draft::from_json_str(&format!(
                r#"{{"type":"consent_given","controller":"kazoom","subject":"KZ-BENCH","purpose":"product-news","channel":"c{i}"}}"#
            ))
            .expect("draft");
            ledger.append(d).await.expect("append");
        }
    });
    eprintln!("setup: {} events in {:.1?}", ledger.len(), started.elapsed());
    // The first checkpoint commits the subject map over every event (FORMAT.md §7).
    let t = Instant::now();
    rt.block_on(ledger.checkpoint()).expect("checkpoint");
    eprintln!(
        "first checkpoint (subject map over {} events committed, then signed): {:.1?}",
        ledger.len() - 1,
        t.elapsed()
    );
    let n = ledger.len();
    let mut g = c.benchmark_group("proofs");
    g.sample_size(20);
    let mut i = 0u64;
    g.bench_function("inclusion_proof/1M", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            rt.block_on(ledger.inclusion_proof(i, n)).expect("proof")
        })
    });
    g.bench_function("consistency_proof/1M", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            rt.block_on(ledger.consistency_proof(i.max(1), n)).expect("proof")
        })
    });
    g.bench_function("checkpoint_sign_and_store", |b| b.iter(|| rt.block_on(ledger.checkpoint()).expect("checkpoint")));
    let key = ledger.verifier_key().expect("key");
    g.bench_function("bundle_export/100_events", |b| {
        b.iter(|| rt.block_on(ledger.export_bundle("kazoom", "KZ-BENCH", None, None)).expect("export"))
    });
    let text =
        serde_json::to_string(&rt.block_on(ledger.export_bundle("kazoom", "KZ-BENCH", None, None)).expect("export"))
            .expect("json");
    eprintln!(
        "bundle of 100 events at {n} events: {} KiB, of which the completeness proof {} bytes",
        text.len() / 1024,
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&text).expect("json")["completeness"])
            .expect("json")
            .len()
    );
    g.bench_function("bundle_verify/100_events", |b| {
        b.iter(|| kvitto_proof::bundle::verify(&text, kvitto_proof::bundle::Trust::Key(&key)).expect("verify"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
