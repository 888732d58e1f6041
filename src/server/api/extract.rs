//! The API's own extractors: axum's `Path`, `Query` and `Json`, whose
//! refusals are answered as every other API error is, as JSON with a
//! status the OpenAPI document lists (400 malformed, 415 not JSON, 422
//! JSON of the wrong shape).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::server::error::ApiError;

/// A path parameter, such as a job's id.
pub struct ApiPath<T>(pub T);

/// The query string.
pub struct ApiQuery<T>(pub T);

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| ApiJson(j.0))
            .map_err(|e| {
                let status = match &e {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, e.body_text())
            })
    }
}

/// How many to list: at least 1, at most `most` (more is taken as
/// `most`), `default` when not given.
pub fn limit(given: Option<i64>, default: u32, most: u32) -> Result<u32, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if n < 1 => Err(ApiError::bad_request(format!(
            "`limit` must be at least 1, found {n}"
        ))),
        Some(n) => Ok(u32::try_from(n).unwrap_or(most).min(most)),
    }
}

/// A whole number in a JSON body, also when written `3.0` (JSON does not
/// tell the two apart).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(D::Error::custom(format!(
            "expected a whole number, found {n}"
        ))),
    }
}
