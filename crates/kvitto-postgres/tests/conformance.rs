//! The PostgreSQL backend passes the storage conformance suite, on a real server (a
//! throw-away cluster started for this test process, or `KVITTO_TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used)]

use kvitto_postgres::{PgStore, Role, testing};
use kvitto_storage::conformance::{Target, run};

#[test]
fn postgres_passes_the_conformance_suite() {
    if testing::database_or_skip("postgres_passes_the_conformance_suite").is_none() {
        return;
    }
    let keep = std::sync::Mutex::new(Vec::new());
    run(&|| {
        let url = testing::database().unwrap();
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("ledger");
        kvitto_postgres::create(&dir, &url, "conformance.example/log", 1).unwrap();
        keep.lock().unwrap().push(t);
        let (d1, u2, u3) = (dir.clone(), url.clone(), url.clone());
        Target {
            open: Box::new(move || {
                let role = Role::Writer { wait: std::time::Duration::from_secs(10) };
                Box::new(PgStore::open(&d1, None, role).unwrap().0)
            }),
            tamper: Box::new(move |seq, edit| testing::edit_record(&u2, seq, edit)),
            engine_holds: Box::new(move |needle| testing::engine_holds(&u3, needle)),
            dir,
        }
    });
}
