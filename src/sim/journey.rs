//! One customer-day of the journey: inbound sessions (web, app, store) with the browse →
//! cart → checkout → order funnel, returns, support contacts, surveys, and the day's
//! marketing decision point, all processed in time order. The result is a [`DayLog`] of
//! compact events; the output layer turns it into Arrow rows, the oracle's continuation
//! simply discards it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::customer::{Customer, ch};
use super::marketing::Chooser;
use super::oracle::{Oracle, ResponseProbs};
use super::state::{Pending, State, csat_score, nps_score, poisson};

/// Event types, as indices into [`crate::schema::EVENT_TYPES`].
pub(crate) mod ev {
    pub const VISIT: u8 = 0;
    pub const PAGE_VIEW: u8 = 1;
    pub const PRODUCT_VIEW: u8 = 2;
    pub const SEARCH: u8 = 3;
    pub const ADD_TO_CART: u8 = 4;
    pub const CHECKOUT_START: u8 = 5;
    pub const PURCHASE: u8 = 6;
    pub const RETURN: u8 = 7;
    pub const APP_OPEN: u8 = 8;
    pub const SUPPORT_CONTACT: u8 = 9;
    pub const SURVEY_NPS: u8 = 10;
    pub const SURVEY_CSAT: u8 = 11;
    pub const DELIVERED: u8 = 12;
    pub const OPENED: u8 = 13;
    pub const CLICKED: u8 = 14;
    pub const CONVERTED: u8 = 15;
    pub const UNSUBSCRIBE: u8 = 16;
}

/// Number of products in the simulated assortment.
const PRODUCTS: f64 = 5000.0;
const WEEKDAY: [f64; 7] = [0.95, 0.9, 0.95, 1.0, 1.1, 1.2, 1.1]; // Monday first

/// One event of a day (strings are attached by the output layer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ev {
    pub ts: i64,
    pub kind: u8,
    pub channel: Option<u8>,
    pub action: Option<u16>,
    pub decision: bool,
    pub item: Option<u32>,
    pub value: Option<f64>,
    pub props: Option<&'static str>,
}

/// The day's marketing decision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecisionRec {
    pub ts: i64,
    pub context: Option<String>,
    pub candidates: Vec<(u16, u8)>,
    pub chosen: usize,
    pub probs: ResponseProbs,
    pub opened: bool,
    pub clicked: bool,
    pub converted: bool,
    pub open_ts: i64,
    pub click_ts: i64,
    pub conv_ts: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Item {
    Session(u8),
    Due(Pending),
    Decision,
}

/// What happened to one customer on one day.
#[derive(Debug, Default)]
pub(crate) struct DayLog {
    pub events: Vec<Ev>,
    pub decision: Option<DecisionRec>,
    pub purchased: bool,
    /// Whether decisions record their JSON context (off in the oracle's continuation).
    pub want_context: bool,
    pub(crate) timeline: Vec<(u32, Item)>,
    pub(crate) due: Vec<Pending>,
}

impl DayLog {
    pub(crate) fn push(&mut self, ts: i64, kind: u8, channel: Option<u8>) -> &mut Ev {
        self.events.push(Ev {
            ts,
            kind,
            channel,
            action: None,
            decision: false,
            item: None,
            value: None,
            props: None,
        });
        self.events.last_mut().expect("just pushed")
    }
}

fn item(rng: &mut impl Rng) -> u32 {
    (PRODUCTS * rng.random::<f64>().powf(2.5)) as u32
}

/// A gap of `mean` seconds on average, in µs.
pub(crate) fn gap(rng: &mut impl Rng, mean: f64) -> i64 {
    (Exp::new(1.0 / mean).expect("valid").sample(rng) * 1e6) as i64 + 1_000_000
}

impl Oracle {
    /// Simulates `day` for a customer alive at its start. Does not draw churn (the caller
    /// does, from [`Oracle::churn_hazard`]).
    pub(crate) fn run_day(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
        policy: &mut dyn Chooser,
    ) {
        log.events.clear();
        log.decision = None;
        log.purchased = false;
        let t = &c.traits;
        s.begin_day(day, t.base_satisfaction);
        let lo = if day == c.created_day {
            c.created_sec
        } else {
            0
        };
        let mut tl = std::mem::take(&mut log.timeline);
        tl.clear();
        s.take_due(day, &mut log.due);
        for p in &log.due {
            tl.push((rng.random_range(lo.max(8 * 3600)..23 * 3600), Item::Due(*p)));
        }
        let dow = (self.day_start_us(day).div_euclid(86_400_000_000) + 3).rem_euclid(7) as usize;
        let mood = (0.25 * (s.satisfaction - t.base_satisfaction)).exp();
        let lambda = t.engagement * WEEKDAY[dow] * mood * (1.0 - 0.3 * s.irritation.min(1.0));
        let mut n = poisson(rng, lambda);
        if day == c.created_day {
            tl.push((lo, Item::Session(ch::WEB)));
            n = n.saturating_sub(1);
        }
        for _ in 0..n {
            let chn = c.session_channel(rng);
            let (from, to) = if chn == ch::STORE {
                (9 * 3600, 20 * 3600)
            } else {
                (6 * 3600, 86_000)
            };
            if lo < to {
                tl.push((rng.random_range(lo.max(from)..to), Item::Session(chn)));
            }
        }
        if rng.random::<f64>() < t.support_rate * (1.0 + s.irritation.min(2.0)) && lo < 20 * 3600 {
            let at = rng.random_range(lo.max(8 * 3600)..20 * 3600);
            tl.push((at, Item::Due(Pending::Support(false))));
        }
        if self.action_rate > 0.0 && rng.random::<f64>() < self.action_rate && lo < 22 * 3600 {
            tl.push((
                rng.random_range(lo.max(7 * 3600)..22 * 3600),
                Item::Decision,
            ));
        }
        tl.sort_by_key(|(sec, _)| *sec);
        let base = self.day_start_us(day);
        // One person: an item starts no earlier than the end of the previous session or
        // follow-up, so a decision only ever sees events before its own timestamp.
        let mut clock = i64::MIN / 2;
        for &(sec, it) in &tl {
            let ts = (base + sec as i64 * 1_000_000).max(clock + 1_000_000);
            let n0 = log.events.len();
            match it {
                Item::Session(chn) => self.session(c, s, day, ts, chn, rng, log),
                Item::Due(p) => self.follow_up(c, s, day, ts, p, rng, log),
                Item::Decision => {
                    // half a second after the tick, strictly after any visit at the same second
                    self.decide(c, s, day, ts + 500_000, rng, log, policy);
                    clock = clock.max(ts);
                    continue;
                }
            }
            clock = log.events[n0..].iter().fold(clock, |m, e| m.max(e.ts));
        }
        log.timeline = tl;
        let end = base + 86_400_000_000 - 1;
        for e in &mut log.events {
            e.ts = e.ts.min(end);
        }
        log.events.sort_by_key(|e| e.ts);
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        mut ts: i64,
        chn: u8,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
    ) {
        let ps = c.traits.price_sensitivity;
        if chn == ch::APP {
            log.push(ts, ev::APP_OPEN, Some(chn));
        }
        log.push(ts, ev::VISIT, Some(chn));
        s.record_visit(day, chn);
        if chn == ch::STORE {
            if rng.random_bool(0.3 * (1.0 - 0.3 * ps)) {
                ts += gap(rng, 600.0);
                self.purchase(c, s, day, ts, chn, item(rng), None, rng, log);
            }
            return;
        }
        for _ in 0..1 + poisson(rng, 1.5) {
            ts += gap(rng, 40.0);
            log.push(ts, ev::PAGE_VIEW, Some(chn));
        }
        if rng.random_bool(0.35) {
            ts += gap(rng, 20.0);
            log.push(ts, ev::SEARCH, Some(chn));
        }
        let mut last = None;
        for _ in 0..poisson(rng, 1.2) {
            ts += gap(rng, 50.0);
            let it = item(rng);
            log.push(ts, ev::PRODUCT_VIEW, Some(chn)).item = Some(it);
            last = Some(it);
        }
        let p_cart = if last.is_some() { 0.3 } else { 0.05 };
        if !rng.random_bool(p_cart) {
            return;
        }
        let it = last.unwrap_or_else(|| item(rng));
        ts += gap(rng, 30.0);
        log.push(ts, ev::ADD_TO_CART, Some(chn)).item = Some(it);
        if rng.random_bool(0.55) {
            ts += gap(rng, 60.0);
            log.push(ts, ev::CHECKOUT_START, Some(chn));
            if rng.random_bool(0.8 * (1.0 - 0.25 * ps)) {
                ts += gap(rng, 90.0);
                self.purchase(c, s, day, ts, chn, it, None, rng, log);
                return;
            }
        }
        s.last_abandon_day = Some(day);
    }

    /// An order: event, state, and its follow-ups (possible return, surveys).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn purchase(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        ts: i64,
        chn: u8,
        it: u32,
        via: Option<u16>,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
    ) {
        let mut value = c.basket(rng);
        if via.is_some_and(|a| self.actions[a as usize].kind == 0) {
            value = (value * 85.0).round() / 100.0;
        }
        let e = log.push(ts, ev::PURCHASE, Some(chn));
        e.item = Some(it);
        e.value = Some(value);
        if via.is_some() {
            e.action = via;
            e.decision = true;
        }
        log.purchased = true;
        s.record_purchase(day, value);
        if rng.random_bool(c.traits.return_rate) {
            s.pending
                .push((day + rng.random_range(3..21), Pending::Return(value, it)));
        }
        if rng.random_bool(0.15) {
            s.pending
                .push((day + rng.random_range(1..4), Pending::Csat));
        }
        if rng.random_bool(0.05) {
            s.pending
                .push((day + rng.random_range(7..15), Pending::Nps));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn follow_up(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        ts: i64,
        p: Pending,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
    ) {
        let _ = c;
        match p {
            Pending::Return(value, it) => {
                let chn = if rng.random_bool(0.3) {
                    ch::STORE
                } else {
                    ch::WEB
                };
                let e = log.push(ts, ev::RETURN, Some(chn));
                e.item = Some(it);
                e.value = Some(value);
                s.satisfaction -= 0.45;
                if rng.random_bool(0.35) {
                    s.pending
                        .push((day + rng.random_range(1..3), Pending::Support(true)));
                }
            }
            Pending::Support(after_return) => {
                let chn = [ch::CALL, ch::CHAT, ch::EMAIL][match rng.random::<f64>() {
                    u if u < 0.5 => 0,
                    u if u < 0.8 => 1,
                    _ => 2,
                }];
                log.push(ts, ev::SUPPORT_CONTACT, Some(chn)).props = Some(if after_return {
                    r#"{"reason":"return"}"#
                } else {
                    r#"{"reason":"question"}"#
                });
                s.record_support(day, chn);
            }
            Pending::Csat => {
                let score = csat_score(s.satisfaction, rng);
                log.push(ts, ev::SURVEY_CSAT, Some(ch::EMAIL)).value = Some(score);
                s.last_csat = Some(score);
            }
            Pending::Nps => {
                let score = nps_score(s.satisfaction, rng);
                log.push(ts, ev::SURVEY_NPS, Some(ch::EMAIL)).value = Some(score);
                s.last_nps = Some(score);
            }
        }
    }
}
