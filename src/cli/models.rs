//! `baton train`, `baton evaluate` and `baton models list|compare|promote`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::features::TaskArg;
use crate::config::Config;
use crate::features::{FeatureSet, Task};
use crate::models::registry::VersionInfo;
use crate::models::report::render_html;
use crate::models::scorer::Fitted;
use crate::models::train::task_name;
use crate::models::{
    FeatureSchema, LearnerKind, Part, Registry, Table, TrainConfig, TrainEvent, evaluate, train,
};

/// Which learner to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LearnerArg {
    /// Logistic regression (linfa-logistic; multinomial for channel).
    Logistic,
    /// Gradient-boosted trees (perpetual).
    Gbdt,
    /// Multilayer perceptron (burn).
    Mlp,
}

impl From<LearnerArg> for LearnerKind {
    fn from(l: LearnerArg) -> Self {
        match l {
            LearnerArg::Logistic => LearnerKind::Logistic,
            LearnerArg::Gbdt => LearnerKind::Gbdt,
            LearnerArg::Mlp => LearnerKind::Mlp,
        }
    }
}

pub fn task_of(t: TaskArg) -> Task {
    match t {
        TaskArg::Churn => Task::Churn,
        TaskArg::Response => Task::Response,
        TaskArg::Channel => Task::Channel,
    }
}

/// Arguments of `baton train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task.
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// The learner.
    #[arg(long, value_enum, default_value = "gbdt")]
    pub learner: LearnerArg,
    /// Training set from `baton dataset` [default: DATA/datasets/<task>.parquet].
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Seed of everything random in training.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Learner settings as a JSON object, e.g. '{"gbdt":{"budget":0.5}}' (see the
    /// `config.json` of a trained version for every key).
    #[arg(long, value_name = "JSON")]
    pub settings: Option<String>,
    /// Point this alias (e.g. champion) at the new version.
    #[arg(long, value_name = "ALIAS")]
    pub promote: Option<String>,
}

/// Arguments of `baton evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// Version (v3) or alias (champion).
    #[arg(long, default_value = "champion")]
    pub model: String,
    /// Training set whose validation split to evaluate on [default: DATA/datasets/<task>.parquet].
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
}

/// `baton models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the versions of every task (or one) with their aliases and headline metrics.
    List {
        #[arg(long, value_enum)]
        task: Option<TaskArg>,
    },
    /// Compare the versions of a task: metrics side by side.
    Compare {
        #[arg(long, value_enum)]
        task: TaskArg,
    },
    /// Point an alias (default champion) at a version; the change is appended to
    /// models/<task>/aliases.log.
    Promote {
        #[arg(long, value_enum)]
        task: TaskArg,
        /// Version (v3) or an alias whose version to take.
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// The history of alias changes of a task.
    History {
        #[arg(long, value_enum)]
        task: TaskArg,
    },
}

fn dataset_path(data: &Path, task: Task, given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let p = given.clone().unwrap_or_else(|| {
        data.join("datasets")
            .join(format!("{}.parquet", task_name(task)))
    });
    if !p.is_file() {
        anyhow::bail!(
            "{}: no such training set (build one with `baton dataset --task {} --every 30d --out {}`)",
            p.display(),
            task_name(task),
            p.display()
        );
    }
    Ok(p)
}

/// The schema the current specs give a task.
pub fn expected_schema(config: &Config, task: Task) -> anyhow::Result<FeatureSchema> {
    let set = FeatureSet::compile(&config.features, &config.actions)?;
    Ok(FeatureSchema::for_task(task, &set, &config.actions))
}

/// Result of one `train` for the quickstart's summary.
pub struct TrainedVersion {
    pub version: String,
    pub info_line: String,
    pub report: PathBuf,
    pub oracle_ratio: Option<f64>,
    pub auc: Option<f64>,
}

fn spinner(quiet: bool, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_prefix(prefix);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Trains one model and saves it as a new version.
pub fn run_train(
    config: &Config,
    data: &Path,
    models: &Path,
    args: &TrainArgs,
    quiet: bool,
) -> anyhow::Result<TrainedVersion> {
    let task = task_of(args.task);
    let path = dataset_path(data, task, &args.dataset)?;
    let schema = expected_schema(config, task)?;
    let mut cfg = TrainConfig {
        learner: args.learner.into(),
        seed: args.seed,
        ..TrainConfig::default()
    };
    if let Some(json) = &args.settings {
        // Merge the given keys over the defaults, then read back as a typed config.
        let mut base = serde_json::to_value(&cfg)?;
        let patch: serde_json::Value =
            serde_json::from_str(json).context("--settings is not valid JSON")?;
        merge(&mut base, patch);
        cfg = serde_path_to_error::deserialize(base)
            .map_err(|e| anyhow::anyhow!("--settings: at `{}`: {}", e.path(), e.inner()))?;
        cfg.learner = args.learner.into();
    }
    let pb = spinner(
        quiet,
        format!("train {} {}", task_name(task), cfg.learner.as_str()),
    );
    pb.set_message("loading the training set");
    let table = Table::load(&path, task, &schema, None)?;
    let progress = |e: TrainEvent| match e {
        TrainEvent::Phase(p) => pb.set_message(p.to_string()),
        TrainEvent::Epoch(e, max, a, b) => pb.set_message(format!(
            "epoch {e}/{max} (at most): train loss {a:.4}, tune loss {b:.4}"
        )),
        TrainEvent::Booster(k, n) => pb.set_message(format!("booster {k}/{n} fitted")),
    };
    let trained = train(&table, &schema, &cfg, &progress)?;
    pb.finish_and_clear();
    let registry = Registry::open(models);
    let e = &trained.evaluation;
    let version = registry.save(&trained.model, &cfg, e, &|v| render_html(v, e))?;
    let report = registry.version_dir(task, &version).join("report.html");
    if let Some(alias) = &args.promote {
        registry.promote(task, &version, alias)?;
    }
    let penalty = match &trained.model.fitted {
        Fitted::Logistic(m) => m.alpha.map(|a| format!("  alpha {a}")),
        _ => None,
    };
    let info_line = format!(
        "{} {} {:<8}  AUC {}  oracle {}  ratio {}  {}{}  {} train / {} test rows, {:.1}s",
        task_name(task),
        version,
        e.learner.as_str(),
        f4(e.auc),
        f4(e.oracle_auc),
        f4(e.oracle_ratio),
        match (&e.binary, &e.multiclass) {
            (Some(b), _) => format!(
                "log loss {:.4}  ECE {:.4}  calib {}",
                b.log_loss, b.ece, e.calibration
            ),
            (_, Some(m)) => format!("top-1 {:.4}  log loss {:.4}", m.top1_accuracy, m.log_loss),
            _ => String::new(),
        },
        penalty.unwrap_or_default(),
        e.rows_train,
        e.rows_test,
        e.fit_seconds
    );
    Ok(TrainedVersion {
        version,
        info_line,
        report,
        oracle_ratio: e.oracle_ratio,
        auc: e.auc,
    })
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn f4(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into())
}

/// `baton evaluate`.
pub fn run_evaluate(
    config: &Config,
    data: &Path,
    models: &Path,
    args: &EvaluateArgs,
) -> anyhow::Result<()> {
    let task = task_of(args.task);
    let path = dataset_path(data, task, &args.dataset)?;
    let schema = expected_schema(config, task)?;
    let registry = Registry::open(models);
    let (version, model) = registry.load(task, &args.model, Some(&schema))?;
    let classes = (task == Task::Channel).then(|| model.outputs.clone());
    let table = Table::load(&path, task, &model.schema, classes.as_deref())?;
    // the test rows only: the tune rows chose the calibration when the model was trained,
    // so the numbers match the training report's
    let rows: Vec<usize> = (0..table.n)
        .filter(|&i| table.part[i] == Part::Test)
        .collect();
    let e = evaluate(&model, &table, &rows);
    println!(
        "{} {} ({}) on the test rows of the validation split of {} ({} rows; the tune rows chose the calibration)",
        task_name(task),
        version,
        model.fitted.kind().as_str(),
        path.display(),
        rows.len()
    );
    println!("  AUC            {}", f4(e.auc));
    println!("  oracle AUC     {}", f4(e.oracle_auc));
    println!("  oracle ratio   {}", f4(e.oracle_ratio));
    if let Some(b) = &e.binary {
        println!("  PR-AUC         {}", f4(b.pr_auc));
        println!("  log loss       {:.4}", b.log_loss);
        println!("  Brier          {:.4}", b.brier);
        println!("  ECE            {:.4}", b.ece);
        let lift: Vec<String> = b.lift.iter().map(|l| format!("{l:.2}")).collect();
        println!("  lift by decile {}", lift.join(" "));
    }
    if let Some(m) = &e.multiclass {
        println!("  top-1 accuracy {:.4}", m.top1_accuracy);
        println!("  log loss       {:.4}", m.log_loss);
    }
    for a in &e.per_action {
        println!(
            "  {:<22} {:>6} rows  AUC {}  oracle {}",
            a.action_id,
            a.rows,
            f4(a.auc),
            f4(a.oracle_auc)
        );
    }
    Ok(())
}

/// The comparison table of a task's versions.
pub fn compare_table(versions: &[VersionInfo]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<6} {:<9} {:<18} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>9} {:>8}  test rows",
        "ver",
        "learner",
        "aliases",
        "AUC",
        "oracle",
        "ratio",
        "logloss",
        "Brier",
        "ECE",
        "calib",
        "fit s"
    );
    for v in versions {
        let e = &v.evaluation;
        let (ll, br, ece) = match (&e.binary, &e.multiclass) {
            (Some(b), _) => (b.log_loss, b.brier, format!("{:.4}", b.ece)),
            (_, Some(m)) => (m.log_loss, m.brier, "–".into()),
            _ => (f64::NAN, f64::NAN, "–".into()),
        };
        let _ = writeln!(
            s,
            "{:<6} {:<9} {:<18} {:>7} {:>7} {:>7} {:>8.4} {:>7.4} {:>7} {:>9} {:>8.1}  {}",
            v.version,
            e.learner.as_str(),
            v.aliases.join(","),
            f4(e.auc),
            f4(e.oracle_auc),
            f4(e.oracle_ratio),
            ll,
            br,
            ece,
            e.calibration,
            e.fit_seconds,
            e.rows_test
        );
    }
    s
}

/// `baton models …`.
pub fn run_models(models: &Path, cmd: &ModelsCommand) -> anyhow::Result<()> {
    let registry = Registry::open(models);
    match cmd {
        ModelsCommand::List { task } => {
            let tasks: Vec<Task> = match task {
                Some(t) => vec![task_of(*t)],
                None => vec![Task::Churn, Task::Response, Task::Channel],
            };
            let mut any = false;
            for t in tasks {
                let v = registry.versions(t)?;
                if v.is_empty() {
                    continue;
                }
                any = true;
                println!(
                    "{} ({} versions in {})",
                    task_name(t),
                    v.len(),
                    registry.task_dir(t).display()
                );
                for i in &v {
                    println!(
                        "  {:<6} {:<9} AUC {}  ratio {}  {}  {}",
                        i.version,
                        i.evaluation.learner.as_str(),
                        f4(i.evaluation.auc),
                        f4(i.evaluation.oracle_ratio),
                        i.created,
                        i.aliases.join(",")
                    );
                }
            }
            if !any {
                println!(
                    "no models in {} yet: `baton train --task churn` trains one",
                    models.display()
                );
            }
        }
        ModelsCommand::Compare { task } => {
            let t = task_of(*task);
            let v = registry.versions(t)?;
            if v.is_empty() {
                anyhow::bail!(
                    "no {} models in {}",
                    task_name(t),
                    registry.task_dir(t).display()
                );
            }
            print!("{}", compare_table(&v));
        }
        ModelsCommand::Promote {
            task,
            version,
            alias,
        } => {
            let c = registry.promote(task_of(*task), version, alias)?;
            println!(
                "{} {} -> {}{}",
                task_name(task_of(*task)),
                c.alias,
                c.version,
                c.previous
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default()
            );
        }
        ModelsCommand::History { task } => {
            for c in registry.history(task_of(*task))? {
                println!(
                    "{}  {} -> {}{}",
                    c.at,
                    c.alias,
                    c.version,
                    c.previous
                        .map(|p| format!(" (was {p})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
