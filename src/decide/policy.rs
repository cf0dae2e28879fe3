//! `[decide]` in `baton.toml`: how the engine arbitrates, explores and limits contact.
//! Every field has a documented default; [`DecideConfig::validate`] names the bad key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::CHANNELS;

/// How the engine departs from the best-scoring option to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exploration {
    /// Always the best option (propensity 1).
    None,
    /// With probability `epsilon` a uniformly random option, else the best.
    EpsilonGreedy,
    /// An option with probability ∝ exp(score / temperature).
    Softmax,
}

/// A per-channel frequency cap: at most `max` contacts within `per_days` days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCap {
    pub max: u32,
    pub per_days: u32,
}

/// Quiet hours of a channel, in UTC hours: no contact from `start` until `end`
/// (wrapping past midnight when `start > end`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: u8,
    pub end: u8,
}

impl QuietHours {
    /// Whether `hour` (0–23) is quiet.
    pub fn contains(&self, hour: u32) -> bool {
        let (s, e, h) = (u32::from(self.start), u32::from(self.end), hour);
        if s <= e {
            (s..e).contains(&h)
        } else {
            h >= s || h < e
        }
    }
}

/// The decision policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecideConfig {
    /// Score of the "do nothing" option: an action is only worth taking when its score
    /// beats this. Default 0.
    pub do_nothing_score: f64,
    /// none | epsilon_greedy | softmax. Default epsilon_greedy.
    pub exploration: Exploration,
    /// Exploration rate of epsilon_greedy, in [0, 1]. Default 0.05.
    pub epsilon: f64,
    /// Temperature of softmax (score units), > 0. Default 1.
    pub temperature: f64,
    /// Retention actions: their weight is multiplied by `1 + retention_boost × P(churn)`.
    /// Default `["win_back", "service_call"]`.
    pub retention_actions: Vec<String>,
    /// See `retention_actions`. Default 1.
    pub retention_boost: f64,
    /// Frequency caps per channel (all actions together). Default: email 3 per 7 days,
    /// sms 2 per 7, push 5 per 7, call_center 1 per 30, mail 1 per 30.
    pub channel_caps: BTreeMap<String, ChannelCap>,
    /// Quiet hours per channel (UTC). Default: sms 21–8, push 22–8, call_center 20–9.
    pub quiet_hours: BTreeMap<String, QuietHours>,
    /// An action is suppressed after this many deliveries in a row were ignored
    /// (0 disables suppression). Default 3.
    pub suppress_after_ignored: u32,
    /// How long a suppression lasts after the last ignored delivery, in days. Default 30.
    pub suppress_days: u32,
    /// A delivery without an open, click or conversion within this many days counts as
    /// ignored. Default 7.
    pub response_window_days: u32,
    /// Ranked actions returned when a request gives no limit. Default 3.
    pub default_limit: usize,
    /// The largest limit a request may ask for. Default 50.
    pub max_limit: usize,
}

impl Default for DecideConfig {
    fn default() -> Self {
        let cap = |max, per_days| ChannelCap { max, per_days };
        let quiet = |start, end| QuietHours { start, end };
        Self {
            do_nothing_score: 0.0,
            exploration: Exploration::EpsilonGreedy,
            epsilon: 0.05,
            temperature: 1.0,
            retention_actions: vec!["win_back".into(), "service_call".into()],
            retention_boost: 1.0,
            channel_caps: [
                ("call_center", cap(1, 30)),
                ("email", cap(3, 7)),
                ("mail", cap(1, 30)),
                ("push", cap(5, 7)),
                ("sms", cap(2, 7)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            quiet_hours: [
                ("call_center", quiet(20, 9)),
                ("push", quiet(22, 8)),
                ("sms", quiet(21, 8)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            suppress_after_ignored: 3,
            suppress_days: 30,
            response_window_days: 7,
            default_limit: 3,
            max_limit: 50,
        }
    }
}

impl DecideConfig {
    /// Checks ranges and names; `action_ids` are the catalog's ids.
    pub fn validate(&self, mut action_ids: impl FnMut(&str) -> bool) -> Result<()> {
        let bad = |k: &str, m: String| Err(Error::config(format!("decide.{k}"), m));
        if !self.do_nothing_score.is_finite() {
            return bad("do_nothing_score", "must be a finite number".into());
        }
        if !(0.0..=1.0).contains(&self.epsilon) {
            return bad(
                "epsilon",
                format!("must be within [0, 1], got {}", self.epsilon),
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(
                "temperature",
                format!("must be > 0, got {}", self.temperature),
            );
        }
        if !(self.retention_boost.is_finite() && self.retention_boost >= 0.0) {
            return bad("retention_boost", "must be >= 0".into());
        }
        for (i, a) in self.retention_actions.iter().enumerate() {
            if !action_ids(a) {
                return bad(
                    &format!("retention_actions[{i}]"),
                    format!("`{a}` is not an action of the catalog"),
                );
            }
        }
        for (c, cap) in &self.channel_caps {
            if !CHANNELS.contains(&c.as_str()) {
                return bad(
                    &format!("channel_caps.{c}"),
                    format!("unknown channel `{c}`"),
                );
            }
            if cap.per_days == 0 {
                return bad(
                    &format!("channel_caps.{c}.per_days"),
                    "must be at least 1".into(),
                );
            }
        }
        for (c, q) in &self.quiet_hours {
            if !CHANNELS.contains(&c.as_str()) {
                return bad(
                    &format!("quiet_hours.{c}"),
                    format!("unknown channel `{c}`"),
                );
            }
            if q.start > 23 || q.end > 24 {
                return bad(
                    &format!("quiet_hours.{c}"),
                    "start is an hour 0–23 and end an hour 0–24".into(),
                );
            }
        }
        if self.response_window_days == 0 {
            return bad("response_window_days", "must be at least 1".into());
        }
        if self.default_limit == 0 || self.default_limit > self.max_limit {
            return bad(
                "default_limit",
                format!("must be within 1..={} (max_limit)", self.max_limit),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let q = QuietHours { start: 21, end: 8 };
        assert!(q.contains(21) && q.contains(23) && q.contains(0) && q.contains(7));
        assert!(!q.contains(8) && !q.contains(12) && !q.contains(20));
        let day = QuietHours { start: 9, end: 17 };
        assert!(day.contains(9) && !day.contains(17) && !day.contains(3));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = DecideConfig {
            epsilon: 1.5,
            ..DecideConfig::default()
        };
        let e = c.validate(|_| true).unwrap_err().to_string();
        assert!(e.contains("decide.epsilon"), "{e}");
        c.epsilon = 0.1;
        c.retention_actions = vec!["nope".into()];
        let e = c.validate(|a| a != "nope").unwrap_err().to_string();
        assert!(
            e.contains("decide.retention_actions[0]") && e.contains("nope"),
            "{e}"
        );
        c.retention_actions.clear();
        c.channel_caps.insert(
            "fax".into(),
            ChannelCap {
                max: 1,
                per_days: 1,
            },
        );
        let e = c.validate(|_| true).unwrap_err().to_string();
        assert!(e.contains("decide.channel_caps.fax"), "{e}");
    }
}
