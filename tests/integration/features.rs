//! Features end to end: batch (DataFusion) vs online parity on random histories and on
//! simulated data, no leakage across the cutoff, training sets, spec errors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::Float64Type;
use baton::config::{Config, default_actions};
use baton::features::{
    DAY_US, DatasetSpec, Event, FeatureSet, OnlineState, Profile, Task, build_dataset,
    build_features, default_features, events_from_batch, profiles_from_batch,
};
use baton::schema::{customers_schema, events_schema};
use baton::sim::{SimParams, simulate};
use baton::store::{DataDir, read_parquet};
use datafusion::prelude::SessionContext;
use proptest::prelude::*;

fn feature_set() -> Arc<FeatureSet> {
    Arc::new(FeatureSet::compile(&default_features(), &default_actions()).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn events_batch(rows: &[(String, Event)]) -> RecordBatch {
    let s = |f: &dyn Fn(&Event) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|(_, e)| f(e)).collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(StringArray::from(
                (0..rows.len())
                    .map(|i| Some(format!("e{i}")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|(_, e)| e.ts).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            s(&|e| Some(e.event_type.clone())),
            s(&|e| e.channel.clone()),
            s(&|e| e.action_id.clone()),
            s(&|e| e.decision_id.clone()),
            s(&|e| e.item_id.clone()),
            Arc::new(Float64Array::from(
                rows.iter().map(|(_, e)| e.value).collect::<Vec<_>>(),
            )),
            s(&|_| None),
        ],
    )
    .unwrap()
}

fn customers_batch(rows: &[(String, Profile)]) -> RecordBatch {
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            rows.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|(_, p)| p.created_at.unwrap())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
    ];
    for k in 0..3 {
        cols.push(Arc::new(StringArray::from(
            rows.iter()
                .map(|(_, p)| p.attributes[k].clone())
                .collect::<Vec<_>>(),
        )));
    }
    for k in 0..5 {
        cols.push(Arc::new(BooleanArray::from(
            rows.iter().map(|(_, p)| p.consents[k]).collect::<Vec<_>>(),
        )));
    }
    cols.push(Arc::new(StringArray::from(vec![None::<&str>; rows.len()])));
    cols.push(Arc::new(
        TimestampMicrosecondArray::from(vec![None; rows.len()]).with_timezone("UTC"),
    ));
    RecordBatch::try_new(customers_schema(), cols).unwrap()
}

fn session(events: &[(String, Event)], customers: &[(String, Profile)]) -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_batch("events", events_batch(events)).unwrap();
    ctx.register_batch("customers", customers_batch(customers))
        .unwrap();
    ctx
}

/// Online vectors for every customer of `batch`, fed the events before `as_of` (in the
/// given order), compared feature by feature with the batch rows.
fn assert_parity(
    set: &Arc<FeatureSet>,
    batch: &RecordBatch,
    events: &[(String, Event)],
    profiles: &HashMap<String, Profile>,
    as_of: i64,
) -> Result<(), String> {
    let mut states: HashMap<&str, OnlineState> = HashMap::new();
    for (c, e) in events.iter().filter(|(_, e)| e.ts < as_of) {
        states
            .entry(c.as_str())
            .or_insert_with(|| OnlineState::new(set.clone(), profiles.get(c).cloned()))
            .update(e);
    }
    let ids = batch.column(0).as_string::<i32>();
    let expected: usize = profiles
        .iter()
        .filter(|(c, p)| p.created_at.unwrap() < as_of || states.contains_key(c.as_str()))
        .count()
        + states
            .keys()
            .filter(|c| !profiles.contains_key(**c))
            .count();
    if batch.num_rows() != expected {
        return Err(format!(
            "{} batch rows, expected {expected}",
            batch.num_rows()
        ));
    }
    for r in 0..batch.num_rows() {
        let id = ids.value(r);
        let online = match states.get(id) {
            Some(s) => s.vector(as_of),
            None => OnlineState::new(set.clone(), profiles.get(id).cloned()).vector(as_of),
        };
        for (k, name) in set.columns().iter().enumerate() {
            let col = batch.column(k + 2).as_primitive::<Float64Type>();
            let b = col.is_valid(r).then(|| col.value(r));
            let o = online[k];
            let ok = match (b, o) {
                (None, None) => true,
                (Some(x), Some(y)) if set.is_count_column(k) => x == y,
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "{id} at {as_of}: `{name}` batch {b:?} online {o:?}"
                ));
            }
        }
    }
    Ok(())
}

const TYPES: [&str; 12] = [
    "purchase",
    "purchase",
    "visit",
    "visit",
    "add_to_cart",
    "product_view",
    "return",
    "survey_nps",
    "support_contact",
    "action_delivered",
    "action_clicked",
    "app_open",
];
const CHANNELS: [&str; 6] = ["web", "app", "store", "email", "sms", "push"];
const ACTIONS: [&str; 4] = [
    "cart_reminder",
    "win_back",
    "service_call",
    "unknown_action",
];

fn arb_event() -> impl Strategy<Value = (usize, Event)> {
    (
        0usize..4,
        0i64..120,
        0i64..4,
        0usize..TYPES.len(),
        proptest::option::weighted(0.85, 0usize..CHANNELS.len()),
        proptest::option::weighted(0.5, 0usize..ACTIONS.len()),
        proptest::option::weighted(0.5, 0u32..6),
        proptest::option::weighted(0.7, 0u32..400),
    )
        .prop_map(|(c, day, q, t, ch, a, item, v)| {
            (
                c,
                Event {
                    // Quarter-day timestamps: ties and exact day edges happen often.
                    ts: day * DAY_US + q * DAY_US / 4,
                    event_type: TYPES[t].into(),
                    channel: ch.map(|i| CHANNELS[i].into()),
                    action_id: a.map(|i| ACTIONS[i].into()),
                    decision_id: None,
                    item_id: item.map(|i| format!("p{i}")),
                    value: v.map(|v| f64::from(v) / 4.0 - 5.0),
                },
            )
        })
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    (
        -30i64..100,
        proptest::option::of(proptest::sample::select(vec!["new", "vip", "gold"])),
        proptest::option::of(proptest::bool::ANY),
    )
        .prop_map(|(d, seg, consent)| Profile {
            created_at: Some(d * DAY_US + 3_600_000_000),
            attributes: [Some("25-34".into()), None, seg.map(String::from)],
            consents: [consent, None, Some(true), None, Some(false)],
        })
}

fn history(raw: Vec<(usize, Event)>) -> Vec<(String, Event)> {
    raw.into_iter().map(|(c, e)| (format!("c{c}"), e)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Online (events fed in random order) equals batch, feature by feature.
    #[test]
    fn online_equals_batch_on_random_histories(
        raw in proptest::collection::vec(arb_event(), 0..150),
        profiles in proptest::collection::vec(arb_profile(), 5),
        nows in proptest::collection::vec((0i64..126, 0i64..8), 3),
        seed in any::<u64>(),
    ) {
        let set = feature_set();
        let mut events = history(raw);
        // Shuffle deterministically: the online state must not depend on arrival order.
        let mut h = seed | 1;
        for i in (1..events.len()).rev() {
            h ^= h << 13; h ^= h >> 7; h ^= h << 17;
            events.swap(i, (h % (i as u64 + 1)) as usize);
        }
        // c0..c2 have profiles, c3 has none, c5 has a profile but no events.
        let customers: Vec<(String, Profile)> = profiles
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(i, p)| (format!("c{}", if i == 4 { 5 } else { i }), p))
            .collect();
        let ctx = session(&events, &customers);
        let by_id: HashMap<String, Profile> = customers.iter().cloned().collect();
        let rt = rt();
        for (day, eighth) in nows {
            let as_of = day * DAY_US + eighth * DAY_US / 8;
            let batch = rt.block_on(build_features(&ctx, &set, as_of)).unwrap();
            if let Err(m) = assert_parity(&set, &batch, &events, &by_id, as_of) {
                prop_assert!(false, "{}", m);
            }
        }
    }

    /// Events at or after the cutoff never change a feature at the cutoff.
    #[test]
    fn later_events_never_change_features(
        raw in proptest::collection::vec(arb_event(), 0..80),
        later in proptest::collection::vec(arb_event(), 1..40),
        cut_day in 20i64..110,
    ) {
        let set = feature_set();
        let cutoff = cut_day * DAY_US;
        let events = history(raw);
        let mut more = events.clone();
        more.extend(history(later).into_iter().map(|(c, mut e)| {
            e.ts = cutoff + (e.ts % (10 * DAY_US));
            (c, e)
        }));
        let rt = rt();
        let a = rt.block_on(build_features(&session(&events, &[]), &set, cutoff)).unwrap();
        let b = rt.block_on(build_features(&session(&more, &[]), &set, cutoff)).unwrap();
        prop_assert_eq!(a, b);
    }
}

fn sim_dir(customers: u64, days: u32) -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = DataDir::create(tmp.path()).unwrap();
    let params = SimParams {
        customers,
        days,
        seed: 7,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.15,
    };
    simulate(&Config::default(), &params, &dir, &|_| {}).unwrap();
    (tmp, dir)
}

fn table(paths: &[std::path::PathBuf]) -> RecordBatch {
    let mut all = Vec::new();
    let mut schema = None;
    for p in paths {
        let (s, b) = read_parquet(p).unwrap();
        schema = Some(s);
        all.extend(b);
    }
    concat_batches(&schema.unwrap(), &all).unwrap()
}

const START: i64 = 20_089 * DAY_US; // 2025-01-01

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_equals_batch_on_simulated_data() {
    let (_tmp, dir) = sim_dir(200, 60);
    let set = feature_set();
    let events = events_from_batch(&table(&DataDir::parts(&dir.events_dir()).unwrap())).unwrap();
    let profiles = profiles_from_batch(&table(&[dir.customers_path()])).unwrap();
    assert!(events.len() > 5_000, "{}", events.len());
    let ctx = dir.session().await.unwrap();
    for as_of in [
        START + 30 * DAY_US,
        START + 45 * DAY_US + 13 * 3_600_000_000,
    ] {
        let batch = build_features(&ctx, &set, as_of).await.unwrap();
        assert!(batch.num_rows() >= 150, "{}", batch.num_rows());
        assert_parity(&set, &batch, &events, &profiles, as_of).unwrap();
    }
}

fn col_f64(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

fn col_str(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    b.column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_are_point_in_time_with_time_splits_and_oracles() {
    let (_tmp, dir) = sim_dir(400, 90);
    let set = feature_set();
    let ctx = dir.session().await.unwrap();
    let truth = dir.root().join(baton::sim::GROUND_TRUTH_DECISIONS_FILE);
    ctx.register_parquet(
        "ground_truth_decisions",
        truth.to_string_lossy().as_ref(),
        Default::default(),
    )
    .await
    .unwrap();
    let cutoffs = vec![START + 30 * DAY_US, START + 60 * DAY_US];

    let churn = build_dataset(&ctx, &set, &DatasetSpec::new(Task::Churn, cutoffs.clone()))
        .await
        .unwrap();
    assert!(churn.num_rows() > 100);
    let split = col_str(&churn, "split");
    assert!(split.iter().any(|s| s.as_deref() == Some("train")));
    assert!(split.iter().any(|s| s.as_deref() == Some("validation")));
    let labels = col_f64(&churn, "label");
    assert!(
        labels
            .iter()
            .all(|l| matches!(l, Some(x) if *x == 0.0 || *x == 1.0))
    );
    assert!(
        col_f64(&churn, "oracle_p_churn_30d")
            .iter()
            .any(Option::is_some)
    );
    // Every churn row was active before its cutoff.
    assert!(
        col_f64(&churn, "purchase_count")
            .iter()
            .all(|c| c.unwrap() >= 1.0)
    );

    let resp = build_dataset(
        &ctx,
        &set,
        &DatasetSpec::new(Task::Response, cutoffs.clone()),
    )
    .await
    .unwrap();
    assert!(resp.num_rows() > 50);
    assert!(col_f64(&resp, "oracle_p_click").iter().all(|p| p.is_some()));
    let delivered = resp
        .column_by_name("delivered_at")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let cut = resp
        .column_by_name("cutoff")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    for r in 0..resp.num_rows() {
        assert!(delivered.value(r) >= cut.value(r));
        assert!(delivered.value(r) < cut.value(r) + 23 * DAY_US);
    }
    let clicks: f64 = col_f64(&resp, "label").iter().flatten().sum();
    assert!(clicks > 0.0);

    let chan = build_dataset(&ctx, &set, &DatasetSpec::new(Task::Channel, cutoffs))
        .await
        .unwrap();
    assert!(chan.num_rows() > 100);
    assert!(col_str(&chan, "label").iter().all(|l| l.is_some()));
    assert!(
        col_f64(&chan, "oracle_affinity_web")
            .iter()
            .any(Option::is_some)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_ignore_events_before_the_cutoff() {
    // Customer a: purchases before and after the cutoff; b: only before; adding browsing
    // and non-qualifying events before the cutoff must not change any label.
    let set = feature_set();
    let cutoff = 50 * DAY_US;
    let e = |ts: i64, t: &str, ch: &str| Event {
        ts,
        event_type: t.into(),
        channel: Some(ch.into()),
        value: Some(10.0),
        ..Default::default()
    };
    let base = vec![
        ("a".to_string(), e(10 * DAY_US, "purchase", "web")),
        ("a".to_string(), e(55 * DAY_US, "purchase", "store")),
        ("a".to_string(), e(56 * DAY_US, "visit", "app")),
        ("b".to_string(), e(20 * DAY_US, "purchase", "web")),
        ("b".to_string(), e(60 * DAY_US, "visit", "web")),
    ];
    let mut more = base.clone();
    more.push(("a".into(), e(49 * DAY_US, "visit", "store")));
    more.push(("b".into(), e(cutoff - 1, "visit", "email")));
    more.push(("b".into(), e(cutoff - 1, "return", "email")));
    let mut labels = Vec::new();
    for events in [&base, &more] {
        let ctx = session(events, &[]);
        let mut row = Vec::new();
        for task in [Task::Churn, Task::Channel] {
            let mut spec = DatasetSpec::new(task, vec![cutoff]);
            spec.horizon_days = 20;
            let b = build_dataset(&ctx, &set, &spec).await.unwrap();
            row.push(format!(
                "{:?} {:?}",
                col_str(&b, "customer_id"),
                b.column_by_name("label").unwrap()
            ));
        }
        labels.push(row);
    }
    assert_eq!(labels[0], labels[1]);
    assert!(
        labels[0][0].contains("[\n  0.0,\n  1.0,\n]"),
        "{}",
        labels[0][0]
    );
    assert!(
        labels[0][1].contains("\"store\"") && labels[0][1].contains("\"web\""),
        "{}",
        labels[0][1]
    );
}

#[test]
fn spec_errors_name_the_feature() {
    let cases = [
        (
            "name = \"basket\"\naggregation = \"sum\"\nfield = \"amount\"",
            "features[0].field",
            "amount",
        ),
        (
            "name = \"basket\"\naggregation = \"median\"\nfield = \"value\"",
            "features[0].aggregation",
            "median",
        ),
        (
            "name = \"basket\"\naggregation = \"count\"\nwindow = \"30 days\"",
            "features[0].window",
            "30 days",
        ),
        (
            "name = \"basket\"\naggregation = \"count\"\nfilter = \"event_type = 'purchase' and (channel = 'web'\"",
            "features[0].filter",
            "position",
        ),
    ];
    for (body, key, part) in cases {
        let text = format!("[[features]]\n{body}\n");
        let msg = Config::from_toml(&text).unwrap_err().to_string();
        assert!(
            msg.contains(key) && msg.contains("`basket`") && msg.contains(part),
            "{msg}"
        );
    }
}

#[test]
fn online_state_is_small() {
    let set = feature_set();
    let mut s = OnlineState::new(set, None);
    for d in 0..120 {
        for t in ["visit", "purchase", "action_delivered", "add_to_cart"] {
            s.update(&Event {
                ts: d * DAY_US + 1,
                event_type: t.into(),
                channel: Some("web".into()),
                item_id: Some(format!("p{}", d % 17)),
                action_id: Some("win_back".into()),
                value: Some(3.0),
                ..Default::default()
            });
        }
    }
    // Bounded by the windows (≤ 91 day buckets per 90d feature), not by history length.
    let bytes = s.heap_bytes();
    assert!(bytes < 64 * 1024, "{bytes}");
}

/// Customer-value columns (BG/NBD + Gamma-Gamma fitted at each cutoff) are present, sane,
/// and use no purchase at or after the cutoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clv_columns_are_point_in_time() {
    let (tmp, dir) = sim_dir(400, 90);
    let set = feature_set();
    let cutoff = START + 60 * DAY_US;
    let mut spec = DatasetSpec::new(Task::Churn, vec![cutoff]);
    spec.clv_data_dir = Some(dir.root().to_path_buf());
    let before = build_dataset(&dir.session().await.unwrap(), &set, &spec)
        .await
        .unwrap();
    let p_alive = col_f64(&before, "clv_p_alive");
    let value = col_f64(&before, "clv_value_365d");
    assert!(p_alive.iter().flatten().count() > before.num_rows() / 2);
    assert!(p_alive.iter().flatten().all(|p| (0.0..=1.0).contains(p)));
    assert!(value.iter().flatten().all(|v| *v >= 0.0));

    // Big purchases at and after the cutoff for every customer change nothing at the cutoff.
    let ids = col_str(&before, "customer_id");
    let mut csv = String::from("customer_id,ts,event_type,channel,value\n");
    for id in ids.iter().flatten() {
        for day in [60, 61, 75] {
            let ts = chrono::DateTime::from_timestamp_micros(START + day * DAY_US).unwrap();
            csv.push_str(&format!("{id},{},purchase,web,500\n", ts.to_rfc3339()));
        }
    }
    let extra = tmp.path().join("late-purchases.csv");
    std::fs::write(&extra, csv).unwrap();
    let report =
        baton::store::ingest_file(&dir, baton::schema::TableKind::Events, &extra, 3).unwrap();
    assert_eq!(report.rejected, 0);
    let after = build_dataset(&dir.session().await.unwrap(), &set, &spec)
        .await
        .unwrap();
    // Equal up to floating-point summation order (DataFusion's group order varies between
    // runs); any use of the late purchases would move these by far more.
    let close = |a: &[Option<f64>], b: &[Option<f64>]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                (None, None) => true,
                _ => false,
            })
    };
    assert!(close(&col_f64(&after, "clv_p_alive"), &p_alive));
    assert!(close(&col_f64(&after, "clv_value_365d"), &value));
}

/// The customer-value columns of training sets are what the engine computes online: the
/// set's last-cutoff fit (its Parquet metadata) applied to [`OnlineState::rfm`], at the
/// cutoff for churn rows and at the delivery for response rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clv_columns_equal_the_online_computation() {
    let (tmp, dir) = sim_dir(400, 90);
    let set = feature_set();
    let cutoffs = vec![START + 30 * DAY_US, START + 60 * DAY_US];
    let history = baton::features::History::load_until(&dir.session().await.unwrap(), i64::MAX)
        .await
        .unwrap();
    for task in [Task::Churn, Task::Response] {
        let out = tmp.path().join(format!("{task:?}.parquet"));
        let spec = DatasetSpec::new(task, cutoffs.clone());
        baton::features::write_dataset(&dir, &set, &spec, &out)
            .await
            .unwrap();
        let (schema, batches) = read_parquet(&out).unwrap();
        let fit = baton::features::clv_inputs_of(&schema, &out)
            .unwrap()
            .expect("the set carries its last cutoff's fit");
        assert_eq!(fit.calibration_end, "2025-03-01");
        let b = concat_batches(&schema, &batches).unwrap();
        let ids = col_str(&b, "customer_id");
        let split = col_str(&b, "split");
        let at: Vec<i64> = match task {
            Task::Response => {
                let c = arrow::compute::cast(
                    b.column_by_name("delivered_at").unwrap(),
                    &arrow::datatypes::DataType::Int64,
                )
                .unwrap();
                c.as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            }
            _ => vec![cutoffs[1]; b.num_rows()],
        };
        let (alive, value) = (col_f64(&b, "clv_p_alive"), col_f64(&b, "clv_value_365d"));
        let mut checked = 0;
        for r in 0..b.num_rows() {
            if split[r].as_deref() != Some("validation") {
                continue;
            }
            let id = ids[r].as_deref().unwrap();
            let mut state = OnlineState::new(set.clone(), None);
            for e in history.events.get(id).into_iter().flatten() {
                if e.ts < at[r] {
                    state.update(e);
                }
            }
            let [a, v] = fit.values(state.rfm(at[r]).as_ref());
            let near = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                (x, y) => x == y,
            };
            assert!(
                near(a, alive[r]),
                "{task:?} row {r} ({id}): {a:?} vs {:?}",
                alive[r]
            );
            assert!(
                near(v, value[r]),
                "{task:?} row {r} ({id}): {v:?} vs {:?}",
                value[r]
            );
            checked += usize::from(a.is_some());
        }
        assert!(checked > 50, "{task:?}: {checked} rows with a value");
    }
}
