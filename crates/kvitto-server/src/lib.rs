//! `kvitto serve`: the ledger over HTTP for backends in any language, and the regulators'
//! verification page (docs/HTTP.md).
//!
//! One ledger per process. Plain HTTP/1.1 on loopback by default; put a TLS-terminating
//! reverse proxy in front for anything else. Every `/v1` route but the public log needs a
//! scoped token ([`tokens`]). Requests are bounded in body size, events, time and
//! concurrency (waiting for a slot is the backpressure; past the queue wait the answer is
//! 503 `busy`). On shutdown the server stops accepting, finishes every request in flight —
//! an append's receipt is sent only once its events are durable — and hands the ledger back
//! to be closed.

pub mod api;
pub mod error;
pub mod metrics;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kvitto::Ledger;
use tokio::sync::Semaphore;
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::tokens::TokenStore;

/// How the server runs (the CLI's `kvitto serve` flags).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest request body, bytes (413 above).
    pub max_body: usize,
    /// Most events in one append request (413 above).
    pub max_events: usize,
    /// Requests handled at once; more wait for a slot.
    pub max_concurrent: usize,
    /// How long a request waits for a slot before 503 `busy`.
    pub queue_wait: Duration,
    /// Longest time one request may take (503 `timeout`).
    pub request_timeout: Duration,
    /// Sign a checkpoint this often when events arrived (`None`: only on `POST /v1/checkpoint`).
    pub checkpoint_every: Option<Duration>,
    /// The built verification page (`scripts/web-build` writes `target/web`), served at `/verify/`.
    pub web_dir: Option<PathBuf>,
    /// How long a shutdown waits for the requests in flight before it stops without them.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body: 16 << 20,
            max_events: 10_000,
            max_concurrent: 256,
            queue_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            checkpoint_every: Some(Duration::from_secs(60)),
            web_dir: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    ledger: Ledger,
    tokens: TokenStore,
    metrics: Metrics,
    options: ServeOptions,
    /// Slots of the routes that need a token (taken only once the token is checked)…
    slots: Arc<Semaphore>,
    /// …and of the public ones, apart, so that anonymous callers cannot fill the others.
    public_slots: Arc<Semaphore>,
    stopping: AtomicBool,
    /// The latest signed checkpoint (size, note): this process is the ledger's one writer,
    /// so it changes only when this process signs.
    latest: std::sync::RwLock<Option<(u64, String)>>,
}

impl App {
    /// The latest signed checkpoint, from memory.
    pub(crate) fn latest_checkpoint(&self) -> Option<(u64, String)> {
        self.latest.read().ok().and_then(|l| l.clone())
    }

    /// Signs a checkpoint and remembers it.
    pub(crate) async fn sign(&self) -> Result<String, kvitto::ReadError> {
        let note = self.ledger.checkpoint().await?;
        let size = note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or_else(|| self.ledger.len());
        if let Ok(mut l) = self.latest.write() {
            *l = Some((size, note.clone()));
        }
        Ok(note)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kvitto",
        description = "A tamper-evident ledger of what a company does with each customer's personal data: append \
                       events, ask may-process and consent, get reports, erase, export bundles for regulators. \
                       Every route but `/v1/log/…` needs `Authorization: Bearer <token>` (`kvitto token create`) \
                       with the route's scope, for the controller it names. Errors are `{\"error\",\"code\"}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        api::append_events,
        api::may_process,
        api::may_process_post,
        api::consent,
        api::consent_post,
        api::history,
        api::history_post,
        api::access_report,
        api::processing_record,
        api::requests,
        api::retention_plan,
        api::audit,
        api::erase,
        api::bundle,
        api::sign_checkpoint,
        api::latest_checkpoint,
        api::verifier_key,
        api::tile,
    ),
    components(schemas(api::Format)),
    modifiers(&BearerToken),
    tags(
        (name = "events", description = "Appending (scope `append`)"),
        (name = "questions", description = "may-process, consent, history (scope `read`)"),
        (name = "reports", description = "GDPR reports and requests (scope `report`)"),
        (name = "erasure", description = "Art 17 erasure (scope `erase`)"),
        (name = "audit", description = "Audit and retention (scope `audit`)"),
        (name = "proofs", description = "Bundles and checkpoints"),
        (name = "log", description = "The public transparency log (C2SP tlog-checkpoint, tlog-tiles): no token"),
    )
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A kvitto API token: `kvitto token create --controller C --scope …`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 contract, as served at `/v1/openapi.json` and committed as
/// `docs/openapi.json` (pretty-printed, newline-terminated).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    // The event schema comes from kvitto-core's kind table (the parser's), not from a copy.
    let (event, detail_value) = kvitto::Draft::json_schemas("#/components/schemas/DetailValue");
    doc["components"]["schemas"]["Event"] = event;
    doc["components"]["schemas"]["DetailValue"] = detail_value;
    if let Some(content) =
        doc.pointer_mut("/paths/~1v1~1events/post/requestBody/content").and_then(|c| c.as_object_mut())
    {
        content
            .insert("application/json".into(), serde_json::json!({"schema": {"$ref": "#/components/schemas/Event"}}));
    }
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

/// Records every answer in the metrics under its route template, and marks it `nosniff`.
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // The matched template is shared, not copied: cloning it is a reference count.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let mut response = next.run(req).await;
    // Every answer is what its content type says.
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.metrics.request(route, response.status().as_u16(), started.elapsed());
    response
}

/// Counts a request in flight for as long as it lives (a client that hangs up included).
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(m: &'a Metrics) -> InFlight<'a> {
        m.in_flight(true);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight(false);
    }
}

/// Bounded concurrency (wait for a slot of `slots`, up to the queue wait) and the time limit.
async fn limited(app: &App, slots: &Arc<Semaphore>, req: Request, next: Next) -> Response {
    // A free slot is taken at once; only a wait for one arms the queue timer.
    let slot = match slots.clone().try_acquire_owned() {
        Ok(slot) => Ok(slot),
        Err(_) => match tokio::time::timeout(app.options.queue_wait, slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(()),
        },
    };
    let Ok(_slot) = slot else { return ApiError::busy().into_response() };
    let _counted = InFlight::enter(&app.metrics);
    match tokio::time::timeout(app.options.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::timeout(app.options.request_timeout).into_response(),
    }
}

async fn limit_public(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let slots = app.public_slots.clone();
    limited(&app, &slots, req, next).await
}

/// Checks the token before anything else of the request — before a slot is taken and before
/// the body is read — hands its grant to the handler, and runs it within the limits.
async fn authenticate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    match app.authenticate(req.headers()) {
        Ok(grant) => {
            req.extensions_mut().insert(grant);
            limited(&app, &app.slots, req, next).await
        }
        Err(e) => e.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.stopping.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else if app.ledger.is_poisoned() {
        (StatusCode::SERVICE_UNAVAILABLE, "the ledger handle is poisoned by a storage failure; restart\n")
            .into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render(&app.ledger))
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// One file of the verification page: plain names only, from the page's directory.
async fn page_file(app: &App, name: &str) -> Response {
    let Some(dir) = &app.options.web_dir else {
        return ApiError::not_found(
            "the verification page is not served: build it (`just web`, or scripts/web-build) and start kvitto serve \
             with --web-dir target/web",
        )
        .into_response();
    };
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain || name.starts_with('.') {
        return ApiError::not_found("no such file").into_response();
    }
    let kind = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
    let path = dir.join(name);
    match tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    {
        Ok(bytes) => {
            let mut r = ([(header::CONTENT_TYPE, kind)], bytes).into_response();
            // The page talks to nothing: no fetch, no form target, nothing from elsewhere.
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
                     connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
                ),
            );
            r
        }
        Err(_) => ApiError::not_found("no such file").into_response(),
    }
}

/// The routes of `app`.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.options.max_body;
    let private = Router::new()
        .route("/v1/events", post(api::append_events))
        .route("/v1/may-process", get(api::may_process).post(api::may_process_post))
        .route("/v1/consent", get(api::consent).post(api::consent_post))
        .route("/v1/history", get(api::history).post(api::history_post))
        .route("/v1/reports/access", get(api::access_report))
        .route("/v1/reports/processing", get(api::processing_record))
        .route("/v1/requests", get(api::requests))
        .route("/v1/retention/plan", get(api::retention_plan))
        .route("/v1/audit", get(api::audit))
        .route("/v1/erase", post(api::erase))
        .route("/v1/bundles", post(api::bundle))
        .route("/v1/checkpoint", post(api::sign_checkpoint))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body));
    let public = Router::new()
        .route("/v1/log/checkpoint", get(api::latest_checkpoint))
        .route("/v1/log/key", get(api::verifier_key))
        .route("/v1/log/tile/{*path}", get(api::tile))
        .route("/v1/openapi.json", get(openapi))
        .route("/verify", get(|| async { Redirect::permanent("/verify/") }))
        .route("/verify/", get(|State(app): State<Arc<App>>| async move { page_file(&app, "index.html").await }))
        .route(
            "/verify/{file}",
            get(|State(app): State<Arc<App>>, axum::extract::Path(f): axum::extract::Path<String>| async move {
                page_file(&app, &f).await
            }),
        )
        .layer(middleware::from_fn_with_state(app.clone(), limit_public))
        .layer(DefaultBodyLimit::max(64 * 1024));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(private)
        .merge(public)
        .fallback(|| async { ApiError::not_found("no such route (see /v1/openapi.json)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new_status(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route takes another method (see /v1/openapi.json)",
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Serves `ledger` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (for up to `options.shutdown_grace`) and returns the ledger, to be closed by the
/// caller. Tokens are those of the ledger's directory.
pub async fn serve(
    ledger: Ledger,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<Ledger> {
    let latest = ledger.checkpoint_note(None).map_err(|e| std::io::Error::other(e.to_string()))?;
    let app = Arc::new(App {
        tokens: TokenStore::new(ledger.dir()),
        metrics: Metrics::default(),
        slots: Arc::new(Semaphore::new(options.max_concurrent.max(1))),
        public_slots: Arc::new(Semaphore::new(options.max_concurrent.max(1))),
        stopping: AtomicBool::new(false),
        latest: std::sync::RwLock::new(latest),
        options,
        ledger,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let checkpoints =
        app.options.checkpoint_every.map(|every| tokio::spawn(sign_checkpoints(app.clone(), every, stop_rx.clone())));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "serving");
    let stopping = app.clone();
    let serving = axum::serve(listener, router(app.clone())).with_graceful_shutdown(async move {
        shutdown.await;
        stopping.stopping.store(true, Ordering::Release);
        // Nothing is signed from here on.
        let _ = stop_tx.send(true);
        tracing::info!("shutting down: no new connections; finishing requests in flight");
    });
    let grace = app.options.shutdown_grace;
    let mut stopped = stop_rx;
    let drained = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = serving.into_future() => r,
        () = drained => {
            // A client that never finishes its request must not keep the ledger open for
            // ever; what it sent is either durable or not written (never in part).
            tracing::warn!(in_flight = app.metrics.in_flight_now(), "requests still in flight after the shutdown grace; stopping without them");
            Ok(())
        }
    };
    if let Some(task) = checkpoints {
        let _ = task.await;
    }
    result?;
    let ledger = app.ledger.clone();
    Ok(ledger)
}

/// Signs a checkpoint every `every` when events arrived since the last one.
async fn sign_checkpoints(app: Arc<App>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let latest = app.latest_checkpoint().map_or(0, |(size, _)| size);
        if app.ledger.len() > latest && !app.ledger.is_read_only() {
            match app.sign().await {
                Ok(_) => tracing::info!(size = app.ledger.len(), "checkpoint signed"),
                Err(e) => tracing::warn!(error = %e, "signing a checkpoint failed"),
            }
        }
    }
}
