//! Batch scoring end to end: for the same as-of, batch decisions (DataFusion features)
//! agree with the server's `/v1/decide` answers for every customer with exploration off;
//! budgets are honoured; `baton score` writes its Parquet and refuses bad budgets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, UInt32Type};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use baton::batch::{self, ScoreOptions};
use baton::config::Config;
use baton::decide::{Exploration, load_engine};
use baton::features::{FeatureSet, parse_time};
use baton::serve::{AppState, Sources, app};
use baton::sim::{SimParams, simulate};
use baton::store::{DataDir, read_parquet};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const AS_OF: &str = "2025-03-02T10:00:00Z";

struct World {
    dir: tempfile::TempDir,
    config: Config,
}

fn world(customers: u64) -> World {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = Config::default();
    config.decide.exploration = Exploration::None;
    let data = DataDir::create(dir.path().join("data")).unwrap();
    let params = SimParams {
        customers,
        days: 60,
        seed: 5,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.15,
    };
    simulate(&config, &params, &data, &|_| {}).unwrap();
    baton::models::toy::write_toy_registry(&dir.path().join("models"), &config, "champion")
        .unwrap();
    World { dir, config }
}

fn engine(w: &World) -> baton::decide::Engine {
    let set = Arc::new(FeatureSet::compile(&w.config.features, &w.config.actions).unwrap());
    load_engine(&w.config, set, &w.dir.path().join("models"), "champion").unwrap()
}

async fn run(w: &World, opts: &ScoreOptions) -> batch::Run {
    let data = DataDir::open(w.dir.path().join("data"));
    let ctx = data.session().await.unwrap();
    batch::score(&ctx, &engine(w), opts).await.unwrap()
}

fn opts() -> ScoreOptions {
    ScoreOptions {
        as_of: parse_time(AS_OF).unwrap(),
        top: 3,
        ..ScoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_online_decisions_agree_for_every_customer() {
    let w = world(400);
    let run = run(&w, &opts()).await;
    assert!(run.scored.len() >= 400, "{} customers", run.scored.len());
    let with = run
        .scored
        .iter()
        .filter(|s| !s.candidates.is_empty())
        .count();
    assert!(with > 100, "only {with} customers have a candidate");
    // the server over the same data directory, its history loaded as at startup
    let state = AppState::open(
        w.config.clone(),
        Sources {
            config_path: w.dir.path().join("baton.toml"),
            data: DataDir::open(w.dir.path().join("data")),
            models: w.dir.path().join("models"),
        },
    )
    .unwrap();
    let router = app(state);
    let mut checked = 0;
    for s in &run.scored {
        let body = json!({"customer_id": s.customer_id, "ts": AS_OF, "limit": 50}).to_string();
        let req = Request::builder()
            .method("POST")
            .uri("/v1/decide")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let online: Vec<(String, String, f64)> = v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["action_id"].as_str().unwrap().to_string(),
                    a["channel"].as_str().unwrap().to_string(),
                    a["score"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            online.len(),
            s.candidates.len(),
            "{}: online {online:?}, batch {:?}",
            s.customer_id,
            s.candidates
        );
        let cat = &run.plan.catalog;
        for (o, b) in online.iter().zip(&s.candidates) {
            assert_eq!(
                (o.0.as_str(), o.1.as_str()),
                (cat.action(b), cat.channel(b)),
                "{}",
                s.customer_id
            );
            assert!(
                (o.2 - b.score).abs() < 1e-9 * (1.0 + b.score.abs()),
                "{}: {} online {} batch {}",
                s.customer_id,
                o.0,
                o.2,
                b.score
            );
        }
        let chosen = v["chosen"]["action_id"].as_str().unwrap();
        let best = s
            .candidates
            .first()
            .map_or(baton::decide::DO_NOTHING, |c| cat.action(c));
        assert_eq!(chosen, best, "{}", s.customer_id);
        checked += 1;
    }
    assert_eq!(checked, run.scored.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_are_honoured_and_cost_what_they_displace() {
    let w = world(600);
    let free = run(&w, &opts()).await;
    // budgets at about half of what the unconstrained assignment uses
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    for (k, (n, _)) in &free.summary.usage {
        if let Some(c) = k.strip_prefix("channel:") {
            used.insert(c.to_string(), *n);
        }
    }
    let (top_channel, top_n) = used.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(*top_n >= 20, "{used:?}");
    let mut o = opts();
    o.channel_budgets.insert(top_channel.clone(), top_n / 2);
    let first_action = free.plan.catalog.actions[0].clone();
    o.action_budgets.insert(first_action.clone(), 3);
    let capped = run(&w, &o).await;
    let s = &capped.summary;
    assert!(
        s.usage[&format!("channel:{top_channel}")].0 <= top_n / 2,
        "{:?}",
        s.usage
    );
    assert!(
        s.usage[&format!("action:{first_action}")].0 <= 3,
        "{:?}",
        s.usage
    );
    assert!(s.value <= free.summary.value + 1e-9);
    assert!(s.value <= s.bound + 1e-9 && s.bound <= free.summary.value + 1e-9);
    assert!(s.gap < 0.05, "gap {}", s.gap);
    // the Parquet rows: one assigned row per customer, ranks from 1, reasons present
    let out = w.dir.path().join("scores.parquet");
    let rows = capped.write(&out, 3, o.as_of).unwrap();
    let (_, batches) = read_parquet(&out).unwrap();
    let mut assigned: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for b in &batches {
        let ids = b.column_by_name("customer_id").unwrap().as_string::<i32>();
        let rank = b
            .column_by_name("rank")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let a = b.column_by_name("assigned").unwrap().as_boolean();
        let reasons = b.column_by_name("reasons").unwrap().as_string::<i32>();
        let score = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            n += 1;
            assert!(rank.value(r) >= 1);
            assert!(!reasons.value(r).is_empty());
            assert!(!score.is_null(r));
            if a.value(r) {
                *assigned.entry(ids.value(r).to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(n as u64, rows);
    assert_eq!(assigned.len(), capped.scored.len());
    assert!(
        assigned.values().all(|k| *k == 1),
        "a customer assigned twice"
    );
    let displaced = batches
        .iter()
        .flat_map(|b| {
            let reasons = b.column_by_name("reasons").unwrap().as_string::<i32>();
            (0..b.num_rows())
                .map(|r| reasons.value(r).to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r| r.starts_with("assigned instead of rank 1"))
        .count();
    assert!(displaced > 0, "no customer was moved by the budget");
}

#[test]
fn score_cli_writes_parquet_and_refuses_bad_budgets() {
    let w = world(150);
    let data = w.dir.path().join("data");
    let models = w.dir.path().join("models");
    let out = w.dir.path().join("s.parquet");
    let baton = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--data")
            .arg(&data)
            .arg("--models")
            .arg(&models)
            .args(args)
            .output()
            .unwrap()
    };
    let o = baton(&[
        "score",
        "--as-of",
        AS_OF,
        "--budget",
        "email=10",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{}{}",
        text,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("scored 150 customers"), "{text}");
    assert!(text.contains("channel:email"), "{text}");
    let (schema, _) = read_parquet(&out).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for c in [
        "customer_id",
        "rank",
        "action_id",
        "channel",
        "p_response",
        "value",
        "score",
        "assigned",
        "reasons",
    ] {
        assert!(names.contains(&c), "{names:?}");
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("reports/score.json")).unwrap())
            .unwrap();
    assert!(summary["usage"]["channel:email"][0].as_u64().unwrap() <= 10);
    for (args, says) in [
        (
            vec!["--budget", "fax=3"],
            "`fax` is not a channel or action",
        ),
        (vec!["--budget", "sms=many"], "not a whole number"),
        (vec!["--channels", "pigeon"], "unknown channel `pigeon`"),
        (
            vec!["--alias", "nope"],
            "cannot load the response model `nope`",
        ),
    ] {
        let mut a = vec!["score", "--as-of", AS_OF, "--out", out.to_str().unwrap()];
        a.extend(args);
        let o = baton(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = baton(&[
        "score",
        "--as-of",
        "yesterday-ish",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--as-of"));
}
