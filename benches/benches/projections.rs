//! `may_process` latency from the projections on a ledger of 1M events / ~110k subjects, and
//! rebuild and audit throughput. `KVITTO_BENCH_EVENTS` (default 1,000,000) sets the ledger size.
//! Prints p50/p99 latencies (criterion reports means) and the rebuild rate.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kvitto::{AsOf, Ledger};

struct Big {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    ledger: Ledger,
    who: Vec<(String, String, String)>,
}

fn big() -> &'static Big {
    static BIG: OnceLock<Big> = OnceLock::new();
    BIG.get_or_init(|| {
        let events: usize = std::env::var("KVITTO_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let (ledger, who) = rt.block_on(kvitto_bench::big_ledger(dir.path(), events, 7));
        eprintln!("setup: {} events, {} subjects, built in {:.1?}", ledger.len(), who.len(), started.elapsed());
        Big { _dir: dir, rt, ledger, who }
    })
}

fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort_unstable();
    let at = |p: f64| d[((d.len() as f64 * p) as usize).min(d.len() - 1)];
    (at(0.50), at(0.99), at(0.999))
}

fn may_process(c: &mut Criterion) {
    let b = big();
    let q = AsOf::now();
    // Latency distribution over every subject, in a scrambled order.
    let mut samples = Vec::with_capacity(b.who.len() * 2);
    for round in 0..2 {
        for i in 0..b.who.len() {
            let (ctl, r, p) = &b.who[(i * 7919 + round) % b.who.len()];
            let t = Instant::now();
            let d = b.ledger.may_process(ctl, r, p, q).expect("may_process");
            samples.push(t.elapsed());
            std::hint::black_box(d);
        }
    }
    let (p50, p99, p999) = percentiles(samples);
    eprintln!("may_process over {} subjects: p50 {p50:.2?}, p99 {p99:.2?}, p99.9 {p999:.2?}", b.who.len());
    let mut i = 0;
    c.bench_function("may_process/1M_events", |bench| {
        bench.iter(|| {
            let (ctl, r, p) = &b.who[i % b.who.len()];
            i = i.wrapping_add(7919);
            b.ledger.may_process(ctl, r, p, q).expect("may_process")
        })
    });
}

fn rebuild(c: &mut Criterion) {
    let b = big();
    let mut g = c.benchmark_group("rebuild");
    g.sample_size(10).throughput(criterion::Throughput::Elements(b.ledger.len()));
    g.bench_function("1M_events", |bench| {
        bench.iter(|| {
            let r = b.rt.block_on(b.ledger.rebuild()).expect("rebuild");
            eprintln!(
                "rebuild: {} events fold {:.2?} ({:.0} events/s), persist {:.2?} ({} subjects)",
                r.events,
                r.fold,
                r.events as f64 / r.fold.as_secs_f64(),
                r.persist,
                r.subjects
            );
            r
        })
    });
    g.finish();
}

/// The audit's checks K02–K15 over the projections of the whole ledger (one pass; goal
/// ≥ 300k events/s, docs/AUDIT.md). K01 is `verify`, timed in the `ledger` bench.
fn audit(c: &mut Criterion) {
    let b = big();
    let p = b.ledger.projections().expect("projections");
    let start = b.rt.block_on(b.ledger.log(0..1)).expect("log")[0].event.recorded_at;
    let options = kvitto::AuditOptions { ledger_start: start, ..kvitto::AuditOptions::at(kvitto::Timestamp::now()) };
    let t = Instant::now();
    let findings = p.audit(None, &options);
    let took = t.elapsed();
    eprintln!(
        "audit: {} events, {} findings in {took:.2?} ({:.0} events/s)",
        b.ledger.len(),
        findings.len(),
        b.ledger.len() as f64 / took.as_secs_f64()
    );
    let mut g = c.benchmark_group("audit");
    g.sample_size(10).throughput(criterion::Throughput::Elements(b.ledger.len()));
    g.bench_function("1M_events", |bench| bench.iter(|| p.audit(None, &options)));
    g.finish();
}

criterion_group!(benches, may_process, rebuild, audit);
criterion_main!(benches);
