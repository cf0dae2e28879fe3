//! Exports the server's write-ahead log as Parquet in the data contracts: the decision log
//! (`decisions`) and the outcomes (`outcomes`), for off-policy evaluation and retraining.
//! Reads the log file as it is on disk; the server may keep running.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};

use super::state::{OutcomeRecord, Record};
use crate::decide::{DecisionRecord, decisions_batch};
use crate::error::{Error, Result};
use crate::schema::outcomes_schema;
use crate::store::wal::Wal;
use crate::store::write_parquet_atomic;

/// The outcomes as a batch of the `outcomes` contract.
pub fn outcomes_batch(rows: &[OutcomeRecord]) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut action = StringBuilder::new();
    let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut kind = StringBuilder::new();
    let mut reward = Float64Builder::new();
    for r in rows {
        id.append_value(&r.decision_id);
        action.append_value(&r.action_id);
        ts.append_value(r.ts);
        kind.append_value(&r.kind);
        reward.append_value(r.reward);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(action.finish()),
        Arc::new(ts.finish()),
        Arc::new(kind.finish()),
        Arc::new(reward.finish()),
    ];
    Ok(RecordBatch::try_new(outcomes_schema(), columns)?)
}

/// What [`export_log`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub decisions: usize,
    pub outcomes: usize,
}

/// Reads the log at `wal` and writes `out/decisions.parquet` and `out/outcomes.parquet`.
pub fn export_log(wal: &Path, out: &Path) -> Result<Exported> {
    if !wal.is_file() {
        return Err(Error::Invalid(format!(
            "{}: no write-ahead log here (the server writes DATA/wal/server.wal)",
            wal.display()
        )));
    }
    // a copy, so a running server's log is never truncated by the torn-tail repair
    let tmp = tempfile::tempdir().map_err(|e| Error::io(out, e))?;
    let copy = tmp.path().join("server.wal");
    std::fs::copy(wal, &copy).map_err(|e| Error::io(wal, e))?;
    let (log, lines) = Wal::open(&copy)?;
    drop(log);
    let mut decisions: Vec<DecisionRecord> = Vec::new();
    let mut outcomes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Decision(d)) => decisions.push(*d),
            Ok(Record::Outcome(o)) => outcomes.push(o),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Contract {
                    path: wal.to_path_buf(),
                    message: format!("record {} is not a valid record: {e}", i + 1),
                });
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let d = decisions_batch(&decisions)?;
    write_parquet_atomic(&out.join("decisions.parquet"), d.schema(), &[d])?;
    let o = outcomes_batch(&outcomes)?;
    write_parquet_atomic(&out.join("outcomes.parquet"), o.schema(), &[o])?;
    Ok(Exported {
        decisions: decisions.len(),
        outcomes: outcomes.len(),
    })
}
