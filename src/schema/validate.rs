//! Row validation: raw cells from any source format → contract-typed Arrow batches.
//!
//! A [`Validator`] takes rows as `(column name, Cell)` pairs, checks each against the
//! contract (types, required columns, timestamps, channels, value ranges), appends good rows
//! to Arrow builders and keeps a [`RowError`] for each bad one naming file, row, column and
//! reason. Columns outside the contract are kept as JSON: in `properties` for events and in
//! `attributes` for customers.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::{CHANNELS, CONSENT_COLUMNS, customers_schema, events_schema};
use crate::error::Result;

/// One raw value from a source file.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A timestamp already typed by the source, in µs since the epoch (UTC).
    TsMicros(i64),
}

impl Cell<'_> {
    fn describe(&self) -> String {
        match self {
            Cell::Null => "null".into(),
            Cell::Str(s) => format!("\"{}\"", truncate(s, 40)),
            Cell::Int(i) => format!("integer {i}"),
            Cell::Float(f) => format!("number {f}"),
            Cell::Bool(b) => format!("boolean {b}"),
            Cell::TsMicros(t) => format!("timestamp {t}µs"),
        }
    }

    fn is_null(&self) -> bool {
        match self {
            Cell::Null => true,
            Cell::Str(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Str(s) => serde_json::Value::String(s.to_string()),
            Cell::Int(i) => (*i).into(),
            Cell::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Cell::Bool(b) => (*b).into(),
            Cell::TsMicros(t) => format_ts(*t).into(),
        }
    }
}

fn truncate(s: &str, n: usize) -> Cow<'_, str> {
    match s.char_indices().nth(n) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Formats µs since the epoch as RFC 3339 UTC.
pub fn format_ts(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// A row that failed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// The source file.
    pub file: String,
    /// 1-based data row (CSV: header excluded; JSON Lines: line number).
    pub row: u64,
    /// The offending column (or `<row>` when the row itself is malformed).
    pub column: String,
    /// What is wrong, in words a person can act on.
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {}: column `{}`: {}",
            self.file, self.row, self.column, self.reason
        )
    }
}

/// Which contract a validator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Events,
    Customers,
}

impl TableKind {
    /// The contract's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            TableKind::Events => events_schema(),
            TableKind::Customers => customers_schema(),
        }
    }

    /// Columns a row cannot do without.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            TableKind::Events => &["customer_id", "ts", "event_type"],
            TableKind::Customers => &["customer_id", "created_at"],
        }
    }

    /// The JSON column that collects columns outside the contract.
    fn extras_column(self) -> &'static str {
        match self {
            TableKind::Events => "properties",
            TableKind::Customers => "attributes",
        }
    }

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Events => "events",
            TableKind::Customers => "customers",
        }
    }
}

/// Parses a timestamp: RFC 3339 (`2025-03-01T10:00:00Z`, with any offset), a naive
/// date-time taken as UTC (`2025-03-01 10:00:00`), or a date (`2025-03-01`, midnight UTC).
pub fn parse_ts(s: &str) -> std::result::Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Ok(t.timestamp_micros());
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_micros()));
    }
    Err(format!(
        "cannot parse timestamp \"{}\" (use RFC 3339 like 2025-03-01T10:00:00Z, or 2025-03-01 10:00:00, or 2025-03-01)",
        truncate(s, 40)
    ))
}

fn to_string_opt(cell: &Cell<'_>) -> std::result::Result<Option<String>, String> {
    Ok(match cell {
        c if c.is_null() => None,
        Cell::Str(s) => Some(s.trim().to_string()),
        Cell::Int(i) => Some(i.to_string()),
        Cell::Float(f) => Some(f.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::TsMicros(t) => Some(format_ts(*t)),
        Cell::Null => None,
    })
}

fn to_f64_opt(cell: &Cell<'_>) -> std::result::Result<Option<f64>, String> {
    let v = match cell {
        c if c.is_null() => return Ok(None),
        Cell::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("expected a number, got {}", cell.describe()))?,
        Cell::Int(i) => *i as f64,
        Cell::Float(f) => *f,
        _ => return Err(format!("expected a number, got {}", cell.describe())),
    };
    if v.is_finite() {
        Ok(Some(v))
    } else {
        Err(format!("expected a finite number, got {}", cell.describe()))
    }
}

fn to_bool_opt(cell: &Cell<'_>) -> std::result::Result<Option<bool>, String> {
    match cell {
        c if c.is_null() => Ok(None),
        Cell::Bool(b) => Ok(Some(*b)),
        Cell::Int(0) => Ok(Some(false)),
        Cell::Int(1) => Ok(Some(true)),
        Cell::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(Some(true)),
            "false" | "f" | "no" | "n" | "0" => Ok(Some(false)),
            _ => Err(format!("expected true/false, got {}", cell.describe())),
        },
        _ => Err(format!("expected true/false, got {}", cell.describe())),
    }
}

fn to_ts_opt(cell: &Cell<'_>) -> std::result::Result<Option<i64>, String> {
    match cell {
        c if c.is_null() => Ok(None),
        Cell::TsMicros(t) => Ok(Some(*t)),
        Cell::Str(s) => parse_ts(s).map(Some),
        _ => Err(format!("expected a timestamp, got {}", cell.describe())),
    }
}

fn json_object_opt(
    cell: &Cell<'_>,
) -> std::result::Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
    match to_string_opt(cell)? {
        None => Ok(None),
        Some(s) => match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
            _ => Err(format!("expected a JSON object, got {}", cell.describe())),
        },
    }
}

type FieldError = (String, String);

fn col<T>(name: &str, r: std::result::Result<T, String>) -> std::result::Result<T, FieldError> {
    r.map_err(|e| (name.to_string(), e))
}

fn required<T>(name: &str, v: Option<T>) -> std::result::Result<T, FieldError> {
    v.ok_or_else(|| (name.to_string(), "required value is missing".to_string()))
}

struct EventBuilders {
    event_id: StringBuilder,
    customer_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    event_type: StringBuilder,
    channel: StringBuilder,
    action_id: StringBuilder,
    decision_id: StringBuilder,
    item_id: StringBuilder,
    value: Float64Builder,
    properties: StringBuilder,
}

struct CustomerBuilders {
    customer_id: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
    age_band: StringBuilder,
    region: StringBuilder,
    segment: StringBuilder,
    consents: Vec<BooleanBuilder>,
    attributes: StringBuilder,
    updated_at: TimestampMicrosecondBuilder,
}

enum Builders {
    Events(Box<EventBuilders>),
    Customers(Box<CustomerBuilders>),
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// The outcome of validating one batch of rows.
#[derive(Debug)]
pub struct Validated {
    /// The good rows, in the contract's schema.
    pub batch: RecordBatch,
    /// `event_id` of each good row (events only), for idempotency checks.
    pub event_ids: Vec<Option<String>>,
}

/// Validates rows against one contract; see the module docs.
pub struct Validator {
    kind: TableKind,
    file: String,
    builders: Builders,
    event_ids: Vec<Option<String>>,
    rows: usize,
    /// Every rejected row so far.
    pub errors: Vec<RowError>,
}

impl Validator {
    /// A validator for `kind` rows from `file` (used in error messages).
    pub fn new(kind: TableKind, file: impl Into<String>) -> Self {
        let builders = match kind {
            TableKind::Events => Builders::Events(Box::new(EventBuilders {
                event_id: StringBuilder::new(),
                customer_id: StringBuilder::new(),
                ts: ts_builder(),
                event_type: StringBuilder::new(),
                channel: StringBuilder::new(),
                action_id: StringBuilder::new(),
                decision_id: StringBuilder::new(),
                item_id: StringBuilder::new(),
                value: Float64Builder::new(),
                properties: StringBuilder::new(),
            })),
            TableKind::Customers => Builders::Customers(Box::new(CustomerBuilders {
                customer_id: StringBuilder::new(),
                created_at: ts_builder(),
                age_band: StringBuilder::new(),
                region: StringBuilder::new(),
                segment: StringBuilder::new(),
                consents: CONSENT_COLUMNS
                    .iter()
                    .map(|_| BooleanBuilder::new())
                    .collect(),
                attributes: StringBuilder::new(),
                updated_at: ts_builder(),
            })),
        };
        Self {
            kind,
            file: file.into(),
            builders,
            event_ids: Vec::new(),
            rows: 0,
            errors: Vec::new(),
        }
    }

    /// Checks that a source with these columns can satisfy the contract at all: a missing
    /// required column is an error for the whole file.
    pub fn check_columns<S: AsRef<str>>(
        kind: TableKind,
        columns: &[S],
    ) -> std::result::Result<(), String> {
        let missing: Vec<&str> = kind
            .required()
            .iter()
            .copied()
            .filter(|r| !columns.iter().any(|c| c.as_ref() == *r))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing required column{} {} for {} (found: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                kind.name(),
                columns
                    .iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// Rows accepted since the last [`Validator::take`].
    pub fn pending(&self) -> usize {
        self.rows
    }

    /// Records a row that could not even be split into fields (bad CSV/JSON syntax).
    pub fn reject(&mut self, row: u64, column: &str, reason: impl Into<String>) {
        self.errors.push(RowError {
            file: self.file.clone(),
            row,
            column: column.to_string(),
            reason: reason.into(),
        });
    }

    /// Validates one row; a bad row is recorded in `errors` and skipped. Returns whether the
    /// row was accepted.
    pub fn push(&mut self, row: u64, fields: &[(&str, Cell<'_>)]) -> bool {
        let result = match self.kind {
            TableKind::Events => self.push_event(fields),
            TableKind::Customers => self.push_customer(fields),
        };
        match result {
            Ok(()) => {
                self.rows += 1;
                true
            }
            Err((column, reason)) => {
                self.reject(row, &column, reason);
                false
            }
        }
    }

    fn extras(
        &self,
        fields: &[(&str, Cell<'_>)],
    ) -> std::result::Result<Option<String>, (String, String)> {
        let schema = self.kind.schema();
        let extras_col = self.kind.extras_column();
        let mut map = match fields.iter().find(|(n, _)| *n == extras_col) {
            Some((_, c)) => json_object_opt(c)
                .map_err(|e| (extras_col.to_string(), e))?
                .unwrap_or_default(),
            None => serde_json::Map::new(),
        };
        for (name, cell) in fields {
            if schema.field_with_name(name).is_err() && !cell.is_null() {
                map.insert((*name).to_string(), cell.to_json());
            }
        }
        Ok(if map.is_empty() {
            None
        } else {
            Some(serde_json::Value::Object(map).to_string())
        })
    }

    fn push_event(
        &mut self,
        fields: &[(&str, Cell<'_>)],
    ) -> std::result::Result<(), (String, String)> {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&Cell::Null, |(_, c)| c)
        };

        let event_id = col("event_id", to_string_opt(get("event_id")))?;
        let customer_id = required(
            "customer_id",
            col("customer_id", to_string_opt(get("customer_id")))?,
        )?;
        let ts = required("ts", col("ts", to_ts_opt(get("ts")))?)?;
        let event_type = required(
            "event_type",
            col("event_type", to_string_opt(get("event_type")))?,
        )?;
        let channel =
            col("channel", to_string_opt(get("channel")))?.map(|c| c.to_ascii_lowercase());
        if let Some(c) = &channel
            && !CHANNELS.contains(&c.as_str())
        {
            return Err((
                "channel".into(),
                format!("unknown channel \"{c}\" (known: {})", CHANNELS.join(", ")),
            ));
        }
        let action_id = col("action_id", to_string_opt(get("action_id")))?;
        let decision_id = col("decision_id", to_string_opt(get("decision_id")))?;
        let item_id = col("item_id", to_string_opt(get("item_id")))?;
        let value = col("value", to_f64_opt(get("value")))?;
        match (event_type.as_str(), value) {
            ("survey_nps", v)
                if !v.is_some_and(|v| (0.0..=10.0).contains(&v) && v.fract() == 0.0) =>
            {
                return Err((
                    "value".into(),
                    format!("survey_nps needs a whole score 0–10, got {v:?}"),
                ));
            }
            ("survey_csat", v)
                if !v.is_some_and(|v| (1.0..=5.0).contains(&v) && v.fract() == 0.0) =>
            {
                return Err((
                    "value".into(),
                    format!("survey_csat needs a whole score 1–5, got {v:?}"),
                ));
            }
            ("purchase" | "return", Some(v)) if v < 0.0 => {
                return Err((
                    "value".into(),
                    format!("{event_type} value must be >= 0, got {v}"),
                ));
            }
            _ => {}
        }
        let properties = self.extras(fields)?;
        let Builders::Events(b) = &mut self.builders else {
            unreachable!("events validator holds event builders")
        };
        b.event_id.append_option(event_id.as_deref());
        b.customer_id.append_value(&customer_id);
        b.ts.append_value(ts);
        b.event_type.append_value(&event_type);
        b.channel.append_option(channel.as_deref());
        b.action_id.append_option(action_id.as_deref());
        b.decision_id.append_option(decision_id.as_deref());
        b.item_id.append_option(item_id.as_deref());
        b.value.append_option(value);
        b.properties.append_option(properties.as_deref());
        self.event_ids.push(event_id);
        Ok(())
    }

    fn push_customer(
        &mut self,
        fields: &[(&str, Cell<'_>)],
    ) -> std::result::Result<(), (String, String)> {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&Cell::Null, |(_, c)| c)
        };

        let customer_id = required(
            "customer_id",
            col("customer_id", to_string_opt(get("customer_id")))?,
        )?;
        let created_at = required(
            "created_at",
            col("created_at", to_ts_opt(get("created_at")))?,
        )?;
        let age_band = col("age_band", to_string_opt(get("age_band")))?;
        let region = col("region", to_string_opt(get("region")))?;
        let segment = col("segment", to_string_opt(get("segment")))?;
        let mut consents = Vec::with_capacity(CONSENT_COLUMNS.len());
        for (name, _) in CONSENT_COLUMNS {
            consents.push(col(name, to_bool_opt(get(name)))?);
        }
        let updated_at = col("updated_at", to_ts_opt(get("updated_at")))?;
        let attributes = self.extras(fields)?;
        let Builders::Customers(b) = &mut self.builders else {
            unreachable!("customers validator holds customer builders")
        };
        b.customer_id.append_value(&customer_id);
        b.created_at.append_value(created_at);
        b.age_band.append_option(age_band.as_deref());
        b.region.append_option(region.as_deref());
        b.segment.append_option(segment.as_deref());
        for (builder, c) in b.consents.iter_mut().zip(consents) {
            builder.append_option(c);
        }
        b.attributes.append_option(attributes.as_deref());
        b.updated_at.append_option(updated_at);
        Ok(())
    }

    /// Takes the rows accepted so far as a batch (the builders start empty again).
    pub fn take(&mut self) -> Result<Validated> {
        let columns: Vec<ArrayRef> = match &mut self.builders {
            Builders::Events(b) => vec![
                Arc::new(b.event_id.finish()),
                Arc::new(b.customer_id.finish()),
                Arc::new(b.ts.finish()),
                Arc::new(b.event_type.finish()),
                Arc::new(b.channel.finish()),
                Arc::new(b.action_id.finish()),
                Arc::new(b.decision_id.finish()),
                Arc::new(b.item_id.finish()),
                Arc::new(b.value.finish()),
                Arc::new(b.properties.finish()),
            ],
            Builders::Customers(b) => {
                let mut cols: Vec<ArrayRef> = vec![
                    Arc::new(b.customer_id.finish()),
                    Arc::new(b.created_at.finish()),
                    Arc::new(b.age_band.finish()),
                    Arc::new(b.region.finish()),
                    Arc::new(b.segment.finish()),
                ];
                for c in &mut b.consents {
                    cols.push(Arc::new(c.finish()));
                }
                cols.push(Arc::new(b.attributes.finish()));
                cols.push(Arc::new(b.updated_at.finish()));
                cols
            }
        };
        self.rows = 0;
        let batch = RecordBatch::try_new(self.kind.schema(), columns)?;
        Ok(Validated {
            batch,
            event_ids: std::mem::take(&mut self.event_ids),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Cell<'_> {
        Cell::Str(Cow::Borrowed(v))
    }

    #[test]
    fn parses_timestamp_forms() {
        let z = parse_ts("2025-03-01T10:00:00Z").unwrap();
        assert_eq!(parse_ts("2025-03-01 10:00:00").unwrap(), z);
        assert_eq!(parse_ts("2025-03-01T11:00:00+01:00").unwrap(), z);
        assert_eq!(parse_ts("2025-03-01").unwrap() + 10 * 3_600_000_000, z);
        assert!(
            parse_ts("yesterday")
                .unwrap_err()
                .contains("cannot parse timestamp")
        );
    }

    #[test]
    fn good_and_bad_event_rows() {
        let mut v = Validator::new(TableKind::Events, "e.csv");
        assert!(v.push(
            1,
            &[
                ("customer_id", s("c1")),
                ("ts", s("2025-01-01")),
                ("event_type", s("visit")),
                ("channel", s("Web")),
                ("campaign", s("x"))
            ]
        ));
        assert!(!v.push(
            2,
            &[
                ("customer_id", s("c1")),
                ("ts", s("soon")),
                ("event_type", s("visit"))
            ]
        ));
        assert!(!v.push(
            3,
            &[
                ("customer_id", s("c1")),
                ("ts", s("2025-01-01")),
                ("event_type", s("purchase")),
                ("value", s("ten"))
            ]
        ));
        assert!(!v.push(
            4,
            &[
                ("customer_id", s("")),
                ("ts", s("2025-01-01")),
                ("event_type", s("visit"))
            ]
        ));
        assert!(!v.push(
            5,
            &[
                ("customer_id", s("c1")),
                ("ts", s("2025-01-01")),
                ("event_type", s("survey_nps")),
                ("value", Cell::Int(11))
            ]
        ));
        assert!(!v.push(
            6,
            &[
                ("customer_id", s("c1")),
                ("ts", s("2025-01-01")),
                ("event_type", s("visit")),
                ("channel", s("pigeon"))
            ]
        ));
        assert_eq!(v.errors.len(), 5);
        assert_eq!((v.errors[0].row, v.errors[0].column.as_str()), (2, "ts"));
        assert_eq!(v.errors[1].column, "value");
        assert!(v.errors[1].reason.contains("expected a number"));
        assert_eq!(v.errors[2].column, "customer_id");
        let out = v.take().unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        let props = out
            .batch
            .column(9)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(props.value(0), r#"{"campaign":"x"}"#);
    }

    #[test]
    fn customer_rows_and_consents() {
        let mut v = Validator::new(TableKind::Customers, "c.jsonl");
        assert!(v.push(
            1,
            &[
                ("customer_id", s("c1")),
                ("created_at", s("2024-05-01")),
                ("consent_email", Cell::Bool(true)),
                ("income", Cell::Int(50))
            ]
        ));
        assert!(!v.push(
            2,
            &[
                ("customer_id", s("c2")),
                ("created_at", s("2024-05-01")),
                ("consent_sms", s("maybe"))
            ]
        ));
        assert_eq!(v.errors[0].column, "consent_sms");
        let out = v.take().unwrap();
        assert_eq!(out.batch.num_rows(), 1);
    }

    #[test]
    fn missing_required_columns_are_named() {
        let err = Validator::check_columns(TableKind::Events, &["customer_id", "event_type"])
            .unwrap_err();
        assert!(err.contains("`ts`"), "{err}");
        assert!(
            Validator::check_columns(TableKind::Customers, &["customer_id", "created_at"]).is_ok()
        );
    }
}
