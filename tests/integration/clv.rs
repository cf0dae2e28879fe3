//! CLV end to end: RFM summaries from a hand-made transactions file and from a data
//! directory's purchase events (checked against hand-computed values), a fit on the committed
//! Complete Journey sample through the column mapping, predictions, the artifact round trip
//! and the report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use baton::clv::{
    ClvFitter, ClvModel, ClvOptions, RfmOptions, RfmTable, TransactionSource, Unit, predict_table,
    rfm_summary, write_report,
};
use baton::store::{DataDir, write_parquet_atomic};
use chrono::NaiveDate;

const ROWS: &[(&str, &str, f64)] = &[
    ("A", "2024-01-01 09:00:00", 10.0),
    ("A", "2024-01-01 18:30:00", 5.0), // same day: one purchase of 15
    ("A", "2024-01-11 23:30:00", 20.0),
    ("A", "2024-01-21", 30.0),
    ("A", "2024-02-05", 7.0), // holdout, two line items on one day
    ("A", "2024-02-05", 8.0),
    ("A", "2024-02-10", 1.0),
    ("B", "2024-01-15", 12.0),
    ("C", "2024-01-31", 9.0),
    ("C", "2024-01-31", 1.0),
    ("D", "2024-02-02", 4.0), // first purchase after the calibration end: not a customer yet
    ("E", "2024-01-05", 10.0),
    ("E", "2024-01-06", 20.0),
    ("E", "2024-03-05", 50.0), // after the holdout end
];

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn opts(unit: Unit) -> RfmOptions {
    RfmOptions {
        unit,
        calibration_end: Some(date("2024-01-31")),
        holdout_end: Some(date("2024-02-29")),
    }
}

fn check_hand_computed(rfm: &RfmTable, unit_days: f64) {
    assert_eq!(rfm.customer_id, ["A", "B", "C", "E"]);
    assert_eq!(rfm.frequency, [2.0, 0.0, 0.0, 1.0]);
    let days = |v: &[f64]| v.iter().map(|x| x * unit_days).collect::<Vec<_>>();
    let close = |a: Vec<f64>, b: [f64; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    assert!(
        close(days(&rfm.recency), [20.0, 0.0, 0.0, 1.0]),
        "{:?}",
        rfm.recency
    );
    assert!(close(days(&rfm.t), [30.0, 16.0, 0.0, 26.0]), "{:?}", rfm.t);
    assert_eq!(rfm.monetary, [25.0, 0.0, 0.0, 20.0]);
    assert_eq!(rfm.holdout.as_deref(), Some(&[2.0, 0.0, 0.0, 0.0][..]));
    assert_eq!(rfm.first_day, date("2024-01-01"));
    assert!((rfm.holdout_length() * unit_days - 29.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread")]
async fn rfm_of_a_transactions_csv_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    let mut csv = String::from("cust,when,amount\n");
    for (c, d, a) in ROWS {
        csv.push_str(&format!("{c},{d},{a}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    let source = TransactionSource::File {
        path,
        customer_col: "cust".into(),
        date_col: "when".into(),
        amount_col: "amount".into(),
    };
    check_hand_computed(&rfm_summary(&source, &opts(Unit::Days)).await.unwrap(), 1.0);
    check_hand_computed(
        &rfm_summary(&source, &opts(Unit::Weeks)).await.unwrap(),
        7.0,
    );

    // A missing column names the columns there are.
    let TransactionSource::File { path, .. } = &source else {
        unreachable!()
    };
    let bad = TransactionSource::File {
        path: path.clone(),
        customer_col: "customer".into(),
        date_col: "when".into(),
        amount_col: "amount".into(),
    };
    let err = rfm_summary(&bad, &opts(Unit::Days))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column `customer`") && err.contains("cust, when, amount"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rfm_of_purchase_events_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let ts: Vec<i64> = ROWS
        .iter()
        .map(|(_, d, _)| {
            let full = if d.len() == 10 {
                format!("{d} 12:00:00")
            } else {
                d.to_string()
            };
            chrono::NaiveDateTime::parse_from_str(&full, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        })
        .collect();
    let mut rows: Vec<(String, i64, &str, Option<f64>)> = ROWS
        .iter()
        .zip(&ts)
        .map(|(r, t)| (r.0.to_string(), *t, "purchase", Some(r.2)))
        .collect();
    // a page view on a purchase day must not count
    rows.push(("A".into(), ts[2], "page_view", None));
    write_events(&data, &rows);
    let source = TransactionSource::Events {
        data_dir: dir.path().to_path_buf(),
    };
    check_hand_computed(&rfm_summary(&source, &opts(Unit::Days)).await.unwrap(), 1.0);
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/completejourney/transactions.parquet")
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_journey_sample_fits_predicts_and_reports() {
    let source = TransactionSource::File {
        path: sample_path(),
        customer_col: "household_id".into(),
        date_col: "transaction_timestamp".into(),
        amount_col: "sales_value".into(),
    };
    let rfm = rfm_summary(
        &source,
        &RfmOptions {
            unit: Unit::Weeks,
            calibration_end: Some(date("2017-09-30")),
            holdout_end: None,
        },
    )
    .await
    .unwrap();
    assert!(rfm.customer_id.len() >= 15, "{}", rfm.customer_id.len());
    assert!(
        rfm.holdout.is_some(),
        "the holdout defaults to the last purchase day"
    );
    assert!(
        rfm.monetary
            .iter()
            .zip(&rfm.frequency)
            .all(|(m, x)| *x == 0.0 || *m > 0.0)
    );

    let model = ClvFitter::default().fit(&rfm, source).unwrap();
    let p = model.bgnbd.params;
    assert!(p.r > 0.0 && p.alpha > 0.0 && model.bgnbd.diagnostics.log_likelihood.is_finite());
    let gg = model.gamma_gamma.as_ref().expect("spend model");
    assert!(model.holdout.as_ref().is_some_and(|h| !h.is_empty()));

    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = ClvModel::load(dir.path()).unwrap();
    let (a, b) = (loaded.bgnbd.params, model.bgnbd.params);
    for (x, y) in [(a.r, b.r), (a.alpha, b.alpha), (a.a, b.a), (a.b, b.b)] {
        assert!((x - y).abs() <= 1e-12 * y.abs(), "{x} vs {y}");
    }
    let buckets = |m: &ClvModel| -> Vec<(String, usize)> {
        m.holdout
            .iter()
            .flatten()
            .map(|r| (r.bucket.clone(), r.customers))
            .collect()
    };
    assert_eq!(buckets(&loaded), buckets(&model));
    assert_eq!(loaded.source, model.source);
    write_report(&model, 30.0, 40.0, dir.path()).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<text") && svg.contains("P(alive)"));
    assert!(
        std::fs::read_to_string(dir.path().join("report.html"))
            .unwrap()
            .contains("<svg")
    );

    let opts = ClvOptions {
        horizon: 52.0,
        discount_rate: 0.01,
        period: 30.0 / 7.0,
    };
    let table = predict_table(&p, Some(&gg.params), &rfm, &opts).unwrap();
    let names: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "frequency",
            "recency",
            "T",
            "monetary",
            "expected_purchases_52",
            "p_alive",
            "expected_spend",
            "clv"
        ]
    );
    let clv = table
        .column(8)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(clv.null_count(), 0);
    assert!(clv.iter().flatten().all(|v| v.is_finite() && v >= 0.0));
}

/// Regenerates the committed `transactions` sample from the fetched data
/// (scripts/fetch-completejourney.sh): the first 40 households, line items summed per basket
/// (2,780 baskets; the importer test counts them), delta-encoded to keep the file small.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs data/completejourney (scripts/fetch-completejourney.sh)"]
async fn make_complete_journey_sample() {
    use parquet::basic::{Compression, Encoding};
    use parquet::file::properties::WriterProperties;
    use parquet::schema::types::ColumnPath;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ctx = datafusion::prelude::SessionContext::new();
    let full = root.join("data/completejourney/transactions.parquet");
    ctx.register_parquet("t", full.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let df = ctx
        .sql(
            "SELECT household_id, basket_id, MIN(transaction_timestamp) AS transaction_timestamp, \
             CAST(SUM(quantity) AS BIGINT) AS quantity, ROUND(SUM(sales_value), 2) AS sales_value FROM t \
             WHERE household_id IN (SELECT DISTINCT household_id FROM t ORDER BY household_id LIMIT 40) \
             GROUP BY household_id, basket_id ORDER BY household_id, transaction_timestamp",
        )
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for col in [
        "household_id",
        "basket_id",
        "transaction_timestamp",
        "quantity",
    ] {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    props = props
        .set_column_dictionary_enabled(ColumnPath::from("sales_value"), false)
        .set_column_encoding(ColumnPath::from("sales_value"), Encoding::BYTE_STREAM_SPLIT);
    let out = sample_path();
    let tmp = out.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(props.build()))
            .unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 64_000, "sample is {size} bytes");
}

/// Writes events `(customer, ts µs, event type, value)` as one new part of `data`'s events.
fn write_events(data: &DataDir, rows: &[(String, i64, &str, Option<f64>)]) {
    let schema = baton::schema::events_schema();
    let n = rows.len();
    let none = || Arc::new(StringArray::from(vec![None::<&str>; n])) as Arc<dyn Array>;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            none(),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            none(),
            none(),
            none(),
            none(),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3))),
            none(),
        ],
    )
    .unwrap();
    let part = DataDir::next_part_path(&data.events_dir()).unwrap();
    write_parquet_atomic(&part, schema, &[batch]).unwrap();
}

/// The same purchases give bit-identical RFM columns run after run, however DataFusion
/// schedules the parts: each customer's days are spread over eight event files, whose
/// partial sums would otherwise meet in whatever order the threads finish (the training
/// sets' customer-value columns, and every model trained on them, varied in the last
/// bits from one `baton quickstart` to the next).
#[tokio::test(flavor = "multi_thread")]
async fn rfm_is_bit_identical_across_runs_over_many_parts() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let day = 86_400_000_000i64;
    let start = date("2024-01-01")
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    for part in 0..8i64 {
        let rows: Vec<(String, i64, &str, Option<f64>)> = (0..400i64)
            .flat_map(|c| {
                (0..6i64).map(move |k| {
                    let d = part * 6 + k;
                    let v = 0.1 * (c + 1) as f64 / (d + 3) as f64 + 1e-7 * (d * d) as f64;
                    (format!("c{c:04}"), start + d * day + c, "purchase", Some(v))
                })
            })
            .collect();
        write_events(&data, &rows);
    }
    let source = TransactionSource::Events {
        data_dir: dir.path().to_path_buf(),
    };
    let opts = RfmOptions {
        unit: Unit::Days,
        calibration_end: Some(date("2024-03-31")),
        holdout_end: None,
    };
    let first = rfm_summary(&source, &opts).await.unwrap();
    assert_eq!(first.customer_id.len(), 400);
    assert!(first.frequency.iter().all(|f| *f == 47.0));
    for run in 1..12 {
        let again = rfm_summary(&source, &opts).await.unwrap();
        let differ = first
            .monetary
            .iter()
            .zip(&again.monetary)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "run {run}: {differ} of 400 monetary values differ"
        );
        assert_eq!(again, first, "run {run}");
    }
}
