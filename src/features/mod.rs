//! Features: one definition, computed two ways — in batch by DataFusion over the events
//! Parquet ([`build_features`]) and online, incrementally, per customer ([`OnlineState`]) —
//! and point-in-time training sets ([`build_dataset`]).
//!
//! A [`FeatureSpec`] (`[[features]]` in `baton.toml`) is compiled once into a
//! [`FeatureSet`]: filter predicates are parsed into the expression AST of
//! [`crate::decide::expr`] and type-checked against the event columns; the batch builder
//! translates that AST to DataFusion expressions, the online state evaluates the same AST on
//! each event. Ratio and `expr` features, profile encodings and the finishing of raw
//! aggregates are shared code ([`row`]), so the two paths can only differ in aggregation,
//! and parity tests compare them feature by feature.
//!
//! # Time semantics (identical in both paths)
//!
//! - **As-of `T`** (µs, UTC): a feature at `T` uses only events with `ts < T`, strictly.
//! - **Days** are UTC calendar days, `day(t) = floor(t / 86 400 s)`.
//! - **Window `Wd`** at `T` covers events with `ts` in `[start(day(T)) − W days, T)`: the
//!   `W` whole days before `T`'s day plus `T`'s day up to `T`. Windows are aligned to UTC day
//!   boundaries, so the online state keeps one bucket per day (at most `W + 1` of them) and
//!   is exact at every edge. `all` covers every event before `T`.
//! - **`days_since_first` / `days_since_last`** = `day(T) − day(ts of the first/last
//!   matching event in the window)`: whole days, 0 for an event earlier on `T`'s day.
//! - **`last`** = the field of the latest matching event with a non-null field; ties on `ts`
//!   go to the largest value.
//! - **`tenure_days`** = `day(T) − day(created_at)`.
//!
//! # Nulls
//!
//! `count`, `distinct_count` and `sum` are 0 without matching events; `avg`, `min`, `max`,
//! `last` and `days_since_*` are null. Aggregations over a `field` ignore events where it is
//! null (SQL semantics). A `ratio` is null when either side is null or the denominator is 0.
//! An `expr` is null when it evaluates to null; booleans are 1.0 / 0.0. One-hot columns are
//! null when the attribute is missing, all 0 when the value is not in the category list;
//! a missing consent is 0 (no consent); profile features are null for a customer missing from
//! the customers table.
//!
//! # Rows
//!
//! The batch table has one row per customer that has an event before `T` or is in the
//! customers table with `created_at < T`, sorted by `customer_id`: `customer_id`, `as_of`,
//! then [`FeatureSet::columns`] as Float64.
//!
//! # Online state: memory and ordering
//!
//! Per customer and windowed feature, the state keeps only the days that had a matching
//! event, at most `W + 1` buckets of 16 bytes; `all` windows keep a constant-size
//! accumulator; `distinct_count` keeps one entry per distinct value seen in the window.
//! Buckets older than `max_day_seen − W` are dropped (no later read can need them).
//! Events may arrive in any order: a late event is placed into its day's bucket (or, for
//! `last` and `days_since_*`, compared by time), so reads stay exact; a late event older
//! than every window it could still fall into is ignored, which is exact as well. A read
//! at `now` is exact when every applied event has `ts < now` ([`OnlineState::exact_at`]);
//! events at or after `now` cannot be subtracted, so apply events before reading past them.
//!
//! Profile attributes and consents come from the customers table as stored (its current
//! values): they are not versioned in time.

mod batch;
mod dataset;
mod defaults;
mod online;
mod predicate;
mod records;
pub mod row;
mod spec;

pub(crate) use batch::ts_lit;
pub use batch::{build_features, features_schema, write_features};
pub use dataset::{
    CLV_INPUTS_METADATA, DatasetSpec, History, ResponseLabel, Task, build_dataset, clv_inputs_of,
    cutoffs_every, write_dataset,
};
pub use defaults::default_features;
pub use online::OnlineState;
pub use predicate::{Event, EventField, Ty, check_filter, type_of};
pub use records::{events_from_batch, profiles_from_batch};
pub use row::{Profile, day_of, parse_duration_days, parse_time};
pub use spec::{AGGREGATIONS, ATTRIBUTE_COLUMNS, Agg, FeatureSet, FeatureSpec, Window};

/// Microseconds per day.
pub const DAY_US: i64 = 86_400_000_000;

#[cfg(test)]
mod tests;
