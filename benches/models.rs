//! Training and scoring benchmarks of the three learners.
//!
//! Simulates customers, builds each task's training set with the default feature set, then
//! bootstraps its rows (seeded) up to `BATON_BENCH_ROWS` (default 1,000,000). Each learner
//! is trained in a child process of this bench, so its peak RSS is its own. Scoring is
//! measured single-threaded through `Scorer::score_into`, row by row.
//!
//! `cargo bench --bench models` (`BATON_BENCH_ROWS`, `BATON_BENCH_CUSTOMERS`,
//! `BATON_BENCH_TASKS=churn,response,channel`, `BATON_BENCH_LEARNERS=logistic,gbdt,mlp` to
//! change the defaults).

use std::path::{Path, PathBuf};
use std::time::Instant;

use baton::config::Config;
use baton::features::{DatasetSpec, FeatureSet, Task, cutoffs_every, write_dataset};
use baton::models::logistic::LogisticTrainer;
use baton::models::{FeatureSchema, LearnerKind, Part, Scorer, Table, TrainConfig, train};
use baton::sim::{SimParams, simulate};
use baton::store::DataDir;
use rand::{Rng, SeedableRng};

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn schema(task: Task) -> FeatureSchema {
    let c = Config::default();
    let set = FeatureSet::compile(&c.features, &c.actions).unwrap();
    FeatureSchema::for_task(task, &set, &c.actions)
}

/// A training set, bootstrapped to `rows` rows (parts kept per row; no oracle).
fn big_table(path: &Path, task: Task, rows: usize) -> Table {
    let t = Table::load(path, task, &schema(task), None).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let pick: Vec<usize> = (0..rows).map(|_| rng.random_range(0..t.n)).collect();
    Table {
        n: rows,
        x: t.select(&pick),
        y: pick.iter().map(|&i| t.y[i]).collect(),
        part: pick.iter().map(|&i| t.part[i]).collect(),
        customer_id: pick.iter().map(|&i| t.customer_id[i].clone()).collect(),
        oracle: None,
        action_id: None,
        ..t
    }
}

fn child(task: Task, learner: &str, path: &Path, rows: usize) {
    let table = big_table(path, task, rows);
    let base_rss = peak_rss_mib();
    // One logistic fit, the size figure the README reports (the default chooses the
    // penalty from four, fitted in parallel).
    let cfg = TrainConfig {
        learner: learner.parse().unwrap(),
        importance_rows: 2000,
        logistic: LogisticTrainer {
            alpha: Some(1.0),
            ..LogisticTrainer::default()
        },
        ..TrainConfig::default()
    };
    let started = Instant::now();
    let trained = train(&table, &schema(task), &cfg, &|_| {}).unwrap();
    let total = started.elapsed().as_secs_f64();
    let model = trained.model;
    // Scoring: single thread, row by row, through the trait object.
    let scorer: std::sync::Arc<dyn Scorer> = model.into_scorer();
    let test = table.rows(Part::Test);
    let n = test.len().min(200_000);
    let mut rows_x = vec![0.0; n * table.d];
    for (r, &i) in test.iter().take(n).enumerate() {
        table.row_into(i, &mut rows_x[r * table.d..(r + 1) * table.d]);
    }
    let mut out = vec![0.0; table.outputs()];
    let mut sink = 0.0;
    let t0 = Instant::now();
    for r in 0..n {
        scorer
            .score_into(&rows_x[r * table.d..(r + 1) * table.d], &mut out)
            .unwrap();
        sink += out[0];
    }
    let secs = t0.elapsed().as_secs_f64();
    let e = trained.evaluation;
    println!(
        "{task:?} {learner:<9} rows {:>8} train {:>8}  fit {:>7.1}s  total {:>7.1}s  peak RSS {:>7.0} MiB (data {:>5.0})  score {:>6.2} µs/row {:>9.0} rows/s  AUC {:.4} (sink {:.1})",
        table.n,
        e.rows_train,
        e.fit_seconds,
        total,
        peak_rss_mib(),
        base_rss,
        secs / n as f64 * 1e6,
        n as f64 / secs,
        e.auc.unwrap_or(f64::NAN),
        sink
    );
}

fn main() {
    if let (Ok(learner), Ok(path), Ok(task)) = (
        std::env::var("BATON_BENCH_CHILD"),
        std::env::var("BATON_BENCH_SET"),
        std::env::var("BATON_BENCH_TASK"),
    ) {
        let task: Task = task.parse().unwrap();
        child(
            task,
            &learner,
            Path::new(&path),
            env_or("BATON_BENCH_ROWS", 1_000_000),
        );
        return;
    }
    let customers: u64 = env_or("BATON_BENCH_CUSTOMERS", 40_000);
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::create(tmp.path()).unwrap();
    let config = Config::default();
    let params = SimParams {
        customers,
        days: 150,
        seed: 3,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.15,
    };
    let t0 = Instant::now();
    simulate(&config, &params, &data, &|_| {}).unwrap();
    let set = FeatureSet::compile(&config.features, &config.actions).unwrap();
    println!(
        "simulated {customers} customers x 150 days in {:.1}s; {} cores",
        t0.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let tasks: String = env_or("BATON_BENCH_TASKS", "churn,response,channel".to_string());
    let learners: String = env_or("BATON_BENCH_LEARNERS", "logistic,gbdt,mlp".to_string());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for task_name in tasks.split(',') {
        let task: Task = task_name.parse().unwrap();
        let path: PathBuf = tmp.path().join(format!("{task_name}.parquet"));
        let t1 = Instant::now();
        let rows = rt.block_on(async {
            let ctx = data.session().await.unwrap();
            let cutoffs = cutoffs_every(&ctx, 30, 30).await.unwrap();
            write_dataset(&data, &set, &DatasetSpec::new(task, cutoffs), &path)
                .await
                .unwrap()
        });
        println!(
            "{task_name} training set: {rows} rows in {:.1}s; bootstrapped to {} rows; {} inputs",
            t1.elapsed().as_secs_f64(),
            env_or::<usize>("BATON_BENCH_ROWS", 1_000_000),
            schema(task).width(),
        );
        for l in learners.split(',') {
            let _: LearnerKind = l.parse().unwrap();
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .env("BATON_BENCH_CHILD", l)
                .env("BATON_BENCH_SET", &path)
                .env("BATON_BENCH_TASK", task_name)
                .status()
                .unwrap();
            assert!(status.success(), "{task_name} {l} failed");
        }
    }
}
