//! The `/v1` routes: one handler each, its OpenAPI description beside it (utoipa), so the
//! committed contract (`docs/openapi.json`) is derived from the code that answers.
//!
//! Every route but the public log (`/v1/log/…`) needs a token (`Authorization: Bearer …`)
//! with the route's scope, for the controller it names: the token is checked before the
//! query, so an unauthenticated caller learns nothing about the query's subject or
//! controller (401), and a token of controller A gets 403 for anything of controller B —
//! whether or not B or the subject exists.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kvitto::{AsOf, Draft, EraseOutcome, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ErrorBody};
use crate::tokens::{Grant, Scope};

/// Bodies larger than this are parsed off the async workers.
const PARSE_INLINE: usize = 256 * 1024;

impl App {
    /// The grant of the request's token: `Authorization: Bearer <token>` (the scheme name in
    /// any case), valid, not expired, not revoked.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Grant, ApiError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let presented = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::unauthorized()),
        };
        match self.tokens.check(presented, Timestamp::now()) {
            Ok(Some(grant)) => Ok(grant),
            Ok(None) => Err(ApiError::unauthorized()),
            Err(e) => {
                // The details (a path) go to the log, not to whoever knocked.
                tracing::error!(error = %e, "the token file cannot be read");
                Err(ApiError::unavailable("tokens cannot be checked now; see the server's log"))
            }
        }
    }
}

/// The request's grant (set by the authentication middleware), which must hold `scope`.
fn require(grant: &Grant, scope: Scope) -> Result<(), ApiError> {
    if grant.scopes.contains(&scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("this token lacks the {} scope", scope.as_str())))
    }
}

/// A token may only name its own controller.
fn own(grant: &Grant, controller: &str) -> Result<(), ApiError> {
    if grant.controller == controller {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("this token is not for controller {controller:?}")))
    }
}

/// The controller of a query that may leave it out: the token's.
fn own_or_default(grant: &Grant, controller: Option<&str>) -> Result<String, ApiError> {
    match controller {
        Some(c) => own(grant, c).map(|()| c.to_string()),
        None => Ok(grant.controller.clone()),
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

fn json_body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(b)| b).map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(e.body_text()),
        _ => ApiError::bad_request(format!("body: {}", e.body_text())),
    })
}

/// A time of a query: what `--at` takes (RFC 3339, or a date meaning the end of that day),
/// and — a question, not a record — any RFC 3339 time, its digits below the microsecond
/// dropped and its year clamped to the ledger's range.
fn time(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    let parse = |v: &str| -> Result<Timestamp, String> {
        if let Ok(t) = kvitto::input::parse_time(v) {
            return Ok(t);
        }
        let t = chrono::DateTime::parse_from_rfc3339(v)
            .map_err(|e| format!("{v:?} is not an RFC 3339 time or a date ({e}); example: 2026-01-05T10:00:00Z"))?;
        Timestamp::from_micros(t.timestamp_micros().clamp(Timestamp::MIN.as_micros(), Timestamp::MAX.as_micros()))
    };
    value.map(|v| parse(v).map_err(|e| ApiError::bad_request(format!("query: field {field}: {e}")))).transpose()
}

fn as_of(at: Option<&str>, known_at: Option<&str>) -> Result<AsOf, ApiError> {
    Ok(kvitto::input::as_of(time("at", at)?, time("known_at", known_at)?))
}

fn value(v: &impl Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))
}

/// A self-contained HTML page: no script may run, nothing may be fetched.
fn html_page(page: String) -> Response {
    let mut r = Html(page).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
    );
    r
}

/// A report as JSON (the default) or as its self-contained HTML page.
fn report(format: Option<Format>, v: &impl Serialize, page: impl FnOnce() -> String) -> Result<Response, ApiError> {
    Ok(match format.unwrap_or_default() {
        Format::Json => Json(value(v)?).into_response(),
        Format::Html => html_page(page()),
    })
}

/// `json` (the default) or `html`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON.
    #[default]
    Json,
    /// A self-contained HTML page.
    Html,
}

// ---- append --------------------------------------------------------------------------

/// A receipt (docs/EVENTS.md): the event is durable at `seq`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptBody {
    /// Global position.
    pub seq: u64,
    /// BLAKE3 event hash, hex.
    pub hash: String,
    /// The idempotency key (generated when the event had none).
    pub event_id: String,
    /// Ledger time of sealing, RFC 3339.
    pub recorded_at: String,
}

/// The receipts of an append, in input order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendResponse {
    /// One per event.
    pub receipts: Vec<ReceiptBody>,
}

/// Parses an append body: every line valid, ids consistent, within the count limit, every
/// event of the token's controller. Returns the drafts and their line numbers.
fn parse_append(body: &[u8], max_events: usize, controller: &str) -> Result<(Vec<usize>, Vec<Draft>), ApiError> {
    let mut repeats = kvitto::input::RepeatCheck::default();
    let (mut lines, mut drafts) = (Vec::new(), Vec::new());
    for item in kvitto::input::drafts(body).map_err(ApiError::bad_request)? {
        let (line, draft) = item.map_err(|e| ApiError::bad_request(format!("{e}; nothing appended")))?;
        if drafts.len() == max_events {
            return Err(ApiError::too_large(format!(
                "line {line}: more than {max_events} events in one request (the limit); split the input; nothing \
                 appended"
            )));
        }
        if draft.controller.as_str() != controller {
            return Err(ApiError::forbidden(format!(
                "line {line}: field controller: this token is not for controller {:?}; nothing appended",
                draft.controller.as_str()
            )));
        }
        repeats.check(line, &draft).map_err(ApiError::bad_request)?;
        lines.push(line);
        drafts.push(draft);
    }
    Ok((lines, drafts))
}

/// Appends events: one JSON object, or JSON Lines (`application/x-ndjson`), all or nothing.
///
/// The whole body is checked first; any problem answers 400 with `line N: field F: …` and
/// nothing is written. A 200 carries one receipt per event, each sent only once its event
/// is durable (fdatasync'd). Re-sending an event with the same `event_id` and content
/// answers with its original receipt. At most `max_events` (default 10,000) events and
/// `max_body` (default 16 MiB) per request, else 413.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(
        content = String,
        description = "One event object (docs/EVENTS.md), or JSON Lines: one event object per line.",
        content_type = "application/x-ndjson",
        example = json!("{\"type\":\"consent_given\",\"controller\":\"kalejdo\",\"subject\":\"KAL-100042\",\"purpose\":\"marketing\",\"notice_version\":\"2026-01\"}")
    ),
    responses(
        (status = 200, description = "Every event is durable", body = AppendResponse),
        (status = 400, description = "Bad input (nothing written)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `append`, or an event of another controller", body = ErrorBody),
        (status = 409, description = "An event_id used with other content, or an erasure refused", body = ErrorBody),
        (status = 413, description = "Over the size or count limit", body = ErrorBody),
        (status = 503, description = "Busy, timed out, closing, or outcome unknown (resend with the event_ids)", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn append_events(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AppendResponse>, ApiError> {
    require(&grant, Scope::Append)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
            "the body is larger than {} bytes (the limit of one request); split the input; nothing appended",
            app.options.max_body
        )),
        _ => ApiError::bad_request(format!("body: {}", e.body_text())),
    })?;
    let max_events = app.options.max_events;
    let (lines, drafts) = if body.len() > PARSE_INLINE {
        let controller = grant.controller.clone();
        tokio::task::spawn_blocking(move || parse_append(&body, max_events, &controller))
            .await
            .map_err(|e| ApiError::internal(format!("parsing: {e}")))??
    } else {
        parse_append(&body, max_events, &grant.controller)?
    };
    let receipts = app.ledger.append_batch(drafts).await.map_err(|e| ApiError::append(e, &lines))?;
    app.metrics.appended(receipts.len());
    Ok(Json(AppendResponse {
        receipts: receipts
            .iter()
            .map(|r| ReceiptBody {
                seq: r.seq,
                hash: r.hash.to_hex(),
                event_id: r.event_id.to_string(),
                recorded_at: r.recorded_at.to_rfc3339(),
            })
            .collect(),
    }))
}

// ---- questions -----------------------------------------------------------------------

/// May-process query.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct MayProcessQuery {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
    /// Purpose id.
    pub purpose: String,
    /// Occurred time: what had happened by then (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// Recorded time: only what the ledger knew by then [default: now].
    #[param(format = DateTime)]
    #[schema(format = DateTime)]
    pub known_at: Option<String>,
}

/// The decision (docs/DECISIONS.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    /// Yes or no.
    pub allowed: bool,
    /// The rule that decided, in words.
    pub reason: String,
    /// The event that decided, when one did.
    pub seq: Option<u64>,
}

/// May this customer's data be processed for a purpose? Always 200 with `allowed`.
#[utoipa::path(
    get,
    path = "/v1/may-process",
    tag = "questions",
    params(MayProcessQuery),
    responses(
        (status = 200, description = "Allowed or denied, with the rule and the deciding seq", body = DecisionBody),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown purpose or controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn may_process(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<MayProcessQuery>, QueryRejection>,
) -> Result<Json<DecisionBody>, ApiError> {
    require(&grant, Scope::Read)?;
    decide(&app, &grant, query(q)?)
}

/// `POST /v1/may-process`: the same question with the customer reference in the body, out of
/// URLs and the logs of whatever sits in between.
#[utoipa::path(
    post,
    path = "/v1/may-process",
    tag = "questions",
    request_body = MayProcessQuery,
    responses(
        (status = 200, description = "Allowed or denied, with the rule and the deciding seq", body = DecisionBody),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown purpose or controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn may_process_post(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Json<MayProcessQuery>, JsonRejection>,
) -> Result<Json<DecisionBody>, ApiError> {
    require(&grant, Scope::Read)?;
    decide(&app, &grant, json_body(body)?)
}

fn decide(app: &App, grant: &Grant, q: MayProcessQuery) -> Result<Json<DecisionBody>, ApiError> {
    own(grant, &q.controller)?;
    let d = app.ledger.may_process(
        &q.controller,
        &q.subject,
        &q.purpose,
        as_of(q.at.as_deref(), q.known_at.as_deref())?,
    )?;
    Ok(Json(DecisionBody { allowed: d.allowed, reason: d.reason, seq: d.seq }))
}

/// Consent query.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
    /// Only this purpose [default: every purpose].
    pub purpose: Option<String>,
    /// Occurred time (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// Recorded time [default: now].
    #[param(format = DateTime)]
    #[schema(format = DateTime)]
    pub known_at: Option<String>,
}

/// Consent answers, one per purpose.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentResponse {
    /// As `kvitto consent --json` prints them: state, since, seq, basis, history intervals.
    #[schema(value_type = Vec<Object>)]
    pub answers: Vec<serde_json::Value>,
}

/// Consent state per purpose (with its history) as of `at` / `known_at`.
#[utoipa::path(
    get,
    path = "/v1/consent",
    tag = "questions",
    params(ConsentQuery),
    responses(
        (status = 200, description = "One answer per purpose", body = ConsentResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown subject, purpose or controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn consent(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<ConsentQuery>, QueryRejection>,
) -> Result<Json<ConsentResponse>, ApiError> {
    require(&grant, Scope::Read)?;
    consent_answers(&app, &grant, query(q)?)
}

/// `POST /v1/consent`: the same question with the customer reference in the body.
#[utoipa::path(
    post,
    path = "/v1/consent",
    tag = "questions",
    request_body = ConsentQuery,
    responses(
        (status = 200, description = "One answer per purpose", body = ConsentResponse),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown subject, purpose or controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn consent_post(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Json<ConsentQuery>, JsonRejection>,
) -> Result<Json<ConsentResponse>, ApiError> {
    require(&grant, Scope::Read)?;
    consent_answers(&app, &grant, json_body(body)?)
}

fn consent_answers(app: &App, grant: &Grant, q: ConsentQuery) -> Result<Json<ConsentResponse>, ApiError> {
    own(grant, &q.controller)?;
    let answers = app.ledger.consent(
        &q.controller,
        &q.subject,
        q.purpose.as_deref(),
        as_of(q.at.as_deref(), q.known_at.as_deref())?,
    )?;
    Ok(Json(ConsentResponse { answers: answers.iter().map(value).collect::<Result<_, _>>()? }))
}

/// A customer of a controller.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct SubjectQuery {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
}

/// A customer's events in subject order.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// As `kvitto history --json` prints them (details decrypted where their key exists).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// One customer's events in subject order, details decrypted where their key still exists.
#[utoipa::path(
    get,
    path = "/v1/history",
    tag = "questions",
    params(SubjectQuery),
    responses(
        (status = 200, description = "The events (empty for a customer without any)", body = HistoryResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn history(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<Json<HistoryResponse>, ApiError> {
    require(&grant, Scope::Read)?;
    events_of(&app, &grant, query(q)?).await
}

/// `POST /v1/history`: the same question with the customer reference in the body.
#[utoipa::path(
    post,
    path = "/v1/history",
    tag = "questions",
    request_body = SubjectQuery,
    responses(
        (status = 200, description = "The events (empty for a customer without any)", body = HistoryResponse),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `read` or is for another controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn history_post(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Json<SubjectQuery>, JsonRejection>,
) -> Result<Json<HistoryResponse>, ApiError> {
    require(&grant, Scope::Read)?;
    events_of(&app, &grant, json_body(body)?).await
}

async fn events_of(app: &App, grant: &Grant, q: SubjectQuery) -> Result<Json<HistoryResponse>, ApiError> {
    own(grant, &q.controller)?;
    let events = app.ledger.history(&q.controller, &q.subject).await?;
    Ok(Json(HistoryResponse { events: events.iter().map(|e| serde_json::Value::Object(e.to_json())).collect() }))
}

// ---- reports -------------------------------------------------------------------------

/// Access report query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
    /// Occurred time (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    pub at: Option<String>,
    /// Recorded time [default: now].
    #[param(format = DateTime)]
    pub known_at: Option<String>,
    /// `json` (default) or `html`.
    pub format: Option<Format>,
}

/// The Art 15 access report with the Art 15(3) copy of the data (docs/REPORTS.md), as JSON
/// or a self-contained HTML page.
#[utoipa::path(
    get,
    path = "/v1/reports/access",
    tag = "reports",
    params(AccessQuery),
    responses(
        (status = 200, description = "The report", content(
            (Object = "application/json"),
            (String = "text/html")
        )),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `report` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown subject or controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn access_report(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<AccessQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&grant, Scope::Report)?;
    let q = query(q)?;
    own(&grant, &q.controller)?;
    let a =
        app.ledger.subject_access(&q.controller, &q.subject, as_of(q.at.as_deref(), q.known_at.as_deref())?).await?;
    report(q.format, &a, || kvitto::html::access_report(&a))
}

/// Processing record query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProcessingQuery {
    /// Controller id (the token's).
    pub controller: String,
    /// Occurred time (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    pub at: Option<String>,
    /// Recorded time [default: now].
    #[param(format = DateTime)]
    pub known_at: Option<String>,
    /// `json` (default) or `html`.
    pub format: Option<Format>,
}

/// The Art 30 record of processing of the controller.
#[utoipa::path(
    get,
    path = "/v1/reports/processing",
    tag = "reports",
    params(ProcessingQuery),
    responses(
        (status = 200, description = "The record", content(
            (Object = "application/json"),
            (String = "text/html")
        )),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `report` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn processing_record(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<ProcessingQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&grant, Scope::Report)?;
    let q = query(q)?;
    own(&grant, &q.controller)?;
    let r = app.ledger.processing_report(&q.controller, as_of(q.at.as_deref(), q.known_at.as_deref())?)?;
    report(q.format, &r, || kvitto::html::processing_record(&r))
}

/// A controller's list at a point in time.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Controller id [default: the token's].
    pub controller: Option<String>,
    /// The point in time (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    pub now: Option<String>,
    /// Requests: every one, not only the open ones.
    pub all: Option<bool>,
}

/// Items of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsResponse {
    /// As the CLI's `--json` prints them.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
}

/// Rights requests with their Art 12(3) deadlines, overdue first: the open ones, or every one
/// with `all=true`.
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = "reports",
    params(ListQuery),
    responses(
        (status = 200, description = "The requests", body = ItemsResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `report` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn requests(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ItemsResponse>, ApiError> {
    require(&grant, Scope::Report)?;
    let q = query(q)?;
    let c = own_or_default(&grant, q.controller.as_deref())?;
    let now = time("now", q.now.as_deref())?.unwrap_or_else(Timestamp::now);
    let items = app.ledger.requests(Some(&c), now, q.all.unwrap_or(false))?;
    Ok(Json(ItemsResponse { items: items.iter().map(value).collect::<Result<_, _>>()? }))
}

/// What retention would erase or flag at `now` (docs/REPORTS.md); nothing is written.
#[utoipa::path(
    get,
    path = "/v1/retention/plan",
    tag = "audit",
    params(ListQuery),
    responses(
        (status = 200, description = "The plan", body = ItemsResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `audit` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn retention_plan(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ItemsResponse>, ApiError> {
    require(&grant, Scope::Audit)?;
    let q = query(q)?;
    let c = own_or_default(&grant, q.controller.as_deref())?;
    let now = time("now", q.now.as_deref())?.unwrap_or_else(Timestamp::now);
    let items = app.ledger.retention_plan(Some(&c), now)?;
    Ok(Json(ItemsResponse { items: items.iter().map(value).collect::<Result<_, _>>()? }))
}

/// Audit query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Controller id [default: the token's].
    pub controller: Option<String>,
    /// The audit's point in time (RFC 3339 or YYYY-MM-DD) [default: now].
    #[param(format = DateTime)]
    pub now: Option<String>,
    /// `json` (default) or `html`.
    pub format: Option<Format>,
}

/// Verifies the whole ledger, then runs checks K02–K15 for the controller (docs/AUDIT.md).
/// Findings name subjects by pseudonym only.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The audit report", content(
            (Object = "application/json"),
            (String = "text/html")
        )),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `audit` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn audit(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&grant, Scope::Audit)?;
    let q = query(q)?;
    let c = own_or_default(&grant, q.controller.as_deref())?;
    let now = time("now", q.now.as_deref())?.unwrap_or_else(Timestamp::now);
    let audit = app.ledger.audit(Some(&c), kvitto::AuditOptions::at(now)).await?;
    report(q.format, &audit, || kvitto::html::audit_report(&audit, None))
}

// ---- erasure -------------------------------------------------------------------------

/// An erasure request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
    /// Only this register [default: every register].
    pub register: Option<String>,
    /// Why (recorded in the `data_erased` event; no personal data).
    pub reason: String,
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct EraseResponse {
    /// `erased` (recorded now, keys destroyed) or `already_erased` (nothing written).
    pub outcome: String,
    /// The `data_erased` event: new, or the earlier one.
    pub seq: u64,
    /// Its hash, when recorded now.
    pub hash: Option<String>,
}

/// Destroys one customer's personal data (every key, or one register's), recorded as a
/// `data_erased` event; refused (409) while a legal hold or a statutory deferral holds.
#[utoipa::path(
    post,
    path = "/v1/erase",
    tag = "erasure",
    request_body = EraseRequest,
    responses(
        (status = 200, description = "Erased, or already erased", body = EraseResponse),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `erase` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown subject or register", body = ErrorBody),
        (status = 409, description = "Refused: a legal hold or deferral in force (nothing written)", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn erase(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Json<EraseRequest>, JsonRejection>,
) -> Result<Json<EraseResponse>, ApiError> {
    require(&grant, Scope::Erase)?;
    let r = json_body(body)?;
    own(&grant, &r.controller)?;
    Ok(Json(match app.ledger.erase(&r.controller, &r.subject, r.register.as_deref(), &r.reason).await? {
        EraseOutcome::Erased(receipt) => {
            EraseResponse { outcome: "erased".into(), seq: receipt.seq, hash: Some(receipt.hash.to_hex()) }
        }
        EraseOutcome::AlreadyErased { seq } => EraseResponse { outcome: "already_erased".into(), seq, hash: None },
    }))
}

// ---- proofs and the public log -------------------------------------------------------

/// A bundle request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// Controller id (the token's).
    pub controller: String,
    /// The controller's customer reference.
    pub subject: String,
    /// Prove against the stored checkpoint of this size [default: the latest].
    #[schema(value_type = Option<u64>, minimum = 0)]
    pub checkpoint_size: Option<serde_json::Number>,
    /// A checkpoint note the recipient already holds: the bundle adds a consistency proof from it.
    pub since: Option<String>,
}

/// One customer's history for a regulator (docs/BUNDLE.md), proven against a signed
/// checkpoint; checked offline with `kvitto verify-bundle` or the page at `/verify`.
#[utoipa::path(
    post,
    path = "/v1/bundles",
    tag = "proofs",
    request_body = BundleRequest,
    responses(
        (status = 200, description = "The bundle (kvitto-bundle/2)", body = Object),
        (status = 400, description = "Bad request, or no checkpoint stored yet", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `report` or is for another controller", body = ErrorBody),
        (status = 404, description = "Unknown controller", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn bundle(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
    body: Result<Json<BundleRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&grant, Scope::Report)?;
    let r = json_body(body)?;
    own(&grant, &r.controller)?;
    // JSON Schema's integers include 7.0; serde's u64 does not.
    let size = match &r.checkpoint_size {
        None => None,
        Some(n) => Some(
            n.as_u64()
                .or_else(|| {
                    n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(63)).map(|f| f as u64)
                })
                .ok_or_else(|| ApiError::bad_request("body: field checkpoint_size: must be a non-negative integer"))?,
        ),
    };
    Ok(Json(app.ledger.export_bundle(&r.controller, &r.subject, size, r.since.as_deref()).await?))
}

fn text(body: String, immutable: bool) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    if !immutable {
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    r
}

/// Signs the current tree head (after committing the subject map) and stores it; answers the
/// C2SP `tlog-checkpoint` note. `kvitto serve` also does this on its own every
/// `--checkpoint-every` seconds when events arrived.
#[utoipa::path(
    post,
    path = "/v1/checkpoint",
    tag = "proofs",
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        (status = 400, description = "The ledger is empty", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks `audit`", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn sign_checkpoint(
    State(app): State<Arc<App>>,
    Extension(grant): Extension<Grant>,
) -> Result<Response, ApiError> {
    require(&grant, Scope::Audit)?;
    Ok(text(app.sign().await?, false))
}

/// The latest signed checkpoint (C2SP `tlog-checkpoint`), public: the tree head a witness
/// cosigns and a regulator holds.
#[utoipa::path(
    get,
    path = "/v1/log/checkpoint",
    tag = "log",
    responses(
        (status = 200, description = "The note", body = String, content_type = "text/plain"),
        (status = 404, description = "No checkpoint signed yet", body = ErrorBody),
    )
)]
pub async fn latest_checkpoint(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let (_, note) = app.latest_checkpoint().ok_or_else(|| ApiError::not_found("no checkpoint is signed yet"))?;
    Ok(text(note, false))
}

/// The checkpoint verifier key (C2SP signed-note `name+id+key`), public. Get it out of band
/// too: a key fetched from the company under review proves only what that company says.
#[utoipa::path(
    get,
    path = "/v1/log/key",
    tag = "log",
    responses((status = 200, description = "The verifier key", body = String, content_type = "text/plain"))
)]
pub async fn verifier_key(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    Ok(text(app.ledger.verifier_key()?, true))
}

/// Parses a C2SP tile path below `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
pub(crate) fn parse_tile(path: &str) -> Option<(Option<u8>, u64, u64)> {
    let (level, rest) = path.split_once('/')?;
    let level = match level {
        "entries" => None,
        l if l.len() == 1 || (l.len() == 2 && !l.starts_with('0')) => Some(l.parse::<u8>().ok()?),
        _ => return None,
    };
    let (index, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let w: u64 = if w.starts_with('0') || w.len() > 3 { return None } else { w.parse().ok()? };
            (i, (1..256).contains(&w).then_some(w)?)
        }
        None => (rest, 256),
    };
    let parts: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() { p.strip_prefix('x')? } else { p };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    // One spelling per tile: no leading x000 groups.
    (kvitto::tile_path(level, n, (width < 256).then_some(width)) == format!("tile/{path}")).then_some((level, n, width))
}

/// A tile of the latest checkpoint's tree (C2SP `tlog-tiles`, public): hash tiles of 256
/// SHA-256 nodes and entry bundles of the 32-byte event hashes — no event content.
#[utoipa::path(
    get,
    path = "/v1/log/tile/{path}",
    tag = "log",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, e.g. `0/000` or `entries/001.p/17`")),
    responses(
        (status = 200, description = "The tile", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "No such tile in the latest checkpoint's tree", body = ErrorBody),
    )
)]
pub async fn tile(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(path)) = path else { return Err(ApiError::not_found("not a tile path")) };
    let (level, n, width) = parse_tile(&path).ok_or_else(|| ApiError::not_found("not a tile path"))?;
    let size = app.latest_checkpoint().map_or(0, |(size, _)| size);
    let bytes = app
        .ledger
        .tile(size, level, n, width)
        .await?
        .ok_or_else(|| ApiError::not_found("no such tile in the latest tree"))?;
    let mut r = ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    if width == 256 {
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_parse_one_way() {
        assert_eq!(parse_tile("0/000"), Some((Some(0), 0, 256)));
        assert_eq!(parse_tile("2/x001/x234/067.p/17"), Some((Some(2), 1_234_067, 17)));
        assert_eq!(parse_tile("entries/273.p/112"), Some((None, 273, 112)));
        for bad in ["0/0", "0/x000/001", "0/001.p/0", "0/001.p/256", "0/001.p/017", "a/000", "0/1000", "00/000", "0/"] {
            assert_eq!(parse_tile(bad), None, "{bad}");
        }
    }
}
