//! Hidden per-customer truth, drawn once from the customer's own RNG: attributes (age band,
//! region, segment), marketing consents, the join day and the latent traits that drive
//! behaviour, responses and churn.
//!
//! [`Customer::generate`] is the only place these are drawn; the [`super::Oracle`]
//! regenerates the same customer from `(seed, index)` with [`super::Oracle::customer`].

use rand::Rng;
use rand_distr::{Beta, Distribution, Exp, LogNormal, Normal};

/// Age bands of the `age_band` column.
pub const AGE_BANDS: [&str; 6] = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"];
/// Regions of the `region` column.
pub const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
/// Segments of the `segment` column (as of the customer's first simulated day).
pub const SEGMENTS: [&str; 4] = ["new", "regular", "vip", "lapsed"];

/// Channel indices into [`crate::schema::CHANNELS`].
pub(crate) mod ch {
    pub const WEB: u8 = 0;
    pub const APP: u8 = 1;
    pub const EMAIL: u8 = 2;
    pub const SMS: u8 = 3;
    pub const PUSH: u8 = 4;
    pub const STORE: u8 = 5;
    pub const CALL: u8 = 6;
    pub const CHAT: u8 = 7;
    pub const MAIL: u8 = 8;
}

/// The latent, never-logged traits of one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Traits {
    /// Mean inbound sessions per day before weekday and mood effects (log-normal, heavy
    /// tailed: median 0.12).
    pub engagement: f64,
    /// 0..1; price-sensitive customers buy less per order and like offers more.
    pub price_sensitivity: f64,
    /// Order values are log-normal(`basket_mu`, `basket_sigma`).
    pub basket_mu: f64,
    /// See `basket_mu`.
    pub basket_sigma: f64,
    /// Share of sessions on web, app and store (sums to 1).
    pub session_affinity: [f64; 3],
    /// Multiplier on the odds of opening an action, per channel (indexed like
    /// [`crate::schema::CHANNELS`]; only outbound channels and the web/app banners use it).
    pub channel_responsiveness: [f64; 9],
    /// Multiplier on the odds of clicking, per action kind (offer, message, service).
    pub kind_responsiveness: [f64; 3],
    /// Action kinds that annoy this customer: much lower response, and each delivery
    /// raises irritation and so the churn hazard.
    pub annoyed_by: [bool; 3],
    /// Baseline daily churn hazard (before satisfaction, irritation and retention effects).
    pub base_hazard: f64,
    /// The level latent satisfaction reverts to.
    pub base_satisfaction: f64,
    /// Probability that an order is returned.
    pub return_rate: f64,
    /// Daily probability of an unprompted support contact.
    pub support_rate: f64,
}

/// One simulated customer: public attributes plus hidden [`Traits`].
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// 0-based index (`customer_id` is `c` followed by it, zero-padded to 7 digits).
    pub index: u64,
    /// `customer_id`.
    pub id: String,
    /// Day of creation relative to the simulation start (negative: before it).
    pub created_day: i32,
    /// Second of `created_day` at which the customer was created.
    pub created_sec: u32,
    /// One of [`AGE_BANDS`].
    pub age_band: &'static str,
    /// One of [`REGIONS`].
    pub region: &'static str,
    /// One of [`SEGMENTS`].
    pub segment: &'static str,
    /// Initial consents, in the order of [`crate::schema::CONSENT_COLUMNS`].
    pub consents: [bool; 5],
    /// Hidden traits.
    pub traits: Traits,
}

/// Formats a customer id.
pub fn customer_id(index: u64) -> String {
    format!("c{index:07}")
}

fn pick(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.ln(), sigma)
        .expect("valid")
        .sample(rng)
}

impl Customer {
    /// Draws customer `index` of a simulation of `days` days. Consumes `rng` first thing, so
    /// the same per-customer RNG always gives the same customer.
    pub fn generate(index: u64, days: u32, rng: &mut impl Rng) -> Customer {
        let age = pick(rng, &[0.12, 0.22, 0.22, 0.18, 0.14, 0.12]);
        let region = pick(rng, &[0.22, 0.2, 0.18, 0.2, 0.2]);
        let engagement = lognormal(rng, 0.12, 0.9).min(5.0);
        let price_sensitivity = Beta::new(2.0, 3.0).expect("valid").sample(rng);
        let basket_mu = Normal::new(40f64.ln(), 0.35).expect("valid").sample(rng)
            - 0.3 * (price_sensitivity - 0.4);
        let youth = 1.6 - 0.25 * age as f64; // 1.6 for 18-24 .. 0.35 for 65+
        let base = [0.55, 0.3 * youth, 0.15];
        let mut aff = [0.0; 3];
        for (a, b) in aff.iter_mut().zip(base) {
            *a = b * Exp::<f64>::new(1.0).expect("valid").sample(rng).max(0.05);
        }
        let total: f64 = aff.iter().sum();
        aff.iter_mut().for_each(|a| *a /= total);
        let mut channel_responsiveness = [1.0; 9];
        for r in &mut channel_responsiveness {
            *r = lognormal(rng, (-0.125f64).exp(), 0.5);
        }
        let mut kind_responsiveness = [1.0; 3];
        for r in &mut kind_responsiveness {
            *r = lognormal(rng, (-0.08f64).exp(), 0.4);
        }
        let annoyed_by = [
            rng.random_bool(0.10),
            rng.random_bool(0.12),
            rng.random_bool(0.06),
        ];
        let base_hazard = (lognormal(rng, 0.0022, 0.6) * (engagement / 0.12).powf(-0.15)).min(0.03);
        let base_satisfaction = Normal::new(0.2, 0.7).expect("valid").sample(rng);
        let return_rate = Beta::new(1.2, 14.0).expect("valid").sample(rng);
        let support_rate = lognormal(rng, 0.002, 0.7).min(0.05);
        let consents = if rng.random_bool(0.10) {
            [false; 5]
        } else {
            let push = (0.5 * (0.6 + 1.3 * aff[1])).min(0.95);
            [
                rng.random_bool(0.78),
                rng.random_bool(0.44),
                rng.random_bool(push),
                rng.random_bool(0.33),
                rng.random_bool(0.67),
            ]
        };
        let joins = days > 1 && rng.random_bool(0.2);
        let created_day = if joins {
            rng.random_range(0..days as i32)
        } else {
            -1 - (Exp::new(1.0 / 600.0).expect("valid").sample(rng) as i32).min(3000)
        };
        let created_sec = rng.random_range(7 * 3600..22 * 3600);
        let tenure_at_start = (-created_day).max(0);
        let segment = if tenure_at_start < 60 {
            "new"
        } else if engagement >= 0.3 && basket_mu >= 45f64.ln() {
            "vip"
        } else if engagement < 0.045 {
            "lapsed"
        } else {
            "regular"
        };
        Customer {
            index,
            id: customer_id(index),
            created_day,
            created_sec,
            age_band: AGE_BANDS[age],
            region: REGIONS[region],
            segment,
            consents,
            traits: Traits {
                engagement,
                price_sensitivity,
                basket_mu,
                basket_sigma: 0.5,
                session_affinity: aff,
                channel_responsiveness,
                kind_responsiveness,
                annoyed_by,
                base_hazard,
                base_satisfaction,
                return_rate,
                support_rate,
            },
        }
    }

    /// Mean order value, `exp(mu + sigma²/2)`.
    pub fn mean_basket(&self) -> f64 {
        (self.traits.basket_mu + self.traits.basket_sigma.powi(2) / 2.0).exp()
    }

    /// Draws an order value.
    pub(crate) fn basket(&self, rng: &mut impl Rng) -> f64 {
        let v = LogNormal::new(self.traits.basket_mu, self.traits.basket_sigma)
            .expect("valid")
            .sample(rng);
        (v * 100.0).round() / 100.0
    }

    /// Draws a session channel (web, app or store).
    pub(crate) fn session_channel(&self, rng: &mut impl Rng) -> u8 {
        [ch::WEB, ch::APP, ch::STORE][pick(rng, &self.traits.session_affinity)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn population_has_plausible_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        let cs: Vec<_> = (0..n)
            .map(|i| Customer::generate(i, 120, &mut rng))
            .collect();
        let share =
            |f: &dyn Fn(&Customer) -> bool| cs.iter().filter(|c| f(c)).count() as f64 / n as f64;
        let email = share(&|c| c.consents[0]);
        let sms = share(&|c| c.consents[1]);
        let none = share(&|c| c.consents.iter().all(|x| !x));
        assert!((0.65..0.75).contains(&email), "{email}");
        assert!((0.35..0.45).contains(&sms), "{sms}");
        assert!(none > 0.08, "{none}");
        let joiners = share(&|c| c.created_day >= 0);
        assert!((0.15..0.25).contains(&joiners), "{joiners}");
        for seg in SEGMENTS {
            assert!(share(&|c| c.segment == seg) > 0.02, "{seg}");
        }
        assert!(
            cs.iter()
                .all(|c| (c.traits.session_affinity.iter().sum::<f64>() - 1.0).abs() < 1e-9)
        );
    }
}
