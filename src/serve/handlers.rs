//! Request handlers: parse and check the request, call the state and the engine, answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::api::*;
use super::state::{AppState, OutcomeRecord, Record, validate_rows};
use crate::clv::CLV_COLUMNS;
use crate::decide::{CustomerView, DecideInput, Decision, DecisionRecord, engine::rfc3339};
use crate::schema::{CONSENT_COLUMNS, TableKind};

type Shared = State<Arc<AppState>>;

fn new_decision_id() -> String {
    let x: u128 = rand::rng().random();
    format!("d-{x:032x}")
}

fn to_response(d: Decision) -> DecideResponse {
    DecideResponse {
        decision_id: d.decision_id,
        customer_id: d.customer_id,
        ts: rfc3339(d.ts),
        chosen: d.chosen,
        actions: d.actions,
        do_nothing_score: d.do_nothing_score,
        churn: d.churn,
        channel_preference: d.channel_preference,
        dropped: d.dropped,
        profile_known: d.profile_known,
        policy_version: d.policy_version,
        model_versions: d.model_versions,
    }
}

/// Ranks actions for a customer now.
#[utoipa::path(post, path = "/v1/decide", request_body = DecideRequest,
    responses((status = 200, body = DecideResponse), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn decide(State(st): Shared, Body(body): Body) -> Result<Json<DecideResponse>, ApiError> {
    let req: DecideRequest = parse_json(&body)?;
    check_customer_id(&req.customer_id, "customer_id")?;
    let engine = st.engine();
    let max = engine.config().max_limit;
    let limit = req.limit.unwrap_or(engine.config().default_limit);
    if limit == 0 || limit > max {
        return Err(ApiError::unprocessable(format!(
            "at `limit`: must be within 1..={max}, got {limit}"
        )));
    }
    let now = time_or_now(req.ts.as_deref(), "ts")?;
    let input = DecideInput {
        now,
        context: &req.context,
        limit,
        explain: req.explain,
    };
    let set = engine.feature_set().clone();
    let keep = engine.keep_days();
    let id = new_decision_id();
    // decide and record the contact under the customer's lock, so concurrent requests
    // cannot both pass a cap
    let mut decision = st.with_customer(&req.customer_id, &set, |c| {
        let features = c.online.vector(now);
        let (consents, known) = match c.online.profile() {
            Some(p) => (p.consents, true),
            None => ([None; 5], false),
        };
        let view = CustomerView {
            customer_id: &req.customer_id,
            features: &features,
            consents,
            rfm: c.online.rfm(now),
            known,
            contacts: &c.contacts,
        };
        let d = engine.decide(&view, &input, id, &mut rand::rng())?;
        if d.chosen.action_id != crate::decide::DO_NOTHING {
            c.contacts.record_delivery(
                now,
                &d.chosen.action_id,
                &d.chosen.channel,
                Some(&d.decision_id),
                keep,
            );
        }
        Ok::<_, crate::error::Error>(d)
    })?;
    let record = DecisionRecord::of(&mut decision, &req.context);
    st.metrics.decision(
        &decision.chosen.action_id,
        &decision.chosen.channel,
        decision.chosen.explore,
    );
    // the decision log is written with the next group commit, without waiting for it
    st.remember_decision(&record);
    st.wal.append_nowait(vec![Record::decision_line(&record)])?;
    Ok(Json(to_response(decision)))
}

fn split_events(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("ndjson") || v.contains("jsonlines"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if !ndjson && first == Some(&b'[') {
        return parse_json(body);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send an event object, an array of them or NDJSON",
        ));
    }
    if !ndjson && lines.len() > 1 {
        // one object spread over lines, or NDJSON without the content type
        if let Ok(one) = serde_json::from_slice(body) {
            return Ok(vec![one]);
        }
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            parse_json(l.as_bytes())
                .map_err(|e| ApiError::new(e.status, format!("line {}: {}", i + 1, e.detail)))
        })
        .collect()
}

/// Ingests events durably; features update at once.
#[utoipa::path(post, path = "/v1/events",
    request_body(content = Object, description = "one event object, an array of them, or NDJSON (application/x-ndjson)"),
    responses((status = 200, body = EventsResponse), (status = 400, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn events(
    State(st): Shared,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<EventsResponse>, ApiError> {
    let rows = split_events(&headers, &body)?;
    let max = st.serve.max_batch_events;
    if rows.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} events in one request; at most {max} (serve.max_batch_events)",
                rows.len()
            ),
        ));
    }
    if let Err(errors) = validate_rows(TableKind::Events, "request", &rows) {
        let lines: Vec<String> = errors
            .iter()
            .take(50)
            .map(|e| format!("events[{}].{}: {}", e.row, e.column, e.reason))
            .collect();
        return Err(ApiError::unprocessable(format!(
            "{} of {} events are invalid; none were stored. First: {}",
            errors.len(),
            rows.len(),
            lines[0]
        ))
        .with_errors(lines));
    }
    let (rows, duplicates) = st.dedupe_events(rows);
    let accepted = rows.len();
    if accepted > 0 {
        st.commit(vec![Record::Events { rows }]).await?;
    }
    st.metrics.events(accepted);
    Ok(Json(EventsResponse {
        accepted,
        duplicates,
    }))
}

/// Reports what happened after a decision.
#[utoipa::path(post, path = "/v1/outcomes", request_body = OutcomeRequest,
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn outcomes(State(st): Shared, Body(body): Body) -> Result<StatusCode, ApiError> {
    let req: OutcomeRequest = parse_json(&body)?;
    let Some(meta) = st.decision(&req.decision_id) else {
        return Err(ApiError::not_found(format!(
            "at `decision_id`: no decision `{}` is known (decisions accept outcomes for {} days: serve.outcome_days)",
            req.decision_id, st.serve.outcome_days
        )));
    };
    if meta.action_id != req.action_id {
        return Err(ApiError::unprocessable(format!(
            "at `action_id`: decision `{}` chose `{}`, not `{}`",
            req.decision_id, meta.action_id, req.action_id
        )));
    }
    if req.kind.is_empty()
        || req.kind.len() > 32
        || !req
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(ApiError::unprocessable(
            "at `kind`: lower-case letters and `_`, such as opened, clicked or converted",
        ));
    }
    if !req.reward.is_finite() {
        return Err(ApiError::unprocessable(
            "at `reward`: must be a finite number",
        ));
    }
    let ts = time_or_now(req.ts.as_deref(), "ts")?;
    st.commit(vec![Record::Outcome(OutcomeRecord {
        decision_id: req.decision_id,
        action_id: req.action_id,
        ts,
        kind: req.kind,
        reward: req.reward,
    })])
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn customer_response(st: &AppState, id: &str) -> Option<CustomerResponse> {
    st.read_customer(id, |c| {
        let p = c.online.profile();
        CustomerResponse {
            customer_id: id.to_string(),
            profile_known: p.is_some(),
            created_at: p.and_then(|p| p.created_at).map(rfc3339),
            age_band: p.and_then(|p| p.attributes[0].clone()),
            region: p.and_then(|p| p.attributes[1].clone()),
            segment: p.and_then(|p| p.attributes[2].clone()),
            consents: CONSENT_COLUMNS
                .iter()
                .enumerate()
                .map(|(k, (col, _))| (col.to_string(), p.and_then(|p| p.consents[k])))
                .collect(),
            deliveries: c.contacts.deliveries().count(),
        }
    })
}

fn unknown_customer(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no customer `{id}` is known (no profile and no events)"
    ))
}

/// A customer's profile and consents.
#[utoipa::path(get, path = "/v1/customers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = CustomerResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_customer(
    State(st): Shared,
    Path(id): Path<String>,
) -> Result<Json<CustomerResponse>, ApiError> {
    customer_response(&st, &id)
        .map(Json)
        .ok_or_else(|| unknown_customer(&id))
}

/// Creates or replaces a customer's profile and consents (customers contract columns).
#[utoipa::path(put, path = "/v1/customers/{id}", params(("id" = String, Path)),
    request_body(content = Object, description = "created_at, age_band, region, segment, consent_email, consent_sms, consent_push, consent_call, consent_mail, other attributes"),
    responses((status = 200, body = CustomerResponse), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn put_customer(
    State(st): Shared,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<CustomerResponse>, ApiError> {
    check_customer_id(&id, "path")?;
    let mut row: serde_json::Map<String, serde_json::Value> = parse_json(&body)?;
    match row.get("customer_id") {
        Some(serde_json::Value::String(s)) if s != &id => {
            return Err(ApiError::unprocessable(format!(
                "at `customer_id`: `{s}` differs from the id in the path `{id}`"
            )));
        }
        _ => {}
    }
    row.insert("customer_id".into(), id.clone().into());
    if !row.contains_key("created_at") {
        // keep the known creation time; a new customer is created now
        let known = st
            .read_customer(&id, |c| c.online.profile().and_then(|p| p.created_at))
            .flatten();
        let at = known.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        row.insert("created_at".into(), rfc3339(at).into());
    }
    row.entry("updated_at")
        .or_insert_with(|| rfc3339(chrono::Utc::now().timestamp_micros()).into());
    if let Err(errors) = validate_rows(TableKind::Customers, "request", std::slice::from_ref(&row))
    {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.column, e.reason))
            .collect();
        return Err(ApiError::unprocessable(format!(
            "at `{}`: {}",
            errors[0].column, errors[0].reason
        ))
        .with_errors(lines));
    }
    st.commit(vec![Record::Customer { row }]).await?;
    customer_response(&st, &id)
        .map(Json)
        .ok_or_else(|| unknown_customer(&id))
}

/// The query of `GET /v1/customers/{id}/features`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesQuery {
    /// RFC 3339 time or `YYYY-MM-DD`; default now.
    pub as_of: Option<String>,
}

/// A customer's online features now, or as of `?as_of=` (RFC 3339 or a date).
#[utoipa::path(get, path = "/v1/customers/{id}/features",
    params(("id" = String, Path), ("as_of" = Option<String>, Query, description = "RFC 3339 time or YYYY-MM-DD; default now")),
    responses((status = 200, body = FeaturesResponse), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn get_features(
    State(st): Shared,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<FeaturesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FeaturesResponse>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::unprocessable(format!("query: {}", e.body_text())))?;
    let now = time_or_now(q.as_of.as_deref(), "as_of")?;
    let (row, known, set, rfm) = st
        .read_customer(&id, |c| {
            (
                c.online.vector(now),
                c.online.profile().is_some(),
                c.online.feature_set().clone(),
                c.online.rfm(now),
            )
        })
        .ok_or_else(|| unknown_customer(&id))?;
    let clv = match &st.engine().models().response.scorer.schema().clv {
        Some(fit) => fit.values(rfm.as_ref()),
        None => [None, None],
    };
    let names = set.columns().iter().map(String::as_str).chain(CLV_COLUMNS);
    let features = names
        .zip(row.iter().chain(&clv))
        .map(|(n, v)| {
            (
                n.to_string(),
                v.and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, Into::into),
            )
        })
        .collect();
    Ok(Json(FeaturesResponse {
        customer_id: id,
        as_of: rfc3339(now),
        profile_known: known,
        features,
        rfm,
    }))
}

/// Erases a customer: online state, logs and stored data.
#[utoipa::path(delete, path = "/v1/customers/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_customer(
    State(st): Shared,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if st.erase(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown_customer(&id))
    }
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: state loaded and models in place.
#[utoipa::path(get, path = "/readyz", responses((status = 200), (status = 503, body = Problem)))]
pub async fn readyz(State(st): Shared) -> Response {
    if st.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "loading").into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(st): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(st.customer_count()),
    )
        .into_response()
}

/// Loads new model versions and catalog atomically; a broken one is refused.
#[utoipa::path(post, path = "/admin/reload",
    responses((status = 200, body = ReloadResponse), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reload(State(st): Shared) -> Result<Json<ReloadResponse>, ApiError> {
    match st.reload().await {
        Ok((old, new)) => {
            tracing::info!(
                "reloaded: models {:?}, policy {}",
                new.model_versions(),
                new.policy_version()
            );
            Ok(Json(ReloadResponse {
                previous: old.model_versions(),
                current: new.model_versions(),
                policy_version: new.policy_version().to_string(),
            }))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("reload refused, the previous models and catalog stay in use: {e}"),
        )),
    }
}

/// Unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route `{}`; see GET /openapi.json", uri.path()))
}
