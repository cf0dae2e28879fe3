//! Policy evaluation before a policy goes live, two ways:
//!
//! - **off-policy** ([`estimators`]): IPS, SNIPS, DM, DR and switch-DR estimates of a
//!   target policy's value from logged decisions with true propensities — Baton's own
//!   decision log replayed through the engine ([`replay`], [`evaluate_log`]) or a logged
//!   bandit table imported from another system ([`bandit`]), from which a policy can also
//!   be learned (optionally inverse-propensity weighted) and evaluated;
//! - **closed loop** ([`table`], [`policies`]): random, rules, Baton and oracle policies
//!   run day by day against the simulator's hidden truth
//!   ([`crate::sim::closed_loop`]), and the off-policy estimates compared with what the
//!   policy realised.
//!
//! Nothing here does HTTP; the CLI is a thin layer over these functions.

pub mod bandit;
pub mod bayes;
pub mod estimators;
pub mod policies;
pub mod replay;
pub mod table;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;

pub use estimators::{ESTIMATORS, Estimate, Logged, OpeReport, OpeSettings, estimate};
pub use table::{
    BATON_COLD, BAYES, BAYES_LIMITED, ORACLE_LIMITED, POLICIES, PolicyRow, TruthComparison,
    compare_with_truth, recovery, recovery_within_limits, run_baton, run_policy,
};

use crate::config::Config;
use crate::decide::Engine;
use crate::error::{Error, Result};
use crate::features::{History, ResponseLabel};
use crate::store::DataDir;

/// A decision log with what its replay needs.
pub struct LoadedLog {
    pub decisions: Vec<replay::LoggedDecision>,
    /// The decisions that got the response.
    pub rewarded: HashSet<String>,
    pub history: History,
}

/// Reads the decision log at `log` (see [`replay::LogFiles::find`]) and the history of
/// `data` up to its last decision.
pub async fn load_log(
    log: &Path,
    data: &DataDir,
    config: &Config,
    label: ResponseLabel,
) -> Result<LoadedLog> {
    let files = replay::LogFiles::find(log, data)?;
    let decisions = replay::read_decisions(&files.decisions, config)?;
    if decisions.is_empty() {
        return Err(Error::Invalid(format!(
            "the decision log at {} has no decisions",
            log.display()
        )));
    }
    let rewarded = replay::responded(&files.outcomes, label)?;
    let until = decisions.iter().map(|d| d.ts).max().unwrap_or(0) + 1;
    let ctx = data.session().await?;
    let history = History::load_until(&ctx, until).await?;
    Ok(LoadedLog {
        decisions,
        rewarded,
        history,
    })
}

impl LoadedLog {
    /// Logged decisions per customer of the data directory (customers table, else the
    /// customers with events).
    pub fn decisions_per_customer(&self) -> f64 {
        let n = if self.history.profiles.is_empty() {
            self.history.events.len()
        } else {
            self.history.profiles.len()
        };
        self.decisions.len() as f64 / n.max(1) as f64
    }
}

/// Off-policy estimates on a decision log, with the log's rate of decisions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEstimate {
    pub report: OpeReport,
    pub decisions_per_customer: f64,
}

/// Estimates `engine`'s value per decision on the decision log at `log`, replaying the
/// events of `data`.
pub async fn evaluate_log(
    log: &Path,
    data: &DataDir,
    config: &Config,
    engine: &Engine,
    label: ResponseLabel,
    settings: &OpeSettings,
) -> Result<LogEstimate> {
    let l = load_log(log, data, config, label).await?;
    let rows = replay::target_rows(engine, config, &l.decisions, &l.rewarded, &l.history)?;
    Ok(LogEstimate {
        report: estimate(&rows, settings)?,
        decisions_per_customer: l.decisions_per_customer(),
    })
}
