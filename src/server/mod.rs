//! The HTTP side of clerk: a JSON API under `/api/v1`, described by the
//! OpenAPI document it serves at `/api/v1/openapi.json`; the web pages of
//! reviewers (the review queue and the review page); sign-in by browser
//! session or API token with roles (`auth`); `/metrics` for Prometheus
//! (`metrics`); and `/livez` and `/readyz` for whatever watches the
//! process.
//!
//! Pages are rendered on the server (maud escapes every value it writes);
//! a little plain JavaScript, embedded in the binary, makes the review page
//! work from the keyboard.

mod api;
mod auth;
mod error;
mod images;
mod metrics;
mod pages;
mod tls;
mod warm;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use auth::{digest, hash_password, new_secret};

use crate::bot::BotRegistry;
use crate::extract::Template;
use crate::jobs::JobDb;

/// How the web server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// A PEM certificate chain and its PKCS#8 key: HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// It runs behind a reverse proxy that does TLS: plain HTTP on a
    /// non-loopback address is allowed, and cookies are marked Secure.
    pub behind_proxy: bool,
    /// A session ends after this long without a request.
    pub session_ttl: Duration,
    /// Where rendered page images are kept.
    pub cache_dir: PathBuf,
    /// Addresses that may read `/metrics` without a token.
    pub metrics_allow: Vec<ipnet::IpNet>,
}

impl WebConfig {
    /// Refuse plain HTTP on an address other machines can reach, unless a
    /// TLS proxy stands in front: passwords and session cookies would
    /// cross the network in the clear.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.ip().is_loopback() || self.tls.is_some() || self.behind_proxy {
            Ok(())
        } else {
            Err(format!(
                "{} is reachable from other machines and the server has no TLS: give --tls-cert and --tls-key, \
                 or put a TLS reverse proxy in front and say so with --insecure-http-behind-proxy",
                self.listen
            ))
        }
    }

    /// Whether browsers reach the server over TLS (directly or through the
    /// proxy), so cookies may be marked Secure.
    fn secure(&self) -> bool {
        self.tls.is_some() || self.behind_proxy
    }
}

/// The templates of one extract step, by bot and step name: a reviewer's
/// corrections are typed, and checked, with them.
type TemplateSets = HashMap<(String, String), Arc<Vec<Template>>>;

/// What every request handler shares.
#[derive(Clone)]
pub struct App {
    db: JobDb,
    bots: Arc<BotRegistry>,
    templates: Arc<TemplateSets>,
    config: Arc<WebConfig>,
    limiter: Arc<auth::LoginLimiter>,
    images: Arc<images::PageImages>,
    /// Where jobs' documents are kept: the review page reads them here.
    documents: crate::document_store::Documents,
    /// The metrics' counted sums, between scrapes.
    counted: Arc<tokio::sync::Mutex<crate::stats::metrics::CountedTotals>>,
}

impl App {
    pub fn new(
        db: JobDb,
        bots: Arc<BotRegistry>,
        config: WebConfig,
        documents: crate::document_store::Documents,
    ) -> App {
        let templates = Arc::new(template_sets(&bots));
        let images = Arc::new(images::PageImages::new(config.cache_dir.clone()));
        App {
            db,
            bots,
            templates,
            config: Arc::new(config),
            limiter: Arc::new(auth::LoginLimiter::default()),
            images,
            documents,
            counted: Arc::default(),
        }
    }

    /// The document a job read, as a file on this machine (see
    /// [`images::PageImages::local_copy`]).
    async fn document_file(
        &self,
        extraction: Option<&serde_json::Value>,
        input: &serde_json::Value,
    ) -> Option<std::path::PathBuf> {
        self.images
            .local_copy(self.documents.as_ref(), extraction, input)
            .await
    }

    /// The templates of a bot's step, if it is an extract step.
    fn templates_of(&self, bot: &str, step: &str) -> Arc<Vec<Template>> {
        self.templates
            .get(&(bot.to_string(), step.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Load the templates of every extract step of every bot, once.
fn template_sets(bots: &BotRegistry) -> TemplateSets {
    let mut sets = TemplateSets::new();
    for bot in bots.iter() {
        for step in &bot.steps {
            if let Some(templates) = bot.templates(&step.name) {
                sets.insert((bot.name.clone(), step.name.clone()), Arc::new(templates));
            }
        }
    }
    sets
}

/// Every route, with authentication in front of all but the health checks.
pub fn router(app: App) -> Router {
    let signed_in = Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .merge(signed_in)
        .layer(axum::middleware::from_fn(server_timing))
        .with_state(app)
}

/// Say in each response how long the server took over it (the W3C
/// `Server-Timing` header, which browsers' developer tools show), so a
/// slow page can be told from a slow network.
async fn server_timing(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("app;dur={took:.1}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Ready when the job database answers and its schema is current.
async fn ready(State(app): State<App>) -> (StatusCode, String) {
    match app.db.ready().await {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

/// Bind the listening address, then serve in the background until
/// `shutdown` fires, letting requests in flight finish. Fails at once when
/// the address cannot be had.
pub async fn start(
    app: App,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let config = app.config.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
    let at = listener.local_addr()?;
    tokio::spawn(warm::run(app.clone(), shutdown.clone()));
    let router = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let stop = async move { shutdown.cancelled().await };
    let task = match &config.tls {
        Some((cert, key)) => {
            use axum::serve::ListenerExt;
            // `tap_io` lends the TLS listener the peer address as connect info.
            let tls = tls::TlsListener::new(listener, cert, key)?.tap_io(|_| {});
            tracing::info!("web server listening on https://{at}");
            tokio::spawn(async move { axum::serve(tls, router).with_graceful_shutdown(stop).await })
        }
        None => {
            tracing::info!("web server listening on http://{at}");
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
            })
        }
    };
    Ok((at, task))
}
