//! The HTTP server (axum): [`app`] builds the router over an [`AppState`]; [`run`] serves
//! it with graceful shutdown. Handlers are thin: the engine ([`crate::decide`]) decides,
//! the state logs and applies changes.
//!
//! | route | scope |
//! |---|---|
//! | `POST /v1/decide`, `POST /v1/outcomes`, `GET /v1/customers/{id}[/features]` | decide |
//! | `POST /v1/events`, `PUT`/`DELETE /v1/customers/{id}` | events |
//! | `POST /admin/reload` | admin |
//! | `GET /healthz`, `/readyz`, `/metrics`, `/openapi.json` | none |

pub mod api;
pub mod export;
pub mod handlers;
pub mod metrics;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;

pub use api::ApiError;
pub use state::{AppState, Record, Sources};

use crate::error::{Error, Result};

/// The OpenAPI document of the server.
#[derive(OpenApi)]
#[openapi(
    info(title = "Baton", description = "Next-best-action decisions in real time"),
    paths(
        handlers::decide,
        handlers::events,
        handlers::outcomes,
        handlers::get_customer,
        handlers::put_customer,
        handlers::get_features,
        handlers::delete_customer,
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::reload
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The scope a route needs (`None`: open).
fn scope_of(method: &Method, path: &str) -> Option<&'static str> {
    if path.starts_with("/admin/") {
        Some("admin")
    } else if path == "/v1/events"
        || (path.starts_with("/v1/customers/")
            && (method == Method::PUT || method == Method::DELETE))
    {
        Some("events")
    } else if path.starts_with("/v1/") {
        Some("decide")
    } else {
        None
    }
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let keys = &st.serve.api_keys;
    let Some(scope) = scope_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if keys.is_empty() {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>`",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    };
    match keys
        .iter()
        .find(|k| constant_time_eq(k.key.as_bytes(), token.as_bytes()))
    {
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unknown API key").into_response(),
        Some(k) if !k.scopes.iter().any(|s| s == scope) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this API key lacks the `{scope}` scope"),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // a shared handle to the path, not a copy
    let route = req.extensions().get::<MatchedPath>().cloned();
    let t = Instant::now();
    let res = next.run(req).await;
    st.metrics.request(
        route.as_ref().map_or("<unmatched>", |m| m.as_str()),
        res.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    res
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
        .into_response()
}

/// The router over `state`, with auth, metrics, body limit and timeout.
pub fn app(state: Arc<AppState>) -> Router {
    let timeout = Duration::from_millis(state.serve.request_timeout_ms);
    Router::new()
        .route("/v1/decide", post(handlers::decide))
        .route("/v1/events", post(handlers::events))
        .route("/v1/outcomes", post(handlers::outcomes))
        .route(
            "/v1/customers/{id}",
            get(handlers::get_customer)
                .put(handlers::put_customer)
                .delete(handlers::delete_customer),
        )
        .route("/v1/customers/{id}/features", get(handlers::get_features))
        .route("/admin/reload", post(handlers::reload))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(|m: Method, uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "`{m} {}` is not supported; see GET /openapi.json",
                    uri.path()
                ),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(state.serve.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Serves `app` on `addr` until `shutdown` resolves; requests in flight finish first.
pub async fn run(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("listener: {e}")))?;
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(addr.to_string(), e))?;
    // the decision log's last records are on disk before the process ends
    state.wal.append(Vec::new()).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// An axum app with one empty handler on `POST /v1/decide`: the ceiling a load test
/// compares the real server with (same framework, same machine, no work).
pub fn empty_app() -> Router {
    Router::new().route(
        "/v1/decide",
        post(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
    )
}
