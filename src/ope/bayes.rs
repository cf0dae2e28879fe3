//! `bayes` and `bayes-limited`: the most a policy can get from the data, for the closed
//! loop's table.
//!
//! The simulator's response probability of a delivery depends on three hidden traits of
//! the customer that nothing logs: their responsiveness on the channel (odds of opening),
//! their responsiveness to the action's kind (odds of clicking) and whether that kind
//! annoys them ([`crate::sim::ResponseTraits`]). Any policy, however good its model, can
//! know them only through the customer's own earlier responses.
//!
//! [`BayesPolicy`] is the oracle ([`super::policies::OraclePolicy`]; held to the engine's
//! contact policy like [`super::policies::LimitedOraclePolicy`] in `bayes-limited`) with
//! exactly that knowledge taken away and given back the only way the data allow: it knows the true model, the customer's hidden
//! state and every other trait, and it learns the three response traits as their Bayes
//! posterior given the outcomes (opened, clicked, converted) of its own earlier deliveries
//! to the customer, starting from the simulator's priors: ln channel responsiveness
//! ~ N(−0.125, 0.5²), ln kind responsiveness ~ N(−0.08, 0.4²), annoyed ~ Bernoulli(0.10
//! offer, 0.12 message, 0.06 service) (`src/sim/customer.rs`). Its P(response) is the
//! posterior mean of the true probability. No learner can know more about a response
//! from the events, so `bayes-limited`'s recovery is the ceiling of any policy that keeps
//! the engine's contact rules, and `bayes`'s of any policy at all.

use std::sync::{Arc, LazyLock};

use rand_chacha::ChaCha8Rng;

use super::policies::{BatonMemory, LimitedOraclePolicy};
use crate::config::Config;
use crate::decide::Engine;
use crate::features::{DAY_US, Event, ResponseLabel};
use crate::sim::ResponseTraits;
use crate::sim::closed_loop::{LoopPolicy, Meet, Point, channel_index};

/// Points of each trait's grid (the posterior is computed on a grid over ±5 sd).
const GRID: usize = 61;
/// Prior probability that an action kind (offer, message, service) annoys a customer.
const ANNOYED: [f64; 3] = [0.10, 0.12, 0.06];
/// A delivery's outcomes are taken as final this long after it (the slowest channel's
/// mean time to open is an hour).
const SETTLE_US: i64 = DAY_US / 2;

/// A normal prior on a grid: the points and their normalised weights.
struct Grid {
    x: [f64; GRID],
    w: [f64; GRID],
}

impl Grid {
    fn normal(mu: f64, sd: f64) -> Grid {
        let x: [f64; GRID] =
            std::array::from_fn(|i| mu + sd * (-5.0 + 10.0 * i as f64 / (GRID - 1) as f64));
        let mut w = x.map(|v| (-0.5 * ((v - mu) / sd).powi(2)).exp());
        let total: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= total);
        Grid { x, w }
    }
}

static LN_CHANNEL: LazyLock<Grid> = LazyLock::new(|| Grid::normal(-0.125, 0.5));
static LN_KIND: LazyLock<Grid> = LazyLock::new(|| Grid::normal(-0.08, 0.4));

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

/// The logits of opening, clicking once opened and converting once clicked with every
/// hidden response trait neutral (responsiveness 1, not annoyed).
#[derive(Debug, Clone, Copy)]
struct Logits {
    open: f64,
    click: f64,
    convert: f64,
}

impl Logits {
    fn of(p: &Point<'_>, k: usize) -> Logits {
        let neutral = ResponseTraits {
            ln_channel: 0.0,
            ln_kind: 0.0,
            annoyed: false,
        };
        let q = p.truth_given(k, neutral);
        Logits {
            open: logit(q.p_open),
            click: logit(q.p_click / q.p_open),
            convert: logit(q.p_convert / q.p_click),
        }
    }
}

/// A delivery whose outcomes are not final yet.
#[derive(Debug, Clone)]
struct Pending {
    ts: i64,
    action_id: String,
    decision_id: Option<String>,
    channel: usize,
    kind: usize,
    logits: Logits,
    opened: bool,
    clicked: bool,
    converted: bool,
}

/// The engine's memory of a customer (for its contact policy) and the posterior of the
/// customer's hidden response traits.
#[derive(Debug, Clone)]
pub struct BayesMemory {
    engine: BatonMemory,
    /// Per channel: posterior weights over [`LN_CHANNEL`]'s points.
    channel: Vec<[f64; GRID]>,
    /// Per action kind: posterior weights over (not annoyed, annoyed) × [`LN_KIND`]'s
    /// points.
    kind: Vec<[[f64; GRID]; 2]>,
    pending: Vec<Pending>,
}

impl BayesMemory {
    /// P(response) of a delivery with `logits` on `channel` of an action of `kind`: the
    /// posterior mean of the true probability.
    fn predict(&self, label: ResponseLabel, channel: usize, kind: usize, l: Logits) -> f64 {
        let open: f64 = (LN_CHANNEL.x.iter().zip(&self.channel[channel]))
            .map(|(x, w)| w * sigmoid(l.open + x))
            .sum();
        let mut respond = 0.0;
        for (annoyed, ws) in self.kind[kind].iter().enumerate() {
            let a = annoyed as f64;
            let convert = match label {
                ResponseLabel::Click => 1.0,
                ResponseLabel::Conversion => sigmoid(l.convert - 0.75 * a),
            };
            for (y, w) in LN_KIND.x.iter().zip(ws) {
                respond += w * sigmoid(l.click + y - 1.5 * a) * convert;
            }
        }
        open * respond
    }

    /// Updates the posterior with the outcomes of every delivery made before `now` less
    /// [`SETTLE_US`].
    fn settle(&mut self, now: i64) {
        let (done, open): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|d| d.ts + SETTLE_US <= now);
        self.pending = open;
        for d in done {
            let l = d.logits;
            let bern = |hit: bool, p: f64| if hit { p } else { 1.0 - p };
            let ws = &mut self.channel[d.channel];
            for (w, x) in ws.iter_mut().zip(&LN_CHANNEL.x) {
                *w *= bern(d.opened, sigmoid(l.open + x));
            }
            normalise(ws);
            if d.opened {
                let ws = &mut self.kind[d.kind];
                for (annoyed, row) in ws.iter_mut().enumerate() {
                    let a = annoyed as f64;
                    let convert = bern(d.converted, sigmoid(l.convert - 0.75 * a));
                    for (w, y) in row.iter_mut().zip(&LN_KIND.x) {
                        *w *= bern(d.clicked, sigmoid(l.click + y - 1.5 * a));
                        if d.clicked {
                            *w *= convert;
                        }
                    }
                }
                normalise(ws.as_flattened_mut());
            }
        }
    }
}

fn normalise(w: &mut [f64]) {
    let total: f64 = w.iter().sum();
    if total > 0.0 && total.is_finite() {
        w.iter_mut().for_each(|v| *v /= total);
    }
}

/// The oracle learning the hidden response traits from the customer's responses, held to
/// the engine's contact policy or not (see the module docs).
#[derive(Debug)]
pub struct BayesPolicy {
    /// The engine (its contact policy, and the memory it needs) and the oracle's choice.
    limited: LimitedOraclePolicy,
    /// Whether only the pairs the engine would consider are chosen from.
    keep_rules: bool,
    label: ResponseLabel,
}

impl BayesPolicy {
    /// `bayes`: chooses among every deliverable pair.
    pub fn new(engine: Arc<Engine>, config: &Config, label: ResponseLabel) -> Self {
        Self {
            limited: LimitedOraclePolicy::new(engine, config, label),
            keep_rules: false,
            label,
        }
    }

    /// `bayes-limited`: only among the pairs the engine's contact policy allows now.
    pub fn limited(engine: Arc<Engine>, config: &Config, label: ResponseLabel) -> Self {
        Self {
            keep_rules: true,
            ..Self::new(engine, config, label)
        }
    }
}

impl LoopPolicy for BayesPolicy {
    type State = BayesMemory;

    fn meet(&self, m: &Meet<'_>) -> BayesMemory {
        let kind = ANNOYED.map(|a| [LN_KIND.w.map(|w| w * (1.0 - a)), LN_KIND.w.map(|w| w * a)]);
        BayesMemory {
            engine: self.limited.engine.meet(m),
            channel: vec![LN_CHANNEL.w; crate::schema::CHANNELS.len()],
            kind: kind.to_vec(),
            pending: Vec::new(),
        }
    }

    fn observe(&self, st: &mut BayesMemory, e: &Event) {
        self.limited.engine.observe(&mut st.engine, e);
        let same = |d: &Pending| Some(&d.action_id) == e.action_id.as_ref();
        match e.event_type.as_str() {
            "action_delivered" => {
                if let Some(d) = st
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|d| same(d) && d.decision_id.is_none())
                {
                    d.decision_id = e.decision_id.clone();
                }
            }
            kind @ ("action_opened" | "action_clicked" | "action_converted") => {
                if let Some(d) =
                    st.pending.iter_mut().rev().find(|d| {
                        same(d) && d.decision_id.is_some() && d.decision_id == e.decision_id
                    })
                {
                    match kind {
                        "action_opened" => d.opened = true,
                        "action_clicked" => d.clicked = true,
                        _ => d.converted = true,
                    }
                }
            }
            _ => {}
        }
    }

    fn choose(&self, st: &mut BayesMemory, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        st.settle(p.ts);
        let picks = if self.keep_rules {
            self.limited.engine.considered(&mut st.engine, p, rng).0
        } else {
            (0..p.offers.len()).collect()
        };
        let mut logits = Vec::with_capacity(p.offers.len());
        let chosen = self.limited.oracle.best_by(p, picks, |k| {
            let l = Logits::of(p, k);
            logits.push((k, l));
            st.predict(self.label, channel_index(p.offers[k].channel), p.kind(k), l)
        })?;
        let (_, l) = logits.into_iter().find(|(k, _)| *k == chosen)?;
        st.pending.push(Pending {
            ts: p.ts,
            action_id: p.offers[chosen].action_id.to_string(),
            decision_id: None,
            channel: channel_index(p.offers[chosen].channel),
            kind: p.kind(chosen),
            logits: l,
            opened: false,
            clicked: false,
            converted: false,
        });
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_grids_hold_their_mean_and_spread() {
        for (g, mu, sd) in [(&*LN_CHANNEL, -0.125, 0.5), (&*LN_KIND, -0.08, 0.4)] {
            let mean: f64 = g.x.iter().zip(&g.w).map(|(x, w)| x * w).sum();
            let var: f64 =
                g.x.iter()
                    .zip(&g.w)
                    .map(|(x, w)| w * (x - mean).powi(2))
                    .sum();
            assert!((g.w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!((mean - mu).abs() < 1e-9, "{mean}");
            assert!((var.sqrt() - sd).abs() < 0.01 * sd, "{}", var.sqrt());
        }
    }

    fn memory() -> BayesMemory {
        let kind = ANNOYED.map(|a| [LN_KIND.w.map(|w| w * (1.0 - a)), LN_KIND.w.map(|w| w * a)]);
        BayesMemory {
            engine: BatonMemory::empty("c"),
            channel: vec![LN_CHANNEL.w; 9],
            kind: kind.to_vec(),
            pending: Vec::new(),
        }
    }

    fn delivery(ts: i64, channel: usize, kind: usize, opened: bool, clicked: bool) -> Pending {
        Pending {
            ts,
            action_id: "a".into(),
            decision_id: Some(format!("d{ts}")),
            channel,
            kind,
            logits: Logits {
                open: 0.0,
                click: -1.0,
                convert: 0.0,
            },
            opened,
            clicked,
            converted: false,
        }
    }

    /// Opens raise the channel's posterior, ignored opens of a kind raise its chance of
    /// annoying; other channels and kinds are untouched; a delivery counts only once its
    /// outcomes have settled.
    #[test]
    fn the_posterior_learns_from_settled_outcomes_only() {
        let l = Logits {
            open: 0.0,
            click: -1.0,
            convert: 0.0,
        };
        let mut m = memory();
        let prior_email = m.predict(ResponseLabel::Click, 2, 0, l);
        let prior_sms = m.predict(ResponseLabel::Click, 3, 0, l);
        for day in 0..8 {
            m.pending.push(delivery(day * DAY_US, 2, 0, true, false));
        }
        m.settle(7 * DAY_US + 1);
        assert_eq!(m.pending.len(), 1, "the last delivery has not settled");
        let after_email = m.predict(ResponseLabel::Click, 2, 0, l);
        let after_sms = m.predict(ResponseLabel::Click, 3, 0, l);
        // opened every time: more likely to open on email; never clicked: less likely to
        // click on an offer (of which being annoyed is part)
        let open_only = |m: &BayesMemory, ch: usize| {
            LN_CHANNEL
                .x
                .iter()
                .zip(&m.channel[ch])
                .map(|(x, w)| w * sigmoid(*x))
                .sum::<f64>()
        };
        assert!(open_only(&m, 2) > open_only(&memory(), 2) + 0.1);
        assert_eq!(open_only(&m, 3), open_only(&memory(), 3));
        let annoyed = |m: &BayesMemory| m.kind[0][1].iter().sum::<f64>();
        assert!(annoyed(&m) > 2.0 * ANNOYED[0], "{}", annoyed(&m));
        assert_eq!(m.kind[1], memory().kind[1]);
        assert!(after_sms < prior_sms, "fewer clicks on offers expected");
        assert!(after_email != prior_email);
        // conversion is the smaller response
        assert!(m.predict(ResponseLabel::Conversion, 2, 0, l) < after_email);
    }
}
