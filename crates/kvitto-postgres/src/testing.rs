//! A throw-away PostgreSQL cluster for tests (feature `testing`): `KVITTO_TEST_DATABASE_URL`
//! when set (a server to use; each test gets a database of its own on it), otherwise one
//! cluster per test process, created with the installed `initdb` in a temporary directory,
//! listening only on a Unix socket in it, and stopped and removed by a watchdog when the
//! process ends. As root, the cluster runs as the `postgres` user (`initdb` refuses root).
//! Where no server can be had, [`database`] says why and the caller skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

struct Cluster {
    /// URL of the maintenance database (`postgres`).
    admin_url: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("KVITTO_TEST_DATABASE_URL") {
        return Ok(Cluster { admin_url: url });
    }
    let bin = bin_dir().ok_or("no PostgreSQL server installed (no initdb on PATH or in /usr/lib/postgresql)")?;
    let root = is_root();
    let base = std::env::temp_dir().join(format!("kvitto-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    if root {
        run(Command::new("chown").arg("postgres:").arg(&base), "chown postgres")?;
    }
    let data = base.join("data");
    run(
        as_cluster_user(root, &bin.join("initdb")).args(["-D"]).arg(&data).args([
            "-U",
            "kvitto",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    )?;
    // Listen on a socket in the temp directory only; the watchdog stops the server and removes
    // the directory once this process is gone.
    let script = format!(
        "'{bin}/postgres' -D '{data}' -k '{base}' -c listen_addresses='' -c fsync=on -c max_connections=200 \
         >'{base}/log' 2>&1 & pg=$!; while [ -e /proc/{me} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf '{base}'",
        bin = bin.display(),
        data = data.display(),
        base = base.display(),
        me = std::process::id()
    );
    let mut sh = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    sh.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    sh.spawn().map_err(|e| format!("starting postgres: {e}"))?;
    let admin_url = format!("postgresql://kvitto@localhost/postgres?host={}", base.display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match postgres::Client::connect(&admin_url, postgres::NoTls) {
            Ok(_) => return Ok(Cluster { admin_url }),
            Err(e) if std::time::Instant::now() > deadline => {
                let log = std::fs::read_to_string(base.join("log")).unwrap_or_default();
                return Err(format!("the test server did not come up: {e}; its log: {log}"));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// A URL of a new, empty database on the test server, or why there is none.
pub fn database() -> Result<String, String> {
    // The blocking client must not run on a tokio worker: start on a thread of its own.
    let cluster = CLUSTER
        .get_or_init(|| std::thread::spawn(start).join().unwrap_or_else(|_| Err("starting the server panicked".into())))
        .as_ref()
        .map_err(|e| e.clone())?;
    database_on(&cluster.admin_url)
}

/// A URL of a new, empty database on the server whose maintenance database `admin_url` names
/// (`…/postgres…`; the new database's name replaces it).
pub fn database_on(admin_url: &str) -> Result<String, String> {
    let name = format!("kvitto_t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = admin_url.to_string();
    let url = with_dbname(admin_url, &name);
    // The blocking client must not run on a tokio worker: connect on a thread of its own.
    let created = std::thread::spawn(move || -> Result<(), String> {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| crate::describe_pg(&e))?;
        c.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| crate::describe_pg(&e))?;
        Ok(())
    })
    .join()
    .map_err(|_| "creating the test database panicked".to_string())?;
    created?;
    Ok(url)
}

/// `url` with its database name replaced by `db` (`scheme://authority/db?params`).
fn with_dbname(url: &str, db: &str) -> String {
    if let Some(i) = url.find("://") {
        let rest = &url[i + 3..];
        if let Some(j) = rest.find('/') {
            let after = &rest[j + 1..];
            let end = after.find('?').unwrap_or(after.len());
            return format!("{}{}/{db}{}", &url[..i + 3], &rest[..j], &after[end..]);
        }
        return format!("{url}/{db}");
    }
    format!("{url} dbname={db}")
}

/// [`database`], or a message saying the PostgreSQL tests skip and why. With `CI=true` a
/// missing server fails the test instead.
pub fn database_or_skip(test: &str) -> Option<String> {
    match database() {
        Ok(url) => Some(url),
        // In CI (`CI=true`) the server is installed by `.ci/run`: not having one is a failure.
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: no PostgreSQL server could be started, and CI=true requires one ({why})")
        }
        Err(why) => {
            eprintln!("SKIP {test}: no PostgreSQL server could be started here ({why})");
            None
        }
    }
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Edits record `seq` of the ledger in the database at `url` behind kvitto's back, as someone
/// with write access to the database could (tamper tests).
pub fn edit_record(url: &str, seq: u64, edit: &mut dyn FnMut(&mut kvitto_storage::Record)) {
    let url = url.to_string();
    let (first, body) = on_thread({
        let url = url.clone();
        move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let row = c
                .query_one(
                    "SELECT first_seq, body FROM kvitto_chunk WHERE first_seq <= $1 ORDER BY first_seq DESC LIMIT 1",
                    &[&(seq as i64)],
                )
                .expect("the chunk holding the record");
            (row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1))
        }
    });
    let mut records: Vec<kvitto_storage::Record> =
        kvitto_storage::codec::decode_chunk(&body, || "chunk".into()).expect("the chunk decodes");
    edit(&mut records[(seq - first as u64) as usize]);
    let body = kvitto_storage::codec::encode(&records).expect("encode");
    on_thread(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.execute("UPDATE kvitto_chunk SET body = $1 WHERE first_seq = $2", &[&body, &first]).expect("update");
    });
}

/// Whether `needle` occurs in any stored value of the ledger's tables at `url`.
pub fn engine_holds(url: &str, needle: &[u8]) -> bool {
    let (url, needle) = (url.to_string(), needle.to_vec());
    on_thread(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let columns = [
            ("kvitto_chunk", "body"),
            ("kvitto_ledger", "head_hash"),
            ("kvitto_subject_head", "last_hash"),
            ("kvitto_merkle_node", "hash"),
            ("kvitto_projection", "state"),
            ("kvitto_map_entry", "head"),
            ("kvitto_map_commitment", "root"),
        ];
        columns.iter().any(|(table, column)| {
            c.query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE position($1 in {column}) > 0)"),
                &[&needle],
            )
            .expect("search")
            .get::<_, bool>(0)
        }) || c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM kvitto_checkpoint WHERE position($1 in convert_to(note, 'UTF8')) > 0)",
                &[&needle],
            )
            .expect("search")
            .get::<_, bool>(0)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced_in_the_path_only() {
        assert_eq!(
            super::with_dbname("postgresql://postgres@h/postgres?host=/var/run/postgresql", "x"),
            "postgresql://postgres@h/x?host=/var/run/postgresql"
        );
        assert_eq!(super::with_dbname("postgres://u@h:5433/postgres", "x"), "postgres://u@h:5433/x");
        assert_eq!(super::with_dbname("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
