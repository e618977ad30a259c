//! The HTTP API end to end: a real server on an ephemeral loopback port, a real HTTP client,
//! the tour's events (the Danish seed company Kazoom), tokens of two controllers.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use kvitto::{Ledger, OpenOptions, Timestamp};
use kvitto_server::ServeOptions;
use kvitto_server::tokens::{Scope, TokenStore};
use serde_json::Value;

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn tour(file: &str) -> Result<String> {
    Ok(std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tour").join(file))?)
}

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<Ledger>>>,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
}

struct Reply {
    status: u16,
    body: String,
    bytes: Vec<u8>,
    headers_nosniff: bool,
    content_type: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Server {
    fn start(options: ServeOptions) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        Ledger::init(dir.path(), "kazoom.example/ledger")?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let ledger = rt.block_on(Ledger::open(dir.path(), OpenOptions::default()))?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(kvitto_server::serve(ledger, listener, options, async {
            let _ = rx.await;
        }));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Server { base: format!("http://{addr}"), addr, rt, stop: Some(tx), task: Some(task), agent, dir })
    }

    fn token(&self, controller: &str, scopes: &str) -> Result<String> {
        let scopes = Scope::parse_list(scopes)?;
        Ok(TokenStore::new(self.dir.path()).create(controller, scopes, None, Timestamp::now())?.0)
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Result<Reply> {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req
                .header("Content-Type", if path == "/v1/events" { "application/x-ndjson" } else { "application/json" });
        }
        let mut resp = self.agent.run(req.body(body.unwrap_or("").to_string())?)?;
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let status = resp.status().as_u16();
        let headers_nosniff = resp.headers().get("x-content-type-options").is_some_and(|v| v == "nosniff");
        let bytes = resp.body_mut().with_config().limit(64 << 20).read_to_vec()?;
        Ok(Reply { status, body: String::from_utf8_lossy(&bytes).into_owned(), bytes, content_type, headers_nosniff })
    }

    fn get(&self, path: &str, token: &str) -> Result<Reply> {
        self.call("GET", path, Some(token), None)
    }

    /// Stops the server (graceful) and returns the ledger, closed.
    fn stop(mut self) -> Result<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let ledger = self.rt.block_on(task)??;
            self.rt.block_on(ledger.close())?;
        }
        Ok(std::mem::replace(&mut self.dir, tempfile::tempdir()?))
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn load_tour(s: &Server, token: &str) -> Result<Vec<Value>> {
    let mut receipts = Vec::new();
    for file in ["declarations.jsonl", "events.jsonl"] {
        let r = s.call("POST", "/v1/events", Some(token), Some(&tour(file)?))?;
        assert_eq!(r.status, 200, "{}", r.body);
        receipts.extend(r.json()["receipts"].as_array().cloned().unwrap_or_default());
    }
    Ok(receipts)
}

#[test]
fn append_then_ask_report_erase_and_export() -> Result {
    let s = Server::start(ServeOptions { checkpoint_every: None, ..ServeOptions::default() })?;
    let all = s.token("kazoom", "append,read,report,erase,audit")?;
    let receipts = load_tour(&s, &all)?;
    assert_eq!(receipts.len(), 30);
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
        assert_eq!(r["hash"].as_str().map(str::len), Some(64));
    }

    // Re-sending an event with its event_id answers with the original receipt.
    let first_event = tour("events.jsonl")?.lines().next().unwrap_or_default().to_string();
    let again = s.call("POST", "/v1/events", Some(&all), Some(&first_event))?;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["receipts"][0], receipts[15]);

    // Consent to product news from 2026-02-01, withdrawn 2026-05-04.
    let ask =
        |at: &str| s.get(&format!("/v1/may-process?controller=kazoom&subject=KZ-1&purpose=product-news&at={at}"), &all);
    let before = ask("2026-03-01")?;
    assert_eq!(before.status, 200);
    assert_eq!(before.json()["allowed"], true, "{}", before.body);
    assert_eq!(before.json()["seq"], receipts[19]["seq"]);
    let after = ask("2026-06-01")?.json();
    assert_eq!(after["allowed"], false);
    assert_eq!(after["seq"], receipts[23]["seq"]);
    // The same question by POST, the customer reference in the body instead of the URL.
    let body = r#"{"controller":"kazoom","subject":"KZ-1","purpose":"product-news","at":"2026-03-01"}"#;
    let posted = s.call("POST", "/v1/may-process", Some(&all), Some(body))?;
    assert_eq!(posted.json(), before.json(), "{}", posted.body);
    let posted = s.call("POST", "/v1/history", Some(&all), Some(r#"{"controller":"kazoom","subject":"KZ-1"}"#))?;
    assert_eq!(posted.json()["events"].as_array().map(Vec::len), Some(10));
    let posted = s.call(
        "POST",
        "/v1/consent",
        Some(&all),
        Some(r#"{"controller":"kazoom","subject":"KZ-1","at":"2026-03-01"}"#),
    )?;
    assert!(posted.json()["answers"].as_array().is_some_and(|a| a.len() > 1), "{}", posted.body);
    let bad_time = ask("yesterday")?;
    assert_eq!(bad_time.status, 400);
    assert!(bad_time.json()["error"].as_str().unwrap_or("").starts_with("query: field at:"), "{}", bad_time.body);

    let consent = s.get("/v1/consent?controller=kazoom&subject=KZ-1&purpose=product-news&at=2026-03-01", &all)?.json();
    assert_eq!(consent["answers"][0]["purpose"], "product-news");
    assert_eq!(consent["answers"][0]["state"], "granted");

    let history = s.get("/v1/history?controller=kazoom&subject=KZ-1", &all)?.json();
    let events = history["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 10);
    assert_eq!(events[4]["type"], "consent_given");
    assert_eq!(events[4]["subject"], "KZ-1");

    let access = s.get("/v1/reports/access?controller=kazoom&subject=KZ-1", &all)?;
    assert_eq!(access.status, 200);
    assert!(access.body.contains("logistics-partner"));
    let page = s.get("/v1/reports/access?controller=kazoom&subject=KZ-1&format=html", &all)?;
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert!(page.body.contains("Kazoom A/S"));
    let record = s.get("/v1/reports/processing?controller=kazoom", &all)?.json();
    assert!(record.to_string().contains("bookkeeping"));
    let requests = s.get("/v1/requests?all=true&now=2026-12-01", &all)?.json();
    let ids: Vec<&str> =
        requests["items"].as_array().into_iter().flatten().filter_map(|i| i["request_id"].as_str()).collect();
    assert!(ids.contains(&"r-101") && ids.contains(&"r-103"), "{ids:?}");
    let plan = s.get("/v1/retention/plan?now=2026-12-01", &all)?;
    assert_eq!(plan.status, 200, "{}", plan.body);
    let unknown = s.get("/v1/reports/access?controller=kazoom&subject=KZ-999", &all)?;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // Erase KZ-2 (erasure requested r-103): recorded, keys gone, details no longer readable.
    let erase = r#"{"controller":"kazoom","subject":"KZ-2","reason":"Art 17 request r-103"}"#;
    let erased = s.call("POST", "/v1/erase", Some(&all), Some(erase))?;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.json()["outcome"], "erased");
    assert_eq!(erased.json()["seq"], 30);
    let twice = s.call("POST", "/v1/erase", Some(&all), Some(erase))?.json();
    assert_eq!((twice["outcome"].as_str(), twice["seq"].as_u64()), (Some("already_erased"), Some(30)));
    let garbled = s.call("POST", "/v1/erase", Some(&all), Some(r#"{"controller":"kazoom"}"#))?;
    assert_eq!(garbled.status, 400, "{}", garbled.body);

    // A checkpoint, the public log, a bundle the offline verifier accepts.
    assert_eq!(s.call("GET", "/v1/log/checkpoint", None, None)?.status, 404);
    let note = s.call("POST", "/v1/checkpoint", Some(&all), None)?;
    assert_eq!(note.status, 200, "{}", note.body);
    let public = s.call("GET", "/v1/log/checkpoint", None, None)?;
    assert_eq!(public.body, note.body);
    let size: u64 = note.body.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    assert_eq!(size, 32, "31 events and the subject map commitment");
    let key = s.call("GET", "/v1/log/key", None, None)?.body;
    let tile = s.call("GET", "/v1/log/tile/entries/000.p/32", None, None)?;
    assert_eq!(tile.status, 200);
    assert_eq!(tile.bytes.len(), 32 * 34, "32 entries of u16be 32 ‖ the event hash");
    assert_eq!(tile.bytes[2..34], *hex_bytes(receipts[0]["hash"].as_str().unwrap_or_default()));
    let leaf = s.call("GET", "/v1/log/tile/0/000.p/32", None, None)?;
    assert_eq!((tile.content_type.as_str(), leaf.status), ("application/octet-stream", 200));
    assert_eq!(s.call("GET", "/v1/log/tile/0/000.p/33", None, None)?.status, 404);
    assert_eq!(s.call("GET", "/v1/log/tile/0/000", None, None)?.status, 404);
    let bundle = s.call("POST", "/v1/bundles", Some(&all), Some(r#"{"controller":"kazoom","subject":"KZ-1"}"#))?;
    assert_eq!(bundle.status, 200, "{}", bundle.body);
    let verified = kvitto_proof::bundle::verify(&bundle.body, kvitto_proof::bundle::Trust::Key(&key))?;
    assert_eq!(verified.events.len(), 10);
    assert_eq!(verified.complete_up_to, Some(31));
    let since = serde_json::json!({"controller": "kazoom", "subject": "KZ-1", "since": note.body}).to_string();
    assert_eq!(s.call("POST", "/v1/bundles", Some(&all), Some(&since))?.status, 200);

    let audit = s.get("/v1/audit?now=2026-12-01", &all)?;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert_eq!(audit.json()["integrity"]["ok"], true, "{}", audit.body);

    // Metrics: counts by route template, nothing of the customers.
    let metrics = s.call("GET", "/metrics", None, None)?;
    assert!(
        metrics.body.contains("kvitto_http_requests_total{route=\"/v1/events\",status=\"200\"} 3"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("kvitto_appended_events_total 31"), "{}", metrics.body);
    assert!(metrics.body.contains("kvitto_commit_groups_total"));
    for secret in ["KZ-1", "KZ-2", "kazoom", &all[7..19]] {
        assert!(!metrics.body.contains(secret), "metrics name {secret}");
    }
    assert_eq!(s.call("GET", "/healthz", None, None)?.status, 200);
    assert_eq!(s.call("GET", "/readyz", None, None)?.status, 200);
    let dir = s.stop()?;
    let rt = tokio::runtime::Runtime::new()?;
    let ledger = rt.block_on(Ledger::open(dir.path(), OpenOptions::default()))?;
    assert_eq!(ledger.len(), 32);
    rt.block_on(ledger.verify())?;
    rt.block_on(ledger.close())?;
    Ok(())
}

#[test]
fn bad_input_is_refused_whole_with_the_line_and_field() -> Result {
    let s = Server::start(ServeOptions {
        max_events: 20,
        max_body: 64 * 1024,
        checkpoint_every: None,
        ..Default::default()
    })?;
    let t = s.token("kazoom", "append,read")?;
    let good = r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-9","purpose":"product-news"}"#;
    let cases = [
        (format!("{good}\n{}", good.replace(r#","purpose":"product-news""#, "")), 400, "line 2: field purpose: "),
        (format!("{good}\n\n{{not json\n"), 400, "line 3: "),
        (good.replace("consent_given", "consent_guessed"), 400, "line 1: field type: "),
        (format!("{good}\n{}", good.replace("kazoom", "kalejdo")), 403, "line 2: field controller: "),
        ("\n\n".to_string(), 400, "no events in input"),
        (vec![good; 21].join("\n"), 413, "line 21: more than 20 events"),
        ("x".repeat(70 * 1024), 413, "the body is larger than 65536 bytes"),
    ];
    for (body, status, start) in &cases {
        let r = s.call("POST", "/v1/events", Some(&t), Some(body))?;
        assert_eq!(r.status, *status, "{start}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.starts_with(start), "expected {start:?}, got {error:?}");
    }
    // An event_id reused with other content: 409, and nothing of the batch written.
    let one = good.replace(r#""purpose""#, r#""event_id":"0190a0f0-0000-7000-8000-00000000abcd","purpose""#);
    assert_eq!(s.call("POST", "/v1/events", Some(&t), Some(&one))?.status, 200, "{one}");
    let clash = format!("{good}\n{}", one.replace("KZ-9", "KZ-8"));
    let r = s.call("POST", "/v1/events", Some(&t), Some(&clash))?;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap_or("").starts_with("line 2: field event_id: "), "{}", r.body);
    let dir = s.stop()?;
    let rt = tokio::runtime::Runtime::new()?;
    let ledger = rt.block_on(Ledger::open(dir.path(), OpenOptions::default()))?;
    assert_eq!(ledger.len(), 1, "only the one good request was written");
    rt.block_on(ledger.close())?;
    Ok(())
}

#[test]
fn tokens_bind_scopes_and_controllers_and_reveal_nothing() -> Result {
    let s = Server::start(ServeOptions { checkpoint_every: None, ..Default::default() })?;
    let kazoom = s.token("kazoom", "append,read")?;
    let reader = s.token("kazoom", "read")?;
    let other = s.token("kalejdo", "append,read,report,erase,audit")?;
    load_tour(&s, &kazoom)?;
    let q = |subject: &str| format!("/v1/may-process?controller=kazoom&subject={subject}&purpose=product-news");
    // 401 for no token, a malformed one, an unknown one; the same body for each.
    let none = s.call("GET", &q("KZ-1"), None, None)?;
    let garbage = s.call("GET", &q("KZ-1"), Some("nonsense"), None)?;
    let forged = s.call("GET", &q("KZ-1"), Some(&format!("{}x", &kazoom[..kazoom.len() - 1])), None)?;
    for r in [&none, &garbage, &forged] {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.body, none.body);
    }
    // 403 out of scope, and for another controller — the same whether the subject exists.
    let denied = s.call("POST", "/v1/events", Some(&reader), Some(&tour("events.jsonl")?))?;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("lacks the append scope"));
    let exists = s.get(&q("KZ-1"), &other)?;
    let absent = s.get(&q("KZ-404"), &other)?;
    assert_eq!((exists.status, absent.status), (403, 403));
    assert_eq!(exists.body, absent.body);
    for path in [
        "/v1/history?controller=kazoom&subject=KZ-1",
        "/v1/consent?controller=kazoom&subject=KZ-1",
        "/v1/reports/access?controller=kazoom&subject=KZ-1",
        "/v1/reports/processing?controller=kazoom",
        "/v1/audit?controller=kazoom",
        "/v1/requests?controller=kazoom",
    ] {
        assert_eq!(s.get(path, &other)?.status, 403, "{path}");
    }
    let body = r#"{"controller":"kazoom","subject":"KZ-1","purpose":"product-news"}"#;
    let posted = s.call("POST", "/v1/may-process", Some(&other), Some(body))?;
    assert_eq!((posted.status, posted.body.as_str()), (403, exists.body.as_str()));
    let erase = r#"{"controller":"kazoom","subject":"KZ-1","reason":"x"}"#;
    assert_eq!(s.call("POST", "/v1/erase", Some(&other), Some(erase))?.status, 403);
    assert_eq!(s.call("POST", "/v1/erase", Some(&kazoom), Some(erase))?.status, 403, "no erase scope");
    let foreign = tour("events.jsonl")?;
    assert_eq!(s.call("POST", "/v1/events", Some(&other), Some(&foreign))?.status, 403);
    // Revoked: refused on the next request.
    let id = kazoom[7..19].to_string();
    assert!(TokenStore::new(s.dir.path()).revoke(&id, Timestamp::now())?);
    assert_eq!(s.get(&q("KZ-1"), &kazoom)?.status, 401);
    assert_eq!(s.get(&q("KZ-1"), &reader)?.status, 200);
    // Nothing of a token in the file but its hash.
    let file = std::fs::read_to_string(s.dir.path().join(kvitto_server::tokens::TOKENS_FILE))?;
    assert!(!file.contains(&reader[20..]));
    s.stop()?;
    Ok(())
}

#[test]
fn concurrency_is_bounded_and_requests_are_timed() -> Result {
    let s = Server::start(ServeOptions {
        max_concurrent: 1,
        queue_wait: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        checkpoint_every: None,
        ..Default::default()
    })?;
    let t = s.token("kazoom", "append,read")?;
    // A client that sends its headers and then stalls holds the one slot...
    let mut stalled = std::net::TcpStream::connect(s.addr)?;
    write!(
        stalled,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 100\r\n\r\n{{"
    )?;
    std::thread::sleep(Duration::from_millis(300));
    // ...so the next request waits for the queue wait and is told to come back.
    let busy = s.call("GET", "/v1/may-process?controller=kazoom&subject=KZ-1&purpose=product-news", Some(&t), None)?;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.json()["code"], "busy");
    // Health stays outside the limit.
    assert_eq!(s.call("GET", "/healthz", None, None)?.status, 200);
    // The stalled request is answered when its time is up, and the slot is free again.
    stalled.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = vec![0; 4096];
    let n = stalled.read(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    let ok = s.call("GET", "/v1/may-process?controller=kazoom&subject=KZ-1&purpose=product-news", Some(&t), None)?;
    assert_eq!(ok.status, 404, "no such purpose yet, but answered: {}", ok.body);
    s.stop()?;
    Ok(())
}

#[test]
fn the_token_is_checked_before_the_body_and_a_stuck_client_cannot_hold_shutdown() -> Result {
    let s = Server::start(ServeOptions {
        max_concurrent: 1,
        queue_wait: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(500),
        checkpoint_every: None,
        ..Default::default()
    })?;
    let t = s.token("kazoom", "read")?;
    // No token: refused at once, before the announced body is sent, without taking the slot.
    let mut anonymous = std::net::TcpStream::connect(s.addr)?;
    write!(anonymous, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")?;
    anonymous.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = vec![0; 4096];
    let n = anonymous.read(&mut answer)?;
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let q = "/v1/may-process?controller=kazoom&subject=KZ-1&purpose=product-news";
    assert_eq!(s.call("GET", q, Some(&t), None)?.status, 404, "the one slot is free");
    // The scheme name in any case (RFC 6750); other schemes are refused.
    let mut req = ureq::http::Request::builder().method("GET").uri(format!("{}{q}", s.base));
    req = req.header("Authorization", format!("bearer {t}"));
    assert_eq!(s.agent.run(req.body(String::new())?)?.status().as_u16(), 404);
    let mut req = ureq::http::Request::builder().method("GET").uri(format!("{}{q}", s.base));
    req = req.header("Authorization", format!("Basic {t}"));
    assert_eq!(s.agent.run(req.body(String::new())?)?.status().as_u16(), 401);
    // Every error is JSON: a wrong method, a tile path that is not one.
    let wrong = s.call("DELETE", "/v1/events", Some(&t), None)?;
    assert_eq!((wrong.status, wrong.json()["code"].as_str()), (405, Some("method_not_allowed")), "{}", wrong.body);
    let bad = s.call("GET", "/v1/log/tile/%FF/000", None, None)?;
    assert_eq!((bad.status, bad.json()["code"].as_str()), (404, Some("not_found")), "{}", bad.body);
    assert!(s.call("GET", "/healthz", None, None)?.headers_nosniff);
    // A client that stalls in the middle of its headers does not keep the server from stopping.
    let mut stuck = std::net::TcpStream::connect(s.addr)?;
    write!(stuck, "GET /v1/history?controller=kazoom&subject=KZ-1 HTTP/1.1\r\nHost: x\r\n")?;
    std::thread::sleep(Duration::from_millis(100));
    s.stop()?;
    drop(stuck);
    Ok(())
}

#[test]
fn the_contract_is_served_and_committed() -> Result {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = kvitto_server::openapi_json();
    if std::env::var_os("KVITTO_BLESS").is_some() {
        std::fs::write(&committed, &current)?;
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        on_disk == current,
        "docs/openapi.json is not what the code describes; run `KVITTO_BLESS=1 cargo test -p kvitto-server --test http \
         the_contract` and commit it"
    );
    let doc: Value = serde_json::from_str(&current)?;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/v1/events", "/v1/may-process", "/v1/bundles", "/v1/log/tile/{path}", "/v1/erase", "/v1/audit"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // The event schema accepts the tour's events and refuses what the parser refuses.
    let event_schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/Event",
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&event_schema)?;
    for file in ["declarations.jsonl", "events.jsonl"] {
        for line in tour(file)?.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line)?;
            assert!(validator.is_valid(&event), "{line}");
        }
    }
    let given = r#"{"type":"consent_given","controller":"kazoom","subject":"KZ-1","purpose":"product-news"}"#;
    assert!(validator.is_valid(&serde_json::from_str(given)?));
    let nordic = serde_json::json!({"type": "processing_restricted", "controller": "kazoom", "subject": "Åsa-1",
        "reason": "Bestridt rigtighed,\nunder prøvning"});
    assert!(validator.is_valid(&nordic), "NFC letters and a newline inside free text are valid");
    let details = given.replace("}", r#","details":{"name":"Åsa","notes":[{"x":"a\nb"}],"age":41}}"#);
    assert!(validator.is_valid(&serde_json::from_str(&details)?), "{details}");
    for bad in [
        given.replace(r#","purpose":"product-news""#, ""),
        given.replace("kazoom", "Kazoom"),
        given.replace(r#""subject":"KZ-1","#, ""),
        given.replace("consent_given", "subject_map_committed"),
        given.replace("}", r#","colour":"blue"}"#),
        given.replace("KZ-1", "\u{89}KZ-1"),
        given.replace("KZ-1", "KZ\u{200b}-1"),
        given.replace("KZ-1", "KZ-1 "),
        given.replace("}", r#","details":{"name":"Åsa","notes":[{"x":"\u0018"}]}}"#),
        given.replace("}", r#","details":{}}"#),
    ] {
        let event: Value = serde_json::from_str(&bad)?;
        assert!(!validator.is_valid(&event), "{bad}");
        assert!(kvitto::Draft::from_json_str(&bad).is_err(), "{bad}");
    }
    let s = Server::start(ServeOptions { checkpoint_every: None, ..Default::default() })?;
    let served = s.call("GET", "/v1/openapi.json", None, None)?;
    assert_eq!(served.body, current);
    let missing = s.call("GET", "/v1/nothing", None, None)?;
    assert_eq!((missing.status, missing.json()["code"].as_str()), (404, Some("not_found")));
    let page = s.call("GET", "/verify/", None, None)?;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("just web"), "{}", page.body);
    s.stop()?;
    Ok(())
}

#[test]
fn the_verification_page_is_served_with_a_closed_policy() -> Result {
    let web = tempfile::tempdir()?;
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>verify</title>")?;
    std::fs::write(web.path().join("app.js"), "console.log(1)")?;
    let s = Server::start(ServeOptions {
        checkpoint_every: None,
        web_dir: Some(web.path().to_path_buf()),
        ..Default::default()
    })?;
    let page = s.call("GET", "/verify/", None, None)?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>verify</title>"));
    let script = s.call("GET", "/verify/app.js", None, None)?;
    assert!(script.content_type.starts_with("text/javascript"));
    assert_eq!(s.call("GET", "/verify/..%2Fsecret.key", None, None)?.status, 404);
    assert_eq!(s.call("GET", "/verify/.hidden", None, None)?.status, 404);
    let mut req = ureq::http::Request::builder().uri(format!("{}/verify/", s.base));
    req = req.method("GET");
    let resp = s.agent.run(req.body(String::new())?)?;
    let csp = resp.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("connect-src 'none'"), "{csp}");
    s.stop()?;
    Ok(())
}
