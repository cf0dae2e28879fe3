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

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::decide::{ContactHistory, CustomerView, DecideInput, Engine};
use crate::features::ResponseLabel;
use crate::features::{Event, OnlineState};
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

impl LoopPolicy for OraclePolicy {
    type State = ();
    fn meet(&self, _: &Meet<'_>) {}
    fn observe(&self, _: &mut (), _: &Event) {}
    fn choose(&self, _: &mut (), p: &Point<'_>, _: &mut ChaCha8Rng) -> Option<usize> {
        let mut best = None;
        let mut best_score = self.do_nothing;
        for (k, o) in p.offers.iter().enumerate() {
            let (value, costs) = &self.actions[o.action_index];
            let cost = costs
                .iter()
                .find(|(c, _)| c == o.channel)
                .map_or(0.0, |x| x.1);
            let score = true_response(self.response, &p.truth(k)) * value - cost;
            if score > best_score {
                best_score = score;
                best = Some(k);
            }
        }
        best
    }
}

/// The engine in the loop (see the module docs).
#[derive(Debug, Clone)]
pub struct BatonPolicy {
    engine: Arc<Engine>,
    context: serde_json::Map<String, serde_json::Value>,
    /// Whether the engine sees the customers' history before the run
    /// ([`Meet::history`]), as a production event store would hold it.
    history: bool,
}

/// What the engine remembers of one customer: online features, contacts, consents.
#[derive(Debug, Clone)]
pub struct BatonMemory {
    online: OnlineState,
    contacts: ContactHistory,
    consents: [Option<bool>; 5],
}

impl BatonPolicy {
    /// The engine seeing the customers' history before the run (production).
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            context: serde_json::Map::new(),
            history: true,
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
}

impl LoopPolicy for BatonPolicy {
    type State = BatonMemory;

    fn meet(&self, m: &Meet<'_>) -> BatonMemory {
        let mut st = BatonMemory {
            online: OnlineState::new(
                Arc::clone(self.engine.feature_set()),
                Some(m.profile.clone()),
            ),
            contacts: ContactHistory::default(),
            consents: m.profile.consents,
        };
        if self.history {
            for e in m.history {
                self.observe(&mut st, e);
            }
        }
        st
    }

    fn observe(&self, st: &mut BatonMemory, e: &Event) {
        st.online.update(e);
        st.contacts.apply_event(e, self.engine.keep_days());
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
        let features = st.online.vector(p.ts);
        let view = CustomerView {
            customer_id: p.customer_id,
            features: &features,
            consents: st.consents,
            known: true,
            contacts: &st.contacts,
        };
        let input = DecideInput {
            now: p.ts,
            context: &self.context,
            limit: 1,
            explain: false,
        };
        // the engine ranks; the choice is among what can be delivered now
        let d = self.engine.decide(&view, &input, String::new(), rng).ok()?;
        let mut picks = Vec::new();
        let mut scores = Vec::new();
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
        self.engine.choose(&scores, rng).0.map(|i| picks[i])
    }
}
