//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
//! parameters, the per-customer log-likelihood in log space, input validation and the
//! maximum-likelihood fit over log-parameters.
//!
//! Per customer with `x` repeat purchases, the last at `t_x`, observed until `T`:
//!
//! ```text
//! L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
//!   + [x > 0] · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
//! ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
//!      + ln( e^{A₃} + [x > 0] e^{A₄} ),   A₃ = −(r+x) ln(α+T),
//!                                         A₄ = ln a − ln(b+x−1) − (r+x) ln(α+t_x)
//! ```
//!
//! The last term is a log-sum-exp, so frequencies in the hundreds neither overflow nor lose
//! precision. The fit minimises the mean negative log-likelihood plus an optional L2 penalty
//! `penalty · (r² + α² + a² + b²)` (lifetimes' `penalizer_coef`) over `(ln r, ln α, ln a, ln b)`
//! with an analytic gradient.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use super::optim::{self, FitDiagnostics, Objective, OptimOptions, log_add_exp};
use crate::error::{Error, Result};

/// BG/NBD parameters: purchase rates λ ~ Gamma(shape `r`, rate `alpha`), drop-out
/// probabilities p ~ Beta(`a`, `b`). `alpha` is in the model's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbdParams {
    /// Checked constructor: every parameter must be finite and positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self> {
        for (name, v) in [("r", r), ("alpha", alpha), ("a", a), ("b", b)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Invalid(format!(
                    "BG/NBD parameter {name} must be positive and finite, got {v}"
                )));
            }
        }
        Ok(Self { r, alpha, a, b })
    }

    fn as_array(&self) -> [f64; 4] {
        [self.r, self.alpha, self.a, self.b]
    }

    /// Log-likelihood of one customer (see the module docs). Inputs are not validated.
    pub fn log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + t).ln();
        let tail = if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + t_x).ln();
            log_add_exp(a3, a4)
        } else {
            a3
        };
        a1 + a2 + tail
    }

    /// Total log-likelihood of validated RFM columns.
    pub fn total_log_likelihood(
        &self,
        frequency: &[f64],
        recency: &[f64],
        t: &[f64],
    ) -> Result<f64> {
        validate_rfm(frequency, recency, t)?;
        Ok((0..frequency.len())
            .map(|i| self.log_likelihood(frequency[i], recency[i], t[i]))
            .sum())
    }
}

/// Checks RFM columns for a BG/NBD fit or prediction: equal lengths, at least one customer,
/// finite non-negative values, whole frequencies, recency ≤ T, recency 0 when frequency is 0.
pub fn validate_rfm(frequency: &[f64], recency: &[f64], t: &[f64]) -> Result<()> {
    if frequency.len() != recency.len() || frequency.len() != t.len() {
        return Err(Error::Invalid(format!(
            "RFM columns differ in length: frequency {}, recency {}, T {}",
            frequency.len(),
            recency.len(),
            t.len()
        )));
    }
    if frequency.is_empty() {
        return Err(Error::Data("no customers: the RFM summary is empty".into()));
    }
    for i in 0..frequency.len() {
        let (x, tx, tt) = (frequency[i], recency[i], t[i]);
        if !(x.is_finite() && tx.is_finite() && tt.is_finite()) {
            return Err(Error::Invalid(format!(
                "customer #{i}: non-finite value (frequency {x}, recency {tx}, T {tt})"
            )));
        }
        if x < 0.0 || tx < 0.0 || tt < 0.0 {
            return Err(Error::Invalid(format!(
                "customer #{i}: negative frequency, recency or age (frequency {x}, recency {tx}, T {tt}); \
                 is a purchase dated after the calibration end?"
            )));
        }
        if x.fract() != 0.0 {
            return Err(Error::Invalid(format!(
                "customer #{i}: frequency {x} is not a whole number"
            )));
        }
        if tx > tt * (1.0 + 1e-12) + 1e-12 {
            return Err(Error::Invalid(format!(
                "customer #{i}: recency {tx} > T {tt}"
            )));
        }
        if x == 0.0 && tx != 0.0 {
            return Err(Error::Invalid(format!(
                "customer #{i}: recency {tx} with frequency 0 (recency must be 0 without repeat purchases)"
            )));
        }
    }
    Ok(())
}

/// Settings of a BG/NBD fit (the configuration; the result is a [`FittedBgNbd`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdFitter {
    /// L2 penalty on the natural parameters, added to the mean negative log-likelihood.
    /// Default 0 (plain maximum likelihood).
    pub penalty: f64,
    /// Maximum optimiser iterations. Default 500.
    pub max_iters: u64,
}

impl Default for BgNbdFitter {
    fn default() -> Self {
        Self {
            penalty: 0.0,
            max_iters: 500,
        }
    }
}

/// A fitted BG/NBD model: parameters plus how the fit went. Predictions are in
/// `expectations.rs` (`p_alive`, `expected_purchases`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedBgNbd {
    pub params: BgNbdParams,
    /// The penalty the model was fitted with.
    pub penalty: f64,
    pub diagnostics: FitDiagnostics,
}

impl BgNbdFitter {
    /// Sets the L2 penalty (≥ 0).
    pub fn with_penalty(mut self, penalty: f64) -> Self {
        self.penalty = penalty;
        self
    }

    /// Fits the model to per-customer RFM columns (`t` is each customer's age `T`).
    pub fn fit(&self, frequency: &[f64], recency: &[f64], t: &[f64]) -> Result<FittedBgNbd> {
        if !(self.penalty.is_finite() && self.penalty >= 0.0) {
            return Err(Error::Invalid(format!(
                "penalty must be ≥ 0, got {}",
                self.penalty
            )));
        }
        validate_rfm(frequency, recency, t)?;
        let repeat: f64 = frequency.iter().sum();
        if repeat == 0.0 {
            return Err(Error::Data(format!(
                "no repeat buyers among {} customers: BG/NBD needs customers with frequency > 0 \
                 (is the calibration period too short?)",
                frequency.len()
            )));
        }
        let (xs, index) = optim::group_frequencies(frequency);
        let objective = BgNbdObjective {
            xs,
            index,
            recency,
            t,
            penalty: self.penalty,
        };
        // Start with r = 1 and α matching the observed repeat rate, a = b = 1.
        let rate = repeat / t.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let theta0 = vec![0.0, (1.0 / rate).ln().clamp(-10.0, 10.0), 0.0, 0.0];
        let min = optim::minimize(
            &objective,
            theta0,
            OptimOptions {
                max_iters: self.max_iters,
            },
        )?;
        let p = min.theta.iter().map(|v| v.exp()).collect::<Vec<_>>();
        let params = BgNbdParams::new(p[0], p[1], p[2], p[3])
            .map_err(|e| Error::Data(format!("the BG/NBD fit degenerated: {e}")))?;
        let n = frequency.len() as f64;
        let pen: f64 = params.as_array().iter().map(|v| v * v).sum::<f64>() * self.penalty;
        let ll = -(min.value - pen) * n;
        let mut diagnostics = min.diagnostics(ll, frequency.len());
        for (name, v) in [
            ("r", params.r),
            ("alpha", params.alpha),
            ("a", params.a),
            ("b", params.b),
        ] {
            if !(1e-6..=1e6).contains(&v) {
                diagnostics.notes.push(format!(
                    "{name} = {v:.3e} ran to the edge of the parameter space: the data barely identify it \
                     (a penalty, e.g. --penalty 0.001, keeps it finite)"
                ));
            }
        }
        if !diagnostics.converged {
            tracing::warn!(
                termination = %diagnostics.termination,
                gradient_norm = diagnostics.gradient_norm,
                "BG/NBD fit may not have converged"
            );
        }
        Ok(FittedBgNbd {
            params,
            penalty: self.penalty,
            diagnostics,
        })
    }
}

struct BgNbdObjective<'a> {
    xs: Vec<f64>,
    index: Vec<u32>,
    recency: &'a [f64],
    t: &'a [f64],
    penalty: f64,
}

/// Terms of the log-likelihood and its gradient that depend on the frequency alone.
struct XTerms {
    c: f64,
    d4: f64,
    rx: f64,
    dr: f64,
    da: f64,
    db: f64,
    inv_bx1: f64,
}

impl Objective for BgNbdObjective<'_> {
    fn value_grad(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let p = [
            theta[0].exp(),
            theta[1].exp(),
            theta[2].exp(),
            theta[3].exp(),
        ];
        if p.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return None;
        }
        let [r, alpha, a, b] = p;
        let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
        let (dg_r, dg_b, dg_ab) = (digamma(r), digamma(b), digamma(a + b));
        let ln_alpha = alpha.ln();
        let terms: Vec<XTerms> = self
            .xs
            .iter()
            .map(|&x| XTerms {
                c: ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x)
                    - lg_b
                    - ln_gamma(a + b + x),
                d4: if x > 0.0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    f64::NEG_INFINITY
                },
                rx: r + x,
                dr: digamma(r + x) - dg_r + ln_alpha,
                da: dg_ab - digamma(a + b + x),
                db: dg_ab + digamma(b + x) - dg_b - digamma(a + b + x),
                inv_bx1: if x > 0.0 { 1.0 / (b + x - 1.0) } else { 0.0 },
            })
            .collect();
        let r_over_alpha = r / alpha;
        let (sum, g) = optim::par_sum(self.index.len(), 4, |range, g| {
            let mut s = 0.0;
            for i in range {
                let k = &terms[self.index[i] as usize];
                let (ti, txi) = (alpha + self.t[i], alpha + self.recency[i]);
                let lt = ti.ln();
                let a3 = -k.rx * lt;
                if k.d4 == f64::NEG_INFINITY {
                    s += k.c + a3;
                    g[0] += k.dr - lt;
                    g[1] += r_over_alpha - k.rx / ti;
                    g[2] += k.da;
                    g[3] += k.db;
                } else {
                    let ltx = txi.ln();
                    let a4 = k.d4 - k.rx * ltx;
                    let lse = log_add_exp(a3, a4);
                    let (w3, w4) = ((a3 - lse).exp(), (a4 - lse).exp());
                    s += k.c + lse;
                    g[0] += k.dr - w3 * lt - w4 * ltx;
                    g[1] += r_over_alpha - k.rx * (w3 / ti + w4 / txi);
                    g[2] += k.da + w4 / a;
                    g[3] += k.db - w4 * k.inv_bx1;
                }
            }
            s
        });
        let n = self.index.len() as f64;
        let value = -sum / n + self.penalty * p.iter().map(|v| v * v).sum::<f64>();
        let grad: Vec<f64> = (0..4)
            .map(|j| -g[j] * p[j] / n + 2.0 * self.penalty * p[j] * p[j])
            .collect();
        (value.is_finite() && grad.iter().all(|v| v.is_finite())).then_some((value, grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::gamma::gamma;

    /// The paper's likelihood, evaluated directly (no logs until the end).
    fn naive_ll(p: &BgNbdParams, x: f64, tx: f64, t: f64) -> f64 {
        let beta = |u: f64, v: f64| gamma(u) * gamma(v) / gamma(u + v);
        let BgNbdParams { r, alpha, a, b } = *p;
        let common = gamma(r + x) * alpha.powf(r) / gamma(r);
        let mut l = beta(a, b + x) / beta(a, b) * common / (alpha + t).powf(r + x);
        if x > 0.0 {
            l += beta(a + 1.0, b + x - 1.0) / beta(a, b) * common / (alpha + tx).powf(r + x);
        }
        l.ln()
    }

    #[test]
    fn log_likelihood_matches_the_naive_formula() {
        let p = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap();
        for &(x, tx, t) in &[
            (0.0, 0.0, 38.86),
            (2.0, 30.43, 38.86),
            (1.0, 1.71, 38.86),
            (7.0, 29.43, 35.0),
            (12.0, 5.0, 60.0),
        ] {
            let (fast, slow) = (p.log_likelihood(x, tx, t), naive_ll(&p, x, tx, t));
            assert!(
                (fast - slow).abs() < 1e-9 * slow.abs().max(1.0),
                "{x},{tx},{t}: {fast} vs {slow}"
            );
        }
    }

    #[test]
    fn log_likelihood_is_finite_for_hundreds_of_purchases() {
        let p = BgNbdParams::new(0.5, 2.0, 0.8, 2.5).unwrap();
        for &(x, tx, t) in &[
            (500.0, 690.0, 700.0),
            (500.0, 10.0, 700.0),
            (2000.0, 1999.0, 2000.0),
        ] {
            let ll = p.log_likelihood(x, tx, t);
            assert!(ll.is_finite(), "{x}: {ll}");
            // The naive form overflows here; the log form does not.
            assert!(!naive_ll(&p, x, tx, t).is_finite() || x < 200.0);
        }
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let freq = [0.0, 1.0, 3.0, 10.0, 0.0, 2.0];
        let rec = [0.0, 4.0, 20.0, 30.0, 0.0, 1.0];
        let t = [10.0, 30.0, 32.0, 35.0, 5.0, 40.0];
        let (xs, index) = optim::group_frequencies(&freq);
        let obj = BgNbdObjective {
            xs,
            index,
            recency: &rec,
            t: &t,
            penalty: 0.01,
        };
        let theta = [-0.5, 1.2, -0.3, 0.8];
        let (_, g) = obj.value_grad(&theta).unwrap();
        for j in 0..4 {
            let (mut up, mut dn) = (theta, theta);
            up[j] += 1e-6;
            dn[j] -= 1e-6;
            let fd = (obj.value_grad(&up).unwrap().0 - obj.value_grad(&dn).unwrap().0) / 2e-6;
            assert!((fd - g[j]).abs() < 1e-6, "param {j}: {fd} vs {}", g[j]);
        }
    }

    #[test]
    fn degenerate_input_is_a_clear_error() {
        let f = BgNbdFitter::default();
        let msg = f
            .fit(&[0.0, 0.0], &[0.0, 0.0], &[5.0, 3.0])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no repeat buyers"), "{msg}");
        let msg = f.fit(&[1.0], &[6.0], &[5.0]).unwrap_err().to_string();
        assert!(msg.contains("recency 6 > T 5"), "{msg}");
        let msg = f.fit(&[], &[], &[]).unwrap_err().to_string();
        assert!(msg.contains("no customers"), "{msg}");
        let msg = f.fit(&[1.0], &[1.0], &[-2.0]).unwrap_err().to_string();
        assert!(msg.contains("negative"), "{msg}");
        let msg = f.fit(&[1.0], &[f64::NAN], &[2.0]).unwrap_err().to_string();
        assert!(msg.contains("non-finite"), "{msg}");
    }
}
