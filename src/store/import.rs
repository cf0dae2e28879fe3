//! Importers that map public datasets onto Baton's contracts.
//!
//! **Complete Journey** (84.51°, MIT licence; fetched by `scripts/fetch-completejourney.sh`
//! as Parquet tables). The mapping, done in DataFusion:
//!
//! | source | contract |
//! |---|---|
//! | `transactions` (one row per basket line) | one `purchase` event per basket (channel `store`, value = basket total, `properties` = basket, lines, units); a basket whose total is negative becomes a `return` |
//! | `campaigns` × `campaign_descriptions` | `action_delivered` (channel `mail`, `action_id` = `campaign_<id>`, ts = campaign start) |
//! | `coupon_redemptions` | `action_converted` (channel `mail`, `action_id` = `campaign_<id>`, ts = redemption date) |
//! | `demographics` + every household seen | customers: `age_band` = age, the other columns in `attributes`; `created_at` = first transaction (or first campaign); consent unknown (no consent) |
//!
//! The mapped tables go through the normal ingest path (validation, rejects, idempotent
//! event ids `cj-…`), so importing twice stores nothing new.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::{DataDir, IngestReport, ParquetSink, ingest_file};
use crate::error::{Error, Result};
use crate::schema::TableKind;

/// The Complete Journey tables the importer reads.
pub const COMPLETE_JOURNEY_TABLES: [&str; 5] = [
    "transactions",
    "campaigns",
    "campaign_descriptions",
    "coupon_redemptions",
    "demographics",
];

const EVENTS_SQL: &str = r#"
SELECT 'cj-b-' || CAST(basket_id AS VARCHAR) AS event_id,
       CAST(household_id AS VARCHAR) AS customer_id,
       min(transaction_timestamp) AS ts,
       CASE WHEN sum(sales_value) < 0 THEN 'return' ELSE 'purchase' END AS event_type,
       'store' AS channel,
       CAST(NULL AS VARCHAR) AS action_id,
       abs(sum(sales_value)) AS value,
       '{"basket_id":' || CAST(basket_id AS VARCHAR) || ',"lines":' || CAST(count(*) AS VARCHAR) || ',"units":' || CAST(sum(quantity) AS VARCHAR) || '}' AS properties
FROM transactions
GROUP BY household_id, basket_id
UNION ALL
SELECT 'cj-c-' || CAST(c.campaign_id AS VARCHAR) || '-' || CAST(c.household_id AS VARCHAR),
       CAST(c.household_id AS VARCHAR), d.start_date, 'action_delivered', 'mail',
       'campaign_' || CAST(c.campaign_id AS VARCHAR), CAST(NULL AS DOUBLE),
       '{"campaign_type":"' || d.campaign_type || '"}'
FROM campaigns c JOIN campaign_descriptions d ON c.campaign_id = d.campaign_id
UNION ALL
SELECT 'cj-r-' || CAST(household_id AS VARCHAR) || '-' || CAST(coupon_upc AS VARCHAR) || '-' || CAST(campaign_id AS VARCHAR)
         || '-' || CAST(CAST(redemption_date AS DATE) AS VARCHAR),
       CAST(household_id AS VARCHAR), redemption_date, 'action_converted', 'mail',
       'campaign_' || CAST(campaign_id AS VARCHAR), CAST(NULL AS DOUBLE),
       '{"coupon_upc":' || CAST(coupon_upc AS VARCHAR) || '}'
FROM coupon_redemptions
"#;

const CUSTOMERS_SQL: &str = r#"
WITH seen AS (
  SELECT household_id, min(ts) AS first_seen FROM (
    SELECT household_id, transaction_timestamp AS ts FROM transactions
    UNION ALL
    SELECT c.household_id, d.start_date FROM campaigns c JOIN campaign_descriptions d ON c.campaign_id = d.campaign_id
  ) GROUP BY household_id
)
SELECT CAST(s.household_id AS VARCHAR) AS customer_id,
       s.first_seen AS created_at,
       d.age AS age_band,
       d.income, d.home_ownership, d.marital_status, d.household_size, d.household_comp, d.kids_count
FROM seen s LEFT JOIN demographics d ON s.household_id = d.household_id
"#;

/// Imports the Complete Journey tables in `src` into `dir`. Returns the ingest report of
/// the customers and of the events.
pub async fn import_completejourney(src: &Path, dir: &DataDir) -> Result<Vec<IngestReport>> {
    let ctx = SessionContext::new();
    for table in COMPLETE_JOURNEY_TABLES {
        let path = src.join(format!("{table}.parquet"));
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{}: missing Complete Journey table `{table}` (expected {}; run scripts/fetch-completejourney.sh)",
                src.display(),
                path.display()
            )));
        }
        ctx.register_parquet(
            table,
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| Error::Contract {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    let staging = tempfile::tempdir_in(dir.root()).map_err(|e| Error::io(dir.root(), e))?;
    let mut reports = Vec::new();
    for (kind, sql, name) in [
        (
            TableKind::Customers,
            CUSTOMERS_SQL,
            "completejourney-customers.parquet",
        ),
        (
            TableKind::Events,
            EVENTS_SQL,
            "completejourney-events.parquet",
        ),
    ] {
        let df = ctx.sql(sql).await.map_err(|e| Error::Contract {
            path: src.to_path_buf(),
            message: format!("the tables do not have the Complete Journey layout: {e}"),
        })?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let path = staging.path().join(name);
        let mut sink = ParquetSink::create(&path, schema)?;
        for batch in df.collect().await? {
            sink.write(&batch)?;
        }
        sink.finish()?;
        let mut report = ingest_file(dir, kind, &path, 10)?;
        report.source = src.to_path_buf();
        reports.push(report);
    }
    Ok(reports)
}
