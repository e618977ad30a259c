//! `kvitto-bench scale`: how kvitto's figures move with load and with size — append
//! throughput and latency at 1, 8, 64 and 256 callers; verify, rebuild, history, proof and
//! bundle sizes at 100k and 1M events (10M with `--big`). Writes JSON that
//! `scripts/plot-scale` draws as an SVG.

use std::path::PathBuf;
use std::time::Instant;

use kvitto::{Ledger, OpenOptions};
use serde_json::{Value, json};

use crate::compare::{CompareError, err, p50_p99_ms};

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Caller counts of the append curve.
    pub callers: Vec<usize>,
    /// Events appended per point of the append curve (fewer for few callers: each caller
    /// waits for its own fdatasync, so one caller is given `PER_CALLER` events).
    pub events: usize,
    /// Ledger sizes of the size curve.
    pub sizes: Vec<usize>,
    /// Seed of the demo generator.
    pub seed: u64,
    /// Where the temporary ledgers go.
    pub dir: Option<PathBuf>,
}

/// Events per caller at most on the append curve (1 caller: 2,000 awaited appends).
const PER_CALLER: usize = 2_000;

/// History lookups timed per ledger size.
const LOOKUPS: usize = 500;

type Result<T> = std::result::Result<T, CompareError>;

/// Runs both curves; `progress` is told what starts. Returns the JSON document.
pub fn run(o: &ScaleOptions, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    let (root, rt) = crate::compare::workspace("kvitto-scale-", o.dir.as_deref())?;
    let mut append = Vec::new();
    for &callers in &o.callers {
        let n = o.events.min(PER_CALLER * callers).max(1);
        progress(&format!("append: {callers} callers, {n} events"));
        let stream = crate::drafts(n, o.seed);
        let dir = root.path().join(format!("append-{callers}"));
        let (elapsed, loaded, stats) = rt.block_on(async {
            Ledger::init(&dir, "bench.kvitto/scale").map_err(err("init"))?;
            let ledger = Ledger::open(&dir, OpenOptions::default()).await.map_err(err("open"))?;
            let started = Instant::now();
            let loaded = crate::compare::append_collect(&ledger, &stream, callers).await?;
            let elapsed = started.elapsed();
            let stats = ledger.write_stats();
            ledger.close().await.map_err(err("close"))?;
            Ok::<_, CompareError>((elapsed, loaded, stats))
        })?;
        let (p50, p99) = p50_p99_ms(loaded.append_latency);
        let (ask50, ask99) = p50_p99_ms(loaded.ask_latency);
        append.push(json!({
            "callers": callers,
            "events": n,
            "events_per_sec": (n as f64 / elapsed.as_secs_f64()).round(),
            "p50_ms": round3(p50),
            "p99_ms": round3(p99),
            "may_process_p50_ms": round3(ask50),
            "may_process_p99_ms": round3(ask99),
            "mean_group": (stats.events as f64 / stats.groups.max(1) as f64 * 10.0).round() / 10.0,
        }));
        std::fs::remove_dir_all(&dir).map_err(err("removing a ledger"))?;
    }
    let mut sizes = Vec::new();
    for &size in &o.sizes {
        progress(&format!("size {size}: building the ledger"));
        let dir = root.path().join(format!("size-{size}"));
        std::fs::create_dir_all(&dir).map_err(err("ledger directory"))?;
        let point = rt.block_on(size_point(&dir, size, o.seed, progress))?;
        sizes.push(point);
        std::fs::remove_dir_all(&dir).map_err(err("removing a ledger"))?;
    }
    Ok(json!({ "seed": o.seed, "append": append, "sizes": sizes }))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

async fn size_point(dir: &std::path::Path, size: usize, seed: u64, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    let started = Instant::now();
    let (ledger, who) = crate::big_ledger(dir, size, seed).await;
    let built = started.elapsed();
    let events = ledger.len();
    progress(&format!("size {size}: verify"));
    let report = ledger.verify().await.map_err(err("verify"))?;
    if let Some(f) = &report.failure {
        return Err(CompareError(format!("verify failed on the {size}-event ledger: {f:?}")));
    }
    progress(&format!("size {size}: rebuild"));
    let t = Instant::now();
    let rebuilt = ledger.rebuild().await.map_err(err("rebuild"))?;
    let rebuild_rate = rebuilt.events as f64 / t.elapsed().as_secs_f64();
    progress(&format!("size {size}: history, proofs, bundle"));
    let step = (who.len() / LOOKUPS).max(1);
    let mut lat = Vec::with_capacity(LOOKUPS);
    let mut history_events = 0usize;
    for (controller, customer, _) in who.iter().step_by(step).take(LOOKUPS) {
        let t = Instant::now();
        history_events += ledger.history(controller, customer).await.map_err(err("history"))?.len();
        lat.push(t.elapsed());
    }
    let lookups = lat.len().max(1);
    let (h50, h99) = p50_p99_ms(lat);
    let inclusion = ledger.inclusion_proof(events / 2, events).await.map_err(err("inclusion proof"))?;
    let consistency = ledger.consistency_proof(events / 2, events).await.map_err(err("consistency proof"))?;
    ledger.checkpoint().await.map_err(err("checkpoint"))?;
    let (controller, customer, _) = who.get(who.len() / 2).ok_or_else(|| CompareError("no customers".into()))?;
    let bundle = ledger.export_bundle(controller, customer, None, None).await.map_err(err("bundle"))?;
    let bundle_bytes = serde_json::to_vec(&bundle).map_err(err("bundle JSON"))?.len();
    let bundle_events = ledger.history(controller, customer).await.map_err(err("history"))?.len();
    ledger.close().await.map_err(err("close"))?;
    Ok(json!({
        "events": events,
        "build_seconds": (built.as_secs_f64() * 10.0).round() / 10.0,
        "verify_per_sec": (report.count as f64 / report.duration.as_secs_f64()).round(),
        "rebuild_per_sec": rebuild_rate.round(),
        "history_p50_ms": round3(h50),
        "history_p99_ms": round3(h99),
        "history_events_mean": (history_events as f64 / lookups as f64 * 10.0).round() / 10.0,
        "inclusion_proof_hashes": inclusion.proof.len(),
        "consistency_proof_hashes": consistency.proof.len(),
        "bundle_bytes": bundle_bytes,
        "bundle_events": bundle_events,
    }))
}

/// The table printed to stdout.
pub fn table(v: &Value) -> String {
    use std::fmt::Write;
    let u = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0);
    let f = |p: &Value, k: &str| p[k].as_f64().unwrap_or(0.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>8} {:>8} {:>10} {:>9} {:>9} {:>10} {:>14}",
        "callers", "events", "events/s", "p50 ms", "p99 ms", "per group", "may_process p99"
    );
    for p in v["append"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "{:>8} {:>8} {:>10} {:>9.2} {:>9.2} {:>10.1} {:>11.3} ms",
            u(p, "callers"),
            u(p, "events"),
            f(p, "events_per_sec"),
            f(p, "p50_ms"),
            f(p, "p99_ms"),
            f(p, "mean_group"),
            f(p, "may_process_p99_ms"),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:>9} {:>10} {:>10} {:>12} {:>10} {:>12} {:>20}",
        "events", "verify/s", "rebuild/s", "history p50", "inclusion", "consistency", "bundle bytes (events)"
    );
    for p in v["sizes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "{:>9} {:>10} {:>10} {:>9.3} ms {:>10} {:>12} {:>20}",
            u(p, "events"),
            f(p, "verify_per_sec"),
            f(p, "rebuild_per_sec"),
            f(p, "history_p50_ms"),
            u(p, "inclusion_proof_hashes"),
            u(p, "consistency_proof_hashes"),
            format!("{} ({})", u(p, "bundle_bytes"), u(p, "bundle_events")),
        );
    }
    s
}
