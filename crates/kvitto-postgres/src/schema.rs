//! The schema kvitto creates and migrates itself (docs/FORMAT.md §8). Versions apply in
//! order, each in one transaction under a transaction-scoped advisory lock, and the version
//! reached is recorded in `kvitto_schema`. A database at a newer version than this build
//! knows is refused.

use postgres::Client;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 1;

/// Advisory lock key serialising migrations of one database.
const MIGRATION_LOCK: i64 = 0x6b76_6974_746f_4d31; // "kvittoM1"

const V1: &str = "
CREATE TABLE kvitto_ledger (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    ledger_id bytea NOT NULL,
    origin text NOT NULL,
    format integer NOT NULL,
    created_at bigint NOT NULL,
    next_seq bigint NOT NULL,
    head_hash bytea NOT NULL,
    last_recorded_at bigint NOT NULL
);
-- The log: one row per chunk (a commit group, split at 64 KiB), the record codec's bytes.
CREATE TABLE kvitto_chunk (first_seq bigint PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE kvitto_checkpoint (size bigint PRIMARY KEY, note text NOT NULL);
-- Derived data, rebuilt from the log when missing or behind.
CREATE TABLE kvitto_watermark (part text PRIMARY KEY, events bigint NOT NULL);
CREATE TABLE kvitto_subject_head (
    subject bytea PRIMARY KEY, last_seq bigint NOT NULL, count bigint NOT NULL, last_hash bytea NOT NULL
);
CREATE TABLE kvitto_event_id (event_id bytea PRIMARY KEY, seq bigint NOT NULL);
CREATE TABLE kvitto_merkle_node (level smallint NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL,
    PRIMARY KEY (level, idx));
CREATE TABLE kvitto_projection (key bytea PRIMARY KEY, state bytea NOT NULL);
CREATE TABLE kvitto_map_entry (subject bytea PRIMARY KEY, count bigint NOT NULL, head bytea NOT NULL);
CREATE TABLE kvitto_map_commitment (seq bigint PRIMARY KEY, tree_size bigint NOT NULL, root bytea NOT NULL);
";

const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

/// Brings the schema to [`SCHEMA_VERSION`]; returns the version found before.
pub(crate) fn migrate(client: &mut Client) -> Result<i32, String> {
    let mut tx = client.transaction().map_err(|e| crate::describe_pg(&e))?;
    let pg = |e: postgres::Error| crate::describe_pg(&e);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS kvitto_schema (version integer NOT NULL)").map_err(pg)?;
    let found: i32 =
        tx.query_opt("SELECT version FROM kvitto_schema", &[]).map_err(pg)?.map_or(0, |r| r.get::<_, i32>(0));
    if found > SCHEMA_VERSION {
        return Err(format!(
            "the database's kvitto schema is version {found}; this kvitto knows up to {SCHEMA_VERSION}. Use a \
             kvitto release that supports it"
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).map_err(pg)?;
        tracing::info!(version, "kvitto schema migrated");
    }
    if found == 0 {
        tx.execute("INSERT INTO kvitto_schema (version) VALUES ($1)", &[&SCHEMA_VERSION]).map_err(pg)?;
    } else if found < SCHEMA_VERSION {
        tx.execute("UPDATE kvitto_schema SET version = $1", &[&SCHEMA_VERSION]).map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    Ok(found)
}

/// The schema version present (0: none), without changing anything.
pub(crate) fn version(client: &mut Client) -> Result<i32, String> {
    let pg = |e: postgres::Error| crate::describe_pg(&e);
    let exists: bool = client.query_one("SELECT to_regclass('kvitto_schema') IS NOT NULL", &[]).map_err(pg)?.get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client.query_opt("SELECT version FROM kvitto_schema", &[]).map_err(pg)?.map_or(0, |r| r.get::<_, i32>(0)))
}
