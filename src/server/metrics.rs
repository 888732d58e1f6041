//! `GET /metrics`: the figures for Prometheus. A scraper proves itself
//! with an API token (any role) or by its address being on the allow list
//! (`--metrics-allow`); behind a reverse proxy the address is the proxy's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::auth::Caller;
use super::error::ApiError;
use crate::jobs::{Role, now_ms};
use crate::stats::metrics::{Snapshot, totals};

pub async fn metrics(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let allowed = app
        .config
        .metrics_allow
        .iter()
        .any(|net| net.contains(&peer.ip()));
    if !allowed {
        match caller {
            Some(Extension(c)) => {
                if let Err(e) = c.require(Role::Viewer) {
                    return e.into_response();
                }
            }
            None => return ApiError::unauthorized().into_response(),
        }
    }
    match snapshot(&app).await {
        Ok(s) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.render(),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn snapshot(app: &App) -> crate::jobs::Result<Snapshot> {
    let now = now_ms();
    let totals = totals(app.db.as_ref(), &app.counted, now).await?;
    let live = app.db.live().await?;
    let paused = app.db.paused().await?;
    let mut kinds = BTreeMap::new();
    for bot in app.bots.iter() {
        for step in &bot.steps {
            kinds.insert((bot.name.clone(), step.name.clone()), step.kind.to_string());
        }
    }
    Ok(Snapshot {
        totals,
        live,
        paused,
        bots: app.bots.iter().map(|b| b.name.clone()).collect(),
        kinds,
        now,
    })
}
