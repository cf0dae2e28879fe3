//! Arrow rows → online inputs: events and profiles in the data contracts of
//! [`crate::schema`] turned into [`Event`]s and [`Profile`]s, to replay history into
//! [`super::OnlineState`]s (warm start, tests, benchmarks).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use super::ATTRIBUTE_COLUMNS;
use super::predicate::Event;
use super::row::Profile;
use crate::error::{Error, Result};
use crate::schema::CONSENT_COLUMNS;

fn column(b: &RecordBatch, name: &str, t: &DataType) -> Result<ArrayRef> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::Data(format!("missing column `{name}`")))?;
    Ok(cast(c, t)?)
}

fn opt_str(a: &ArrayRef, r: usize) -> Option<String> {
    let s = a.as_string::<i32>();
    s.is_valid(r).then(|| s.value(r).to_string())
}

/// The events of an events-contract batch, with their customer ids, in row order.
pub fn events_from_batch(b: &RecordBatch) -> Result<Vec<(String, Event)>> {
    let utf8 = DataType::Utf8;
    let cid = column(b, "customer_id", &utf8)?;
    let ts = column(b, "ts", &DataType::Int64)?;
    let ts = ts.as_primitive::<Int64Type>();
    let et = column(b, "event_type", &utf8)?;
    let [ch, act, dec, item] =
        ["channel", "action_id", "decision_id", "item_id"].map(|c| column(b, c, &utf8));
    let (ch, act, dec, item) = (ch?, act?, dec?, item?);
    let value = column(b, "value", &DataType::Float64)?;
    let value = value.as_primitive::<Float64Type>();
    Ok((0..b.num_rows())
        .map(|r| {
            (
                opt_str(&cid, r).unwrap_or_default(),
                Event {
                    ts: ts.value(r),
                    event_type: opt_str(&et, r).unwrap_or_default(),
                    channel: opt_str(&ch, r),
                    action_id: opt_str(&act, r),
                    decision_id: opt_str(&dec, r),
                    item_id: opt_str(&item, r),
                    value: value.is_valid(r).then(|| value.value(r)),
                },
            )
        })
        .collect())
}

/// The profiles of a customers-contract batch, by customer id.
pub fn profiles_from_batch(b: &RecordBatch) -> Result<HashMap<String, Profile>> {
    let utf8 = DataType::Utf8;
    let cid = column(b, "customer_id", &utf8)?;
    let created = column(b, "created_at", &DataType::Int64)?;
    let created = created.as_primitive::<Int64Type>();
    let attrs = ATTRIBUTE_COLUMNS
        .iter()
        .map(|c| column(b, c, &utf8))
        .collect::<Result<Vec<_>>>()?;
    let consents = CONSENT_COLUMNS
        .iter()
        .map(|(c, _)| column(b, c, &DataType::Boolean))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..b.num_rows())
        .filter_map(|r| {
            let id = opt_str(&cid, r)?;
            let p = Profile {
                created_at: created.is_valid(r).then(|| created.value(r)),
                attributes: std::array::from_fn(|k| opt_str(&attrs[k], r)),
                consents: std::array::from_fn(|k| {
                    let c = consents[k].as_boolean();
                    c.is_valid(r).then(|| c.value(r))
                }),
            };
            Some((id, p))
        })
        .collect())
}
