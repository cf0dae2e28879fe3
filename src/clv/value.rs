//! Customer lifetime value and the model checks built on the fitted models: the discounted CLV
//! formula, the per-customer prediction table, the holdout comparison by calibration frequency
//! and the frequency histogram (actual vs model).
//!
//! CLV over a horizon `H` (model units), with discount rate `d` per period of length `P`:
//!
//! ```text
//! CLV = E[M | x, m] · Σ_{k=1}^{K} ( E[Y(min(kP, H))] − E[Y((k−1)P)] ) / (1 + d)^k,   K = ⌈H/P⌉
//! ```
//!
//! i.e. the expected purchases in each period (BG/NBD conditional expectation), discounted to
//! today at the end of that period, times the expected spend per purchase (Gamma-Gamma). This
//! is lifetimes' `customer_lifetime_value` with a configurable period (default one month = 30
//! days) and no margin factor (multiply by your margin if spend is revenue).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use super::bgnbd::{BgNbdParams, validate_rfm};
use super::gamma_gamma::GammaGammaParams;
use super::rfm::{RfmTable, Unit};
use crate::error::{Error, Result};

/// How far ahead to predict and how to discount.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvOptions {
    /// Prediction horizon in model units (> 0).
    pub horizon: f64,
    /// Discount rate per period (≥ 0; 0.01 = 1 % per period).
    pub discount_rate: f64,
    /// Discount period in model units (> 0).
    pub period: f64,
}

impl ClvOptions {
    /// One year ahead, no discounting, monthly (30-day) periods, in `unit`.
    pub fn one_year(unit: Unit) -> Self {
        Self {
            horizon: 365.0 / unit.days(),
            discount_rate: 0.0,
            period: 30.0 / unit.days(),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.horizon.is_finite() && self.horizon > 0.0) {
            return Err(Error::Invalid(format!(
                "horizon must be > 0, got {}",
                self.horizon
            )));
        }
        if !(self.period.is_finite() && self.period > 0.0) {
            return Err(Error::Invalid(format!(
                "discount period must be > 0, got {}",
                self.period
            )));
        }
        if !(self.discount_rate.is_finite() && self.discount_rate >= 0.0) {
            return Err(Error::Invalid(format!(
                "discount rate must be ≥ 0, got {}",
                self.discount_rate
            )));
        }
        Ok(())
    }
}

/// Discounted expected purchases over the horizon (the Σ in the module docs). Without
/// discounting the sum telescopes to the expected purchases over the whole horizon, which
/// is computed at once.
pub fn discounted_purchases(bg: &BgNbdParams, x: f64, t_x: f64, t: f64, opts: &ClvOptions) -> f64 {
    if opts.discount_rate == 0.0 {
        return bg.expected_purchases(opts.horizon, x, t_x, t);
    }
    let periods = (opts.horizon / opts.period).ceil() as usize;
    let mut prev = 0.0;
    let mut total = 0.0;
    for k in 1..=periods {
        let end = (k as f64 * opts.period).min(opts.horizon);
        let cum = bg.expected_purchases(end, x, t_x, t);
        total += (cum - prev) / (1.0 + opts.discount_rate).powi(k as i32);
        prev = cum;
    }
    total
}

/// CLV of one customer; `None` when the spend model has no finite mean (q ≤ 1).
pub fn clv(
    bg: &BgNbdParams,
    gg: &GammaGammaParams,
    x: f64,
    t_x: f64,
    t: f64,
    m: f64,
    opts: &ClvOptions,
) -> Option<f64> {
    Some(gg.expected_spend(x, m)? * discounted_purchases(bg, x, t_x, t, opts))
}

/// Name of the expected-purchases column for a horizon (`expected_purchases_52`).
pub fn expected_purchases_column(horizon: f64) -> String {
    if horizon.fract() == 0.0 {
        format!("expected_purchases_{}", horizon as i64)
    } else {
        format!("expected_purchases_{horizon}").replace('.', "_")
    }
}

/// Per-customer predictions: `customer_id`, `frequency`, `recency`, `T`, `monetary`,
/// `expected_purchases_<horizon>`, `p_alive`, `expected_spend`, `clv` (the last two null
/// without a spend model).
pub fn predict_table(
    bg: &BgNbdParams,
    gg: Option<&GammaGammaParams>,
    rfm: &RfmTable,
    opts: &ClvOptions,
) -> Result<RecordBatch> {
    opts.validate()?;
    validate_rfm(&rfm.frequency, &rfm.recency, &rfm.t)?;
    let n = rfm.customer_id.len();
    let (mut purchases, mut alive, mut spend, mut value) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let (x, tx, t, m) = (rfm.frequency[i], rfm.recency[i], rfm.t[i], rfm.monetary[i]);
        purchases.push(bg.expected_purchases(opts.horizon, x, tx, t));
        alive.push(bg.p_alive(x, tx, t));
        let s = gg.and_then(|g| g.expected_spend(x, m));
        spend.push(s);
        value.push(s.map(|s| s * discounted_purchases(bg, x, tx, t, opts)));
    }
    let f = |name: String, nullable| Field::new(name, DataType::Float64, nullable);
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        f("frequency".into(), false),
        f("recency".into(), false),
        f("T".into(), false),
        f("monetary".into(), false),
        f(expected_purchases_column(opts.horizon), false),
        f("p_alive".into(), false),
        f("expected_spend".into(), true),
        f("clv".into(), true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rfm.customer_id.clone())),
        Arc::new(Float64Array::from(rfm.frequency.clone())),
        Arc::new(Float64Array::from(rfm.recency.clone())),
        Arc::new(Float64Array::from(rfm.t.clone())),
        Arc::new(Float64Array::from(rfm.monetary.clone())),
        Arc::new(Float64Array::from(purchases)),
        Arc::new(Float64Array::from(alive)),
        Arc::new(Float64Array::from(spend)),
        Arc::new(Float64Array::from(value)),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), cols)?)
}

/// Calibration-frequency buckets of the model checks: 0..=6 and 7+.
pub const BUCKETS: usize = 8;

fn bucket_label(k: usize) -> String {
    if k + 1 == BUCKETS {
        format!("{k}+")
    } else {
        k.to_string()
    }
}

/// Mean actual vs predicted holdout purchases for one calibration-frequency bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutRow {
    pub bucket: String,
    pub customers: usize,
    pub actual: f64,
    pub predicted: f64,
}

/// Holdout check: per bucket, mean actual holdout purchases vs the mean conditional
/// expectation over the holdout length. Empty buckets are left out.
pub fn holdout_comparison(bg: &BgNbdParams, rfm: &RfmTable) -> Option<Vec<HoldoutRow>> {
    let holdout = rfm.holdout.as_ref()?;
    let length = rfm.holdout_length();
    let mut acc = [(0usize, 0.0, 0.0); BUCKETS];
    for (i, &h) in holdout.iter().enumerate() {
        let x = rfm.frequency[i];
        let k = (x as usize).min(BUCKETS - 1);
        acc[k].0 += 1;
        acc[k].1 += h;
        acc[k].2 += bg.expected_purchases(length, x, rfm.recency[i], rfm.t[i]);
    }
    Some(
        acc.iter()
            .enumerate()
            .filter(|(_, a)| a.0 > 0)
            .map(|(k, &(n, actual, predicted))| HoldoutRow {
                bucket: bucket_label(k),
                customers: n,
                actual: actual / n as f64,
                predicted: predicted / n as f64,
            })
            .collect(),
    )
}

/// Customers per calibration-frequency bucket: actual vs expected under the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrequencyRow {
    pub bucket: String,
    pub actual: usize,
    pub expected: f64,
}

/// Frequency histogram check: Σ over customers of P(X(T_i) = x) per bucket.
pub fn frequency_fit(bg: &BgNbdParams, frequency: &[f64], t: &[f64]) -> Vec<FrequencyRow> {
    let mut ages: HashMap<u64, usize> = HashMap::new();
    for &ti in t {
        *ages.entry(ti.to_bits()).or_default() += 1;
    }
    let mut expected = [0.0; BUCKETS];
    for (bits, count) in ages {
        let ti = f64::from_bits(bits);
        let mut below = 0.0;
        for (k, e) in expected.iter_mut().enumerate().take(BUCKETS - 1) {
            let p = bg.prob_frequency(k as u32, ti);
            below += p;
            *e += p * count as f64;
        }
        expected[BUCKETS - 1] += (1.0 - below).max(0.0) * count as f64;
    }
    let mut actual = [0usize; BUCKETS];
    for &x in frequency {
        actual[(x as usize).min(BUCKETS - 1)] += 1;
    }
    (0..BUCKETS)
        .map(|k| FrequencyRow {
            bucket: bucket_label(k),
            actual: actual[k],
            expected: expected[k],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    #[test]
    fn clv_without_discount_is_spend_times_expected_purchases() {
        let gg = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        let opts = ClvOptions {
            horizon: 52.0,
            discount_rate: 0.0,
            period: 4.0,
        };
        let v = clv(&BG, &gg, 3.0, 30.0, 40.0, 25.0, &opts).unwrap();
        let direct =
            gg.expected_spend(3.0, 25.0).unwrap() * BG.expected_purchases(52.0, 3.0, 30.0, 40.0);
        assert!((v - direct).abs() < 1e-9 * direct, "{v} vs {direct}");
        // the period-by-period sum (taken for any positive rate) telescopes to the same
        let summed = discounted_purchases(
            &BG,
            3.0,
            30.0,
            40.0,
            &ClvOptions {
                discount_rate: 1e-15,
                ..opts
            },
        );
        let once = discounted_purchases(&BG, 3.0, 30.0, 40.0, &opts);
        assert!((summed - once).abs() < 1e-9 * once, "{summed} vs {once}");
        let discounted = clv(
            &BG,
            &gg,
            3.0,
            30.0,
            40.0,
            25.0,
            &ClvOptions {
                discount_rate: 0.01,
                ..opts
            },
        )
        .unwrap();
        assert!(discounted < v && discounted > v / 1.01f64.powi(13));
    }

    #[test]
    fn frequency_fit_counts_add_up() {
        let freq = [0.0, 0.0, 1.0, 3.0, 9.0];
        let t = [30.0, 30.0, 30.0, 35.0, 39.0];
        let rows = frequency_fit(&BG, &freq, &t);
        let expected: f64 = rows.iter().map(|r| r.expected).sum();
        assert!((expected - 5.0).abs() < 1e-9);
        assert_eq!(rows[0].actual, 2);
        assert_eq!(rows[7].actual, 1);
        assert_eq!(rows[7].bucket, "7+");
    }
}
