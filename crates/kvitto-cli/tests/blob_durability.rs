//! No receipt with an unsynced sled blob behind it: a large append traced with strace shows
//! every blob file sled created before the commit's fdatasync fsynced, and the blob
//! directory after them, before that fdatasync — which comes before the first receipt
//! reaches stdout (docs/FORMAT.md §4, *Blob files*).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// Events enough for sled to consolidate leaf pages of large chunks into blob files (about
/// one per thousand events of this size).
const EVENTS: usize = 4000;

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn events(path: &Path) {
    let mut out = String::from(
        r#"{"type":"purpose_declared","controller":"kalejdo","purpose":"service-delivery","description":"Leverans","legal_basis":"contract","register":"kundregister"}"#,
    );
    out.push('\n');
    for i in 0..EVENTS {
        out.push_str(&format!(
            r#"{{"type":"data_collected","controller":"kalejdo","subject":"cust-{}","register":"kundregister","categories":["name","contact"],"purpose":"service-delivery","legal_basis":"contract","source":"subject","details":{{"name":"Person {i}"}}}}"#,
            i % 700
        ));
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// One traced system call: its name, its first argument as strace prints it with `-y`
/// (`9</path/to/file>`), and whether it completed.
struct Call<'a> {
    name: &'a str,
    arg: &'a str,
    line: &'a str,
}

/// Parses `PID name(args…` lines, joining `<... name resumed>` halves to their start: the
/// position of a call is where it completed, except that a write counts from where it began.
fn calls(trace: &str) -> Vec<(usize, Call<'_>)> {
    let mut started: HashMap<&str, (usize, &str)> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else { continue };
        let rest = rest.trim_start();
        if rest.starts_with("<...") {
            if let Some((start, first)) = started.remove(pid) {
                let at = if first.starts_with("write(") { start } else { i };
                out.push((at, parse(first, line)));
            }
        } else if let Some(first) = rest.strip_suffix("<unfinished ...>") {
            started.insert(pid, (i, first.trim_end()));
        } else {
            out.push((i, parse(rest, line)));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

fn parse<'a>(first: &'a str, line: &'a str) -> Call<'a> {
    let (name, args) = first.split_once('(').unwrap_or((first, ""));
    let arg = args.split([',', ')']).next().unwrap_or("");
    Call { name, arg, line }
}

/// The path inside `fd<path>`.
fn fd_path(arg: &str) -> Option<&str> {
    arg.split_once('<').and_then(|(_, p)| p.strip_suffix('>'))
}

#[test]
fn every_blob_is_fsynced_with_its_directory_before_the_first_receipt() {
    if !strace_works() {
        eprintln!(
            "SKIPPED: strace is not installed or may not trace here (ptrace refused); .ci/run installs it with apt-get"
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let ledger = d.path().join("ledger");
    let input = d.path().join("events.jsonl");
    events(&input);
    let kvitto = env!("CARGO_BIN_EXE_kvitto");
    let o =
        Command::new(kvitto).arg("--ledger").arg(&ledger).args(["init", "--origin", "blob.test/l"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trace_file = d.path().join("trace");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "256", "-e", "trace=openat,fsync,fdatasync,write,unlink,unlinkat", "-o"])
        .arg(&trace_file)
        .arg(kvitto)
        .arg("--ledger")
        .arg(&ledger)
        .arg("append")
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), EVENTS + 1, "one receipt per event");

    let trace = std::fs::read_to_string(&trace_file).unwrap();
    if let Ok(keep) = std::env::var("KVITTO_KEEP_TRACE") {
        std::fs::copy(&trace_file, keep).unwrap();
    }
    let blob_dir = ledger.join("store").join("blobs");
    let blob_dir = blob_dir.to_str().unwrap();
    let calls = calls(&trace);
    let first_receipt = calls
        .iter()
        .find(|(_, c)| c.name == "write" && c.arg.starts_with("1<"))
        .map(|(i, _)| *i)
        .expect("the receipts were written to stdout");

    // The commit's fdatasync of sled's log: the last one before the first receipt.
    let db = ledger.join("store").join("db");
    let db = db.to_str().unwrap();
    let commit_sync = calls
        .iter()
        .filter(|(i, c)| *i < first_receipt && c.name == "fdatasync" && fd_path(c.arg) == Some(db))
        .map(|(i, _)| *i)
        .next_back()
        .expect("the commit fdatasyncs sled's log before the receipt");

    // Blobs sled created before that fdatasync (and had not removed again), by path. Blobs
    // sled's other threads write after it (a page relocated while the receipt is on its way)
    // hold nothing the receipt needs: the log made durable points at the earlier copies.
    let mut created: HashMap<String, usize> = HashMap::new();
    let mut synced: HashMap<String, usize> = HashMap::new();
    let mut dir_synced = Vec::new();
    for (i, c) in calls.iter().filter(|(i, _)| *i < commit_sync) {
        let path = fd_path(c.arg);
        match c.name {
            "openat" if c.line.contains("O_CREAT") && c.line.contains(&format!("{blob_dir}/")) => {
                let (_, ret) = c.line.rsplit_once("= ").unwrap();
                if let Some(p) = fd_path(ret.trim()) {
                    created.insert(p.to_string(), *i);
                }
            }
            "unlink" | "unlinkat" => created.retain(|p, _| !c.line.contains(p.as_str())),
            "fsync" | "fdatasync" if path == Some(blob_dir) => dir_synced.push(*i),
            "fsync" | "fdatasync" if path.is_some_and(|p| p.starts_with(&format!("{blob_dir}/"))) => {
                synced.insert(path.unwrap_or_default().to_string(), *i);
            }
            _ => {}
        }
    }
    assert!(!created.is_empty(), "the append made sled write no blob file, so this test shows nothing; raise EVENTS");
    for (blob, at) in &created {
        let sync = synced
            .get(blob)
            .unwrap_or_else(|| panic!("blob {blob} (trace line {at}) was not fsynced before the commit's fdatasync"));
        assert!(sync > at, "blob {blob} fsynced before it was created");
        assert!(
            dir_synced.iter().any(|d| d > sync),
            "the blob directory was not fsynced after blob {blob} (line {sync}) and before the commit's fdatasync"
        );
    }
}
