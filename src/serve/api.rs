//! The HTTP surface's types: request and response bodies, the body extractor and the one
//! place errors become HTTP responses (`application/problem+json`; no internal detail in
//! a 5xx body).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decide::{Chosen, Dropped, Ranked};
use crate::error::Error;

/// An error answer: RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    /// What is wrong and where, in words a person can act on.
    pub detail: String,
    /// Per-row errors (events, customers), when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// An error to answer with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn with_errors(mut self, errors: Vec<String>) -> Self {
        self.errors = errors;
        self
    }
}

impl From<Error> for ApiError {
    /// Library errors reaching a handler unhandled are the server's fault: logged in full,
    /// answered as a bare 500 (a client mistake is mapped to 4xx where it is detected).
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid(m) => ApiError::unprocessable(m.clone()),
            Error::Io { .. }
            | Error::Config { .. }
            | Error::Contract { .. }
            | Error::Expression { .. }
            | Error::Data(_)
            | Error::Arrow(_)
            | Error::Parquet(_)
            | Error::DataFusion(_)
            | Error::Json(_) => {
                tracing::error!("internal error: {e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

/// The raw request body, with a too-large or unreadable body answered as a problem.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                let status = e.status();
                let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is larger than the server's limit (serve.max_body_bytes)"
                        .to_string()
                } else {
                    e.body_text()
                };
                ApiError::new(status, detail)
            })
    }
}

/// Parses a JSON body: malformed JSON is a 400 naming line and column, a well-formed body
/// of the wrong shape a 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::unprocessable(if path == "." {
                format!("{inner}")
            } else {
                format!("at `{path}`: {inner}")
            }),
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })
}

/// Parses an optional RFC 3339 time (or date) of field `field`; `None` gives now.
pub fn time_or_now(ts: Option<&str>, field: &str) -> Result<i64, ApiError> {
    match ts {
        Some(t) => crate::features::parse_time(t)
            .map_err(|e| ApiError::unprocessable(format!("at `{field}`: {e}"))),
        None => Ok(chrono::Utc::now().timestamp_micros()),
    }
}

/// Checks a customer id: 1–256 printable characters.
pub fn check_customer_id(id: &str, field: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "at `{field}`: a customer id is 1–256 characters without control characters"
        )));
    }
    Ok(())
}

/// `POST /v1/decide`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub customer_id: String,
    /// Request context: expressions read key `k` as `ctx_k`; `channel` is where the
    /// customer is now (`web`, `app`, `store`, `chat`, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// How many ranked actions to return (default `decide.default_limit`).
    pub limit: Option<usize>,
    /// Include score terms' reasons for dropped candidates.
    #[serde(default)]
    pub explain: bool,
    /// Decision time (RFC 3339); default now. For replays and tests.
    pub ts: Option<String>,
}

/// The answer of `POST /v1/decide`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecideResponse {
    pub decision_id: String,
    pub customer_id: String,
    /// RFC 3339.
    pub ts: String,
    /// What to do now (`do_nothing` when no action beats doing nothing).
    pub chosen: Chosen,
    /// Ranked actions, best first (the chosen first).
    pub actions: Vec<Ranked>,
    pub do_nothing_score: f64,
    pub churn: Option<f64>,
    pub channel_preference: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
    /// False: the customer has no profile; the decision used profile-free features.
    pub profile_known: bool,
    pub policy_version: String,
    pub model_versions: BTreeMap<String, String>,
}

/// `POST /v1/outcomes`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    pub decision_id: String,
    pub action_id: String,
    /// opened, clicked, converted, dismissed, … (lower-case letters and `_`).
    pub kind: String,
    /// Reward (e.g. revenue); default 0.
    #[serde(default)]
    pub reward: f64,
    /// RFC 3339; default now.
    pub ts: Option<String>,
}

/// The answer of `POST /v1/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventsResponse {
    /// Events now durable and applied.
    pub accepted: usize,
    /// Events skipped because their `event_id` was seen before.
    pub duplicates: usize,
}

/// A customer's profile and consents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerResponse {
    pub customer_id: String,
    /// Whether the customer has a profile (else only events are known).
    pub profile_known: bool,
    pub created_at: Option<String>,
    pub age_band: Option<String>,
    pub region: Option<String>,
    pub segment: Option<String>,
    /// Consent per consent column; missing means no consent.
    pub consents: BTreeMap<String, Option<bool>>,
    /// Deliveries in the contact history.
    pub deliveries: usize,
}

/// A customer's online features.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeaturesResponse {
    pub customer_id: String,
    /// RFC 3339.
    pub as_of: String,
    pub profile_known: bool,
    /// Feature name → value (null when missing), then the customer-value inputs
    /// `clv_p_alive` and `clv_value_365d` as the response model computes them (null
    /// without a purchase before today, or for a model without a customer-value fit).
    #[schema(value_type = Object)]
    pub features: serde_json::Map<String, serde_json::Value>,
    /// The RFM those inputs are computed from (days; purchases of the days before
    /// today's); null without a purchase.
    #[schema(value_type = Option<Object>)]
    pub rfm: Option<crate::clv::Rfm>,
}

/// The answer of `POST /admin/reload`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadResponse {
    pub previous: BTreeMap<String, String>,
    pub current: BTreeMap<String, String>,
    pub policy_version: String,
}
