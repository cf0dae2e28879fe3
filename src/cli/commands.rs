//! The command functions: each parses nothing, calls the library, prints a result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Cli, Command, ImportCommand, IngestArgs, QuickstartArgs, SimulateArgs};
use crate::config::Config;
use crate::schema::TableKind;
use crate::sim::{SimParams, SimSummary, simulate};
use crate::store::import::import_completejourney;
use crate::store::summary::summarize;
use crate::store::{DataDir, IngestReport, ingest_file};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(cli.config.as_deref())?;
    match &cli.command {
        Command::Simulate(args) => cmd_simulate(&cli, &config, args).await,
        Command::Ingest(args) => cmd_ingest(&cli, &config, args),
        Command::Import(ImportCommand::BanditLog(args)) => {
            super::ope::run_import_bandit(&cli.data, args)
        }
        Command::Ope(args) => super::ope::run_ope(&config, &cli.data, &cli.models, args).await,
        Command::Import(ImportCommand::Completejourney { dir }) => {
            if !dir.is_dir() {
                bail!(
                    "{}: no such directory (fetch the tables with scripts/fetch-completejourney.sh)",
                    dir.display()
                );
            }
            let data = DataDir::create(&cli.data)?;
            let start = std::time::Instant::now();
            for report in import_completejourney(dir, &data).await? {
                print_ingest(&report);
            }
            println!(
                "imported into {} in {:.1}s",
                cli.data.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Summary => {
            let dir = existing_data_dir(&cli.data)?;
            print!("{}", summarize(&dir).await?);
            Ok(())
        }
        Command::Quickstart(args) => cmd_quickstart(&cli, &config, args).await,
        Command::Features(args) => {
            existing_data_dir(&cli.data)?;
            super::features::run_features(&config, &cli.data, args).await
        }
        Command::Dataset(args) => {
            existing_data_dir(&cli.data)?;
            super::features::run_dataset(&config, &cli.data, args).await
        }
        Command::Clv(cmd) => super::clv::run(cmd, &cli.data, &cli.models).await,
        Command::Train(args) => {
            let t = super::models::run_train(&config, &cli.data, &cli.models, args, cli.quiet)?;
            println!("{}", t.info_line);
            println!("report: {}", t.report.display());
            Ok(())
        }
        Command::Evaluate(args) => {
            super::models::run_evaluate(&config, &cli.data, &cli.models, args)
        }
        Command::Models(cmd) => super::models::run_models(&cli.models, cmd),
        Command::Score(args) => {
            existing_data_dir(&cli.data)?;
            super::score::run_score(&config, &cli.data, &cli.models, args).await
        }
        Command::Serve(args) => {
            let path = super::serve::config_path(cli.config.as_deref());
            super::serve::run_serve(&config, &path, &cli.data, &cli.models, args).await
        }
        Command::Log(super::LogCommand::Export(args)) => super::serve::run_export(&cli.data, args),
        Command::Report(args) => {
            let dir = existing_data_dir(&cli.data)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| cli.data.join("reports").join("index.html"));
            crate::report::write(&crate::report::Inputs {
                data: &dir,
                models: &cli.models,
                out: &out,
            })
            .await?;
            println!("report: {}", out.display());
            Ok(())
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

/// Loads the configuration: an explicit path must exist; the default `./baton.toml` is
/// optional.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("baton.toml"), false),
    };
    Ok(Config::load(&path, required)?)
}

fn existing_data_dir(path: &Path) -> anyhow::Result<DataDir> {
    if !path.is_dir() {
        bail!(
            "data directory {} does not exist (run `baton simulate` or `baton ingest`, or pass --data DIR)",
            path.display()
        );
    }
    Ok(DataDir::open(path))
}

fn progress(cli: &Cli, total: u64, what: &str) -> ProgressBar {
    progress_bar(cli.quiet, total, what)
}

/// A progress bar over `total` items (hidden with `quiet`).
pub(crate) fn progress_bar(quiet: bool, total: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn sim_params(
    config: &Config,
    customers: Option<u64>,
    days: Option<u32>,
    seed: Option<u64>,
) -> anyhow::Result<SimParams> {
    let mut params = SimParams::from_config(config)?;
    if let Some(c) = customers {
        params.customers = c;
    }
    if let Some(d) = days {
        params.days = d;
    }
    if let Some(s) = seed {
        params.seed = s;
    }
    if params.customers == 0 || params.days == 0 {
        bail!("--customers and --days must be at least 1");
    }
    Ok(params)
}

/// Simulates into `out`, which must be empty or absent.
async fn run_simulation(
    cli: &Cli,
    config: &Config,
    params: &SimParams,
    out: &Path,
) -> anyhow::Result<SimSummary> {
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: simulate into a new directory (--out DIR) so no stored data is mixed or lost",
            out.display()
        );
    }
    let dir = DataDir::create(out)?;
    let bar = progress(cli, params.customers, "customers");
    let (config, params) = (config.clone(), params.clone());
    let bar2 = bar.clone();
    let summary = tokio::task::spawn_blocking(move || {
        simulate(&config, &params, &dir, &|done| bar2.set_position(done))
    })
    .await
    .context("simulator thread failed")??;
    bar.finish_and_clear();
    Ok(summary)
}

async fn cmd_simulate(cli: &Cli, config: &Config, args: &SimulateArgs) -> anyhow::Result<()> {
    if let Some(p) = &args.policy {
        let policies = super::ope::policy_list(p)?;
        let seed = args.seed.unwrap_or(config.simulate.seed + 1);
        let params = sim_params(config, args.customers, args.days, Some(seed))?;
        let table = args
            .table
            .clone()
            .unwrap_or_else(|| cli.data.join("reports").join("policies.json"));
        let rows = super::ope::run_policies(
            config,
            &cli.models,
            &cli.data,
            &params,
            &policies,
            &args.alias,
            super::ope::label(args.response),
            &table,
            args.retrain_every
                .unwrap_or(config.simulate.retrain_every_days),
            cli.quiet,
        )?;
        super::ope::print_recovery(&rows, "");
        return Ok(());
    }
    let params = sim_params(config, args.customers, args.days, args.seed)?;
    let out = args.out.clone().unwrap_or_else(|| cli.data.clone());
    let s = run_simulation(cli, config, &params, &out).await?;
    println!(
        "simulated {} customers x {} days (seed {}) into {}: {} events, {} decisions in {:.1}s ({:.0} events/s)",
        s.customers,
        params.days,
        params.seed,
        out.display(),
        s.events,
        s.decisions,
        s.elapsed.as_secs_f64(),
        s.events as f64 / s.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn print_ingest(r: &IngestReport) {
    println!(
        "{} from {}: {} rows read, {} stored, {} duplicates skipped, {} rejected",
        r.kind.name(),
        r.source.display(),
        r.rows_read,
        r.stored,
        r.duplicates,
        r.rejected
    );
    for e in &r.first_errors {
        println!("  rejected: {e}");
    }
    if let Some(p) = &r.rejects_path {
        if r.rejected as usize > r.first_errors.len() {
            println!("  ... {} more", r.rejected as usize - r.first_errors.len());
        }
        println!("  all rejected rows and reasons: {}", p.display());
    }
}

fn cmd_ingest(cli: &Cli, config: &Config, args: &IngestArgs) -> anyhow::Result<()> {
    if args.events.is_none() && args.customers.is_none() {
        bail!("nothing to ingest: give --events FILE and/or --customers FILE");
    }
    for file in [&args.customers, &args.events].into_iter().flatten() {
        if !file.is_file() {
            bail!("{}: no such file", file.display());
        }
    }
    let dir = DataDir::create(&cli.data)?;
    let show = config.ingest.show_rejects;
    for (kind, file) in [
        (TableKind::Customers, &args.customers),
        (TableKind::Events, &args.events),
    ] {
        if let Some(file) = file {
            let report = ingest_file(&dir, kind, file, show)?;
            print_ingest(&report);
        }
    }
    Ok(())
}

async fn cmd_quickstart(cli: &Cli, config: &Config, args: &QuickstartArgs) -> anyhow::Result<()> {
    let no_serve = args.no_serve;
    let params = sim_params(
        config,
        Some(args.customers),
        Some(args.days),
        Some(args.seed),
    )?;
    let target = cli.data.join("quickstart");
    // Simulate into a fresh sibling directory, then swap it in, so a failed run never
    // leaves a half-written dataset behind.
    std::fs::create_dir_all(&cli.data)
        .with_context(|| format!("creating {}", cli.data.display()))?;
    let staging = cli.data.join(format!(".quickstart-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    println!(
        "== 1/9 simulate {} customers x {} days (seed {}) into {}",
        params.customers,
        params.days,
        params.seed,
        target.display()
    );
    let s = match run_simulation(cli, config, &params, &staging).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("replacing {}", target.display()))?;
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("moving the dataset to {}", target.display()))?;
    println!(
        "   {} events and {} decisions in {:.1}s ({:.0} events/s)",
        s.events,
        s.decisions,
        s.elapsed.as_secs_f64(),
        s.events as f64 / s.elapsed.as_secs_f64().max(1e-9)
    );
    println!("\n== 2/9 summary of {}\n", target.display());
    print!("{}", summarize(&DataDir::open(&target)).await?);

    // Features and the three training sets, point in time.
    let end = params.start + chrono::Days::new(u64::from(params.days));
    println!(
        "\n== 3/9 features as of {end} and training sets (a cutoff every 30 days, 30-day horizon)\n"
    );
    let features_out = target.join("features.parquet");
    let args = super::features::FeaturesArgs {
        as_of: end.to_string(),
        out: features_out,
    };
    super::features::run_features(config, &target, &args).await?;
    for task in [
        super::features::TaskArg::Churn,
        super::features::TaskArg::Response,
        super::features::TaskArg::Channel,
    ] {
        let name = format!("{task:?}").to_lowercase();
        let args = super::features::DatasetArgs {
            task,
            cutoffs: None,
            every: Some("30d".into()),
            horizon: "30d".into(),
            response_window: "7d".into(),
            response: super::features::ResponseArg::Click,
            activity: "purchase".into(),
            out: target.join("datasets").join(format!("{name}.parquet")),
        };
        super::features::run_dataset(config, &target, &args).await?;
    }

    // Customer value: calibrate on all but the last 30 days, check on those 30 days.
    let holdout_days = 30.min(params.days.saturating_sub(1) / 2);
    let calibration_end = params.start + chrono::Days::new(u64::from(params.days - holdout_days))
        - chrono::Days::new(1);
    let holdout_end =
        params.start + chrono::Days::new(u64::from(params.days)) - chrono::Days::new(1);
    println!(
        "\n== 4/9 customer value (BG/NBD + Gamma-Gamma), calibration to {calibration_end}, holdout to {holdout_end}\n"
    );
    let fit = super::clv::FitArgs {
        source: super::clv::SourceArgs {
            transactions: None,
            customer_col: "customer_id".into(),
            date_col: "ts".into(),
            amount_col: "value".into(),
        },
        calibration_end: Some(calibration_end),
        holdout_end: Some(holdout_end),
        unit: "days".into(),
        penalty: 0.0,
        spend_penalty: 0.0,
        out: Some(cli.models.join("quickstart").join("clv")),
    };
    super::clv::run(&super::clv::ClvCommand::Fit(fit), &target, &cli.models).await?;

    // Models: every learner on every task; the best AUC becomes the champion.
    println!(
        "\n== 5/9 models: churn, response and channel, each with logistic, gbdt and mlp, into {}\n",
        cli.models.display()
    );
    let registry = crate::models::Registry::open(&cli.models);
    for task in [
        super::features::TaskArg::Churn,
        super::features::TaskArg::Response,
        super::features::TaskArg::Channel,
    ] {
        let mut best: Option<(f64, String)> = None;
        let mut versions = Vec::new();
        for learner in [
            super::models::LearnerArg::Logistic,
            super::models::LearnerArg::Gbdt,
            super::models::LearnerArg::Mlp,
        ] {
            let args = super::models::TrainArgs {
                task,
                learner,
                dataset: None,
                seed: params.seed,
                settings: None,
                promote: None,
            };
            let t = super::models::run_train(config, &target, &cli.models, &args, cli.quiet)?;
            println!("   {}", t.info_line);
            if let Some(auc) = t.auc
                && best.as_ref().is_none_or(|b| auc > b.0)
            {
                best = Some((auc, t.version.clone()));
            }
            versions.push(t);
        }
        let t = super::models::task_of(task);
        if let Some((_, v)) = &best {
            registry.promote(t, v, "champion")?;
        }
        let mine: Vec<_> = registry
            .versions(t)?
            .into_iter()
            .filter(|i| versions.iter().any(|v| v.version == i.version))
            .collect();
        println!("\n{}", super::models::compare_table(&mine));
        for v in &versions {
            println!("   report: {}", v.report.display());
        }
        println!();
    }
    println!(
        "\n== 6/9 policies in the closed loop: random, rules, baton (champions), oracle on {} new customers (seed {}) x {} days\n",
        params.customers,
        params.seed + 1,
        params.days
    );
    let mut loop_params = params.clone();
    loop_params.seed = params.seed + 1;
    let table = target.join("reports").join("policies.json");
    let policies: Vec<String> = crate::ope::POLICIES.iter().map(|p| p.to_string()).collect();
    let rows = super::ope::run_policies(
        config,
        &cli.models,
        &target,
        &loop_params,
        &policies,
        "champion",
        crate::features::ResponseLabel::Click,
        &table,
        config.simulate.retrain_every_days,
        cli.quiet,
    )?;
    super::ope::print_recovery(&rows, "   ");
    println!(
        "\n   off-policy estimates of the baton policy from the random policy's log in {} (before it ever ran), against what it realised in the closed loop; the log has no pre-run history, so the twin is `{}` (the engine without that history):\n",
        target.display(),
        crate::ope::BATON_COLD
    );
    let engine = super::ope::engine(config, &cli.models, "champion", true)?;
    let settings = crate::ope::OpeSettings::default();
    let est = crate::ope::evaluate_log(
        &target,
        &DataDir::open(&target),
        config,
        &engine,
        crate::features::ResponseLabel::Click,
        &settings,
    )
    .await?;
    super::ope::print_report(&est.report);
    let cold = crate::ope::run_policy(
        crate::ope::BATON_COLD,
        config,
        &loop_params,
        Some(engine.clone()),
        crate::features::ResponseLabel::Click,
        &|_| {},
    )?;
    let cmp = crate::ope::compare_with_truth(&est.report, est.decisions_per_customer, &cold);
    println!(
        "\n   value per customer ({:.2} logged decisions per customer)\n   {:<10} {:>10} {:>10} {:>15}",
        est.decisions_per_customer, "estimator", "estimate", "realised", "relative error"
    );
    for c in &cmp {
        println!(
            "   {:<10} {:>10.3} {:>10.3} {:>14.1}%",
            c.estimator,
            c.estimate,
            c.realised,
            100.0 * c.relative_error
        );
    }
    let path = target.join("reports").join("ope_vs_truth.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&cmp)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let score_at = format!("{end}T10:00:00Z");
    let sms = (params.customers / 20).max(1);
    let calls = (params.customers / 200).max(1);
    println!(
        "\n== 7/9 batch scoring: every customer as of {score_at} with the champion models, at most one action each, budgets sms {sms} and call_center {calls}\n"
    );
    let score_args = super::score::ScoreArgs {
        as_of: score_at,
        out: target.join("scores.parquet"),
        alias: "champion".into(),
        budgets: vec![format!("sms={sms}"), format!("call_center={calls}")],
        no_config_budgets: false,
        channels: Vec::new(),
        top: None,
        summary: None,
    };
    super::score::run_score(config, &target, &cli.models, &score_args).await?;
    println!("\n== 8/9 report of {} and its models\n", target.display());
    let report = target.join("reports").join("index.html");
    crate::report::write(&crate::report::Inputs {
        data: &DataDir::open(&target),
        models: &cli.models,
        out: &report,
    })
    .await?;
    println!("   report: {} (open it in a browser)", report.display());
    println!(
        "\n== 9/9 serve decisions from {} with the champion models\n",
        target.display()
    );
    let path = super::serve::config_path(cli.config.as_deref());
    let as_of = format!("{end}T12:00:00Z");
    super::serve::quickstart_serve(config, &path, &target, &cli.models, &as_of, no_serve).await?;
    println!(
        "Next: `baton --data {} serve`, `baton models compare --task churn`, or ingest your own data with `baton ingest`.",
        target.display()
    );
    Ok(())
}
