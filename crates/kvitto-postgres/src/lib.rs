//! kvitto-postgres: the storage traits on PostgreSQL (tokio-postgres, through its blocking
//! `postgres` client on connection threads of its own — see `conn`).
//!
//! - **One transaction per commit group**: the head row is updated conditionally
//!   (`WHERE next_seq = first_seq`) and the group's chunks inserted in one multi-row insert;
//!   the receipt follows COMMIT, with `synchronous_commit = on` set on every session.
//! - **One writer per ledger**: the writer holds a session advisory lock for as long as it is
//!   open; a second writer waits for it (up to [`Role::Writer`]'s `wait`) and then refuses,
//!   clearly. Should two writers ever both believe they hold the ledger (a lock lost with its
//!   session), the conditional head update lets only one of them extend the chain: the other
//!   gets [`StoreError::Fenced`] and writes nothing — no fork.
//! - **Any number of readers**: [`Role::Reader`] takes no lock and writes nothing.
//! - **Keys stay out of PostgreSQL**: subject keys live in the key vault beside the writer
//!   (`kvitto-vault`), because PostgreSQL keeps deleted rows in dead tuples until VACUUM, in
//!   WAL, on replicas and in base backups (README, "Erasure on PostgreSQL").
//!
//! One ledger per database (or per schema, named in the URL's `options=-csearch_path=…`).

mod conn;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvitto_core::{EventId, LedgerSecret, SubjectId};
use kvitto_storage::codec::{self, Head, Record, SubjectHeadRec};
use kvitto_storage::{
    Acked, Backend, CommitError, CommitStats, DerivedIndex, EventLog, IndexBatch, Items, LedgerInfo, MapEntryRec,
    OpenError, ProjectionBatch, ProjectionStore, StoreError,
};
use kvitto_vault::keyfiles::{self, LEDGER_FORMAT, VAULT_DIR};
use kvitto_vault::{OlderSegments, Vault};
use postgres::Client;

pub use schema::SCHEMA_VERSION;

use conn::Conns;

/// The file in the ledger directory naming the database and the ledger in it.
pub const STORE_FILE: &str = "postgres.store";
/// The marker's name for this backend.
pub const KIND: &str = "postgres";
/// High half of the session advisory lock a ledger's writer holds; the low half comes from
/// the ledger id, so ledgers in different schemas of one database lock apart.
const WRITER_LOCK: i64 = 0x6b76_6974_0000_0000; // "kvit"
/// The file in the ledger directory a writer holds an exclusive lock on, for the vault: the
/// advisory lock lives in the database, and two writers reaching two databases (a promoted
/// replica and the old primary) must still never write one vault.
pub const WRITER_FILE: &str = "writer.lock";

/// The advisory lock key of ledger `id`.
fn writer_lock(id: &[u8; 16]) -> i64 {
    WRITER_LOCK | i64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
}
/// Connections for reads and derived data (the writer has its own).
const POOL: usize = 3;
/// Rows fetched per page by the iterators (small fixed-size rows).
const PAGE: i64 = 4096;
/// Chunks fetched per page (each ≤ 64 KiB: at most 16 MiB in memory).
const CHUNK_PAGE: i64 = 256;

/// How a process opens a PostgreSQL ledger.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Appends: takes the writer lock, waiting up to `wait` for a writer that holds it.
    Writer {
        /// How long to wait for another writer to let go before refusing.
        wait: Duration,
    },
    /// Reads only: no lock, nothing written.
    Reader,
}

/// The error's text with PostgreSQL's own message where there is one.
pub(crate) fn describe_pg(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("PostgreSQL: {} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn engine(e: &postgres::Error) -> StoreError {
    let io_kind = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()).map(|io| io.kind());
    StoreError::Engine { what: describe_pg(e), io_kind }
}

fn gone(_: conn::Gone) -> StoreError {
    StoreError::Engine { what: "the PostgreSQL connection thread stopped".into(), io_kind: None }
}

/// `user@host:port/dbname` — the URL without its password, for messages.
pub fn describe_config(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config.get_ports().first().map_or(String::new(), |p| format!(":{p}"));
    let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
    format!("postgres://{user}{host}{port}/{}", config.get_dbname().unwrap_or(""))
}

/// Parses a connection URL (`postgres://…` or `postgresql://…`, or key=value pairs).
pub fn parse_url(url: &str) -> Result<postgres::Config, OpenError> {
    url.parse::<postgres::Config>().map_err(|e| OpenError::Engine {
        location: "PostgreSQL URL".into(),
        what: format!("not a PostgreSQL connection URL ({e}); e.g. postgres://user@localhost/kvitto"),
    })
}

fn session_setup(c: &mut Client) -> Result<(), postgres::Error> {
    c.batch_execute("SET synchronous_commit = on; SET application_name = 'kvitto'")
}

fn open_err(location: &str) -> impl Fn(String) -> OpenError + '_ {
    move |what| OpenError::Engine { location: location.to_string(), what }
}

/// `url URL` / `ledger HEX` lines.
fn read_store_file(dir: &Path) -> Result<(String, [u8; 16]), OpenError> {
    let path = dir.join(STORE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| OpenError::Io { path: path.clone(), source })?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
    let damaged = |what: &str| OpenError::Damaged { path: path.clone(), what: what.into() };
    let url = field("url ").ok_or_else(|| damaged("no `url` line"))?;
    let id = field("ledger ")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| damaged("no `ledger` line with 32 hex digits"))?;
    Ok((url, id))
}

/// Creates a ledger whose events live in the (empty) database at `url`, with its key files
/// and vault in `dir` (a new or empty directory). Refuses a database that holds a ledger.
pub fn create(dir: &Path, url: &str, origin: &str, now_micros: i64) -> Result<(), OpenError> {
    keyfiles::prepare_new(dir)?;
    let db = NewDatabase::check(url)?;
    let secret = keyfiles::create_keys(dir)?;
    let vault_dir = dir.join(VAULT_DIR);
    Vault::open(&vault_dir, &secret, OlderSegments::Refuse)
        .map_err(|e| OpenError::Damaged { path: vault_dir, what: e.to_string() })?;
    let id = db.insert_ledger(origin, now_micros)?;
    write_store_file(dir, url, id)?;
    keyfiles::write_marker(dir, &keyfiles::Marker { store: Some(KIND.into()) })?;
    Ok(())
}

/// Writes the ledger directory's `postgres.store` (0600: the URL may hold a password).
pub fn write_store_file(dir: &Path, url: &str, id: [u8; 16]) -> Result<(), OpenError> {
    Ok(keyfiles::write_private_file(
        &dir.join(STORE_FILE),
        format!("url {url}\nledger {}\n", hex::encode(id)).as_bytes(),
    )?)
}

/// A database checked to hold no kvitto ledger (its schema migrated), ready for one.
#[derive(Debug)]
pub struct NewDatabase {
    conns: Conns,
    location: String,
}

impl NewDatabase {
    /// Connects, brings the schema up to date and refuses a database that holds a ledger.
    pub fn check(url: &str) -> Result<NewDatabase, OpenError> {
        let config = parse_url(url)?;
        let location = describe_config(&config);
        let err = open_err(&location);
        let conns = Conns::connect(&config, 1, "init", &session_setup).map_err(&err)?;
        let existing = conns
            .run(|c| -> Result<Option<String>, String> {
                schema::migrate(c)?;
                let row = c.query_opt("SELECT origin FROM kvitto_ledger", &[]).map_err(|e| describe_pg(&e))?;
                Ok(row.map(|r| r.get(0)))
            })
            .map_err(|_| err("the connection thread stopped".into()))?
            .map_err(&err)?;
        if let Some(other) = existing {
            return Err(OpenError::Damaged {
                path: PathBuf::from(&location),
                what: format!(
                    "the database already holds a kvitto ledger (origin {other:?}); give each ledger its own \
                     database or schema"
                ),
            });
        }
        Ok(NewDatabase { conns, location: location.clone() })
    }

    /// Records the new ledger (empty chain); returns its id.
    pub fn insert_ledger(self, origin: &str, created_at: i64) -> Result<[u8; 16], OpenError> {
        let err = open_err(&self.location);
        let id = kvitto_vault::random_bytes::<16>()
            .map_err(|e| OpenError::Damaged { path: PathBuf::from(&self.location), what: e.to_string() })?;
        let origin = origin.to_string();
        self.conns
            .run(move |c| -> Result<(), String> {
                c.execute(
                    "INSERT INTO kvitto_ledger (ledger_id, origin, format, created_at, next_seq, head_hash, \
                     last_recorded_at) VALUES ($1, $2, $3, $4, 0, $5, 0)",
                    &[&id.as_slice(), &origin, &(LEDGER_FORMAT as i32), &created_at, &[0u8; 32].as_slice()],
                )
                .map(|_| ())
                .map_err(|e| describe_pg(&e))
            })
            .map_err(|_| err("the connection thread stopped".into()))?
            .map_err(&err)?;
        Ok(id)
    }
}

/// An open PostgreSQL ledger store.
#[derive(Debug)]
pub struct PgStore {
    location: String,
    /// The writer's session (holds the advisory lock); `None` for a reader.
    writer: Option<Conns>,
    pool: Conns,
    vault: Vault,
    poisoned: AtomicBool,
    /// A writer's exclusive lock on the ledger directory's `writer.lock` (see [`WRITER_FILE`]).
    _dir_lock: Option<std::fs::File>,
}

/// Takes the exclusive lock on `dir/writer.lock`, waiting until `deadline`.
fn lock_directory(dir: &Path, deadline: Instant, wait: Duration) -> Result<std::fs::File, OpenError> {
    use fs2::FileExt;
    let path = dir.join(WRITER_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| OpenError::Io { path: path.clone(), source })?;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => {
                return Err(OpenError::Busy {
                    location: path.display().to_string(),
                    what: format!(
                        "another kvitto process writes this ledger directory (its key vault) — waited {} s. Stop                          it, wait longer (--wait-for-writer), or open read-only",
                        wait.as_secs()
                    ),
                });
            }
        }
    }
}

impl PgStore {
    /// Opens the ledger in `dir` (its key files and vault) on the database its store file
    /// names, or on `url` (the same ledger, e.g. reached at another host after a fail-over).
    pub fn open(dir: &Path, url: Option<&str>, role: Role) -> Result<(PgStore, LedgerSecret, LedgerInfo), OpenError> {
        keyfiles::read_marker(dir)?;
        let secret = keyfiles::read_secret(dir)?;
        let (file_url, ledger_id) = read_store_file(dir)?;
        let (store, info) = Self::open_ledger(dir, url.unwrap_or(&file_url), ledger_id, &secret, role)?;
        Ok((store, secret, info))
    }

    /// Opens ledger `ledger_id` in the database at `url`, with the key vault of `dir`.
    pub fn open_ledger(
        dir: &Path,
        url: &str,
        ledger_id: [u8; 16],
        secret: &LedgerSecret,
        role: Role,
    ) -> Result<(PgStore, LedgerInfo), OpenError> {
        let config = parse_url(url)?;
        let location = describe_config(&config);
        let err = open_err(&location);
        let (writer, dir_lock) = match role {
            Role::Reader => (None, None),
            Role::Writer { wait } => {
                let deadline = Instant::now() + wait;
                let w = Conns::connect(&config, 1, "writer", &session_setup).map_err(&err)?;
                take_writer_lock(&w, writer_lock(&ledger_id), deadline, wait, &location)?;
                let file = lock_directory(dir, deadline, wait)?;
                w.run(schema::migrate).map_err(|_| err("the connection thread stopped".into()))?.map_err(&err)?;
                (Some(w), Some(file))
            }
        };
        let pool = Conns::connect(&config, POOL, "pool", &session_setup).map_err(&err)?;
        let version = pool.run(schema::version).map_err(|_| err("the connection thread stopped".into()))?;
        match version.map_err(&err)? {
            SCHEMA_VERSION => {}
            0 => return Err(err("no kvitto ledger in this database".into())),
            v => {
                return Err(err(format!(
                    "kvitto schema version {v}; this kvitto reads {SCHEMA_VERSION} (a writer of this version \
                     migrates it)"
                )));
            }
        }
        let row = pool
            .run(|c| {
                c.query_opt("SELECT ledger_id, origin, format, created_at FROM kvitto_ledger", &[])
                    .map(|r| {
                        r.map(|r| {
                            (r.get::<_, Vec<u8>>(0), r.get::<_, String>(1), r.get::<_, i32>(2), r.get::<_, i64>(3))
                        })
                    })
                    .map_err(|e| describe_pg(&e))
            })
            .map_err(|_| err("the connection thread stopped".into()))?
            .map_err(&err)?
            .ok_or_else(|| err("no kvitto ledger in this database".into()))?;
        let (id, origin, format, created_at) = row;
        if id != ledger_id {
            return Err(OpenError::Damaged {
                path: dir.join(STORE_FILE),
                what: format!(
                    "the database at {location} holds another ledger (id {}, this directory's is {}): refusing to \
                     mix them",
                    hex::encode(&id),
                    hex::encode(ledger_id)
                ),
            });
        }
        if format as u32 != LEDGER_FORMAT {
            return Err(OpenError::UnknownFormat {
                path: dir.to_path_buf(),
                found: format as u32,
                supported: LEDGER_FORMAT,
            });
        }
        let vault_dir = dir.join(VAULT_DIR);
        // A reader leaves the writer's vault files alone (see `Vault::open_read_only`).
        let vault = match role {
            Role::Reader => Vault::open_read_only(&vault_dir, secret),
            Role::Writer { .. } => Vault::open(&vault_dir, secret, OlderSegments::Refuse),
        }
        .map_err(|e| OpenError::Damaged { path: vault_dir, what: e.to_string() })?;
        let store = PgStore {
            location: location.clone(),
            writer,
            pool,
            vault,
            poisoned: AtomicBool::new(false),
            _dir_lock: dir_lock,
        };
        Ok((store, LedgerInfo { origin, format: format as u32, created_at }))
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.pool.run(f).map_err(gone)?
    }

    fn paged<T: Send + 'static>(
        &self,
        fetch: impl Fn(&mut Client, Option<&Cursor>) -> Result<Vec<(Cursor, T)>, StoreError> + Send + Sync + 'static,
    ) -> Items<'_, T> {
        self.paged_by(PAGE, fetch)
    }

    /// Pages of `page` rows (`fetch` asks for exactly that many; fewer means the end).
    fn paged_by<T: Send + 'static>(
        &self,
        page: i64,
        fetch: impl Fn(&mut Client, Option<&Cursor>) -> Result<Vec<(Cursor, T)>, StoreError> + Send + Sync + 'static,
    ) -> Items<'_, T> {
        Box::new(Paged {
            store: self,
            fetch: std::sync::Arc::new(fetch),
            cursor: None,
            buf: Vec::new(),
            done: false,
            page,
        })
    }
}

fn take_writer_lock(w: &Conns, key: i64, deadline: Instant, wait: Duration, location: &str) -> Result<(), OpenError> {
    let mut said = false;
    loop {
        let got = w
            .run(move |c| c.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).map(|r| r.get::<_, bool>(0)))
            .map_err(|_| open_err(location)("the connection thread stopped".into()))?
            .map_err(|e| open_err(location)(describe_pg(&e)))?;
        if got {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OpenError::Busy {
                location: location.to_string(),
                what: format!(
                    "another kvitto process holds this ledger for writing (waited {} s for it to let go). Stop it, \
                     wait longer (--wait-for-writer), or open read-only",
                    wait.as_secs()
                ),
            });
        }
        if !said {
            tracing::info!(wait_s = wait.as_secs(), "another kvitto writer holds the ledger; waiting for it");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where a paged scan continues: the last key read.
#[derive(Debug, Clone)]
enum Cursor {
    Int(i64),
    Bytes(Vec<u8>),
}

type Fetch<T> = dyn Fn(&mut Client, Option<&Cursor>) -> Result<Vec<(Cursor, T)>, StoreError> + Send + Sync;

struct Paged<'a, T> {
    store: &'a PgStore,
    fetch: std::sync::Arc<Fetch<T>>,
    cursor: Option<Cursor>,
    buf: Vec<(Cursor, T)>,
    done: bool,
    page: i64,
}

impl<T: Send + 'static> Iterator for Paged<'_, T> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            let (fetch, cursor) = (self.fetch.clone(), self.cursor.clone());
            match self.store.read(move |c| fetch(c, cursor.as_ref())) {
                Ok(mut page) => {
                    self.done = (page.len() as i64) < self.page;
                    page.reverse();
                    self.buf = page;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let (cursor, item) = self.buf.pop()?;
        self.cursor = Some(cursor);
        Some(Ok(item))
    }
}

fn int_after(cursor: Option<&Cursor>, start: i64) -> i64 {
    match cursor {
        Some(Cursor::Int(i)) => i.saturating_add(1),
        _ => start,
    }
}

fn bytes_after(cursor: Option<&Cursor>) -> Vec<u8> {
    match cursor {
        Some(Cursor::Bytes(b)) => b.clone(),
        _ => Vec::new(),
    }
}

fn seq(v: i64, at: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt { at: at.into(), what: format!("negative value {v}") })
}

fn arr<const N: usize>(v: &[u8], at: impl Fn() -> String) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(v)
        .map_err(|_| StoreError::Corrupt { at: at(), what: format!("{} bytes, expected {N}", v.len()) })
}

fn decode_chunk(first: i64, body: &[u8]) -> Result<(u64, Vec<Record>), StoreError> {
    let first = seq(first, "chunk key")?;
    Ok((first, codec::decode_chunk(body, || format!("chunk {first}"))?))
}

fn watermark(c: &mut Client, part: &str) -> Result<u64, StoreError> {
    match c.query_opt("SELECT events FROM kvitto_watermark WHERE part = $1", &[&part]).map_err(|e| engine(&e))? {
        None => Ok(0),
        Some(r) => seq(r.get(0), &format!("{part} watermark")),
    }
}

fn set_watermark(tx: &mut postgres::Transaction<'_>, part: &str, events: u64) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO kvitto_watermark (part, events) VALUES ($1, $2) ON CONFLICT (part) DO UPDATE SET events = \
         excluded.events",
        &[&part, &(events as i64)],
    )
    .map(|_| ())
}

fn head_of(c: &mut Client) -> Result<Head, StoreError> {
    let r = c
        .query_opt("SELECT next_seq, head_hash, last_recorded_at FROM kvitto_ledger", &[])
        .map_err(|e| engine(&e))?
        .ok_or_else(|| StoreError::Corrupt { at: "kvitto_ledger".into(), what: "no ledger row".into() })?;
    Ok(Head {
        next_seq: seq(r.get(0), "kvitto_ledger.next_seq")?,
        head_hash: arr(r.get::<_, &[u8]>(1), || "kvitto_ledger.head_hash".into())?,
        last_recorded_at: r.get(2),
    })
}

impl EventLog for PgStore {
    fn head(&self) -> Result<Head, StoreError> {
        self.read(head_of)
    }

    fn acked(&self) -> Result<Acked, StoreError> {
        // COMMIT is the acknowledgement: the committed head is the acknowledged one.
        let h = self.head()?;
        Ok(Acked { next_seq: h.next_seq, head_hash: h.head_hash })
    }

    fn commit(&self, first_seq: u64, records: &[Record], head: &Head) -> Result<CommitStats, CommitError> {
        let Some(writer) = &self.writer else {
            return Err(CommitError::NotWritten(StoreError::Engine {
                what: "this process opened the ledger read-only".into(),
                io_kind: None,
            }));
        };
        if self.is_poisoned() {
            return Err(CommitError::NotWritten(StoreError::Poisoned));
        }
        let chunks = codec::chunk_records(first_seq, records).map_err(CommitError::NotWritten)?;
        let mut stats = CommitStats {
            chunks: chunks.len(),
            bytes: chunks.iter().map(|(_, v)| v.len()).sum(),
            ..Default::default()
        };
        let (firsts, bodies): (Vec<i64>, Vec<Vec<u8>>) = chunks.into_iter().map(|(s, v)| (s as i64, v)).unzip();
        let head = *head;
        enum Outcome {
            Done(Duration, Duration),
            NotWritten(StoreError),
            Unknown(StoreError),
        }
        let outcome = writer
            .run(move |c| {
                let started = Instant::now();
                // One statement, committed on its own: the head moves only from `first_seq`
                // (a fenced writer's group inserts nothing) and the chunks go in with it — one
                // round trip for parse and one for the statement and its commit, where a
                // transaction around two statements took six.
                let inserted = c.execute(
                    "WITH moved AS (UPDATE kvitto_ledger SET next_seq = $1, head_hash = $2, last_recorded_at = $3 \
                     WHERE next_seq = $4 RETURNING next_seq) \
                     INSERT INTO kvitto_chunk (first_seq, body) \
                     SELECT u.f, u.b FROM unnest($5::bigint[], $6::bytea[]) AS u(f, b), moved",
                    &[
                        &(head.next_seq as i64),
                        &head.head_hash.as_slice(),
                        &head.last_recorded_at,
                        &(first_seq as i64),
                        &firsts,
                        &bodies,
                    ],
                );
                match inserted {
                    Ok(n) if n as usize == firsts.len() => Outcome::Done(Duration::ZERO, started.elapsed()),
                    Ok(0) => Outcome::NotWritten(StoreError::Fenced(format!(
                        "the chain head is no longer at seq {first_seq}"
                    ))),
                    Ok(n) => Outcome::Unknown(StoreError::Engine {
                        what: format!("the commit inserted {n} of {} chunks", firsts.len()),
                        io_kind: None,
                    }),
                    // The server refused the statement: it was rolled back whole.
                    Err(e) if e.as_db_error().is_some() => Outcome::NotWritten(engine(&e)),
                    // The connection failed: the commit may or may not have happened.
                    Err(e) => Outcome::Unknown(engine(&e)),
                }
            })
            .unwrap_or_else(|g| Outcome::Unknown(gone(g)));
        match outcome {
            Outcome::Done(write, sync) => {
                stats.write = write;
                stats.sync = sync;
                Ok(stats)
            }
            Outcome::NotWritten(e) => {
                if matches!(e, StoreError::Fenced(_)) {
                    tracing::error!("another writer extended the chain: this handle takes no more writes");
                    self.poison();
                }
                Err(CommitError::NotWritten(e))
            }
            Outcome::Unknown(e) => {
                self.poison();
                Err(CommitError::Unknown(e))
            }
        }
    }

    fn chunk_containing(&self, s: u64) -> Result<Option<(u64, Vec<Record>)>, StoreError> {
        self.read(move |c| {
            let row = c
                .query_opt(
                    "SELECT first_seq, body FROM kvitto_chunk WHERE first_seq <= $1 ORDER BY first_seq DESC LIMIT 1",
                    &[&(s as i64)],
                )
                .map_err(|e| engine(&e))?;
            let Some(row) = row else { return Ok(None) };
            let (first, records) = decode_chunk(row.get(0), row.get(1))?;
            Ok((s < first + records.len() as u64).then_some((first, records)))
        })
    }

    fn chunks_from(&self, from: u64) -> Items<'_, (u64, Vec<Record>)> {
        let start = match self.chunk_containing(from) {
            Ok(Some((first, _))) => first as i64,
            Ok(None) => from as i64,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        self.paged_by(CHUNK_PAGE, move |c, cursor| {
            let after = int_after(cursor, start);
            c.query(
                "SELECT first_seq, body FROM kvitto_chunk WHERE first_seq >= $1 ORDER BY first_seq LIMIT $2",
                &[&after, &CHUNK_PAGE],
            )
            .map_err(|e| engine(&e))?
            .iter()
            .map(|r| {
                let first: i64 = r.get(0);
                Ok((Cursor::Int(first), decode_chunk(first, r.get(1))?))
            })
            .collect()
        })
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let conns = self.writer.as_ref().ok_or_else(|| StoreError::Engine {
            what: "this process opened the ledger read-only".into(),
            io_kind: None,
        })?;
        let note = note.to_string();
        conns
            .run(move |c| {
                c.execute(
                    "INSERT INTO kvitto_checkpoint (size, note) VALUES ($1, $2) ON CONFLICT (size) DO UPDATE SET note \
                     = excluded.note",
                    &[&(size as i64), &note],
                )
                .map(|_| ())
                .map_err(|e| engine(&e))
            })
            .map_err(gone)?
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.read(|c| {
            c.query("SELECT size, note FROM kvitto_checkpoint ORDER BY size", &[])
                .map_err(|e| engine(&e))?
                .iter()
                .map(|r| Ok((seq(r.get(0), "checkpoint size")?, r.get(1))))
                .collect()
        })
    }
}

impl DerivedIndex for PgStore {
    fn index_watermark(&self) -> Result<u64, StoreError> {
        self.read(|c| watermark(c, "index"))
    }

    fn apply_index(&self, batch: &IndexBatch) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        let mut subjects = Vec::with_capacity(batch.heads.len());
        let (mut last, mut count, mut hash) = (Vec::new(), Vec::new(), Vec::new());
        for (s, h) in &batch.heads {
            subjects.push(s.0.to_vec());
            last.push(h.last_seq as i64);
            count.push(h.count as i64);
            hash.push(h.last_hash.to_vec());
        }
        let (ids, seqs): (Vec<Vec<u8>>, Vec<i64>) =
            batch.event_ids.iter().map(|(id, s)| (id.as_bytes().to_vec(), *s as i64)).unzip();
        let mut levels = Vec::with_capacity(batch.nodes.len());
        let (mut idxs, mut nodes) = (Vec::new(), Vec::new());
        for (l, i, h) in &batch.nodes {
            levels.push(i16::from(*l));
            idxs.push(*i as i64);
            nodes.push(h.to_vec());
        }
        let w = batch.watermark;
        self.read(move |c| {
            let run = |c: &mut Client| -> Result<(), postgres::Error> {
                let mut tx = c.transaction()?;
                if !subjects.is_empty() {
                    tx.execute(
                        "INSERT INTO kvitto_subject_head (subject, last_seq, count, last_hash) SELECT * FROM \
                         unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bytea[]) ON CONFLICT (subject) DO \
                         UPDATE SET last_seq = excluded.last_seq, count = excluded.count, last_hash = \
                         excluded.last_hash WHERE excluded.last_seq > kvitto_subject_head.last_seq",
                        &[&subjects, &last, &count, &hash],
                    )?;
                }
                if !ids.is_empty() {
                    tx.execute(
                        "INSERT INTO kvitto_event_id (event_id, seq) SELECT * FROM unnest($1::bytea[], \
                         $2::bigint[]) ON CONFLICT (event_id) DO UPDATE SET seq = excluded.seq",
                        &[&ids, &seqs],
                    )?;
                }
                if !levels.is_empty() {
                    tx.execute(
                        "INSERT INTO kvitto_merkle_node (level, idx, hash) SELECT * FROM unnest($1::smallint[], \
                         $2::bigint[], $3::bytea[]) ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
                        &[&levels, &idxs, &nodes],
                    )?;
                }
                set_watermark(&mut tx, "index", w)?;
                tx.commit()
            };
            run(c).map_err(|e| engine(&e))
        })
    }

    fn clear_index(&self) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        self.read(|c| {
            in_transaction(c, "DELETE FROM kvitto_subject_head; DELETE FROM kvitto_event_id; DELETE FROM kvitto_merkle_node; DELETE FROM kvitto_watermark WHERE part = 'index'")
        })
    }

    fn merkle_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        self.read(move |c| {
            c.query_opt(
                "SELECT hash FROM kvitto_merkle_node WHERE level = $1 AND idx = $2",
                &[&i16::from(level), &(index as i64)],
            )
            .map_err(|e| engine(&e))?
            .map(|r| arr(r.get::<_, &[u8]>(0), || format!("merkle node {level}/{index}")))
            .transpose()
        })
    }

    fn merkle_level(&self, level: u8) -> Items<'_, (u64, [u8; 32])> {
        self.paged(move |c, cursor| {
            let after = int_after(cursor, 0);
            c.query(
                "SELECT idx, hash FROM kvitto_merkle_node WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
                &[&i16::from(level), &after, &PAGE],
            )
            .map_err(|e| engine(&e))?
            .iter()
            .map(|r| {
                let i: i64 = r.get(0);
                let idx = seq(i, "merkle node index")?;
                Ok((Cursor::Int(i), (idx, arr(r.get::<_, &[u8]>(1), || format!("merkle node {level}/{idx}"))?)))
            })
            .collect()
        })
    }

    fn subject_head(&self, subject: &SubjectId) -> Result<Option<SubjectHeadRec>, StoreError> {
        let s = subject.0;
        self.read(move |c| {
            c.query_opt(
                "SELECT last_seq, count, last_hash FROM kvitto_subject_head WHERE subject = $1",
                &[&s.as_slice()],
            )
            .map_err(|e| engine(&e))?
            .map(|r| head_rec(&r))
            .transpose()
        })
    }

    fn event_seq(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        let id = *id.as_bytes();
        self.read(move |c| {
            c.query_opt("SELECT seq FROM kvitto_event_id WHERE event_id = $1", &[&id.as_slice()])
                .map_err(|e| engine(&e))?
                .map(|r| seq(r.get(0), "event id seq"))
                .transpose()
        })
    }

    fn indexed_subject_heads(&self) -> Items<'_, (SubjectId, SubjectHeadRec)> {
        self.paged(|c, cursor| {
            let after = bytes_after(cursor);
            c.query(
                "SELECT last_seq, count, last_hash, subject FROM kvitto_subject_head WHERE subject > $1 ORDER BY \
                 subject LIMIT $2",
                &[&after, &PAGE],
            )
            .map_err(|e| engine(&e))?
            .iter()
            .map(|r| {
                let key: Vec<u8> = r.get(3);
                let subject = SubjectId(arr(&key, || "subject head key".into())?);
                Ok((Cursor::Bytes(key), (subject, head_rec(r)?)))
            })
            .collect()
        })
    }

    fn indexed_event_ids(&self) -> Items<'_, (EventId, u64)> {
        self.paged(|c, cursor| {
            let after = bytes_after(cursor);
            c.query(
                "SELECT event_id, seq FROM kvitto_event_id WHERE event_id > $1 ORDER BY event_id LIMIT $2",
                &[&after, &PAGE],
            )
            .map_err(|e| engine(&e))?
            .iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                let id = EventId(uuid::Uuid::from_bytes(arr(&key, || "event id key".into())?));
                Ok((Cursor::Bytes(key), (id, seq(r.get(1), "event id seq")?)))
            })
            .collect()
        })
    }

    fn index_snapshot(&self) -> Result<kvitto_storage::IndexSnapshot, StoreError> {
        // One REPEATABLE READ transaction: the writer's indexer may commit in between.
        self.read(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| engine(&e))?;
            let w = match tx
                .query_opt("SELECT events FROM kvitto_watermark WHERE part = 'index'", &[])
                .map_err(|e| engine(&e))?
            {
                None => 0,
                Some(r) => seq(r.get(0), "index watermark")?,
            };
            let heads = tx
                .query("SELECT last_seq, count, last_hash, subject FROM kvitto_subject_head ORDER BY subject", &[])
                .map_err(|e| engine(&e))?
                .iter()
                .map(|r| Ok((SubjectId(arr(r.get::<_, &[u8]>(3), || "subject head key".into())?), head_rec(r)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            tx.commit().map_err(|e| engine(&e))?;
            Ok((w, heads))
        })
    }

    fn map_snapshot(&self) -> Result<(u64, Vec<MapEntryRec>), StoreError> {
        self.read(|c| {
            let size = watermark(c, "map")?;
            let entries = c
                .query("SELECT subject, count, head FROM kvitto_map_entry ORDER BY subject", &[])
                .map_err(|e| engine(&e))?
                .iter()
                .map(|r| {
                    Ok((
                        arr(r.get::<_, &[u8]>(0), || "map entry key".into())?,
                        seq(r.get(1), "map entry count")?,
                        arr(r.get::<_, &[u8]>(2), || "map entry head".into())?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((size, entries))
        })
    }

    fn apply_map(
        &self,
        entries: &[MapEntryRec],
        size: u64,
        commitments: &[(u64, u64, [u8; 32])],
    ) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        let (mut subjects, mut counts, mut heads) = (Vec::new(), Vec::new(), Vec::new());
        for (s, n, h) in entries {
            subjects.push(s.to_vec());
            counts.push(*n as i64);
            heads.push(h.to_vec());
        }
        let (mut seqs, mut sizes, mut roots) = (Vec::new(), Vec::new(), Vec::new());
        for (s, t, r) in commitments {
            seqs.push(*s as i64);
            sizes.push(*t as i64);
            roots.push(r.to_vec());
        }
        self.read(move |c| {
            let run = |c: &mut Client| -> Result<(), postgres::Error> {
                let mut tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO kvitto_map_entry (subject, count, head) SELECT * FROM unnest($1::bytea[], \
                     $2::bigint[], $3::bytea[]) ON CONFLICT (subject) DO UPDATE SET count = excluded.count, head = \
                     excluded.head",
                    &[&subjects, &counts, &heads],
                )?;
                tx.execute(
                    "INSERT INTO kvitto_map_commitment (seq, tree_size, root) SELECT * FROM unnest($1::bigint[], \
                     $2::bigint[], $3::bytea[]) ON CONFLICT (seq) DO UPDATE SET tree_size = excluded.tree_size, root \
                     = excluded.root",
                    &[&seqs, &sizes, &roots],
                )?;
                set_watermark(&mut tx, "map", size)?;
                tx.commit()
            };
            run(c).map_err(|e| engine(&e))
        })
    }

    fn map_commitments(&self) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError> {
        self.read(|c| {
            c.query("SELECT seq, tree_size, root FROM kvitto_map_commitment ORDER BY seq", &[])
                .map_err(|e| engine(&e))?
                .iter()
                .map(|r| {
                    let s = seq(r.get(0), "map commitment seq")?;
                    Ok((
                        s,
                        seq(r.get(1), "map commitment size")?,
                        arr(r.get::<_, &[u8]>(2), || format!("map commitment {s}"))?,
                    ))
                })
                .collect()
        })
    }

    fn clear_map(&self) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        self.read(|c| {
            in_transaction(c, "DELETE FROM kvitto_map_entry; DELETE FROM kvitto_map_commitment; DELETE FROM kvitto_watermark WHERE part = 'map'")
        })
    }
}

/// Runs `sql` in a transaction of its own, rolled back on any failure (the connection goes
/// back to the pool clean).
fn in_transaction(c: &mut Client, sql: &str) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(|e| engine(&e))?;
    tx.batch_execute(sql).map_err(|e| engine(&e))?;
    tx.commit().map_err(|e| engine(&e))
}

fn head_rec(r: &postgres::Row) -> Result<SubjectHeadRec, StoreError> {
    Ok(SubjectHeadRec {
        last_seq: seq(r.get(0), "subject head seq")?,
        count: seq(r.get(1), "subject head count")?,
        last_hash: arr(r.get::<_, &[u8]>(2), || "subject head hash".into())?,
    })
}

impl ProjectionStore for PgStore {
    fn projection_watermark(&self) -> Result<u64, StoreError> {
        self.read(|c| watermark(c, "projections"))
    }

    fn apply_projections(&self, batch: &ProjectionBatch) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        let (keys, states): (Vec<Vec<u8>>, Vec<Vec<u8>>) = batch.entries.iter().cloned().unzip();
        let w = batch.watermark;
        self.read(move |c| {
            let run = |c: &mut Client| -> Result<(), postgres::Error> {
                let mut tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO kvitto_projection (key, state) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON \
                     CONFLICT (key) DO UPDATE SET state = excluded.state",
                    &[&keys, &states],
                )?;
                set_watermark(&mut tx, "projections", w)?;
                tx.commit()
            };
            run(c).map_err(|e| engine(&e))
        })
    }

    fn projection_entries(&self) -> Items<'_, (Vec<u8>, Vec<u8>)> {
        self.paged(|c, cursor| {
            let after = bytes_after(cursor);
            c.query("SELECT key, state FROM kvitto_projection WHERE key > $1 ORDER BY key LIMIT $2", &[&after, &PAGE])
                .map_err(|e| engine(&e))?
                .iter()
                .map(|r| {
                    let key: Vec<u8> = r.get(0);
                    Ok((Cursor::Bytes(key.clone()), (key, r.get(1))))
                })
                .collect()
        })
    }

    fn clear_projections(&self) -> Result<(), StoreError> {
        if self.is_reader() {
            return Ok(());
        }
        self.read(|c| {
            in_transaction(c, "DELETE FROM kvitto_projection; DELETE FROM kvitto_watermark WHERE part = 'projections'")
        })
    }
}

impl Backend for PgStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_reader(&self) -> bool {
        self.writer.is_none()
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn vault(&self) -> &Vault {
        &self.vault
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn flush_all(&self) -> Result<(), StoreError> {
        // Every write is a committed transaction already.
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        self.read(|c| {
            c.query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c JOIN pg_namespace n \
                 ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relname LIKE 'kvitto\\_%' AND n.nspname = \
                 current_schema()",
                &[],
            )
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .map_err(|e| engine(&e))
        })
        .unwrap_or(0)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The writer's session ends last: its advisory lock is released when it closes.
        self.pool.close();
        if let Some(w) = &self.writer {
            w.close();
        }
    }
}

/// Drops the kvitto tables of the database at `url` if — and only if — the ledger in it has
/// `origin` (the demo replaces its own earlier ledger this way) and no writer holds it.
/// Returns whether a ledger was dropped.
pub fn drop_ledger_with_origin(url: &str, origin: &str) -> Result<bool, OpenError> {
    let config = parse_url(url)?;
    let location = describe_config(&config);
    let err = open_err(&location);
    let conns = Conns::connect(&config, 1, "reset", &session_setup).map_err(&err)?;
    let origin = origin.to_string();
    let outcome = conns
        .run(move |c| -> Result<Result<bool, String>, String> {
            let pg = |e: postgres::Error| describe_pg(&e);
            if schema::version(c)? == 0 {
                return Ok(Ok(false));
            }
            let found: Option<(String, Vec<u8>)> = c
                .query_opt("SELECT origin, ledger_id FROM kvitto_ledger", &[])
                .map_err(pg)?
                .map(|r| (r.get(0), r.get(1)));
            let Some((_, id)) = found.filter(|(o, _)| *o == origin) else { return Ok(Ok(false)) };
            let key = <[u8; 16]>::try_from(id.as_slice()).map(|id| writer_lock(&id)).map_err(|_| "bad ledger id")?;
            let locked: bool = c.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).map_err(pg)?.get(0);
            if !locked {
                return Ok(Err("a kvitto process is writing the demo ledger in this database".into()));
            }
            c.batch_execute(
                "BEGIN; DROP TABLE kvitto_ledger, kvitto_chunk, kvitto_checkpoint, kvitto_watermark, \
                 kvitto_subject_head, kvitto_event_id, kvitto_merkle_node, kvitto_projection, kvitto_map_entry, \
                 kvitto_map_commitment, kvitto_schema; COMMIT",
            )
            .map_err(pg)?;
            c.query_one("SELECT pg_advisory_unlock($1)", &[&key]).map_err(pg)?;
            Ok(Ok(true))
        })
        .map_err(|_| err("the connection thread stopped".into()))?
        .map_err(&err)?;
    outcome.map_err(|what| OpenError::Busy { location: location.clone(), what })
}
