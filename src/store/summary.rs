//! A summary of a data directory, computed with DataFusion: customers, events by type and
//! channel, churn, and response rates by action and channel.

use std::fmt;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

use super::DataDir;
use crate::error::Result;

/// Response counts of one (action, channel) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRow {
    pub action_id: String,
    pub channel: String,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub converted: i64,
}

/// What [`summarize`] found.
#[derive(Debug, Clone, Default)]
pub struct DataSummary {
    pub customers: i64,
    pub events: i64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub by_type: Vec<(String, i64)>,
    pub by_channel: Vec<(String, i64)>,
    /// Customers who purchased before the last 30 days of data but not within them.
    pub lapsed_30d: Option<f64>,
    /// Simulator only: realised 30-day latent churn among customers alive at the cutoffs,
    /// and the oracle's mean probability of it.
    pub churn_30d: Option<(f64, f64)>,
    pub decisions: i64,
    pub responses: Vec<ResponseRow>,
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn i64_at(b: &RecordBatch, col: usize, row: usize) -> i64 {
    let a = b.column(col);
    if a.is_null(row) {
        return 0;
    }
    match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(row),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(row) as i64,
        _ => arrow::compute::cast(a, &DataType::Int64)
            .ok()
            .map_or(0, |c| c.as_primitive::<Int64Type>().value(row)),
    }
}

fn f64_at(b: &RecordBatch, col: usize, row: usize) -> Option<f64> {
    let a = b.column(col);
    if a.is_null(row) {
        return None;
    }
    arrow::compute::cast(a, &DataType::Float64)
        .ok()
        .map(|c| c.as_primitive::<Float64Type>().value(row))
}

fn str_at(b: &RecordBatch, col: usize, row: usize) -> String {
    let a = b.column(col);
    if a.is_null(row) {
        return "(none)".into();
    }
    arrow::compute::cast(a, &DataType::Utf8)
        .ok()
        .map_or_else(String::new, |c| c.as_string::<i32>().value(row).to_string())
}

async fn pairs(ctx: &SessionContext, sql: &str) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for b in query(ctx, sql).await? {
        for r in 0..b.num_rows() {
            out.push((str_at(&b, 0, r), i64_at(&b, 1, r)));
        }
    }
    Ok(out)
}

async fn scalar(ctx: &SessionContext, sql: &str) -> Result<Option<f64>> {
    let batches = query(ctx, sql).await?;
    Ok(batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| f64_at(b, 0, 0)))
}

/// Summarises `dir`.
pub async fn summarize(dir: &DataDir) -> Result<DataSummary> {
    let ctx = dir.session().await?;
    let has = |t: &str| ctx.table_exist(t).unwrap_or(false);
    let mut s = DataSummary {
        events: scalar(&ctx, "SELECT count(*) FROM events")
            .await?
            .unwrap_or(0.0) as i64,
        ..DataSummary::default()
    };
    s.customers = if has("customers") {
        scalar(&ctx, "SELECT count(*) FROM customers").await?
    } else {
        scalar(&ctx, "SELECT count(DISTINCT customer_id) FROM events").await?
    }
    .unwrap_or(0.0) as i64;
    if s.events == 0 {
        return Ok(s);
    }
    for b in query(
        &ctx,
        "SELECT CAST(min(ts) AS VARCHAR), CAST(max(ts) AS VARCHAR) FROM events",
    )
    .await?
    {
        if b.num_rows() > 0 {
            s.first_event = Some(str_at(&b, 0, 0));
            s.last_event = Some(str_at(&b, 1, 0));
        }
    }
    s.by_type = pairs(&ctx, "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY n DESC, event_type").await?;
    s.by_channel = pairs(
        &ctx,
        "SELECT channel, count(*) AS n FROM events GROUP BY channel ORDER BY n DESC, channel",
    )
    .await?;
    s.lapsed_30d = scalar(
        &ctx,
        "WITH bounds AS (SELECT max(ts) - INTERVAL '30 days' AS cut FROM events),
              p AS (SELECT customer_id, max(ts) AS last_purchase, min(ts) AS first_purchase
                    FROM events WHERE event_type = 'purchase' GROUP BY customer_id)
         SELECT avg(CASE WHEN p.last_purchase < bounds.cut THEN 1.0 ELSE 0.0 END)
         FROM p CROSS JOIN bounds WHERE p.first_purchase < bounds.cut",
    )
    .await?;
    if has("ground_truth") {
        let batches = query(
            &ctx,
            "SELECT avg(CASE WHEN churned_within_30d THEN 1.0 ELSE 0.0 END), avg(p_churn_30d)
             FROM ground_truth WHERE alive_at_cutoff",
        )
        .await;
        if let Ok(batches) = batches
            && let Some(b) = batches.iter().find(|b| b.num_rows() > 0)
            && let (Some(real), Some(oracle)) = (f64_at(b, 0, 0), f64_at(b, 1, 0))
        {
            s.churn_30d = Some((real, oracle));
        }
    }
    if has("decisions") {
        s.decisions = scalar(&ctx, "SELECT count(*) FROM decisions")
            .await?
            .unwrap_or(0.0) as i64;
    }
    let sql = "WITH d AS (SELECT decision_id, action_id, channel FROM events
                          WHERE event_type = 'action_delivered' AND decision_id IS NOT NULL),
                    r AS (SELECT decision_id,
                                 max(CASE WHEN event_type = 'action_opened' THEN 1 ELSE 0 END) AS o,
                                 max(CASE WHEN event_type = 'action_clicked' THEN 1 ELSE 0 END) AS c,
                                 max(CASE WHEN event_type = 'action_converted' THEN 1 ELSE 0 END) AS v
                          FROM events
                          WHERE event_type IN ('action_opened', 'action_clicked', 'action_converted')
                            AND decision_id IS NOT NULL
                          GROUP BY decision_id)
               SELECT d.action_id, d.channel, count(*) AS delivered, sum(coalesce(r.o, 0)),
                      sum(coalesce(r.c, 0)), sum(coalesce(r.v, 0))
               FROM d LEFT JOIN r ON d.decision_id = r.decision_id
               GROUP BY d.action_id, d.channel ORDER BY d.action_id, d.channel";
    for b in query(&ctx, sql).await? {
        for r in 0..b.num_rows() {
            s.responses.push(ResponseRow {
                action_id: str_at(&b, 0, r),
                channel: str_at(&b, 1, r),
                delivered: i64_at(&b, 2, r),
                opened: i64_at(&b, 3, r),
                clicked: i64_at(&b, 4, r),
                converted: i64_at(&b, 5, r),
            });
        }
    }
    Ok(s)
}

fn pct(n: i64, d: i64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "customers: {}", self.customers)?;
        write!(f, "events:    {}", self.events)?;
        if let (Some(a), Some(b)) = (&self.first_event, &self.last_event) {
            write!(f, "  ({a} .. {b})")?;
        }
        writeln!(f)?;
        if self.decisions > 0 {
            writeln!(f, "decisions: {}", self.decisions)?;
        }
        if let Some(l) = self.lapsed_30d {
            writeln!(
                f,
                "lapsed (bought before the last 30 days, not within them): {:.1}%",
                100.0 * l
            )?;
        }
        if let Some((real, oracle)) = self.churn_30d {
            writeln!(
                f,
                "30-day churn at the simulator's cutoffs: {:.1}% realised, {:.1}% expected by the oracle",
                100.0 * real,
                100.0 * oracle
            )?;
        }
        let share = |n: i64| pct(n, self.events);
        writeln!(f, "\nevents by type:")?;
        for (t, n) in &self.by_type {
            writeln!(f, "  {t:<18} {n:>12}  {:>6}", share(*n))?;
        }
        writeln!(f, "\nevents by channel:")?;
        for (c, n) in &self.by_channel {
            writeln!(f, "  {c:<18} {n:>12}  {:>6}", share(*n))?;
        }
        if !self.responses.is_empty() {
            writeln!(f, "\nresponses by action and channel (rates per delivery):")?;
            writeln!(
                f,
                "  {:<18} {:<12} {:>9} {:>7} {:>7} {:>9}",
                "action", "channel", "delivered", "opened", "clicked", "converted"
            )?;
            for r in &self.responses {
                writeln!(
                    f,
                    "  {:<18} {:<12} {:>9} {:>7} {:>7} {:>9}",
                    r.action_id,
                    r.channel,
                    r.delivered,
                    pct(r.opened, r.delivered),
                    pct(r.clicked, r.delivered),
                    pct(r.converted, r.delivered)
                )?;
            }
        }
        Ok(())
    }
}
