//! The policies a closed-loop run compares ([`crate::sim::closed_loop`]):
//!
//! - `random`: the logged behaviour policy, uniformly random over the deliverable pairs;
//! - `rules`: a marketer's campaign plan without models — abandoned-cart reminder, then
//!   win-back after 30 quiet days, welcome offer for new customers, loyalty points for
//!   frequent buyers, premium upsell, cross-sell, each on its cheapest reachable channel
//!   (in-session web/app first, then push, email, SMS, mail), never a call or a survey; the
//!   catalog's eligibility and contact limits still apply;
//! - `baton`: the engine itself ([`Engine::decide`]) on online features built from the
//!   events it observed, with its contact policy and exploration, choosing among the pairs
//!   that are deliverable now;
//! - `oracle`: the best pair by the simulator's true response probabilities, `P × value −
//!   cost`, or nothing when no pair beats do-nothing: the myopic upper reference.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::decide::{ContactHistory, CustomerView, DecideInput, Engine, ModelSlot, Models};
use crate::error::{Error, Result};
use crate::features::{DAY_US, Event, OnlineState, ResponseLabel, Task};
use crate::models::{Part, RawRow, Table, TrainConfig, train};
use crate::schema::{CONSENT_COLUMNS, consent_column};
use crate::sim::closed_loop::{LoopPolicy, Meet, Point, true_response};

/// Uniformly random over the deliverable pairs (always acts).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomPolicy;

impl LoopPolicy for RandomPolicy {
    type State = ();
    fn meet(&self, _: &Meet<'_>) {}
    fn observe(&self, _: &mut (), _: &Event) {}
    fn choose(&self, _: &mut (), p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        Some(rng.random_range(0..p.offers.len()))
    }
}

/// The campaign plan: actions in this priority order (others after them, in catalog
/// order; service actions never).
pub const RULES_PRIORITY: [&str; 6] = [
    "cart_reminder",
    "win_back",
    "welcome_discount",
    "loyalty_points",
    "premium_upsell",
    "cross_sell",
];
/// Channels by preference (cheapest first); `call_center` is never used.
pub const RULES_CHANNELS: [&str; 6] = ["web", "app", "push", "email", "sms", "mail"];

/// The hand-written campaign plan (see the module docs).
#[derive(Debug, Clone)]
pub struct RulesPolicy {
    /// Action id → priority rank (lower first); `None`: never.
    rank: Vec<(String, Option<usize>)>,
}

impl RulesPolicy {
    pub fn new(config: &Config) -> Self {
        let rank = config
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let r = match RULES_PRIORITY.iter().position(|x| *x == a.id) {
                    Some(k) => Some(k),
                    None if a.kind == crate::config::ActionKind::Service => None,
                    None => Some(RULES_PRIORITY.len() + i),
                };
                (a.id.clone(), r)
            })
            .collect();
        Self { rank }
    }
}

impl LoopPolicy for RulesPolicy {
    type State = ();
    fn meet(&self, _: &Meet<'_>) {}
    fn observe(&self, _: &mut (), _: &Event) {}
    fn choose(&self, _: &mut (), p: &Point<'_>, _: &mut ChaCha8Rng) -> Option<usize> {
        p.offers
            .iter()
            .enumerate()
            .filter_map(|(k, o)| {
                let r = self.rank.get(o.action_index)?.1?;
                let c = RULES_CHANNELS.iter().position(|c| *c == o.channel)?;
                Some(((r, c), k))
            })
            .min()
            .map(|(_, k)| k)
    }
}

/// The best pair by the true response probability (see the module docs).
#[derive(Debug, Clone)]
pub struct OraclePolicy {
    /// Per catalog action: value and cost per channel.
    actions: Vec<(f64, Vec<(String, f64)>)>,
    response: ResponseLabel,
    do_nothing: f64,
}

impl OraclePolicy {
    pub fn new(config: &Config, response: ResponseLabel) -> Self {
        let actions = config
            .actions
            .iter()
            .map(|a| {
                let costs = a
                    .channels
                    .iter()
                    .map(|c| (c.clone(), a.cost_on(c)))
                    .collect();
                (a.value, costs)
            })
            .collect();
        Self {
            actions,
            response,
            do_nothing: config.decide.do_nothing_score,
        }
    }
}

impl OraclePolicy {
    /// The best of `p.offers[k]` for `k` in `ks` by the true `P × value − cost`, or `None`
    /// when none beats do-nothing.
    fn best(&self, p: &Point<'_>, ks: impl IntoIterator<Item = usize>) -> Option<usize> {
        self.best_by(p, ks, |k| true_response(self.response, &p.truth(k)))
    }

    /// The best of `p.offers[k]` for `k` in `ks` by `P × value − cost` with `prob(k)` as
    /// `P`, or `None` when none beats do-nothing.
    pub(super) fn best_by(
        &self,
        p: &Point<'_>,
        ks: impl IntoIterator<Item = usize>,
        mut prob: impl FnMut(usize) -> f64,
    ) -> Option<usize> {
        let mut best = None;
        let mut best_score = self.do_nothing;
        for k in ks {
            let o = &p.offers[k];
            let (value, costs) = &self.actions[o.action_index];
            let cost = costs
                .iter()
                .find(|(c, _)| c == o.channel)
                .map_or(0.0, |x| x.1);
            let score = prob(k) * value - cost;
            if score > best_score {
                best_score = score;
                best = Some(k);
            }
        }
        best
    }
}

impl LoopPolicy for OraclePolicy {
    type State = ();
    fn meet(&self, _: &Meet<'_>) {}
    fn observe(&self, _: &mut (), _: &Event) {}
    fn choose(&self, _: &mut (), p: &Point<'_>, _: &mut ChaCha8Rng) -> Option<usize> {
        self.best(p, 0..p.offers.len())
    }
}

/// The oracle held to the engine's contact policy: it chooses by the true probabilities
/// like [`OraclePolicy`], but only among the pairs the engine would consider now — its
/// eligibility on features, consent, action caps, cooldowns, ignored-delivery suppression,
/// channel caps and quiet hours. The upper reference for a policy that keeps the
/// business's contact rules.
#[derive(Debug)]
pub struct LimitedOraclePolicy {
    pub(super) engine: BatonPolicy,
    pub(super) oracle: OraclePolicy,
}

impl LimitedOraclePolicy {
    pub fn new(engine: Arc<Engine>, config: &Config, response: ResponseLabel) -> Self {
        Self {
            engine: BatonPolicy::new(Arc::new(engine.greedy())),
            oracle: OraclePolicy::new(config, response),
        }
    }
}

impl LoopPolicy for LimitedOraclePolicy {
    type State = BatonMemory;
    fn meet(&self, m: &Meet<'_>) -> BatonMemory {
        self.engine.meet(m)
    }
    fn observe(&self, st: &mut BatonMemory, e: &Event) {
        self.engine.observe(st, e)
    }
    fn choose(&self, st: &mut BatonMemory, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        let (picks, _) = self.engine.considered(st, p, rng);
        self.oracle.best(p, picks)
    }
}

/// Scheduled retraining of the engine's response model in the closed loop: every
/// `every_days` days the model is refitted (same learner and settings as the one it
/// replaces) on the training set it started from plus the deliveries the engine made in
/// the loop so far, labelled by the responses it observed, with features as the engine saw
/// them at each delivery. What a nightly or weekly retraining job does in production.
#[derive(Debug, Clone)]
pub struct Retraining {
    pub every_days: u32,
    /// The configuration the engine was built from (catalog, decision policy).
    pub config: Config,
    /// How the replaced model was trained.
    pub train: TrainConfig,
    /// The training set the starting model learned from, encoded with its schema; its
    /// validation rows stay the tuning and test rows of every retraining. `None`: only
    /// the loop's rows, their last quarter in time held out.
    pub base: Option<Arc<Table>>,
    pub response: ResponseLabel,
}

/// One retraining in the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrained {
    /// Loop day it took effect.
    pub day: i32,
    pub version: String,
    /// Rows from the starting training set and from the loop's own deliveries.
    pub base_rows: usize,
    pub loop_rows: usize,
    /// Responses among the loop's rows.
    pub loop_positives: usize,
    /// Test AUC of the refitted model, and of the oracle on the same rows.
    pub auc: Option<f64>,
    pub oracle_auc: Option<f64>,
    pub fit_seconds: f64,
}

/// The engine in the loop (see the module docs).
#[derive(Debug)]
pub struct BatonPolicy {
    engine: ArcSwap<Engine>,
    context: serde_json::Map<String, serde_json::Value>,
    /// Whether the engine sees the customers' history before the run
    /// ([`Meet::history`]), as a production event store would hold it.
    history: bool,
    retraining: Option<Retraining>,
    retrained: Mutex<Vec<Retrained>>,
}

/// A delivery the engine made in the loop, kept for retraining.
#[derive(Debug, Clone)]
struct Delivered {
    ts: i64,
    /// The response model's numeric inputs at the delivery (events strictly before it),
    /// NaN for missing ([`crate::decide::ModelSlot::numeric_inputs`]).
    inputs: Vec<f64>,
    action_id: String,
    channel: String,
    decision_id: Option<String>,
    responded: bool,
}

/// What the engine remembers of one customer: online features, contacts, consents (and,
/// when it retrains, its deliveries).
#[derive(Debug, Clone)]
pub struct BatonMemory {
    customer_id: String,
    online: OnlineState,
    contacts: ContactHistory,
    consents: [Option<bool>; 5],
    delivered: Vec<Delivered>,
}

impl BatonMemory {
    /// An empty memory without a feature set (tests of policies built on it).
    #[cfg(test)]
    pub(super) fn empty(customer_id: &str) -> Self {
        let set = crate::features::FeatureSet::compile(&[], &[]).expect("no features");
        Self {
            customer_id: customer_id.to_string(),
            online: OnlineState::new(Arc::new(set), None),
            contacts: ContactHistory::default(),
            consents: [None; 5],
            delivered: Vec::new(),
        }
    }
}

impl BatonPolicy {
    /// The engine seeing the customers' history before the run (production).
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine: ArcSwap::new(engine),
            context: serde_json::Map::new(),
            history: true,
            retraining: None,
            retrained: Mutex::new(Vec::new()),
        }
    }

    /// The engine seeing only the events of the run — what it sees when replayed over a
    /// simulated log, which lacks the history: the twin of off-policy estimates.
    pub fn without_history(engine: Arc<Engine>) -> Self {
        Self {
            history: false,
            ..Self::new(engine)
        }
    }

    /// Retrains the response model on a schedule (see [`Retraining`]).
    pub fn with_retraining(mut self, r: Retraining) -> Self {
        self.retraining = (r.every_days > 0).then_some(r);
        self
    }

    /// The retrainings so far.
    pub fn retrained(&self) -> Vec<Retrained> {
        self.retrained.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The offers the engine considers now (passing its eligibility, consent and contact
    /// policy), as indices into `p.offers`, best first, with the engine's scores.
    pub(super) fn considered(
        &self,
        st: &mut BatonMemory,
        p: &Point<'_>,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<usize>, Vec<f64>) {
        let engine = self.engine.load();
        let features = st.online.vector(p.ts);
        let view = CustomerView {
            customer_id: p.customer_id,
            features: &features,
            consents: st.consents,
            rfm: st.online.rfm(p.ts),
            known: true,
            contacts: &st.contacts,
        };
        let input = DecideInput {
            now: p.ts,
            context: &self.context,
            limit: 1,
            explain: false,
        };
        let mut picks = Vec::new();
        let mut scores = Vec::new();
        let Ok(d) = engine.decide(&view, &input, String::new(), rng) else {
            return (picks, scores);
        };
        for r in &d.candidates {
            if let Some(k) = p
                .offers
                .iter()
                .position(|o| o.action_id == &*r.action_id && o.channel == &*r.channel)
            {
                picks.push(k);
                scores.push(r.score);
            }
        }
        (picks, scores)
    }

    fn response_event(&self) -> &'static str {
        match self.retraining.as_ref().map(|r| r.response) {
            Some(ResponseLabel::Conversion) => "action_converted",
            _ => "action_clicked",
        }
    }

    /// The loop's delivery rows whose response window has closed by `ts`.
    fn loop_table(
        &self,
        r: &Retraining,
        engine: &Engine,
        ts: i64,
        states: &[&BatonMemory],
    ) -> Result<(Table, usize)> {
        let schema = engine.models().response.scorer.schema().clone();
        let window = i64::from(engine.config().response_window_days) * DAY_US;
        let kinds: std::collections::HashMap<&str, &'static str> = r
            .config
            .actions
            .iter()
            .map(|a| (a.id.as_str(), a.kind.as_str()))
            .collect();
        let first = states
            .iter()
            .flat_map(|s| s.delivered.first().map(|d| d.ts))
            .min()
            .unwrap_or(ts);
        // without a base set, the last quarter of the loop's time is held out
        let held_out = first + (ts - window - first) * 3 / 4;
        let mut numeric = Vec::new();
        let mut keys = Vec::new();
        for (si, s) in states.iter().enumerate() {
            for (di, d) in s.delivered.iter().enumerate() {
                if d.ts + window > ts {
                    continue;
                }
                let at = numeric.len();
                numeric.extend_from_slice(&d.inputs);
                keys.push((si, di, at));
            }
        }
        let w = schema.numeric.len();
        let cats: Vec<[&str; 3]> = keys
            .iter()
            .map(|&(si, di, _)| {
                let d = &states[si].delivered[di];
                [
                    d.action_id.as_str(),
                    d.channel.as_str(),
                    kinds.get(d.action_id.as_str()).copied().unwrap_or(""),
                ]
            })
            .collect();
        let rows: Vec<RawRow<'_>> = keys
            .iter()
            .zip(&cats)
            .map(|(&(si, di, at), c)| {
                let s = states[si];
                let d = &s.delivered[di];
                let part = match (&r.base, d.ts >= held_out) {
                    (None, true) if crate::models::data::is_tune(&s.customer_id) => Part::Tune,
                    (None, true) => Part::Test,
                    _ => Part::Train,
                };
                RawRow {
                    customer_id: &s.customer_id,
                    numeric: &numeric[at..at + w],
                    categorical: c,
                    label: f64::from(u8::from(d.responded)),
                    part,
                }
            })
            .collect();
        let positives = rows.iter().filter(|r| r.label > 0.0).count();
        Ok((Table::from_rows(Task::Response, &schema, &rows)?, positives))
    }
}

impl LoopPolicy for BatonPolicy {
    type State = BatonMemory;

    fn meet(&self, m: &Meet<'_>) -> BatonMemory {
        let engine = self.engine.load();
        let mut st = BatonMemory {
            customer_id: m.customer_id.to_string(),
            online: OnlineState::new(Arc::clone(engine.feature_set()), Some(m.profile.clone())),
            contacts: ContactHistory::default(),
            consents: m.profile.consents,
            delivered: Vec::new(),
        };
        if self.history {
            for e in m.history {
                self.observe(&mut st, e);
            }
        }
        st
    }

    fn observe(&self, st: &mut BatonMemory, e: &Event) {
        if let Some(r) = &self.retraining {
            if e.event_type == "action_delivered"
                && let (Some(a), Some(c)) = (&e.action_id, &e.channel)
            {
                let features = st.online.vector(e.ts);
                let view = CustomerView {
                    customer_id: &st.customer_id,
                    features: &features,
                    consents: st.consents,
                    rfm: st.online.rfm(e.ts),
                    known: true,
                    contacts: &st.contacts,
                };
                let inputs = self.engine.load().models().response.numeric_inputs(&view);
                st.delivered.push(Delivered {
                    ts: e.ts,
                    inputs,
                    action_id: a.clone(),
                    channel: c.clone(),
                    decision_id: e.decision_id.clone(),
                    responded: false,
                });
            } else if e.event_type == self.response_event() {
                let window = i64::from(r.config.decide.response_window_days) * DAY_US;
                if let Some(d) = st.delivered.iter_mut().rev().find(|d| {
                    Some(&d.action_id) == e.action_id.as_ref()
                        && e.ts >= d.ts
                        && e.ts < d.ts + window
                        && (d.decision_id.is_none()
                            || e.decision_id.is_none()
                            || d.decision_id == e.decision_id)
                }) {
                    d.responded = true;
                }
            }
        }
        let engine = self.engine.load();
        st.online.update(e);
        st.contacts.apply_event(e, engine.keep_days());
        if e.event_type == "unsubscribe"
            && let Some(col) = e.channel.as_deref().and_then(consent_column)
            && let Some(i) = CONSENT_COLUMNS.iter().position(|(c, _)| *c == col)
        {
            st.consents[i] = Some(false);
            if let Some(mut p) = st.online.profile().cloned() {
                p.consents[i] = Some(false);
                st.online.set_profile(Some(p));
            }
        }
    }

    fn choose(&self, st: &mut BatonMemory, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        let (picks, scores) = self.considered(st, p, rng);
        self.engine.load().choose(&scores, rng).0.map(|i| picks[i])
    }

    fn retrain_every(&self) -> Option<u32> {
        self.retraining.as_ref().map(|r| r.every_days)
    }

    fn retrain(&self, day: i32, ts: i64, states: &[&BatonMemory]) -> Result<()> {
        let Some(r) = &self.retraining else {
            return Ok(());
        };
        let engine = self.engine.load_full();
        let (mut table, loop_positives) = self.loop_table(r, &engine, ts, states)?;
        let loop_rows = table.n;
        let base_rows = r.base.as_ref().map_or(0, |b| b.n);
        if let Some(base) = &r.base {
            let mut t = (**base).clone();
            t.append(table)?;
            table = t;
        }
        let old = &engine.models().response;
        let schema = old.scorer.schema().clone();
        let cfg = TrainConfig {
            importance_rows: 0,
            ..r.train.clone()
        };
        let trained = match train(&table, &schema, &cfg, &|_| {}) {
            Ok(t) => t,
            // too few rows yet to tune and test on: keep the model and try next time
            Err(Error::Data(m)) => {
                tracing::warn!(day, "no retraining: {m}");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let n = self.retrained().len() + 1;
        let version = format!("{}+loop{n}", old.version.split('+').next().unwrap_or(""));
        let slot = ModelSlot::new(
            "response",
            &version,
            Arc::new(trained.model),
            engine.feature_set(),
        )?;
        let models = Models {
            response: slot,
            ..engine.models().clone()
        };
        let next = Engine::new(&r.config, Arc::clone(engine.feature_set()), models)?;
        self.engine.store(Arc::new(next));
        let ev = trained.evaluation;
        tracing::info!(day, %version, loop_rows, auc = ?ev.auc, "response model retrained in the loop");
        if let Ok(mut v) = self.retrained.lock() {
            v.push(Retrained {
                day,
                version,
                base_rows,
                loop_rows,
                loop_positives,
                auc: ev.auc,
                oracle_auc: ev.oracle_auc,
                fit_seconds: ev.fit_seconds,
            });
        }
        Ok(())
    }
}
