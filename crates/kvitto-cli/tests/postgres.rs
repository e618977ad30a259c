//! The CLI on PostgreSQL (a throw-away server started for this test process, or
//! `KVITTO_TEST_DATABASE_URL`): the demo end to end on the database, commands finding the
//! database from the ledger directory, clear refusals, and `migrate`. Skips with a message
//! where no server can be started (fails instead under `CI=true`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use kvitto_postgres::testing;

fn kvitto(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvitto")).args(args).env_remove("KVITTO_DATABASE_URL").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_demo_runs_on_postgres_and_every_command_finds_the_database() {
    let Some(url) = testing::database_or_skip("the_demo_runs_on_postgres_and_every_command_finds_the_database") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = kvitto(&["demo", "--customers", "40", "--seed", "3", "--dir", s(&dir), "--store", &url]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("verify: ok:"), "{out}");
    assert!(out.contains("exactly the planted set, nothing else"), "{out}");
    assert!(out.contains("in postgres"), "{out}");
    assert!(!dir.join("store").exists(), "no sled store: the events are in the database");
    // Later commands need no --store: the ledger directory names the database.
    let o = kvitto(&["--ledger", s(&dir), "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).starts_with("ok: "), "{}", text(&o.stdout));
    let o = kvitto(&["--ledger", s(&dir), "log", "--from", "0", "--limit", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("controller_declared"), "{}", text(&o.stdout));
    // A second demo replaces the first, in the directory and in the database.
    let o = kvitto(&["demo", "--customers", "10", "--dir", s(&dir), "--store", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("replaced the earlier demo ledger in the database"), "{}", text(&o.stdout));
    // `init` refuses a database that holds a ledger, and a --store that is no store.
    let other = d.path().join("other");
    let o = kvitto(&["--ledger", s(&other), "--store", &url, "init", "--origin", "other.example/log"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("already holds a kvitto ledger"), "{}", text(&o.stderr));
    let o = kvitto(&["--ledger", s(&other), "--store", "mysql://u:secret@h/db", "init", "--origin", "o.example/l"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("secret"), "a URL's password is never echoed: {}", text(&o.stderr));
}

#[test]
fn migrate_moves_a_sled_ledger_into_postgres() {
    let Some(url) = testing::database_or_skip("migrate_moves_a_sled_ledger_into_postgres") else { return };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ledger");
    let o = kvitto(&["--ledger", s(&dir), "init", "--origin", "kalejdo.example/log"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvitto"))
        .args(["--ledger", s(&dir), "append", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..25 {
            writeln!(
                stdin,
                r#"{{"type":"consent_given","controller":"kalejdo","subject":"m-{i}","purpose":"marketing"}}"#
            )
            .unwrap();
        }
    }
    assert!(child.wait_with_output().unwrap().status.success());
    let before = kvitto(&["--ledger", s(&dir), "verify"]);
    let o = kvitto(&["migrate", "--from", s(&dir), "--to", &url]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("migrated 25 events"), "{out}");
    assert!(dir.join("store.sled-migrated").is_dir());
    let after = kvitto(&["--ledger", s(&dir), "verify"]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stderr));
    assert_eq!(text(&after.stdout).lines().next(), text(&before.stdout).lines().next(), "same count and head");
    let o = kvitto(&["--ledger", s(&dir), "history", "--controller", "kalejdo", "--subject", "m-3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Migrating it again is refused: it is on PostgreSQL now.
    let o = kvitto(&["migrate", "--from", s(&dir), "--to", &url]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}
