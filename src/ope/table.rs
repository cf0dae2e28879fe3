//! The policy table: each policy of [`super::policies`] run in the closed loop over the
//! same simulated customers, with realised value per customer, response rate, churn rate
//! and contact volume; how much of the oracle's gain over random a policy recovers; and
//! the comparison of off-policy estimates with the value a policy realised.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bayes::BayesPolicy;
use super::estimators::OpeReport;
use super::policies::{
    BatonPolicy, LimitedOraclePolicy, OraclePolicy, RandomPolicy, Retrained, RulesPolicy,
};
use crate::config::Config;
use crate::decide::Engine;
use crate::error::{Error, Result};
use crate::features::ResponseLabel;
use crate::sim::SimParams;
use crate::sim::closed_loop::{LoopTotals, run_closed_loop};

/// The oracle held to the engine's contact policy ([`LimitedOraclePolicy`]).
pub const ORACLE_LIMITED: &str = "oracle-limited";
/// The oracle that learns the customers' hidden response traits from their responses
/// ([`BayesPolicy`]): the ceiling of any policy that learns from the data.
pub const BAYES: &str = "bayes";
/// [`BAYES`] held to the engine's contact policy: the ceiling of any policy that learns
/// from the data and keeps those rules.
pub const BAYES_LIMITED: &str = "bayes-limited";
/// The policies of the policy table.
pub const POLICIES: [&str; 7] = [
    "random",
    "rules",
    "baton",
    BAYES_LIMITED,
    ORACLE_LIMITED,
    BAYES,
    "oracle",
];

/// Whether `policy` ignores the engine's contact policy (its recovery within the limits
/// would compare unlike with unlike).
fn ignores_contact_policy(policy: &str) -> bool {
    matches!(policy, "random" | "oracle" | BAYES)
}

/// The baton policy without the customers' pre-run history: the twin of an off-policy
/// estimate on a simulated log (which lacks that history).
pub const BATON_COLD: &str = "baton-cold";

/// One policy's closed-loop result (the row of `DATA/reports/policies.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRow {
    pub policy: String,
    pub customers: u64,
    pub days: u32,
    pub seed: u64,
    pub value_per_customer: f64,
    /// Realised value per decision point (comparable with off-policy estimates).
    pub value_per_decision: f64,
    pub response_rate: f64,
    pub churn_rate: f64,
    pub contacts_per_customer: f64,
    pub revenue_per_customer: f64,
    pub totals: LoopTotals,
    /// The baton policy's scheduled retrainings in the loop (none unless configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrained: Vec<Retrained>,
}

/// Runs `policy` (one of [`POLICIES`]) in the closed loop. `engine` is needed for `baton`,
/// `bayes`, `bayes-limited` and `oracle-limited` (its contact policy, and its memory).
pub fn run_policy(
    policy: &str,
    config: &Config,
    params: &SimParams,
    engine: Option<Arc<Engine>>,
    label: ResponseLabel,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PolicyRow> {
    let totals = match policy {
        "random" => run_closed_loop(config, params, &RandomPolicy, label, progress)?,
        "rules" => run_closed_loop(config, params, &RulesPolicy::new(config), label, progress)?,
        "oracle" => run_closed_loop(
            config,
            params,
            &OraclePolicy::new(config, label),
            label,
            progress,
        )?,
        "baton" => {
            let engine = engine.ok_or_else(|| {
                Error::Invalid("the baton policy needs trained models (baton train --task response --promote champion)".into())
            })?;
            return run_baton(config, params, BatonPolicy::new(engine), label, progress);
        }
        ORACLE_LIMITED => {
            let engine = engine.ok_or_else(|| {
                Error::Invalid("the oracle-limited policy needs the engine's models".into())
            })?;
            run_closed_loop(
                config,
                params,
                &LimitedOraclePolicy::new(engine, config, label),
                label,
                progress,
            )?
        }
        BAYES | BAYES_LIMITED => {
            let engine = engine.ok_or_else(|| {
                Error::Invalid(format!("the {policy} policy needs the engine's models"))
            })?;
            let b = if policy == BAYES {
                BayesPolicy::new(engine, config, label)
            } else {
                BayesPolicy::limited(engine, config, label)
            };
            run_closed_loop(config, params, &b, label, progress)?
        }
        BATON_COLD => {
            let engine = engine
                .ok_or_else(|| Error::Invalid("the baton policy needs trained models".into()))?;
            run_closed_loop(
                config,
                params,
                &BatonPolicy::without_history(engine),
                label,
                progress,
            )?
        }
        other => {
            return Err(Error::Invalid(format!(
                "unknown policy `{other}` (one of {}, {BATON_COLD})",
                POLICIES.join(", ")
            )));
        }
    };
    Ok(row(policy, params, totals))
}

/// Runs the baton policy `b` (e.g. with scheduled retraining) in the closed loop.
pub fn run_baton(
    config: &Config,
    params: &SimParams,
    b: BatonPolicy,
    label: ResponseLabel,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PolicyRow> {
    let totals = run_closed_loop(config, params, &b, label, progress)?;
    Ok(PolicyRow {
        retrained: b.retrained(),
        ..row("baton", params, totals)
    })
}

fn row(policy: &str, params: &SimParams, totals: LoopTotals) -> PolicyRow {
    PolicyRow {
        policy: policy.to_string(),
        customers: totals.customers,
        days: params.days,
        seed: params.seed,
        value_per_customer: totals.value_per_customer(),
        value_per_decision: totals.value_per_point(),
        response_rate: totals.response_rate(),
        churn_rate: totals.churn_rate(),
        contacts_per_customer: totals.contacts_per_customer(),
        revenue_per_customer: totals.revenue_per_customer(),
        totals,
        retrained: Vec::new(),
    }
}

/// `(value(policy) − value(random)) / (value(oracle) − value(random))`, when all three
/// are in `rows` and the oracle gains over random.
pub fn recovery(rows: &[PolicyRow], policy: &str) -> Option<f64> {
    recovery_of(rows, policy, "oracle")
}

/// As [`recovery`], against the oracle held to the same contact policy as the engine
/// ([`ORACLE_LIMITED`]).
pub fn recovery_within_limits(rows: &[PolicyRow], policy: &str) -> Option<f64> {
    recovery_of(rows, policy, ORACLE_LIMITED)
}

fn recovery_of(rows: &[PolicyRow], policy: &str, oracle: &str) -> Option<f64> {
    let v = |p: &str| {
        rows.iter()
            .find(|r| r.policy == p)
            .map(|r| r.value_per_customer)
    };
    let (x, random, oracle) = (v(policy)?, v("random")?, v(oracle)?);
    (oracle > random).then(|| (x - random) / (oracle - random))
}

/// The table as text.
pub fn format_table(rows: &[PolicyRow]) -> String {
    let mut s = format!(
        "{:<14} {:>9} {:>10} {:>10} {:>9} {:>8} {:>10} {:>9} {:>14}\n",
        "policy",
        "customers",
        "value/cust",
        "value/dec",
        "response",
        "churn",
        "contacts/c",
        "recovery",
        "within limits"
    );
    let pct = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.0}%", 100.0 * x));
    for r in rows {
        let (rec, within) = match r.policy.as_str() {
            "random" | "oracle" => ("-".to_string(), "-".to_string()),
            p if ignores_contact_policy(p) || p == ORACLE_LIMITED => {
                (pct(recovery(rows, p)), "-".to_string())
            }
            p => (pct(recovery(rows, p)), pct(recovery_within_limits(rows, p))),
        };
        s.push_str(&format!(
            "{:<14} {:>9} {:>10.3} {:>10.4} {:>8.2}% {:>7.2}% {:>10.2} {:>9} {:>14}\n",
            r.policy,
            r.customers,
            r.value_per_customer,
            r.value_per_decision,
            100.0 * r.response_rate,
            100.0 * r.churn_rate,
            r.contacts_per_customer,
            rec,
            within
        ));
    }
    s
}

/// Writes the rows as a JSON array, atomically.
pub fn write_rows(path: &Path, rows: &[PolicyRow]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(rows)?).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// One estimator's off-policy estimate (per customer) next to the value per customer the
/// policy realised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthComparison {
    pub estimator: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub realised: f64,
    /// (estimate − realised) / |realised|.
    pub relative_error: f64,
}

/// Compares every estimate of `report` with the value per customer `row` realised. An
/// estimate per logged decision becomes one per customer at the log's rate of
/// `decisions_per_customer` (the contextual-bandit view: the policy does not change when
/// decisions come up); that assumption's error is part of what this measures.
pub fn compare_with_truth(
    report: &OpeReport,
    decisions_per_customer: f64,
    row: &PolicyRow,
) -> Vec<TruthComparison> {
    let realised = row.value_per_customer;
    let k = decisions_per_customer;
    report
        .estimates
        .iter()
        .map(|e| TruthComparison {
            estimator: e.estimator.clone(),
            estimate: e.value * k,
            low: e.low * k,
            high: e.high * k,
            realised,
            relative_error: (e.value * k - realised) / realised.abs().max(1e-12),
        })
        .collect()
}
