//! `kvitto serve` (the HTTP API, docs/HTTP.md) and `kvitto token` (its scoped tokens).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kvitto::Timestamp;
use kvitto_server::tokens::{Scope, TokenError, TokenRecord, TokenStore};

use crate::{Failure, say};

/// `kvitto serve` flags.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on (plain HTTP: keep it on loopback, or put a TLS proxy in front)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Largest request body in bytes (413 above)
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    max_body: usize,
    /// Most events per append request (413 above)
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_events: u32,
    /// Requests handled at once; more wait for a slot (up to --queue-wait, then 503)
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent: u32,
    /// Seconds a request waits for a slot before 503 busy
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    queue_wait: u64,
    /// Seconds one request may take before 503 timeout
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: u64,
    /// Sign a checkpoint every SECS when events arrived (0: only on POST /v1/checkpoint)
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    checkpoint_every: u64,
    /// The built verification page (`just web` writes target/web), served at /verify/
    #[arg(long, env = "KVITTO_WEB_DIR", value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// Seconds a shutdown waits for the requests in flight before it stops without them
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    shutdown_grace: u64,
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes the requests in flight and closes
/// the ledger: every receipt sent is durable.
pub(crate) async fn serve(dir: &Path, args: ServeArgs) -> Result<(), Failure> {
    let web_dir = match args.web_dir {
        Some(d) if !d.join("index.html").is_file() => {
            return Err(Failure::input(format!(
                "--web-dir {}: no index.html there (build the page with `just web`)",
                d.display()
            )));
        }
        Some(d) => Some(d),
        None => Some(PathBuf::from("target/web")).filter(|d| d.join("index.html").is_file()),
    };
    let options = kvitto_server::ServeOptions {
        max_body: args.max_body,
        max_events: args.max_events as usize,
        max_concurrent: args.max_concurrent as usize,
        queue_wait: Duration::from_secs(args.queue_wait),
        request_timeout: Duration::from_secs(args.request_timeout),
        checkpoint_every: (args.checkpoint_every > 0).then(|| Duration::from_secs(args.checkpoint_every)),
        web_dir,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let page = options.web_dir.as_ref().map(|d| format!(", page from {}", d.display())).unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::storage(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(|e| Failure::storage(e.to_string()))?;
    let ledger = crate::open(dir).await?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, not loopback: this is plain HTTP, tokens cross the network in clear; put a \
             TLS-terminating reverse proxy in front (docs/HTTP.md)"
        );
    }
    let tokens = TokenStore::new(dir).list().map_err(token_failure)?;
    let active = tokens.iter().filter(|t| t.status(Timestamp::now()) == "active").count();
    // Tests and scripts read the address from this line (with --listen 127.0.0.1:0).
    eprintln!(
        "kvitto serve: listening on http://{addr} (ledger {}, {} events, {active} active tokens{page})",
        dir.display(),
        ledger.len()
    );
    if active == 0 {
        eprintln!("note: no active token: create one with `kvitto token create --controller C --scope append,read`");
    }
    let served = kvitto_server::serve(ledger, listener, options, stop_signal()).await;
    let ledger = served.map_err(|e| Failure::storage(format!("serving: {e}")))?;
    let n = ledger.len();
    crate::close(ledger).await;
    eprintln!("kvitto serve: stopped; {n} events, ledger closed");
    Ok(())
}

/// SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::Input(m) => Failure::input(m),
        e @ TokenError::Io { .. } => Failure::storage(e.to_string()),
    }
}

/// `--expires`: RFC 3339, a date (end of day, UTC), or a span from now (`90d`, `12h`).
pub(crate) fn parse_expiry(s: &str) -> Result<Timestamp, String> {
    let span = |n: &str, unit: i64| -> Result<Timestamp, String> {
        let n: i64 = n.parse().map_err(|_| format!("{s:?}: expected e.g. 90d, 12h, 2027-01-31 or an RFC 3339 time"))?;
        let us = n.checked_mul(unit).and_then(|d| Timestamp::now().as_micros().checked_add(d));
        us.ok_or_else(|| format!("{s:?}: too far")).and_then(Timestamp::from_micros)
    };
    if let Some(d) = s.strip_suffix('d') {
        return span(d, 86_400_000_000);
    }
    if let Some(h) = s.strip_suffix('h') {
        return span(h, 3_600_000_000);
    }
    kvitto::input::parse_time(s)
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Create a token (printed once: only its hash is kept)
    #[command(after_help = "Examples:\n  kvitto token create --controller kalejdo --scope append,read\n  \
kvitto token create --controller kalejdo --scope report,erase --expires 90d\n\n\
Scopes: append (POST /v1/events), read (may-process, consent, history), report (reports,\n\
requests, bundles), erase (POST /v1/erase), audit (audit, retention plan, checkpoints).\n\
A token reads and writes its one controller only.")]
    Create {
        /// The one controller this token may read and write
        #[arg(long)]
        controller: String,
        /// Comma-separated: append, read, report, erase, audit
        #[arg(long, value_parser = Scope::parse_list)]
        scope: std::collections::BTreeSet<Scope>,
        /// Expiry: RFC 3339, YYYY-MM-DD (end of day, UTC), or 90d / 12h from now [default: never]
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<Timestamp>,
    },
    /// List tokens (ids, controllers, scopes, status; never the tokens)
    #[command(after_help = "Example:\n  kvitto token list --json")]
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id (takes effect on the server's next request)
    #[command(after_help = "Example:\n  kvitto token revoke 3f9a0c12b7e4")]
    Revoke {
        /// The token's id (from `token list`, or the 12 hex digits after `kvitto_`)
        id: String,
    },
}

fn listing(t: &TokenRecord, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "controller": t.controller,
        "scopes": t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "status": t.status(now),
    })
}

/// `kvitto token …`: works on the ledger directory's token file; the ledger need not be open.
pub(crate) fn token(dir: &Path, command: TokenCommand) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::input(format!("{}: no ledger directory (kvitto init first)", dir.display())));
    }
    let store = TokenStore::new(dir);
    let now = Timestamp::now();
    match command {
        TokenCommand::Create { controller, scope, expires } => {
            let (token, record) = store.create(&controller, scope, expires, now).map_err(token_failure)?;
            eprintln!(
                "created token {} for controller {} with scopes {}{}; it is shown once, keep it secret:",
                record.id,
                record.controller,
                record.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
                record.expires_at.as_ref().map(|t| format!(", expires {t}")).unwrap_or_default()
            );
            say!("{token}");
        }
        TokenCommand::List { json } => {
            let tokens = store.list().map_err(token_failure)?;
            if json {
                for t in &tokens {
                    say!("{}", listing(t, now));
                }
            } else if tokens.is_empty() {
                say!("no tokens (kvitto token create --controller C --scope append,read)");
            } else {
                say!(
                    "{:<12}  {:<8}  {:<20}  {:<28}  {:<20}  expires",
                    "id",
                    "status",
                    "controller",
                    "scopes",
                    "created"
                );
                for t in &tokens {
                    let scopes = t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
                    say!(
                        "{:<12}  {:<8}  {:<20}  {:<28}  {:<20}  {}",
                        t.id,
                        t.status(now),
                        t.controller,
                        scopes,
                        t.created_at.get(..19).unwrap_or(&t.created_at),
                        t.expires_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if store.revoke(&id, now).map_err(token_failure)? {
                say!("revoked token {id}");
            } else {
                say!("token {id} was already revoked; nothing changed");
            }
        }
    }
    Ok(())
}
