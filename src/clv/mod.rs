//! Customer value for non-contractual retail: the BG/NBD purchase model (Fader, Hardie &
//! Lee 2005) with the Gamma-Gamma spend model, P(alive) and customer lifetime value.
//!
//! The flow, and where each step lives:
//!
//! 1. [`rfm_summary`] (`rfm.rs`): per-customer frequency / recency / T / monetary over a
//!    calibration period, plus holdout purchases, computed in DataFusion from a data
//!    directory's purchase events or any CSV/Parquet transactions file;
//! 2. [`BgNbdFitter::fit`] (`bgnbd.rs`) and [`GammaGammaFitter::fit`] (`gamma_gamma.rs`):
//!    maximum likelihood in log space over log-parameters (argmin L-BFGS, `optim.rs`), with
//!    [`FitDiagnostics`];
//! 3. predictions on [`FittedBgNbd`] / [`BgNbdParams`] (`expectations.rs`): `p_alive`,
//!    `expected_purchases`, `expected_frequency`, `prob_frequency`;
//! 4. `value.rs`: [`clv`], [`predict_table`] (one Arrow row per customer), the holdout and
//!    frequency checks;
//! 5. [`ClvFitter`] / [`ClvModel`] (`artifact.rs`): the whole fit as `params.json`, and
//!    [`write_report`] (`report.rs`): SVG/HTML charts;
//! 6. `features.rs`: the same values as model inputs ([`ClvInputs`], [`Rfm`],
//!    [`PurchaseDays`]), shared by training sets, the online state and batch scoring.
//!
//! `simulate.rs` generates data from both models' generative processes (seeded), for the
//! recovery tests and the benchmark.
//!
//! ```no_run
//! # async fn demo() -> baton::Result<()> {
//! use baton::clv::{ClvFitter, ClvOptions, RfmOptions, TransactionSource, Unit, predict_table};
//! let source = TransactionSource::Events { data_dir: "data/sim".into() };
//! let rfm = baton::clv::rfm_summary(&source, &RfmOptions { unit: Unit::Weeks, ..Default::default() }).await?;
//! let model = ClvFitter::default().fit(&rfm, source)?;
//! let gg = model.gamma_gamma.as_ref().map(|g| &g.params);
//! let table = predict_table(&model.bgnbd.params, gg, &rfm, &ClvOptions::one_year(rfm.unit))?;
//! # Ok(()) }
//! ```

mod artifact;
mod bgnbd;
mod expectations;
mod features;
mod gamma_gamma;
mod optim;
mod report;
mod rfm;
mod simulate;
mod value;

pub use artifact::{ClvFitter, ClvModel, FORMAT_VERSION};
pub use bgnbd::{BgNbdFitter, BgNbdParams, FittedBgNbd, validate_rfm};
pub use features::{CLV_COLUMNS, ClvInputs, PurchaseDays, Rfm};
pub use gamma_gamma::{FittedGammaGamma, GammaGammaFitter, GammaGammaParams};
pub use optim::FitDiagnostics;
pub use report::{render_svg, write_report};
pub use rfm::{RfmOptions, RfmTable, TransactionSource, Unit, day_date, day_number, rfm_summary};
pub use simulate::{SimulatedRfm, simulate_bgnbd, simulate_spend};
pub use value::{
    BUCKETS, ClvOptions, FrequencyRow, HoldoutRow, clv, discounted_purchases,
    expected_purchases_column, frequency_fit, holdout_comparison, predict_table,
};
