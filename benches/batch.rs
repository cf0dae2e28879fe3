//! Batch scoring at scale: N customers (default 1,000,000; `BATON_BENCH_CUSTOMERS`) × a
//! catalog of 50 (action, channel) candidates, scored with the engine and allocated under
//! channel and action budgets. Feature rows come from a simulated data directory (10,000
//! customers × 90 days, DataFusion features), tiled to N customers with new ids; the
//! response and churn models are fixed-weight logistic ones (`baton::models::toy`).
//!
//! Side by side in the same run: the bare engine loop on one thread over the first 20,000
//! rows, so the batch path's per-customer cost reads as a ratio to it.
//!
//! Run: `cargo bench --bench batch` (or `BATON_BENCH_CUSTOMERS=200000 cargo bench --bench batch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use baton::batch::{self, Inputs, ScoreOptions};
use baton::config::{ActionKind, ActionSpec, Config};
use baton::decide::{ContactHistory, CustomerView, DecideInput, Engine, ModelSlot, Models};
use baton::features::{FeatureSet, Task, build_features, parse_time};
use baton::models::FeatureSchema;
use baton::models::toy::toy_logistic;
use baton::sim::{SimParams, simulate};
use baton::store::DataDir;

/// 10 actions on 5 channels each.
fn catalog() -> Vec<ActionSpec> {
    let channels = ["email", "web", "app", "push", "sms"];
    (0..10)
        .map(|i| ActionSpec {
            id: format!("a{i:03}"),
            name: String::new(),
            kind: ActionKind::ALL[i % 3],
            channels: channels.iter().map(|c| c.to_string()).collect(),
            value: 10.0 + i as f64,
            cost: channels
                .iter()
                .map(|c| (c.to_string(), if *c == "sms" { 0.05 } else { 0.01 }))
                .collect(),
            eligibility: if i % 2 == 0 {
                "purchases_90d >= 0".into()
            } else {
                "true".into()
            },
            max_contacts: 3,
            per_days: 30,
            cooldown_days: 1,
            weight: 1.0,
            start: None,
            end: None,
        })
        .collect()
}

fn engine(config: &Config) -> Engine {
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).unwrap());
    let slot = |task, name, seed| {
        let schema = FeatureSchema::for_task(task, &set, &config.actions);
        let m = toy_logistic(name, schema, vec!["p".into()], seed);
        ModelSlot::new(name, "v1", m.into_scorer(), &set).unwrap()
    };
    let models = Models {
        response: slot(Task::Response, "response", 1),
        churn: Some(slot(Task::Churn, "churn", 2)),
        channel: None,
    };
    Engine::new(config, set, models).unwrap()
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let n: usize = std::env::var("BATON_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::create(tmp.path()).unwrap();
    let sim_config = Config::default();
    let params = SimParams {
        customers: 10_000,
        days: 90,
        seed: 3,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.08,
    };
    simulate(&sim_config, &params, &data, &|_| {}).unwrap();
    let mut config = Config {
        actions: catalog(),
        ..Config::default()
    };
    config.decide.retention_actions = vec!["a000".into()];
    let engine = engine(&config);
    assert_eq!(engine.candidate_count(), 50);
    let as_of = parse_time("2025-04-01T10:00:00Z").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = rt.block_on(async {
        let ctx = data.session().await.unwrap();
        build_features(&ctx, engine.feature_set(), as_of)
            .await
            .unwrap()
    });
    // tile the rows to n customers with new ids
    let t = Instant::now();
    let idx: Vec<u32> = (0..n).map(|i| (i % base.num_rows()) as u32).collect();
    let idx = arrow::array::UInt32Array::from(idx);
    let mut cols: Vec<ArrayRef> = base
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &idx, None).unwrap())
        .collect();
    cols[0] = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("c{i:08}")),
    ));
    let features = RecordBatch::try_new(base.schema(), cols).unwrap();
    let consents: HashMap<String, [Option<bool>; 5]> = (0..n)
        .map(|i| (format!("c{i:08}"), [Some(i % 4 != 0); 5]))
        .collect();
    let inputs = Inputs {
        consents,
        contacts: HashMap::new(),
        rfm: HashMap::new(),
    };
    println!(
        "{n} customers × {} candidates; feature rows tiled from {} simulated customers in {:.1}s",
        engine.candidate_count(),
        base.num_rows(),
        t.elapsed().as_secs_f64()
    );

    // side by side: the bare engine on one thread
    let m = 20_000.min(n);
    let ctx = serde_json::Map::new();
    let input = DecideInput {
        now: as_of,
        context: &ctx,
        limit: 3,
        explain: false,
    };
    let greedy = engine.greedy();
    let contacts = ContactHistory::default();
    let width = engine.feature_set().columns().len();
    let rows: Vec<Vec<Option<f64>>> = (0..m)
        .map(|r| {
            (0..width)
                .map(|k| {
                    let c = features
                        .column(k + 2)
                        .as_any()
                        .downcast_ref::<arrow::array::Float64Array>()
                        .unwrap();
                    arrow::array::Array::is_valid(c, r).then(|| c.value(r))
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let mut rng = rand::rng();
    for (r, row) in rows.iter().enumerate() {
        let view = CustomerView {
            customer_id: "c",
            features: row,
            consents: [Some(r % 4 != 0); 5],
            rfm: None,
            known: true,
            contacts: &contacts,
        };
        std::hint::black_box(
            greedy
                .decide(&view, &input, String::new(), &mut rng)
                .unwrap(),
        );
    }
    let bare = t.elapsed().as_secs_f64() / m as f64;

    let opts = ScoreOptions {
        as_of,
        top: 3,
        channels: None,
        // binding budgets: the channel and the action most customers would get otherwise
        action_budgets: [("a009".to_string(), (n / 10) as u64)].into(),
        channel_budgets: [
            ("web".to_string(), (n / 5) as u64),
            ("sms".to_string(), (n / 50) as u64),
        ]
        .into(),
    };
    let t = Instant::now();
    let run = batch::run_on(&engine, &features, &inputs, &opts, Default::default()).unwrap();
    let total = t.elapsed().as_secs_f64();
    let decide = run.summary.seconds["decide"];
    let alloc = run.summary.seconds["allocate"];
    let t = Instant::now();
    let out = tmp.path().join("scores.parquet");
    let written = run.write(&out, 3, as_of).unwrap();
    let write = t.elapsed().as_secs_f64();
    println!(
        "bare engine, 1 thread:     {:.1} µs/customer ({m} customers)",
        bare * 1e6
    );
    println!(
        "batch decide, {} threads:   {:.1} µs/customer wall ({:.2} × the bare loop), {:.0} customers/s",
        rayon::current_num_threads(),
        decide / n as f64 * 1e6,
        decide / n as f64 / bare,
        n as f64 / decide
    );
    println!(
        "allocate:                  {alloc:.2}s for {} options, {} price rounds, gap to the bound {:.4}%",
        run.summary.candidates,
        run.summary.price_rounds,
        100.0 * run.summary.gap
    );
    println!(
        "assigned {} of {n}; value {:.0} (without budgets {:.0}); usage {:?}",
        run.summary.assigned, run.summary.value, run.summary.unconstrained, run.summary.usage
    );
    println!("write Parquet:             {write:.2}s, {written} rows");
    println!(
        "total:                     {:.1}s (decide {decide:.1}s + allocate {alloc:.1}s + write {write:.1}s); peak RSS {:.0} MiB",
        total + write,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
