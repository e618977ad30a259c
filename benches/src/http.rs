//! `kvitto-bench http`: the HTTP service against the library on the comparison runner's
//! stream. 64 clients (tasks on one client thread, each with its own keep-alive connection)
//! append the stream one event per request to `kvitto serve` on loopback; 64 library callers
//! append the same stream to a fresh ledger in the same process run. Then `may-process` both ways. Reports
//! throughput, the ratio (goal ≥ 0.7) and p50/p99 latencies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvitto::{Draft, Ledger, OpenOptions, Timestamp};
use kvitto_server::tokens::{Scope, TokenStore};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The HTTP throughput target, as a share of the library's.
pub const HTTP_TARGET: f64 = 0.7;

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Events in the stream.
    pub events: usize,
    /// Concurrent clients (and library callers).
    pub clients: usize,
    /// may-process questions per client.
    pub questions: usize,
    /// Seed of the demo generator.
    pub seed: u64,
    /// Library/HTTP pairs run back to back (the ratio printed is their median).
    pub rounds: usize,
}

/// One side's figures.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// Appended events per second.
    pub append_rate: f64,
    /// Append latency p50, p99.
    pub append_p: (Duration, Duration),
    /// may-process answers per second.
    pub ask_rate: f64,
    /// may-process latency p50, p99.
    pub ask_p: (Duration, Duration),
    /// Commit groups the writer formed for the append.
    pub groups: u64,
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    let at =
        |q: f64| v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or_default();
    (at(0.50), at(0.99))
}

fn parts<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let chunk = items.len().div_ceil(n.max(1)).max(1);
    items.chunks(chunk).map(<[T]>::to_vec).collect()
}

/// Questions: (controller, subject, purpose) of the stream's subject events.
fn questions(drafts: &[Draft], n: usize) -> Vec<(String, String, String)> {
    drafts
        .iter()
        .filter_map(|d| {
            let s = d.subject.as_ref()?;
            let p = d.kind.purpose()?;
            Some((d.controller.to_string(), s.as_str().to_string(), p.to_string()))
        })
        .cycle()
        .take(n)
        .collect()
}

async fn library(drafts: &[Draft], o: &HttpOptions) -> Result<Side> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger");
    Ledger::init(&path, "bench.kvitto/http")?;
    let ledger = Ledger::open(&path, OpenOptions::default()).await?;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for part in crate::compare::by_subject(drafts, o.clients) {
        let ledger = ledger.clone();
        set.spawn(async move {
            let mut lat = Vec::with_capacity(part.len());
            for d in part {
                let t = Instant::now();
                ledger.append(d).await.map_err(|e| e.to_string())?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = set.join_next().await {
        lat.extend(r??);
    }
    let append_rate = drafts.len() as f64 / started.elapsed().as_secs_f64();
    let qs = questions(drafts, o.questions * o.clients);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for part in parts(&qs, o.clients) {
        let ledger = ledger.clone();
        set.spawn(async move {
            let mut lat = Vec::with_capacity(part.len());
            for (c, s, p) in part {
                let t = Instant::now();
                ledger.may_process(&c, &s, &p, kvitto::AsOf::now()).map_err(|e| e.to_string())?;
                lat.push(t.elapsed());
                tokio::task::yield_now().await;
            }
            Ok::<_, String>(lat)
        });
    }
    let mut ask = Vec::new();
    while let Some(r) = set.join_next().await {
        ask.extend(r??);
    }
    let ask_rate = qs.len() as f64 / started.elapsed().as_secs_f64();
    let groups = ledger.write_stats().groups;
    ledger.close().await?;
    Ok(Side { append_rate, append_p: percentiles(lat), ask_rate, ask_p: percentiles(ask), groups })
}

/// A keep-alive HTTP/1.1 connection: the load generator's client, as lean as it can be so
/// that on a shared machine the clients take as little as possible from the server.
struct Conn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    host: String,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream: tokio::io::BufReader::new(stream), host: addr.to_string() })
    }

    /// Sends one request; returns the status and reads the body to its end.
    async fn send(&mut self, method: &str, path: &str, token: &str, body: &[u8]) -> Result<u16> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: \
             application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// Runs `work` for each part on its own connection, all on one client thread; returns every
/// latency.
fn clients<T: Send + 'static>(
    addr: std::net::SocketAddr,
    items: Vec<Vec<T>>,
    work: impl for<'a> Fn(&'a mut Conn, T) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>
    + Send
    + Sync
    + 'static,
) -> Result<Vec<Duration>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let work = Arc::new(work);
    std::thread::spawn(move || {
        rt.block_on(async move {
            let mut set = tokio::task::JoinSet::new();
            for part in items {
                let work = work.clone();
                set.spawn(async move {
                    let mut conn = Conn::open(addr).await?;
                    let mut lat = Vec::with_capacity(part.len());
                    for item in part {
                        let t = Instant::now();
                        work(&mut conn, item).await?;
                        lat.push(t.elapsed());
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lat)
                });
            }
            let mut lat = Vec::new();
            while let Some(r) = set.join_next().await {
                lat.extend(r??);
            }
            Ok(lat)
        })
    })
    .join()
    .map_err(|_| "the client thread panicked")?
}

fn http(rt: &tokio::runtime::Runtime, drafts: &[Draft], o: &HttpOptions) -> Result<Side> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger");
    Ledger::init(&path, "bench.kvitto/http")?;
    let tokens = TokenStore::new(&path);
    let mut by_controller = std::collections::HashMap::new();
    for d in drafts {
        if let std::collections::hash_map::Entry::Vacant(e) = by_controller.entry(d.controller.to_string()) {
            let scopes = [Scope::Append, Scope::Read].into_iter().collect();
            let (t, _) = tokens.create(e.key(), scopes, None, Timestamp::now())?;
            e.insert(t);
        }
    }
    let ledger = rt.block_on(Ledger::open(&path, OpenOptions::default()))?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = kvitto_server::ServeOptions { checkpoint_every: None, ..Default::default() };
    let server = rt.spawn(kvitto_server::serve(ledger, listener, options, async {
        let _ = stopped.await;
    }));
    let by_controller = Arc::new(by_controller);
    let lines: Vec<Vec<(String, String)>> = crate::compare::by_subject(drafts, o.clients)
        .iter()
        .map(|part| {
            part.iter()
                .map(|d| {
                    let token = by_controller.get(d.controller.as_str()).cloned().unwrap_or_default();
                    (token, Value::Object(d.to_json()).to_string())
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let lat = clients(addr, lines, |conn, (token, line)| {
        Box::pin(async move {
            match conn.send("POST", "/v1/events", &token, line.as_bytes()).await? {
                200 => Ok(()),
                s => Err(format!("append answered {s}").into()),
            }
        })
    })?;
    let append_rate = drafts.len() as f64 / started.elapsed().as_secs_f64();
    let qs: Vec<(String, String)> = questions(drafts, o.questions * o.clients)
        .into_iter()
        .map(|(c, s, p)| {
            let token = by_controller.get(&c).cloned().unwrap_or_default();
            (token, format!("/v1/may-process?controller={c}&subject={}&purpose={p}", encode(&s)))
        })
        .collect();
    let n = qs.len();
    let started = Instant::now();
    let ask = clients(addr, parts(&qs, o.clients), |conn, (token, path)| {
        Box::pin(async move {
            match conn.send("GET", &path, &token, b"").await? {
                200 => Ok(()),
                s => Err(format!("may-process answered {s}").into()),
            }
        })
    })?;
    let ask_rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let ledger = rt.block_on(server)??;
    let groups = ledger.write_stats().groups;
    rt.block_on(ledger.close())?;
    Ok(Side { append_rate, append_p: percentiles(lat), ask_rate, ask_p: percentiles(ask), groups })
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Runs both sides and prints the table; returns the JSON of the run.
pub fn run(o: &HttpOptions) -> Result<Value> {
    let drafts = crate::drafts(o.events, o.seed);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let row = |name: &str, s: &Side| {
        println!(
            "{name:<8} append {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({:>5.1} events/group)   may-process {:>9.0}/s  p50 \
             {:>7.3} ms  p99 {:>7.3} ms",
            s.append_rate,
            ms(s.append_p.0),
            ms(s.append_p.1),
            drafts.len() as f64 / s.groups.max(1) as f64,
            s.ask_rate,
            ms(s.ask_p.0),
            ms(s.ask_p.1)
        );
    };
    let side = |s: &Side| {
        json!({
            "append_per_s": s.append_rate.round(),
            "append_p50_ms": ms(s.append_p.0), "append_p99_ms": ms(s.append_p.1),
            "commit_groups": s.groups,
            "may_process_per_s": s.ask_rate.round(),
            "may_process_p50_ms": ms(s.ask_p.0), "may_process_p99_ms": ms(s.ask_p.1),
        })
    };
    println!("{} events, {} concurrent callers/clients, one event per append", drafts.len(), o.clients);
    // Rounds of a library run and an HTTP run back to back: each ratio compares two runs
    // minutes apart, not the machine's state of one moment with another's.
    let mut rounds = Vec::new();
    for round in 1..=o.rounds.max(1) {
        eprintln!(
            "round {round}: library, {} events from {} callers, then {} may-process questions",
            drafts.len(),
            o.clients,
            o.questions * o.clients
        );
        let lib = rt.block_on(library(&drafts, o))?;
        eprintln!("round {round}: http, the same over loopback, {} clients with keep-alive", o.clients);
        let web = http(&rt, &drafts, o)?;
        let ratio = web.append_rate / lib.append_rate;
        println!("round {round}");
        row("library", &lib);
        row("http", &web);
        println!("http_append_vs_library = {ratio:.2}");
        rounds.push((ratio, json!({"library": side(&lib), "http": side(&web), "http_append_vs_library": (ratio * 100.0).round() / 100.0})));
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|(r, _)| *r).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "http_append_vs_library median of {} rounds = {median:.2} (goal ≥ {HTTP_TARGET}: {})",
        ratios.len(),
        if median >= HTTP_TARGET { "met" } else { "missed" }
    );
    Ok(json!({
        "events": drafts.len(), "clients": o.clients,
        "rounds": rounds.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "http_append_vs_library_median": (median * 100.0).round() / 100.0, "goal": HTTP_TARGET,
    }))
}
