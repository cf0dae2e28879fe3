//! Off-policy estimators of a target policy's value from logged decisions: inverse
//! propensity scoring (IPS), self-normalised IPS (SNIPS), the direct method (DM), doubly
//! robust (DR) and switch-DR, with percentile bootstrap intervals and the effective
//! sample size of the importance weights.
//!
//! For row `i` with logged action `a_i`, logging propensity `μ_i = μ(a_i | x_i)`, reward
//! `r_i`, target probability `π_i = π(a_i | x_i)`, weight `w_i = π_i / μ_i`, the reward
//! model's prediction `r̂_i = r̂(x_i, a_i)` and its value of the target policy
//! `d_i = Σ_a π(a | x_i) r̂(x_i, a)`:
//!
//! | estimator | value |
//! |---|---|
//! | IPS | mean(w r) |
//! | SNIPS | Σ w r / Σ w × mean(1 − m) |
//! | DM | mean(d) |
//! | DR | mean(d + w (r − r̂)) |
//! | switch-DR | mean(d + 1[w ≤ τ] w (r − r̂)) |
//!
//! `m_i` is the target's probability of options with a known reward of 0 that the log
//! need not cover (do-nothing): IPS, DM and DR count them as 0 directly; SNIPS's weights
//! average `1 − m`, not 1, over the other options, so it rescales by that.
//!
//! IPS and DR are unbiased when the propensities are the true ones and the logging policy
//! gives every action the target takes a positive probability (or the target's reward for
//! it is known exactly and enters through `d`, as do-nothing's reward of 0 does).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One logged decision as the estimators see it (see the module docs for the symbols).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    /// μ(a_i | x_i), in (0, 1].
    pub propensity: f64,
    pub reward: f64,
    /// π(a_i | x_i), in [0, 1].
    pub target: f64,
    /// r̂(x_i, a_i).
    pub predicted: f64,
    /// Σ_a π(a | x_i) r̂(x_i, a).
    pub direct: f64,
    /// The target's probability of options whose reward is known to be 0 and which the
    /// logging policy may never take (do-nothing); SNIPS normalises the rest by
    /// `1 − known_mass` instead of 1.
    #[serde(default)]
    pub known_mass: f64,
}

/// Settings of [`estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpeSettings {
    /// Bootstrap resamples for the intervals (0: none).
    pub bootstrap: usize,
    /// Two-sided interval level, e.g. 0.95.
    pub level: f64,
    /// Switch-DR's weight threshold τ.
    pub switch_tau: f64,
    pub seed: u64,
}

impl Default for OpeSettings {
    fn default() -> Self {
        Self {
            bootstrap: 200,
            level: 0.95,
            switch_tau: 25.0,
            seed: 7,
        }
    }
}

/// One estimate with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimator: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// Every estimate of one target policy on one log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpeReport {
    pub rows: usize,
    /// The logging policy's own value: the mean logged reward.
    pub logged_value: f64,
    /// (Σw)² / Σw².
    pub effective_sample_size: f64,
    pub max_weight: f64,
    /// Share of rows where the target gives the logged action probability 0.
    pub zero_weight_share: f64,
    pub estimates: Vec<Estimate>,
}

impl OpeReport {
    /// The estimate named `name` (`ips`, `snips`, `dm`, `dr`, `switch_dr`).
    pub fn get(&self, name: &str) -> Option<&Estimate> {
        self.estimates.iter().find(|e| e.estimator == name)
    }
}

/// The estimator names, in report order.
pub const ESTIMATORS: [&str; 5] = ["ips", "snips", "dm", "dr", "switch_dr"];

/// Checks the rows: finite rewards and predictions, propensities in (0, 1], target
/// probabilities in [0, 1]. Errors name the first bad row (0-based) and what is wrong.
pub fn validate(rows: &[Logged]) -> Result<()> {
    if rows.is_empty() {
        return Err(Error::Invalid(
            "the log has no decisions to evaluate".into(),
        ));
    }
    for (i, r) in rows.iter().enumerate() {
        let bad = |what: String| Err(Error::Invalid(format!("log row {i}: {what}")));
        if !(r.propensity > 0.0 && r.propensity <= 1.0) {
            return bad(format!(
                "propensity {} is not in (0, 1]: the logging policy's probability of the logged action is needed, and 0 means it could never have been logged",
                r.propensity
            ));
        }
        if !(0.0..=1.0).contains(&r.known_mass) {
            return bad(format!(
                "known-reward mass {} is not in [0, 1]",
                r.known_mass
            ));
        }
        if !(0.0..=1.0).contains(&r.target) {
            return bad(format!("target probability {} is not in [0, 1]", r.target));
        }
        if !r.reward.is_finite() || !r.predicted.is_finite() || !r.direct.is_finite() {
            return bad("reward and predictions must be finite numbers".into());
        }
    }
    Ok(())
}

/// The five estimates on the rows selected by `idx`.
fn point(rows: &[Logged], idx: impl Iterator<Item = usize>, tau: f64) -> [f64; 5] {
    let (mut n, mut ips, mut sw, mut swr, mut dm, mut dr, mut sdr, mut rest) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for i in idx {
        let r = &rows[i];
        let w = r.target / r.propensity;
        n += 1.0;
        rest += 1.0 - r.known_mass;
        ips += w * r.reward;
        sw += w;
        swr += w * r.reward;
        dm += r.direct;
        let corr = w * (r.reward - r.predicted);
        dr += r.direct + corr;
        sdr += r.direct + if w <= tau { corr } else { 0.0 };
    }
    let snips = if sw > 0.0 { swr / sw * rest / n } else { 0.0 };
    [ips / n, snips, dm / n, dr / n, sdr / n]
}

/// Estimates the target policy's value per decision (see the module docs).
pub fn estimate(rows: &[Logged], s: &OpeSettings) -> Result<OpeReport> {
    validate(rows)?;
    if !(s.level > 0.0 && s.level < 1.0) {
        return Err(Error::Invalid(format!(
            "interval level {} is not in (0, 1)",
            s.level
        )));
    }
    let n = rows.len();
    let values = point(rows, 0..n, s.switch_tau);
    let mut boots: Vec<[f64; 5]> = Vec::with_capacity(s.bootstrap);
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut idx = vec![0usize; n];
    for _ in 0..s.bootstrap {
        for x in idx.iter_mut() {
            *x = rng.random_range(0..n);
        }
        boots.push(point(rows, idx.iter().copied(), s.switch_tau));
    }
    let alpha = (1.0 - s.level) / 2.0;
    let estimates = ESTIMATORS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut b: Vec<f64> = boots.iter().map(|x| x[k]).collect();
            b.sort_by(f64::total_cmp);
            let q = |p: f64| {
                if b.is_empty() {
                    values[k]
                } else {
                    b[((p * (b.len() - 1) as f64).round() as usize).min(b.len() - 1)]
                }
            };
            Estimate {
                estimator: name.to_string(),
                value: values[k],
                low: q(alpha),
                high: q(1.0 - alpha),
            }
        })
        .collect();
    let (mut sw, mut sw2, mut maxw, mut zero) = (0.0, 0.0, 0.0f64, 0usize);
    for r in rows {
        let w = r.target / r.propensity;
        sw += w;
        sw2 += w * w;
        maxw = maxw.max(w);
        zero += usize::from(r.target == 0.0);
    }
    Ok(OpeReport {
        rows: n,
        logged_value: rows.iter().map(|r| r.reward).sum::<f64>() / n as f64,
        effective_sample_size: if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 },
        max_weight: maxw,
        zero_weight_share: zero as f64 / n as f64,
        estimates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(propensity: f64, reward: f64, target: f64, predicted: f64, direct: f64) -> Logged {
        Logged {
            propensity,
            reward,
            target,
            predicted,
            direct,
            known_mass: 0.0,
        }
    }

    #[test]
    fn hand_computed_values() {
        // two rows: w = 2 and 0
        let rows = [row(0.5, 1.0, 1.0, 0.4, 0.5), row(0.5, 3.0, 0.0, 1.0, 0.2)];
        let r = estimate(
            &rows,
            &OpeSettings {
                bootstrap: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let v = |n: &str| r.get(n).unwrap().value;
        assert!((v("ips") - 1.0).abs() < 1e-12); // (2·1 + 0) / 2
        assert!((v("snips") - 1.0).abs() < 1e-12); // 2 / 2
        let mut half = rows;
        half.iter_mut().for_each(|r| r.known_mass = 0.5);
        let h = estimate(
            &half,
            &OpeSettings {
                bootstrap: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((h.get("snips").unwrap().value - 0.5).abs() < 1e-12);
        assert!((v("dm") - 0.35).abs() < 1e-12);
        assert!((v("dr") - (0.5 + 2.0 * 0.6 + 0.2) / 2.0).abs() < 1e-12);
        let tight = estimate(
            &rows,
            &OpeSettings {
                bootstrap: 0,
                switch_tau: 1.5,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((tight.get("switch_dr").unwrap().value - 0.35).abs() < 1e-12);
        assert!((r.effective_sample_size - 1.0).abs() < 1e-12); // 2² / 4
        assert_eq!(r.zero_weight_share, 0.5);
        assert!((r.logged_value - 2.0).abs() < 1e-12);
    }

    #[test]
    fn bad_rows_are_named() {
        let e =
            validate(&[row(0.5, 1.0, 1.0, 0.0, 0.0), row(0.0, 1.0, 1.0, 0.0, 0.0)]).unwrap_err();
        assert!(
            e.to_string().contains("log row 1") && e.to_string().contains("propensity 0"),
            "{e}"
        );
        let e = validate(&[row(1.5, 1.0, 1.0, 0.0, 0.0)]).unwrap_err();
        assert!(e.to_string().contains("(0, 1]"), "{e}");
        let e = validate(&[row(0.5, f64::NAN, 1.0, 0.0, 0.0)]).unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
        assert!(validate(&[]).is_err());
    }

    #[test]
    fn intervals_cover_the_point_and_are_reproducible() {
        let rows: Vec<Logged> = (0..500)
            .map(|i| row(0.25, f64::from(i % 3 == 0), f64::from(i % 4 == 0), 0.3, 0.3))
            .collect();
        let s = OpeSettings::default();
        let a = estimate(&rows, &s).unwrap();
        assert_eq!(a, estimate(&rows, &s).unwrap());
        for e in &a.estimates {
            assert!(e.low <= e.value && e.value <= e.high, "{e:?}");
            // the direct method's rows are all 0.3: no spread to resample
            assert!(e.high > e.low || e.estimator == "dm", "{e:?}");
        }
    }
}
