//! Which backend holds a ledger's events: the marker in the ledger directory names it (no
//! name: the embedded sled store in `store/`; `postgres`: the database `postgres.store`
//! names).

use std::path::Path;
use std::sync::Arc;

use kvitto_core::LedgerSecret;
use kvitto_storage::{Backend, LedgerInfo, OpenError};
use kvitto_vault::keyfiles;

/// Opens the ledger in `dir` on the backend its marker names.
pub(crate) fn open(
    dir: &Path,
    options: &crate::OpenOptions,
) -> Result<(Arc<dyn Backend>, LedgerSecret, LedgerInfo), OpenError> {
    let marker = keyfiles::read_marker(dir)?;
    match marker.store.as_deref() {
        None | Some("sled") => {
            let (store, secret, info) = kvitto_store::Store::open(dir)?;
            Ok((Arc::new(store), secret, info))
        }
        Some(kvitto_postgres::KIND) => {
            let role = if options.read_only {
                kvitto_postgres::Role::Reader
            } else {
                kvitto_postgres::Role::Writer { wait: options.wait_for_writer }
            };
            let (store, secret, info) = kvitto_postgres::PgStore::open(dir, options.store_url.as_deref(), role)?;
            Ok((Arc::new(store), secret, info))
        }
        Some(other) => Err(OpenError::Damaged {
            path: dir.join("LEDGER"),
            what: format!("the ledger's events are in a `{other}` store, which this kvitto does not know"),
        }),
    }
}
