//! The behaviour policy and the response draw: at a decision point, enumerate every
//! eligible (action, channel) pair — eligibility expression holds, action active that
//! day, contact limits and cooldown respected, channel consented (outbound) or visited
//! earlier that day (inbound) — pick one uniformly at random (propensity exactly 1/n),
//! deliver it, draw opened ⊇ clicked ⊇ converted from [`Oracle::response`] with a single
//! uniform, and apply the consequences (orders, satisfaction, irritation, unsubscribes).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::customer::{Customer, ch};
use super::journey::{DayLog, DecisionRec, Ev, ev, gap};
use super::oracle::{Appeal, Oracle};
use super::state::State;
use crate::schema::{CHANNELS, CONSENT_COLUMNS, consent_column};

/// Index of the consent column governing channel `chn`, if it needs consent.
pub(crate) fn consent_index(chn: u8) -> Option<usize> {
    let col = consent_column(CHANNELS[chn as usize])?;
    CONSENT_COLUMNS.iter().position(|(c, _)| *c == col)
}

/// A decision point as a policy sees it inside the simulator.
pub(crate) struct Point<'a> {
    pub customer: &'a Customer,
    pub state: &'a State,
    pub day: i32,
    pub ts: i64,
    /// The eligible (action index, channel index) pairs.
    pub candidates: &'a [(u16, u8)],
    /// The day's events so far (all strictly before `ts`).
    pub today: &'a [Ev],
}

/// Who picks the delivery at a decision point.
pub(crate) trait Chooser {
    /// One of `p.candidates`, or `None` to do nothing. `rng` is the customer's world
    /// stream.
    fn choose(&mut self, o: &Oracle, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize>;
}

/// The logged behaviour policy: uniformly random over the candidates (propensity 1/n),
/// drawn from the world stream.
pub(crate) struct Uniform;

impl Chooser for Uniform {
    fn choose(&mut self, _: &Oracle, p: &Point<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        Some(rng.random_range(0..p.candidates.len()))
    }
}

impl Oracle {
    /// Whether the customer can be reached on `chn` right now.
    fn reachable(&self, s: &State, chn: u8) -> bool {
        match consent_index(chn) {
            Some(i) => s.consents[i],
            None => s.touched_today[chn as usize],
        }
    }

    /// The eligible (action index, channel) pairs, in catalog and channel order.
    pub(crate) fn candidates(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        out: &mut Vec<(u16, u8)>,
    ) {
        out.clear();
        let vars = s.vars(c, day);
        let lookup = |name: &str| vars.get(name);
        let mut ok = Vec::with_capacity(self.actions.len());
        for a in &self.actions {
            let active =
                a.first_day.is_none_or(|f| day >= f) && a.last_day.is_none_or(|l| day <= l);
            ok.push(active && a.expr.holds(&lookup));
        }
        for (ai, a) in self.actions.iter().enumerate() {
            if !ok[ai] || !s.contacts_ok(ai, day, a.max_contacts, a.per_days, a.cooldown) {
                continue;
            }
            for &chn in &a.channels {
                if self.reachable(s, chn) {
                    out.push((ai as u16, chn));
                }
            }
        }
    }

    /// The day's decision point at `ts`: `policy` picks one of the eligible pairs or none.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        ts: i64,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
        policy: &mut dyn Chooser,
    ) {
        let mut candidates = Vec::new();
        self.candidates(c, s, day, &mut candidates);
        if candidates.is_empty() {
            return;
        }
        let context = log.want_context.then(|| context_json(c, s, day));
        let point = Point {
            customer: c,
            state: s,
            day,
            ts,
            candidates: &candidates,
            today: &log.events,
        };
        let Some(chosen) = policy
            .choose(self, &point, rng)
            .filter(|&k| k < candidates.len())
        else {
            return;
        };
        let (ai, chn) = candidates[chosen];
        let a = &self.actions[ai as usize];
        let probs = self.response(c, s, ai as usize, chn as usize, day);
        let n7 = s.recent_deliveries() as f64;
        s.record_delivery(ai as usize, day);
        let annoyed = c.traits.annoyed_by[a.kind];
        s.irritation += if annoyed { 0.5 } else { 0.03 * n7 };
        let e = log.push(ts, ev::DELIVERED, Some(chn));
        e.action = Some(ai);
        e.decision = true;
        let u = rng.random::<f64>();
        let (opened, clicked, converted) =
            (u < probs.p_open, u < probs.p_click, u < probs.p_convert);
        let mean_open = match chn {
            ch::EMAIL | ch::MAIL => 3600.0,
            ch::CALL | ch::WEB | ch::APP => 5.0,
            _ => 600.0,
        };
        let open_ts = ts + gap(rng, mean_open);
        let click_ts = open_ts + gap(rng, 60.0);
        let conv_ts = click_ts + gap(rng, 300.0);
        let rec = DecisionRec {
            context,
            ts,
            candidates,
            chosen,
            probs,
            opened,
            clicked,
            converted,
            open_ts,
            click_ts,
            conv_ts,
        };
        for (hit, t, kind) in [
            (opened, open_ts, ev::OPENED),
            (clicked, click_ts, ev::CLICKED),
            (converted, conv_ts, ev::CONVERTED),
        ] {
            if hit {
                let e = log.push(t, kind, Some(chn));
                e.action = Some(ai);
                e.decision = true;
            }
        }
        if clicked && a.kind != 2 {
            // a click on an offer or message lands on the shop
            let land = if matches!(chn, ch::APP | ch::PUSH) {
                ch::APP
            } else {
                ch::WEB
            };
            log.push(click_ts + 1_000_000, ev::VISIT, Some(land));
            s.record_visit(day, land);
        }
        if converted {
            self.convert(c, s, day, conv_ts, ai, chn, rng, log);
        } else if !clicked && consent_index(chn).is_some() {
            let p_unsub = 0.001 + if annoyed { 0.03 } else { 0.0 } + 0.004 * n7;
            if rng.random_bool(p_unsub.min(1.0)) {
                let i = consent_index(chn).expect("checked");
                let t = if opened {
                    open_ts + gap(rng, 30.0)
                } else {
                    ts + gap(rng, 7200.0)
                };
                let e = log.push(t, ev::UNSUBSCRIBE, Some(chn));
                e.action = Some(ai);
                e.decision = true;
                s.consents[i] = false;
                s.consent_changed_us = Some(t);
            }
        }
        log.decision = Some(rec);
    }

    #[allow(clippy::too_many_arguments)]
    fn convert(
        &self,
        c: &Customer,
        s: &mut State,
        day: i32,
        ts: i64,
        ai: u16,
        chn: u8,
        rng: &mut ChaCha8Rng,
        log: &mut DayLog,
    ) {
        let a = &self.actions[ai as usize];
        s.satisfaction += 0.1;
        match a.appeal {
            Appeal::ServiceCall => {
                s.satisfaction += 1.0;
                s.retention_boost += 0.5;
            }
            Appeal::Survey => {
                let score = super::state::nps_score(s.satisfaction, rng);
                let e = log.push(ts, ev::SURVEY_NPS, Some(chn));
                e.value = Some(score);
                e.action = Some(ai);
                e.decision = true;
                s.last_nps = Some(score);
            }
            _ if a.kind == 2 => s.satisfaction += 0.3,
            appeal => {
                s.retention_boost += match appeal {
                    Appeal::WinBack => 1.0,
                    Appeal::Premium => 0.8,
                    Appeal::Loyalty => 0.6,
                    Appeal::Welcome => 0.4,
                    _ => 0.1,
                };
                let shop = if matches!(chn, ch::APP | ch::PUSH) {
                    ch::APP
                } else {
                    ch::WEB
                };
                let it = (5000.0 * rng.random::<f64>().powf(2.5)) as u32;
                self.purchase(c, s, day, ts, shop, it, Some(ai), rng, log);
            }
        }
    }
}

/// The decision context: the eligibility variables at the decision and the inbound
/// channels visited earlier that day, as a JSON object.
fn context_json(c: &Customer, s: &State, day: i32) -> String {
    use std::fmt::Write;
    let v = s.vars(c, day);
    let opt = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x}"));
    let mut out = format!(
        "{{\"tenure_days\":{},\"purchase_count\":{},\"days_since_last_purchase\":{},\"purchases_90d\":{},\"spend_90d\":{:.2},\"visits_30d\":{},\"cart_abandoned_7d\":{},\"support_contacts_30d\":{},\"last_nps\":{},\"last_csat\":{},\"segment\":\"{}\",\"age_band\":\"{}\",\"region\":\"{}\",\"visited_today\":[",
        v.tenure_days,
        v.purchase_count,
        opt(v.days_since_last_purchase),
        v.purchases_90d,
        v.spend_90d,
        v.visits_30d,
        v.cart_abandoned_7d,
        v.support_contacts_30d,
        opt(v.last_nps),
        opt(v.last_csat),
        v.segment,
        v.age_band,
        v.region,
    );
    let mut first = true;
    for chn in [ch::WEB, ch::APP, ch::STORE, ch::CHAT] {
        if s.touched_today[chn as usize] {
            let _ = write!(
                out,
                "{}\"{}\"",
                if first { "" } else { "," },
                CHANNELS[chn as usize]
            );
            first = false;
        }
    }
    out.push_str("]}");
    out
}
