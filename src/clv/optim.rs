//! Maximum-likelihood plumbing shared by the BG/NBD and Gamma-Gamma fits: an objective over
//! log-parameters minimised with argmin's L-BFGS (analytic gradient, Moré-Thuente line
//! search), a Nelder-Mead fallback when the line search fails, convergence diagnostics, and a
//! chunked parallel sum so a fit over a million customers uses every core.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::neldermead::NelderMead;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A smooth objective over unconstrained parameters (the logs of the model parameters).
pub(crate) trait Objective: Sync {
    /// The objective (penalised mean negative log-likelihood) and its gradient; `None` when
    /// it is not finite at `theta`.
    fn value_grad(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)>;
}

/// How a maximum-likelihood fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitDiagnostics {
    /// The optimiser that produced the estimate (`L-BFGS`, or `Nelder-Mead` as fallback).
    pub method: String,
    /// Optimiser iterations.
    pub iterations: u64,
    /// Objective evaluations (cost and gradient counted once each).
    pub evaluations: u64,
    /// Total (unpenalised) log-likelihood at the estimate.
    pub log_likelihood: f64,
    /// Objective at the estimate: mean negative log-likelihood plus the L2 penalty.
    pub objective: f64,
    /// Euclidean norm of the objective's gradient w.r.t. the log-parameters at the estimate.
    pub gradient_norm: f64,
    /// Why the optimiser stopped.
    pub termination: String,
    /// The gradient norm is tiny (< 1e-4), or the optimiser reported convergence and it is
    /// small (< 1e-3).
    pub converged: bool,
    /// Warnings about the estimate (e.g. a parameter that ran off to 0 or infinity).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Customers the likelihood was summed over.
    pub customers: usize,
    /// Wall-clock seconds of the fit.
    pub seconds: f64,
}

/// Optimiser settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptimOptions {
    pub max_iters: u64,
}

pub(crate) struct Minimum {
    pub theta: Vec<f64>,
    pub value: f64,
    pub grad_norm: f64,
    pub method: String,
    pub iterations: u64,
    pub evaluations: u64,
    pub termination: String,
    pub converged: bool,
    pub started: Instant,
}

/// An objective value and gradient, `None` where not finite.
type Evaluation = Option<(f64, Vec<f64>)>;

/// Evaluates the objective, caching the last (theta, value, gradient) since L-BFGS asks for
/// the cost and the gradient at the same point, and counting evaluations.
struct Evaluator<'a, O> {
    objective: &'a O,
    cache: Mutex<Option<(Vec<f64>, Evaluation)>>,
    evaluations: AtomicU64,
}

impl<O: Objective> Evaluator<'_, O> {
    fn eval(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some((t, r)) = cache.as_ref()
            && t.as_slice() == theta
        {
            return r.clone();
        }
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let r = self.objective.value_grad(theta);
        *cache = Some((theta.to_vec(), r.clone()));
        r
    }
}

/// The argmin problem: a handle on the shared evaluator.
struct Problem<'e, 'a, O>(&'e Evaluator<'a, O>);

impl<O: Objective> CostFunction for Problem<'_, '_, O> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        // Nelder-Mead copes with +inf; the L-BFGS line search treats it as "step too long".
        Ok(self.0.eval(p).map_or(f64::INFINITY, |(v, _)| v))
    }
}

impl<O: Objective> Gradient for Problem<'_, '_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        match self.0.eval(p) {
            Some((_, g)) => Ok(g),
            None => Err(argmin::core::Error::msg("objective is not finite")),
        }
    }
}

fn norm(g: &[f64]) -> f64 {
    g.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn reason_text(r: Option<&TerminationReason>) -> String {
    r.map_or_else(|| "not terminated".to_string(), |r| r.text().to_string())
}

/// Minimises `objective` from `theta0`: L-BFGS first, Nelder-Mead if L-BFGS fails or ends at
/// a point with a large gradient.
pub(crate) fn minimize<O: Objective>(
    objective: &O,
    theta0: Vec<f64>,
    opts: OptimOptions,
) -> Result<Minimum> {
    let started = Instant::now();
    let Some((v0, _)) = objective.value_grad(&theta0) else {
        return Err(Error::Data(
            "the log-likelihood is not finite at the starting point".into(),
        ));
    };
    let evaluator = Evaluator {
        objective,
        cache: Mutex::new(None),
        evaluations: AtomicU64::new(0),
    };
    let lbfgs_note;
    let line = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(line, 10)
        .with_tolerance_grad(1e-9)
        .and_then(|s| s.with_tolerance_cost(1e-14))
        .map_err(|e| Error::Data(format!("optimiser setup: {e}")))?;
    match Executor::new(Problem(&evaluator), solver)
        .configure(|s| s.param(theta0.clone()).max_iters(opts.max_iters))
        .run()
    {
        Ok(res) => {
            let st = res.state();
            if let Some(theta) = st.get_best_param().cloned()
                && let Some((value, g)) = objective.value_grad(&theta)
            {
                let grad_norm = norm(&g);
                let reason = st.get_termination_reason();
                let converged =
                    matches!(reason, Some(TerminationReason::SolverConverged)) && grad_norm < 1e-3;
                if !needs_fallback(grad_norm) {
                    return Ok(Minimum {
                        theta,
                        value,
                        grad_norm,
                        method: "L-BFGS".into(),
                        iterations: st.get_iter(),
                        evaluations: evaluator.evaluations.load(Ordering::Relaxed),
                        termination: reason_text(reason),
                        converged,
                        started,
                    });
                }
                lbfgs_note = format!("L-BFGS stopped with gradient norm {grad_norm:.3e}");
            } else {
                lbfgs_note = "L-BFGS ended without a finite estimate".to_string();
            }
        }
        Err(e) => lbfgs_note = format!("L-BFGS failed: {e}"),
    }
    tracing::debug!(%lbfgs_note, "falling back to Nelder-Mead");
    let mut simplex = vec![theta0.clone()];
    for i in 0..theta0.len() {
        let mut p = theta0.clone();
        p[i] += 0.5;
        simplex.push(p);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-12)
        .map_err(|e| Error::Data(format!("optimiser setup: {e}")))?;
    let res = Executor::new(Problem(&evaluator), solver)
        .configure(|s| s.max_iters(opts.max_iters * 20))
        .run()
        .map_err(|e| {
            Error::Data(format!(
                "the fit did not converge: {lbfgs_note}; Nelder-Mead failed: {e}"
            ))
        })?;
    let st = res.state();
    let theta = st
        .get_best_param()
        .cloned()
        .ok_or_else(|| Error::Data(format!("the fit did not converge: {lbfgs_note}")))?;
    let Some((value, g)) = objective.value_grad(&theta) else {
        return Err(Error::Data(format!(
            "the fit did not converge (start objective {v0}): {lbfgs_note}"
        )));
    };
    let grad_norm = norm(&g);
    let reason = st.get_termination_reason();
    Ok(Minimum {
        theta,
        value,
        grad_norm,
        method: format!("Nelder-Mead ({lbfgs_note})"),
        iterations: st.get_iter(),
        evaluations: evaluator.evaluations.load(Ordering::Relaxed),
        termination: reason_text(reason),
        converged: is_converged(reason, grad_norm),
        started,
    })
}

/// Converged: the optimiser says so and the gradient is small, or the gradient is tiny
/// whatever the optimiser says (a line search that cannot improve further at an optimum on
/// the boundary of the parameter space reports a failure).
fn is_converged(reason: Option<&TerminationReason>, grad_norm: f64) -> bool {
    grad_norm < 1e-4
        || matches!(reason, Some(TerminationReason::SolverConverged)) && grad_norm < 1e-3
}

/// L-BFGS ends at a point whose gradient is clearly not zero: try the derivative-free method.
fn needs_fallback(grad_norm: f64) -> bool {
    !grad_norm.is_finite() || grad_norm > 1e-2
}

impl Minimum {
    /// Diagnostics for a fit over `customers` whose total log-likelihood is `log_likelihood`.
    pub(crate) fn diagnostics(&self, log_likelihood: f64, customers: usize) -> FitDiagnostics {
        FitDiagnostics {
            method: self.method.clone(),
            iterations: self.iterations,
            evaluations: self.evaluations,
            log_likelihood,
            objective: self.value,
            gradient_norm: self.grad_norm,
            termination: self.termination.clone(),
            converged: self.converged,
            notes: Vec::new(),
            customers,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Sums `f(range, grad)` over `0..n` in chunks, in parallel when `n` is large: `f` returns the
/// chunk's value and adds the chunk's gradient into `grad` (of length `dim`).
pub(crate) fn par_sum<F>(n: usize, dim: usize, f: F) -> (f64, Vec<f64>)
where
    F: Fn(Range<usize>, &mut [f64]) -> f64 + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(16);
    if n < 50_000 || threads == 1 {
        let mut g = vec![0.0; dim];
        let v = f(0..n, &mut g);
        return (v, g);
    }
    let chunk = n.div_ceil(threads);
    let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let f = &f;
                s.spawn(move || {
                    let mut g = vec![0.0; dim];
                    let lo = (i * chunk).min(n);
                    let hi = ((i + 1) * chunk).min(n);
                    let v = f(lo..hi, &mut g);
                    (v, g)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let mut g = vec![0.0; dim];
    let mut v = 0.0;
    for (pv, pg) in parts {
        v += pv;
        for (a, b) in g.iter_mut().zip(pg) {
            *a += b;
        }
    }
    (v, g)
}

/// Groups non-negative whole frequencies: returns the distinct values and each customer's index
/// into them, so terms that depend on the frequency alone (ln Γ, ψ) are computed once per
/// distinct frequency instead of once per customer.
pub(crate) fn group_frequencies(frequency: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let mut distinct: Vec<u64> = frequency.iter().map(|&x| x as u64).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let index = frequency
        .iter()
        .map(|&x| distinct.binary_search(&(x as u64)).expect("present") as u32)
        .collect();
    (distinct.into_iter().map(|x| x as f64).collect(), index)
}

/// `ln(e^a + e^b)` without overflow.
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quadratic;
    impl Objective for Quadratic {
        fn value_grad(&self, t: &[f64]) -> Option<(f64, Vec<f64>)> {
            Some((
                (t[0] - 1.0).powi(2) + 3.0 * (t[1] + 2.0).powi(2),
                vec![2.0 * (t[0] - 1.0), 6.0 * (t[1] + 2.0)],
            ))
        }
    }

    #[test]
    fn minimises_a_quadratic() {
        let m = minimize(&Quadratic, vec![0.0, 0.0], OptimOptions { max_iters: 100 }).unwrap();
        assert!((m.theta[0] - 1.0).abs() < 1e-6 && (m.theta[1] + 2.0).abs() < 1e-6);
        assert!(m.converged, "{}", m.termination);
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_add_exp(-5.0, f64::NEG_INFINITY), -5.0);
    }

    #[test]
    fn par_sum_matches_serial() {
        let n = 120_000;
        let (v, g) = par_sum(n, 1, |r, g| {
            let mut s = 0.0;
            for i in r {
                s += i as f64;
                g[0] += 1.0;
            }
            s
        });
        assert_eq!(v, (n * (n - 1) / 2) as f64);
        assert_eq!(g[0], n as f64);
    }
}
