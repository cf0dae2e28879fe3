//! The feature schema of a model: which input columns it reads, in which order, and how
//! categorical columns are one-hot encoded. It is saved with every model and compared with
//! the schema the current feature specs produce before a model is used.

use serde::{Deserialize, Serialize};

use crate::config::{ActionKind, ActionSpec};
use crate::features::{FeatureSet, Task};
use crate::schema::CHANNELS;

pub use crate::clv::CLV_COLUMNS;
use crate::clv::ClvInputs;

/// A categorical input column, one-hot encoded over `values` (an unseen value encodes as
/// all zeros, so a new action still gets a score from its channel and kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Categorical {
    pub column: String,
    pub values: Vec<String>,
}

/// Names, types and encodings of a model's inputs, with a hash of all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// Numeric columns (Float64; null reads as missing), in input order.
    pub numeric: Vec<String>,
    /// Categorical columns, one-hot encoded after the numeric ones.
    pub categorical: Vec<Categorical>,
    /// FNV-1a 64 over the names and encodings, hex.
    pub hash: String,
    /// The fit that computes the [`CLV_COLUMNS`] at scoring time: the training set's last
    /// cutoff's (see `features::dataset`). Not part of the hash. `None` in the specs'
    /// schemas, and in models trained on a set without one: their customer-value inputs
    /// read as missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clv: Option<ClvInputs>,
}

impl FeatureSchema {
    /// A schema from its parts (computes the hash).
    pub fn new(numeric: Vec<String>, categorical: Vec<Categorical>) -> Self {
        let mut s = Self {
            numeric,
            categorical,
            hash: String::new(),
            clv: None,
        };
        s.hash = s.compute_hash();
        s
    }

    /// The schema that the feature specs and the action catalog give a task: every feature
    /// column, the customer-value columns and, for the response task, one-hot action,
    /// channel and action kind.
    pub fn for_task(task: Task, set: &FeatureSet, actions: &[ActionSpec]) -> Self {
        let mut numeric: Vec<String> = set.columns().to_vec();
        numeric.extend(CLV_COLUMNS.iter().map(|s| s.to_string()));
        let categorical = match task {
            Task::Response => vec![
                Categorical {
                    column: "action_id".into(),
                    values: actions.iter().map(|a| a.id.clone()).collect(),
                },
                Categorical {
                    column: "channel".into(),
                    values: CHANNELS.iter().map(|s| s.to_string()).collect(),
                },
                Categorical {
                    column: "action_kind".into(),
                    values: ActionKind::ALL
                        .iter()
                        .map(|k| k.as_str().to_string())
                        .collect(),
                },
            ],
            Task::Churn | Task::Channel => Vec::new(),
        };
        Self::new(numeric, categorical)
    }

    fn compute_hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |s: &str| {
            for b in s.bytes().chain([0xff]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for n in &self.numeric {
            eat("num");
            eat(n);
        }
        for c in &self.categorical {
            eat("cat");
            eat(&c.column);
            for v in &c.values {
                eat(v);
            }
        }
        format!("{h:016x}")
    }

    /// Width of the encoded input vector.
    pub fn width(&self) -> usize {
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| c.values.len())
                .sum::<usize>()
    }

    /// Names of the encoded inputs (`column=value` for one-hot inputs).
    pub fn input_names(&self) -> Vec<String> {
        let mut names = self.numeric.clone();
        for c in &self.categorical {
            names.extend(c.values.iter().map(|v| format!("{}={v}", c.column)));
        }
        names
    }

    /// For each schema column (numeric, then categorical), the range of encoded inputs it
    /// fills: what permutation importance permutes together.
    pub fn column_groups(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let mut out: Vec<_> = self
            .numeric
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i..i + 1))
            .collect();
        let mut at = self.numeric.len();
        for c in &self.categorical {
            out.push((c.column.clone(), at..at + c.values.len()));
            at += c.values.len();
        }
        out
    }

    /// Writes the one-hot part for categorical values `cats` (one per categorical column,
    /// `None` for missing) into `out[numeric.len()..]`. No allocation.
    pub fn encode_categorical(&self, cats: &[Option<&str>], out: &mut [f64]) {
        let mut at = self.numeric.len();
        for (c, v) in self.categorical.iter().zip(cats) {
            let slot = &mut out[at..at + c.values.len()];
            slot.fill(0.0);
            if let Some(v) = v
                && let Some(k) = c.values.iter().position(|x| x == v)
            {
                slot[k] = 1.0;
            }
            at += c.values.len();
        }
    }

    /// What differs between this schema (a model's) and `expected` (the current specs'),
    /// one line per difference; empty when they match.
    pub fn diff(&self, expected: &FeatureSchema) -> Vec<String> {
        let mut out = Vec::new();
        let have: std::collections::HashSet<&String> = self.numeric.iter().collect();
        let want: std::collections::HashSet<&String> = expected.numeric.iter().collect();
        let mut missing: Vec<_> = expected
            .numeric
            .iter()
            .filter(|n| !have.contains(n))
            .collect();
        let mut extra: Vec<_> = self.numeric.iter().filter(|n| !want.contains(n)).collect();
        missing.sort();
        extra.sort();
        for n in missing {
            out.push(format!(
                "feature `{n}` is in the specs but not in the model"
            ));
        }
        for n in extra {
            out.push(format!(
                "feature `{n}` is in the model but not in the specs"
            ));
        }
        if out.is_empty() && self.numeric != expected.numeric {
            out.push("the features are the same but in a different order".into());
        }
        for c in &expected.categorical {
            match self.categorical.iter().find(|m| m.column == c.column) {
                None => out.push(format!(
                    "categorical `{}` is in the specs but not in the model",
                    c.column
                )),
                Some(m) if m.values != c.values => out.push(format!(
                    "categorical `{}` encodes [{}] in the model but [{}] in the specs",
                    c.column,
                    m.values.join(", "),
                    c.values.join(", ")
                )),
                Some(_) => {}
            }
        }
        for m in &self.categorical {
            if !expected.categorical.iter().any(|c| c.column == m.column) {
                out.push(format!(
                    "categorical `{}` is in the model but not in the specs",
                    m.column
                ));
            }
        }
        if out.is_empty() && self.hash != expected.hash {
            out.push(format!(
                "schema hash {} differs from {}",
                self.hash, expected.hash
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(n: &[&str]) -> FeatureSchema {
        FeatureSchema::new(
            n.iter().map(|s| s.to_string()).collect(),
            vec![Categorical {
                column: "channel".into(),
                values: vec!["web".into(), "app".into()],
            }],
        )
    }

    #[test]
    fn hash_changes_with_names_and_order() {
        assert_eq!(schema(&["a", "b"]).hash, schema(&["a", "b"]).hash);
        assert_ne!(schema(&["a", "b"]).hash, schema(&["b", "a"]).hash);
        assert_ne!(schema(&["a", "b"]).hash, schema(&["a", "c"]).hash);
    }

    #[test]
    fn diff_lists_missing_and_extra() {
        let d = schema(&["a", "b"]).diff(&schema(&["a", "c"]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("`c` is in the specs but not in the model"));
        assert!(d[1].contains("`b` is in the model but not in the specs"));
        assert!(schema(&["a"]).diff(&schema(&["a"])).is_empty());
    }

    #[test]
    fn one_hot_unknown_is_zero() {
        let s = schema(&["a"]);
        let mut out = [9.0; 3];
        s.encode_categorical(&[Some("app")], &mut out);
        assert_eq!(out, [9.0, 0.0, 1.0]);
        s.encode_categorical(&[Some("pigeon")], &mut out);
        assert_eq!(out, [9.0, 0.0, 0.0]);
        assert_eq!(s.input_names(), ["a", "channel=web", "channel=app"]);
    }
}
