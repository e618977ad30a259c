//! The comparison runner: one deterministic stream of demo events, appended and read back by
//! kvitto and by the baselines a team would otherwise build, in one process run on the same
//! machine, with the same canonical bytes and the same durability per acknowledged group.
//!
//! Every measurement uses its own fresh directory under one temporary root. Group sizes for
//! the grouped baselines are the ones kvitto's writer formed in this run (read back from the
//! receipts: one commit group shares one `recorded_at`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvitto::{Draft, Ledger, OpenOptions, Receipt};
use serde_json::{Value, json};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events in the stream (kvitto concurrent append, grouped baselines, verify, rebuild).
    pub events: usize,
    /// Concurrent callers for `kvitto_append_concurrent` and `sqlite_per_event`.
    pub callers: usize,
    /// Events for the slow per-event measurements (`kvitto_append_single`, `sqlite_per_event`).
    pub per_event_limit: usize,
    /// Ledger sizes for the history lookup.
    pub history_sizes: Vec<usize>,
    /// History lookups timed per ledger size.
    pub history_lookups: usize,
    /// Seed of the demo generator.
    pub seed: u64,
    /// Where the temporary directories go (default: the system temp dir).
    pub dir: Option<PathBuf>,
    /// Also measure PostgreSQL: `auto` (a throw-away cluster, as the tests start one) or the
    /// URL of a server's maintenance database (the runner creates its databases there).
    pub postgres: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events: 100_000,
            callers: 64,
            per_event_limit: 3_000,
            history_sizes: vec![10_000, 100_000, 1_000_000],
            history_lookups: 2_000,
            seed: 1,
            dir: None,
            postgres: None,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Events processed.
    pub events: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// What this row stands for, in a few words.
    pub note: String,
    /// Extra JSON fields (e.g. lookup latency).
    pub extra: serde_json::Map<String, Value>,
}

impl Measured {
    fn new(events: usize, elapsed: Duration, note: impl Into<String>) -> Self {
        Measured { events, elapsed, note: note.into(), extra: serde_json::Map::new() }
    }

    /// Records the bytes on disk per event under `path` (a file or directory, plus a SQLite
    /// `-wal` beside it).
    fn with_size(mut self, path: &Path) -> Self {
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let bytes = dir_size(path) + dir_size(&wal);
        self.extra.insert("bytes_per_event".into(), json!(round(bytes as f64 / self.events.max(1) as f64, 1)));
        self
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Events in the stream.
    pub events: usize,
    /// Results by name, in run order.
    pub results: Vec<(String, Measured)>,
    /// Commit groups kvitto's writer formed (sizes, in order).
    pub group_sizes: Vec<usize>,
    /// Bytes on disk per event after flush and close (sled store + key vault).
    pub bytes_per_event: f64,
    /// Mean canonical (hashed) event size.
    pub canonical_bytes_per_event: f64,
    /// The writer's own account of the concurrent append: where a group's time went.
    pub write_stats: kvitto::WriteStats,
    /// The same for the append on PostgreSQL (with `--postgres`).
    pub pg_write_stats: Option<kvitto::WriteStats>,
    /// Where the bytes on disk are, per event.
    pub space: Space,
}

/// The benchmark ledger's bytes per event after close: what kvitto gives the engine to keep
/// (keys and values, per tree) against the engine's files, and the key vault.
#[derive(Debug, Clone, Default)]
pub struct Space {
    /// Keys and values kvitto stores in sled, per tree (log, index, projections, …).
    pub logical: Vec<(String, f64)>,
    /// The `index` tree's share of `logical`, by kind of entry (FORMAT.md §4: Merkle pages,
    /// event ids, subject tips, the watermark).
    pub index_by_kind: Vec<(String, f64)>,
    /// sled's files (its log segments, snapshot, blobs).
    pub sled_files: f64,
    /// The key vault's segments.
    pub vault: f64,
}

impl Space {
    fn logical_total(&self) -> f64 {
        self.logical.iter().map(|(_, b)| b).sum()
    }
}

/// Measures [`Space`] of the closed ledger in `dir` (opening its sled store directly, after
/// the directory's size was taken).
fn space(dir: &Path, n: usize) -> Result<Space> {
    let per = |b: u64| b as f64 / n.max(1) as f64;
    let store = dir.join("store");
    let sled_files = per(dir_size(&store));
    let vault = per(dir_size(&dir.join("vault")));
    let db = sled::Config::new().path(&store).open().map_err(err("opening the ledger's sled store"))?;
    let mut logical = Vec::new();
    let mut index_by_kind: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).map_err(err("sled tree"))?;
        let is_index = &*name == b"index";
        let mut bytes = 0u64;
        for kv in tree.iter() {
            let (k, v) = kv.map_err(err("reading a sled tree"))?;
            let size = (k.len() + v.len()) as u64;
            bytes += size;
            if is_index {
                *index_by_kind.entry(index_entry_kind(k.first().copied())).or_default() += size;
            }
        }
        let label = String::from_utf8_lossy(&name).replace("__sled__default", "meta");
        logical.push((label, per(bytes)));
    }
    let mut index_by_kind: Vec<(String, f64)> =
        index_by_kind.into_iter().map(|(label, b)| (label.to_string(), per(b))).collect();
    index_by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Space { logical, index_by_kind, sled_files, vault })
}

/// What an entry of the sled `index` tree is, by its key's first byte (FORMAT.md §4; the
/// prefixes are kvitto-store's own).
fn index_entry_kind(prefix: Option<u8>) -> &'static str {
    use kvitto_store::log::{EVENT_ID, NODE_PAGE, SUBJECT_TIP};
    match prefix {
        Some(NODE_PAGE) => "Merkle pages",
        Some(EVENT_ID) => "event ids",
        Some(SUBJECT_TIP) => "subject tips",
        _ => "other",
    }
}

/// A target from the issue: (ratio or result name, threshold).
pub const TARGETS: &[(&str, f64)] = &[
    ("append_vs_sqlite_per_event", 50.0),
    ("append_vs_sqlite_grouped", 1.0),
    ("append_vs_raw_sled_per_key", 1.5),
    ("append_vs_engine_limit", 0.8),
    ("verify_vs_raw_blake3", 0.5),
    ("pg_append_vs_raw_grouped", 0.8),
];

/// Absolute targets in events per second.
pub const RATE_TARGETS: &[(&str, f64)] = &[
    ("kvitto_append_concurrent", 80_000.0),
    ("kvitto_append_single", 1_000.0),
    ("kvitto_verify", 1_000_000.0),
    ("rebuild", 500_000.0),
    ("audit", 300_000.0),
];

impl Report {
    fn get(&self, name: &str) -> Option<&Measured> {
        self.results.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.get(a)?.rate() / self.get(b)?.rate())
    }

    /// The ratios the issue names.
    pub fn ratios(&self) -> Vec<(&'static str, Option<f64>)> {
        let append = "kvitto_append_concurrent";
        vec![
            ("append_vs_sqlite_per_event", self.ratio(append, "sqlite_per_event")),
            ("append_vs_sqlite_grouped", self.ratio(append, "sqlite_grouped")),
            ("append_vs_raw_sled_per_key", self.ratio(append, "raw_sled_per_key")),
            ("append_vs_engine_limit", self.ratio(append, "engine_limit")),
            ("verify_vs_raw_blake3", self.ratio("kvitto_verify", "raw_blake3")),
            ("pg_append_vs_raw_grouped", self.ratio("pg_kvitto_append_concurrent", "pg_raw_grouped")),
        ]
    }

    /// The JSON document `--json` writes.
    pub fn to_json(&self) -> Value {
        let mut results = serde_json::Map::new();
        for (name, m) in &self.results {
            let mut o = serde_json::Map::new();
            o.insert("events_per_sec".into(), json!(round(m.rate(), 1)));
            o.insert("events".into(), json!(m.events));
            o.insert("seconds".into(), json!(round(m.elapsed.as_secs_f64(), 6)));
            o.insert("note".into(), json!(m.note));
            o.extend(m.extra.clone());
            results.insert(name.clone(), Value::Object(o));
        }
        let ratios: serde_json::Map<String, Value> = self
            .ratios()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, |r| json!(round(r, 3)))))
            .collect();
        let mean_group = self.group_sizes.iter().sum::<usize>() as f64 / self.group_sizes.len().max(1) as f64;
        json!({
            "events": self.events,
            "results": results,
            "ratios": ratios,
            "bytes_per_event": round(self.bytes_per_event, 1),
            "canonical_bytes_per_event": round(self.canonical_bytes_per_event, 1),
            "groups": {"count": self.group_sizes.len(), "mean_events": round(mean_group, 1),
                       "max_events": self.group_sizes.iter().max().copied().unwrap_or(0)},
            "writer": self.writer_json(),
            "space": {
                "sled_files_per_event": round(self.space.sled_files, 1),
                "stored_per_event": round(self.space.logical_total(), 1),
                "stored_per_event_by_tree": self.space.logical.iter()
                    .map(|(t, b)| (t.clone(), json!(round(*b, 1)))).collect::<serde_json::Map<_, _>>(),
                "index_per_event_by_kind": self.space.index_by_kind.iter()
                    .map(|(t, b)| (t.clone(), json!(round(*b, 1)))).collect::<serde_json::Map<_, _>>(),
                "vault_per_event": round(self.space.vault, 1),
            },
        })
    }

    /// The table printed to stdout.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{:<26} {:>9} {:>10} {:>14}  what", "measurement", "events", "seconds", "events/s");
        for (name, m) in &self.results {
            let _ = writeln!(
                s,
                "{:<26} {:>9} {:>10.3} {:>14}  {}",
                name,
                m.events,
                m.elapsed.as_secs_f64(),
                thousands(m.rate()),
                m.note
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{:<28} {:>9} {:>9}  ", "ratio", "value", "target");
        for (name, v) in self.ratios() {
            let target = TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
            let _ = writeln!(s, "{:<28} {:>9} {:>9}  {}", name, fmt_opt(v), fmt_target(target), verdict(v, target));
        }
        for (name, t) in RATE_TARGETS {
            let v = self.get(name).map(Measured::rate);
            let _ = writeln!(s, "{:<28} {:>9} {:>9}  {}", name, fmt_rate(v), fmt_rate(Some(*t)), verdict(v, Some(*t)));
        }
        let bytes_target = 1.5 * self.canonical_bytes_per_event;
        let _ = writeln!(
            s,
            "{:<28} {:>9.1} {:>9.1}  {}  (canonical {:.1} B/event)",
            "bytes_per_event",
            self.bytes_per_event,
            bytes_target,
            if self.bytes_per_event <= bytes_target { "met" } else { "MISSED" },
            self.canonical_bytes_per_event
        );
        let mean_group = self.group_sizes.iter().sum::<usize>() as f64 / self.group_sizes.len().max(1) as f64;
        let _ = writeln!(
            s,
            "kvitto formed {} commit groups (mean {:.1}, max {} events)",
            self.group_sizes.len(),
            mean_group,
            self.group_sizes.iter().max().copied().unwrap_or(0)
        );
        let _ = writeln!(s, "{}", self.phases());
        let sp = &self.space;
        let trees: Vec<String> = sp.logical.iter().map(|(t, b)| format!("{t} {b:.0}")).collect();
        let index: Vec<String> = sp.index_by_kind.iter().map(|(t, b)| format!("{t} {b:.0}")).collect();
        let _ = writeln!(
            s,
            "bytes per event: sled files {:.0} holding {:.0} of keys and values ({}; sled's space amplification \
             {:.2}×) · key vault {:.0}\nindex bytes per event: {}",
            sp.sled_files,
            sp.logical_total(),
            trees.join(", "),
            sp.sled_files / sp.logical_total().max(1e-9),
            sp.vault,
            index.join(", "),
        );
        s
    }

    /// Where a commit group's time went in the concurrent append (means per group, µs); on
    /// PostgreSQL too when it was measured.
    pub fn phases(&self) -> String {
        match &self.pg_write_stats {
            None => phases("", &self.write_stats),
            Some(pg) => format!("{}\n{}", phases("", &self.write_stats), phases("PostgreSQL: ", pg)),
        }
    }

    /// The writer's account of the concurrent append, summed over its groups (seconds).
    fn writer_json(&self) -> Value {
        let mut v = writer_json(&self.write_stats);
        if let Some(pg) = &self.pg_write_stats {
            v["postgres"] = writer_json(pg);
        }
        v
    }
}

/// One line: a commit group's phases, means per group in µs.
fn phases(label: &str, w: &kvitto::WriteStats) -> String {
    {
        let per = |secs: f64| secs * 1e6 / w.groups.max(1) as f64;
        format!(
            "{label}per group (µs, mean): seal {:.0} · vault {:.0} ({} of {} groups wrote keys) · write {:.0} · \
             fdatasync {:.0} · erase {:.0} ({} groups erased) · fold and answer {:.0} · first request to receipt {:.0}",
            per(w.seal_seconds),
            per(w.vault_seconds),
            w.vault_groups,
            w.groups,
            per(w.write_seconds),
            per(w.sync_seconds),
            per(w.erase_seconds),
            w.erasure_groups,
            per(w.publish_seconds),
            per(w.group_seconds),
        )
    }
}

/// The writer's account of one append, summed over its groups (seconds).
fn writer_json(w: &kvitto::WriteStats) -> Value {
    json!({
        "groups": w.groups, "events": w.events, "groups_writing_keys": w.vault_groups,
        "groups_erasing": w.erasure_groups, "seal_seconds": round(w.seal_seconds, 6),
        "vault_seconds": round(w.vault_seconds, 6), "write_seconds": round(w.write_seconds, 6),
        "sync_seconds": round(w.sync_seconds, 6), "erase_seconds": round(w.erase_seconds, 6),
        "publish_seconds": round(w.publish_seconds, 6),
        "request_to_receipt_seconds": round(w.group_seconds, 6),
    })
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn fmt_target(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("≥{v}"))
}

fn fmt_rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.0}k", v / 1000.0))
}

fn verdict(v: Option<f64>, target: Option<f64>) -> &'static str {
    match (v, target) {
        (Some(v), Some(t)) if v >= t => "met",
        (Some(_), Some(_)) => "MISSED",
        _ => "",
    }
}

/// A failed measurement (I/O, SQLite, sled or kvitto error), with what was being done.
#[derive(Debug)]
pub struct CompareError(pub String);

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompareError {}

pub(crate) fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> CompareError {
    move |e| CompareError(format!("{what}: {e}"))
}

type Result<T> = std::result::Result<T, CompareError>;

/// A temporary root for a run's stores (under `dir`, else the system temp dir) and the
/// runtime its ledgers run on.
pub(crate) fn workspace(prefix: &str, dir: Option<&Path>) -> Result<(tempfile::TempDir, tokio::runtime::Runtime)> {
    let root = match dir {
        Some(d) => tempfile::TempDir::with_prefix_in(prefix, d),
        None => tempfile::TempDir::with_prefix(prefix),
    }
    .map_err(err("temporary directory"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err("tokio runtime"))?;
    Ok((root, rt))
}

/// Runs every measurement; `progress` is told what starts.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let (root, rt) = workspace("kvitto-compare-", options.dir.as_deref())?;
    let n = options.events;
    progress(&format!("generating {n} demo events (seed {})", options.seed));
    let stream = crate::drafts(n, options.seed);
    let mut results: Vec<(String, Measured)> = Vec::new();

    // kvitto, 64 concurrent callers: this ledger also serves verify, rebuild and size.
    progress(&format!("kvitto_append_concurrent: {} callers", options.callers));
    let ledger_dir = root.path().join("kvitto");
    let (ledger, loaded, elapsed) = rt.block_on(async {
        let ledger = open_fresh(&ledger_dir).await?;
        let started = Instant::now();
        let loaded = append_collect(&ledger, &stream, options.callers).await?;
        Ok::<_, CompareError>((ledger, loaded, started.elapsed()))
    })?;
    let Loaded { receipts, append_latency, ask_latency } = loaded;
    results.push((
        "kvitto_append_concurrent".into(),
        with_latency(
            Measured::new(
                n,
                elapsed,
                format!("{} callers via Ledger::append, each receipt fdatasync'd", options.callers),
            ),
            "append",
            append_latency,
        ),
    ));
    let asked = ask_latency.len();
    results.push((
        "may_process_under_load".into(),
        with_latency(
            Measured::new(
                asked,
                elapsed,
                format!("one question a millisecond during the {}-caller append", options.callers),
            ),
            "answer",
            ask_latency,
        ),
    ));
    let group_sizes = group_sizes(&receipts);
    let write_stats = ledger.write_stats();
    let events = rt.block_on(ledger.log(0..n as u64)).map_err(err("reading the log back"))?;
    let canonical: Vec<Vec<u8>> = events.iter().map(|e| kvitto_core::encode_event(&e.event)).collect();
    let canonical_bytes_per_event = canonical.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1) as f64;

    progress("kvitto_verify");
    let report = rt.block_on(ledger.verify()).map_err(err("verify"))?;
    if let Some(f) = report.failure {
        return Err(CompareError(format!("verify failed on the benchmark ledger: {f:?}")));
    }
    results.push((
        "kvitto_verify".into(),
        Measured::new(
            report.count as usize,
            report.duration,
            "Ledger::verify: chain, subject chains, index, Merkle nodes",
        ),
    ));
    progress("raw_blake3");
    let started = Instant::now();
    let mut acc = 0u8;
    for c in &canonical {
        acc ^= kvitto_core::event_hash(c).0[0];
    }
    std::hint::black_box(acc);
    results.push((
        "raw_blake3".into(),
        Measured::new(n, started.elapsed(), "BLAKE3 (derive_key) over the stored preimages"),
    ));

    // Size after flush and close, before a rebuild rewrites every projection state.
    rt.block_on(ledger.close()).expect("ledger closes cleanly");
    let bytes_per_event = dir_size(&ledger_dir) as f64 / n.max(1) as f64;
    let space = space(&ledger_dir, n)?;

    progress("rebuild");
    let ledger = rt.block_on(Ledger::open(&ledger_dir, OpenOptions::default())).map_err(err("reopen"))?;
    let started = Instant::now();
    let rebuilt = rt.block_on(ledger.rebuild()).map_err(err("rebuild"))?;
    let mut m = Measured::new(rebuilt.events as usize, started.elapsed(), "all projections from seq 0, persisted");
    m.extra.insert("fold_events_per_sec".into(), json!(round(rebuilt.events as f64 / rebuilt.fold.as_secs_f64(), 1)));
    results.push(("rebuild".into(), m));

    // The audit's checks K02–K15 over the projections, in one pass (K01 is verify, above).
    progress("audit");
    let projections = ledger.projections().map_err(err("projections"))?;
    // As `Ledger::audit` runs them: the stream is imported history (K13 counts from seq 0's
    // recorded time), judged now.
    let start = rt.block_on(ledger.log(0..1)).map_err(err("log"))?.first().map(|e| e.event.recorded_at);
    let audit = kvitto::AuditOptions {
        ledger_start: start.unwrap_or(kvitto::Timestamp::MIN),
        ..kvitto::AuditOptions::at(kvitto::Timestamp::now())
    };
    let started = Instant::now();
    let findings = projections.audit(None, &audit);
    let mut m = Measured::new(n, started.elapsed(), "audit checks K02–K15 over the projections, all controllers");
    m.extra.insert("findings".into(), json!(findings.len()));
    results.push(("audit".into(), m));
    drop(projections);
    rt.block_on(ledger.close()).expect("ledger closes cleanly");

    progress("kvitto_append_single");
    let single_n = n.min(options.per_event_limit);
    let (elapsed, latency) = rt.block_on(async {
        let ledger = open_fresh(&root.path().join("kvitto-single")).await?;
        let mut latency = Vec::with_capacity(single_n);
        let started = Instant::now();
        for d in &stream[..single_n] {
            let t = Instant::now();
            ledger.append(d.clone()).await.map_err(err("append"))?;
            latency.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        ledger.close().await.expect("ledger closes cleanly");
        Ok::<_, CompareError>((elapsed, latency))
    })?;
    results.push((
        "kvitto_append_single".into(),
        with_latency(Measured::new(single_n, elapsed, "one caller awaiting each append"), "append", latency),
    ));

    progress(&format!("sqlite_per_event: {} callers, {single_n} events", options.callers));
    let elapsed = sqlite_per_event(&root.path().join("sqlite-per-event.db"), &canonical[..single_n], options.callers)?;
    results.push((
        "sqlite_per_event".into(),
        Measured::new(single_n, elapsed, "SQLite WAL synchronous=FULL, one transaction per event"),
    ));

    // The grouped baselines: the same bytes in kvitto's group sizes, each in its own store.
    type Grouped = fn(&Path, &[Vec<u8>], &[usize]) -> Result<Duration>;
    let grouped: [(&str, &str, Grouped, &str); 3] = [
        ("sqlite_grouped", "sqlite-grouped.db", sqlite_grouped, "same table, one transaction per kvitto group"),
        (
            "raw_sled_per_key",
            "sled-per-key",
            raw_sled_per_key,
            "sled, one key per event, flush per group (no fdatasync)",
        ),
        ("engine_limit", "sled-engine", engine_limit, "sled, one value per group + flush + fdatasync"),
    ];
    for (name, file, measure, note) in grouped {
        progress(name);
        let path = root.path().join(file);
        let elapsed = measure(&path, &canonical, &group_sizes)?;
        results.push((name.into(), Measured::new(n, elapsed, note).with_size(&path)));
    }

    let mut pg_write_stats = None;
    if let Some(server) = &options.postgres {
        pg_write_stats = Some(postgres_rows(
            &rt,
            root.path(),
            server,
            &stream,
            &canonical_of(&rt, &ledger_dir)?,
            options,
            &mut results,
            progress,
        )?);
    }

    for &size in &options.history_sizes {
        progress(&format!("history at {size} events (building the ledger)"));
        let m = history_lookup(&rt, &root.path().join(format!("history-{size}")), size, options)?;
        results.push((format!("history_{}", short(size)), m));
    }

    Ok(Report {
        events: n,
        results,
        group_sizes,
        bytes_per_event,
        canonical_bytes_per_event,
        write_stats,
        pg_write_stats,
        space,
    })
}

/// The canonical bytes of the benchmark ledger's events (read back after it closed).
fn canonical_of(rt: &tokio::runtime::Runtime, dir: &Path) -> Result<Vec<Vec<u8>>> {
    let ledger = rt
        .block_on(Ledger::open(dir, OpenOptions { read_only: true, ..OpenOptions::default() }))
        .map_err(err("reopen"))?;
    let events = rt.block_on(ledger.log(0..ledger.len())).map_err(err("reading the log back"))?;
    rt.block_on(ledger.close()).map_err(err("close"))?;
    Ok(events.iter().map(|e| kvitto_core::encode_event(&e.event)).collect())
}

fn pg_database(server: &str) -> Result<String> {
    let made = if server == "auto" {
        kvitto_postgres::testing::database()
    } else {
        kvitto_postgres::testing::database_on(server)
    };
    made.map_err(|e| CompareError(format!("PostgreSQL: {e}")))
}

/// kvitto on PostgreSQL (append from the same callers, verify, history) and the raw baseline:
/// the same canonical bytes inserted into an equivalent table in kvitto's group sizes, one
/// transaction each, `synchronous_commit = on`.
#[allow(clippy::too_many_arguments)]
fn postgres_rows(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    server: &str,
    stream: &[Draft],
    canonical: &[Vec<u8>],
    options: &Options,
    results: &mut Vec<(String, Measured)>,
    progress: &mut dyn FnMut(&str),
) -> Result<kvitto::WriteStats> {
    let n = stream.len();
    progress(&format!("pg_kvitto_append_concurrent: {} callers", options.callers));
    let url = pg_database(server)?;
    let dir = root.join("pg-kvitto");
    Ledger::init_on(&dir, "bench.kvitto/compare-pg", &kvitto::StoreSpec::Postgres(url))
        .map_err(err("init on PostgreSQL"))?;
    let (ledger, receipts, elapsed) = rt.block_on(async {
        let ledger = Ledger::open(&dir, OpenOptions::default()).await.map_err(err("open on PostgreSQL"))?;
        let started = Instant::now();
        let loaded = append_collect(&ledger, stream, options.callers).await?;
        Ok::<_, CompareError>((ledger, loaded, started.elapsed()))
    })?;
    let Loaded { receipts, append_latency, .. } = receipts;
    let sizes = group_sizes(&receipts);
    let mean = n as f64 / sizes.len().max(1) as f64;
    let m = Measured::new(n, elapsed, format!("{} callers, each receipt after COMMIT", options.callers));
    let mut m = with_latency(m, "append", append_latency);
    m.extra.insert("groups".into(), json!(sizes.len()));
    m.extra.insert("mean_group".into(), json!(round(mean, 1)));
    m.extra.insert("bytes_per_event".into(), json!(round(ledger.disk_bytes() as f64 / n.max(1) as f64, 1)));
    results.push(("pg_kvitto_append_concurrent".into(), m));
    let pg_stats = ledger.write_stats();

    progress("pg_kvitto_verify");
    let report = rt.block_on(ledger.verify()).map_err(err("verify on PostgreSQL"))?;
    if let Some(f) = report.failure {
        return Err(CompareError(format!("verify failed on the PostgreSQL ledger: {f:?}")));
    }
    results.push((
        "pg_kvitto_verify".into(),
        Measured::new(report.count as usize, report.duration, "Ledger::verify on PostgreSQL"),
    ));

    progress("pg_history");
    let who: Vec<(String, String)> = {
        let mut seen = std::collections::BTreeSet::new();
        stream
            .iter()
            .filter_map(|d| d.subject.as_ref().map(|r| (d.controller.to_string(), r.as_str().to_string())))
            .filter(|w| seen.insert(w.clone()))
            .collect()
    };
    let lookups = options.history_lookups.min(who.len()).clamp(1, 500);
    let step = (who.len() / lookups).max(1);
    let (mut events, started) = (0usize, Instant::now());
    let mut latencies = Vec::with_capacity(lookups);
    for (controller, customer) in who.iter().step_by(step).take(lookups) {
        let t = Instant::now();
        events += rt.block_on(ledger.history(controller, customer)).map_err(err("history on PostgreSQL"))?.len();
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let mut m = Measured::new(events, elapsed, format!("{} history lookups on PostgreSQL", latencies.len()));
    let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
    m.extra.insert("p50_us".into(), json!(round(p50.as_secs_f64() * 1e6, 1)));
    results.push(("pg_history".into(), m));
    rt.block_on(ledger.close()).map_err(err("close"))?;

    progress("pg_raw_grouped");
    let raw = pg_database(server)?;
    let elapsed = pg_raw_grouped(&raw, canonical, &sizes)?;
    results.push((
        "pg_raw_grouped".into(),
        Measured::new(n, elapsed, "same bytes, one multi-row insert + COMMIT per kvitto group"),
    ));
    Ok(pg_stats)
}

fn pg_raw_grouped(url: &str, canonical: &[Vec<u8>], sizes: &[usize]) -> Result<Duration> {
    let (url, canonical, sizes) = (url.to_string(), canonical.to_vec(), sizes.to_vec());
    // The blocking client gets a thread of its own, away from any runtime.
    std::thread::spawn(move || -> Result<Duration> {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).map_err(err("connect"))?;
        c.batch_execute(
            "SET synchronous_commit = on; CREATE TABLE events (seq bigint PRIMARY KEY, hash bytea NOT NULL, \
             canonical bytea NOT NULL)",
        )
        .map_err(err("create table"))?;
        let mut prev = [0u8; 32];
        let started = Instant::now();
        for (start, group) in groups(&canonical, &sizes) {
            let mut seqs = Vec::with_capacity(group.len());
            let mut hashes = Vec::with_capacity(group.len());
            for (i, bytes) in group.iter().enumerate() {
                prev = chain_hash(&prev, bytes);
                seqs.push((start + i) as i64);
                hashes.push(prev.to_vec());
            }
            let bodies: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            let mut tx = c.transaction().map_err(err("begin"))?;
            tx.execute(
                "INSERT INTO events SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
                &[&seqs, &hashes, &bodies],
            )
            .map_err(err("insert"))?;
            tx.commit().map_err(err("commit"))?;
        }
        Ok(started.elapsed())
    })
    .join()
    .map_err(|_| CompareError("the PostgreSQL baseline panicked".into()))?
}

fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

async fn open_fresh(dir: &Path) -> Result<Ledger> {
    Ledger::init(dir, "bench.kvitto/compare").map_err(err("init"))?;
    Ledger::open(dir, OpenOptions::default()).await.map_err(err("open"))
}

/// `drafts` split over `callers`: each customer's events to one caller, in order; the
/// declarations (no customer) to the first. Empty parts are left out.
pub fn by_subject(drafts: &[Draft], callers: usize) -> Vec<Vec<Draft>> {
    let callers = callers.max(1);
    let mut parts: Vec<Vec<Draft>> = vec![Vec::new(); callers];
    for d in drafts {
        let caller = d.subject.as_ref().map_or(0, |r| {
            let h = blake3::hash(format!("{}\0{}", d.controller, r.as_str()).as_bytes());
            u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default()) as usize % callers
        });
        parts[caller].push(d.clone());
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// What the concurrent append gave back: every receipt (in seq order), each append's latency,
/// and those of the `may_process` questions asked meanwhile.
#[derive(Debug)]
pub struct Loaded {
    /// Receipts, sorted by seq.
    pub receipts: Vec<Receipt>,
    /// Each awaited append, from call to receipt.
    pub append_latency: Vec<Duration>,
    /// `may_process` answers asked once a millisecond while the load ran.
    pub ask_latency: Vec<Duration>,
}

/// Appends `drafts` from `callers` tasks, each awaiting its own appends, and returns every
/// receipt. Each customer's events go to one caller, in order (a request is fulfilled after
/// it was received, as a real service sends them); the customers are spread over the callers.
/// Meanwhile one more task asks `may_process` about the stream's customers once a millisecond
/// (paced, so that on a small machine it measures the answer, not a CPU it takes away).
pub async fn append_collect(ledger: &Ledger, drafts: &[Draft], callers: usize) -> Result<Loaded> {
    let mut set = tokio::task::JoinSet::new();
    for part in by_subject(drafts, callers) {
        let ledger = ledger.clone();
        set.spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for d in part {
                let t = Instant::now();
                let receipt = ledger.append(d).await.map_err(err("append"))?;
                out.push((receipt, t.elapsed()));
            }
            Ok::<_, CompareError>(out)
        });
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let (ledger, stop) = (ledger.clone(), stop.clone());
        let questions: Vec<(String, String, String)> = drafts
            .iter()
            .filter_map(|d| {
                Some((
                    d.controller.to_string(),
                    d.subject.as_ref()?.as_str().to_string(),
                    d.kind.purpose()?.to_string(),
                ))
            })
            .take(4096)
            .collect();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for (c, s, p) in questions.iter().cycle() {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                tick.tick().await;
                let t = Instant::now();
                // A customer whose first event is not recorded yet is an unknown subject: an
                // answer too.
                let _ = ledger.may_process(c, s, p, kvitto::AsOf::now());
                lat.push(t.elapsed());
            }
            lat
        })
    };
    let mut receipts = Vec::with_capacity(drafts.len());
    let mut append_latency = Vec::with_capacity(drafts.len());
    while let Some(r) = set.join_next().await {
        for (receipt, t) in r.map_err(err("append task"))?? {
            receipts.push(receipt);
            append_latency.push(t);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let ask_latency = asker.await.map_err(err("may_process task"))?;
    receipts.sort_by_key(|r| r.seq);
    Ok(Loaded { receipts, append_latency, ask_latency })
}

/// The p50 and p99 of `v`, in milliseconds (0 for an empty sample).
pub fn p50_p99_ms(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    (at(0.50), at(0.99))
}

/// Adds `p50_ms`/`p99_ms` to `m` and its note.
fn with_latency(mut m: Measured, what: &str, sample: Vec<Duration>) -> Measured {
    let (p50, p99) = p50_p99_ms(sample);
    let show = |ms: f64| if ms < 1.0 { format!("{:.1} µs", ms * 1e3) } else { format!("{ms:.2} ms") };
    m.note = format!("{}; {what} p50 {}, p99 {}", m.note, show(p50), show(p99));
    m.extra.insert("p50_ms".into(), json!(round(p50, 3)));
    m.extra.insert("p99_ms".into(), json!(round(p99, 3)));
    m
}

/// Commit group sizes, in order: the writer gives every event of one group the same
/// `recorded_at`, and a later group a later one (one fdatasync lies between them).
pub fn group_sizes(receipts: &[Receipt]) -> Vec<usize> {
    let mut sizes: Vec<usize> = Vec::new();
    let mut last = None;
    for r in receipts {
        match (last, sizes.last_mut()) {
            (Some(t), Some(n)) if t == r.recorded_at => *n += 1,
            _ => sizes.push(1),
        }
        last = Some(r.recorded_at);
    }
    sizes
}

fn groups<'a>(canonical: &'a [Vec<u8>], sizes: &'a [usize]) -> impl Iterator<Item = (usize, &'a [Vec<u8>])> + 'a {
    let mut start = 0;
    sizes.iter().map(move |&k| {
        let g = (start, &canonical[start..start + k]);
        start += k;
        g
    })
}

/// The chained hash a SQLite-based team would compute: BLAKE3(prev ‖ bytes).
fn chain_hash(prev: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(bytes);
    *h.finalize().as_bytes()
}

fn sqlite_open(path: &Path) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path).map_err(err("sqlite open"))?;
    c.pragma_update(None, "journal_mode", "WAL").map_err(err("sqlite journal_mode"))?;
    c.pragma_update(None, "synchronous", "FULL").map_err(err("sqlite synchronous"))?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, prev_hash BLOB NOT NULL, hash BLOB NOT NULL, canonical BLOB NOT NULL)",
    )
    .map_err(err("sqlite create table"))?;
    Ok(c)
}

/// Appends one row inside the caller's transaction: reads the tip, chains, inserts.
fn sqlite_insert(tx: &rusqlite::Transaction<'_>, bytes: &[u8]) -> Result<()> {
    let tip: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(err("sqlite tip"))?;
    let (seq, prev) = tip.map_or((0, vec![0u8; 32]), |(s, h)| (s + 1, h));
    let hash = chain_hash(&prev, bytes);
    tx.prepare_cached("INSERT INTO events (seq, prev_hash, hash, canonical) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| s.execute(rusqlite::params![seq, prev, &hash[..], bytes]))
        .map_err(err("sqlite insert"))?;
    Ok(())
}

/// `callers` threads share one connection (the fastest way to serialize SQLite writers: no
/// busy-wait sleeps) and each commits one transaction per event.
fn sqlite_per_event(path: &Path, canonical: &[Vec<u8>], callers: usize) -> Result<Duration> {
    let conn = Arc::new(Mutex::new(sqlite_open(path)?));
    let chunk = canonical.len().div_ceil(callers.max(1)).max(1);
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = canonical
            .chunks(chunk)
            .map(|part| {
                let conn = conn.clone();
                s.spawn(move || {
                    for bytes in part {
                        let mut c = conn.lock().map_err(|_| CompareError("sqlite lock poisoned".into()))?;
                        let tx = c.transaction().map_err(err("sqlite begin"))?;
                        sqlite_insert(&tx, bytes)?;
                        tx.commit().map_err(err("sqlite commit"))?;
                    }
                    Ok::<_, CompareError>(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| CompareError("sqlite caller panicked".into()))?)
    })?;
    Ok(started.elapsed())
}

fn sqlite_grouped(path: &Path, canonical: &[Vec<u8>], sizes: &[usize]) -> Result<Duration> {
    let mut c = sqlite_open(path)?;
    let started = Instant::now();
    for (_, group) in groups(canonical, sizes) {
        let tx = c.transaction().map_err(err("sqlite begin"))?;
        for bytes in group {
            sqlite_insert(&tx, bytes)?;
        }
        tx.commit().map_err(err("sqlite commit"))?;
    }
    Ok(started.elapsed())
}

fn raw_sled_per_key(path: &Path, canonical: &[Vec<u8>], sizes: &[usize]) -> Result<Duration> {
    let db = sled::open(path).map_err(err("sled open"))?;
    let tree = db.open_tree("events").map_err(err("sled tree"))?;
    let started = Instant::now();
    for (start, group) in groups(canonical, sizes) {
        let mut batch = sled::Batch::default();
        for (i, bytes) in group.iter().enumerate() {
            batch.insert(&((start + i) as u64).to_be_bytes(), bytes.as_slice());
        }
        tree.apply_batch(batch).map_err(err("sled apply_batch"))?;
        db.flush().map_err(err("sled flush"))?;
    }
    Ok(started.elapsed())
}

fn engine_limit(path: &Path, canonical: &[Vec<u8>], sizes: &[usize]) -> Result<Duration> {
    let db = sled::open(path).map_err(err("sled open"))?;
    let tree = db.open_tree("events").map_err(err("sled tree"))?;
    let file = File::open(path.join("db")).map_err(err("open sled's db file"))?;
    let started = Instant::now();
    let mut value = Vec::new();
    for (start, group) in groups(canonical, sizes) {
        value.clear();
        for bytes in group {
            value.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            value.extend_from_slice(bytes);
        }
        tree.insert((start as u64).to_be_bytes(), value.as_slice()).map_err(err("sled insert"))?;
        db.flush().map_err(err("sled flush"))?;
        file.sync_data().map_err(err("fdatasync"))?;
    }
    Ok(started.elapsed())
}

/// Builds a ledger of `size` demo events, then times `history` for customers spread over it.
fn history_lookup(rt: &tokio::runtime::Runtime, dir: &Path, size: usize, options: &Options) -> Result<Measured> {
    std::fs::create_dir_all(dir).map_err(err("history directory"))?;
    let (ledger, who) = rt.block_on(crate::big_ledger(dir, size, options.seed));
    let lookups = options.history_lookups.min(who.len()).max(1);
    let step = (who.len() / lookups).max(1);
    let mut latencies = Vec::with_capacity(lookups);
    let mut events = 0usize;
    let started = Instant::now();
    for (controller, customer, _) in who.iter().step_by(step).take(lookups) {
        let t = Instant::now();
        let h = rt.block_on(ledger.history(controller, customer)).map_err(err("history"))?;
        latencies.push(t.elapsed());
        events += h.len();
    }
    let elapsed = started.elapsed();
    rt.block_on(ledger.close()).expect("ledger closes cleanly");
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let mut m = Measured::new(
        events,
        elapsed,
        format!(
            "{} lookups in a {}-event ledger: p50 {:.0} µs, p99 {:.0} µs ({:.1} events each)",
            latencies.len(),
            short(size),
            pick(0.5),
            pick(0.99),
            events as f64 / latencies.len() as f64
        ),
    );
    m.extra.insert("ledger_events".into(), json!(size));
    m.extra.insert("lookups".into(), json!(latencies.len()));
    m.extra.insert("p50_us".into(), json!(round(pick(0.5), 1)));
    m.extra.insert("p99_us".into(), json!(round(pick(0.99), 1)));
    Ok(m)
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> u64 {
    if let Ok(m) = std::fs::metadata(dir)
        && m.is_file()
    {
        return m.len();
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Parses "10000,100000,1000000" (also "10k,100k,1m").
pub fn parse_sizes(s: &str) -> std::result::Result<Vec<usize>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim().to_ascii_lowercase();
            let (num, mul) = match p.strip_suffix('m') {
                Some(n) => (n.to_string(), 1_000_000),
                None => match p.strip_suffix('k') {
                    Some(n) => (n.to_string(), 1_000),
                    None => (p.clone(), 1),
                },
            };
            num.parse::<usize>().map(|v| v * mul).map_err(|_| format!("`{p}` is not a size (e.g. 10000, 100k, 1m)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(seq: u64, at: i64) -> Receipt {
        Receipt {
            seq,
            hash: kvitto::EventHash([0; 32]),
            event_id: kvitto::EventId::new_v7(),
            recorded_at: kvitto::Timestamp::from_micros(at).expect("time"),
        }
    }

    #[test]
    fn groups_follow_recorded_at() {
        let rs = [receipt(0, 5), receipt(1, 5), receipt(2, 9), receipt(3, 12), receipt(4, 12), receipt(5, 12)];
        assert_eq!(group_sizes(&rs), vec![2, 1, 3]);
        assert_eq!(group_sizes(&[]), Vec::<usize>::new());
        let canonical: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i]).collect();
        let got: Vec<(usize, usize)> = groups(&canonical, &[2, 1, 3]).map(|(s, g)| (s, g.len())).collect();
        assert_eq!(got, vec![(0, 2), (2, 1), (3, 3)]);
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_sizes("10000, 100k,1m"), Ok(vec![10_000, 100_000, 1_000_000]));
        assert!(parse_sizes("1x").is_err());
        assert_eq!(short(1_000_000), "1m");
        assert_eq!(short(20_000), "20k");
        assert_eq!(short(1_500), "1500");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }
}
