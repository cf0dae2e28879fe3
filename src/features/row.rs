//! The code both paths share once raw aggregates are known: profile encodings, ratios and
//! `expr` features, plus the time helpers (days, as-of parsing).

use chrono::{DateTime, NaiveDate};

use super::DAY_US;
use super::spec::{Def, FeatureSet};
use crate::decide::expr::Value;
use crate::error::{Error, Result};

/// The UTC day (days since the epoch) of a µs timestamp.
pub fn day_of(ts_us: i64) -> i64 {
    ts_us.div_euclid(DAY_US)
}

/// Parses an as-of time: `YYYY-MM-DD` (the start of that UTC day) or an RFC 3339
/// timestamp. Returns µs since the epoch.
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            Error::Invalid(format!(
                "`{s}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time"
            ))
        })
}

/// Parses a duration in whole days: `30d`.
pub fn parse_duration_days(s: &str) -> Result<u32> {
    s.strip_suffix('d')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Invalid(format!("`{s}` is not a duration in days such as `30d`")))
}

/// A customer's profile: the customers-table columns features read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// `created_at`, µs.
    pub created_at: Option<i64>,
    /// `age_band`, `region`, `segment` (the order of [`super::ATTRIBUTE_COLUMNS`]).
    pub attributes: [Option<String>; 3],
    /// The consent columns, in the order of [`crate::schema::CONSENT_COLUMNS`].
    pub consents: [Option<bool>; 5],
}

impl FeatureSet {
    /// Fills the profile features (attributes, consents, tenure) of `row` as of `as_of`.
    /// `profile = None`: the customer is not in the customers table.
    pub(crate) fn fill_profile(
        &self,
        created_at: Option<i64>,
        attributes: [Option<&str>; 3],
        consents: [Option<bool>; 5],
        known: bool,
        as_of: i64,
        row: &mut [Option<f64>],
    ) {
        for (i, d) in self.defs.iter().enumerate() {
            let at = self.offsets[i];
            match d {
                Def::Tenure => row[at] = created_at.map(|c| (day_of(as_of) - day_of(c)) as f64),
                Def::Consent { idx } => {
                    row[at] = known.then(|| f64::from(u8::from(consents[*idx].unwrap_or(false))));
                }
                Def::Attribute {
                    attr,
                    one_hot,
                    categories,
                } => {
                    let v = attributes[*attr];
                    let k = v.and_then(|v| categories.iter().position(|c| c == v));
                    if *one_hot {
                        for (j, slot) in row[at..at + categories.len()].iter_mut().enumerate() {
                            *slot = v.map(|_| if k == Some(j) { 1.0 } else { 0.0 });
                        }
                    } else {
                        row[at] = k.map(|k| k as f64);
                    }
                }
                _ => {}
            }
        }
    }

    /// Computes the ratio and `expr` features of `row` from the others, in dependency order.
    pub(crate) fn finish_derived(&self, row: &mut [Option<f64>]) {
        for &i in &self.derived_order {
            let v = match &self.defs[i] {
                Def::Ratio { num, den } => {
                    match (row[self.offsets[*num]], row[self.offsets[*den]]) {
                        (Some(n), Some(d)) if d != 0.0 => Some(n / d).filter(|x| x.is_finite()),
                        _ => None,
                    }
                }
                Def::Expr { expr, .. } => {
                    let r: &[Option<f64>] = row;
                    match expr.eval(&|name: &str| self.value(r, name)) {
                        Value::Num(x) => Some(x).filter(|x| x.is_finite()),
                        Value::Bool(b) => Some(f64::from(u8::from(b))),
                        _ => None,
                    }
                }
                _ => continue,
            };
            row[self.offsets[i]] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_days() {
        assert_eq!(parse_time("1970-01-02").unwrap(), DAY_US);
        assert_eq!(parse_time("1970-01-01T01:00:00Z").unwrap(), 3_600_000_000);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(DAY_US - 1), 0);
        assert_eq!(parse_duration_days("30d").unwrap(), 30);
        assert!(parse_duration_days("30").is_err());
    }
}
