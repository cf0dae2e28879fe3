//! `baton.toml`: typed, validated configuration with documented defaults.
//!
//! Without a file the built-in defaults apply (a retail catalog of eight actions). A file
//! only needs the keys it changes; unknown keys are errors, and every error names the
//! dotted key that is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::decide::expr::Expr;
use crate::error::{Error, IoContext, Result};
use crate::schema::CHANNELS;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The action catalog (`[[actions]]`). Default: [`default_actions`].
    pub actions: Vec<ActionSpec>,
    /// Defaults for `baton simulate` (`[simulate]`).
    pub simulate: SimulateConfig,
    /// Ingest settings (`[ingest]`).
    pub ingest: IngestConfig,
    /// Feature definitions (`[[features]]`), computed in batch and online. Default:
    /// [`crate::features::default_features`].
    pub features: Vec<crate::features::FeatureSpec>,
    /// The decision policy (`[decide]`).
    pub decide: crate::decide::DecideConfig,
    /// The HTTP server (`[serve]`).
    pub serve: ServeConfig,
    /// Batch scoring (`[batch]`).
    pub batch: BatchConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            actions: default_actions(),
            simulate: SimulateConfig::default(),
            ingest: IngestConfig::default(),
            features: crate::features::default_features(),
            decide: crate::decide::DecideConfig::default(),
            serve: ServeConfig::default(),
            batch: BatchConfig::default(),
        }
    }
}

/// What an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A commercial offer (discount, upsell).
    Offer,
    /// A message without an incentive (reminder, recommendation).
    Message,
    /// A service action (follow-up call, survey).
    Service,
}

impl ActionKind {
    /// All kinds, in a fixed order.
    pub const ALL: [ActionKind; 3] = [ActionKind::Offer, ActionKind::Message, ActionKind::Service];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Offer => "offer",
            ActionKind::Message => "message",
            ActionKind::Service => "service",
        }
    }
}

/// One action of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Unique id (letters, digits, `_`, `-`).
    pub id: String,
    /// Human-readable name. Default: the id.
    #[serde(default)]
    pub name: String,
    /// offer, message or service.
    pub kind: ActionKind,
    /// Channels the action may be delivered on (see [`CHANNELS`]).
    pub channels: Vec<String>,
    /// Business value of a response (currency units). Default 0.
    #[serde(default)]
    pub value: f64,
    /// Cost of one delivery per channel; channels not listed cost 0.
    #[serde(default)]
    pub cost: BTreeMap<String, f64>,
    /// Eligibility expression over features, profile attributes, scores and context.
    /// Default `true` (always eligible).
    #[serde(default = "default_eligibility")]
    pub eligibility: String,
    /// At most this many deliveries of the action per customer within `per_days`.
    /// Default 1.
    #[serde(default = "default_max_contacts")]
    pub max_contacts: u32,
    /// Window of `max_contacts`, in days. Default 30.
    #[serde(default = "default_per_days")]
    pub per_days: u32,
    /// Minimum days between two deliveries of this action to a customer. Default 7.
    #[serde(default = "default_cooldown")]
    pub cooldown_days: u32,
    /// Arbitration weight. Default 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// First day the action may be used (`YYYY-MM-DD`), optional.
    #[serde(default)]
    pub start: Option<String>,
    /// Last day the action may be used (`YYYY-MM-DD`), optional.
    #[serde(default)]
    pub end: Option<String>,
}

fn default_eligibility() -> String {
    "true".into()
}
fn default_max_contacts() -> u32 {
    1
}
fn default_per_days() -> u32 {
    30
}
fn default_cooldown() -> u32 {
    7
}
fn default_weight() -> f64 {
    1.0
}

impl ActionSpec {
    /// Delivery cost on `channel` (0 when not listed).
    pub fn cost_on(&self, channel: &str) -> f64 {
        self.cost.get(channel).copied().unwrap_or(0.0)
    }

    /// The parsed eligibility expression.
    pub fn eligibility_expr(&self) -> Result<Expr> {
        Expr::parse(&self.eligibility).map_err(|e| match e {
            Error::Expression {
                position, message, ..
            } => Error::Expression {
                context: format!("action `{}` eligibility `{}`", self.id, self.eligibility),
                position,
                message,
            },
            other => other,
        })
    }

    /// The start and end dates, parsed.
    pub fn active_dates(&self) -> Result<(Option<chrono::NaiveDate>, Option<chrono::NaiveDate>)> {
        let parse = |field: &str, v: &Option<String>| -> Result<Option<chrono::NaiveDate>> {
            v.as_deref()
                .map(|s| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                        Error::config(
                            format!("actions.{}.{field}", self.id),
                            format!("`{s}` is not a date of the form YYYY-MM-DD"),
                        )
                    })
                })
                .transpose()
        };
        Ok((parse("start", &self.start)?, parse("end", &self.end)?))
    }
}

/// Defaults of `baton simulate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateConfig {
    /// Number of customers. Default 20,000.
    pub customers: u64,
    /// Number of simulated days. Default 120.
    pub days: u32,
    /// Random seed. Default 42.
    pub seed: u64,
    /// First simulated day (`YYYY-MM-DD`). Default 2025-01-01.
    pub start_date: String,
    /// Probability that an active customer gets a marketing action on a given day from the
    /// uniform-random behaviour policy. Default 0.08.
    pub action_rate: f64,
    /// Closed loop (`baton simulate --policy baton`): retrain the engine's response model
    /// every this many simulated days on its training set plus the deliveries it made and
    /// the responses it saw in the loop; 0 never. Default 0.
    pub retrain_every_days: u32,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        Self {
            customers: 20_000,
            days: 120,
            seed: 42,
            start_date: "2025-01-01".into(),
            action_rate: 0.08,
            retrain_every_days: 0,
        }
    }
}

/// Ingest settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How many rejected rows to print (all go to the rejects file). Default 10.
    pub show_rejects: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { show_rejects: 10 }
    }
}

/// An API key of the server and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The bearer token (at least 16 characters).
    pub key: String,
    /// What the key may call: `decide` (decide, outcomes, reading customers), `events`
    /// (events, customer writes and erasure), `admin` (reload).
    pub scopes: Vec<String>,
}

/// Scopes an [`ApiKey`] can have.
pub const SCOPES: [&str; 3] = ["decide", "events", "admin"];

/// `baton serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Listen address. Default `127.0.0.1:8080`.
    pub addr: String,
    /// API keys. Empty (the default): no authentication, for local use only; the server
    /// warns when it starts without keys.
    pub api_keys: Vec<ApiKey>,
    /// Largest request body, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Largest number of events in one `POST /v1/events`. Default 10,000.
    pub max_batch_events: usize,
    /// Per-request timeout, in milliseconds. Default 5,000.
    pub request_timeout_ms: u64,
    /// Model alias the server loads for every task. Default `champion`.
    pub model_alias: String,
    /// Outcomes are accepted for decisions up to this many days older than the newest
    /// decision; older ones are forgotten, so the server's memory stays bounded. Default 30.
    pub outcome_days: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            api_keys: Vec::new(),
            max_body_bytes: 1 << 20,
            max_batch_events: 10_000,
            request_timeout_ms: 5_000,
            model_alias: "champion".into(),
            outcome_days: 30,
        }
    }
}

impl ServeConfig {
    fn validate(&self) -> Result<()> {
        self.addr.parse::<std::net::SocketAddr>().map_err(|_| {
            Error::config(
                "serve.addr",
                format!("`{}` is not an address such as 127.0.0.1:8080", self.addr),
            )
        })?;
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.key.len() < 16 || !k.key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(Error::config(
                    format!("serve.api_keys[{i}].key"),
                    "keys are at least 16 printable ASCII characters without spaces",
                ));
            }
            if k.scopes.is_empty() {
                return Err(Error::config(
                    format!("serve.api_keys[{i}].scopes"),
                    "give at least one scope",
                ));
            }
            for (j, s) in k.scopes.iter().enumerate() {
                if !SCOPES.contains(&s.as_str()) {
                    return Err(Error::config(
                        format!("serve.api_keys[{i}].scopes[{j}]"),
                        format!("unknown scope `{s}` (decide, events, admin)"),
                    ));
                }
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::config(
                "serve.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.outcome_days == 0 {
            return Err(Error::config(
                "serve.outcome_days",
                "must be at least 1 (days a decision accepts outcomes)",
            ));
        }
        if self.max_batch_events == 0 || self.request_timeout_ms == 0 {
            return Err(Error::config(
                "serve.max_batch_events",
                "max_batch_events and request_timeout_ms must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Batch scoring defaults (`baton score`; flags override them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Ranked candidates written per customer (the assigned one is always written).
    /// Default 3.
    pub top: usize,
    /// Only these channels (empty: every channel of the catalog). Default empty.
    pub channels: Vec<String>,
    /// Budgets: at most N customers per channel (`sms = 5000`) or per action
    /// (`"action:win_back" = 1000`; a bare name is a channel when it is one). Default none.
    pub budgets: BTreeMap<String, u64>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            top: 3,
            channels: Vec::new(),
            budgets: BTreeMap::new(),
        }
    }
}

impl BatchConfig {
    /// The budgets as `NAME=N` specs.
    pub fn budget_specs(&self) -> Vec<String> {
        self.budgets
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

impl Config {
    /// Loads `path`. With `required = false` a missing file gives the defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self> {
        if !path.exists() && !required {
            let c = Config::default();
            c.validate()?;
            return Ok(c);
        }
        let text = std::fs::read_to_string(path).at(path)?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Config { key, message } => Error::Config {
                key,
                message: format!("{message} (in {})", path.display()),
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| Error::config("<file>", e.message().to_string()))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            Error::config(
                if key == "." { "<root>".into() } else { key },
                inner.message().to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every cross-field rule; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        if self.actions.is_empty() {
            return Err(Error::config("actions", "the catalog has no actions"));
        }
        for (i, a) in self.actions.iter().enumerate() {
            let key = |f: &str| format!("actions[{i}].{f}");
            if a.id.is_empty()
                || !a
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(Error::config(
                    key("id"),
                    format!("`{}` must be non-empty letters, digits, `_` or `-`", a.id),
                ));
            }
            if !seen.insert(a.id.as_str()) {
                return Err(Error::config(
                    key("id"),
                    format!("duplicate action id `{}`", a.id),
                ));
            }
            if a.channels.is_empty() {
                return Err(Error::config(
                    key("channels"),
                    "an action needs at least one channel",
                ));
            }
            for c in &a.channels {
                if !CHANNELS.contains(&c.as_str()) {
                    return Err(Error::config(
                        key("channels"),
                        format!("unknown channel `{c}` (known: {})", CHANNELS.join(", ")),
                    ));
                }
            }
            for (c, cost) in &a.cost {
                if !a.channels.contains(c) {
                    return Err(Error::config(
                        format!("actions[{i}].cost.{c}"),
                        format!("cost given for `{c}`, which is not one of the action's channels"),
                    ));
                }
                if !cost.is_finite() || *cost < 0.0 {
                    return Err(Error::config(
                        format!("actions[{i}].cost.{c}"),
                        format!("cost must be a finite number >= 0, got {cost}"),
                    ));
                }
            }
            if !a.value.is_finite() || a.value < 0.0 {
                return Err(Error::config(
                    key("value"),
                    format!("must be >= 0, got {}", a.value),
                ));
            }
            if !a.weight.is_finite() || a.weight < 0.0 {
                return Err(Error::config(
                    key("weight"),
                    format!("must be >= 0, got {}", a.weight),
                ));
            }
            if a.max_contacts == 0 || a.per_days == 0 {
                return Err(Error::config(
                    key("max_contacts"),
                    "max_contacts and per_days must both be at least 1",
                ));
            }
            a.eligibility_expr().map_err(|e| match e {
                Error::Expression {
                    position, message, ..
                } => Error::config(
                    key("eligibility"),
                    format!("{message} at position {position} in `{}`", a.eligibility),
                ),
                other => other,
            })?;
            if let (Some(s), Some(e)) = a.active_dates()?
                && e < s
            {
                return Err(Error::config(
                    key("end"),
                    format!("end {e} is before start {s}"),
                ));
            }
        }
        if self.simulate.customers == 0 {
            return Err(Error::config("simulate.customers", "must be at least 1"));
        }
        if self.simulate.days == 0 {
            return Err(Error::config("simulate.days", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.simulate.action_rate) {
            return Err(Error::config(
                "simulate.action_rate",
                "must be within [0, 1]",
            ));
        }
        self.simulate_start()?;
        crate::features::FeatureSet::compile(&self.features, &self.actions)?;
        self.decide.validate(|a| self.action(a).is_some())?;
        self.serve.validate()?;
        let ids: Vec<String> = self.actions.iter().map(|a| a.id.clone()).collect();
        for (k, v) in &self.batch.budgets {
            crate::batch::parse_budgets(&[format!("{k}={v}")], &ids)
                .map_err(|e| Error::config(format!("batch.budgets.{k}"), e.to_string()))?;
        }
        for c in &self.batch.channels {
            if !CHANNELS.contains(&c.as_str()) {
                return Err(Error::config(
                    "batch.channels",
                    format!("unknown channel `{c}` (known: {})", CHANNELS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// `simulate.start_date`, parsed.
    pub fn simulate_start(&self) -> Result<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(&self.simulate.start_date, "%Y-%m-%d").map_err(|_| {
            Error::config(
                "simulate.start_date",
                format!(
                    "`{}` is not a date of the form YYYY-MM-DD",
                    self.simulate.start_date
                ),
            )
        })
    }

    /// The action with `id`.
    pub fn action(&self, id: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.id == id)
    }
}

#[allow(clippy::too_many_arguments)]
fn action(
    id: &str,
    name: &str,
    kind: ActionKind,
    channels: &[(&str, f64)],
    value: f64,
    eligibility: &str,
    (max_contacts, per_days, cooldown_days): (u32, u32, u32),
    weight: f64,
) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name: name.into(),
        kind,
        channels: channels.iter().map(|(c, _)| c.to_string()).collect(),
        value,
        cost: channels.iter().map(|(c, v)| (c.to_string(), *v)).collect(),
        eligibility: eligibility.into(),
        max_contacts,
        per_days,
        cooldown_days,
        weight,
        start: None,
        end: None,
    }
}

/// The built-in retail catalog: eight actions a retailer would run. Eligibility
/// expressions use the journey variables listed in `crate::sim::ELIGIBILITY_VARIABLES`.
pub fn default_actions() -> Vec<ActionSpec> {
    use ActionKind::*;
    vec![
        action(
            "cart_reminder",
            "Abandoned-cart reminder",
            Message,
            &[("email", 0.01), ("push", 0.005), ("sms", 0.05)],
            20.0,
            "cart_abandoned_7d",
            (2, 14, 3),
            1.0,
        ),
        action(
            "win_back",
            "Win-back offer (15% off)",
            Offer,
            &[("email", 0.01), ("sms", 0.05), ("mail", 0.8)],
            35.0,
            "days_since_last_purchase >= 30 and purchase_count > 0",
            (1, 30, 21),
            1.0,
        ),
        action(
            "welcome_discount",
            "Welcome discount on first order",
            Offer,
            &[("email", 0.01), ("web", 0.0), ("app", 0.0)],
            25.0,
            "tenure_days <= 30 and purchase_count = 0",
            (2, 30, 7),
            1.0,
        ),
        action(
            "loyalty_points",
            "Double loyalty points week",
            Offer,
            &[("email", 0.01), ("app", 0.0), ("push", 0.005)],
            15.0,
            "purchases_90d >= 2",
            (1, 30, 14),
            1.0,
        ),
        action(
            "cross_sell",
            "Cross-sell recommendation",
            Message,
            &[("email", 0.01), ("web", 0.0), ("app", 0.0)],
            12.0,
            "purchases_90d >= 1",
            (3, 30, 5),
            1.0,
        ),
        action(
            "service_call",
            "Service follow-up call",
            Service,
            &[("call_center", 4.0)],
            40.0,
            "support_contacts_30d >= 1 or last_nps <= 6",
            (1, 60, 30),
            1.0,
        ),
        action(
            "survey_request",
            "Satisfaction survey request",
            Service,
            &[("email", 0.01), ("sms", 0.05), ("app", 0.0)],
            3.0,
            "days_since_last_purchase <= 14",
            (1, 60, 30),
            0.5,
        ),
        action(
            "premium_upsell",
            "Premium membership upsell",
            Offer,
            &[("email", 0.01), ("call_center", 4.0), ("web", 0.0)],
            60.0,
            "spend_90d >= 150 and segment in ('regular', 'vip')",
            (1, 60, 30),
            1.0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_have_eight_actions() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.actions.len() >= 8);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::from_toml("[simulate]\ncustomers = \"many\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("simulate.customers"), "{msg}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[simulate]\ncustomerz = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("customerz"), "{err}");
    }

    #[test]
    fn bad_action_fields_name_the_action() {
        let text = r#"
[[actions]]
id = "a"
kind = "offer"
channels = ["email", "pigeon"]
"#;
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("actions[0].channels") && err.contains("pigeon"),
            "{err}"
        );

        let text = r#"
[[actions]]
id = "a"
kind = "offer"
channels = ["email"]
eligibility = "tenure_days >= "
"#;
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(err.contains("actions[0].eligibility"), "{err}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The committed example file spells out the defaults exactly.
    #[test]
    fn example_baton_toml_equals_the_defaults() {
        let text = include_str!("../baton.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }
}
