//! Typed errors to HTTP statuses: bad input is 4xx with the same `line N: field F: …` text
//! the CLI prints, never a 500; a 500 is only ever a failure of the ledger or the machine.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvitto::{AppendError, EraseError, ReadError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for people (`line 3: field purpose: missing`).
    pub error: String,
    /// A stable machine-readable code: `unauthorized`, `forbidden`, `bad_request`,
    /// `not_found`, `method_not_allowed`, `conflict`, `too_large`, `busy`, `timeout`,
    /// `unavailable`, `outcome_unknown`, `internal`.
    pub code: &'static str,
    /// For `outcome_unknown`: the event ids of the request, in order (resend them: recorded
    /// events answer with their original receipts). For an incomplete erasure: the ids of
    /// the events recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<Vec<String>>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    event_ids: Option<Vec<String>>,
}

impl ApiError {
    /// An answer of `status` with `code`.
    pub fn new_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code, message)
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), event_ids: None }
    }

    /// 401: no token, or one that is malformed, unknown, expired or revoked (one answer for all).
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid token: send `Authorization: Bearer <token>` (see `kvitto token create`)",
        )
    }

    /// 403: a valid token, but not for this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 503 `busy`: every slot taken for longer than the queue wait.
    pub fn busy() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is at its concurrency limit; retry shortly")
    }

    /// 503 `timeout`: the request took longer than the server's time limit.
    pub fn timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s; an append may or may not have been recorded: resend it with \
                 the same event_ids (recorded events answer with their original receipts)",
                limit.as_secs()
            ),
        )
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: the ledger or the machine failed (logged; the message holds no personal data).
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!(error = %message, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The status (for metrics and tests).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// An append refused or failed: `lines[i]` is the input line of event `i`.
    pub fn append(e: AppendError, lines: &[usize]) -> ApiError {
        let refused = if lines.is_empty() {
            // Not from input lines (an erasure's own event): the ledger's words.
            kvitto::input::refusal(&e, lines).map(|_| e.to_string())
        } else {
            kvitto::input::refusal(&e, lines)
        };
        if let Some(message) = refused {
            let status = match e {
                AppendError::IdConflict { .. } | AppendError::ErasureBlocked { .. } => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            let code = if status == StatusCode::CONFLICT { "conflict" } else { "bad_request" };
            return ApiError::new(status, code, format!("{message}; nothing appended"));
        }
        match e {
            AppendError::OutcomeUnknown { why, event_ids } => {
                tracing::error!(error = %why, events = event_ids.len(), "append outcome unknown");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "outcome_unknown",
                    message: format!(
                        "storage failed while committing: {why}; whether these {} events were recorded is unknown, \
                         and the server refuses appends until it is restarted. Then resend them with these event \
                         ids: recorded events answer with their original receipts",
                        event_ids.len()
                    ),
                    event_ids: Some(event_ids.iter().map(ToString::to_string).collect()),
                }
            }
            AppendError::ErasureIncomplete { why, receipts } => {
                let mut e = ApiError::internal(format!(
                    "the {} events are recorded (seqs {}–{}; their event ids below), but destroying the erased keys \
                     failed: {why}; the erasure completes when the server is restarted",
                    receipts.len(),
                    receipts.first().map_or(0, |r| r.seq),
                    receipts.last().map_or(0, |r| r.seq)
                ));
                e.event_ids = Some(receipts.iter().map(|r| r.event_id.to_string()).collect());
                e
            }
            AppendError::Closed => ApiError::unavailable("the ledger is closing; nothing appended"),
            other => ApiError::internal(format!("{other}; nothing appended")),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> ApiError {
        match e {
            ReadError::UnknownSubject { .. }
            | ReadError::NoEventsYet { .. }
            | ReadError::UnknownController(_)
            | ReadError::UnknownPurpose { .. } => ApiError::not_found(e.to_string()),
            ReadError::BadQuery { .. } => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EraseError> for ApiError {
    fn from(e: EraseError) -> ApiError {
        match e {
            EraseError::BadArgument { .. } => ApiError::bad_request(e.to_string()),
            EraseError::UnknownSubject { .. } | EraseError::UnknownRegister { .. } => {
                ApiError::not_found(e.to_string())
            }
            EraseError::Append(AppendError::ErasureBlocked { why, .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("erasure refused, nothing written: {why}"))
            }
            EraseError::Append(other) => ApiError::append(other, &[]),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, code: self.code, event_ids: self.event_ids };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.code == "busy" {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
