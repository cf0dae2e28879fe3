//! Ingest: CSV, JSON Lines and Parquet files into the data directory as contract Parquet.
//!
//! Bad rows never stop the good ones: each is rejected with a reason, counted, and written
//! to a rejects file in `DIR/rejects/`. Events are appended as a new part and are
//! idempotent on `event_id` (an id already stored, or seen earlier in the same file, is
//! skipped). Customers are upserted by `customer_id` (the newest row wins). Every write is
//! atomic (temporary file + rename), so a failure leaves stored data exactly as it was.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{DataDir, ParquetSink, read_parquet, write_parquet_atomic};
use crate::error::{Error, IoContext, Result};
use crate::schema::{Cell, RowError, TableKind, Validator};

/// Rows validated per batch before they are written.
const CHUNK_ROWS: usize = 64 * 1024;

/// What one ingest did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub kind: TableKind,
    pub source: PathBuf,
    /// Data rows read from the source.
    pub rows_read: u64,
    /// Rows stored (new events, or customers inserted or updated).
    pub stored: u64,
    /// Events skipped because their `event_id` was already stored or repeated.
    pub duplicates: u64,
    /// Rows rejected by validation.
    pub rejected: u64,
    /// The first rejected rows, up to the number asked for.
    pub first_errors: Vec<RowError>,
    /// Where all rejected rows and their reasons were written.
    pub rejects_path: Option<PathBuf>,
    /// The Parquet file written.
    pub stored_path: Option<PathBuf>,
}

/// Source formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
    Parquet,
}

impl Format {
    /// The format of `path` from its extension.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::JsonLines),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(Error::Invalid(format!(
                "{}: unknown file type `.{ext}` (use .csv, .jsonl/.ndjson or .parquet)",
                path.display()
            ))),
        }
    }
}

/// Ingests `source` as `kind` into `dir`, printing nothing; see the module docs.
pub fn ingest_file(
    dir: &DataDir,
    kind: TableKind,
    source: &Path,
    show_errors: usize,
) -> Result<IngestReport> {
    let format = Format::of(source)?;
    if !source.exists() {
        return Err(Error::io(
            source,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let mut writer = match kind {
        TableKind::Events => Writer::Events(Box::new(EventWriter::new(dir)?)),
        TableKind::Customers => Writer::Customers(Vec::new()),
    };
    let mut validator = Validator::new(kind, source.display().to_string());
    let rows_read = read_rows(
        source,
        format,
        kind,
        &mut validator,
        &mut |v: &mut Validator| {
            let validated = v.take()?;
            writer.write(validated.batch, validated.event_ids)
        },
    )?;
    if validator.pending() > 0 {
        let validated = validator.take()?;
        writer.write(validated.batch, validated.event_ids)?;
    }
    let (stored, duplicates, stored_path) = writer.finish(dir)?;
    let rejected = validator.errors.len() as u64;
    let rejects_path = if rejected > 0 {
        Some(write_rejects(dir, kind, source, &validator.errors)?)
    } else {
        None
    };
    tracing::info!(
        table = kind.name(),
        source = %source.display(),
        rows_read,
        stored,
        duplicates,
        rejected,
        "ingested"
    );
    validator.errors.truncate(show_errors);
    Ok(IngestReport {
        kind,
        source: source.to_path_buf(),
        rows_read,
        stored,
        duplicates,
        rejected,
        first_errors: validator.errors,
        rejects_path,
        stored_path,
    })
}

/// Reads every row of `source` into `validator`, calling `flush` every [`CHUNK_ROWS`]
/// accepted rows. Returns the number of data rows read.
fn read_rows(
    source: &Path,
    format: Format,
    kind: TableKind,
    validator: &mut Validator,
    flush: &mut dyn FnMut(&mut Validator) -> Result<()>,
) -> Result<u64> {
    let contract = |message: String| Error::Contract {
        path: source.to_path_buf(),
        message,
    };
    let mut rows = 0u64;
    match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .trim(csv::Trim::All)
                .from_path(source)
                .map_err(|e| contract(e.to_string()))?;
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| contract(format!("cannot read the header line: {e}")))?
                .iter()
                .map(str::to_string)
                .collect();
            Validator::check_columns(kind, &headers).map_err(contract)?;
            let mut record = csv::StringRecord::new();
            loop {
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        rows += 1;
                        if record.len() != headers.len() {
                            validator.reject(
                                rows,
                                "<row>",
                                format!(
                                    "has {} fields but the header has {}",
                                    record.len(),
                                    headers.len()
                                ),
                            );
                            continue;
                        }
                        let fields: Vec<(&str, Cell<'_>)> = headers
                            .iter()
                            .zip(record.iter())
                            .map(|(h, v)| (h.as_str(), Cell::Str(Cow::Borrowed(v))))
                            .collect();
                        validator.push(rows, &fields);
                    }
                    Err(e) => {
                        rows += 1;
                        validator.reject(rows, "<row>", format!("malformed CSV: {e}"));
                        if e.is_io_error() {
                            return Err(contract(e.to_string()));
                        }
                    }
                }
                if validator.pending() >= CHUNK_ROWS {
                    flush(validator)?;
                }
            }
        }
        Format::JsonLines => {
            let file = File::open(source).at(source)?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.at(source)?;
                if line.trim().is_empty() {
                    continue;
                }
                rows += 1;
                let lineno = i as u64 + 1;
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(serde_json::Value::Object(map)) => {
                        let fields: Vec<(&str, Cell<'_>)> = map
                            .iter()
                            .map(|(k, v)| (k.as_str(), json_cell(v)))
                            .collect();
                        validator.push(lineno, &fields);
                    }
                    Ok(_) => validator.reject(lineno, "<row>", "a line must be a JSON object"),
                    Err(e) => validator.reject(lineno, "<row>", format!("malformed JSON: {e}")),
                }
                if validator.pending() >= CHUNK_ROWS {
                    flush(validator)?;
                }
            }
        }
        Format::Parquet => {
            let file = File::open(source).at(source)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| contract(format!("not a readable Parquet file: {e}")))?;
            let schema = builder.schema().clone();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Validator::check_columns(kind, &names).map_err(contract)?;
            for field in schema.fields() {
                check_parquet_type(kind, field.name(), field.data_type()).map_err(contract)?;
            }
            let reader = builder.with_batch_size(16 * 1024).build()?;
            for batch in reader {
                let batch = batch?;
                for r in 0..batch.num_rows() {
                    rows += 1;
                    let fields: Vec<(&str, Cell<'_>)> = names
                        .iter()
                        .zip(batch.columns())
                        .map(|(n, a)| (*n, array_cell(a.as_ref(), r)))
                        .collect();
                    validator.push(rows, &fields);
                }
                if validator.pending() >= CHUNK_ROWS {
                    flush(validator)?;
                }
            }
        }
    }
    Ok(rows)
}

pub(crate) fn json_cell(v: &serde_json::Value) -> Cell<'_> {
    match v {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Bool(b) => Cell::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cell::Float(n.as_f64().unwrap_or(f64::NAN)), Cell::Int),
        serde_json::Value::String(s) => Cell::Str(Cow::Borrowed(s)),
        other => Cell::Str(Cow::Owned(other.to_string())),
    }
}

/// The timestamp-typed contract columns.
fn is_time_column(name: &str) -> bool {
    matches!(name, "ts" | "created_at" | "updated_at")
}

/// Refuses a Parquet column whose type can never satisfy its contract column.
fn check_parquet_type(
    kind: TableKind,
    name: &str,
    dt: &DataType,
) -> std::result::Result<(), String> {
    let Ok(field) = kind.schema().field_with_name(name).cloned() else {
        return Ok(());
    };
    let texty = matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let ok = match field.data_type() {
        DataType::Timestamp(..) => {
            texty
                || matches!(
                    dt,
                    DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                )
        }
        DataType::Float64 => texty || dt.is_numeric(),
        DataType::Boolean => texty || matches!(dt, DataType::Boolean) || dt.is_integer(),
        _ => texty || dt.is_numeric() || matches!(dt, DataType::Boolean),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column `{name}` has type {dt}, which cannot hold {} values (expected {})",
            if is_time_column(name) {
                "timestamp"
            } else {
                "its"
            },
            field.data_type()
        ))
    }
}

fn array_cell(a: &dyn Array, r: usize) -> Cell<'_> {
    if a.is_null(r) {
        return Cell::Null;
    }
    use arrow::datatypes::*;
    match a.data_type() {
        DataType::Utf8 => Cell::Str(Cow::Borrowed(a.as_string::<i32>().value(r))),
        DataType::LargeUtf8 => Cell::Str(Cow::Borrowed(a.as_string::<i64>().value(r))),
        DataType::Utf8View => Cell::Str(Cow::Borrowed(a.as_string_view().value(r))),
        DataType::Boolean => Cell::Bool(a.as_boolean().value(r)),
        DataType::Int8 => Cell::Int(a.as_primitive::<Int8Type>().value(r).into()),
        DataType::Int16 => Cell::Int(a.as_primitive::<Int16Type>().value(r).into()),
        DataType::Int32 => Cell::Int(a.as_primitive::<Int32Type>().value(r).into()),
        DataType::Int64 => Cell::Int(a.as_primitive::<Int64Type>().value(r)),
        DataType::UInt8 => Cell::Int(a.as_primitive::<UInt8Type>().value(r).into()),
        DataType::UInt16 => Cell::Int(a.as_primitive::<UInt16Type>().value(r).into()),
        DataType::UInt32 => Cell::Int(a.as_primitive::<UInt32Type>().value(r).into()),
        DataType::UInt64 => {
            i64::try_from(a.as_primitive::<UInt64Type>().value(r)).map_or(Cell::Null, Cell::Int)
        }
        DataType::Float32 => Cell::Float(a.as_primitive::<Float32Type>().value(r).into()),
        DataType::Float64 => Cell::Float(a.as_primitive::<Float64Type>().value(r)),
        DataType::Date32 => {
            Cell::TsMicros(i64::from(a.as_primitive::<Date32Type>().value(r)) * 86_400_000_000)
        }
        DataType::Date64 => Cell::TsMicros(a.as_primitive::<Date64Type>().value(r) * 1_000),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a
                    .as_primitive::<TimestampSecondType>()
                    .value(r)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => a
                    .as_primitive::<TimestampMillisecondType>()
                    .value(r)
                    .saturating_mul(1_000),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(r),
                TimeUnit::Nanosecond => {
                    a.as_primitive::<TimestampNanosecondType>().value(r) / 1_000
                }
            };
            Cell::TsMicros(v)
        }
        _ => {
            let fmt = arrow::util::display::ArrayFormatter::try_new(a, &Default::default());
            match fmt {
                Ok(f) => Cell::Str(Cow::Owned(f.value(r).to_string())),
                Err(_) => Cell::Null,
            }
        }
    }
}

enum Writer {
    Events(Box<EventWriter>),
    Customers(Vec<RecordBatch>),
}

impl Writer {
    fn write(&mut self, batch: RecordBatch, ids: Vec<Option<String>>) -> Result<()> {
        match self {
            Writer::Events(w) => w.write(batch, ids),
            Writer::Customers(batches) => {
                batches.push(batch);
                Ok(())
            }
        }
    }

    /// Returns (rows stored, duplicates skipped, file written).
    fn finish(self, dir: &DataDir) -> Result<(u64, u64, Option<PathBuf>)> {
        match self {
            Writer::Events(w) => w.finish(),
            Writer::Customers(batches) => {
                let stored: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                if stored == 0 {
                    return Ok((0, 0, None));
                }
                let path = dir.customers_path();
                upsert_customers(&path, &batches)?;
                Ok((stored, 0, Some(path)))
            }
        }
    }
}

/// A 128-bit fingerprint of an event id (two independently keyed SipHashes); collisions
/// are vanishingly unlikely and the set stays small for tens of millions of ids.
#[derive(Clone)]
struct IdHasher(std::hash::RandomState, std::hash::RandomState);

impl IdHasher {
    fn new() -> Self {
        Self(std::hash::RandomState::new(), std::hash::RandomState::new())
    }
    fn fingerprint(&self, id: &str) -> u128 {
        (u128::from(self.0.hash_one(id)) << 64) | u128::from(self.1.hash_one(id))
    }
}

struct EventWriter {
    sink: Option<ParquetSink>,
    path: PathBuf,
    seen: HashSet<u128>,
    hasher: IdHasher,
    duplicates: u64,
}

impl EventWriter {
    fn new(dir: &DataDir) -> Result<Self> {
        let hasher = IdHasher::new();
        let mut seen = HashSet::new();
        for part in DataDir::parts(&dir.events_dir())? {
            let file = File::open(&part).at(&part)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
            let Some(idx) = builder.schema().index_of("event_id").ok() else {
                continue;
            };
            let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
            for batch in builder.with_projection(mask).build()? {
                let batch = batch?;
                let ids = batch.column(0).as_string::<i32>();
                for id in ids.iter().flatten() {
                    seen.insert(hasher.fingerprint(id));
                }
            }
        }
        let path = DataDir::next_part_path(&dir.events_dir())?;
        Ok(Self {
            sink: None,
            path,
            seen,
            hasher,
            duplicates: 0,
        })
    }

    fn write(&mut self, batch: RecordBatch, ids: Vec<Option<String>>) -> Result<()> {
        let keep: BooleanArray = ids
            .iter()
            .map(|id| match id {
                Some(id) => Some(self.seen.insert(self.hasher.fingerprint(id))),
                None => Some(true),
            })
            .collect();
        let kept = filter_record_batch(&batch, &keep)?;
        self.duplicates += (batch.num_rows() - kept.num_rows()) as u64;
        if kept.num_rows() == 0 {
            return Ok(());
        }
        if self.sink.is_none() {
            self.sink = Some(ParquetSink::create(&self.path, kept.schema())?);
        }
        if let Some(sink) = &mut self.sink {
            sink.write(&kept)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(u64, u64, Option<PathBuf>)> {
        match self.sink {
            Some(sink) => Ok((sink.finish()?, self.duplicates, Some(self.path))),
            None => Ok((0, self.duplicates, None)),
        }
    }
}

/// Merges new customer rows into the stored table: the newest row per id wins.
fn upsert_customers(path: &Path, new: &[RecordBatch]) -> Result<()> {
    let schema = crate::schema::customers_schema();
    let mut all = Vec::new();
    if path.exists() {
        let (_, old) = read_parquet(path)?;
        all.extend(old);
    }
    all.extend(new.iter().cloned());
    let merged = concat_batches(&schema, &all)?;
    let ids: &StringArray = merged.column(0).as_string::<i32>();
    // Keep the last occurrence of each id (later rows are newer).
    let mut seen = HashSet::new();
    let mut keep = vec![false; merged.num_rows()];
    for i in (0..merged.num_rows()).rev() {
        if seen.insert(ids.value(i)) {
            keep[i] = true;
        }
    }
    let kept = filter_record_batch(&merged, &BooleanArray::from(keep))?;
    write_parquet_atomic(path, schema, &[kept])?;
    Ok(())
}

fn write_rejects(
    dir: &DataDir,
    kind: TableKind,
    source: &Path,
    errors: &[RowError],
) -> Result<PathBuf> {
    let rejects = dir.rejects_dir();
    std::fs::create_dir_all(&rejects).at(&rejects)?;
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input");
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
    let path = rejects.join(format!("{}-{stem}-{stamp}.csv", kind.name()));
    let tmp = tempfile::NamedTempFile::new_in(&rejects).at(&rejects)?;
    {
        let mut w = csv::Writer::from_writer(tmp.as_file());
        let io = |e: csv::Error| Error::io(&path, std::io::Error::other(e.to_string()));
        w.write_record(["file", "row", "column", "reason"])
            .map_err(io)?;
        for e in errors {
            w.write_record([e.file.as_str(), &e.row.to_string(), &e.column, &e.reason])
                .map_err(io)?;
        }
        w.flush().at(&path)?;
    }
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(path)
}
