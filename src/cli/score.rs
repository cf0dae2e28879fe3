//! `baton score`: batch scoring of every customer under budgets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::batch::{self, ScoreOptions, Summary};
use crate::config::Config;
use crate::decide::load_engine;
use crate::features::{FeatureSet, parse_time};
use crate::store::DataDir;

/// Arguments of `baton score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Decision time and feature cutoff: `YYYY-MM-DD` (start of that UTC day) or RFC 3339.
    /// Features come from events strictly before it; quiet hours apply at its hour.
    #[arg(long, value_name = "TIME")]
    pub as_of: String,
    /// Output Parquet file: customer_id, as_of, rank, action_id, channel, p_response,
    /// value, weight, cost, score, assigned, reasons.
    #[arg(long, value_name = "FILE", default_value = "scores.parquet")]
    pub out: PathBuf,
    /// The models (alias or version).
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Budget: at most N customers on a channel (`sms=5000`) or for an action
    /// (`action:win_back=1000`); repeat for several. Adds to and overrides `[batch]
    /// budgets` of the config.
    #[arg(long = "budget", value_name = "NAME=N")]
    pub budgets: Vec<String>,
    /// Ignore the budgets of the config.
    #[arg(long)]
    pub no_config_budgets: bool,
    /// Only these channels (comma separated) [default: batch.channels, else all].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Ranked candidates written per customer [default: batch.top, 3].
    #[arg(long)]
    pub top: Option<usize>,
    /// Where to write the run's summary [default: DATA/reports/score.json].
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

/// Builds the options of a run from the config and the flags.
pub fn options(config: &Config, args: &ScoreArgs, as_of: i64) -> anyhow::Result<ScoreOptions> {
    let ids: Vec<String> = config.actions.iter().map(|a| a.id.clone()).collect();
    let mut specs = if args.no_config_budgets {
        Vec::new()
    } else {
        config.batch.budget_specs()
    };
    specs.extend(args.budgets.iter().cloned());
    let (action_budgets, channel_budgets) =
        batch::parse_budgets(&specs, &ids).context("in --budget")?;
    let channels = if args.channels.is_empty() {
        config.batch.channels.clone()
    } else {
        args.channels.clone()
    };
    for c in &channels {
        if !crate::schema::CHANNELS.contains(&c.as_str()) {
            anyhow::bail!(
                "--channels: unknown channel `{c}` (known: {})",
                crate::schema::CHANNELS.join(", ")
            );
        }
    }
    Ok(ScoreOptions {
        as_of,
        top: args.top.unwrap_or(config.batch.top),
        channels: (!channels.is_empty()).then(|| channels.into_iter().collect::<BTreeSet<_>>()),
        action_budgets,
        channel_budgets,
    })
}

/// Runs `baton score`.
pub async fn run_score(
    config: &Config,
    data: &Path,
    models: &Path,
    args: &ScoreArgs,
) -> anyhow::Result<()> {
    let as_of = parse_time(&args.as_of).context("--as-of")?;
    let opts = options(config, args, as_of)?;
    let dir = DataDir::open(data);
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions)?);
    let engine = load_engine(config, set, models, &args.alias)?;
    let ctx = dir.session().await?;
    let run = batch::score(&ctx, &engine, &opts).await?;
    let rows = run.write(&args.out, opts.top, as_of)?;
    print!("{}", format_summary(&run.summary));
    println!("wrote {rows} rows to {}", args.out.display());
    let path = args
        .summary
        .clone()
        .unwrap_or_else(|| data.join("reports").join("score.json"));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&run.summary)?)
        .with_context(|| path.display().to_string())?;
    println!("summary: {}", path.display());
    Ok(())
}

/// The summary as text.
pub fn format_summary(s: &Summary) -> String {
    let mut out = format!(
        "scored {} customers as of {}: {} with a candidate above doing nothing, {} candidates\n",
        s.customers, s.as_of, s.with_candidates, s.candidates
    );
    out.push_str(&format!(
        "assigned {} customers, expected gain {:.1} (without budgets {:.1}; bound {:.1}, gap {:.3}%, {} price rounds)\n",
        s.assigned,
        s.value,
        s.unconstrained,
        s.bound,
        100.0 * s.gap,
        s.price_rounds
    ));
    out.push_str(&format!(
        "{:<28} {:>10} {:>10}\n",
        "resource", "assigned", "budget"
    ));
    for (k, (used, cap)) in &s.usage {
        out.push_str(&format!(
            "{:<28} {:>10} {:>10}\n",
            k,
            used,
            cap.map_or("-".to_string(), |c| c.to_string())
        ));
    }
    let t: Vec<String> = s
        .seconds
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}s"))
        .collect();
    out.push_str(&format!("time: {}\n", t.join(", ")));
    out
}
