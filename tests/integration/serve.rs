//! The HTTP server through its router (`tower::ServiceExt::oneshot`): every endpoint's
//! happy path and its bad inputs, auth, reload under load, erasure and restart from the
//! write-ahead log. The crash test starts the real binary and kills it with SIGKILL.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use baton::config::{ApiKey, Config};
use baton::serve::{AppState, Sources, app};
use baton::store::DataDir;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const DECIDE_KEY: &str = "decide-key-0123456789";
const EVENTS_KEY: &str = "events-key-0123456789";
const ADMIN_KEY: &str = "admin-key-01234567890";

struct Server {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
    app: Router,
}

fn config(keys: bool) -> Config {
    let mut c = Config::default();
    if keys {
        let k = |key: &str, scopes: &[&str]| ApiKey {
            key: key.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        c.serve.api_keys = vec![
            k(DECIDE_KEY, &["decide"]),
            k(EVENTS_KEY, &["events", "decide"]),
            k(ADMIN_KEY, &["admin"]),
        ];
    }
    c.serve.max_body_bytes = 64 * 1024;
    c.serve.max_batch_events = 100;
    c
}

fn sources(dir: &std::path::Path) -> Sources {
    Sources {
        config_path: dir.join("baton.toml"),
        data: DataDir::create(dir.join("data")).unwrap(),
        models: dir.join("models"),
    }
}

fn server(keys: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let c = config(keys);
    baton::models::toy::write_toy_registry(&dir.path().join("models"), &c, "champion").unwrap();
    let state = AppState::open(c, sources(dir.path())).unwrap();
    let app = app(state.clone());
    Server { dir, state, app }
}

impl Server {
    fn reopen(self) -> Server {
        let Server {
            dir,
            state,
            app: old,
        } = self;
        drop(old);
        drop(state);
        let state = AppState::open(config(false), sources(dir.path())).unwrap();
        let app = app(state.clone());
        Server { dir, state, app }
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// A client error must be problem+json with a detail naming `needle`.
    fn problem(&self, status: u16, needle: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        let v = self.json();
        assert_eq!(v["status"], status);
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "`{needle}` not in `{detail}`");
    }
}

async fn call(app: &Router, method: &str, uri: &str, body: &str, key: Option<&str>) -> Answer {
    call_typed(app, method, uri, body, key, "application/json").await
}

async fn call_typed(
    app: &Router,
    method: &str,
    uri: &str,
    body: &str,
    key: Option<&str>,
    ctype: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, ctype);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).to_string(),
    }
}

const NOON: &str = "2025-03-01T12:00:00Z";

fn decide_body(id: &str) -> String {
    json!({"customer_id": id, "explain": true, "ts": NOON, "limit": 5}).to_string()
}

#[tokio::test]
async fn decide_for_known_and_unknown_customers() {
    let s = server(false);
    // unknown customer: a decision from profile-free features, flagged
    let a = call(&s.app, "POST", "/v1/decide", &decide_body("nobody"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    assert_eq!(v["profile_known"], false);
    assert!(v["decision_id"].as_str().unwrap().starts_with("d-"));
    assert_eq!(v["model_versions"]["response"], "v1");
    // no consent at all: only inbound channels can be chosen
    let ch = v["chosen"]["channel"].as_str().unwrap();
    assert!(
        ["web", "app", "store", "chat", "none"].contains(&ch),
        "{ch}"
    );
    // a profile with consents, and purchases that make offers eligible
    let put = json!({"created_at": "2024-01-01", "segment": "vip", "consent_email": true, "consent_sms": "true"});
    let a = call(&s.app, "PUT", "/v1/customers/c1", &put.to_string(), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["consents"]["consent_email"], true);
    let events: Vec<Value> = (0..3)
        .map(|d| json!({"customer_id": "c1", "ts": format!("2025-02-{:02}T10:00:00Z", 10 + d), "event_type": "purchase", "channel": "web", "value": 80.0}))
        .collect();
    let a = call(
        &s.app,
        "POST",
        "/v1/events",
        &Value::from(events).to_string(),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["accepted"], 3);
    let a = call(&s.app, "POST", "/v1/decide", &decide_body("c1"), None).await;
    let v = a.json();
    assert_eq!(v["profile_known"], true);
    let actions = v["actions"].as_array().unwrap();
    assert!(!actions.is_empty() && actions.len() <= 5, "{v}");
    for r in actions {
        assert!(!["push", "call_center", "mail"].contains(&r["channel"].as_str().unwrap()));
        let want = r["p_response"].as_f64().unwrap()
            * r["value"].as_f64().unwrap()
            * r["weight"].as_f64().unwrap()
            - r["cost"].as_f64().unwrap();
        assert!((r["score"].as_f64().unwrap() - want).abs() < 1e-9);
    }
    assert!(
        v["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["reason"] == "no_consent")
    );
    // features reflect the events at once
    let a = call(&s.app, "GET", "/v1/customers/c1/features", "", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["features"]["purchase_count"], 3.0);
}

#[tokio::test]
async fn decide_rejects_bad_requests_with_problems() {
    let s = server(false);
    let post = |b: &'static str| call(&s.app, "POST", "/v1/decide", b, None);
    post("{\"customer_id\": ")
        .await
        .problem(400, "malformed JSON");
    post("").await.problem(400, "empty");
    post("{\"customer_id\": 5}")
        .await
        .problem(422, "customer_id");
    post("{\"customer_id\": \"a\", \"limit\": \"x\"}")
        .await
        .problem(422, "limit");
    post("{\"customer_id\": \"a\", \"limit\": 0}")
        .await
        .problem(422, "limit");
    post("{\"customer_id\": \"a\", \"limit\": 100000}")
        .await
        .problem(422, "limit");
    post("{\"customer_id\": \"a\", \"colour\": 1}")
        .await
        .problem(422, "colour");
    post("{\"limit\": 3}").await.problem(422, "customer_id");
    post("{\"customer_id\": \"\"}")
        .await
        .problem(422, "customer_id");
    post("{\"customer_id\": \"a\", \"ts\": \"yesterday\"}")
        .await
        .problem(422, "ts");
    post("[1, 2]").await.problem(422, "");
    let huge = format!("{{\"customer_id\": \"{}\"}}", "x".repeat(100_000));
    call(&s.app, "POST", "/v1/decide", &huge, None)
        .await
        .problem(413, "max_body_bytes");
    call(&s.app, "GET", "/v1/decide", "", None)
        .await
        .problem(405, "GET /v1/decide");
    call(&s.app, "GET", "/nope", "", None)
        .await
        .problem(404, "/nope");
}

#[tokio::test]
async fn events_accept_object_array_and_ndjson_atomically() {
    let s = server(false);
    let one = json!({"event_id": "e1", "customer_id": "a", "ts": NOON, "event_type": "visit", "channel": "web"});
    let a = call(&s.app, "POST", "/v1/events", &one.to_string(), None).await;
    assert_eq!(
        (a.status, a.json()["accepted"].clone()),
        (StatusCode::OK, json!(1))
    );
    // the same event_id again is a duplicate, not a second visit
    let a = call(&s.app, "POST", "/v1/events", &one.to_string(), None).await;
    assert_eq!(a.json(), json!({"accepted": 0, "duplicates": 1}));
    let nd = "{\"customer_id\":\"a\",\"ts\":\"2025-03-01\",\"event_type\":\"visit\"}\n{\"customer_id\":\"b\",\"ts\":\"2025-03-01\",\"event_type\":\"purchase\",\"value\":5}\n";
    let a = call_typed(
        &s.app,
        "POST",
        "/v1/events",
        nd,
        None,
        "application/x-ndjson",
    )
    .await;
    assert_eq!(a.json()["accepted"], 2, "{}", a.body);
    // one bad event in a batch: 422 naming it, and nothing of the batch stored
    let bad = json!([
        {"customer_id": "z", "ts": NOON, "event_type": "visit"},
        {"customer_id": "z", "ts": "not a time", "event_type": "visit"},
        {"customer_id": "z", "ts": NOON, "event_type": "survey_nps", "value": 11}
    ]);
    let a = call(&s.app, "POST", "/v1/events", &bad.to_string(), None).await;
    a.problem(422, "events[1].ts");
    assert_eq!(a.json()["errors"].as_array().unwrap().len(), 2);
    call(&s.app, "GET", "/v1/customers/z", "", None)
        .await
        .problem(404, "z");
    call(
        &s.app,
        "POST",
        "/v1/events",
        "{\"customer_id\": \"z\", \"ts\": ",
        None,
    )
    .await
    .problem(400, "malformed");
    call_typed(
        &s.app,
        "POST",
        "/v1/events",
        "{\"customer_id\":\"z\"}\nnope\n",
        None,
        "application/x-ndjson",
    )
    .await
    .problem(400, "line 2");
    call(
        &s.app,
        "POST",
        "/v1/events",
        "[{\"customer_id\": \"z\", \"ts\": 5, \"event_type\": 1}]",
        None,
    )
    .await
    .problem(422, "events[0]");
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"customer_id": "z", "ts": NOON, "event_type": "visit"}))
        .collect();
    call(
        &s.app,
        "POST",
        "/v1/events",
        &Value::from(many).to_string(),
        None,
    )
    .await
    .problem(413, "max_batch_events");
    call(&s.app, "POST", "/v1/events", "  ", None)
        .await
        .problem(400, "empty");
}

#[tokio::test]
async fn outcomes_link_to_decisions() {
    let s = server(false);
    let d = call(&s.app, "POST", "/v1/decide", &decide_body("o1"), None)
        .await
        .json();
    let id = d["decision_id"].as_str().unwrap();
    let action = d["chosen"]["action_id"].as_str().unwrap();
    let body = json!({"decision_id": id, "action_id": action, "kind": "clicked", "reward": 2.5});
    let a = call(&s.app, "POST", "/v1/outcomes", &body.to_string(), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let unknown = json!({"decision_id": "d-nope", "action_id": action, "kind": "clicked"});
    call(&s.app, "POST", "/v1/outcomes", &unknown.to_string(), None)
        .await
        .problem(404, "d-nope");
    let wrong = json!({"decision_id": id, "action_id": "other", "kind": "clicked"});
    call(&s.app, "POST", "/v1/outcomes", &wrong.to_string(), None)
        .await
        .problem(422, "action_id");
    let kind = json!({"decision_id": id, "action_id": action, "kind": "Clicked!"});
    call(&s.app, "POST", "/v1/outcomes", &kind.to_string(), None)
        .await
        .problem(422, "kind");
    let reward =
        json!({"decision_id": id, "action_id": action, "kind": "clicked", "reward": "lots"});
    call(&s.app, "POST", "/v1/outcomes", &reward.to_string(), None)
        .await
        .problem(422, "reward");
}

#[tokio::test]
async fn customers_read_write_and_erase() {
    let s = server(false);
    call(&s.app, "GET", "/v1/customers/ghost", "", None)
        .await
        .problem(404, "ghost");
    call(&s.app, "GET", "/v1/customers/ghost/features", "", None)
        .await
        .problem(404, "ghost");
    call(&s.app, "DELETE", "/v1/customers/ghost", "", None)
        .await
        .problem(404, "ghost");
    call(
        &s.app,
        "PUT",
        "/v1/customers/k",
        "{\"consent_email\": \"maybe\"}",
        None,
    )
    .await
    .problem(422, "consent_email");
    call(
        &s.app,
        "PUT",
        "/v1/customers/k",
        "{\"customer_id\": \"other\"}",
        None,
    )
    .await
    .problem(422, "differs");
    call(&s.app, "PUT", "/v1/customers/k", "[]", None)
        .await
        .problem(422, "");
    let a = call(
        &s.app,
        "PUT",
        "/v1/customers/k",
        "{\"region\": \"north\", \"consent_sms\": true}",
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = call(&s.app, "GET", "/v1/customers/k", "", None)
        .await
        .json();
    assert_eq!(
        (v["region"].clone(), v["consents"]["consent_sms"].clone()),
        (json!("north"), json!(true))
    );
    let ev = json!({"customer_id": "k", "ts": NOON, "event_type": "visit"});
    call(&s.app, "POST", "/v1/events", &ev.to_string(), None).await;
    call(&s.app, "POST", "/v1/decide", &decide_body("k"), None).await;
    let a = call(&s.app, "DELETE", "/v1/customers/k", "", None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    call(&s.app, "GET", "/v1/customers/k", "", None)
        .await
        .problem(404, "k");
    // gone from the log too: a restart does not bring the customer back
    let wal = std::fs::read_to_string(s.dir.path().join("data/wal/server.wal")).unwrap();
    assert!(!wal.contains("\"k\""), "{wal}");
    let s = s.reopen();
    call(&s.app, "GET", "/v1/customers/k", "", None)
        .await
        .problem(404, "k");
}

#[tokio::test]
async fn erasure_reaches_stored_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = assert_cmd::Command::cargo_bin("baton")
        .unwrap()
        .args([
            "--quiet",
            "simulate",
            "--customers",
            "50",
            "--days",
            "20",
            "--out",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = config(false);
    baton::models::toy::write_toy_registry(&dir.path().join("models"), &c, "champion").unwrap();
    let state = AppState::open(c, sources(dir.path())).unwrap();
    assert!(state.customer_count() >= 50);
    let app = app(state);
    let a = call(&app, "DELETE", "/v1/customers/c0000003", "", None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let dd = DataDir::open(&data);
    let mut files = DataDir::parts(&dd.events_dir()).unwrap();
    files.extend(DataDir::parts(&dd.decisions_dir()).unwrap());
    files.push(dd.customers_path());
    for f in files {
        let (_, batches) = baton::store::read_parquet(&f).unwrap();
        for b in batches {
            let col = b.column_by_name("customer_id").unwrap();
            let ids = arrow::array::AsArray::as_string::<i32>(col);
            assert!(ids.iter().all(|x| x != Some("c0000003")), "{}", f.display());
        }
    }
}

#[tokio::test]
async fn api_keys_and_scopes() {
    let s = server(true);
    let body = decide_body("a");
    let a = call(&s.app, "POST", "/v1/decide", &body, None).await;
    a.problem(401, "missing API key");
    call(
        &s.app,
        "POST",
        "/v1/decide",
        &body,
        Some("wrong-key-0000000000"),
    )
    .await
    .problem(401, "unknown");
    call(&s.app, "POST", "/v1/decide", &body, Some(ADMIN_KEY))
        .await
        .problem(403, "decide");
    assert_eq!(
        call(&s.app, "POST", "/v1/decide", &body, Some(DECIDE_KEY))
            .await
            .status,
        StatusCode::OK
    );
    let ev = json!({"customer_id": "a", "ts": NOON, "event_type": "visit"}).to_string();
    call(&s.app, "POST", "/v1/events", &ev, Some(DECIDE_KEY))
        .await
        .problem(403, "events");
    assert_eq!(
        call(&s.app, "POST", "/v1/events", &ev, Some(EVENTS_KEY))
            .await
            .status,
        StatusCode::OK
    );
    call(&s.app, "DELETE", "/v1/customers/a", "", Some(DECIDE_KEY))
        .await
        .problem(403, "events");
    call(&s.app, "POST", "/admin/reload", "", Some(EVENTS_KEY))
        .await
        .problem(403, "admin");
    assert_eq!(
        call(&s.app, "POST", "/admin/reload", "", Some(ADMIN_KEY))
            .await
            .status,
        StatusCode::OK
    );
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            call(&s.app, "GET", open, "", None).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
}

#[tokio::test]
async fn metrics_and_openapi() {
    let s = server(false);
    call(&s.app, "POST", "/v1/decide", &decide_body("m"), None).await;
    call(&s.app, "POST", "/v1/decide", "{", None).await;
    let m = call(&s.app, "GET", "/metrics", "", None).await.body;
    assert!(
        m.contains("baton_http_requests_total{route=\"/v1/decide\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("baton_http_requests_total{route=\"/v1/decide\",status=\"400\"} 1"),
        "{m}"
    );
    assert!(m.contains(
        "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"+Inf\"} 2"
    ));
    assert!(m.contains("baton_decisions_total{action="), "{m}");
    let doc = call(&s.app, "GET", "/openapi.json", "", None).await.json();
    for p in [
        "/v1/decide",
        "/v1/events",
        "/v1/outcomes",
        "/v1/customers/{id}",
        "/v1/customers/{id}/features",
        "/admin/reload",
        "/metrics",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["DecideResponse"].is_object());
}

#[tokio::test]
async fn reload_swaps_models_and_refuses_a_broken_one() {
    let s = server(false);
    let models = s.dir.path().join("models");
    let registry = baton::models::Registry::open(&models);
    let task = baton::features::Task::Response;
    // a new version: a copy of v1 as v2, promoted
    let v2 = registry.version_dir(task, "v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::copy(
        registry.version_dir(task, "v1").join("model.json"),
        v2.join("model.json"),
    )
    .unwrap();
    registry.promote(task, "v2", "champion").unwrap();
    let a = call(&s.app, "POST", "/admin/reload", "", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["current"]["response"], "v2");
    let d = call(&s.app, "POST", "/v1/decide", &decide_body("r"), None)
        .await
        .json();
    assert_eq!(d["model_versions"]["response"], "v2");
    // a broken v3 is refused and v2 stays
    let v3 = registry.version_dir(task, "v3");
    std::fs::create_dir_all(&v3).unwrap();
    std::fs::write(
        v3.join("model.json"),
        "{\"task\": \"response\", \"schema\": 5}",
    )
    .unwrap();
    registry.promote(task, "v3", "champion").unwrap();
    call(&s.app, "POST", "/admin/reload", "", None)
        .await
        .problem(409, "previous models");
    let d = call(&s.app, "POST", "/v1/decide", &decide_body("r"), None)
        .await
        .json();
    assert_eq!(d["model_versions"]["response"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_under_concurrent_requests_loses_none() {
    let s = server(false);
    let app = s.app.clone();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..100 {
                let body = json!({"customer_id": format!("w{w}-{i}"), "ts": NOON});
                let a = call(&app, "POST", "/v1/decide", &body.to_string(), None).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.body);
                let v = a.json();
                assert!(v["model_versions"]["response"] == "v1");
                ok += 1;
            }
            ok
        }));
    }
    let mut reloads = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        let a = call(&app, "POST", "/admin/reload", "", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        reloads += 1;
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 800);
    assert!(reloads >= 1);
}

#[tokio::test]
async fn restart_replays_the_log() {
    let s = server(false);
    let ev = json!({"customer_id": "p", "ts": NOON, "event_type": "purchase", "value": 12.0});
    call(&s.app, "POST", "/v1/events", &ev.to_string(), None).await;
    call(
        &s.app,
        "PUT",
        "/v1/customers/p",
        "{\"consent_email\": true}",
        None,
    )
    .await;
    let d = call(&s.app, "POST", "/v1/decide", &decide_body("p"), None)
        .await
        .json();
    let chosen = d["chosen"]["action_id"].as_str().unwrap().to_string();
    let s = s.reopen();
    let v = call(&s.app, "GET", "/v1/customers/p", "", None)
        .await
        .json();
    assert_eq!(v["consents"]["consent_email"], true);
    let expected = if chosen == "do_nothing" { 0 } else { 1 };
    assert_eq!(
        v["deliveries"], expected,
        "the decision's contact was replayed"
    );
    let f = call(&s.app, "GET", "/v1/customers/p/features", "", None)
        .await
        .json();
    assert_eq!(f["features"]["purchase_count"], 1.0);
    // outcomes of a decision made before the restart are still accepted
    let body = json!({"decision_id": d["decision_id"], "action_id": chosen, "kind": "opened"});
    let a = call(&s.app, "POST", "/v1/outcomes", &body.to_string(), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
}

/// The real binary, killed with SIGKILL while events stream in: every acknowledged event
/// is there after the restart.
#[test]
fn acknowledged_events_survive_sigkill() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let c = Config::default();
    baton::models::toy::write_toy_registry(&dir.path().join("models"), &c, "champion").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .current_dir(dir.path())
            .args([
                "--quiet", "--data", "data", "--models", "models", "serve", "--addr",
            ])
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wait_ready = || {
        rt.block_on(async {
            for _ in 0..600 {
                if let Ok((200, _)) = baton::cli::serve::http_call(addr, "GET", "/readyz", "").await
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("the server did not become ready");
        })
    };
    let mut child = start();
    wait_ready();
    // stream events from 4 clients; kill at a pseudo-random moment
    let kill_after = std::time::Duration::from_millis(
        200 + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 600) as u64,
    );
    let acked: Vec<String> = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..4 {
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let id = format!("k{w}-{i}");
                    let body =
                        json!({"customer_id": id, "ts": NOON, "event_type": "visit"}).to_string();
                    match baton::cli::serve::http_call(addr, "POST", "/v1/events", &body).await {
                        Ok((200, _)) => acked.push(id),
                        _ => break,
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(kill_after).await;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert!(
        !acked.is_empty(),
        "no event was acknowledged before the kill"
    );
    let mut child = start();
    wait_ready();
    let missing: Vec<String> = rt.block_on(async {
        let mut missing = Vec::new();
        for id in &acked {
            let (status, _) =
                baton::cli::serve::http_call(addr, "GET", &format!("/v1/customers/{id}"), "")
                    .await
                    .unwrap();
            if status != 200 {
                missing.push(id.clone());
            }
        }
        missing
    });
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test]
async fn decision_log_exports_to_the_contract() {
    let s = server(false);
    let mut ids = Vec::new();
    for i in 0..5 {
        // a purchase makes cross_sell eligible on the inbound channels
        let ev = json!({"customer_id": format!("x{i}"), "ts": "2025-02-20", "event_type": "purchase", "value": 30.0});
        call(&s.app, "POST", "/v1/events", &ev.to_string(), None).await;
        let d = call(
            &s.app,
            "POST",
            "/v1/decide",
            &decide_body(&format!("x{i}")),
            None,
        )
        .await
        .json();
        ids.push((
            d["decision_id"].as_str().unwrap().to_string(),
            d["chosen"].clone(),
        ));
    }
    let (id, chosen) = &ids[0];
    let body = json!({"decision_id": id, "action_id": chosen["action_id"], "kind": "converted", "reward": 9.5});
    assert_eq!(
        call(&s.app, "POST", "/v1/outcomes", &body.to_string(), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let out = s.dir.path().join("export");
    let n =
        baton::serve::export::export_log(&s.dir.path().join("data/wal/server.wal"), &out).unwrap();
    assert_eq!((n.decisions, n.outcomes), (5, 1));
    let (schema, batches) = baton::store::read_parquet(&out.join("decisions.parquet")).unwrap();
    assert_eq!(schema.fields(), baton::schema::decisions_schema().fields());
    let b = &batches[0];
    assert_eq!(b.num_rows(), 5);
    let p = arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(
        b.column_by_name("propensity").unwrap(),
    );
    for (k, (_, chosen)) in ids.iter().enumerate() {
        assert_eq!(p.value(k), chosen["propensity"].as_f64().unwrap());
    }
    let cands = arrow::array::AsArray::as_list::<i32>(b.column_by_name("candidates").unwrap());
    assert!(!cands.value(0).is_empty());
    let (_, o) = baton::store::read_parquet(&out.join("outcomes.parquet")).unwrap();
    assert_eq!(o[0].num_rows(), 1);
    let e = baton::serve::export::export_log(&s.dir.path().join("nope.wal"), &out).unwrap_err();
    assert!(e.to_string().contains("no write-ahead log"), "{e}");
}

#[tokio::test]
async fn features_as_of_a_time() {
    let s = server(false);
    let ev = json!({"customer_id": "f", "ts": "2025-02-10T10:00:00Z", "event_type": "purchase", "value": 20.0});
    call(&s.app, "POST", "/v1/events", &ev.to_string(), None).await;
    let at = async |q: &str| {
        let uri = format!("/v1/customers/f/features{q}");
        call(&s.app, "GET", &uri, "", None).await
    };
    let v = at("?as_of=2025-02-20").await.json();
    assert_eq!(v["features"]["purchases_30d"], 1.0);
    assert_eq!(v["features"]["days_since_last_purchase"], 10.0);
    // the customer-value inputs' RFM: purchase days before the read's day; the toy
    // models have no customer-value fit, so the inputs themselves are null
    let ev = json!({"customer_id": "f", "ts": "2025-02-15T09:00:00Z", "event_type": "purchase", "value": 30.0});
    call(&s.app, "POST", "/v1/events", &ev.to_string(), None).await;
    let v = at("?as_of=2025-02-20").await.json();
    assert_eq!(
        v["rfm"],
        json!({"frequency": 1.0, "recency": 5.0, "t": 9.0, "monetary": 30.0})
    );
    assert!(v["features"]["clv_p_alive"].is_null() && v["features"]["clv_value_365d"].is_null());
    let v = at("?as_of=2025-02-15T12%3A00%3A00Z").await.json();
    assert_eq!(v["rfm"]["frequency"], 0.0);
    assert_eq!(v["rfm"]["t"], 4.0);
    assert!(at("?as_of=2025-02-10").await.json()["rfm"].is_null());
    let v = at("?as_of=2025-06-01T00%3A00%3A00Z").await.json();
    assert_eq!(v["features"]["purchases_30d"], 0.0);
    at("?as_of=soon").await.problem(422, "as_of");
    at("?colour=red").await.problem(422, "colour");
}

#[test]
fn serve_without_models_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("baton")
        .unwrap()
        .current_dir(dir.path())
        .args(["--quiet", "serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("response model") && err.contains("baton train"),
        "{err}"
    );
}

/// Decisions older than `serve.outcome_days` than the newest one are forgotten (memory stays
/// bounded) and their outcomes refused with the setting named; newer ones still accept
/// outcomes, also after a restart replays the log.
#[tokio::test]
async fn old_decisions_are_forgotten_after_the_outcome_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(false);
    c.serve.outcome_days = 2;
    baton::models::toy::write_toy_registry(&dir.path().join("models"), &c, "champion").unwrap();
    let open = || {
        let state = AppState::open(c.clone(), sources(dir.path())).unwrap();
        app(state)
    };
    let app = open();
    let decide_at = async |app: &Router, customer: &str, ts: &str| {
        let body = json!({"customer_id": customer, "ts": ts, "limit": 3});
        let d = call(app, "POST", "/v1/decide", &body.to_string(), None)
            .await
            .json();
        (
            d["decision_id"].as_str().unwrap().to_string(),
            d["chosen"]["action_id"].as_str().unwrap().to_string(),
        )
    };
    let outcome = async |app: &Router, (id, action): &(String, String)| {
        let body = json!({"decision_id": id, "action_id": action, "kind": "opened"});
        call(app, "POST", "/v1/outcomes", &body.to_string(), None).await
    };
    let old = decide_at(&app, "a", "2025-03-01T10:00:00Z").await;
    let mid = decide_at(&app, "b", "2025-03-02T10:00:00Z").await;
    assert_eq!(outcome(&app, &old).await.status, StatusCode::NO_CONTENT);
    // three days on: the first decision is past the two-day window, the second is not
    let new = decide_at(&app, "c", "2025-03-04T09:00:00Z").await;
    outcome(&app, &old).await.problem(404, "serve.outcome_days");
    assert_eq!(outcome(&app, &mid).await.status, StatusCode::NO_CONTENT);
    assert_eq!(outcome(&app, &new).await.status, StatusCode::NO_CONTENT);
    drop(app);
    let app = open();
    outcome(&app, &old).await.problem(404, "serve.outcome_days");
    assert_eq!(outcome(&app, &new).await.status, StatusCode::NO_CONTENT);
}
