//! Erasure of one customer from a data directory: every Parquet table that names the
//! customer (events, customers, decisions, simulator truth, feature tables and training
//! sets already built) is rewritten without their
//! rows, and outcomes of their decisions go too. Each file is replaced atomically, so a
//! failure leaves it either untouched or fully rewritten.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;

use super::DataDir;
use super::{read_parquet, write_parquet_atomic};
use crate::error::Result;

/// Rewrites `path` without the rows whose `column` is in `ids`; returns the rows removed.
fn drop_rows(path: &Path, column: &str, ids: &HashSet<String>) -> Result<usize> {
    let (schema, batches) = read_parquet(path)?;
    let mut removed = 0;
    let mut kept = Vec::with_capacity(batches.len());
    for b in batches {
        let Some(col) = b.column_by_name(column) else {
            return Ok(0);
        };
        let Some(s) = col.as_string_opt::<i32>() else {
            return Ok(0);
        };
        let keep: BooleanArray = (0..s.len())
            .map(|r| Some(!(s.is_valid(r) && ids.contains(s.value(r)))))
            .collect();
        removed += keep.false_count();
        kept.push(filter_record_batch(&b, &keep)?);
    }
    if removed > 0 {
        write_parquet_atomic(path, schema, &kept)?;
    }
    Ok(removed)
}

fn decision_ids(path: &Path, customer: &str) -> Result<HashSet<String>> {
    let (_, batches) = read_parquet(path)?;
    let mut out = HashSet::new();
    for b in &batches {
        let (Some(c), Some(d)) = (
            b.column_by_name("customer_id"),
            b.column_by_name("decision_id"),
        ) else {
            continue;
        };
        let (Some(c), Some(d)) = (c.as_string_opt::<i32>(), d.as_string_opt::<i32>()) else {
            continue;
        };
        for r in 0..b.num_rows() {
            if c.is_valid(r) && d.is_valid(r) && c.value(r) == customer {
                out.insert(d.value(r).to_string());
            }
        }
    }
    Ok(out)
}

fn existing(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    paths.into_iter().filter(|p| p.is_file()).collect()
}

/// Removes every row of customer `id` from the data directory; returns the rows removed.
pub fn erase_customer(data: &DataDir, id: &str) -> Result<usize> {
    let who: HashSet<String> = [id.to_string()].into();
    let mut removed = 0;
    let decision_parts = existing(DataDir::parts(&data.decisions_dir())?);
    let mut decisions = HashSet::new();
    for p in &decision_parts {
        decisions.extend(decision_ids(p, id)?);
    }
    let mut by_customer = existing(DataDir::parts(&data.events_dir())?);
    by_customer.extend(decision_parts);
    by_customer.extend(existing([
        data.customers_path(),
        data.ground_truth_path(),
        data.root().join("ground_truth_decisions.parquet"),
        data.root().join("features.parquet"),
    ]));
    // derived outputs already built (features, training sets) lose the rows too
    by_customer.extend(existing(DataDir::parts(&data.root().join("datasets"))?));
    for p in &by_customer {
        removed += drop_rows(p, "customer_id", &who)?;
    }
    if !decisions.is_empty() {
        for p in existing(DataDir::parts(&data.outcomes_dir())?) {
            removed += drop_rows(&p, "decision_id", &decisions)?;
        }
    }
    Ok(removed)
}
