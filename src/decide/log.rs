//! The decision log: one [`DecisionRecord`] per decision, in the `decisions` contract of
//! [`crate::schema::decisions_schema`] (with the true propensity that off-policy
//! evaluation needs), and its conversion to Arrow.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, RecordBatch,
    StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use serde::{Deserialize, Serialize};

use super::engine::{Decision, Ranked};
use super::name::Name;

use crate::error::Result;
use crate::schema::{candidate_fields, decisions_schema};

/// A logged candidate: action, channel, P(response), value, score — the contract's
/// candidate struct, written as a JSON array to keep the log small: the numbers go out
/// at single precision (7 significant digits, plenty for off-policy estimates), which
/// makes a 50-candidate decision about a fifth smaller in the log. The chosen
/// pair's propensity, the importance weight, stays at full precision in
/// [`DecisionRecord::propensity`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoggedCandidate(pub Name, pub Name, pub f64, pub f64, pub f64);

impl Serialize for LoggedCandidate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTupleStruct;
        let mut t = s.serialize_tuple_struct("LoggedCandidate", 5)?;
        t.serialize_field(&*self.0)?;
        t.serialize_field(&*self.1)?;
        for v in [self.2, self.3, self.4] {
            match narrowed(v) {
                Some(single) => t.serialize_field(&single)?,
                None => t.serialize_field(&v)?,
            }
        }
        t.end()
    }
}

/// A logged number at single precision, or `None` beyond single precision's range (the
/// full value is kept rather than written as infinity).
fn narrowed(v: f64) -> Option<f32> {
    let single = v as f32;
    (single.is_finite() || !v.is_finite()).then_some(single)
}

impl From<Ranked> for LoggedCandidate {
    fn from(r: Ranked) -> Self {
        Self(r.action_id, r.channel, r.p_response, r.value, r.score)
    }
}

/// One row of the decision log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision_id: String,
    pub customer_id: String,
    /// µs since the epoch.
    pub ts: i64,
    /// The request context as a JSON object.
    pub context: String,
    /// Every scored candidate, best first.
    pub candidates: Vec<LoggedCandidate>,
    pub action_id: String,
    pub channel: String,
    pub position: i32,
    pub propensity: f64,
    pub explore: bool,
    pub policy_version: String,
    /// task → model version, as a JSON object.
    pub model_versions: String,
}

impl DecisionRecord {
    /// The log row of `d`, made with request `context`; takes the decision's candidates
    /// (which only the log keeps).
    pub fn of(d: &mut Decision, context: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self {
            decision_id: d.decision_id.clone(),
            customer_id: d.customer_id.clone(),
            ts: d.ts,
            context: serde_json::to_string(context).unwrap_or_default(),
            candidates: std::mem::take(&mut d.candidates)
                .into_iter()
                .map(LoggedCandidate::from)
                .collect(),
            action_id: d.chosen.action_id.clone(),
            channel: d.chosen.channel.clone(),
            position: d.chosen.position as i32,
            propensity: d.chosen.propensity,
            explore: d.chosen.explore,
            policy_version: d.policy_version.clone(),
            model_versions: serde_json::to_string(&d.model_versions).unwrap_or_default(),
        }
    }

    /// Writes the record's fields as JSON object members (`"decision_id":…,…`, no braces),
    /// exactly what `serde_json` writes for them and read back by the same `Deserialize`.
    /// This is the decision log's hot path (one record per decision, 50 candidates of
    /// two names and three numbers each): written by hand it skips serde's per-value
    /// dispatch, copies names that need no escaping as they are, and formats each
    /// action's value once per record instead of once per candidate.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"decision_id\":");
        json_str(out, &self.decision_id);
        out.extend_from_slice(b",\"customer_id\":");
        json_str(out, &self.customer_id);
        out.extend_from_slice(b",\"ts\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.ts).as_bytes());
        out.extend_from_slice(b",\"context\":");
        json_str(out, &self.context);
        out.extend_from_slice(b",\"candidates\":[");
        let mut num = zmij::Buffer::new();
        // (bits of a value, where its text starts and ends in `out`): the few distinct
        // action values, formatted once
        let mut seen: Vec<(u64, usize, usize)> = Vec::new();
        for (i, c) in self.candidates.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            json_str(out, &c.0);
            out.push(b',');
            json_str(out, &c.1);
            out.push(b',');
            single(out, &mut num, c.2);
            out.push(b',');
            match seen.iter().find(|(bits, ..)| *bits == c.3.to_bits()) {
                Some(&(_, from, to)) => out.extend_from_within(from..to),
                None => {
                    let from = out.len();
                    single(out, &mut num, c.3);
                    if seen.len() < 32 {
                        seen.push((c.3.to_bits(), from, out.len()));
                    }
                }
            }
            out.push(b',');
            single(out, &mut num, c.4);
            out.push(b']');
        }
        out.extend_from_slice(b"],\"action_id\":");
        json_str(out, &self.action_id);
        out.extend_from_slice(b",\"channel\":");
        json_str(out, &self.channel);
        out.extend_from_slice(b",\"position\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.position).as_bytes());
        out.extend_from_slice(b",\"propensity\":");
        double(out, &mut num, self.propensity);
        out.extend_from_slice(if self.explore {
            b",\"explore\":true"
        } else {
            b",\"explore\":false"
        });
        out.extend_from_slice(b",\"policy_version\":");
        json_str(out, &self.policy_version);
        out.extend_from_slice(b",\"model_versions\":");
        json_str(out, &self.model_versions);
    }
}

/// `s` as a JSON string: copied as it is when nothing in it needs escaping.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // writing a string into a Vec cannot fail
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A candidate's number as [`LoggedCandidate`] serialises it ([`narrowed`]).
fn single(out: &mut Vec<u8>, num: &mut zmij::Buffer, v: f64) {
    match narrowed(v) {
        Some(s) if s.is_finite() => out.extend_from_slice(num.format_finite(s).as_bytes()),
        _ => double(out, num, v),
    }
}

/// `v` as `serde_json` writes an f64: `null` when not finite.
fn double(out: &mut Vec<u8>, num: &mut zmij::Buffer, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(num.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The records as a batch of the `decisions` contract.
pub fn decisions_batch(rows: &[DecisionRecord]) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut cid = StringBuilder::new();
    let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut ctx = StringBuilder::new();
    let fields = candidate_fields();
    let mut cands =
        ListBuilder::new(StructBuilder::from_fields(fields.clone(), 0)).with_field(Arc::new(
            arrow::datatypes::Field::new("item", arrow::datatypes::DataType::Struct(fields), true),
        ));
    let mut action = StringBuilder::new();
    let mut channel = StringBuilder::new();
    let mut position = Int32Builder::new();
    let mut propensity = Float64Builder::new();
    let mut explore = BooleanBuilder::new();
    let mut policy = StringBuilder::new();
    let mut versions = StringBuilder::new();
    for r in rows {
        id.append_value(&r.decision_id);
        cid.append_value(&r.customer_id);
        ts.append_value(r.ts);
        ctx.append_value(&r.context);
        let s = cands.values();
        for c in &r.candidates {
            s.field_builder::<StringBuilder>(0)
                .expect("action_id")
                .append_value(c.0);
            s.field_builder::<StringBuilder>(1)
                .expect("channel")
                .append_value(c.1);
            s.field_builder::<Float64Builder>(2)
                .expect("p_response")
                .append_value(c.2);
            s.field_builder::<Float64Builder>(3)
                .expect("value")
                .append_value(c.3);
            s.field_builder::<Float64Builder>(4)
                .expect("score")
                .append_value(c.4);
            s.append(true);
        }
        cands.append(true);
        action.append_value(&r.action_id);
        channel.append_value(&r.channel);
        position.append_value(r.position);
        propensity.append_value(r.propensity);
        explore.append_value(r.explore);
        policy.append_value(&r.policy_version);
        versions.append_value(&r.model_versions);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(cid.finish()),
        Arc::new(ts.finish()),
        Arc::new(ctx.finish()),
        Arc::new(cands.finish()),
        Arc::new(action.finish()),
        Arc::new(channel.finish()),
        Arc::new(position.finish()),
        Arc::new(propensity.finish()),
        Arc::new(explore.finish()),
        Arc::new(policy.finish()),
        Arc::new(versions.finish()),
    ];
    Ok(RecordBatch::try_new(decisions_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde writes, read back (a `to_value` keeps f32s unrounded, text does not).
    fn text_value<T: serde::Serialize>(t: &T) -> serde_json::Value {
        serde_json::from_str(&serde_json::to_string(t).unwrap()).unwrap()
    }

    fn record(candidates: Vec<LoggedCandidate>) -> DecisionRecord {
        DecisionRecord {
            decision_id: "d-1".into(),
            customer_id: "c\"7\\\u{1}é".into(),
            ts: -1_700_000_000_123_456,
            context: r#"{"channel":"web","n":2}"#.into(),
            candidates,
            action_id: "a1".into(),
            channel: "email".into(),
            position: 3,
            propensity: 0.123_456_789_012_345_6,
            explore: true,
            policy_version: "p0123".into(),
            model_versions: r#"{"response":"v1"}"#.into(),
        }
    }

    /// The hand-written line is what serde writes, value for value, and reads back to
    /// the same record: odd strings, repeated values, numbers beyond f32, non-finite.
    #[test]
    fn the_hand_written_record_is_what_serde_writes() {
        let mut cands = Vec::new();
        for i in 0..40 {
            let v = [10.0, 13.5, 1e300, 0.1][i % 4];
            cands.push(LoggedCandidate(
                Name::new(["a1", "a\"2", "ü\n"][i % 3]),
                Name::new(["web", "email"][i % 2]),
                1.0 / (i as f64 + 3.0),
                v,
                v / 7.0 - 0.01 * i as f64,
            ));
        }
        let r = record(cands);
        let mut line = b"{".to_vec();
        r.write_json_fields(&mut line);
        line.push(b'}');
        let ours: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(ours, text_value(&r));
        let back: DecisionRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&r).unwrap()
        );
        for (flag, empty) in [(false, true), (true, false)] {
            let mut r = record(if empty {
                Vec::new()
            } else {
                r.candidates.clone()
            });
            r.explore = flag;
            r.propensity = 1.0;
            let mut line = b"{".to_vec();
            r.write_json_fields(&mut line);
            line.push(b'}');
            let ours: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(ours, text_value(&r));
        }
        // a score that is not finite is written as serde writes it, `null`
        let r = record(vec![LoggedCandidate(
            "a".into(),
            "web".into(),
            0.5,
            1.0,
            f64::NAN,
        )]);
        let mut line = b"{".to_vec();
        r.write_json_fields(&mut line);
        line.push(b'}');
        let ours: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(ours, text_value(&r));
    }

    #[test]
    fn candidates_are_logged_at_single_precision_unless_out_of_its_range() {
        let c = LoggedCandidate("a".into(), "email".into(), 0.123_456_789_012, 1e300, -2.5);
        let line = serde_json::to_string(&c).unwrap();
        assert_eq!(line, r#"["a","email",0.12345679,1e+300,-2.5]"#);
        let back: LoggedCandidate = serde_json::from_str(&line).unwrap();
        assert!((back.2 - c.2).abs() < 1e-7);
        assert_eq!((back.3, back.4), (c.3, c.4));
    }
}
