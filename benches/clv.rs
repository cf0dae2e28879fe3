//! CLV benchmark (plain `main`, `harness = false`): BG/NBD and Gamma-Gamma fit times on
//! simulated, already summarised customers (100k and 1M), and the DataFusion RFM summary time
//! on a generated transactions Parquet file.
//!
//! `cargo bench --bench clv` (add `-- quick` to skip the 1M case).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use baton::clv::{
    BgNbdFitter, BgNbdParams, GammaGammaFitter, GammaGammaParams, RfmOptions, TransactionSource,
    Unit, rfm_summary, simulate_bgnbd, simulate_spend,
};
use rand::{Rng, SeedableRng};

fn fit_bench(n: usize) {
    let truth = BgNbdParams::new(0.25, 4.0, 0.8, 2.5).unwrap();
    let t0 = Instant::now();
    let sim = simulate_bgnbd(&truth, n, 30.0, 80.0, 0.0, 42).unwrap();
    let sim_secs = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let fit = BgNbdFitter::default()
        .fit(&sim.frequency, &sim.recency, &sim.t)
        .unwrap();
    let fit_secs = t0.elapsed().as_secs_f64();
    let d = &fit.diagnostics;
    let p = fit.params;
    println!(
        "bgnbd_fit n={n:>8}: {fit_secs:7.3} s  ({} iters, {} evals, {:.1} ms/eval; r {:.3} alpha {:.3} a {:.3} b {:.3}; \
         simulate {sim_secs:.2} s)",
        d.iterations,
        d.evaluations,
        1e3 * fit_secs / d.evaluations.max(1) as f64,
        p.r,
        p.alpha,
        p.a,
        p.b
    );
    let gg = GammaGammaParams::new(6.0, 4.0, 15.0).unwrap();
    let spend = simulate_spend(&gg, &sim.frequency, 43).unwrap();
    let t0 = Instant::now();
    let fit = GammaGammaFitter::default()
        .fit(&sim.frequency, &spend)
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "gamma_gamma_fit n={n:>8} ({} repeat buyers): {secs:7.3} s  ({} iters; p {:.3} q {:.3} gamma {:.3})",
        fit.diagnostics.customers,
        fit.diagnostics.iterations,
        fit.params.p,
        fit.params.q,
        fit.params.gamma
    );
}

fn rfm_bench(customers: usize, rows_per_customer: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
    ]));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let start = 1_483_228_800_000_000i64; // 2017-01-01
    let n = customers * rows_per_customer;
    let (mut c, mut ts, mut a) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..customers {
        for _ in 0..rows_per_customer {
            c.push(format!("c{i:07}"));
            ts.push(start + rng.random_range(0..365i64 * 86_400_000_000));
            a.push(rng.random_range(1.0..100.0));
        }
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(c)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(a)),
        ],
    )
    .unwrap();
    baton::store::write_parquet_atomic(&path, schema, &[batch]).unwrap();
    let source = TransactionSource::File {
        path,
        customer_col: "customer".into(),
        date_col: "ts".into(),
        amount_col: "amount".into(),
    };
    let opts = RfmOptions {
        unit: Unit::Weeks,
        calibration_end: Some("2017-09-30".parse().unwrap()),
        holdout_end: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let rfm = rt.block_on(rfm_summary(&source, &opts)).unwrap();
    println!(
        "rfm_summary {n} rows, {} customers (with holdout): {:7.3} s",
        rfm.customer_id.len(),
        t0.elapsed().as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    println!(
        "threads: {}",
        std::thread::available_parallelism().map_or(1, |t| t.get())
    );
    fit_bench(100_000);
    if !quick {
        fit_bench(1_000_000);
    }
    rfm_bench(100_000, 10);
}
