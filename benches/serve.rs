//! `POST /v1/decide` in process: the server's own work per decision, without the network,
//! the HTTP parser or a load generator on the same cores, and where that work goes.
//!
//! It opens the server state on a copy of the quickstart's history and models (as
//! `baton serve` does, with `benches/load.toml`'s 50-candidate catalog), then per round,
//! for 20,000 decisions over the quickstart's customers:
//! - the empty axum handler through `tower::ServiceExt::oneshot` (the framework's floor);
//! - the real router through `oneshot` (auth, metrics, body limit, timeout, the handler,
//!   the decision log's record handed to the write-ahead log, the answer's JSON);
//! - the handler's steps one by one on the same customers: the customer's lock and
//!   lookup, the online feature vector and RFM, `Engine::decide`, the decision-log record
//!   (built and serialised), the answer's JSON.
//!
//! Also the same router driven by two threads at once (20,000 decisions split between
//! them; per decision: 2 × wall time / decisions), the cost of deciding in parallel.
//!
//! Every decision that picks an action records a delivery in the customer's contact
//! history, so the histories grow by three per customer per round (all at the same
//! instant: nothing ages out). `BATON_BENCH_DISTINCT=200` decides for 200 customers
//! only, which shows what long histories cost.
//!
//! Run after `cargo run --release -- quickstart`: `cargo bench --bench serve`
//! (`BATON_BENCH_DATA`, `BATON_BENCH_MODELS`, `BATON_BENCH_ROUNDS` override the defaults
//! `data/quickstart`, `models`, 5).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::Instant;

use baton::config::Config;
use baton::decide::log::DecisionRecord;
use baton::decide::{CustomerView, DecideInput};
use baton::serve::Record;
use http_body_util::BodyExt;
use tower::ServiceExt;

const AS_OF: &str = "2025-05-01T12:00:00Z";
const N: usize = 20_000;

fn env_path(key: &str, default: &str) -> PathBuf {
    std::env::var_os(key).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn oneshot_round(app: &axum::Router, ids: &[String]) -> f64 {
    let t = Instant::now();
    for id in ids {
        let body = format!(r#"{{"customer_id":"{id}","ts":"{AS_OF}","limit":3}}"#);
        let req = axum::http::Request::post("/v1/decide")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), 200, "decide failed");
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        std::hint::black_box(bytes);
    }
    t.elapsed().as_secs_f64() * 1e6 / ids.len() as f64
}

fn main() -> anyhow::Result<()> {
    let data = env_path("BATON_BENCH_DATA", "data/quickstart");
    let models = env_path("BATON_BENCH_MODELS", "models");
    let rounds: usize = std::env::var("BATON_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    if !data.join("events").is_dir() || !models.join("response").join("aliases.json").is_file() {
        eprintln!(
            "serve bench: needs a history in {} and models in {}: run `cargo run --release -- quickstart --no-serve` first",
            data.display(),
            models.display()
        );
        return Ok(());
    }
    let config_path = Path::new("benches/load.toml");
    let config = Config::load(config_path, true)?;
    // a scratch copy of the history, so the write-ahead log does not touch it
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("data");
    std::fs::create_dir_all(&work)?;
    for part in ["events", "customers.parquet"] {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(data.join(part))
            .arg(&work)
            .status()?;
        anyhow::ensure!(status.success(), "copying {}", data.join(part).display());
    }
    let state = baton::cli::serve::open_state(&config, config_path, &work, &models)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let rt2 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = baton::features::parse_time(AS_OF)?;
    let context = serde_json::Map::new();
    // the load script's customer order: a stride through all 20,000
    let distinct: usize = std::env::var("BATON_BENCH_DISTINCT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(N);
    let ids: Vec<String> = (0..N)
        .map(|i| format!("c{:07}", (i * 7919) % N % distinct))
        .collect();
    let empty = baton::serve::empty_app();
    let app = baton::serve::app(state.clone());
    let names = [
        "empty handler, oneshot",
        "POST /v1/decide, oneshot",
        "POST /v1/decide, oneshot, 2 threads (2 × wall / decisions)",
        "  customer lock and lookup",
        "  feature vector and RFM",
        "  Engine::decide",
        "  decision-log record",
        "  answer JSON",
    ];
    let mut table: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        table[0].push(rt.block_on(oneshot_round(&empty, &ids)));
        table[1].push(rt.block_on(oneshot_round(&app, &ids)));
        table[2].push(rt2.block_on(async {
            let (a, b) = ids.split_at(N / 2);
            let (a, b) = (a.to_vec(), b.to_vec());
            let (app_a, app_b) = (app.clone(), app.clone());
            let t = Instant::now();
            let ja = tokio::spawn(async move { oneshot_round(&app_a, &a).await });
            let jb = tokio::spawn(async move { oneshot_round(&app_b, &b).await });
            let _ = (ja.await, jb.await);
            t.elapsed().as_secs_f64() * 1e6 * 2.0 / N as f64
        }));
        let engine = state.engine();
        let set = engine.feature_set().clone();
        let mut t = [0.0f64; 5];
        for id in &ids {
            let input = DecideInput {
                now,
                context: &context,
                limit: 3,
                explain: false,
            };
            let t0 = Instant::now();
            let mut decision = state.with_customer(id, &set, |c| {
                let t1 = Instant::now();
                let features = c.online.vector(now);
                let rfm = c.online.rfm(now);
                let t2 = Instant::now();
                let (consents, known) = match c.online.profile() {
                    Some(p) => (p.consents, true),
                    None => ([None; 5], false),
                };
                let view = CustomerView {
                    customer_id: id,
                    features: &features,
                    consents,
                    rfm,
                    known,
                    contacts: &c.contacts,
                };
                let d = engine
                    .decide(&view, &input, format!("d-bench-{id}"), &mut rand::rng())
                    .expect("decide");
                t[0] += (t1 - t0).as_secs_f64();
                t[1] += (t2 - t1).as_secs_f64();
                t[2] += t2.elapsed().as_secs_f64();
                d
            });
            let t3 = Instant::now();
            let record = DecisionRecord::of(&mut decision, &context);
            let line = Record::decision_line(&record);
            let t4 = Instant::now();
            let answer = serde_json::to_vec(&decision)?;
            t[3] += (t4 - t3).as_secs_f64();
            t[4] += t4.elapsed().as_secs_f64();
            std::hint::black_box((line, answer));
        }
        for (k, v) in t.iter().enumerate() {
            table[3 + k].push(v * 1e6 / N as f64);
        }
        eprintln!(
            "round {round}: empty {:.1} us, decide {:.1} us, on 2 threads {:.1} us, Engine::decide {:.1} us",
            table[0][round], table[1][round], table[2][round], table[5][round]
        );
    }
    println!(
        "in process, {N} decisions per round over {} customers, {rounds} rounds, 50 candidates; µs per decision:",
        state.customer_count()
    );
    println!("| step | median | min | max |\n|---|---|---|---|");
    for (name, v) in names.iter().zip(&table) {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        println!("| {name} | {:.1} | {lo:.1} | {hi:.1} |", median(v.clone()));
    }
    Ok(())
}
