//! The evolving state of one customer during the simulation: rolling activity windows,
//! latent satisfaction / irritation / retention boost, scheduled follow-ups (returns,
//! support contacts, surveys), contact history and current consents — and the eligibility
//! variables ([`super::ELIGIBILITY_VARIABLES`]) computed from it.
//!
//! The state is `Clone` so the oracle can continue a customer's journey from a cutoff on
//! independent random paths without touching the real one.

use std::collections::VecDeque;

use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::customer::Customer;
use crate::decide::expr::Value;

/// Something scheduled for a later day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pending {
    /// The order (value, item) is returned.
    Return(f64, u32),
    /// A support contact, caused by a return (`true`) or not.
    Support(bool),
    /// A CSAT survey answer after an order.
    Csat,
    /// An NPS survey answer.
    Nps,
}

/// The mutable state of one customer.
#[derive(Debug, Clone)]
pub struct State {
    /// Day of the latent churn event (the customer goes quiet after it), if any.
    pub churned_day: Option<i32>,
    /// Latent satisfaction; reverts to the customer's base level, lowered by returns and
    /// support contacts, raised by orders and resolved service actions.
    pub satisfaction: f64,
    /// Irritation from (annoying or too frequent) deliveries; decays by 7% a day.
    pub irritation: f64,
    /// Retention boost from converted retention offers and service calls; decays 2% a day.
    pub retention_boost: f64,
    /// Orders ever (including before the simulation).
    pub purchase_count: u32,
    /// Day of the last order.
    pub last_purchase_day: Option<i32>,
    /// Day of the last abandoned cart not followed by an order.
    pub last_abandon_day: Option<i32>,
    /// Last NPS answer (0–10).
    pub last_nps: Option<f64>,
    /// Last CSAT answer (1–5).
    pub last_csat: Option<f64>,
    /// Current consents, in the order of [`crate::schema::CONSENT_COLUMNS`].
    pub consents: [bool; 5],
    /// When a consent last changed (µs), if it did.
    pub consent_changed_us: Option<i64>,
    pub(crate) purchases: VecDeque<(i32, f64)>,
    pub(crate) visits: VecDeque<i32>,
    pub(crate) support: VecDeque<i32>,
    pub(crate) pending: Vec<(i32, Pending)>,
    pub(crate) deliveries: Vec<VecDeque<i32>>,
    pub(crate) recent: VecDeque<i32>,
    pub(crate) touched_today: [bool; 9],
}

/// Eligibility variables at a decision point.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub tenure_days: f64,
    pub purchase_count: f64,
    pub days_since_last_purchase: Option<f64>,
    pub purchases_90d: f64,
    pub spend_90d: f64,
    pub visits_30d: f64,
    pub cart_abandoned_7d: bool,
    pub support_contacts_30d: f64,
    pub last_nps: Option<f64>,
    pub last_csat: Option<f64>,
    pub segment: &'a str,
    pub age_band: &'a str,
    pub region: &'a str,
}

impl Vars<'_> {
    /// The value of a variable (`Null` for unknown names and missing values).
    pub fn get(&self, name: &str) -> Value {
        let opt = |x: Option<f64>| x.map_or(Value::Null, Value::Num);
        match name {
            "tenure_days" => Value::Num(self.tenure_days),
            "purchase_count" => Value::Num(self.purchase_count),
            "days_since_last_purchase" => opt(self.days_since_last_purchase),
            "purchases_90d" => Value::Num(self.purchases_90d),
            "spend_90d" => Value::Num(self.spend_90d),
            "visits_30d" => Value::Num(self.visits_30d),
            "cart_abandoned_7d" => Value::Bool(self.cart_abandoned_7d),
            "support_contacts_30d" => Value::Num(self.support_contacts_30d),
            "last_nps" => opt(self.last_nps),
            "last_csat" => opt(self.last_csat),
            "segment" => Value::Str(self.segment.to_string()),
            "age_band" => Value::Str(self.age_band.to_string()),
            "region" => Value::Str(self.region.to_string()),
            _ => Value::Null,
        }
    }
}

/// NPS answer (0–10) for a satisfaction level.
pub(crate) fn nps_score(sat: f64, rng: &mut impl Rng) -> f64 {
    let noise = Normal::new(0.0, 1.3).expect("valid").sample(rng);
    (6.5 + 1.8 * sat + noise).round().clamp(0.0, 10.0)
}

/// CSAT answer (1–5) for a satisfaction level.
pub(crate) fn csat_score(sat: f64, rng: &mut impl Rng) -> f64 {
    let noise = Normal::new(0.0, 0.7).expect("valid").sample(rng);
    (3.6 + 0.9 * sat + noise).round().clamp(1.0, 5.0)
}

/// Inverse-transform Poisson draw for small means.
pub(crate) fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let l = (-lambda).exp();
    let mut k = 0;
    let mut p = rng.random::<f64>();
    while p > l && k < 1000 {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

impl State {
    /// The state at the customer's first simulated day. Customers created before the start
    /// get a sampled history consistent with their traits (orders in the last 90 days,
    /// visits and support contacts in the last 30, earlier orders, past survey answers).
    pub fn initial(c: &Customer, n_actions: usize, rng: &mut impl Rng) -> State {
        let t = &c.traits;
        let mut s = State {
            churned_day: None,
            satisfaction: t.base_satisfaction + Normal::new(0.0, 0.3).expect("valid").sample(rng),
            irritation: 0.0,
            retention_boost: 0.0,
            purchase_count: 0,
            last_purchase_day: None,
            last_abandon_day: None,
            last_nps: None,
            last_csat: None,
            consents: c.consents,
            consent_changed_us: None,
            purchases: VecDeque::new(),
            visits: VecDeque::new(),
            support: VecDeque::new(),
            pending: Vec::new(),
            deliveries: vec![VecDeque::new(); n_actions],
            recent: VecDeque::new(),
            touched_today: [false; 9],
        };
        let tenure = -c.created_day;
        if tenure <= 0 {
            return s;
        }
        let a = &t.session_affinity;
        let order_rate = t.engagement * (a[0] * 0.09 + a[1] * 0.09 + a[2] * 0.28);
        let window = tenure.min(90);
        let mut days: Vec<i32> = (0..poisson(rng, order_rate * window as f64))
            .map(|_| -rng.random_range(1..=window))
            .collect();
        days.sort_unstable();
        for d in days {
            let v = c.basket(rng);
            s.purchases.push_back((d, v));
        }
        let older = if tenure > 90 {
            poisson(rng, order_rate * (tenure - 90).min(2000) as f64)
        } else {
            0
        };
        s.purchase_count = s.purchases.len() as u32 + older;
        s.last_purchase_day = match s.purchases.back() {
            Some((d, _)) => Some(*d),
            None if older > 0 => Some(-rng.random_range(91..=tenure.clamp(91, 455))),
            None => None,
        };
        let vwin = tenure.min(30);
        let mut v: Vec<i32> = (0..poisson(rng, t.engagement * vwin as f64))
            .map(|_| -rng.random_range(1..=vwin))
            .collect();
        v.sort_unstable();
        s.visits = v.into();
        for _ in 0..poisson(rng, t.support_rate * vwin as f64) {
            s.support.push_back(-rng.random_range(1..=vwin));
        }
        s.support.make_contiguous().sort_unstable();
        if rng.random_bool((tenure as f64 / 400.0).min(0.4)) {
            s.last_nps = Some(nps_score(s.satisfaction, rng));
        }
        if s.purchase_count > 0 && rng.random_bool(0.3) {
            s.last_csat = Some(csat_score(s.satisfaction, rng));
        }
        s
    }

    /// Whether the customer exists and has not churned before `day`.
    pub fn alive(&self) -> bool {
        self.churned_day.is_none()
    }

    /// Starts `day`: ages the windows, decays latent levels, clears the day's touches.
    pub(crate) fn begin_day(&mut self, day: i32, base_satisfaction: f64) {
        while self.purchases.front().is_some_and(|(d, _)| *d <= day - 90) {
            self.purchases.pop_front();
        }
        while self.visits.front().is_some_and(|d| *d <= day - 30) {
            self.visits.pop_front();
        }
        while self.support.front().is_some_and(|d| *d <= day - 30) {
            self.support.pop_front();
        }
        while self.recent.front().is_some_and(|d| *d <= day - 7) {
            self.recent.pop_front();
        }
        self.satisfaction += (base_satisfaction - self.satisfaction) / 25.0;
        self.irritation *= 0.93;
        self.retention_boost *= 0.98;
        self.touched_today = [false; 9];
    }

    /// Removes and returns the follow-ups due on `day`, in scheduling order.
    pub(crate) fn take_due(&mut self, day: i32, out: &mut Vec<Pending>) {
        out.clear();
        self.pending.retain(|(d, p)| {
            if *d == day {
                out.push(*p);
            }
            *d > day
        });
    }

    pub(crate) fn record_visit(&mut self, day: i32, channel: u8) {
        self.visits.push_back(day);
        self.touched_today[channel as usize] = true;
    }

    pub(crate) fn record_purchase(&mut self, day: i32, value: f64) {
        self.purchases.push_back((day, value));
        self.purchase_count += 1;
        self.last_purchase_day = Some(day);
        self.last_abandon_day = None;
        self.satisfaction += 0.05;
    }

    pub(crate) fn record_support(&mut self, day: i32, channel: u8) {
        self.support.push_back(day);
        self.touched_today[channel as usize] = true;
        self.satisfaction -= 0.2;
    }

    /// Deliveries of any action in the last 7 days (before today's decision).
    pub(crate) fn recent_deliveries(&self) -> usize {
        self.recent.len()
    }

    /// Whether one more delivery of action `a` on `day` respects its contact limits.
    pub(crate) fn contacts_ok(
        &mut self,
        a: usize,
        day: i32,
        max: u32,
        per_days: u32,
        cooldown: u32,
    ) -> bool {
        let keep = per_days.max(cooldown) as i32;
        let d = &mut self.deliveries[a];
        while d.front().is_some_and(|x| *x <= day - keep) {
            d.pop_front();
        }
        let in_window = d.iter().filter(|x| **x > day - per_days as i32).count();
        let cool = d.back().is_none_or(|last| day - last >= cooldown as i32);
        in_window < max as usize && cool
    }

    pub(crate) fn record_delivery(&mut self, a: usize, day: i32) {
        self.deliveries[a].push_back(day);
        self.recent.push_back(day);
    }

    /// The eligibility variables on `day`.
    pub fn vars<'a>(&self, c: &'a Customer, day: i32) -> Vars<'a> {
        Vars {
            tenure_days: (day - c.created_day) as f64,
            purchase_count: self.purchase_count as f64,
            days_since_last_purchase: self.last_purchase_day.map(|d| (day - d) as f64),
            purchases_90d: self.purchases.len() as f64,
            spend_90d: self.purchases.iter().map(|(_, v)| v).sum(),
            visits_30d: self.visits.len() as f64,
            cart_abandoned_7d: self.last_abandon_day.is_some_and(|d| d > day - 7),
            support_contacts_30d: self.support.len() as f64,
            last_nps: self.last_nps,
            last_csat: self.last_csat,
            segment: c.segment,
            age_band: c.age_band,
            region: c.region,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn contact_limits_and_windows() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let c = Customer::generate(0, 100, &mut rng);
        let mut s = State::initial(&c, 1, &mut rng);
        assert!(s.contacts_ok(0, 10, 2, 14, 3));
        s.record_delivery(0, 10);
        assert!(!s.contacts_ok(0, 12, 2, 14, 3), "cooldown");
        assert!(s.contacts_ok(0, 13, 2, 14, 3));
        s.record_delivery(0, 13);
        assert!(!s.contacts_ok(0, 23, 2, 14, 3), "two within 14 days");
        assert!(s.contacts_ok(0, 24, 2, 14, 3));
        s.record_purchase(50, 10.0);
        s.begin_day(139, 0.0);
        assert_eq!(s.vars(&c, 139).purchases_90d, 1.0);
        s.begin_day(140, 0.0);
        assert_eq!(s.vars(&c, 140).purchases_90d, 0.0);
        assert_eq!(
            s.vars(&c, 140).get("days_since_last_purchase"),
            Value::Num(90.0)
        );
    }

    #[test]
    fn never_purchased_is_null() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut c = Customer::generate(0, 100, &mut rng);
        c.created_day = 5;
        let s = State::initial(&c, 1, &mut rng);
        let v = s.vars(&c, 5);
        assert_eq!(v.get("days_since_last_purchase"), Value::Null);
        assert_eq!(v.get("last_nps"), Value::Null);
        assert_eq!(v.get("tenure_days"), Value::Num(0.0));
    }
}
