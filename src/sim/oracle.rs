//! The ground-truth oracle: the catalog as the simulator sees it, the exact response
//! probabilities P(open), P(click), P(convert) that deliveries are drawn from, the daily
//! churn hazard, and the true 30-day churn / no-purchase probabilities at a cutoff.
//!
//! # How the horizon probabilities are computed (Monte-Carlo continuation)
//!
//! The churn hazard moves inside a horizon (returns, support contacts and deliveries change
//! it), so no closed form is exact. [`Oracle::horizon`] clones the customer's state at the
//! cutoff and continues the journey `ORACLE_PATHS` times with independent RNG streams
//! (derived from seed, customer, cutoff and path; the real journey's RNG is never touched),
//! running the same day step as the simulator, behaviour policy included, with the churn
//! draw suppressed. Along each path it accumulates the survival product `S = Π(1 − h_d)` of
//! the daily hazards (a Rao-Blackwellised estimator), so
//! `p_churn = 1 − mean(S_30)` and `p_no_purchase = 1 − mean(S_{τ−1} · 1[τ in horizon])`
//! where `τ` is the path's first day with an order. Both are unbiased estimates of the
//! true conditional probabilities given the full hidden state at the cutoff.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::SimParams;
use super::customer::{Customer, ch};
use super::journey::DayLog;
use super::marketing::Uniform;
use super::state::State;
use super::{ELIGIBILITY_VARIABLES, mix};
use crate::config::{ActionKind, Config};
use crate::decide::expr::Expr;
use crate::error::{Error, Result};
use crate::schema::CHANNELS;

/// Continuation paths per customer and cutoff in [`Oracle::horizon`].
pub const ORACLE_PATHS: u32 = 8;
const ORACLE_STREAM: u64 = 0x6f72_6163_6c65;

/// How the simulator models an action's appeal (by the default catalog's ids; other ids
/// get the generic model of their kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appeal {
    CartReminder,
    WinBack,
    Welcome,
    Loyalty,
    CrossSell,
    ServiceCall,
    Survey,
    Premium,
    Generic,
}

/// One catalog action, prepared for simulation.
#[derive(Debug, Clone)]
pub(crate) struct ActionModel {
    pub id: String,
    pub kind: usize,
    pub appeal: Appeal,
    pub value: f64,
    pub channels: Vec<u8>,
    pub expr: Expr,
    pub first_day: Option<i32>,
    pub last_day: Option<i32>,
    pub max_contacts: u32,
    pub per_days: u32,
    pub cooldown: u32,
}

/// True response probabilities of one delivery (nested: convert ≤ click ≤ open).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseProbs {
    pub p_open: f64,
    pub p_click: f64,
    pub p_convert: f64,
}

/// A customer's hidden traits that [`Oracle::response`] reads for one delivery: the log
/// of their responsiveness on its channel (odds of opening) and to its action kind (odds
/// of clicking), and whether the kind annoys them (click logit −1.5, conversion −0.75).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseTraits {
    pub ln_channel: f64,
    pub ln_kind: f64,
    pub annoyed: bool,
}

/// True horizon probabilities at a cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HorizonTruth {
    pub p_churn: f64,
    pub p_no_purchase: f64,
}

/// The simulator's world model and ground truth (see the module docs).
#[derive(Debug, Clone)]
pub struct Oracle {
    pub(crate) actions: Vec<ActionModel>,
    pub(crate) seed: u64,
    pub(crate) days: u32,
    pub(crate) start_us: i64,
    pub(crate) action_rate: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl Oracle {
    /// Prepares the catalog: parses every eligibility expression and checks its variables
    /// against [`ELIGIBILITY_VARIABLES`]; errors name the action and the variable.
    pub fn new(config: &Config, params: &SimParams) -> Result<Self> {
        let start = params.start;
        let day_of = |d: chrono::NaiveDate| (d - start).num_days() as i32;
        let mut actions = Vec::with_capacity(config.actions.len());
        for a in &config.actions {
            let expr = a.eligibility_expr()?;
            expr.check_variables(|v| ELIGIBILITY_VARIABLES.contains(&v))
                .map_err(|e| match e {
                    Error::Expression {
                        position, message, ..
                    } => Error::Expression {
                        context: format!("action `{}` eligibility `{}`", a.id, a.eligibility),
                        position,
                        message: format!(
                            "{message}; the simulator knows {}",
                            ELIGIBILITY_VARIABLES.join(", ")
                        ),
                    },
                    other => other,
                })?;
            let (first, last) = a.active_dates()?;
            let mut channels = Vec::new();
            for c in &a.channels {
                let i = CHANNELS.iter().position(|k| k == c).ok_or_else(|| {
                    Error::config(
                        format!("actions.{}.channels", a.id),
                        format!("unknown channel `{c}`"),
                    )
                })?;
                channels.push(i as u8);
            }
            let appeal = match a.id.as_str() {
                "cart_reminder" => Appeal::CartReminder,
                "win_back" => Appeal::WinBack,
                "welcome_discount" => Appeal::Welcome,
                "loyalty_points" => Appeal::Loyalty,
                "cross_sell" => Appeal::CrossSell,
                "service_call" => Appeal::ServiceCall,
                "survey_request" => Appeal::Survey,
                "premium_upsell" => Appeal::Premium,
                _ => Appeal::Generic,
            };
            actions.push(ActionModel {
                id: a.id.clone(),
                kind: ActionKind::ALL
                    .iter()
                    .position(|k| *k == a.kind)
                    .unwrap_or(0),
                appeal,
                value: a.value,
                channels,
                expr,
                first_day: first.map(day_of),
                last_day: last.map(day_of),
                max_contacts: a.max_contacts,
                per_days: a.per_days,
                cooldown: a.cooldown_days,
            });
        }
        let start_us = start
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        Ok(Oracle {
            actions,
            seed: params.seed,
            days: params.days,
            start_us,
            action_rate: params.action_rate,
        })
    }

    /// The action ids, in catalog order (the `action` index of [`Oracle::response`]).
    pub fn action_ids(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.id.as_str())
    }

    /// Regenerates customer `index` with its hidden traits, exactly as the simulator drew it.
    pub fn customer(&self, index: u64) -> Customer {
        let mut rng = self.customer_rng(index);
        Customer::generate(index, self.days, &mut rng)
    }

    pub(crate) fn customer_rng(&self, index: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(&[self.seed, index]))
    }

    /// Start of `day` in µs since the epoch (UTC).
    pub fn day_start_us(&self, day: i32) -> i64 {
        self.start_us + day as i64 * 86_400_000_000
    }

    /// The true response probabilities of delivering catalog action `action` on channel
    /// `channel` (an index into [`CHANNELS`]) to customer `c` in state `s` on `day`. These
    /// are exactly the probabilities the simulator draws responses from.
    pub fn response(
        &self,
        c: &Customer,
        s: &State,
        action: usize,
        channel: usize,
        day: i32,
    ) -> ResponseProbs {
        let t = &c.traits;
        let kind = self.actions[action].kind;
        let traits = ResponseTraits {
            ln_channel: t.channel_responsiveness[channel].ln(),
            ln_kind: t.kind_responsiveness[kind].ln(),
            annoyed: t.annoyed_by[kind],
        };
        self.response_given(c, s, action, channel, day, traits)
    }

    /// As [`Oracle::response`], with the customer's hidden response traits for this
    /// delivery replaced by `traits`; the state and every other trait as they are. For a
    /// reference policy that learns those traits from the customer's own responses.
    pub fn response_given(
        &self,
        c: &Customer,
        s: &State,
        action: usize,
        channel: usize,
        day: i32,
        traits: ResponseTraits,
    ) -> ResponseProbs {
        let a = &self.actions[action];
        let t = &c.traits;
        let chn = channel as u8;
        let (open, ctr) = match chn {
            ch::EMAIL => (0.22, 0.15),
            ch::SMS => (0.45, 0.12),
            ch::PUSH => (0.12, 0.25),
            ch::CALL => (0.35, 0.50),
            ch::MAIL => (0.30, 0.10),
            ch::WEB => (0.60, 0.08),
            ch::APP => (0.50, 0.10),
            _ => (0.30, 0.10),
        };
        let cvr = [0.25, 0.20, 0.50][a.kind];
        let n7 = s.recent_deliveries() as f64;
        let fatigue = -0.25 * n7;
        let annoy = if traits.annoyed { -1.5 } else { 0.0 };
        let v = s.vars(c, day);
        let dslp = v.days_since_last_purchase;
        let ps = t.price_sensitivity - 0.4;
        let (click_fx, conv_fx) = match a.appeal {
            Appeal::CartReminder => {
                let age = s.last_abandon_day.map_or(30.0, |d| (day - d) as f64);
                (
                    2.0 * (-age / 3.0).exp() + 0.2,
                    0.8 * (-age / 3.0).exp() + 0.5 * ps,
                )
            }
            Appeal::WinBack => {
                let d = dslp.unwrap_or(400.0);
                let fx = if d < 30.0 {
                    -0.5
                } else if d <= 90.0 {
                    0.6
                } else {
                    0.6 - 0.5 * ((d - 90.0) / 60.0).min(3.0)
                };
                (fx + 0.8 * ps, 1.2 * ps)
            }
            Appeal::Welcome => (1.0 * (-v.tenure_days / 7.0).exp() + 0.6 * ps, 0.8 * ps),
            Appeal::Loyalty => (
                0.25 * v.purchases_90d.min(6.0) - 0.4,
                0.15 * v.purchases_90d.min(6.0),
            ),
            Appeal::CrossSell => {
                let fresh = dslp.map_or(0.0, |d| (-d / 7.0).exp());
                (0.9 * fresh - 0.2, 0.6 * fresh)
            }
            Appeal::ServiceCall => {
                let unhappy = (-s.satisfaction).clamp(0.0, 2.5);
                (
                    0.6 * unhappy + 0.3 * v.support_contacts_30d.min(3.0),
                    0.5 * unhappy,
                )
            }
            Appeal::Survey => (0.4 * s.satisfaction.abs().min(2.0), 0.3),
            Appeal::Premium => {
                let spend = (v.spend_90d.max(1.0) / 150.0).ln().clamp(-2.0, 2.0);
                let vip = if c.segment == "vip" { 0.4 } else { 0.0 };
                (0.5 * spend + vip - 0.2, 0.4 * spend - 0.6 * ps)
            }
            Appeal::Generic => (0.0, if a.kind == 0 { 0.8 * ps } else { 0.0 }),
        };
        let p_open = sigmoid(logit(open) + traits.ln_channel + 0.5 * fatigue);
        let p_click_open = sigmoid(logit(ctr) + traits.ln_kind + annoy + fatigue + click_fx);
        let p_conv_click = sigmoid(logit(cvr) + conv_fx + 0.5 * annoy);
        let p_click = p_open * p_click_open;
        ResponseProbs {
            p_open,
            p_click,
            p_convert: p_click * p_conv_click,
        }
    }

    /// The daily churn hazard given the state at the end of a day: the probability that
    /// the latent churn event happens at the end of that day.
    pub fn churn_hazard(&self, c: &Customer, s: &State) -> f64 {
        let support = (s.support.len() as f64).min(3.0);
        let x = -0.6 * s.satisfaction + 0.8 * s.irritation.min(4.0)
            - 0.7 * s.retention_boost.min(3.0)
            + 0.25 * support;
        (c.traits.base_hazard * x.exp()).min(0.1)
    }

    /// The true probabilities of churn and of no order within `horizon` days from the
    /// start of day `cutoff`, given the customer's full state at that moment (see the
    /// module docs for the estimator). The caller's state is not changed.
    pub fn horizon(&self, c: &Customer, s: &State, cutoff: i32, horizon: u32) -> HorizonTruth {
        let mut log = DayLog::default();
        let (mut surv_sum, mut purch_sum) = (0.0, 0.0);
        for path in 0..ORACLE_PATHS {
            let mut st = s.clone();
            let mut rng = ChaCha8Rng::seed_from_u64(mix(&[
                self.seed ^ ORACLE_STREAM,
                c.index,
                cutoff as u64,
                path as u64,
            ]));
            let mut surv = 1.0;
            let mut first = None;
            for day in cutoff..cutoff + horizon as i32 {
                self.run_day(c, &mut st, day, &mut rng, &mut log, &mut Uniform);
                if first.is_none() && log.purchased {
                    first = Some(surv);
                }
                surv *= 1.0 - self.churn_hazard(c, &st);
            }
            surv_sum += surv;
            purch_sum += first.unwrap_or(0.0);
        }
        let k = ORACLE_PATHS as f64;
        HorizonTruth {
            p_churn: 1.0 - surv_sum / k,
            p_no_purchase: 1.0 - purch_sum / k,
        }
    }
}
