//! Closed-loop runs: a policy decides, day by day, for simulated customers, and the
//! simulator's hidden truth answers. The policy sees what production would see — the
//! customer's profile at the start and every event as it happens ([`LoopPolicy::observe`])
//! — and at each decision point chooses one of the deliverable (action, channel) pairs or
//! nothing. [`Point::truth`] is there only for the oracle policy, the upper reference.
//!
//! Every policy meets the same customers (same seed, same traits, same first days): the
//! world draws come from the customer's stream, the policy's own randomness from a
//! separate one, so policies differ only through what they choose.
//!
//! Realised value counts, per delivery, the action's `value` when the configured response
//! (click, or conversion) happened, minus the channel cost: the quantity the engine's
//! score `P(response) × value × weight − cost` estimates (weights are the business's
//! priorities and are not counted).

use std::ops::Range;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::customer::Customer;
use super::journey::{DayLog, Ev, ev};
use super::marketing::{Chooser, Point as SimPoint};
use super::oracle::{Oracle, ResponseProbs, ResponseTraits};
use super::state::State;
use super::{SimParams, decision_id, mix};
use crate::config::Config;
use crate::error::Result;
use crate::features::{Event, Profile, ResponseLabel};
use crate::schema::{CHANNELS, EVENT_TYPES};

const POLICY_STREAM: u64 = 0x706f_6c69_6379;

/// The true probability of the `label` response (click, or conversion).
pub fn true_response(label: ResponseLabel, p: &ResponseProbs) -> f64 {
    match label {
        ResponseLabel::Click => p.p_click,
        ResponseLabel::Conversion => p.p_convert,
    }
}

/// What a policy knows of a customer when it first meets them.
#[derive(Debug, Clone)]
pub struct Meet<'a> {
    pub customer_id: &'a str,
    /// The customers-table row as it is at the customer's first simulated day.
    pub profile: Profile,
    /// The customer's history before the run as events (orders, visits, support
    /// contacts, survey answers), in time order: what a production event store holds for
    /// a customer who joined before the first simulated day. The simulator's logged data
    /// (`baton simulate`) does not contain these events.
    pub history: &'a [Event],
}

/// A deliverable candidate at a decision point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer<'a> {
    pub action_id: &'a str,
    pub channel: &'static str,
    /// The action's position in the catalog.
    pub action_index: usize,
}

/// A decision point: when, and what can be delivered now.
pub struct Point<'a> {
    pub customer_id: &'a str,
    /// µs since the epoch.
    pub ts: i64,
    pub offers: &'a [Offer<'a>],
    truth: Truth<'a>,
}

struct Truth<'a> {
    oracle: &'a Oracle,
    customer: &'a Customer,
    state: &'a State,
    day: i32,
}

impl Point<'_> {
    /// The hidden truth: the exact response probabilities of delivering `offers[k]` now.
    /// Only the oracle policy may read it.
    pub fn truth(&self, k: usize) -> ResponseProbs {
        let o = &self.offers[k];
        let t = &self.truth;
        t.oracle.response(
            t.customer,
            t.state,
            o.action_index,
            channel_index(o.channel),
            t.day,
        )
    }

    /// As [`Point::truth`], with the customer's hidden response traits for `offers[k]`
    /// replaced by `traits` (see [`Oracle::response_given`]): the truth less what only the
    /// customer's own responses reveal. Only reference policies may read it.
    pub fn truth_given(&self, k: usize, traits: ResponseTraits) -> ResponseProbs {
        let o = &self.offers[k];
        let t = &self.truth;
        t.oracle.response_given(
            t.customer,
            t.state,
            o.action_index,
            channel_index(o.channel),
            t.day,
            traits,
        )
    }

    /// The kind of `offers[k]`'s action: 0 offer, 1 message, 2 service.
    pub fn kind(&self, k: usize) -> usize {
        self.truth.oracle.actions[self.offers[k].action_index].kind
    }
}

/// Index of a contract channel in [`CHANNELS`].
pub fn channel_index(channel: &str) -> usize {
    CHANNELS
        .iter()
        .position(|c| *c == channel)
        .expect("a contract channel")
}

/// A policy that can run in the closed loop. `State` is its memory of one customer.
pub trait LoopPolicy: Sync {
    type State: Send;
    /// Starts remembering a customer.
    fn meet(&self, m: &Meet<'_>) -> Self::State;
    /// One event of the customer, in time order, as soon as it happened.
    fn observe(&self, st: &mut Self::State, e: &Event);
    /// Picks one of `p.offers` (an index) or `None` to do nothing. `rng` is the policy's
    /// own stream.
    fn choose(&self, st: &mut Self::State, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize>;
    /// Days between two retrainings of the policy (`None`: it never retrains).
    fn retrain_every(&self) -> Option<u32> {
        None
    }
    /// Retrains at the start of `day` (`ts`, µs) on the memories of every customer so
    /// far; called every [`LoopPolicy::retrain_every`] days.
    fn retrain(&self, _day: i32, _ts: i64, _states: &[&Self::State]) -> Result<()> {
        Ok(())
    }
}

/// Totals of a closed-loop run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopTotals {
    pub customers: u64,
    /// Decision points with at least one deliverable candidate.
    pub decision_points: u64,
    /// Deliveries made.
    pub contacts: u64,
    /// Deliveries with the configured response.
    pub responses: u64,
    /// Σ value of responded deliveries − Σ delivery cost.
    pub value: f64,
    /// Σ delivery cost.
    pub cost: f64,
    /// Σ purchase values − Σ return values.
    pub revenue: f64,
    /// Customers whose latent churn happened during the run.
    pub churned: u64,
    /// Per `action@channel`: deliveries, responses, realised value.
    pub by_pair: std::collections::BTreeMap<String, PairTotals>,
}

/// Deliveries of one (action, channel) in a closed-loop run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairTotals {
    pub contacts: u64,
    pub responses: u64,
    pub value: f64,
}

impl LoopTotals {
    fn merge(mut self, o: LoopTotals) -> LoopTotals {
        self.customers += o.customers;
        self.decision_points += o.decision_points;
        self.contacts += o.contacts;
        self.responses += o.responses;
        self.value += o.value;
        self.cost += o.cost;
        self.revenue += o.revenue;
        self.churned += o.churned;
        for (k, v) in o.by_pair {
            let e = self.by_pair.entry(k).or_default();
            e.contacts += v.contacts;
            e.responses += v.responses;
            e.value += v.value;
        }
        self
    }

    fn per_customer(&self, x: f64) -> f64 {
        x / self.customers.max(1) as f64
    }

    /// Realised value per customer.
    pub fn value_per_customer(&self) -> f64 {
        self.per_customer(self.value)
    }

    /// Realised value per decision point (what off-policy estimates estimate).
    pub fn value_per_point(&self) -> f64 {
        self.value / self.decision_points.max(1) as f64
    }

    /// Responses per delivery.
    pub fn response_rate(&self) -> f64 {
        self.responses as f64 / self.contacts.max(1) as f64
    }

    /// Churned customers per customer.
    pub fn churn_rate(&self) -> f64 {
        self.per_customer(self.churned as f64)
    }

    /// Deliveries per customer.
    pub fn contacts_per_customer(&self) -> f64 {
        self.per_customer(self.contacts as f64)
    }

    /// Net revenue per customer.
    pub fn revenue_per_customer(&self) -> f64 {
        self.per_customer(self.revenue)
    }
}

/// Runs `policy` for `params.customers` customers over `params.days` days and returns the
/// totals. `progress` is called with the number of customers done.
///
/// A policy that retrains ([`LoopPolicy::retrain_every`]) runs in periods: every customer
/// lives through the period's days, then the policy retrains on what it has observed of
/// all of them, then the next period starts. Without retraining, customers run one after
/// another from the first day to the last. Both orders give the same worlds: each customer's
/// draws come from their own streams.
pub fn run_closed_loop<P: LoopPolicy>(
    config: &Config,
    params: &SimParams,
    policy: &P,
    response: ResponseLabel,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<LoopTotals> {
    params.validate()?;
    let oracle = Oracle::new(config, params)?;
    let costs: Vec<Vec<f64>> = config
        .actions
        .iter()
        .map(|a| CHANNELS.iter().map(|c| a.cost_on(c)).collect())
        .collect();
    let world = World {
        oracle: &oracle,
        costs: &costs,
        response,
    };
    let days = params.days as i32;
    let done = std::sync::atomic::AtomicU64::new(0);
    let chunk = 512u64;
    let every = policy
        .retrain_every()
        .filter(|&e| e > 0 && (e as i32) < days);
    let Some(every) = every else {
        let totals = (0..params.customers.div_ceil(chunk))
            .into_par_iter()
            .map(|k| {
                let range = k * chunk..((k + 1) * chunk).min(params.customers);
                let n = range.end - range.start;
                let mut t = LoopTotals::default();
                for index in range {
                    let mut r = Runner::new(&world, policy, index);
                    r.run(&world, policy, 0..days);
                    t = t.merge(r.totals);
                }
                let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                progress(d);
                t
            })
            .reduce(LoopTotals::default, LoopTotals::merge);
        return Ok(totals);
    };
    let mut runners: Vec<Runner<P>> = (0..params.customers)
        .into_par_iter()
        .map(|index| Runner::new(&world, policy, index))
        .collect();
    let periods = (days as u32).div_ceil(every) as u64;
    let mut start = 0;
    let mut period = 0u64;
    while start < days {
        let end = (start + every as i32).min(days);
        runners.par_chunks_mut(chunk as usize).for_each(|rs| {
            for r in rs.iter_mut() {
                r.run(&world, policy, start..end);
            }
            let n = rs.len() as u64;
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(d / periods);
        });
        if end < days {
            let states: Vec<&P::State> = runners.iter().map(|r| &r.st).collect();
            policy.retrain(end, oracle.day_start_us(end), &states)?;
        }
        start = end;
        period += 1;
    }
    debug_assert_eq!(period, periods);
    Ok(runners
        .into_par_iter()
        .map(|r| r.totals)
        .reduce(LoopTotals::default, LoopTotals::merge))
}

/// What every customer's run shares: the simulator and the value of a delivery.
struct World<'a> {
    oracle: &'a Oracle,
    /// Cost per catalog action and channel index.
    costs: &'a [Vec<f64>],
    response: ResponseLabel,
}

/// The bridge from the simulator's decision point to a [`LoopPolicy`].
struct Bridge<'a, P: LoopPolicy> {
    policy: &'a P,
    st: &'a mut P::State,
    rng: &'a mut ChaCha8Rng,
    customer: &'a Customer,
    day: i32,
    /// The time of today's decision point; today's events before it were observed there.
    decided_at: Option<i64>,
}

impl<P: LoopPolicy> Chooser for Bridge<'_, P> {
    fn choose(&mut self, o: &Oracle, p: &SimPoint<'_>, _: &mut ChaCha8Rng) -> Option<usize> {
        for e in p.today.iter().filter(|e| e.ts < p.ts) {
            let event = to_event(o, self.customer, self.day, e);
            self.policy.observe(self.st, &event);
        }
        self.decided_at = Some(p.ts);
        let offers: Vec<Offer<'_>> = p
            .candidates
            .iter()
            .map(|&(a, c)| Offer {
                action_id: o.actions[a as usize].id.as_str(),
                channel: CHANNELS[c as usize],
                action_index: a as usize,
            })
            .collect();
        let point = Point {
            customer_id: &self.customer.id,
            ts: p.ts,
            offers: &offers,
            truth: Truth {
                oracle: o,
                customer: p.customer,
                state: p.state,
                day: p.day,
            },
        };
        self.policy.choose(self.st, &point, self.rng)
    }
}

/// One customer in the loop: the world's state of them, the policy's memory of them and
/// what their deliveries realised so far.
struct Runner<P: LoopPolicy> {
    customer: Customer,
    state: State,
    /// The world's stream.
    rng: ChaCha8Rng,
    /// The policy's own stream.
    policy_rng: ChaCha8Rng,
    log: DayLog,
    st: P::State,
    totals: LoopTotals,
}

impl<P: LoopPolicy> Runner<P> {
    fn new(w: &World<'_>, policy: &P, index: u64) -> Self {
        let o = w.oracle;
        let mut rng = o.customer_rng(index);
        let c = Customer::generate(index, o.days, &mut rng);
        let s = State::initial(&c, o.actions.len(), &mut rng);
        let created = o.day_start_us(c.created_day) + i64::from(c.created_sec) * 1_000_000;
        let profile = Profile {
            created_at: Some(created),
            attributes: [c.age_band, c.region, c.segment].map(|x| Some(x.to_string())),
            consents: c.consents.map(Some),
        };
        let history = history_events(o, &c, &s, index);
        let st = policy.meet(&Meet {
            customer_id: &c.id,
            profile,
            history: &history,
        });
        Self {
            customer: c,
            state: s,
            rng,
            policy_rng: ChaCha8Rng::seed_from_u64(mix(&[o.seed ^ POLICY_STREAM, index])),
            log: DayLog::default(),
            st,
            totals: LoopTotals {
                customers: 1,
                ..Default::default()
            },
        }
    }

    /// Lives through `days`.
    fn run(&mut self, w: &World<'_>, policy: &P, days: Range<i32>) {
        let o = w.oracle;
        let Self {
            customer: c,
            state: s,
            rng,
            policy_rng,
            log,
            st,
            totals: t,
        } = self;
        for day in days {
            if day < c.created_day || !s.alive() {
                continue;
            }
            let mut bridge = Bridge {
                policy,
                st: &mut *st,
                rng: &mut *policy_rng,
                customer: c,
                day,
                decided_at: None,
            };
            o.run_day(c, s, day, rng, log, &mut bridge);
            let decided_at = bridge.decided_at;
            for e in &log.events {
                if decided_at.is_none_or(|at| e.ts >= at) {
                    let event = to_event(o, c, day, e);
                    policy.observe(st, &event);
                }
                match e.kind {
                    ev::PURCHASE => t.revenue += e.value.unwrap_or(0.0),
                    ev::RETURN => t.revenue -= e.value.unwrap_or(0.0),
                    _ => {}
                }
            }
            if decided_at.is_some() {
                t.decision_points += 1;
            }
            if let Some(d) = &log.decision {
                let (a, chn) = d.candidates[d.chosen];
                let cost = w.costs[a as usize][chn as usize];
                let hit = match w.response {
                    ResponseLabel::Click => d.clicked,
                    ResponseLabel::Conversion => d.converted,
                };
                let gain = if hit {
                    o.actions[a as usize].value
                } else {
                    0.0
                };
                t.contacts += 1;
                t.cost += cost;
                t.value += gain - cost;
                t.responses += u64::from(hit);
                let key = format!("{}@{}", o.actions[a as usize].id, CHANNELS[chn as usize]);
                let e = t.by_pair.entry(key).or_default();
                e.contacts += 1;
                e.responses += u64::from(hit);
                e.value += gain - cost;
            }
            if rand::Rng::random::<f64>(rng) < o.churn_hazard(c, s) {
                s.churned_day = Some(day);
                t.churned += 1;
            }
        }
    }
}

const HISTORY_STREAM: u64 = 0x0068_6973_746f_7279; // "history"

/// The events of the sampled history a customer who joined before the start brings (see
/// [`State::initial`]): the orders of the last 90 days with their values, the earlier
/// orders (the last on the recorded day, the others spread over the tenure before the 90
/// days), the visits and support contacts of the last 30 days, the last NPS and CSAT
/// answers. Drawn from a stream of their own, so the run itself is unchanged.
fn history_events(o: &Oracle, c: &Customer, s: &State, index: u64) -> Vec<Event> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(&[o.seed ^ HISTORY_STREAM, index]));
    let tenure = -c.created_day;
    if tenure <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let at = |day: i32, rng: &mut ChaCha8Rng| {
        o.day_start_us(day) + rng.random_range(9 * 3600..20 * 3600) * 1_000_000
    };
    let ev = |ts: i64, kind: &str, channel: &str, value: Option<f64>| Event {
        ts,
        event_type: kind.to_string(),
        channel: Some(channel.to_string()),
        action_id: None,
        decision_id: None,
        item_id: None,
        value,
    };
    for &(day, v) in &s.purchases {
        let chn = CHANNELS[c.session_channel(&mut rng) as usize];
        out.push(ev(at(day, &mut rng), "purchase", chn, Some(v)));
    }
    let older = s.purchase_count.saturating_sub(s.purchases.len() as u32);
    if older > 0 {
        let last = match (s.purchases.is_empty(), s.last_purchase_day) {
            (true, Some(d)) => d,
            _ => -91,
        };
        let first = (-tenure).min(last);
        for k in 0..older {
            let day = if k == 0 {
                last
            } else {
                rng.random_range(first..=last)
            };
            let chn = CHANNELS[c.session_channel(&mut rng) as usize];
            let v = c.basket(&mut rng);
            out.push(ev(at(day, &mut rng), "purchase", chn, Some(v)));
        }
    }
    for &day in &s.visits {
        let chn = CHANNELS[c.session_channel(&mut rng) as usize];
        out.push(ev(at(day, &mut rng), "visit", chn, None));
    }
    for &day in &s.support {
        out.push(ev(
            at(day, &mut rng),
            "support_contact",
            "call_center",
            None,
        ));
    }
    for (score, kind) in [(s.last_nps, "survey_nps"), (s.last_csat, "survey_csat")] {
        if let Some(v) = score {
            let day = rng.random_range((-tenure).max(-90)..0);
            out.push(ev(at(day, &mut rng), kind, "email", Some(v)));
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

/// The contract event of a simulator event (the same strings the output layer writes).
fn to_event(o: &Oracle, c: &Customer, day: i32, e: &Ev) -> Event {
    Event {
        ts: e.ts,
        event_type: EVENT_TYPES[e.kind as usize].to_string(),
        channel: e.channel.map(|x| CHANNELS[x as usize].to_string()),
        action_id: e.action.map(|a| o.actions[a as usize].id.clone()),
        decision_id: e.decision.then(|| decision_id(c.index, day)),
        item_id: e.item.map(|it| format!("p{it:05}")),
        value: e.value,
    }
}
