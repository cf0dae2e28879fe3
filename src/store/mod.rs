//! The data directory: where events, customers, decisions, outcomes and simulator ground
//! truth live, as Parquet.
//!
//! Layout of a data directory `DIR`:
//!
//! ```text
//! DIR/events/part-<n>.parquet      append-only parts (one per ingest or simulator shard)
//! DIR/customers.parquet            one row per customer (upserted on ingest)
//! DIR/decisions/part-<n>.parquet   decision log
//! DIR/outcomes/part-<n>.parquet    outcomes of decisions
//! DIR/ground_truth.parquet         simulator only: hidden per-customer truth
//! DIR/rejects/<kind>-<stamp>.csv   rows that failed validation, with reasons
//! DIR/wal/server.wal               the server's write-ahead log (events, profiles,
//!                                  decisions, outcomes; see `wal`)
//! ```
//!
//! Every write goes to a temporary file in the destination directory and is renamed into
//! place, so a failure never leaves a half-written file and never touches stored data.

pub mod erase;
pub mod import;
pub mod ingest;
mod parquet_io;
pub mod summary;
pub mod wal;

pub use ingest::{IngestReport, ingest_file};
pub use parquet_io::{ParquetSink, read_parquet, write_parquet_atomic};

use std::path::{Path, PathBuf};

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{IoContext, Result};
use crate::schema;

/// A data directory (see the module docs for its layout).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (and creates if needed) a data directory.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).at(&root)?;
        Ok(Self { root })
    }

    /// Opens a data directory without creating anything.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of event parts.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    /// The customers table.
    pub fn customers_path(&self) -> PathBuf {
        self.root.join("customers.parquet")
    }

    /// Directory of decision-log parts.
    pub fn decisions_dir(&self) -> PathBuf {
        self.root.join("decisions")
    }

    /// Directory of outcome parts.
    pub fn outcomes_dir(&self) -> PathBuf {
        self.root.join("outcomes")
    }

    /// Simulator ground truth (absent for real data).
    pub fn ground_truth_path(&self) -> PathBuf {
        self.root.join("ground_truth.parquet")
    }

    /// Directory of rejects files.
    pub fn rejects_dir(&self) -> PathBuf {
        self.root.join("rejects")
    }

    /// The sorted Parquet parts in a table directory (empty if it does not exist).
    pub fn parts(dir: &Path) -> Result<Vec<PathBuf>> {
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let path = entry.at(dir)?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                parts.push(path);
            }
        }
        parts.sort();
        Ok(parts)
    }

    /// A path for the next part in `dir`, named so parts sort in creation order.
    pub fn next_part_path(dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).at(dir)?;
        let n = Self::parts(dir)?
            .iter()
            .filter_map(|p| {
                p.file_stem()?
                    .to_str()?
                    .strip_prefix("part-")?
                    .split('-')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        Ok(dir.join(format!("part-{n:06}.parquet")))
    }

    /// A DataFusion session with the tables that exist registered as `events`, `customers`,
    /// `decisions`, `outcomes` and `ground_truth`. A missing events table is registered
    /// empty so queries over it return no rows instead of failing.
    pub async fn session(&self) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        self.register(&ctx).await?;
        Ok(ctx)
    }

    /// Registers this directory's tables on an existing session.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        let events = self.events_dir();
        if Self::parts(&events)?.is_empty() {
            let empty = arrow::record_batch::RecordBatch::new_empty(schema::events_schema());
            ctx.register_batch("events", empty)?;
        } else {
            register_dir(ctx, "events", &events, schema::events_schema()).await?;
        }
        for (name, dir, schema) in [
            (
                "decisions",
                self.decisions_dir(),
                schema::decisions_schema(),
            ),
            ("outcomes", self.outcomes_dir(), schema::outcomes_schema()),
        ] {
            if !Self::parts(&dir)?.is_empty() {
                register_dir(ctx, name, &dir, schema).await?;
            }
        }
        for (name, path) in [
            ("customers", self.customers_path()),
            ("ground_truth", self.ground_truth_path()),
        ] {
            if path.exists() {
                ctx.register_parquet(
                    name,
                    path.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn register_dir(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    schema: arrow::datatypes::SchemaRef,
) -> Result<()> {
    let url = format!("{}/", dir.to_string_lossy());
    let opts = ParquetReadOptions::default().schema(&schema);
    ctx.register_parquet(name, &url, opts).await?;
    Ok(())
}
