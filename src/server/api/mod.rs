//! The JSON API under `/api/v1`. Each handler says, in its `utoipa::path`,
//! what it takes and answers; the OpenAPI document served at
//! `/api/v1/openapi.json` is generated from them.

pub(crate) mod bots;
mod extract;
pub(crate) mod jobs;
pub(crate) mod reviews;
pub(crate) mod stats;

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use super::App;
use super::auth::Caller;
use super::error::{ApiResult, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clerk",
        description = "Jobs, bots and reviews of a clerk server. Send `Authorization: Bearer TOKEN` \
                       (`clerk tokens create NAME --role ROLE`)."
    ),
    paths(
        jobs::list,
        jobs::show,
        jobs::retry,
        jobs::cancel,
        bots::list,
        bots::run,
        bots::pause,
        bots::resume,
        stats::stats,
        reviews::list,
        reviews::show,
        reviews::claim,
        reviews::release,
        reviews::save,
        reviews::approve,
        reviews::reject,
        reviews::postpone,
        openapi,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &CommonAnswers),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Runs of bots"),
        (name = "bots", description = "The bots this server knows"),
        (name = "reviews", description = "Documents waiting for a person"),
        (name = "stats", description = "The figures of operations"),
    )
)]
pub struct ApiDoc;

/// Every operation is signed in with a bearer token.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What any operation may answer besides its own: 400 for a malformed
/// path or query, and for one with a body 415 (not JSON) and 422 (JSON of
/// the wrong shape). Added to each, so the document lists what clients meet.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let answer = |what: &str| {
            let error = ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build();
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", error)
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let answers = &mut op.responses.responses;
                answers.entry("400".into()).or_insert_with(|| {
                    answer("The request is malformed (a path or query value of the wrong type)")
                });
                if has_body {
                    answers
                        .entry("415".into())
                        .or_insert_with(|| answer("The body is not sent as application/json"));
                    answers.entry("422".into()).or_insert_with(|| {
                        answer(
                            "The body is JSON of the wrong shape, or its values do not check out",
                        )
                    });
                }
            }
        }
    }
}

/// This API, described as OpenAPI 3.1.
#[utoipa::path(get, operation_id = "openapi", path = "/api/v1/openapi.json", tag = "jobs",
    responses((status = 200, description = "The OpenAPI document"), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn openapi(caller: Caller) -> ApiResult<Json<utoipa::openapi::OpenApi>> {
    caller.require(crate::jobs::Role::Viewer)?;
    Ok(Json(ApiDoc::openapi()))
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::show))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/bots", get(bots::list))
        .route("/api/v1/bots/{name}/run", post(bots::run))
        .route("/api/v1/bots/{name}/pause", post(bots::pause))
        .route("/api/v1/bots/{name}/resume", post(bots::resume))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/reviews", get(reviews::list))
        .route(
            "/api/v1/reviews/{id}",
            get(reviews::show).put(reviews::save),
        )
        .route("/api/v1/reviews/{id}/claim", post(reviews::claim))
        .route("/api/v1/reviews/{id}/release", post(reviews::release))
        .route("/api/v1/reviews/{id}/approve", post(reviews::approve))
        .route("/api/v1/reviews/{id}/reject", post(reviews::reject))
        .route("/api/v1/reviews/{id}/postpone", post(reviews::postpone))
}
