//! BG/NBD predictions: P(alive), the conditional expected number of purchases in the next
//! `t` periods, the unconditional E[X(t)] and P(X(t) = x) used for the fit check.
//!
//! The conditional expectation (paper eq. 10) is
//!
//! ```text
//! E[Y(t) | x, t_x, T] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^{r+x} ₂F₁(r+x, b+x; a+b+x−1; z)]
//!                       / (1 + [x>0] a/(b+x−1) · ((α+T)/(α+t_x))^{r+x}),     z = t/(α+T+t).
//! ```
//!
//! Evaluated as written, ₂F₁ diverges like (1−z)^{a−1−r−x} for large `x`, and a ≈ 1 is 0/0.
//! We use Euler's transformation ₂F₁(α, β; γ; z) = (1−z)^{γ−α−β} ₂F₁(γ−α, γ−β; γ; z), which
//! turns the bracket into `1 − (1−z)^{a−1} ₂F₁(a+b−1−r, a−1; a+b+x−1; z)`, and split off the
//! (a−1) factor of the series analytically, so every term stays bounded and a = 1 is exact.
//! The denominator 1/(1 + e^ℓ) is P(alive), computed as e^{−softplus(ℓ)}.

use statrs::function::gamma::ln_gamma;

use super::bgnbd::{BgNbdParams, FittedBgNbd};
use super::optim::log_add_exp;

impl BgNbdParams {
    /// ln of the second term in P(alive)'s denominator; −∞ without repeat purchases.
    fn log_odds_dead(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x <= 0.0 {
            return f64::NEG_INFINITY;
        }
        let Self { r, alpha, a, b } = *self;
        a.ln() - (b + x - 1.0).ln() + (r + x) * ((alpha + t).ln() - (alpha + t_x).ln())
    }

    /// P(alive at T | x, t_x, T). Exactly 1 for customers without repeat purchases.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        (-log_add_exp(0.0, self.log_odds_dead(x, t_x, t))).exp()
    }

    /// Expected purchases in `(T, T + horizon]` for a customer with `x` repeat purchases, the
    /// last at `t_x`, observed until `T` (all in the model's unit).
    pub fn expected_purchases(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        if horizon <= 0.0 {
            return 0.0;
        }
        let Self { r, alpha, a, b } = *self;
        let eps = a - 1.0;
        let c = a + b + x - 1.0;
        let ap = a + b - 1.0 - r;
        let z = horizon / (alpha + t + horizon);
        let l = -(horizon / (alpha + t)).ln_1p(); // ln(1 − z)
        // C'·[1 − (1−z)^ε]/ε
        let first = c * if eps.abs() < 1e-12 {
            -l
        } else {
            -(eps * l).exp_m1() / eps
        };
        // H = Σ_{k≥1} h_k,  h_1 = A'z,  h_{k+1} = h_k (A'+k)(ε+k) z / ((C'+k)(k+1))
        let k_min = ap.abs().max(c.abs()).max(eps.abs()) + 2.0;
        let mut h = ap * z;
        let mut sum = h;
        let mut k = 1.0;
        while k < 1e7 {
            let ratio = (ap + k) * (eps + k) * z / ((c + k) * (k + 1.0));
            h *= ratio;
            sum += h;
            k += 1.0;
            if h == 0.0 || (k > k_min && ratio.abs() < 1.0 && h.abs() <= 1e-16 * sum.abs()) {
                break;
            }
        }
        let numerator = first - (eps * l).exp() * sum;
        (numerator * self.p_alive(x, t_x, t)).max(0.0)
    }

    /// Unconditional E[X(t)]: expected repeat purchases in `(0, t]` of a new customer.
    pub fn expected_frequency(&self, t: f64) -> f64 {
        self.expected_purchases(t, 0.0, 0.0, 0.0)
    }

    /// P(X(t) = x): probability of exactly `x` repeat purchases in `(0, t]` (paper eq. 8).
    pub fn prob_frequency(&self, x: u32, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        if t <= 0.0 {
            // No time observed yet (first purchase on the last calibration day): no repeats.
            return if x == 0 { 1.0 } else { 0.0 };
        }
        let xf = f64::from(x);
        let ln_beta = |u: f64, v: f64| ln_gamma(u) + ln_gamma(v) - ln_gamma(u + v);
        let ln_p0 = r * (alpha / (alpha + t)).ln(); // ln (α/(α+t))^r
        let ln_q = (t / (alpha + t)).ln();
        // ln of the negative-binomial pmf Γ(r+j)/(Γ(r) j!) (α/(α+t))^r (t/(α+t))^j
        let nb = |j: f64| ln_gamma(r + j) - ln_gamma(r) - ln_gamma(j + 1.0) + ln_p0 + j * ln_q;
        let first = (ln_beta(a, b + xf) - ln_beta(a, b) + nb(xf)).exp();
        if x == 0 {
            return first;
        }
        let cdf: f64 = (0..x).map(|j| nb(f64::from(j)).exp()).sum();
        let second = (ln_beta(a + 1.0, b + xf - 1.0) - ln_beta(a, b)).exp() * (1.0 - cdf).max(0.0);
        first + second
    }
}

impl FittedBgNbd {
    /// P(alive) for a customer with frequency `x`, recency `t_x` and age `t`.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        self.params.p_alive(x, t_x, t)
    }

    /// Expected purchases in the next `horizon` periods (conditional expectation).
    pub fn expected_purchases(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        self.params.expected_purchases(horizon, x, t_x, t)
    }

    /// Unconditional expected repeat purchases E[X(t)].
    pub fn expected_frequency(&self, t: f64) -> f64 {
        self.params.expected_frequency(t)
    }

    /// P(X(t) = x).
    pub fn prob_frequency(&self, x: u32, t: f64) -> f64 {
        self.params.prob_frequency(x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prob_frequency_at_age_zero_is_a_point_mass() {
        assert_eq!(CDNOW.prob_frequency(0, 0.0), 1.0);
        assert_eq!(CDNOW.prob_frequency(3, 0.0), 0.0);
        let total: f64 = (0..200).map(|x| CDNOW.prob_frequency(x, 10.0)).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    /// Plain series for ₂F₁, for checking at moderate arguments.
    fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
        let (mut term, mut sum) = (1.0, 1.0);
        for k in 0..100_000 {
            let k = k as f64;
            term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
            sum += term;
            if term.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum
    }

    fn paper_eq10(p: &BgNbdParams, t: f64, x: f64, tx: f64, tt: f64) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *p;
        let z = t / (alpha + tt + t);
        let num = (a + b + x - 1.0) / (a - 1.0)
            * (1.0
                - ((alpha + tt) / (alpha + tt + t)).powf(r + x)
                    * hyp2f1(r + x, b + x, a + b + x - 1.0, z));
        let den = 1.0
            + if x > 0.0 {
                a / (b + x - 1.0) * ((alpha + tt) / (alpha + tx)).powf(r + x)
            } else {
                0.0
            };
        num / den
    }

    #[test]
    fn conditional_expectation_matches_the_paper() {
        // CDNOW (weeks): the paper's worked example, x=2, t_x=30.43, T=38.86 → 1.226 in 39 weeks.
        let e = CDNOW.expected_purchases(39.0, 2.0, 30.43, 38.86);
        assert!((e - 1.226).abs() < 2e-3, "{e}");
        for &(t, x, tx, tt) in &[
            (10.0, 0.0, 0.0, 30.0),
            (39.0, 5.0, 20.0, 38.0),
            (4.0, 1.0, 1.0, 2.0),
        ] {
            let (fast, slow) = (
                CDNOW.expected_purchases(t, x, tx, tt),
                paper_eq10(&CDNOW, t, x, tx, tt),
            );
            assert!((fast - slow).abs() < 1e-9, "{fast} vs {slow}");
        }
    }

    #[test]
    fn a_equal_to_one_is_continuous() {
        let p1 = BgNbdParams { a: 1.0, ..CDNOW };
        let p2 = BgNbdParams {
            a: 1.0 + 1e-7,
            ..CDNOW
        };
        let (e1, e2) = (
            p1.expected_purchases(20.0, 3.0, 10.0, 30.0),
            p2.expected_purchases(20.0, 3.0, 10.0, 30.0),
        );
        assert!((e1 - e2).abs() < 1e-5, "{e1} vs {e2}");
    }

    #[test]
    fn large_frequencies_stay_finite() {
        let e = CDNOW.expected_purchases(52.0, 500.0, 103.9, 104.0);
        assert!(e.is_finite() && e > 100.0, "{e}");
        let e = CDNOW.expected_purchases(52.0, 500.0, 10.0, 104.0);
        assert!(e.is_finite() && e >= 0.0, "{e}");
    }

    #[test]
    fn p_alive_properties() {
        assert_eq!(CDNOW.p_alive(0.0, 0.0, 40.0), 1.0);
        let mut last = 1.0;
        for t in [10.0, 20.0, 40.0, 80.0] {
            let p = CDNOW.p_alive(3.0, 8.0, t);
            assert!(p < last && p > 0.0, "{t}: {p}");
            last = p;
        }
        // Active right up to T: more likely alive than after a long silence.
        assert!(CDNOW.p_alive(3.0, 39.0, 40.0) > CDNOW.p_alive(3.0, 5.0, 40.0));
    }

    #[test]
    fn frequency_pmf_sums_to_one_and_matches_the_mean() {
        let t = 39.0;
        let probs: Vec<f64> = (0..400).map(|x| CDNOW.prob_frequency(x, t)).collect();
        let total: f64 = probs.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let mean: f64 = probs.iter().enumerate().map(|(x, p)| x as f64 * p).sum();
        assert!((mean - CDNOW.expected_frequency(t)).abs() < 1e-4, "{mean}");
    }
}
