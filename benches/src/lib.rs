//! Shared setup for kvitto's benchmarks: ledgers in temporary directories and the demo
//! scenario's drafts as one flat, deterministic stream.

/// The allocator the `kvitto` binary uses, so that the runner measures what users run (the
/// baselines run in the same process, with the same allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod compare;
pub mod http;
pub mod scale;

use std::path::PathBuf;

use kvitto::{Draft, Ledger, OpenOptions};

/// A fresh ledger in a temporary directory (kept alive by the returned guard).
pub async fn fresh_ledger() -> (tempfile::TempDir, PathBuf, Ledger) {
    let dir = tempfile::TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("ledger");
    Ledger::init(&path, "bench.kvitto/ledger").unwrap_or_else(|e| panic!("init: {e}"));
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap_or_else(|e| panic!("open: {e}"));
    (dir, path, ledger)
}

/// `n` realistic drafts from the demo generator (declarations first), without event ids so
/// that repeated runs append rather than deduplicate.
pub fn drafts(n: usize, seed: u64) -> Vec<Draft> {
    let customers = n / 8 + 1;
    let scenario = kvitto::scenario::generate(customers, seed);
    scenario
        .all_drafts()
        .take(n)
        .cloned()
        .map(|mut d| {
            d.event_id = None;
            d
        })
        .collect()
}

/// Appends `drafts` from `callers` concurrent tasks, each awaiting its own appends in turn.
pub async fn append_concurrently(ledger: &Ledger, drafts: &[Draft], callers: usize) {
    let chunk = drafts.len().div_ceil(callers.max(1)).max(1);
    let mut set = tokio::task::JoinSet::new();
    for part in drafts.chunks(chunk) {
        let (ledger, part) = (ledger.clone(), part.to_vec());
        set.spawn(async move {
            for d in part {
                ledger.append(d).await.unwrap_or_else(|e| panic!("append: {e}"));
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap_or_else(|e| panic!("task: {e}"));
    }
}

/// A ledger of about `events` demo events (≈ events / 9 customers), built with large
/// batches, in `dir`. Returns the ledger and (controller, customer ref, a purpose) triples.
pub async fn big_ledger(dir: &std::path::Path, events: usize, seed: u64) -> (Ledger, Vec<(String, String, String)>) {
    let path = dir.join("ledger");
    Ledger::init(&path, "bench.kvitto/big").unwrap_or_else(|e| panic!("init: {e}"));
    let ledger = Ledger::open(&path, OpenOptions::default()).await.unwrap_or_else(|e| panic!("open: {e}"));
    let scenario = kvitto::scenario::generate(events / 9 + 1, seed);
    ledger.append_batch(scenario.declarations.clone()).await.unwrap_or_else(|e| panic!("append: {e}"));
    let mut batch = Vec::with_capacity(4096);
    let mut total = scenario.declarations.len();
    let mut who = Vec::with_capacity(scenario.customers.len());
    for c in &scenario.customers {
        if total >= events {
            break;
        }
        let purpose =
            c.events.iter().find_map(|d| d.kind.purpose().map(|p| p.to_string())).unwrap_or_else(|| "marketing".into());
        who.push((c.controller.to_string(), c.external_ref.clone(), purpose));
        total += c.events.len();
        batch.extend(c.events.iter().cloned());
        if batch.len() >= 4000 {
            ledger.append_batch(std::mem::take(&mut batch)).await.unwrap_or_else(|e| panic!("append: {e}"));
        }
    }
    if !batch.is_empty() {
        ledger.append_batch(batch).await.unwrap_or_else(|e| panic!("append: {e}"));
    }
    (ledger, who)
}
