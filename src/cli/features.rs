//! `baton features` (a point-in-time feature table) and `baton dataset` (training sets):
//! thin layers over [`crate::features`].

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::Config;
use crate::features::{
    DatasetSpec, FeatureSet, ResponseLabel, Task, cutoffs_every, parse_duration_days, parse_time,
    write_dataset, write_features,
};
use crate::store::DataDir;

/// Arguments of `baton features`.
#[derive(Debug, Clone, clap::Args)]
pub struct FeaturesArgs {
    /// As-of time: `YYYY-MM-DD` (start of that UTC day) or RFC 3339. Only events strictly
    /// before it count.
    #[arg(long, value_name = "TIME")]
    pub as_of: String,
    /// Output Parquet file: one row per customer (customer_id, as_of, features as Float64).
    #[arg(long, value_name = "FILE", default_value = "features.parquet")]
    pub out: PathBuf,
}

/// The task of `baton dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// No qualifying activity (purchase) in the horizon, among customers active before.
    Churn,
    /// One row per delivery; label: clicked (or converted) within the response window.
    Response,
    /// Channel of the next engagement event in the horizon.
    Channel,
}

/// What counts as a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResponseArg {
    Click,
    Conversion,
}

/// Arguments of `baton dataset`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatasetArgs {
    /// The learning task.
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// Comma-separated cutoffs (`YYYY-MM-DD` or RFC 3339); the last is the validation split.
    #[arg(
        long,
        value_name = "LIST",
        conflicts_with = "every",
        required_unless_present = "every"
    )]
    pub cutoffs: Option<String>,
    /// A cutoff every N days (`30d`) across the data, instead of --cutoffs.
    #[arg(long, value_name = "DAYS")]
    pub every: Option<String>,
    /// Label horizon after each cutoff.
    #[arg(long, value_name = "DAYS", default_value = "30d")]
    pub horizon: String,
    /// Response task: the window after a delivery in which a response counts.
    #[arg(long, value_name = "DAYS", default_value = "7d")]
    pub response_window: String,
    /// Response task: what counts as a response.
    #[arg(long, value_enum, default_value = "click")]
    pub response: ResponseArg,
    /// Churn task: comma-separated event types that count as activity.
    #[arg(long, value_name = "TYPES", default_value = "purchase")]
    pub activity: String,
    /// Output Parquet file.
    #[arg(long, value_name = "FILE", default_value = "dataset.parquet")]
    pub out: PathBuf,
}

/// A spinner on stderr (hidden when stderr is not a terminal) for steps that take seconds.
fn spinner(message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn feature_set(config: &Config) -> anyhow::Result<FeatureSet> {
    Ok(FeatureSet::compile(&config.features, &config.actions)?)
}

/// `baton features --as-of T --out F.parquet`.
pub async fn run_features(config: &Config, data: &Path, args: &FeaturesArgs) -> anyhow::Result<()> {
    let set = feature_set(config)?;
    let as_of = parse_time(&args.as_of)?;
    let dir = DataDir::open(data);
    let started = std::time::Instant::now();
    let spinner = spinner("building features");
    let rows = write_features(&dir, &set, as_of, &args.out)
        .await
        .with_context(|| format!("building features of {}", data.display()))?;
    spinner.finish_and_clear();
    println!(
        "wrote {rows} customers x {} features as of {} to {} in {:.1}s",
        set.columns().len(),
        args.as_of,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `baton dataset --task churn|response|channel --cutoffs A,B | --every 30d --horizon 30d`.
pub async fn run_dataset(config: &Config, data: &Path, args: &DatasetArgs) -> anyhow::Result<()> {
    let set = feature_set(config)?;
    let dir = DataDir::open(data);
    let horizon = parse_duration_days(&args.horizon)?;
    let cutoffs = match (&args.cutoffs, &args.every) {
        (Some(list), _) => list
            .split(',')
            .map(|s| parse_time(s.trim()))
            .collect::<crate::Result<Vec<_>>>()?,
        (None, Some(every)) => {
            let ctx = dir.session().await?;
            cutoffs_every(&ctx, parse_duration_days(every)?, horizon).await?
        }
        (None, None) => anyhow::bail!("give --cutoffs or --every"),
    };
    let task = match args.task {
        TaskArg::Churn => Task::Churn,
        TaskArg::Response => Task::Response,
        TaskArg::Channel => Task::Channel,
    };
    let mut spec = DatasetSpec::new(task, cutoffs);
    spec.horizon_days = horizon;
    spec.response_window_days = parse_duration_days(&args.response_window)?;
    spec.response_label = match args.response {
        ResponseArg::Click => ResponseLabel::Click,
        ResponseArg::Conversion => ResponseLabel::Conversion,
    };
    spec.churn_activity = args
        .activity
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let started = std::time::Instant::now();
    let spinner = spinner("building the training set");
    let rows = write_dataset(&dir, &set, &spec, &args.out)
        .await
        .with_context(|| {
            format!(
                "building the {:?} training set of {}",
                args.task,
                data.display()
            )
        })?;
    spinner.finish_and_clear();
    println!(
        "wrote {rows} rows ({} cutoffs, {}d horizon) to {} in {:.1}s",
        spec.cutoffs.len(),
        horizon,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
