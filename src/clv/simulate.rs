//! Seeded generators for the BG/NBD and Gamma-Gamma processes, used by the parameter-recovery
//! tests and the benchmark, and handy for checking a model end to end.
//!
//! BG/NBD: each customer draws λ ~ Gamma(r, rate α) and p ~ Beta(a, b), makes a first
//! purchase at time 0, then purchases at Poisson rate λ; after each repeat purchase they drop
//! out with probability p. Observed until `T`, and (for the holdout) on until `T + holdout`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};

use super::bgnbd::BgNbdParams;
use super::gamma_gamma::GammaGammaParams;
use crate::error::{Error, Result};

/// Simulated per-customer summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulatedRfm {
    /// Repeat purchases in `(0, T]`.
    pub frequency: Vec<f64>,
    /// Time of the last repeat purchase (0 without one).
    pub recency: Vec<f64>,
    /// Observation length `T`.
    pub t: Vec<f64>,
    /// Purchases in the holdout `(T, T + holdout]`.
    pub holdout: Vec<f64>,
    /// Whether the customer is still alive at `T` (the hidden truth).
    pub alive: Vec<bool>,
}

/// Simulates `n` customers with ages `T` uniform in `[t_min, t_max]`.
pub fn simulate_bgnbd(
    params: &BgNbdParams,
    n: usize,
    t_min: f64,
    t_max: f64,
    holdout: f64,
    seed: u64,
) -> Result<SimulatedRfm> {
    if !(t_min >= 0.0 && t_max >= t_min && holdout >= 0.0) {
        return Err(Error::Invalid(format!(
            "need 0 ≤ t_min ≤ t_max and holdout ≥ 0, got {t_min}, {t_max}, {holdout}"
        )));
    }
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("BG/NBD parameters: {e}"));
    let rate = Gamma::new(params.r, 1.0 / params.alpha).map_err(|e| bad(&e))?;
    let drop = Beta::new(params.a, params.b).map_err(|e| bad(&e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = SimulatedRfm::default();
    for _ in 0..n {
        let lambda: f64 = rate.sample(&mut rng).max(1e-300);
        let p: f64 = drop.sample(&mut rng);
        let big_t = if t_max > t_min {
            rng.random_range(t_min..=t_max)
        } else {
            t_min
        };
        let gap = Exp::new(lambda).map_err(|e| bad(&e))?;
        let (mut now, mut x, mut tx, mut hold, mut alive) = (0.0, 0.0, 0.0, 0.0, true);
        loop {
            now += gap.sample(&mut rng);
            if now > big_t + holdout {
                break;
            }
            if now <= big_t {
                x += 1.0;
                tx = now;
            } else {
                hold += 1.0;
            }
            if rng.random::<f64>() < p {
                alive = now > big_t;
                break;
            }
        }
        out.frequency.push(x);
        out.recency.push(tx);
        out.t.push(big_t);
        out.holdout.push(hold);
        out.alive.push(alive);
    }
    Ok(out)
}

/// Simulates mean repeat-purchase values for customers with the given repeat frequencies
/// (0 for customers without repeat purchases).
pub fn simulate_spend(params: &GammaGammaParams, frequency: &[f64], seed: u64) -> Result<Vec<f64>> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("Gamma-Gamma parameters: {e}"));
    let nu = Gamma::new(params.q, 1.0 / params.gamma).map_err(|e| bad(&e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    frequency
        .iter()
        .map(|&x| {
            let v: f64 = nu.sample(&mut rng);
            if x < 1.0 {
                return Ok(0.0);
            }
            let z = Gamma::new(params.p, 1.0 / v).map_err(|e| bad(&e))?;
            let n = x as usize;
            Ok((0..n).map(|_| z.sample(&mut rng)).sum::<f64>() / n as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clv::{BgNbdFitter, GammaGammaFitter};

    fn max_rel_err(est: &[f64], truth: &[f64]) -> f64 {
        est.iter()
            .zip(truth)
            .map(|(e, t)| ((e - t) / t).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn bgnbd_parameters_are_recovered_more_tightly_with_more_customers() {
        let truth = BgNbdParams::new(0.25, 4.0, 0.8, 2.5).unwrap();
        let tv = [truth.r, truth.alpha, truth.a, truth.b];
        let mut errs = Vec::new();
        for (n, bound) in [(2_000, 0.5), (20_000, 0.15)] {
            let sim = simulate_bgnbd(&truth, n, 30.0, 80.0, 0.0, 7).unwrap();
            let fit = BgNbdFitter::default()
                .fit(&sim.frequency, &sim.recency, &sim.t)
                .unwrap();
            let p = fit.params;
            let err = max_rel_err(&[p.r, p.alpha, p.a, p.b], &tv);
            assert!(
                err < bound,
                "n={n}: {p:?} (max relative error {err:.3} ≥ {bound})"
            );
            assert!(fit.diagnostics.converged, "{:?}", fit.diagnostics);
            errs.push(err);
        }
        eprintln!(
            "BG/NBD max relative errors: n=2000 {:.3}, n=20000 {:.3}",
            errs[0], errs[1]
        );
    }

    #[test]
    fn holdout_predictions_match_simulated_future_purchases() {
        let truth = BgNbdParams::new(0.3, 5.0, 0.9, 3.0).unwrap();
        let sim = simulate_bgnbd(&truth, 20_000, 20.0, 60.0, 26.0, 11).unwrap();
        let predicted: f64 = (0..sim.t.len())
            .map(|i| truth.expected_purchases(26.0, sim.frequency[i], sim.recency[i], sim.t[i]))
            .sum();
        let actual: f64 = sim.holdout.iter().sum();
        assert!(
            (predicted / actual - 1.0).abs() < 0.05,
            "predicted {predicted} vs actual {actual}"
        );
        // P(alive) is calibrated against the hidden truth.
        let p_alive: f64 = (0..sim.t.len())
            .map(|i| truth.p_alive(sim.frequency[i], sim.recency[i], sim.t[i]))
            .sum();
        let alive = sim.alive.iter().filter(|a| **a).count() as f64;
        assert!((p_alive / alive - 1.0).abs() < 0.03, "{p_alive} vs {alive}");
    }

    #[test]
    fn gamma_gamma_parameters_are_recovered_more_tightly_with_more_customers() {
        let truth = GammaGammaParams::new(6.0, 4.0, 15.0).unwrap();
        let mut errs = Vec::new();
        for (n, bound) in [(2_000usize, 0.4), (20_000, 0.13)] {
            let freq: Vec<f64> = (0..n).map(|i| 1.0 + (i % 8) as f64).collect();
            let m = simulate_spend(&truth, &freq, 3).unwrap();
            let fit = GammaGammaFitter::default().fit(&freq, &m).unwrap();
            let p = fit.params;
            let err = max_rel_err(&[p.p, p.q, p.gamma], &[truth.p, truth.q, truth.gamma]);
            assert!(
                err < bound,
                "n={n}: {p:?} (max relative error {err:.3} ≥ {bound})"
            );
            // The population mean is identified much better than the individual parameters.
            let mean_err =
                (p.population_mean().unwrap() / truth.population_mean().unwrap() - 1.0).abs();
            assert!(
                mean_err < bound / 4.0,
                "n={n}: population mean off by {mean_err:.3}"
            );
            errs.push(err);
        }
        eprintln!(
            "Gamma-Gamma max relative errors: n=2000 {:.3}, n=20000 {:.3}",
            errs[0], errs[1]
        );
    }
}
