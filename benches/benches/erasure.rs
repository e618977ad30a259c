//! Erasure throughput: one customer at a time (`Ledger::erase`, every key or one register's)
//! and from 16 concurrent callers, on a ledger of `KVITTO_BENCH_SUBJECTS` customers (default
//! 100,000) with details in two registers each; the retention plan over all of them; and a
//! retention run that erases 10,000 overdue registers in batches.
//! Each erasure is durable (sled fdatasync, vault segment rewrites, fsyncs) before it returns.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kvitto::{Draft, Ledger, OpenOptions};

fn collected(subject: &str, register: &str) -> Draft {
    Draft::from_json_str(&format!(
        r#"{{"type":"data_collected","controller":"kalejdo","subject":"{subject}","register":"{register}","categories":["contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","details":{{"email":"{subject}@example.se"}}}}"#
    ))
    .expect("draft")
}

async fn setup(dir: &std::path::Path, subjects: usize) -> Ledger {
    Ledger::init(dir, "bench.kvitto/erasure").expect("init");
    let ledger = Ledger::open(dir, OpenOptions::default()).await.expect("open");
    let declarations = [
        r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"kundregister","trigger":"collected","duration":"P1Y"}"#,
        r#"{"type":"retention_rule_declared","controller":"kalejdo","register":"arendelista","trigger":"collected","duration":"P12M","occurred_at":"2024-01-01T00:00:00Z"}"#,
    ];
    let drafts = declarations.iter().map(|d| Draft::from_json_str(d).expect("draft")).collect();
    ledger.append_batch(drafts).await.expect("declare");
    let mut set = tokio::task::JoinSet::new();
    for chunk in (0..subjects).collect::<Vec<_>>().chunks(500) {
        let (l, chunk) = (ledger.clone(), chunk.to_vec());
        set.spawn(async move {
            let batch = chunk
                .iter()
                .flat_map(|i| ["kundregister", "arendelista"].map(|r| collected(&format!("c{i}"), r)))
                .collect();
            l.append_batch(batch).await.expect("append");
        });
        if set.len() >= 8 {
            set.join_next().await;
        }
    }
    while set.join_next().await.is_some() {}
    ledger
}

fn erasure(c: &mut Criterion) {
    let subjects: usize = std::env::var("KVITTO_BENCH_SUBJECTS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let ledger = rt.block_on(setup(&dir.path().join("ledger"), subjects));
    eprintln!("setup: {subjects} customers, {} events, built in {:.1?}", ledger.len(), started.elapsed());

    let mut next = 0usize;
    let mut take = || {
        next += 1;
        format!("c{}", (next * 7919) % subjects)
    };
    // A whole customer, then one register of another, one caller at a time.
    let mut group = c.benchmark_group("erase");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("whole_customer", |b| {
        b.iter(|| rt.block_on(ledger.erase("kalejdo", &take(), None, "bench")).expect("erase"))
    });
    group.bench_function("one_register", |b| {
        b.iter(|| rt.block_on(ledger.erase("kalejdo", &take(), Some("arendelista"), "bench")).expect("erase"))
    });
    group.finish();

    // 16 concurrent callers: each erasure still gets its own group.
    let n = 400.min(subjects / 4);
    let refs: Vec<String> = (0..n).map(|_| take()).collect();
    let t = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for part in refs.chunks(n.div_ceil(16)) {
            let (l, part) = (ledger.clone(), part.to_vec());
            set.spawn(async move {
                for r in part {
                    let _ = l.erase("kalejdo", &r, None, "bench").await.expect("erase");
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
    let elapsed = t.elapsed();
    eprintln!(
        "erase from 16 callers: {n} customers in {elapsed:.2?} = {:.0} erasures/s",
        n as f64 / elapsed.as_secs_f64()
    );

    let p = ledger.projections().expect("projections");
    let t = Instant::now();
    let plan = p.retention_plan(None, kvitto::Timestamp::now());
    let took = t.elapsed();
    eprintln!("retention plan over {subjects} customers: {} items in {took:.2?}", plan.len());
    c.bench_function("retention_plan/all", |b| b.iter(|| p.retention_plan(None, kvitto::Timestamp::now()).len()));
    rt.block_on(ledger.close()).expect("ledger closes cleanly");

    // A retention run that finds 10,000 registers overdue (collected two years ago, kept 12
    // months): erased in batches through the same append path.
    let due = 10_000.min(subjects);
    let dir2 = tempfile::tempdir().expect("tempdir");
    let ledger = rt.block_on(async {
        let l = setup(&dir2.path().join("ledger"), 0).await;
        for chunk in (0..due).collect::<Vec<_>>().chunks(500) {
            let batch = chunk
                .iter()
                .map(|i| {
                    let mut d = collected(&format!("old{i}"), "arendelista");
                    d.occurred_at = kvitto::Timestamp::parse_rfc3339("2024-11-01T00:00:00Z").ok();
                    d
                })
                .collect();
            l.append_batch(batch).await.expect("append");
        }
        l
    });
    let t = Instant::now();
    let run = rt.block_on(ledger.retention_run(None, kvitto::Timestamp::now())).expect("retention run");
    let took = t.elapsed();
    eprintln!(
        "retention run: {} registers erased in {took:.2?} = {:.0} erasures/s",
        run.erased.len(),
        run.erased.len() as f64 / took.as_secs_f64()
    );
    rt.block_on(ledger.close()).expect("ledger closes cleanly");
}

criterion_group!(benches, erasure);
criterion_main!(benches);
