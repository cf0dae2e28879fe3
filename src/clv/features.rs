//! Customer value as model inputs, computed the same way in training sets, in the online
//! state and in batch scoring: `clv_p_alive` and `clv_value_365d` from a customer's RFM
//! (days, purchases of the days strictly before the read's UTC day) and one BG/NBD +
//! Gamma-Gamma fit ([`ClvInputs`]). Training sets fit at each cutoff; a trained model keeps
//! the fit of its training set's last cutoff, and the engine applies that fit to the RFM of
//! the moment it decides.

use serde::{Deserialize, Serialize};

use super::bgnbd::BgNbdParams;
use super::gamma_gamma::GammaGammaParams;
use super::rfm::Unit;
use super::value::{ClvOptions, clv};

/// Columns that training sets carry besides the feature specs' columns: customer value
/// fitted at each cutoff (see `features::dataset`), in [`ClvInputs::values`] order.
pub const CLV_COLUMNS: [&str; 2] = ["clv_p_alive", "clv_value_365d"];

/// One customer's RFM in days: `frequency` (purchase days minus one), `recency` (last minus
/// first purchase day), `t` (the period's last day minus the first purchase day) and
/// `monetary` (mean spend per repeat purchase day, 0 without repeats), as
/// [`super::rfm_summary`] computes them for a whole table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    pub frequency: f64,
    pub recency: f64,
    pub t: f64,
    pub monetary: f64,
}

/// The fit that turns an [`Rfm`] into the customer-value inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClvInputs {
    /// The last day (YYYY-MM-DD, inclusive) of the purchases the fit saw.
    pub calibration_end: String,
    pub bgnbd: BgNbdParams,
    /// `None` when the spend model could not be fitted: `clv_value_365d` is then missing.
    pub gamma_gamma: Option<GammaGammaParams>,
}

impl ClvInputs {
    /// `[clv_p_alive, clv_value_365d]` of a customer; both missing without a purchase
    /// (`None`), and any value that is not finite is missing.
    pub fn values(&self, rfm: Option<&Rfm>) -> [Option<f64>; 2] {
        let Some(r) = rfm else {
            return [None, None];
        };
        let alive = self.bgnbd.p_alive(r.frequency, r.recency, r.t);
        let value = self.gamma_gamma.as_ref().and_then(|g| {
            clv(
                &self.bgnbd,
                g,
                r.frequency,
                r.recency,
                r.t,
                r.monetary,
                &ClvOptions::one_year(Unit::Days),
            )
        });
        [
            Some(alive).filter(|v| v.is_finite()),
            value.filter(|v| v.is_finite()),
        ]
    }
}

/// A customer's purchase days, kept by the online state: per UTC day the spend of that
/// day's purchases (`None` when none of them had a value). Sorted by day; events may come
/// in any order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurchaseDays(Vec<(i32, Option<f64>)>);

impl PurchaseDays {
    /// Adds one purchase on `day` (days since the epoch) with its value, if any.
    pub fn add(&mut self, day: i64, value: Option<f64>) {
        let day = i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX });
        let value = value.filter(|v| !v.is_nan());
        match self.0.binary_search_by_key(&day, |p| p.0) {
            Ok(i) => {
                let s = &mut self.0[i].1;
                *s = match (*s, value) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
            }
            Err(i) => self.0.insert(i, (day, value)),
        }
    }

    /// The RFM over the purchase days strictly before `today` (the period ends the day
    /// before); `None` without such a day.
    pub fn rfm(&self, today: i64) -> Option<Rfm> {
        let end = self.0.partition_point(|p| i64::from(p.0) < today);
        let days = &self.0[..end];
        let (first, last) = (i64::from(days.first()?.0), i64::from(days.last()?.0));
        let (mut sum, mut n) = (0.0, 0u32);
        for v in days[1..].iter().filter_map(|p| p.1) {
            sum += v;
            n += 1;
        }
        Some(Rfm {
            frequency: (days.len() - 1) as f64,
            recency: (last - first) as f64,
            t: (today - 1 - first) as f64,
            monetary: if n == 0 { 0.0 } else { sum / f64::from(n) },
        })
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(i32, Option<f64>)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_days_give_the_rfm_of_the_days_before_today() {
        let mut p = PurchaseDays::default();
        assert_eq!(p.rfm(10), None);
        // out of order, two purchases on day 5 (one without a value), one on today's day
        p.add(5, Some(10.0));
        p.add(2, Some(4.0));
        p.add(5, None);
        p.add(5, Some(2.0));
        p.add(8, None);
        p.add(10, Some(100.0));
        let r = p.rfm(10).unwrap();
        assert_eq!(r.frequency, 2.0);
        assert_eq!(r.recency, 6.0);
        assert_eq!(r.t, 7.0);
        // repeat days 5 (12) and 8 (no value): the mean over days with a value
        assert_eq!(r.monetary, 12.0);
        let r = p.rfm(3).unwrap();
        assert_eq!(
            (r.frequency, r.recency, r.t, r.monetary),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(p.rfm(2), None);
    }

    #[test]
    fn values_follow_the_fit_and_are_missing_without_purchases() {
        let fit = ClvInputs {
            calibration_end: "2025-01-31".into(),
            bgnbd: BgNbdParams::new(0.5, 10.0, 0.8, 3.0).unwrap(),
            gamma_gamma: Some(GammaGammaParams::new(6.0, 4.0, 15.0).unwrap()),
        };
        assert_eq!(fit.values(None), [None, None]);
        let r = Rfm {
            frequency: 3.0,
            recency: 20.0,
            t: 60.0,
            monetary: 30.0,
        };
        let [alive, value] = fit.values(Some(&r));
        assert_eq!(alive, Some(fit.bgnbd.p_alive(3.0, 20.0, 60.0)));
        assert!(alive.unwrap() > 0.0 && alive.unwrap() < 1.0);
        assert!(value.unwrap() > 0.0);
        let no_spend = ClvInputs {
            gamma_gamma: None,
            ..fit
        };
        assert_eq!(no_spend.values(Some(&r))[1], None);
    }
}
