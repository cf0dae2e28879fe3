//! Point-in-time training sets: for each cutoff `c`, features are built as of `c` (events
//! strictly before it) and labels come only from events in `[c, c + horizon)`.
//!
//! | task | row | label |
//! |---|---|---|
//! | `churn` | customer active before `c` (a qualifying event — default `purchase` — before `c`) | 1.0 when no qualifying event in `[c, c + horizon)` |
//! | `response` | `action_delivered` event at `t` in `[c, c + horizon − window)`; features as of `c` | 1.0 when an `action_clicked` (or `action_converted`) of the same customer and action (same `decision_id` when both have one) falls in `[t, t + window)` |
//! | `channel` | customer with an engagement event (visit, app_open, action_clicked, …) with a channel in the horizon | the channel of the first one (ties: smallest name) |
//!
//! Response rows use the features at the delivery time itself (events strictly before
//! it), computed by replaying each customer's events through the online path: what the
//! engine sees when it decides, so time-sensitive features (cart abandoned an hour ago,
//! deliveries this week) are as fresh in training as in serving. The customer-value
//! columns are those fitted at the cutoff. Every label's window ends inside the horizon. Units whose customer has no feature row at `c`
//! (created after `c`, no event before it) are left out.
//!
//! Columns: `customer_id`, `cutoff`, `split` (`train`, or `validation` for the last cutoff),
//! the task's unit columns (response: `event_id`, `delivered_at`, `action_id`, `channel`,
//! `action_kind`, `decision_id`), `label`, `oracle_*` columns where the data directory holds
//! simulator ground truth (churn: `ground_truth.parquet` rows at that cutoff; response:
//! `ground_truth_decisions.parquet` by `decision_id`; channel: the hidden channel
//! affinities), then the feature columns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{count, first_value, max, min};
use datafusion::logical_expr::{ExprFunctionExt, col, lit, when};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::batch::{build_features, ts_lit};
use super::online::OnlineState;
use super::predicate::EventField;
use super::spec::FeatureSet;
use super::{DAY_US, day_of};
use crate::clv::{CLV_COLUMNS, ClvInputs, Rfm};
use crate::error::{Error, Result};
use crate::schema::ts_type;
use crate::sim::GROUND_TRUTH_DECISIONS_FILE;
use crate::store::{DataDir, ParquetSink};

/// What a training set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Churn,
    Response,
    Channel,
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "churn" => Ok(Task::Churn),
            "response" => Ok(Task::Response),
            "channel" => Ok(Task::Channel),
            _ => Err(Error::Invalid(format!(
                "unknown task `{s}` (churn, response, channel)"
            ))),
        }
    }
}

/// Which response counts as a positive label of the response task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseLabel {
    Click,
    Conversion,
}

/// A training-set definition.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub task: Task,
    /// Cutoffs (µs); sorted and deduplicated on use. The last is the validation split.
    pub cutoffs: Vec<i64>,
    /// Label horizon in days. Default 30.
    pub horizon_days: u32,
    /// Response window after a delivery, in days (response task). Default 7.
    pub response_window_days: u32,
    /// Click (default) or conversion.
    pub response_label: ResponseLabel,
    /// Event types that count as activity (churn task). Default `purchase`.
    pub churn_activity: Vec<String>,
    /// Event types that count as engagement (channel task).
    pub engagement: Vec<String>,
    /// Data directory whose purchase events feed the customer-value columns
    /// `clv_p_alive` and `clv_value_365d`: at each cutoff, BG/NBD + Gamma-Gamma are fitted
    /// on purchases of the days before the cutoff's day only (no leakage) and every
    /// customer is scored. `None` (the default of [`DatasetSpec::new`]) leaves them out;
    /// [`write_dataset`] sets it.
    pub clv_data_dir: Option<std::path::PathBuf>,
}

impl DatasetSpec {
    /// A spec with the defaults above.
    pub fn new(task: Task, cutoffs: Vec<i64>) -> Self {
        Self {
            task,
            cutoffs,
            horizon_days: 30,
            response_window_days: 7,
            response_label: ResponseLabel::Click,
            churn_activity: vec!["purchase".into()],
            engagement: [
                "visit",
                "app_open",
                "action_opened",
                "action_clicked",
                "purchase",
                "support_contact",
            ]
            .map(String::from)
            .to_vec(),
            clv_data_dir: None,
        }
    }
}

/// Cutoffs every `every_days` from the first event's day + `every_days`, while
/// `cutoff + horizon` stays within the data.
pub async fn cutoffs_every(
    ctx: &SessionContext,
    every_days: u32,
    horizon_days: u32,
) -> Result<Vec<i64>> {
    let b = ctx
        .table("events")
        .await?
        .aggregate(
            vec![],
            vec![min(col("ts")).alias("lo"), max(col("ts")).alias("hi")],
        )?
        .collect()
        .await?;
    let get = |name: &str| -> Option<i64> {
        let a = cast(b.first()?.column_by_name(name)?, &DataType::Int64).ok()?;
        let a = a.as_primitive::<arrow::datatypes::Int64Type>();
        a.is_valid(0).then(|| a.value(0))
    };
    let (Some(lo), Some(hi)) = (get("lo"), get("hi")) else {
        return Err(Error::Data("no events: cannot place cutoffs".into()));
    };
    let mut out = Vec::new();
    let mut c = (day_of(lo) + i64::from(every_days)) * DAY_US;
    while c + i64::from(horizon_days) * DAY_US <= hi + 1 {
        out.push(c);
        c += i64::from(every_days) * DAY_US;
    }
    if out.is_empty() {
        return Err(Error::Data(format!(
            "the data spans too few days for a cutoff every {every_days}d with a {horizon_days}d horizon"
        )));
    }
    Ok(out)
}

/// Collects a DataFrame into one batch, with text columns as Utf8.
async fn collect_one(df: DataFrame) -> Result<RecordBatch> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let b = concat_batches(&schema, &batches)?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                Field::new(f.name(), DataType::Utf8, f.is_nullable())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let cols = b
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

fn f64_of(e: datafusion::logical_expr::Expr) -> datafusion::logical_expr::Expr {
    datafusion::logical_expr::cast(e, DataType::Float64)
}

/// The units (rows) of one cutoff: `customer_id` first, then unit columns, `label`,
/// `oracle_*`.
async fn units(
    ctx: &SessionContext,
    set: &FeatureSet,
    spec: &DatasetSpec,
    c: i64,
) -> Result<RecordBatch> {
    let h = c + i64::from(spec.horizon_days) * DAY_US;
    let events = ctx.table("events").await?;
    let df = match spec.task {
        Task::Churn => {
            let act: Vec<_> = spec
                .churn_activity
                .iter()
                .map(|t| lit(t.as_str()))
                .collect();
            let mut df = events
                .filter(
                    col("event_type")
                        .in_list(act, false)
                        .and(col("ts").lt(ts_lit(h))),
                )?
                .aggregate(
                    vec![col("customer_id")],
                    vec![
                        count(lit(1i64))
                            .filter(col("ts").lt(ts_lit(c)))
                            .build()?
                            .alias("before"),
                        count(lit(1i64))
                            .filter(col("ts").gt_eq(ts_lit(c)))
                            .build()?
                            .alias("during"),
                    ],
                )?
                .filter(col("before").gt(lit(0i64)))?
                .select(vec![
                    col("customer_id"),
                    when(col("during").eq(lit(0i64)), lit(1.0))
                        .otherwise(lit(0.0))?
                        .alias("label"),
                ])?;
            if ctx.table_exist("ground_truth")? {
                let gt = ctx
                    .table("ground_truth")
                    .await?
                    .filter(col("cutoff").eq(ts_lit(c)))?
                    .select(vec![
                        col("customer_id").alias("g_id"),
                        col("p_churn_30d").alias("oracle_p_churn_30d"),
                        // A churned customer makes no more events, so the true
                        // probability of no purchase in the horizon is 1 (the truth
                        // file leaves it null for customers not alive at the cutoff).
                        when(col("alive_at_cutoff"), col("p_no_purchase_30d"))
                            .otherwise(lit(1.0))?
                            .alias("oracle_p_no_purchase_30d"),
                        f64_of(col("churned_within_30d")).alias("oracle_churned_within_30d"),
                        f64_of(col("no_purchase_within_30d"))
                            .alias("oracle_no_purchase_within_30d"),
                    ])?;
                df = df
                    .join(gt, JoinType::Left, &["customer_id"], &["g_id"], None)?
                    .drop_columns(&["g_id"])?;
            }
            df.sort(vec![col("customer_id").sort(true, false)])?
        }
        Task::Response => {
            let w = i64::from(spec.response_window_days) * DAY_US;
            if w >= h - c {
                return Err(Error::Invalid(format!(
                    "the response window ({}d) must be shorter than the horizon ({}d)",
                    spec.response_window_days, spec.horizon_days
                )));
            }
            let resp = match spec.response_label {
                ResponseLabel::Click => "action_clicked",
                ResponseLabel::Conversion => "action_converted",
            };
            let deliveries = events
                .clone()
                .filter(
                    col("event_type")
                        .eq(lit("action_delivered"))
                        .and(col("action_id").is_not_null())
                        .and(col("ts").gt_eq(ts_lit(c)))
                        .and(col("ts").lt(ts_lit(h - w))),
                )?
                .select(vec![
                    col("customer_id"),
                    col("event_id"),
                    col("ts").alias("delivered_at"),
                    col("action_id"),
                    col("channel"),
                    EventField::ActionKind
                        .df(&set.action_kinds)
                        .alias("action_kind"),
                    col("decision_id"),
                    datafusion::logical_expr::cast(col("ts"), DataType::Int64).alias("d_us"),
                ])?;
            let responses = events
                .filter(
                    col("event_type")
                        .eq(lit(resp))
                        .and(col("ts").gt_eq(ts_lit(c)))
                        .and(col("ts").lt(ts_lit(h))),
                )?
                .select(vec![
                    col("customer_id").alias("r_cid"),
                    col("action_id").alias("r_aid"),
                    col("decision_id").alias("r_did"),
                    datafusion::logical_expr::cast(col("ts"), DataType::Int64).alias("r_us"),
                ])?;
            let on = col("r_us")
                .gt_eq(col("d_us"))
                .and(col("r_us").lt(col("d_us") + lit(w)))
                .and(
                    col("decision_id")
                        .is_null()
                        .or(col("r_did").is_null())
                        .or(col("decision_id").eq(col("r_did"))),
                );
            let keys = [
                "customer_id",
                "event_id",
                "delivered_at",
                "action_id",
                "channel",
                "action_kind",
                "decision_id",
            ];
            let mut df = deliveries
                .join(
                    responses,
                    JoinType::Left,
                    &["customer_id", "action_id"],
                    &["r_cid", "r_aid"],
                    Some(on),
                )?
                .aggregate(
                    keys.iter().map(|k| col(*k)).collect(),
                    vec![count(col("r_us")).alias("hits")],
                )?
                .select(
                    keys.iter()
                        .map(|k| col(*k))
                        .chain([when(col("hits").gt(lit(0i64)), lit(1.0))
                            .otherwise(lit(0.0))?
                            .alias("label")])
                        .collect::<Vec<_>>(),
                )?;
            if ctx.table_exist("ground_truth_decisions")? {
                let gt = ctx.table("ground_truth_decisions").await?.select(vec![
                    col("decision_id").alias("gd_id"),
                    col("p_open").alias("oracle_p_open"),
                    col("p_click").alias("oracle_p_click"),
                    col("p_convert").alias("oracle_p_convert"),
                ])?;
                df = df
                    .join(gt, JoinType::Left, &["decision_id"], &["gd_id"], None)?
                    .drop_columns(&["gd_id"])?;
            }
            df.sort(vec![
                col("customer_id").sort(true, false),
                col("delivered_at").sort(true, false),
                col("event_id").sort(true, false),
            ])?
        }
        Task::Channel => {
            let eng: Vec<_> = spec.engagement.iter().map(|t| lit(t.as_str())).collect();
            let mut df = events
                .filter(
                    col("event_type")
                        .in_list(eng, false)
                        .and(col("channel").is_not_null())
                        .and(col("ts").gt_eq(ts_lit(c)))
                        .and(col("ts").lt(ts_lit(h))),
                )?
                .aggregate(
                    vec![col("customer_id")],
                    vec![
                        first_value(
                            col("channel"),
                            vec![
                                col("ts").sort(true, false),
                                col("channel").sort(true, false),
                            ],
                        )
                        .alias("label"),
                    ],
                )?;
            if ctx.table_exist("ground_truth")? {
                let gt = ctx.table("ground_truth").await?.aggregate(
                    vec![col("customer_id").alias("g_id")],
                    ["web", "app", "store"]
                        .iter()
                        .map(|c| {
                            max(col(format!("affinity_{c}"))).alias(format!("oracle_affinity_{c}"))
                        })
                        .collect(),
                )?;
                df = df
                    .join(gt, JoinType::Left, &["customer_id"], &["g_id"], None)?
                    .drop_columns(&["g_id"])?;
            }
            df.sort(vec![col("customer_id").sort(true, false)])?
        }
    };
    collect_one(df).await
}

/// Joins units with the feature rows of their customer (units without one are left out).
fn assemble(
    features: &RecordBatch,
    units: &RecordBatch,
    cutoff: i64,
    split: &str,
) -> Result<RecordBatch> {
    let fid = features.column(0).as_string::<i32>();
    let index: HashMap<&str, u32> = fid
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s?, i as u32)))
        .collect();
    let uid = units.column(0).as_string::<i32>();
    let (mut keep, mut rows) = (Vec::new(), Vec::new());
    for (u, id) in uid.iter().enumerate() {
        if let Some(&r) = id.and_then(|id| index.get(id)) {
            keep.push(u as u32);
            rows.push(r);
        }
    }
    let (keep, rows) = (UInt32Array::from(keep), UInt32Array::from(rows));
    let n = keep.len();
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("cutoff", ts_type(), false),
        Field::new("split", DataType::Utf8, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        take(units.column(0), &keep, None)?,
        Arc::new(TimestampMicrosecondArray::from(vec![cutoff; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![split; n])),
    ];
    for (f, c) in units.schema().fields().iter().zip(units.columns()).skip(1) {
        fields.push(f.as_ref().clone().with_nullable(true));
        cols.push(take(c, &keep, None)?);
    }
    for (f, c) in features
        .schema()
        .fields()
        .iter()
        .zip(features.columns())
        .skip(2)
    {
        fields.push(f.as_ref().clone());
        cols.push(take(c, &rows, None)?);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Appends `clv_p_alive` and `clv_value_365d` to a feature batch (column 0: customer_id):
/// customer value fitted on the purchases of the days strictly before the cutoff's UTC day,
/// through [`ClvInputs::values`] (as the engine computes them). Customers without a
/// purchase then, or a fit that the data cannot support (e.g. no repeat buyers yet), get
/// nulls; the reason is logged. Returns the fit too (`None` when there is none).
async fn with_clv(
    features: RecordBatch,
    data_dir: &Path,
    cutoff: i64,
) -> Result<(RecordBatch, Option<ClvInputs>)> {
    use crate::clv::{ClvFitter, RfmOptions, TransactionSource, Unit, day_date, rfm_summary};
    let n = features.num_rows();
    let mut p_alive: Vec<Option<f64>> = vec![None; n];
    let mut value: Vec<Option<f64>> = vec![None; n];
    let source = TransactionSource::Events {
        data_dir: data_dir.to_path_buf(),
    };
    let calibration_end = day_date(day_of(cutoff) - 1)?;
    let opts = RfmOptions {
        unit: Unit::Days,
        calibration_end: Some(calibration_end),
        holdout_end: None,
    };
    let fitted = match rfm_summary(&source, &opts).await {
        Ok(rfm) => ClvFitter::default().fit(&rfm, source).map(|m| (rfm, m)),
        Err(e) => Err(e),
    };
    let fit = match fitted {
        Ok((rfm, model)) => {
            let fit = ClvInputs {
                calibration_end: calibration_end.to_string(),
                bgnbd: model.bgnbd.params,
                gamma_gamma: model.gamma_gamma.as_ref().map(|g| g.params),
            };
            let by_id: HashMap<&str, usize> = rfm
                .customer_id
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i))
                .collect();
            let fid = features.column(0).as_string::<i32>();
            for (r, id) in fid.iter().enumerate() {
                if let Some(&i) = id.and_then(|id| by_id.get(id)) {
                    let one = Rfm {
                        frequency: rfm.frequency[i],
                        recency: rfm.recency[i],
                        t: rfm.t[i],
                        monetary: rfm.monetary[i],
                    };
                    [p_alive[r], value[r]] = fit.values(Some(&one));
                }
            }
            Some(fit)
        }
        Err(e) => {
            tracing::warn!(cutoff, error = %e, "no customer-value columns at this cutoff");
            None
        }
    };
    let mut fields: Vec<Field> = features
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols = features.columns().to_vec();
    fields.push(Field::new("clv_p_alive", DataType::Float64, true));
    fields.push(Field::new("clv_value_365d", DataType::Float64, true));
    cols.push(Arc::new(arrow::array::Float64Array::from(p_alive)));
    cols.push(Arc::new(arrow::array::Float64Array::from(value)));
    Ok((
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?,
        fit,
    ))
}

/// Registers `ground_truth_decisions` when the data directory has it.
async fn register_truth(dir: &DataDir, ctx: &SessionContext) -> Result<()> {
    let p = dir.root().join(GROUND_TRUTH_DECISIONS_FILE);
    if p.exists() && !ctx.table_exist("ground_truth_decisions")? {
        ctx.register_parquet(
            "ground_truth_decisions",
            p.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
    }
    Ok(())
}

/// Events by customer in time order, and profiles, to replay through [`OnlineState`].
pub struct History {
    pub events: HashMap<String, Vec<super::predicate::Event>>,
    pub profiles: HashMap<String, super::row::Profile>,
}

type Replay = History;

impl History {
    /// The `events` (strictly before `until`) and `customers` tables of `ctx`.
    pub async fn load_until(ctx: &SessionContext, until: i64) -> Result<Self> {
        Self::load(ctx, None, until).await
    }

    async fn load(ctx: &SessionContext, set: Option<&FeatureSet>, until: i64) -> Result<Self> {
        let df = ctx
            .table("events")
            .await?
            .filter(col("ts").lt(ts_lit(until)))?
            .sort(vec![
                col("customer_id").sort(true, false),
                col("ts").sort(true, false),
            ])?;
        let mut events: HashMap<String, Vec<super::predicate::Event>> = HashMap::new();
        for b in df.collect().await? {
            for (id, e) in super::records::events_from_batch(&b)? {
                events.entry(id).or_default().push(e);
            }
        }
        for v in events.values_mut() {
            v.sort_by_key(|e| e.ts);
        }
        let mut profiles = HashMap::new();
        if ctx.table_exist("customers")? {
            for b in ctx.table("customers").await?.collect().await? {
                profiles.extend(super::records::profiles_from_batch(&b)?);
            }
        }
        let _ = set;
        Ok(Self { events, profiles })
    }

    /// Replaces the feature columns of assembled response rows (sorted by customer, then
    /// delivery time) with the features at each row's `delivered_at`: events strictly
    /// before the delivery. The customer-value columns, when the rows have them, are the
    /// cutoff's fit `clv` applied to the RFM at delivery (missing without a fit).
    fn at_delivery(
        &self,
        part: RecordBatch,
        set: &FeatureSet,
        clv: Option<&ClvInputs>,
    ) -> Result<RecordBatch> {
        let n = part.num_rows();
        let ids = part.column(0).as_string::<i32>();
        let at = cast(
            part.column_by_name("delivered_at")
                .ok_or_else(|| Error::Data("response rows lack delivered_at".into()))?,
            &DataType::Int64,
        )?;
        let at = at.as_primitive::<arrow::datatypes::Int64Type>();
        let width = set.columns().len();
        let mut values: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(n); width + 2];
        let set_arc = Arc::new(set.clone());
        let mut current: Option<(&str, OnlineState, usize)> = None;
        let empty = Vec::new();
        for r in 0..n {
            let id = ids.value(r);
            let now = at.value(r);
            let evs = self.events.get(id).unwrap_or(&empty);
            let restart = match &current {
                Some((cid, state, _)) => *cid != id || state.latest_ts().is_some_and(|t| t >= now),
                None => true,
            };
            if restart {
                current = Some((
                    id,
                    OnlineState::new(Arc::clone(&set_arc), self.profiles.get(id).cloned()),
                    0,
                ));
            }
            if let Some((_, state, next)) = current.as_mut() {
                while *next < evs.len() && evs[*next].ts < now {
                    state.update(&evs[*next]);
                    *next += 1;
                }
                for (k, v) in state.vector(now).into_iter().enumerate() {
                    values[k].push(v);
                }
                let cv = clv.map_or([None, None], |f| f.values(state.rfm(now).as_ref()));
                for (k, v) in cv.into_iter().enumerate() {
                    values[width + k].push(v);
                }
            }
        }
        let schema = part.schema();
        let mut cols = part.columns().to_vec();
        let names = set.columns().iter().map(String::as_str).chain(CLV_COLUMNS);
        for (k, name) in names.enumerate() {
            if let Ok(i) = schema.index_of(name) {
                cols[i] = Arc::new(arrow::array::Float64Array::from(std::mem::take(
                    &mut values[k],
                )));
            }
        }
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

/// Builds a training set from the tables of `ctx` (see the module docs).
pub async fn build_dataset(
    ctx: &SessionContext,
    set: &FeatureSet,
    spec: &DatasetSpec,
) -> Result<RecordBatch> {
    let mut cutoffs = spec.cutoffs.clone();
    cutoffs.sort_unstable();
    cutoffs.dedup();
    let Some(&last) = cutoffs.last() else {
        return Err(Error::Invalid(
            "a training set needs at least one cutoff".into(),
        ));
    };
    // Response rows read their features at the delivery time itself, through the online
    // path (the same definitions, parity-tested against the batch path), which is what the
    // engine sees when it decides. That needs the events of the customers, in time order.
    let replay = if spec.task == Task::Response {
        Some(Replay::load(ctx, Some(set), last + i64::from(spec.horizon_days) * DAY_US).await?)
    } else {
        None
    };
    let mut parts = Vec::with_capacity(cutoffs.len());
    let mut fit = None;
    for &c in &cutoffs {
        let mut features = build_features(ctx, set, c).await?;
        if let Some(dir) = &spec.clv_data_dir {
            (features, fit) = with_clv(features, dir, c).await?;
        }
        let u = units(ctx, set, spec, c).await?;
        let split = if c == last { "validation" } else { "train" };
        let mut part = assemble(&features, &u, c, split)?;
        if let Some(r) = &replay {
            part = r.at_delivery(part, set, fit.as_ref())?;
        }
        parts.push(part);
    }
    let schema = parts[0].schema();
    let batch = concat_batches(&schema, &parts)?;
    // the last cutoff's fit travels with the set, for the models trained on it to serve
    match fit {
        Some(f) => {
            let mut meta = schema.metadata().clone();
            meta.insert(
                CLV_INPUTS_METADATA.to_string(),
                serde_json::to_string(&f).map_err(|e| Error::Data(e.to_string()))?,
            );
            let schema = Arc::new(schema.as_ref().clone().with_metadata(meta));
            Ok(batch.with_schema(schema)?)
        }
        None => Ok(batch),
    }
}

/// The key of a training set's Parquet metadata that holds its last cutoff's
/// customer-value fit ([`ClvInputs`], JSON); absent when the set has none.
pub const CLV_INPUTS_METADATA: &str = "baton.clv_inputs";

/// The customer-value fit a training set carries ([`CLV_INPUTS_METADATA`]); `None` when
/// it has none, an error naming the file when it is not a fit.
pub fn clv_inputs_of(schema: &Schema, path: &Path) -> Result<Option<ClvInputs>> {
    schema
        .metadata()
        .get(CLV_INPUTS_METADATA)
        .map(|s| {
            serde_json::from_str(s).map_err(|e| Error::Contract {
                path: path.to_path_buf(),
                message: format!(
                    "metadata `{CLV_INPUTS_METADATA}` is not a customer-value fit: {e}"
                ),
            })
        })
        .transpose()
}

/// Builds a training set from data directory `dir` and writes it to `out` (Parquet,
/// atomically). Returns the number of rows.
pub async fn write_dataset(
    dir: &DataDir,
    set: &FeatureSet,
    spec: &DatasetSpec,
    out: &Path,
) -> Result<u64> {
    let ctx = dir.session().await?;
    register_truth(dir, &ctx).await?;
    let mut spec = spec.clone();
    spec.clv_data_dir
        .get_or_insert_with(|| dir.root().to_path_buf());
    let batch = build_dataset(&ctx, set, &spec).await?;
    let mut sink = ParquetSink::create(out, batch.schema())?;
    sink.write(&batch)?;
    sink.finish()
}
