//! The fitted CLV model as a whole ([`ClvModel`]: BG/NBD + Gamma-Gamma + the periods and data
//! it was fitted on + the model checks) and its artifact directory:
//!
//! ```text
//! <models>/clv/<version>/params.json   this struct, pretty JSON
//! <models>/clv/<version>/report.svg    charts (see `report.rs`)
//! <models>/clv/<version>/report.html   parameters, tables and the charts
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::bgnbd::{BgNbdFitter, FittedBgNbd};
use super::gamma_gamma::{FittedGammaGamma, GammaGammaFitter};
use super::rfm::{RfmTable, TransactionSource, Unit};
use super::value::{FrequencyRow, HoldoutRow, frequency_fit, holdout_comparison};
use crate::error::{Error, IoContext, Result};

/// Version of the `params.json` layout.
pub const FORMAT_VERSION: u32 = 1;

/// A fitted CLV model with its provenance and checks (the content of `params.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClvModel {
    pub format_version: u32,
    /// When the model was fitted (RFC 3339, UTC).
    pub created_at: String,
    /// Unit of recency, T, α and horizons.
    pub unit: Unit,
    /// Where the purchases came from (predict reuses it unless told otherwise).
    pub source: TransactionSource,
    /// First purchase day in the data (YYYY-MM-DD).
    pub first_day: String,
    /// Last day of the calibration period, inclusive.
    pub calibration_end: String,
    /// Last day of the holdout, inclusive, if there was one.
    pub holdout_end: Option<String>,
    /// Customers in the calibration period.
    pub customers: usize,
    /// Customers with at least one repeat purchase.
    pub repeat_buyers: usize,
    pub bgnbd: FittedBgNbd,
    /// The spend model; `None` when it could not be fitted (see `gamma_gamma_error`).
    pub gamma_gamma: Option<FittedGammaGamma>,
    pub gamma_gamma_error: Option<String>,
    /// Pearson correlation of frequency and monetary among repeat buyers (Gamma-Gamma assumes
    /// independence; values far from 0 are a warning sign).
    pub frequency_monetary_correlation: Option<f64>,
    /// Customers per calibration frequency, actual vs model.
    pub frequency_fit: Vec<FrequencyRow>,
    /// Holdout purchases per calibration frequency, actual vs predicted.
    pub holdout: Option<Vec<HoldoutRow>>,
    /// Holdout length in units.
    pub holdout_length: f64,
}

/// Settings of a whole CLV fit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClvFitter {
    pub bgnbd: BgNbdFitter,
    pub gamma_gamma: GammaGammaFitter,
}

impl ClvFitter {
    /// Fits BG/NBD (required) and Gamma-Gamma (best effort) to an RFM summary.
    pub fn fit(&self, rfm: &RfmTable, source: TransactionSource) -> Result<ClvModel> {
        let bgnbd = self.bgnbd.fit(&rfm.frequency, &rfm.recency, &rfm.t)?;
        let (gamma_gamma, gamma_gamma_error) =
            match self.gamma_gamma.fit(&rfm.frequency, &rfm.monetary) {
                Ok(g) => (Some(g), None),
                Err(e) => {
                    tracing::warn!(error = %e, "no spend model: CLV will be empty");
                    (None, Some(e.to_string()))
                }
            };
        let frequency_fit = frequency_fit(&bgnbd.params, &rfm.frequency, &rfm.t);
        let holdout = holdout_comparison(&bgnbd.params, rfm);
        Ok(ClvModel {
            format_version: FORMAT_VERSION,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            unit: rfm.unit,
            source,
            first_day: rfm.first_day.to_string(),
            calibration_end: rfm.calibration_end.to_string(),
            holdout_end: rfm.holdout_end.map(|d| d.to_string()),
            customers: rfm.customer_id.len(),
            repeat_buyers: rfm.frequency.iter().filter(|x| **x > 0.0).count(),
            bgnbd,
            gamma_gamma,
            gamma_gamma_error,
            frequency_monetary_correlation: correlation(rfm),
            frequency_fit,
            holdout,
            holdout_length: rfm.holdout_length(),
        })
    }
}

fn correlation(rfm: &RfmTable) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = rfm
        .frequency
        .iter()
        .zip(&rfm.monetary)
        .filter(|(x, m)| **x > 0.0 && **m > 0.0)
        .map(|(x, m)| (*x, *m))
        .collect();
    let n = pairs.len() as f64;
    if n < 3.0 {
        return None;
    }
    let (mx, mm) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - mm)).sum();
    let vx: f64 = pairs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let vm: f64 = pairs.iter().map(|p| (p.1 - mm).powi(2)).sum();
    let r = cov / (vx * vm).sqrt();
    r.is_finite().then_some(r)
}

impl ClvModel {
    /// Writes `params.json` into `dir` (created if needed), atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).at(dir)?;
        let path = dir.join("params.json");
        let text = serde_json::to_string_pretty(self)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).at(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            tmp.as_file().set_permissions(perms).at(&path)?;
        }
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }

    /// Reads `params.json` from a model directory (or the file itself).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = if dir.is_dir() {
            dir.join("params.json")
        } else {
            dir.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).at(&path)?;
        let model: Self = serde_json::from_str(&text).map_err(|e| Error::Contract {
            path: path.clone(),
            message: format!("not a CLV model: {e}"),
        })?;
        if model.format_version != FORMAT_VERSION {
            return Err(Error::Contract {
                path,
                message: format!(
                    "params.json format version {} is not supported (expected {FORMAT_VERSION})",
                    model.format_version
                ),
            });
        }
        Ok(model)
    }

    /// A short plain-text summary: parameters, log-likelihood, holdout comparison.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let p = &self.bgnbd.params;
        let d = &self.bgnbd.diagnostics;
        let _ = writeln!(
            s,
            "customers {} (repeat buyers {}), calibration {} .. {}{}, unit {}",
            self.customers,
            self.repeat_buyers,
            self.first_day,
            self.calibration_end,
            self.holdout_end
                .as_ref()
                .map_or(String::new(), |h| format!(", holdout .. {h}")),
            self.unit
        );
        let _ = writeln!(
            s,
            "BG/NBD       r {:.4}  alpha {:.4}  a {:.4}  b {:.4}   log-lik {:.2}  ({}, {} iters, |grad| {:.1e}, {}, {:.2}s)",
            p.r,
            p.alpha,
            p.a,
            p.b,
            d.log_likelihood,
            d.method,
            d.iterations,
            d.gradient_norm,
            d.termination,
            d.seconds
        );
        for note in &d.notes {
            let _ = writeln!(s, "  note: {note}");
        }
        match &self.gamma_gamma {
            Some(g) => {
                let (gp, gd) = (&g.params, &g.diagnostics);
                let _ = writeln!(
                    s,
                    "Gamma-Gamma  p {:.4}  q {:.4}  gamma {:.4}   log-lik {:.2}  (mean spend {}, corr(freq, monetary) {})",
                    gp.p,
                    gp.q,
                    gp.gamma,
                    gd.log_likelihood,
                    gp.population_mean()
                        .map_or("inf".into(), |m| format!("{m:.2}")),
                    self.frequency_monetary_correlation
                        .map_or("n/a".into(), |c| format!("{c:.3}"))
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "Gamma-Gamma  not fitted: {}",
                    self.gamma_gamma_error.as_deref().unwrap_or("?")
                );
            }
        }
        if let Some(rows) = &self.holdout {
            let _ = writeln!(
                s,
                "holdout ({:.1} {}): mean purchases per customer",
                self.holdout_length, self.unit
            );
            let _ = writeln!(
                s,
                "  {:>6} {:>9} {:>9} {:>9}",
                "freq", "customers", "actual", "predicted"
            );
            for r in rows {
                let _ = writeln!(
                    s,
                    "  {:>6} {:>9} {:>9.3} {:>9.3}",
                    r.bucket, r.customers, r.actual, r.predicted
                );
            }
        }
        s
    }
}
