//! What the API answers when it cannot do what was asked: a status and a
//! JSON body `{"error": "…"}` a person can act on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::jobs::JobsError;

/// An API failure: its status, and what to tell the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Details a client can show beside the message (which fields are
    /// wrong, which checks fail).
    pub details: Option<serde_json::Value>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// Per-field problems or failing checks, when there are some.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in first: send `Authorization: Bearer TOKEN` (clerk tokens create) or sign in at /login",
        )
    }

    pub fn forbidden(needed: crate::jobs::Role) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this needs the role `{needed}` or above"),
        )
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, what)
    }
}

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        let status = match &e {
            JobsError::NotFound(_) | JobsError::NoReview(_) => StatusCode::NOT_FOUND,
            JobsError::WrongState { .. }
            | JobsError::HeldBy { .. }
            | JobsError::Conflict { .. }
            | JobsError::AlreadyExists { .. } => StatusCode::CONFLICT,
            JobsError::Unstorable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => {
                tracing::error!(error = %e, "job database error while answering a request");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            details: self.details,
        };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
