//! `kvitto demo`: a fresh ledger modelled on the seed policies, appended from many
//! concurrent tasks through the library API, verified, and one customer shown.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kvitto::Ledger;
use kvitto::scenario::{self, Customer};

use crate::Failure;

const DEMO_MARKER: &str = "DEMO";
const DEMO_ORIGIN: &str = "kvitto.demo/ledger";

fn prepare_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.exists() {
        return Ok(());
    }
    let is_demo = dir.join(DEMO_MARKER).exists() && dir.join("LEDGER").exists();
    let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    if is_demo {
        // sled holds an exclusive lock on `store/db` while a ledger is open: take it first, so a
        // demo ledger some process still appends to is never deleted under it (the lock is
        // held until the files are gone).
        let db = dir.join("store").join("db");
        let _lock = match std::fs::File::open(&db) {
            Ok(f) => {
                fs2::FileExt::try_lock_exclusive(&f).map_err(|_| {
                    Failure::input(format!(
                        "{} is a demo ledger another process has open; nothing deleted (close it, or choose another --dir)",
                        dir.display()
                    ))
                })?;
                Some(f)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Failure::storage(format!("{}: {e}", db.display()))),
        };
        // A PostgreSQL demo's writer holds `writer.lock` instead.
        let _writer = match std::fs::File::open(dir.join("writer.lock")) {
            Ok(f) => {
                fs2::FileExt::try_lock_exclusive(&f).map_err(|_| {
                    Failure::input(format!(
                        "{} is a demo ledger another process has open; nothing deleted (close it, or choose another --dir)",
                        dir.display()
                    ))
                })?;
                Some(f)
            }
            Err(_) => None,
        };
        std::fs::remove_dir_all(dir).map_err(|e| Failure::storage(format!("{}: {e}", dir.display())))?;
    } else if !empty {
        return Err(Failure::input(format!(
            "{} exists and is not a kvitto demo ledger; choose another --dir",
            dir.display()
        )));
    }
    Ok(())
}

/// Erasure in the demo: what the customers asked for and the statutes and holds allowed, then
/// the retention rules run by themselves, and one erased customer's history.
async fn forgetting(ledger: &Ledger, customers: &[Customer]) -> Result<(), Failure> {
    let p = ledger.projections().map_err(crate::query::read_failure)?;
    let (mut whole, mut register, mut deferrals, mut holds, mut active) = (0, 0, 0, 0, 0);
    let now = kvitto::Timestamp::now();
    for st in p.subjects.values() {
        for (_, r) in st.erasure.all() {
            if r.is_some() { register += 1 } else { whole += 1 }
        }
        deferrals += st.deferrals.all().len();
        for t in st.holds.values() {
            holds += 1;
            active += usize::from(t.all().last().is_some_and(|(_, placed)| *placed));
        }
    }
    drop(p);
    crate::say!(
        "\nforgetting: {whole} customers erased whole and {register} registers erased on request (keys destroyed, \
         every hash still valid); {deferrals} bookkeeping deferrals; {holds} legal holds, {active} still active"
    );
    let plan = ledger.retention_plan(None, now).map_err(crate::query::read_failure)?;
    let mut by_status = std::collections::BTreeMap::new();
    for item in &plan {
        *by_status.entry(item.status.as_str()).or_insert(0usize) += 1;
    }
    let summary: Vec<String> = by_status.iter().map(|(k, v)| format!("{v} {k}")).collect();
    crate::say!("retention plan now ({} customer registers under a rule): {}", plan.len(), summary.join(", "));
    let run = ledger.retention_run(None, now).await.map_err(crate::query::read_failure)?;
    crate::say!(
        "retention run: {} registers erased under their rules (ärendelista 12 months after closure, customer data \
         after the relationship ended), {} refused by a hold or deferral; bookkeeping kept by statute",
        run.erased.len(),
        run.refused.len()
    );
    // Some generated customers' requests are answered after their deadline: say how many,
    // rather than let them pass as plain `fulfilled`.
    let requests = ledger.requests(None, now, true).map_err(crate::query::read_failure)?;
    let late = requests.iter().filter(|r| r.request.late_by_days.is_some()).count();
    let open_overdue = requests.iter().filter(|r| r.request.overdue).count();
    crate::say!(
        "rights requests: {} recorded; {late} answered after their Art 12(3) deadline, {open_overdue} open past it \
         (`kvitto requests --all` lists them; `history` marks each late answer)",
        requests.len()
    );
    let erased = customers.iter().find(|c| {
        c.events.iter().any(|d| matches!(&d.kind, kvitto_core::EventKind::DataErased { register: None, .. }))
    });
    if let Some(c) = erased {
        let history = ledger
            .history(c.controller.as_str(), &c.external_ref)
            .await
            .map_err(|e| Failure::storage(e.to_string()))?;
        crate::say!(
            "\nhistory of erased customer {} at {} (details and reference destroyed):",
            c.external_ref,
            c.controller
        );
        crate::table::print_events(&history, false, false);
    }
    Ok(())
}

/// The customer whose life shows the most: consent given and withdrawn first, then variety.
fn showcase(customers: &[Customer]) -> Option<&Customer> {
    customers.iter().max_by_key(|c| {
        let kinds: BTreeSet<&str> = c.events.iter().map(|d| d.kind.name()).collect();
        let consent_story = kinds.contains("consent_given") && kinds.contains("consent_withdrawn");
        (consent_story, kinds.len(), std::cmp::Reverse(c.events.len()))
    })
}

pub(crate) async fn run(
    dir: &Path,
    store: &kvitto::StoreSpec,
    customers: usize,
    seed: u64,
    tasks: usize,
) -> Result<(), Failure> {
    if customers == 0 {
        return Err(Failure::input("--customers must be at least 1"));
    }
    prepare_dir(dir)?;
    if let kvitto::StoreSpec::Postgres(url) = store {
        // An earlier demo's ledger in the database is replaced, as its directory is; any
        // other ledger there is refused by `init`.
        if kvitto::replace_demo_database(url, DEMO_ORIGIN).map_err(|e| Failure::storage(e.to_string()))? {
            crate::say!("replaced the earlier demo ledger in the database");
        }
    }
    Ledger::init_on(dir, DEMO_ORIGIN, store)?;
    std::fs::write(dir.join(DEMO_MARKER), "created by `kvitto demo`; the next demo run may replace this directory\n")
        .map_err(|e| Failure::storage(format!("{}: {e}", dir.display())))?;
    let ledger = crate::open(dir).await?;

    let generated = Instant::now();
    let scenario = Arc::new(scenario::generate(customers, seed));
    let total = scenario.len();
    crate::say!(
        "kvitto demo: {} controllers' declarations and {} customers → {} events (seed {seed}), generated in {:.0?}",
        5,
        customers,
        total,
        generated.elapsed()
    );

    let started = Instant::now();
    ledger.append_batch(scenario.declarations.clone()).await.map_err(|e| Failure::storage(e.to_string()))?;
    let tasks = tasks.clamp(1, 1024);
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (ledger, scenario) = (ledger.clone(), scenario.clone());
        handles.push(tokio::spawn(async move {
            for c in scenario.customers.iter().skip(t).step_by(tasks) {
                for d in &c.events {
                    ledger.append(d.clone()).await?;
                }
            }
            Ok::<(), kvitto::AppendError>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| Failure::storage(e.to_string()))?.map_err(|e| Failure::storage(e.to_string()))?;
    }
    let elapsed = started.elapsed();
    crate::say!(
        "appended {} events from {tasks} concurrent tasks in {:.2?}: {:.0} events/s, every receipt fdatasync-durable",
        ledger.len(),
        elapsed,
        ledger.len() as f64 / elapsed.as_secs_f64()
    );

    forgetting(&ledger, &scenario.customers).await?;
    let planted = plant(&ledger).await?;
    let report = ledger.verify().await.map_err(|e| Failure::storage(e.to_string()))?;
    match &report.failure {
        None => crate::say!(
            "verify: ok: {} events, {} subjects, head {} ({:.2?})",
            report.count,
            report.subjects,
            report.head,
            report.duration
        ),
        Some(f) => return Err(Failure { code: 1, message: format!("verify failed: {f}") }),
    }
    crate::say!("on disk: {:.1} MiB in {}", ledger.disk_bytes() as f64 / (1 << 20) as f64, ledger.store_kind());

    if let Some(c) = showcase(&scenario.customers) {
        let history = ledger
            .history(c.controller.as_str(), &c.external_ref)
            .await
            .map_err(|e| Failure::storage(e.to_string()))?;
        crate::say!(
            "\nhistory of customer {} at {} ({} events, subject chain intact):",
            c.external_ref,
            c.controller,
            history.len()
        );
        let known = crate::table::History::of(&ledger, c.controller.as_str(), &history);
        crate::table::print_history(&history, false, false, &known);
        // A witness of the demo's own (C2SP tlog-witness on loopback), a signed checkpoint it
        // cosigns, and the customer's bundle verified offline as a regulator would: complete
        // up to the map commitment, with the witness's cosignature.
        let vkey = ledger.verifier_key().map_err(|e| Failure::storage(e.to_string()))?;
        let witness = DemoWitness::start(&dir.join("witness"), &vkey)?;
        kvitto::witness::add(ledger.dir(), "demo-witness", &witness.url, &witness.vkey)
            .map_err(|e| Failure::storage(e.to_string()))?;
        ledger.checkpoint().await.map_err(|e| Failure::storage(e.to_string()))?;
        for o in ledger.cosign().await.map_err(|e| Failure::storage(e.to_string()))? {
            if let kvitto::witness::WitnessOutcome::Failed { why, .. } = o {
                return Err(Failure::storage(format!("the demo witness did not cosign: {why}")));
            }
        }
        let note = ledger.checkpoint_note(None).map_err(|e| Failure::storage(e.to_string()))?.unwrap_or_default().1;
        let bundle = ledger
            .export_bundle(c.controller.as_str(), &c.external_ref, None, None)
            .await
            .map_err(|e| Failure::storage(e.to_string()))?;
        let bundle_path = dir.join(format!("bundle-{}.json", c.external_ref));
        let text = serde_json::to_string_pretty(&bundle).map_err(|e| Failure::storage(e.to_string()))?;
        crate::bundle::write_private(&bundle_path, format!("{text}\n").as_bytes(), true)?;
        let wkey =
            kvitto_proof::checkpoint::WitnessKey::parse(&witness.vkey).map_err(|e| Failure::storage(e.to_string()))?;
        let witnesses = [wkey];
        let opts = kvitto_proof::bundle::Options {
            trust: kvitto_proof::bundle::Trust::Key(&vkey),
            since: None,
            witnesses: &witnesses,
            quorum: 1,
        };
        let verified = kvitto_proof::bundle::verify_with(&text, &opts)
            .map_err(|e| Failure { code: 1, message: format!("the demo bundle does not verify: {e}") })?;
        let witness = witness.stop();
        crate::say!(
            "\nsigned checkpoint (C2SP tlog-checkpoint, Ed25519 signed-note, cosigned by the demo witness):\n{note}"
        );
        crate::say!(
            "bundle {}: ok: {} events of subject {} proven against checkpoint size {}, complete up to {}, cosigned by {} \
             (verified offline with log key {vkey} and witness key {})",
            bundle_path.display(),
            verified.events.len(),
            verified.subject,
            verified.size,
            verified.complete_up_to.unwrap_or_default(),
            verified.cosigned_by.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
            witness.vkey
        );
        let q = kvitto::AsOf::now();
        if let Ok(answers) = ledger.consent(c.controller.as_str(), &c.external_ref, None, q) {
            crate::say!("\nconsent of {} as the projections answer it:", c.external_ref);
            crate::query::print_consent(&answers, &q);
        }
        let d = dir.display();
        let k = invocation();
        crate::say!(
            "\nexplore further:\n  \
             {k} --ledger {d} history --controller {ctl} --subject {r} --json\n  \
             {k} --ledger {d} log --from 0 --limit 40\n  \
             {k} --ledger {d} verify\n  \
             {k} --ledger {d} consent --controller {ctl} --subject {r} --at 2025-01-01\n  \
             {k} --ledger {d} may-process --controller {ctl} --subject {r} --purpose {mp}\n  \
             {k} --ledger {d} report access --controller {ctl} --subject {r} --html {d}/access-{r}.html\n  \
             {k} --ledger {d} report processing --controller kalejdo        # seed 001's app: gaps listed\n  \
             {k} --ledger {d} audit --controller kazoom                     # the planted violations, with evidence\n  \
             {k} --ledger {d} export-consent --controller {ctl} --subject {r} --format dpv\n  \
             {k} --ledger {d} export-portable --controller {ctl} --subject {r}\n  \
             {k} --ledger {d} key > {d}/verifier.key\n  \
             {k} --ledger {d} export --controller {ctl} --subject {r} --out {d}/bundle.json\n  \
             {k} verify-bundle {d}/bundle.json --key-file {d}/verifier.key\n  \
             {k} --ledger {d} publish --dir {d}/tiles\n  \
             {k} --ledger {d} prove inclusion --seq 7 --format tlog-proof > {d}/e7.tlog-proof\n  \
             {k} verify-proof {d}/e7.tlog-proof --key-file {d}/verifier.key\n  \
             {k} --ledger {d} prove consistency --from 1000\n  \
             echo '{{\"type\":\"consent_withdrawn\",\"controller\":\"{ctl}\",\"subject\":\"{r}\",\"purpose\":\"marketing\"}}' | \
             {k} --ledger {d} append -",
            ctl = c.controller,
            r = c.external_ref,
            mp = c
                .events
                .iter()
                .find_map(|d| match &d.kind {
                    kvitto_core::EventKind::ConsentGiven { purpose, .. } => Some(purpose.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "marketing".into())
        );
    }
    audit(&ledger, dir, &planted).await?;
    crate::close(ledger).await;
    Ok(())
}

/// Appends the planted violations (after the retention run, which would otherwise erase the
/// overdue one) and says how many.
async fn plant(ledger: &Ledger) -> Result<Vec<scenario::Planted>, Failure> {
    let planted = scenario::planted();
    for p in &planted {
        ledger.append_batch(p.customer.events.clone()).await.map_err(|e| Failure::storage(e.to_string()))?;
    }
    let checks: Vec<&str> = planted.iter().map(|p| p.check).collect();
    crate::say!(
        "planted {} violations for the audit to find, one customer each ({}; docs/AUDIT.md lists them)",
        planted.len(),
        checks.join(" ")
    );
    Ok(planted)
}

/// The closing audit: counts per check, whether exactly the planted set was found, and the
/// HTML report's path.
async fn audit(ledger: &Ledger, dir: &Path, planted: &[scenario::Planted]) -> Result<(), Failure> {
    let report = ledger
        .audit(None, kvitto::AuditOptions::at(kvitto::Timestamp::now()))
        .await
        .map_err(crate::query::read_failure)?;
    let counts: Vec<String> = report
        .checks
        .iter()
        .map(|c| (c.id, report.count(c.id)))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let expected: BTreeSet<(&str, kvitto::SubjectId)> = planted
        .iter()
        .filter_map(|p| {
            let r = kvitto_core::ExternalRef::new(p.customer.external_ref.clone()).ok()?;
            Some((p.check, ledger.subject_id(&p.customer.controller, &r)))
        })
        .collect();
    let found: BTreeSet<(&str, kvitto::SubjectId)> =
        report.findings.iter().filter_map(|f| f.subject.map(|s| (f.check, s))).collect();
    let verdict = if found == expected && report.findings.len() == planted.len() {
        "exactly the planted set, nothing else".to_string()
    } else {
        format!("{} planted, {} found: see the report", planted.len(), report.findings.len())
    };
    let page = kvitto::html::audit_report(&report, None);
    let path = dir.join("audit.html");
    crate::bundle::write_private(&path, page.as_bytes(), true)?;
    crate::say!(
        "\naudit: integrity {}, {} findings ({}) — {verdict}\naudit report: {} (self-contained HTML; `kvitto audit` \
         prints the table, --json the data)",
        if report.integrity.ok { "ok" } else { "FAILED" },
        report.findings.len(),
        counts.join(", "),
        path.display()
    );
    Ok(())
}

/// The demo's witness: a `kvitto witness serve` in a thread on a loopback port.
struct DemoWitness {
    url: String,
    vkey: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoWitness {
    fn start(state: &Path, log_vkey: &str) -> Result<Self, Failure> {
        let mut server =
            kvitto::witness_server::WitnessServer::open(state, "witness.demo.kvitto/w1").map_err(Failure::storage)?;
        server.trust_log(log_vkey).map_err(Failure::storage)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Failure::storage(e.to_string()))?;
        let url = format!("http://{}", listener.local_addr().map_err(|e| Failure::storage(e.to_string()))?);
        let vkey = server.vkey();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            if let Err(e) = server.serve(&listener, &flag) {
                eprintln!("demo witness stopped: {e}");
            }
        });
        Ok(Self { url, vkey, stop, thread: Some(thread) })
    }

    fn stop(mut self) -> Self {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self
    }
}

/// How to run this kvitto again, for the demo's "explore further" lines: the `cargo run` form
/// when cargo started it (`cargo run` sets `CARGO` and the package name), else the path of the
/// binary that is running (quoted when it holds spaces), else plain `kvitto`.
fn invocation() -> String {
    if std::env::var_os("CARGO").is_some() && std::env::var("CARGO_PKG_NAME").is_ok_and(|p| p == "kvitto-cli") {
        return "cargo run --release -p kvitto-cli --".into();
    }
    match std::env::current_exe() {
        Ok(p) => {
            let p = p.display().to_string();
            if p.contains([' ', '\'', '"']) { format!("'{}'", p.replace('\'', "'\\''")) } else { p }
        }
        Err(_) => "kvitto".into(),
    }
}
