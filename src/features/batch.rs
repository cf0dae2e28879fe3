//! The batch feature builder: compiles a [`FeatureSet`] into one DataFusion plan over the
//! `events` table — `WHERE ts < T GROUP BY customer_id` with one FILTERed aggregate per
//! feature (filters translated from the expression AST) — full-joined with `customers`,
//! executed in parallel by DataFusion; the aggregated rows are then finished by the code
//! shared with the online path (profile encodings, ratios, `expr` features).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::expr_fn::{avg, count, last_value, max, min, sum};
use datafusion::logical_expr::{Expr as DfExpr, ExprFunctionExt, col, lit, when};
use datafusion::prelude::SessionContext;

use super::predicate::to_datafusion;
use super::row::day_of;
use super::spec::{Agg, Def, FeatureSet, Window};
use super::{ATTRIBUTE_COLUMNS, DAY_US};
use crate::error::Result;
use crate::schema::{CONSENT_COLUMNS, ts_type};
use crate::store::{DataDir, ParquetSink};

const EVENT_COLUMNS: [&str; 8] = [
    "customer_id",
    "ts",
    "event_type",
    "channel",
    "action_id",
    "decision_id",
    "item_id",
    "value",
];

pub(crate) fn ts_lit(t: i64) -> DfExpr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(t),
        Some("UTC".into()),
    ))
}

/// The schema of a feature table: `customer_id`, `as_of`, then the feature columns.
pub fn features_schema(set: &FeatureSet) -> SchemaRef {
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("as_of", ts_type(), false),
    ];
    fields.extend(
        set.columns()
            .iter()
            .map(|c| Field::new(c, DataType::Float64, true)),
    );
    Arc::new(Schema::new(fields))
}

/// The aggregate expression of feature `i`.
fn aggregate(set: &FeatureSet, i: usize, as_of: i64) -> Result<Option<DfExpr>> {
    let Def::Agg {
        agg,
        field,
        filter,
        window,
    } = &set.defs[i]
    else {
        return Ok(None);
    };
    let kinds = &set.action_kinds;
    let mut conds = Vec::new();
    if let Some(f) = filter {
        conds.push(col(format!("f{f}")));
    }
    if let Window::Days(_) = window {
        conds.push(col("ts").gt_eq(ts_lit(window.start_day(day_of(as_of)) * DAY_US)));
    }
    let x = field.map(|f| f.df(kinds));
    if let Some(x) = &x {
        conds.push(x.clone().is_not_null());
    }
    let cond = conds.into_iter().reduce(DfExpr::and);
    let x = || x.clone().unwrap_or_else(|| lit(1i64));
    let e = match agg {
        Agg::Count => count(x()),
        Agg::Sum => sum(x()),
        Agg::Avg => avg(x()),
        Agg::Min => min(x()),
        Agg::Max => max(x()),
        Agg::Last => last_value(
            x(),
            vec![col("ts").sort(true, false), x().sort(true, false)],
        ),
        Agg::DistinctCount => count_udaf().call(vec![x()]).distinct().build()?,
        Agg::DaysSinceFirst => min(col("ts")),
        Agg::DaysSinceLast => max(col("ts")),
    };
    let e = match (cond, agg) {
        // DataFusion ignores FILTER on DISTINCT aggregates: count(DISTINCT CASE WHEN …).
        (Some(c), Agg::DistinctCount) => count_udaf()
            .call(vec![when(c, x()).otherwise(lit(ScalarValue::Null))?])
            .distinct()
            .build()?,
        // …and mishandles FILTER on ordered `last_value`: order by the matching rows' ts,
        // non-matching rows (null ts) sort first, so the last row is the latest match.
        (Some(c), Agg::Last) => {
            let only = |v: DfExpr| when(c.clone(), v).otherwise(lit(ScalarValue::Null));
            let (xm, tm) = (only(x())?, only(col("ts"))?);
            last_value(xm.clone(), vec![tm.sort(true, true), xm.sort(true, true)])
        }
        (Some(c), _) => e.filter(c).build()?,
        (None, _) => e,
    };
    Ok(Some(e.alias(format!("a{i}"))))
}

/// Builds the feature table as of `as_of` (µs) from the `events` (and, when registered,
/// `customers`) tables of `ctx`. See the module docs of [`crate::features`] for the rows.
pub async fn build_features(
    ctx: &SessionContext,
    set: &FeatureSet,
    as_of: i64,
) -> Result<RecordBatch> {
    let mut aggs = Vec::new();
    for i in 0..set.defs.len() {
        if let Some(e) = aggregate(set, i, as_of)? {
            aggs.push(e);
        }
    }
    // Each distinct filter is evaluated once per row, as a boolean column `f<k>`.
    let mut cols: Vec<DfExpr> = EVENT_COLUMNS.iter().map(|c| col(*c)).collect();
    for (k, f) in set.filters.iter().enumerate() {
        cols.push(to_datafusion(f, &set.action_kinds).alias(format!("f{k}")));
    }
    let events = ctx
        .table("events")
        .await?
        .filter(col("ts").lt(ts_lit(as_of)))?
        .select(cols)?
        .aggregate(vec![col("customer_id")], aggs)?;
    let has_customers = ctx.table_exist("customers")?;
    let df = if has_customers {
        let mut cols = vec![col("customer_id").alias("c_id"), col("created_at")];
        cols.extend(ATTRIBUTE_COLUMNS.iter().map(|c| col(*c)));
        cols.extend(CONSENT_COLUMNS.iter().map(|(c, _)| col(*c)));
        let customers = ctx.table("customers").await?.select(cols)?;
        events
            .join(customers, JoinType::Full, &["customer_id"], &["c_id"], None)?
            .filter(
                col("customer_id")
                    .is_not_null()
                    .or(col("created_at").lt(ts_lit(as_of))),
            )?
            .with_column(
                "id",
                when(col("customer_id").is_null(), col("c_id")).otherwise(col("customer_id"))?,
            )?
    } else {
        events.with_column("id", col("customer_id"))?
    };
    let batches = df
        .sort(vec![col("id").sort(true, false)])?
        .collect()
        .await?;
    let schema = features_schema(set);
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        out.push(finish_batch(set, b, has_customers, as_of, &schema)?);
    }
    Ok(arrow::compute::concat_batches(&schema, &out)?)
}

fn as_type(b: &RecordBatch, name: &str, t: &DataType) -> Result<ArrayRef> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| crate::error::Error::Data(format!("feature plan lost column `{name}`")))?;
    Ok(cast(c, t)?)
}

/// Turns one batch of aggregated rows into feature rows.
fn finish_batch(
    set: &FeatureSet,
    b: &RecordBatch,
    has_customers: bool,
    as_of: i64,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let n = b.num_rows();
    let today = day_of(as_of);
    let mut aggs: Vec<(usize, Agg, ArrayRef)> = Vec::new();
    for (i, d) in set.defs.iter().enumerate() {
        if let Def::Agg { agg, .. } = d {
            let t = match agg {
                Agg::Count | Agg::DistinctCount | Agg::DaysSinceFirst | Agg::DaysSinceLast => {
                    DataType::Int64
                }
                _ => DataType::Float64,
            };
            aggs.push((i, *agg, as_type(b, &format!("a{i}"), &t)?));
        }
    }
    let ids = as_type(b, "id", &DataType::Utf8)?;
    let ids = ids.as_string::<i32>();
    let profile = if has_customers {
        let known = b.column_by_name("c_id").map(|c| c.logical_nulls());
        let created = as_type(b, "created_at", &DataType::Int64)?;
        let attrs = ATTRIBUTE_COLUMNS
            .iter()
            .map(|c| as_type(b, c, &DataType::Utf8))
            .collect::<Result<Vec<_>>>()?;
        let consents = CONSENT_COLUMNS
            .iter()
            .map(|(c, _)| as_type(b, c, &DataType::Boolean))
            .collect::<Result<Vec<_>>>()?;
        Some((known.flatten(), created, attrs, consents))
    } else {
        None
    };
    let width = set.columns.len();
    let mut builders: Vec<Float64Builder> = (0..width)
        .map(|_| Float64Builder::with_capacity(n))
        .collect();
    let mut row = vec![None; width];
    for r in 0..n {
        row.iter_mut().for_each(|x| *x = None);
        for (i, agg, a) in &aggs {
            let at = set.offsets[*i];
            row[at] = match agg {
                Agg::Count | Agg::DistinctCount => {
                    Some(a.as_primitive::<Int64Type>().value(r) as f64)
                }
                Agg::DaysSinceFirst | Agg::DaysSinceLast => a
                    .is_valid(r)
                    .then(|| (today - day_of(a.as_primitive::<Int64Type>().value(r))) as f64),
                Agg::Sum => Some(if a.is_valid(r) {
                    a.as_primitive::<Float64Type>().value(r)
                } else {
                    0.0
                }),
                _ => a
                    .is_valid(r)
                    .then(|| a.as_primitive::<Float64Type>().value(r)),
            };
        }
        match &profile {
            Some((known, created, attrs, consents)) => {
                let known = known.as_ref().is_none_or(|k| k.is_valid(r));
                let created = created.as_primitive::<Int64Type>();
                let created = created.is_valid(r).then(|| created.value(r));
                fn str_at(a: &ArrayRef, r: usize) -> Option<&str> {
                    let s = a.as_string::<i32>();
                    s.is_valid(r).then(|| s.value(r))
                }
                let attrs = [
                    str_at(&attrs[0], r),
                    str_at(&attrs[1], r),
                    str_at(&attrs[2], r),
                ];
                let consents: [Option<bool>; 5] = std::array::from_fn(|k| {
                    let c = consents[k].as_boolean();
                    c.is_valid(r).then(|| c.value(r))
                });
                set.fill_profile(created, attrs, consents, known, as_of, &mut row);
            }
            None => set.fill_profile(None, [None; 3], [None; 5], false, as_of, &mut row),
        }
        set.finish_derived(&mut row);
        for (bld, v) in builders.iter_mut().zip(&row) {
            bld.append_option(*v);
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|s| s.unwrap_or_default()),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![as_of; n]).with_timezone("UTC")),
    ];
    cols.extend(
        builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Builds the features of data directory `dir` as of `as_of` and writes them to `out`
/// (Parquet, atomically). Returns the number of rows.
pub async fn write_features(
    dir: &DataDir,
    set: &FeatureSet,
    as_of: i64,
    out: &Path,
) -> Result<u64> {
    let ctx = dir.session().await?;
    let batch = build_features(&ctx, set, as_of).await?;
    let mut sink = ParquetSink::create(out, batch.schema())?;
    sink.write(&batch)?;
    sink.finish()
}
