//! RFM summaries in DataFusion: per customer over a calibration period, `frequency` (distinct
//! purchase days minus one), `recency` (last minus first purchase day), `T` (calibration end
//! minus first purchase day), `monetary` (mean per-day spend over repeat purchase days, 0
//! without repeats), and optionally `holdout` (distinct purchase days after the calibration end
//! up to the holdout end). Times are in [`Unit`]s; all days are UTC calendar days, both period
//! ends inclusive.
//!
//! Input is either a data directory's `events` (event_type = 'purchase', `value` as amount) or
//! a CSV/Parquet transactions file with a column mapping. Several line items on one day are
//! one purchase (their amounts add up), lifetimes-style.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::DataDir;

/// The time unit of recency, T, horizons and α.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Days,
    #[default]
    Weeks,
}

impl Unit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            Unit::Days => 1.0,
            Unit::Weeks => 7.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Days => "days",
            Unit::Weeks => "weeks",
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Unit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "days" | "day" | "d" => Ok(Unit::Days),
            "weeks" | "week" | "w" => Ok(Unit::Weeks),
            _ => Err(Error::Invalid(format!(
                "unknown unit `{s}`: use days or weeks"
            ))),
        }
    }
}

/// Where purchases come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TransactionSource {
    /// `purchase` events of a data directory.
    Events { data_dir: PathBuf },
    /// A CSV or Parquet file (by extension). The date column may be a date, a timestamp, a
    /// string `to_timestamp` parses, or an integer day number.
    File {
        path: PathBuf,
        customer_col: String,
        date_col: String,
        amount_col: String,
    },
}

/// Calibration and holdout settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RfmOptions {
    pub unit: Unit,
    /// Last day (inclusive) of the calibration period. Default: the last purchase day.
    pub calibration_end: Option<NaiveDate>,
    /// Last day (inclusive) of the holdout. Default: the last purchase day when it is after
    /// the calibration end; no holdout otherwise.
    pub holdout_end: Option<NaiveDate>,
}

/// Per-customer RFM columns (sorted by customer id) and the periods they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmTable {
    pub customer_id: Vec<String>,
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub t: Vec<f64>,
    pub monetary: Vec<f64>,
    /// Purchase days in the holdout, if there is one.
    pub holdout: Option<Vec<f64>>,
    pub unit: Unit,
    /// First purchase day in the data.
    pub first_day: NaiveDate,
    pub calibration_end: NaiveDate,
    pub holdout_end: Option<NaiveDate>,
}

impl RfmTable {
    /// Holdout length in units (0 without a holdout).
    pub fn holdout_length(&self) -> f64 {
        self.holdout_end.map_or(0.0, |h| {
            (h - self.calibration_end).num_days() as f64 / self.unit.days()
        })
    }

    /// The table as Arrow (`customer_id`, `frequency`, `recency`, `T`, `monetary`[, `holdout`]).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let mut fields = vec![Field::new("customer_id", DataType::Utf8, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(self.customer_id.clone()))];
        let mut push = |name: &str, v: &[f64]| {
            fields.push(Field::new(name, DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from(v.to_vec())));
        };
        push("frequency", &self.frequency);
        push("recency", &self.recency);
        push("T", &self.t);
        push("monetary", &self.monetary);
        if let Some(h) = &self.holdout {
            push("holdout", h);
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
    }
}

const EPOCH_CE_DAYS: i64 = 719_163;

/// Days since 1970-01-01.
pub fn day_number(d: NaiveDate) -> i64 {
    i64::from(chrono::Datelike::num_days_from_ce(&d)) - EPOCH_CE_DAYS
}

/// The date of a day number (days since 1970-01-01).
pub fn day_date(n: i64) -> Result<NaiveDate> {
    i32::try_from(n + EPOCH_CE_DAYS)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| Error::Data(format!("day number {n} is out of range")))
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Registers the source's purchases as the view `tx(customer_id, day, amount)`.
async fn register_transactions(ctx: &SessionContext, source: &TransactionSource) -> Result<()> {
    let (table, cust, date, amount, filter) = match source {
        TransactionSource::Events { data_dir } => {
            DataDir::open(data_dir).register(ctx).await?;
            (
                "events",
                "customer_id",
                "ts",
                "value",
                " AND event_type = 'purchase'",
            )
        }
        TransactionSource::File {
            path,
            customer_col,
            date_col,
            amount_col,
        } => {
            let p = path.to_string_lossy();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            match ext.as_str() {
                "csv" => {
                    ctx.register_csv("src", p.as_ref(), CsvReadOptions::new())
                        .await?
                }
                "parquet" => {
                    ctx.register_parquet("src", p.as_ref(), ParquetReadOptions::default())
                        .await?
                }
                _ => {
                    return Err(Error::Contract {
                        path: path.clone(),
                        message: "transactions must be a .csv or .parquet file".into(),
                    });
                }
            }
            (
                "src",
                customer_col.as_str(),
                date_col.as_str(),
                amount_col.as_str(),
                "",
            )
        }
    };
    let schema = ctx.table(table).await?.schema().as_arrow().clone();
    let path = match source {
        TransactionSource::Events { data_dir } => data_dir.join("events"),
        TransactionSource::File { path, .. } => path.clone(),
    };
    let field_type = |col: &str| -> Result<DataType> {
        schema
            .field_with_name(col)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::Contract {
                    path: path.clone(),
                    message: format!("no column `{col}`; columns are: {}", names.join(", ")),
                }
            })
    };
    field_type(cust)?;
    let amount_type = field_type(amount)?;
    if !amount_type.is_numeric() {
        return Err(Error::Contract {
            path: path.clone(),
            message: format!("amount column `{amount}` is {amount_type}, not numeric"),
        });
    }
    let d = ident(date);
    let day = match field_type(date)? {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            format!("CAST(floor(CAST(to_unixtime({d}) AS DOUBLE) / 86400.0) AS BIGINT)")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            format!(
                "CAST(floor(CAST(to_unixtime(to_timestamp({d})) AS DOUBLE) / 86400.0) AS BIGINT)"
            )
        }
        t if t.is_integer() => format!("CAST({d} AS BIGINT)"),
        t if t.is_floating() => format!("CAST(floor({d}) AS BIGINT)"),
        t => {
            return Err(Error::Contract {
                path,
                message: format!(
                    "date column `{date}` has type {t}; expected a date, timestamp, string or day number"
                ),
            });
        }
    };
    let sql = format!(
        "SELECT CAST({c} AS VARCHAR) AS customer_id, {day} AS day, CAST({a} AS DOUBLE) AS amount \
         FROM {table} WHERE {c} IS NOT NULL AND {d} IS NOT NULL{filter}",
        c = ident(cust),
        a = ident(amount),
    );
    let df = ctx.sql(&sql).await?;
    ctx.register_table("tx", df.into_view())?;
    Ok(())
}

fn f64_column(batch: &RecordBatch, i: usize) -> Result<Float64Array> {
    let col = cast(batch.column(i), &DataType::Float64)?;
    Ok(col
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to f64")
        .clone())
}

/// Computes the RFM summary (and holdout counts) of a source; see the module docs.
pub async fn rfm_summary(source: &TransactionSource, opts: &RfmOptions) -> Result<RfmTable> {
    // One partition: the per-day sums and the mean spend then add a customer's amounts in
    // the same order every run (with several, partial sums meet in whichever order the
    // threads finish, and the last bits of `monetary` vary from run to run).
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    register_transactions(&ctx, source).await?;
    let bounds = ctx
        .sql("SELECT MIN(day), MAX(day) FROM tx")
        .await?
        .collect()
        .await?;
    let (lo, hi) = bounds
        .first()
        .filter(|b| b.num_rows() == 1 && b.column(0).is_valid(0))
        .map(|b| {
            let c0 = cast(b.column(0), &DataType::Int64).expect("int");
            let c1 = cast(b.column(1), &DataType::Int64).expect("int");
            let v = |c: &ArrayRef| {
                c.as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int")
                    .value(0)
            };
            (v(&c0), v(&c1))
        })
        .ok_or_else(|| Error::Data("no customers: the source has no purchases".into()))?;
    let cal = opts.calibration_end.map_or(hi, day_number);
    let hold = match (opts.holdout_end, opts.calibration_end) {
        (Some(h), _) => Some(day_number(h)),
        (None, Some(_)) if hi > cal => Some(hi),
        _ => None,
    };
    if let Some(h) = hold
        && h <= cal
    {
        return Err(Error::Invalid(format!(
            "holdout end {} must be after the calibration end {}",
            day_date(h)?,
            day_date(cal)?
        )));
    }
    if cal < lo {
        return Err(Error::Data(format!(
            "no customers: the calibration end {} is before the first purchase {}",
            day_date(cal)?,
            day_date(lo)?
        )));
    }
    let unit = opts.unit.days();
    let (hold_cte, hold_col, hold_join) = match hold {
        Some(h) => (
            format!(
                ", hold AS (SELECT customer_id, CAST(COUNT(DISTINCT day) AS DOUBLE) AS holdout FROM tx \
                 WHERE day > {cal} AND day <= {h} GROUP BY customer_id)"
            ),
            "COALESCE(h.holdout, 0.0)",
            "LEFT JOIN hold h ON s.customer_id = h.customer_id",
        ),
        None => (String::new(), "0.0", ""),
    };
    let sql = format!(
        "WITH daily AS (SELECT customer_id, day, SUM(amount) AS amount FROM tx WHERE day <= {cal} \
           GROUP BY customer_id, day), \
         span AS (SELECT customer_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) AS days \
           FROM daily GROUP BY customer_id), \
         rep AS (SELECT d.customer_id, AVG(d.amount) AS monetary FROM daily d JOIN span s \
           ON d.customer_id = s.customer_id AND d.day > s.first_day GROUP BY d.customer_id){hold_cte} \
         SELECT s.customer_id, CAST(s.days - 1 AS DOUBLE) AS frequency, \
           CAST(s.last_day - s.first_day AS DOUBLE) / {unit:?} AS recency, \
           CAST({cal} - s.first_day AS DOUBLE) / {unit:?} AS t, \
           COALESCE(r.monetary, 0.0) AS monetary, {hold_col} AS holdout \
         FROM span s LEFT JOIN rep r ON s.customer_id = r.customer_id {hold_join} \
         ORDER BY s.customer_id"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = RfmTable {
        customer_id: Vec::new(),
        frequency: Vec::new(),
        recency: Vec::new(),
        t: Vec::new(),
        monetary: Vec::new(),
        holdout: hold.map(|_| Vec::new()),
        unit: opts.unit,
        first_day: day_date(lo)?,
        calibration_end: day_date(cal)?,
        holdout_end: hold.map(day_date).transpose()?,
    };
    for b in &batches {
        let ids = cast(b.column(0), &DataType::Utf8)?;
        let ids = ids.as_any().downcast_ref::<StringArray>().expect("utf8");
        out.customer_id
            .extend(ids.iter().map(|s| s.unwrap_or_default().to_string()));
        out.frequency.extend(f64_column(b, 1)?.values());
        out.recency.extend(f64_column(b, 2)?.values());
        out.t.extend(f64_column(b, 3)?.values());
        out.monetary.extend(f64_column(b, 4)?.values());
        if let Some(h) = out.holdout.as_mut() {
            h.extend(f64_column(b, 5)?.values());
        }
    }
    if out.customer_id.is_empty() {
        return Err(Error::Data(
            "no customers with a purchase in the calibration period".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2017, 1, 2).unwrap();
        assert_eq!(day_number(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()), 0);
        assert_eq!(day_date(day_number(d)).unwrap(), d);
    }
}
