//! The arbitration engine: for one customer at one moment, enumerate (action, channel)
//! candidates, drop those that are ineligible, unconsented or over a contact limit (saying
//! why), score the rest as `P(response) × value × weight − cost`, rank them against "do
//! nothing", explore with an exact propensity, and return the decision with its
//! explanation. No I/O and no HTTP: the server and batch scoring both call
//! [`Engine::decide`].

use std::collections::BTreeMap;
use std::fmt::Arguments;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::contact::ContactHistory;
use super::expr::{Expr, Value};
use super::name::Name;
use super::policy::{DecideConfig, Exploration};
use crate::clv::{ClvInputs, Rfm};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::{DAY_US, FeatureSet, day_of};
use crate::models::{CLV_COLUMNS, Scorer};
use crate::schema::{CHANNELS, CONSENT_COLUMNS, consent_column};

/// The action id and channel logged when the policy chose to do nothing.
pub const DO_NOTHING: &str = "do_nothing";
/// The channel of [`DO_NOTHING`].
pub const NO_CHANNEL: &str = "none";

/// Where each numeric model input comes from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Feature(usize),
    /// The k-th customer-value input ([`CLV_COLUMNS`]), from the model's fit and the
    /// customer's RFM.
    Clv(usize),
    Missing,
}

/// A loaded model with its input mapping onto the feature vector.
#[derive(Clone)]
pub struct ModelSlot {
    pub task: &'static str,
    pub version: String,
    pub scorer: Arc<dyn Scorer>,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for ModelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelSlot({} {})", self.task, self.version)
    }
}

impl ModelSlot {
    /// Maps the model's numeric inputs onto `set`'s columns; fails naming a column the
    /// feature specs do not produce. The customer-value columns come from the model's fit
    /// ([`crate::models::FeatureSchema::clv`]) applied to the customer's RFM; a model
    /// without a fit reads them as missing.
    pub fn new(
        task: &'static str,
        version: &str,
        scorer: Arc<dyn Scorer>,
        set: &FeatureSet,
    ) -> Result<Self> {
        let fitted = scorer.schema().clv.is_some();
        let slots = scorer
            .schema()
            .numeric
            .iter()
            .map(|c| match set.columns().iter().position(|x| x == c) {
                Some(i) => Ok(Slot::Feature(i)),
                None => match CLV_COLUMNS.iter().position(|x| x == c) {
                    Some(k) if fitted => Ok(Slot::Clv(k)),
                    Some(_) => Ok(Slot::Missing),
                    None => Err(Error::Invalid(format!(
                        "{task} model {version} reads column `{c}`, which the feature specs do not produce; retrain it or use the baton.toml it was trained with"
                    ))),
                },
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            task,
            version: version.to_string(),
            scorer,
            slots,
        })
    }

    /// The model's numeric inputs for `view` ([`crate::models::FeatureSchema::numeric`]
    /// order, NaN for missing), as it scores them: e.g. to keep as training rows.
    pub fn numeric_inputs(&self, view: &CustomerView<'_>) -> Vec<f64> {
        let mut x = Vec::new();
        self.encode_numeric(view, &mut ClvMemo::default(), &mut x);
        x.truncate(self.slots.len());
        x
    }

    fn encode_numeric<'m>(
        &'m self,
        view: &CustomerView<'_>,
        memo: &mut ClvMemo<'m>,
        x: &mut Vec<f64>,
    ) {
        let schema = self.scorer.schema();
        x.clear();
        x.resize(schema.width(), 0.0);
        let clv = match &schema.clv {
            Some(fit) => memo.values(fit, view.rfm.as_ref()),
            None => [None, None],
        };
        for (k, s) in self.slots.iter().enumerate() {
            x[k] = match s {
                Slot::Feature(i) => view.features[*i].unwrap_or(f64::NAN),
                Slot::Clv(j) => clv[*j].unwrap_or(f64::NAN),
                Slot::Missing => f64::NAN,
            };
        }
    }
}

/// The customer-value inputs of one decision, computed once per fit: models trained on
/// sets with the same cutoffs share the fit.
#[derive(Default)]
struct ClvMemo<'m> {
    last: Option<(&'m ClvInputs, [Option<f64>; 2])>,
}

impl<'m> ClvMemo<'m> {
    fn values(&mut self, fit: &'m ClvInputs, rfm: Option<&Rfm>) -> [Option<f64>; 2] {
        if let Some((f, v)) = self.last
            && (std::ptr::eq(f, fit) || *f == *fit)
        {
            return v;
        }
        let v = fit.values(rfm);
        self.last = Some((fit, v));
        v
    }
}

/// The models the engine uses: response propensity (required), churn and channel
/// preference (optional).
#[derive(Debug, Clone)]
pub struct Models {
    pub response: ModelSlot,
    pub churn: Option<ModelSlot>,
    pub channel: Option<ModelSlot>,
}

#[derive(Debug, Clone)]
struct ChannelSlot {
    channel: &'static str,
    /// The channel name, copied into every candidate that uses it.
    name: Name,
    cost: f64,
    /// Index into [`CONSENT_COLUMNS`]; `None` for inbound channels.
    consent: Option<usize>,
    /// The response model's one-hot inputs for (action id, channel, action kind);
    /// `usize::MAX` for a value the model has not seen.
    hot: [usize; 3],
}

#[derive(Debug, Clone)]
struct Action {
    id: String,
    /// The id, copied into every candidate of the action.
    shared_id: Name,
    eligibility: String,
    value: f64,
    weight: f64,
    retention: bool,
    expr: Expr,
    max_contacts: u32,
    per_days: u32,
    cooldown_days: u32,
    first_day: Option<i64>,
    last_day: Option<i64>,
    channels: Vec<ChannelSlot>,
}

/// What the engine knows about the customer at decision time.
#[derive(Debug, Clone, Copy)]
pub struct CustomerView<'a> {
    pub customer_id: &'a str,
    /// The feature vector at `now` ([`FeatureSet::columns`] order).
    pub features: &'a [Option<f64>],
    /// Consents in [`CONSENT_COLUMNS`] order (`None` = not given = no consent).
    pub consents: [Option<bool>; 5],
    /// The customer's RFM for the customer-value inputs (purchases of the days before
    /// today's; [`crate::features::OnlineState::rfm`]); `None` without a purchase.
    pub rfm: Option<Rfm>,
    /// Whether the customer has a profile (false: decided from profile-free features).
    pub known: bool,
    pub contacts: &'a ContactHistory,
}

/// One decision request.
#[derive(Debug, Clone)]
pub struct DecideInput<'a> {
    /// µs since the epoch.
    pub now: i64,
    /// Request context; expressions read key `k` as `ctx_k`. `channel`, when given, is
    /// where the customer is now: the only inbound channel that can be used.
    pub context: &'a serde_json::Map<String, serde_json::Value>,
    /// How many ranked actions to return (capped by `decide.max_limit`).
    pub limit: usize,
    /// Include score terms and dropped candidates.
    pub explain: bool,
}

/// A scored candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ranked {
    #[schema(value_type = String)]
    pub action_id: Name,
    #[schema(value_type = String)]
    pub channel: Name,
    /// Calibrated P(response | customer, action, channel).
    pub p_response: f64,
    /// Business value of a response.
    pub value: f64,
    /// Arbitration weight after the churn boost of retention actions.
    pub weight: f64,
    /// Delivery cost on the channel.
    pub cost: f64,
    /// `p_response × value × weight − cost`.
    pub score: f64,
}

/// A candidate the engine dropped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dropped {
    pub action_id: String,
    /// `None` when the whole action was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// inactive | ineligible | no_consent | not_present | action_cap | cooldown |
    /// suppressed | channel_cap | quiet_hours
    pub reason: String,
    pub detail: String,
}

/// The option the policy chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chosen {
    /// An action id, or `do_nothing`.
    pub action_id: String,
    /// A channel, or `none`.
    pub channel: String,
    /// Rank of the chosen option among all options (0 = best), do-nothing included.
    pub position: usize,
    /// The exact probability that the policy chose this option.
    pub propensity: f64,
    /// Whether exploration (not the best option) picked it.
    pub explore: bool,
}

/// A decision: what to do, with scores, reasons and versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    pub decision_id: String,
    pub customer_id: String,
    /// µs since the epoch.
    pub ts: i64,
    pub chosen: Chosen,
    /// Ranked actions to show, best first (the chosen first when it is an action), at
    /// most `limit`, only those scoring above do-nothing (plus an explored choice).
    pub actions: Vec<Ranked>,
    /// Every scored candidate in rank order (what the decision log keeps).
    #[serde(skip)]
    pub candidates: Vec<Ranked>,
    pub do_nothing_score: f64,
    /// P(churn) from the churn model, when loaded.
    pub churn: Option<f64>,
    /// Channel preference from the channel model, when loaded and either an eligibility
    /// expression reads it or the request asked for an explanation.
    pub channel_preference: BTreeMap<String, f64>,
    /// Dropped candidates (only with `explain`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dropped: Vec<Dropped>,
    /// False when the customer has no profile: decided from profile-free features.
    pub profile_known: bool,
    pub policy_version: String,
    /// task → model version.
    pub model_versions: BTreeMap<String, String>,
}

/// An action of [`Engine::catalog`]: id, value, and (channel, cost) per channel.
pub type CatalogEntry<'a> = (&'a str, f64, Vec<(&'static str, f64)>);

/// The engine: catalog, policy and models, immutable once built; share it behind an
/// `Arc` and swap the `Arc` to reload.
#[derive(Debug, Clone)]
pub struct Engine {
    config: DecideConfig,
    actions: Vec<Action>,
    set: Arc<FeatureSet>,
    models: Models,
    policy_version: String,
    keep_days: u32,
    /// Whether an eligibility expression reads `channel_<c>` scores.
    reads_channel: bool,
    /// What every decision asks the contact history: each action with its window, in
    /// `actions` order ...
    asked: Vec<(Name, u32)>,
    /// ... and each capped channel with its cap's window.
    capped: Vec<(Name, u32)>,
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n.as_f64().map_or(Value::Null, Value::Num),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        _ => Value::Null,
    }
}

impl Engine {
    /// Builds the engine from the configuration, the compiled feature set and the models.
    /// Fails naming the action and position of an expression that reads an unknown
    /// variable (features, `churn`, `channel_<c>` scores and `ctx_*` context are known).
    pub fn new(config: &Config, set: Arc<FeatureSet>, models: Models) -> Result<Self> {
        let dc = config.decide.clone();
        dc.validate(|a| config.action(a).is_some())?;
        let channel_outputs: Vec<String> = models
            .channel
            .as_ref()
            .map(|m| m.scorer.outputs().to_vec())
            .unwrap_or_default();
        let known = |v: &str| {
            set.index(v).is_some()
                || v.starts_with("ctx_")
                || (v == "churn" && models.churn.is_some())
                || v.strip_prefix("channel_")
                    .is_some_and(|c| channel_outputs.iter().any(|o| o == c))
        };
        let mut actions = Vec::with_capacity(config.actions.len());
        for (i, a) in config.actions.iter().enumerate() {
            let expr = a.eligibility_expr()?;
            expr.check_variables(known).map_err(|e| match e {
                Error::Expression {
                    position, message, ..
                } => Error::config(
                    format!("actions[{i}].eligibility"),
                    format!(
                        "action `{}`: {message} at position {position} in `{}` (known: features, `churn` with a churn model, `channel_<c>` with a channel model, `ctx_<key>` from the request context)",
                        a.id, a.eligibility
                    ),
                ),
                other => other,
            })?;
            let (first, last) = a.active_dates()?;
            let day = |d: chrono::NaiveDate| {
                day_of(
                    d.and_hms_opt(0, 0, 0)
                        .expect("midnight")
                        .and_utc()
                        .timestamp_micros(),
                )
            };
            let channels = a
                .channels
                .iter()
                .filter_map(|c| {
                    let channel = CHANNELS.iter().copied().find(|x| *x == c.as_str())?;
                    let consent = consent_column(channel)
                        .and_then(|col| CONSENT_COLUMNS.iter().position(|(x, _)| *x == col));
                    let schema = models.response.scorer.schema();
                    let mut at = schema.numeric.len();
                    let mut hot = [usize::MAX; 3];
                    for (k, (cat, v)) in schema
                        .categorical
                        .iter()
                        .zip([a.id.as_str(), channel, a.kind.as_str()])
                        .enumerate()
                    {
                        if let Some(i) = cat.values.iter().position(|x| x == v) {
                            hot[k] = at + i;
                        }
                        at += cat.values.len();
                    }
                    Some(ChannelSlot {
                        channel,
                        hot,
                        name: Name::from_static(channel),
                        cost: a.cost_on(channel),
                        consent,
                    })
                })
                .collect();
            actions.push(Action {
                id: a.id.clone(),
                shared_id: Name::new(&a.id),
                eligibility: a.eligibility.clone(),
                value: a.value,
                weight: a.weight,
                retention: dc.retention_actions.contains(&a.id),
                expr,
                max_contacts: a.max_contacts,
                per_days: a.per_days,
                cooldown_days: a.cooldown_days,
                first_day: first.map(day),
                last_day: last.map(day),
                channels,
            });
        }
        let response = models.response.scorer.schema();
        let cats: Vec<&str> = response
            .categorical
            .iter()
            .map(|c| c.column.as_str())
            .collect();
        if cats != ["action_id", "channel", "action_kind"] {
            return Err(Error::Invalid(format!(
                "response model {} has categorical inputs {cats:?}; expected action_id, channel, action_kind",
                models.response.version
            )));
        }
        if models.response.scorer.outputs().len() != 1 {
            return Err(Error::Invalid(format!(
                "response model {} is not a binary model",
                models.response.version
            )));
        }
        let policy_text = serde_json::to_string(&(&dc, &config.actions))?;
        let policy_version = format!("p{:08x}", fnv(&policy_text) as u32);
        let keep_days = config
            .actions
            .iter()
            .map(|a| a.per_days.max(a.cooldown_days))
            .chain(dc.channel_caps.values().map(|c| c.per_days))
            .chain([dc.suppress_days + dc.response_window_days + 1])
            .max()
            .unwrap_or(30)
            .max(dc.suppress_days * 2);
        let reads_channel = actions.iter().any(|a| {
            a.expr
                .variables()
                .iter()
                .any(|(v, _)| v.starts_with("channel_"))
        });
        let asked = actions.iter().map(|a| (a.shared_id, a.per_days)).collect();
        let capped = dc
            .channel_caps
            .iter()
            .map(|(c, cap)| (Name::new(c), cap.per_days))
            .collect();
        Ok(Self {
            reads_channel,
            asked,
            capped,
            config: dc,
            actions,
            set,
            models,
            policy_version,
            keep_days,
        })
    }

    /// The policy settings.
    pub fn config(&self) -> &DecideConfig {
        &self.config
    }

    /// The feature set decisions read.
    pub fn feature_set(&self) -> &Arc<FeatureSet> {
        &self.set
    }

    /// The models in use.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// A hash of the decide settings and the catalog.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// How many days of contact history the policy reads (keep at least this much).
    pub fn keep_days(&self) -> u32 {
        self.keep_days
    }

    /// task → version of every loaded model.
    pub fn model_versions(&self) -> BTreeMap<String, String> {
        [
            Some(&self.models.response),
            self.models.churn.as_ref(),
            self.models.channel.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|m| (m.task.to_string(), m.version.clone()))
        .collect()
    }

    /// The same engine with exploration off: every decision takes the best option. Batch
    /// scoring uses it, so batch and online agree for the same features.
    pub fn greedy(&self) -> Engine {
        let mut e = self.clone();
        e.config.exploration = Exploration::None;
        e
    }

    /// The catalog's action ids, in catalog order.
    pub fn action_ids(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.id.as_str())
    }

    /// The catalog's actions in order: id, value of a response, and (channel, delivery
    /// cost) for each of its channels.
    pub fn catalog(&self) -> Vec<CatalogEntry<'_>> {
        self.actions
            .iter()
            .map(|a| {
                let ch = a.channels.iter().map(|c| (c.channel, c.cost)).collect();
                (a.id.as_str(), a.value, ch)
            })
            .collect()
    }

    /// Number of (action, channel) candidates in the catalog.
    pub fn candidate_count(&self) -> usize {
        self.actions.iter().map(|a| a.channels.len()).sum()
    }

    /// Decides for one customer. `rng` drives exploration only.
    pub fn decide(
        &self,
        view: &CustomerView<'_>,
        input: &DecideInput<'_>,
        decision_id: String,
        rng: &mut impl Rng,
    ) -> Result<Decision> {
        let dc = &self.config;
        let now = input.now;
        let today = day_of(now);
        let hour = (now.rem_euclid(DAY_US) / 3_600_000_000) as u32;
        let row = view.features;
        if row.len() != self.set.columns().len() {
            return Err(Error::Invalid(format!(
                "feature vector has {} values, the feature set {}",
                row.len(),
                self.set.columns().len()
            )));
        }
        let mut x = Vec::new();
        let mut out = [0.0];
        let mut memo = ClvMemo::default();
        let churn = match &self.models.churn {
            Some(m) => {
                m.encode_numeric(view, &mut memo, &mut x);
                m.scorer.score_into(&x, &mut out)?;
                Some(out[0])
            }
            None => None,
        };
        // the channel model only informs expressions that read it, and explanations
        let mut channel_preference = BTreeMap::new();
        if let Some(m) = &self.models.channel
            && (self.reads_channel || input.explain)
        {
            m.encode_numeric(view, &mut memo, &mut x);
            let mut p = vec![0.0; m.scorer.outputs().len()];
            m.scorer.score_into(&x, &mut p)?;
            for (name, v) in m.scorer.outputs().iter().zip(p) {
                channel_preference.insert(name.clone(), v);
            }
        }
        let lookup = |name: &str| -> Value {
            if let Some(k) = name.strip_prefix("ctx_") {
                return input.context.get(k).map_or(Value::Null, to_value);
            }
            if name == "churn" {
                return churn.map_or(Value::Null, Value::Num);
            }
            if self.set.index(name).is_some() {
                return self.set.value(row, name);
            }
            name.strip_prefix("channel_")
                .and_then(|c| channel_preference.get(c))
                .map_or(Value::Null, |p| Value::Num(*p))
        };
        let present = input.context.get("channel").and_then(|v| v.as_str());
        let mut dropped = Vec::new();
        // the detail is formatted only when the caller asked for explanations
        let mut reject =
            |a: &Action, channel: Option<&str>, reason: &str, detail: Arguments<'_>| {
                if input.explain {
                    dropped.push(Dropped {
                        action_id: a.id.clone(),
                        channel: channel.map(str::to_string),
                        reason: reason.to_string(),
                        detail: detail.to_string(),
                    });
                }
            };
        let response = &self.models.response;
        response.encode_numeric(view, &mut memo, &mut x);
        let mut ranked = Vec::new();
        let mut hot = Vec::new();
        let rule = (
            dc.suppress_after_ignored,
            dc.suppress_days,
            dc.response_window_days,
        );
        // the contact-policy answers of every action, in one pass over the history
        let (asked, capped) = (&self.asked, &self.capped);
        let (answers, channel_counts) = view.contacts.contacts(asked, capped, rule, now);
        for (a, &contacts) in self.actions.iter().zip(&answers) {
            if a.first_day.is_some_and(|f| today < f) || a.last_day.is_some_and(|l| today > l) {
                reject(
                    a,
                    None,
                    "inactive",
                    format_args!("outside the action's start/end dates"),
                );
                continue;
            }
            if !a.expr.holds(&lookup) {
                reject(
                    a,
                    None,
                    "ineligible",
                    format_args!("`{}` is not true", a.eligibility),
                );
                continue;
            }
            let sent = contacts.sent;
            if sent >= a.max_contacts {
                reject(
                    a,
                    None,
                    "action_cap",
                    format_args!(
                        "{sent} of at most {} in {} days",
                        a.max_contacts, a.per_days
                    ),
                );
                continue;
            }
            if let Some(last) = contacts.last {
                let until = last + i64::from(a.cooldown_days) * DAY_US;
                if until > now {
                    reject(
                        a,
                        None,
                        "cooldown",
                        format_args!("{}-day cooldown until {}", a.cooldown_days, Rfc3339(until)),
                    );
                    continue;
                }
            }
            if let Some(until) = contacts.suppressed_until {
                reject(
                    a,
                    None,
                    "suppressed",
                    format_args!(
                        "{} deliveries in a row ignored; suppressed until {}",
                        dc.suppress_after_ignored,
                        Rfc3339(until)
                    ),
                );
                continue;
            }
            let weight = if a.retention {
                a.weight * (1.0 + dc.retention_boost * churn.unwrap_or(0.0))
            } else {
                a.weight
            };
            for c in &a.channels {
                match c.consent {
                    Some(k) if view.consents[k] != Some(true) => {
                        reject(
                            a,
                            Some(c.channel),
                            "no_consent",
                            format_args!("no {} consent", CONSENT_COLUMNS[k].0),
                        );
                        continue;
                    }
                    None if present.is_some_and(|p| p != c.channel) => {
                        reject(
                            a,
                            Some(c.channel),
                            "not_present",
                            format_args!("the customer is on {} now", present.unwrap_or("")),
                        );
                        continue;
                    }
                    _ => {}
                }
                if let Some(k) = capped.iter().position(|(ch, _)| *ch == c.channel) {
                    let (n, cap) = (channel_counts[k], &dc.channel_caps[c.channel]);
                    if n >= cap.max {
                        reject(
                            a,
                            Some(c.channel),
                            "channel_cap",
                            format_args!("{n} of at most {} in {} days", cap.max, cap.per_days),
                        );
                        continue;
                    }
                }
                if let Some(q) = dc.quiet_hours.get(c.channel)
                    && q.contains(hour)
                {
                    reject(
                        a,
                        Some(c.channel),
                        "quiet_hours",
                        format_args!("quiet from {}:00 to {}:00 UTC", q.start, q.end),
                    );
                    continue;
                }
                hot.extend_from_slice(&c.hot);
                ranked.push(Ranked {
                    action_id: a.shared_id,
                    channel: c.name,
                    p_response: 0.0,
                    value: a.value,
                    weight,
                    cost: c.cost,
                    score: 0.0,
                });
            }
        }
        // one call scores every candidate: they differ only in the one-hot inputs
        let mut p = vec![0.0; ranked.len()];
        response.scorer.score_variants(&mut x, &hot, 3, &mut p)?;
        for (r, p) in ranked.iter_mut().zip(p) {
            r.p_response = p;
            r.score = p * r.value * r.weight - r.cost;
        }
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        let (pick, propensity, explore) = self.explore(&ranked, rng);
        let do_nothing_at = ranked.partition_point(|r| r.score > dc.do_nothing_score);
        let chosen = match pick {
            Some(i) => Chosen {
                action_id: ranked[i].action_id.to_string(),
                channel: ranked[i].channel.to_string(),
                position: if i < do_nothing_at { i } else { i + 1 },
                propensity,
                explore,
            },
            None => Chosen {
                action_id: DO_NOTHING.into(),
                channel: NO_CHANNEL.into(),
                position: do_nothing_at,
                propensity,
                explore,
            },
        };
        let limit = input.limit.clamp(1, dc.max_limit);
        // the chosen pair first, then the best of the rest: only `limit` of them are copied
        let mut actions: Vec<Ranked> = Vec::with_capacity(limit);
        actions.extend(pick.iter().map(|&i| ranked[i].clone()));
        actions.extend(
            ranked[..do_nothing_at]
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != pick)
                .map(|(_, r)| r.clone())
                .take(limit - actions.len()), // limit ≥ 1 ≥ the chosen pair
        );
        Ok(Decision {
            decision_id,
            customer_id: view.customer_id.to_string(),
            ts: now,
            chosen,
            actions,
            candidates: ranked,
            do_nothing_score: dc.do_nothing_score,
            churn,
            channel_preference,
            dropped,
            profile_known: view.known,
            policy_version: self.policy_version.clone(),
            model_versions: self.model_versions(),
        })
    }

    /// Picks an option: `Some(i)` = `ranked[i]`, `None` = do nothing; with the exact
    /// probability of that pick and whether it was exploration.
    fn explore(&self, ranked: &[Ranked], rng: &mut impl Rng) -> (Option<usize>, f64, bool) {
        let scores: Vec<f64> = ranked.iter().map(|r| r.score).collect();
        self.choose(&scores, rng)
    }

    /// The policy's choice among options with `scores` (sorted best first) and do-nothing:
    /// `Some(i)` = option `i`, `None` = do nothing; with the exact probability of that pick
    /// and whether it was exploration (not the best option). [`Engine::decide`] uses it over
    /// every ranked candidate; closed-loop simulation over the deliverable ones.
    pub fn choose(&self, scores: &[f64], rng: &mut impl Rng) -> (Option<usize>, f64, bool) {
        let dc = &self.config;
        let best = self.best(scores);
        let n = scores.len() + 1; // the options, do-nothing included
        match dc.exploration {
            Exploration::None => (best, 1.0, false),
            Exploration::EpsilonGreedy => {
                let eps = dc.epsilon;
                let k = if rng.random::<f64>() < eps {
                    let k = rng.random_range(0..n);
                    (k < scores.len()).then_some(k)
                } else {
                    best
                };
                let p = eps / n as f64 + if k == best { 1.0 - eps } else { 0.0 };
                (k, p, k != best)
            }
            Exploration::Softmax => {
                let w = self.softmax_weights(scores);
                let total: f64 = w.iter().sum();
                let mut u = rng.random::<f64>() * total;
                let mut k = None;
                for (i, wi) in w[..scores.len()].iter().enumerate() {
                    u -= wi;
                    if u < 0.0 {
                        k = Some(i);
                        break;
                    }
                }
                let p = w[k.unwrap_or(scores.len())] / total;
                (k, p, k != best)
            }
        }
    }

    /// The exact probability of each option of [`Engine::choose`]: one per score (sorted
    /// best first), then do-nothing last; they sum to 1. Off-policy evaluation reads the
    /// policy's distribution from here.
    pub fn probabilities(&self, scores: &[f64]) -> Vec<f64> {
        let dc = &self.config;
        let n = scores.len() + 1;
        let best = self.best(scores).unwrap_or(scores.len());
        match dc.exploration {
            Exploration::None => (0..n).map(|i| f64::from(u8::from(i == best))).collect(),
            Exploration::EpsilonGreedy => (0..n)
                .map(|i| dc.epsilon / n as f64 + if i == best { 1.0 - dc.epsilon } else { 0.0 })
                .collect(),
            Exploration::Softmax => {
                let w = self.softmax_weights(scores);
                let total: f64 = w.iter().sum();
                w.into_iter().map(|x| x / total).collect()
            }
        }
    }

    /// The best option: the first score when it beats do-nothing.
    fn best(&self, scores: &[f64]) -> Option<usize> {
        scores
            .first()
            .filter(|s| **s > self.config.do_nothing_score)
            .map(|_| 0)
    }

    /// Softmax weights of the options and do-nothing (last), relative to the largest.
    fn softmax_weights(&self, scores: &[f64]) -> Vec<f64> {
        let dc = &self.config;
        let max = scores.iter().copied().fold(dc.do_nothing_score, f64::max);
        let w = |s: f64| ((s - max) / dc.temperature).exp();
        scores
            .iter()
            .map(|s| w(*s))
            .chain([w(dc.do_nothing_score)])
            .collect()
    }
}

/// `ts` shown as by [`rfc3339`], formatted only when displayed (a dropped candidate's
/// detail is written out only with `explain`).
struct Rfc3339(i64);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

/// RFC 3339 text of a µs timestamp.
pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp_micros(ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ts.to_string())
}
