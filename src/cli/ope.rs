//! `baton simulate --policy`, `baton ope` and `baton import bandit-log`: thin layers over
//! [`crate::ope`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;

use super::features::ResponseArg;
use crate::config::Config;
use crate::decide::{Engine, Exploration, load_engine};
use crate::features::{FeatureSet, ResponseLabel};
use crate::ope::bandit::{self, Mapping};
use crate::ope::{self, OpeReport, OpeSettings, POLICIES, PolicyRow};
use crate::sim::SimParams;
use crate::store::{DataDir, read_parquet, write_parquet_atomic};

pub fn label(r: ResponseArg) -> ResponseLabel {
    match r {
        ResponseArg::Click => ResponseLabel::Click,
        ResponseArg::Conversion => ResponseLabel::Conversion,
    }
}

/// Loads the engine of the `alias` models; `explore = false` turns exploration off.
pub fn engine(
    config: &Config,
    models: &Path,
    alias: &str,
    explore: bool,
) -> anyhow::Result<Arc<Engine>> {
    let mut config = config.clone();
    if !explore {
        config.decide.exploration = Exploration::None;
    }
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions)?);
    Ok(Arc::new(load_engine(&config, set, models, alias)?))
}

/// Parses `--policy a,b` (or `all`) into policy names, checking each.
pub fn policy_list(s: &str) -> anyhow::Result<Vec<String>> {
    if s == "all" {
        return Ok(POLICIES.iter().map(|p| p.to_string()).collect());
    }
    s.split(',')
        .map(|p| {
            let p = p.trim();
            if POLICIES.contains(&p) || p == ope::BATON_COLD {
                Ok(p.to_string())
            } else {
                bail!(
                    "unknown policy `{p}` in --policy (one of {}, or all)",
                    POLICIES.join(", ")
                )
            }
        })
        .collect()
}

/// Runs each policy in the closed loop, prints the table and writes it to `table`. With
/// `retrain_every > 0` the baton policy retrains its response model on that schedule, on
/// `DATA/datasets/response.parquet` (when there) plus what it observed in the loop.
#[allow(clippy::too_many_arguments)]
pub fn run_policies(
    config: &Config,
    models: &Path,
    data: &Path,
    params: &SimParams,
    policies: &[String],
    alias: &str,
    response: ResponseLabel,
    table: &Path,
    retrain_every: u32,
    quiet: bool,
) -> anyhow::Result<Vec<PolicyRow>> {
    let engine = if policies.iter().any(|p| {
        p == "baton"
            || p == ope::BATON_COLD
            || p == ope::ORACLE_LIMITED
            || p == ope::BAYES
            || p == ope::BAYES_LIMITED
    }) {
        Some(engine(config, models, alias, true)?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for p in policies {
        let t = std::time::Instant::now();
        let bar = super::commands::progress_bar(quiet, params.customers, p);
        let progress = |d| bar.set_position(d);
        let row = match (&engine, p.as_str()) {
            (Some(e), "baton") if retrain_every > 0 => {
                let r = retraining(config, models, data, e, retrain_every, response)?;
                let b = ope::policies::BatonPolicy::new(Arc::clone(e)).with_retraining(r);
                ope::run_baton(config, params, b, response, &progress)?
            }
            _ => ope::run_policy(p, config, params, engine.clone(), response, &progress)?,
        };
        bar.finish_and_clear();
        tracing::info!(policy = %p, secs = t.elapsed().as_secs_f64(), "closed loop done");
        rows.push(row);
    }
    print!("{}", ope::table::format_table(&rows));
    for r in rows.iter().flat_map(|r| &r.retrained) {
        println!(
            "  retrained on day {}: {} ({} training-set rows + {} loop deliveries, {} responses), test AUC {} (oracle {}), {:.1}s",
            r.day,
            r.version,
            r.base_rows,
            r.loop_rows,
            r.loop_positives,
            r.auc.map_or("-".into(), |a| format!("{a:.4}")),
            r.oracle_auc.map_or("-".into(), |a| format!("{a:.4}")),
            r.fit_seconds
        );
    }
    ope::table::write_rows(table, &rows)?;
    println!("policy table: {}", table.display());
    Ok(rows)
}

/// Prints how much of the oracle's gain over random baton and rules recover, against the
/// oracle and against the oracle held to the same contact policy.
pub fn print_recovery(rows: &[PolicyRow], indent: &str) {
    for p in ["baton", "rules"] {
        let Some(r) = ope::recovery(rows, p) else {
            continue;
        };
        let within = ope::recovery_within_limits(rows, p)
            .map(|w| {
                format!(
                    ", {:.0}% of the gain of the oracle held to the same contact policy",
                    100.0 * w
                )
            })
            .unwrap_or_default();
        println!(
            "{indent}{p} recovers {:.0}% of the oracle's gain over random{within}",
            100.0 * r
        );
    }
    let (Some(bayes), Some(limited)) = (
        ope::recovery(rows, ope::BAYES),
        ope::recovery(rows, ope::BAYES_LIMITED),
    ) else {
        return;
    };
    println!(
        "{indent}the ceiling of learning from the data (the oracle learning each customer's hidden response traits from their responses): {:.0}% of the oracle's gain, {:.0}% held to the same contact policy",
        100.0 * bayes,
        100.0 * limited
    );
}

/// The retraining schedule of the baton policy: the learner settings of the response model
/// in use (its version's `config.json`) and the training set it learned from.
fn retraining(
    config: &Config,
    models: &Path,
    data: &Path,
    engine: &Engine,
    every_days: u32,
    response: ResponseLabel,
) -> anyhow::Result<ope::policies::Retraining> {
    use crate::features::Task;
    let slot = &engine.models().response;
    let dir = crate::models::Registry::open(models).version_dir(Task::Response, &slot.version);
    let path = dir.join("config.json");
    let train: crate::models::TrainConfig = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a training configuration", path.display()))?;
    let set_path = data.join("datasets").join("response.parquet");
    let base = if set_path.exists() {
        let t = crate::models::Table::load(&set_path, Task::Response, slot.scorer.schema(), None)?;
        Some(Arc::new(t))
    } else {
        println!(
            "no {}: the baton policy retrains on the loop's deliveries only",
            set_path.display()
        );
        None
    };
    Ok(ope::policies::Retraining {
        every_days,
        config: config.clone(),
        train,
        base,
        response,
    })
}

/// Arguments of `baton ope`.
#[derive(Debug, Args)]
pub struct OpeArgs {
    /// The decision log: a data directory (decisions/, outcomes/), a `baton log export`
    /// directory, a decisions Parquet file, or a bandit table (`baton import bandit-log`).
    #[arg(long, value_name = "PATH")]
    pub log: PathBuf,
    /// Target policy: the engine with the models of this alias or version.
    #[arg(long, default_value = "champion")]
    pub policy: String,
    /// What counts as the response that earns an action's value.
    #[arg(long, value_enum, default_value = "click")]
    pub response: ResponseArg,
    /// Evaluate the target with exploration off (its greedy choice).
    #[arg(long)]
    pub no_explore: bool,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Switch-DR weight threshold.
    #[arg(long, default_value_t = 25.0)]
    pub switch_tau: f64,
    /// Bandit table: learn a greedy policy on the first half and evaluate it on the second.
    #[arg(long)]
    pub learn: bool,
    /// With --learn: weight the reward model's rows by 1 / propensity.
    #[arg(long)]
    pub ipw: bool,
    /// With --learn: ridge penalty of the reward model.
    #[arg(long, default_value_t = 1.0)]
    pub ridge: f64,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Decision log: also write it as a bandit table (features at each decision as
    /// context, `action@channel` as the action) to learn from with `--learn`.
    #[arg(long, value_name = "FILE")]
    pub export_bandit: Option<PathBuf>,
}

/// Prints an OPE report.
pub fn print_report(r: &OpeReport) {
    println!(
        "{} decisions; logging policy's value {:.4} per decision; effective sample size {:.0} ({:.1}%); max weight {:.1}; target gives the logged action 0 on {:.1}% of rows",
        r.rows,
        r.logged_value,
        r.effective_sample_size,
        100.0 * r.effective_sample_size / r.rows.max(1) as f64,
        r.max_weight,
        100.0 * r.zero_weight_share
    );
    println!("{:<10} {:>10} {:>22}", "estimator", "value", "95% interval");
    for e in &r.estimates {
        println!(
            "{:<10} {:>10.4} {:>10.4} .. {:<10.4}",
            e.estimator, e.value, e.low, e.high
        );
    }
}

/// `baton ope`.
pub async fn run_ope(
    config: &Config,
    data: &Path,
    models: &Path,
    a: &OpeArgs,
) -> anyhow::Result<()> {
    let settings = OpeSettings {
        bootstrap: a.bootstrap,
        switch_tau: a.switch_tau,
        ..Default::default()
    };
    let json = if a.log.is_file()
        && read_parquet(&a.log).is_ok_and(|(s, _)| bandit::is_bandit_table(&s))
    {
        let (_, batches) = read_parquet(&a.log)?;
        let t = bandit::Table::from_batches(&batches)?;
        if !a.learn {
            bail!(
                "{} is a bandit table: evaluate a policy learned from it with --learn [--ipw]",
                a.log.display()
            );
        }
        let r = bandit::learn_and_evaluate(&t, a.ipw, a.ridge, &settings)?;
        println!(
            "learned a greedy policy over {} actions from {} rows ({}), evaluated on the next {} rows; picks: {}",
            r.actions.len(),
            r.train_rows,
            if r.ipw {
                "inverse-propensity weighted"
            } else {
                "unweighted"
            },
            r.test_rows,
            r.picks
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        print_report(&r.report);
        serde_json::to_value(&r)?
    } else {
        if a.learn {
            bail!(
                "--learn needs a bandit table (baton import bandit-log); {} is a decision log",
                a.log.display()
            );
        }
        let engine = engine(config, models, &a.policy, !a.no_explore)?;
        let dir = DataDir::open(data);
        let l = ope::load_log(&a.log, &dir, config, label(a.response)).await?;
        let rows =
            ope::replay::target_rows(&engine, config, &l.decisions, &l.rewarded, &l.history)?;
        let r = ope::estimate(&rows, &settings)?;
        println!(
            "{:.2} logged decisions per customer",
            l.decisions_per_customer()
        );
        if let Some(path) = &a.export_bandit {
            let b =
                ope::replay::bandit_table(&engine, config, &l.decisions, &l.rewarded, &l.history)?;
            write_parquet_atomic(path, b.schema(), std::slice::from_ref(&b))?;
            println!(
                "bandit table: {} ({} rows; learn from it with baton ope --log {} --learn --ipw)",
                path.display(),
                b.num_rows(),
                path.display()
            );
        }
        println!(
            "target: the engine with the `{}` models ({})",
            a.policy,
            engine
                .model_versions()
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        print_report(&r);
        serde_json::to_value(&r)?
    };
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("report: {}", out.display());
    }
    Ok(())
}

/// Arguments of `baton import bandit-log`.
#[derive(Debug, Args)]
pub struct BanditLogArgs {
    /// The CSV file (with a header line).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Column of the logged action.
    #[arg(long, default_value = "action")]
    pub action: String,
    /// Column of the reward.
    #[arg(long, default_value = "reward")]
    pub reward: String,
    /// Column of the logging policy's propensity of the logged action.
    #[arg(long, default_value = "propensity")]
    pub propensity: String,
    /// Column of the position (optional).
    #[arg(long)]
    pub position: Option<String>,
    /// Context feature columns, comma separated [default: every other column].
    #[arg(long, value_delimiter = ',')]
    pub context: Vec<String>,
    /// Output bandit table [default: DATA/bandit/<file stem>.parquet].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `baton import bandit-log`.
pub fn run_import_bandit(data: &Path, a: &BanditLogArgs) -> anyhow::Result<()> {
    let m = Mapping {
        action: a.action.clone(),
        reward: a.reward.clone(),
        propensity: a.propensity.clone(),
        position: a.position.clone(),
        context: a.context.clone(),
    };
    let batch = bandit::import_csv(&a.file, &m)?;
    let out = match &a.out {
        Some(p) => p.clone(),
        None => {
            let stem = a
                .file
                .file_stem()
                .map_or("log".into(), |s| s.to_string_lossy().to_string());
            data.join("bandit").join(format!("{stem}.parquet"))
        }
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_parquet_atomic(&out, batch.schema(), std::slice::from_ref(&batch))?;
    println!(
        "imported {} logged decisions with {} context columns into {} (evaluate: baton ope --log {} --learn --ipw)",
        batch.num_rows(),
        batch.num_columns() - 4,
        out.display(),
        out.display()
    );
    Ok(())
}
