//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang
//! 1999): each transaction value z ~ Gamma(shape `p`, rate ν), each customer's ν ~ Gamma(shape
//! `q`, rate `gamma`). Fitted on repeat buyers from their number of repeat purchases `x` and
//! mean repeat-purchase value `m`:
//!
//! ```text
//! ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ + x m)
//! E[M | x, m] = (1 − w) · γp/(q−1) + w · m,    w = px / (px + q − 1)
//! ```
//!
//! The model assumes spend is independent of purchase frequency; check the correlation before
//! trusting CLV built on it.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use super::optim::{self, FitDiagnostics, Objective, OptimOptions};
use crate::error::{Error, Result};

/// Gamma-Gamma parameters `p`, `q`, `gamma` (γ, in money units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGammaParams {
    /// Checked constructor: all parameters positive and finite.
    pub fn new(p: f64, q: f64, gamma: f64) -> Result<Self> {
        for (name, v) in [("p", p), ("q", q), ("gamma", gamma)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Invalid(format!(
                    "Gamma-Gamma parameter {name} must be positive and finite, got {v}"
                )));
            }
        }
        Ok(Self { p, q, gamma })
    }

    /// Log-likelihood of one repeat buyer (`x` ≥ 1 repeat purchases, mean value `m` > 0).
    pub fn log_likelihood(&self, x: f64, m: f64) -> f64 {
        let Self { p, q, gamma } = *self;
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * gamma.ln()
            + (px - 1.0) * m.ln()
            + px * x.ln()
            - (px + q) * (gamma + x * m).ln()
    }

    /// Population mean spend per transaction γp/(q−1); `None` when q ≤ 1 (infinite mean).
    pub fn population_mean(&self) -> Option<f64> {
        (self.q > 1.0).then(|| self.gamma * self.p / (self.q - 1.0))
    }

    /// Conditional expected spend per transaction E[M | x, m]. Customers without repeat
    /// purchases (or with a non-positive mean) get the population mean. `None` when q ≤ 1.
    pub fn expected_spend(&self, x: f64, m: f64) -> Option<f64> {
        let pop = self.population_mean()?;
        if x <= 0.0 || m.is_nan() || m <= 0.0 {
            return Some(pop);
        }
        let w = self.p * x / (self.p * x + self.q - 1.0);
        Some((1.0 - w) * pop + w * m)
    }
}

/// Settings of a Gamma-Gamma fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaFitter {
    /// L2 penalty on (p, q, γ) added to the mean negative log-likelihood. Default 0.
    pub penalty: f64,
    /// Maximum optimiser iterations. Default 500.
    pub max_iters: u64,
}

impl Default for GammaGammaFitter {
    fn default() -> Self {
        Self {
            penalty: 0.0,
            max_iters: 500,
        }
    }
}

/// A fitted Gamma-Gamma model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedGammaGamma {
    pub params: GammaGammaParams,
    pub penalty: f64,
    /// Repeat buyers excluded from the fit because their mean spend was not positive.
    pub excluded: usize,
    pub diagnostics: FitDiagnostics,
}

impl FittedGammaGamma {
    /// Conditional expected spend per transaction (see [`GammaGammaParams::expected_spend`]).
    pub fn expected_spend(&self, x: f64, m: f64) -> Option<f64> {
        self.params.expected_spend(x, m)
    }
}

impl GammaGammaFitter {
    /// Fits on all customers with `frequency > 0` and `monetary > 0`; others are skipped.
    pub fn fit(&self, frequency: &[f64], monetary: &[f64]) -> Result<FittedGammaGamma> {
        if frequency.len() != monetary.len() {
            return Err(Error::Invalid(
                "frequency and monetary differ in length".into(),
            ));
        }
        if !(self.penalty.is_finite() && self.penalty >= 0.0) {
            return Err(Error::Invalid(format!(
                "penalty must be ≥ 0, got {}",
                self.penalty
            )));
        }
        let (mut x, mut m) = (Vec::new(), Vec::new());
        let mut excluded = 0;
        for (i, (&xi, &mi)) in frequency.iter().zip(monetary).enumerate() {
            if !(xi.is_finite() && mi.is_finite()) {
                return Err(Error::Invalid(format!(
                    "customer #{i}: non-finite frequency {xi} or monetary {mi}"
                )));
            }
            if xi > 0.0 {
                if mi > 0.0 {
                    x.push(xi);
                    m.push(mi);
                } else {
                    excluded += 1;
                }
            }
        }
        if x.is_empty() {
            return Err(Error::Data(
                "no repeat buyers with a positive mean spend: the Gamma-Gamma model cannot be fitted".into(),
            ));
        }
        let (xs, index) = optim::group_frequencies(&x);
        let ln_m: Vec<f64> = m.iter().map(|v| v.ln()).collect();
        let objective = GgObjective {
            xs,
            index,
            m: &m,
            ln_m,
            penalty: self.penalty,
        };
        let mean_m = m.iter().sum::<f64>() / m.len() as f64;
        let theta0 = vec![0.0, 2f64.ln(), mean_m.ln()];
        let min = optim::minimize(
            &objective,
            theta0,
            OptimOptions {
                max_iters: self.max_iters,
            },
        )?;
        let p: Vec<f64> = min.theta.iter().map(|v| v.exp()).collect();
        let params = GammaGammaParams::new(p[0], p[1], p[2])
            .map_err(|e| Error::Data(format!("the Gamma-Gamma fit degenerated: {e}")))?;
        let pen = self.penalty * p.iter().map(|v| v * v).sum::<f64>();
        let diagnostics = min.diagnostics(-(min.value - pen) * x.len() as f64, x.len());
        if !diagnostics.converged {
            tracing::warn!(termination = %diagnostics.termination, "Gamma-Gamma fit may not have converged");
        }
        Ok(FittedGammaGamma {
            params,
            penalty: self.penalty,
            excluded,
            diagnostics,
        })
    }
}

struct GgObjective<'a> {
    xs: Vec<f64>,
    index: Vec<u32>,
    m: &'a [f64],
    ln_m: Vec<f64>,
    penalty: f64,
}

impl Objective for GgObjective<'_> {
    fn value_grad(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let pr = [theta[0].exp(), theta[1].exp(), theta[2].exp()];
        if pr.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return None;
        }
        let [p, q, gamma] = pr;
        let (lg_q, dg_q, ln_g) = (ln_gamma(q), digamma(q), gamma.ln());
        // Per distinct x: (constant, d/dp without the m terms, d/dq without the m term).
        let terms: Vec<[f64; 3]> = self
            .xs
            .iter()
            .map(|&x| {
                let px = p * x;
                let (dpxq, dpx) = (digamma(px + q), digamma(px));
                [
                    ln_gamma(px + q) - ln_gamma(px) - lg_q + q * ln_g + px * x.ln(),
                    x * (dpxq - dpx + x.ln()),
                    dpxq - dg_q + ln_g,
                ]
            })
            .collect();
        let (sum, g) = optim::par_sum(self.index.len(), 3, |range, g| {
            let mut s = 0.0;
            for i in range {
                let k = self.index[i] as usize;
                let x = self.xs[k];
                let (px, lm) = (p * x, self.ln_m[i]);
                let gxm = gamma + x * self.m[i];
                let lgxm = gxm.ln();
                s += terms[k][0] + (px - 1.0) * lm - (px + q) * lgxm;
                g[0] += terms[k][1] + x * lm - x * lgxm;
                g[1] += terms[k][2] - lgxm;
                g[2] += q / gamma - (px + q) / gxm;
            }
            s
        });
        let n = self.index.len() as f64;
        let value = -sum / n + self.penalty * pr.iter().map(|v| v * v).sum::<f64>();
        let grad: Vec<f64> = (0..3)
            .map(|j| -g[j] * pr[j] / n + 2.0 * self.penalty * pr[j] * pr[j])
            .collect();
        (value.is_finite() && grad.iter().all(|v| v.is_finite())).then_some((value, grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let x = [1.0, 2.0, 5.0, 1.0];
        let m = [10.0, 35.5, 20.0, 3.0];
        let (xs, index) = optim::group_frequencies(&x);
        let obj = GgObjective {
            xs,
            index,
            m: &m,
            ln_m: m.iter().map(|v| v.ln()).collect(),
            penalty: 0.001,
        };
        let theta = [1.5, 1.2, 2.5];
        let (_, g) = obj.value_grad(&theta).unwrap();
        for j in 0..3 {
            let (mut up, mut dn) = (theta, theta);
            up[j] += 1e-6;
            dn[j] -= 1e-6;
            let fd = (obj.value_grad(&up).unwrap().0 - obj.value_grad(&dn).unwrap().0) / 2e-6;
            assert!((fd - g[j]).abs() < 1e-6, "param {j}: {fd} vs {}", g[j]);
        }
    }

    #[test]
    fn expected_spend_shrinks_towards_the_population_mean() {
        let gg = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        let pop = gg.population_mean().unwrap();
        assert!((pop - 35.22).abs() < 0.05, "{pop}");
        assert_eq!(gg.expected_spend(0.0, 0.0), Some(pop));
        let e = gg.expected_spend(2.0, 100.0).unwrap();
        assert!(e > pop && e < 100.0);
        assert!(
            GammaGammaFitter::default()
                .fit(&[0.0, 1.0], &[0.0, 0.0])
                .is_err()
        );
    }
}
