//! Keeps the comparison runner from rotting: a small run through the real binary, checking
//! that every measurement and ratio is there and that the runner's own bookkeeping holds.
//! No timing assertions — speed is judged by reading the numbers, on an idle machine.

use std::process::Command;

#[test]
fn small_compare_run_writes_every_result_and_ratio() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let json = dir.path().join("compare.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kvitto-bench"))
        .args(["compare", "--events", "20000", "--per-event-limit", "200", "--history-sizes", "2k,20k"])
        .args(["--history-lookups", "100", "--json"])
        .arg(&json)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run kvitto-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "compare failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json file")).expect("json");
    assert_eq!(v["events"], 20000);
    let results = v["results"].as_object().expect("results");
    for name in [
        "kvitto_append_concurrent",
        "kvitto_append_single",
        "sqlite_per_event",
        "sqlite_grouped",
        "raw_sled_per_key",
        "engine_limit",
        "kvitto_verify",
        "raw_blake3",
        "rebuild",
        "history_2k",
        "history_20k",
    ] {
        let r = &results[name];
        assert!(r["events_per_sec"].as_f64().is_some_and(|x| x > 0.0), "{name}: {r}");
        assert!(stdout.contains(name), "table lacks {name}");
    }
    // The stream sizes each measurement claims.
    for name in ["kvitto_append_concurrent", "sqlite_grouped", "raw_sled_per_key", "engine_limit", "raw_blake3"] {
        assert_eq!(results[name]["events"], 20000, "{name}");
    }
    assert_eq!(results["kvitto_verify"]["events"], 20000);
    assert_eq!(results["rebuild"]["events"], 20000);
    assert_eq!(results["kvitto_append_single"]["events"], 200);
    assert_eq!(results["sqlite_per_event"]["events"], 200);
    assert_eq!(results["history_20k"]["ledger_events"], 20000);
    assert_eq!(results["history_20k"]["lookups"], 100);
    for ratio in [
        "append_vs_sqlite_per_event",
        "append_vs_sqlite_grouped",
        "append_vs_raw_sled_per_key",
        "append_vs_engine_limit",
        "verify_vs_raw_blake3",
    ] {
        assert!(v["ratios"][ratio].as_f64().is_some_and(|x| x > 0.0), "{ratio}: {}", v["ratios"]);
    }
    // Groups are what the grouped baselines replayed: they add up to the stream, none over
    // the writer's limit.
    let groups = &v["groups"];
    assert!(groups["count"].as_u64().is_some_and(|c| (1..=20000).contains(&c)), "{groups}");
    assert!(groups["max_events"].as_u64().is_some_and(|m| (1..=1024).contains(&m)), "{groups}");
    let canonical = v["canonical_bytes_per_event"].as_f64().expect("canonical size");
    assert!((100.0..1000.0).contains(&canonical), "{canonical}");
    assert!(v["bytes_per_event"].as_f64().is_some_and(|b| b > canonical), "{v}");
    // Latencies: the concurrent and the single append, and the questions asked meanwhile.
    for name in ["kvitto_append_concurrent", "kvitto_append_single", "may_process_under_load"] {
        let (p50, p99) = (results[name]["p50_ms"].as_f64(), results[name]["p99_ms"].as_f64());
        assert!(p50.zip(p99).is_some_and(|(a, b)| a > 0.0 && b >= a), "{name}: {}", results[name]);
        assert!(stdout.lines().any(|l| l.starts_with(name) && l.contains(" p99 ")), "{name} row lacks its p99");
    }
    assert!(results["may_process_under_load"]["events"].as_u64().is_some_and(|n| n > 0));
    // The writer's own account covers the same groups the receipts show.
    let writer = &v["writer"];
    assert_eq!(writer["groups"], groups["count"], "{writer}");
    assert_eq!(writer["events"], 20000, "{writer}");
    assert!(writer["groups_erasing"].as_u64().is_some_and(|e| e > 0), "the demo stream erases: {writer}");
    assert!(stdout.contains("per group (µs, mean): seal "), "{stdout}");
    // Space: what kvitto stores in sled, by tree, against sled's files and the vault.
    let space = &v["space"];
    let stored = space["stored_per_event"].as_f64().expect("stored bytes");
    let by_tree = space["stored_per_event_by_tree"].as_object().expect("by tree");
    assert!(
        by_tree["log"].as_f64().is_some_and(|b| b < canonical && b > canonical / 4.0),
        "the log holds the canonical bytes compressed (FORMAT.md §4: LZ4 chunks), to less than them: {space}"
    );
    assert!(by_tree.contains_key("index") && by_tree.contains_key("projections"), "{space}");
    let sum: f64 = by_tree.values().filter_map(serde_json::Value::as_f64).sum();
    assert!((sum - stored).abs() < 1.0, "{space}");
    assert!(space["vault_per_event"].as_f64().is_some_and(|b| b > 0.0), "{space}");
    // The index's share, by kind of entry, adds up to the index tree and names the kinds.
    let index = by_tree["index"].as_f64().expect("index bytes");
    let kinds = space["index_per_event_by_kind"].as_object().expect("index by kind");
    let kind_sum: f64 = kinds.values().filter_map(serde_json::Value::as_f64).sum();
    assert!((kind_sum - index).abs() < 1.0, "{space}");
    for kind in ["Merkle pages", "event ids", "subject tips"] {
        assert!(kinds.get(kind).and_then(serde_json::Value::as_f64).is_some_and(|b| b > 0.0), "{kind}: {space}");
    }
    assert!(stdout.contains("index bytes per event: "), "{stdout}");
    assert!(stdout.contains("sled's space amplification"), "{stdout}");
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_kvitto-bench"))
        .args(["compare", "--history-sizes", "ten"])
        .output()
        .expect("run kvitto-bench");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`ten` is not a size"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_kvitto-bench")).args(["compare", "--events", "0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn small_scale_run_gives_both_curves_and_a_plot() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let json = dir.path().join("scale.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kvitto-bench"))
        .args(["scale", "--callers", "1,4", "--events", "1500", "--sizes", "2k,6k", "--json"])
        .arg(&json)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run kvitto-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "scale failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json file")).expect("json");
    let append = v["append"].as_array().expect("append curve");
    assert_eq!(append.iter().map(|p| p["callers"].as_u64()).collect::<Vec<_>>(), [Some(1), Some(4)]);
    // One caller waits for each receipt: every group holds one event.
    assert_eq!(append[0]["mean_group"], 1.0, "{}", append[0]);
    assert_eq!(append[1]["events"], 1500);
    for p in append {
        assert!(p["events_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{p}");
        assert!(p["p99_ms"].as_f64() >= p["p50_ms"].as_f64(), "{p}");
    }
    let sizes = v["sizes"].as_array().expect("size curve");
    assert_eq!(sizes.len(), 2);
    for p in sizes {
        assert!(p["events"].as_u64().is_some_and(|n| n >= 2000), "{p}");
        for k in ["verify_per_sec", "rebuild_per_sec"] {
            assert!(p[k].as_f64().is_some_and(|r| r > 0.0), "{k}: {p}");
        }
        // An inclusion proof in a tree of n leaves has at most ⌈log2 n⌉ hashes.
        let n = p["events"].as_u64().unwrap_or(0) as f64;
        let hashes = p["inclusion_proof_hashes"].as_u64().unwrap_or(99) as f64;
        assert!(hashes >= 1.0 && hashes <= n.log2().ceil(), "{p}");
        assert!(p["bundle_bytes"].as_u64().is_some_and(|b| b > 0) && p["bundle_events"].as_u64() > Some(0), "{p}");
    }
    let svg = dir.path().join("scale.svg");
    let plot = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/plot-scale"))
        .arg(&json)
        .arg(&svg)
        .output()
        .expect("run scripts/plot-scale");
    assert!(plot.status.success(), "{}", String::from_utf8_lossy(&plot.stderr));
    let svg = std::fs::read_to_string(&svg).expect("svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 1 + 2 + 2 + 3, "one line per series");
}
