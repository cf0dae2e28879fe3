//! Parquet reading and atomic writing (temporary file + rename).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

use crate::error::{Error, IoContext, Result};

/// A streaming Parquet writer into a temporary file that becomes `path` only on
/// [`ParquetSink::finish`]. Dropping it without finishing leaves nothing behind.
pub struct ParquetSink {
    path: PathBuf,
    writer: ArrowWriter<NamedTempFile>,
    rows: u64,
}

impl ParquetSink {
    /// Starts writing a Parquet file with `schema` that will be renamed to `path`.
    pub fn create(path: impl Into<PathBuf>, schema: SchemaRef) -> Result<Self> {
        let path = path.into();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".parquet")
            .tempfile_in(dir)
            .at(dir)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(256 * 1024))
            .build();
        let writer = ArrowWriter::try_new(tmp, schema, Some(props))?;
        Ok(Self {
            path,
            writer,
            rows: 0,
        })
    }

    /// Appends a batch (flushed to disk in row groups, so memory stays bounded).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)?;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the file and renames it into place. Returns the number of rows.
    pub fn finish(self) -> Result<u64> {
        let tmp = self.writer.into_inner()?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(self.rows)
    }
}

/// Writes `batches` to `path` atomically.
pub fn write_parquet_atomic(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64> {
    let mut sink = ParquetSink::create(path, schema)?;
    for b in batches {
        sink.write(b)?;
    }
    sink.finish()
}

/// Reads a whole Parquet file into memory.
pub fn read_parquet(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).at(path)?;
    let not_parquet = |e: &dyn std::fmt::Display| Error::Contract {
        path: path.to_path_buf(),
        message: format!("cannot be read as Parquet: {e}"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| not_parquet(&e))?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| not_parquet(&e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| not_parquet(&e))?;
    Ok((schema, batches))
}
