//! `baton clv fit` and `baton clv predict`: customer value with BG/NBD + Gamma-Gamma.
//!
//! `fit` summarises purchases per customer (RFM), fits both models, compares predictions with
//! a holdout period and writes a model directory (`params.json`, `report.svg`, `report.html`).
//! `predict` loads such a directory and writes one Parquet row per customer with expected
//! purchases, P(alive), expected spend and discounted CLV.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::clv::{
    BgNbdFitter, ClvFitter, ClvModel, ClvOptions, GammaGammaFitter, RfmOptions, TransactionSource,
    Unit, expected_purchases_column, predict_table, rfm_summary, write_report,
};
use crate::store::write_parquet_atomic;

/// Customer lifetime value: BG/NBD purchases, Gamma-Gamma spend, P(alive), CLV.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClvCommand {
    /// Fit BG/NBD + Gamma-Gamma on purchases and write a model directory.
    Fit(FitArgs),
    /// Score every customer with a fitted model and write a Parquet file.
    Predict(PredictArgs),
}

/// Where purchases come from: the data directory's `purchase` events unless
/// `--transactions` names a CSV or Parquet file.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Transactions file (.csv or .parquet) instead of the data directory's purchase events.
    /// Several rows per customer and day (line items) count as one purchase of their total.
    #[arg(long, value_name = "FILE")]
    pub transactions: Option<PathBuf>,
    /// Customer id column of --transactions.
    #[arg(
        long,
        value_name = "COL",
        default_value = "customer_id",
        requires = "transactions"
    )]
    pub customer_col: String,
    /// Date column of --transactions: a date, a timestamp, a parsable string or a day number.
    #[arg(
        long,
        value_name = "COL",
        default_value = "ts",
        requires = "transactions"
    )]
    pub date_col: String,
    /// Amount column of --transactions (money per row).
    #[arg(
        long,
        value_name = "COL",
        default_value = "value",
        requires = "transactions"
    )]
    pub amount_col: String,
}

impl SourceArgs {
    fn source(&self, data_dir: &Path) -> TransactionSource {
        match &self.transactions {
            Some(path) => TransactionSource::File {
                path: path.clone(),
                customer_col: self.customer_col.clone(),
                date_col: self.date_col.clone(),
                amount_col: self.amount_col.clone(),
            },
            None => TransactionSource::Events {
                data_dir: data_dir.to_path_buf(),
            },
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct FitArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Last day (YYYY-MM-DD, inclusive) of the calibration period [default: last purchase day].
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub calibration_end: Option<NaiveDate>,
    /// Last day (inclusive) of the holdout used to check predictions [default: last purchase
    /// day, when --calibration-end is earlier].
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub holdout_end: Option<NaiveDate>,
    /// Time unit of recency, T and the parameters.
    #[arg(long, default_value = "weeks", value_parser = ["days", "weeks"])]
    pub unit: String,
    /// L2 penalty on the BG/NBD parameters (0 = plain maximum likelihood; try 0.001–0.1 if
    /// the fit runs off to extreme values).
    #[arg(long, default_value_t = 0.0)]
    pub penalty: f64,
    /// L2 penalty on the Gamma-Gamma parameters.
    #[arg(long, default_value_t = 0.0)]
    pub spend_penalty: f64,
    /// Model directory to write [default: <models>/clv/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// Model directory written by `clv fit` (or a directory of them: the newest is used).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    // Purchases to score [default: the source the model was fitted on].
    #[command(flatten)]
    pub source: SourceArgs,
    /// Summarise purchases up to this day (inclusive) [default: last purchase day].
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    /// Horizon in the model's unit for expected purchases and CLV [default: one year].
    #[arg(long)]
    pub horizon: Option<f64>,
    /// Discount rate per period (0.01 = 1 % per month with the default period).
    #[arg(long, default_value_t = 0.0)]
    pub discount: f64,
    /// Length of a discount period in days.
    #[arg(long, default_value_t = 30.0)]
    pub period_days: f64,
    /// Output Parquet file.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    s.parse::<NaiveDate>()
        .map_err(|e| format!("`{s}` is not a YYYY-MM-DD date: {e}"))
}

/// Runs a `clv` subcommand. `data_dir` holds the events, `models_dir` the model registry.
pub async fn run(cmd: &ClvCommand, data_dir: &Path, models_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        ClvCommand::Fit(args) => fit(args, data_dir, models_dir).await,
        ClvCommand::Predict(args) => predict(args, data_dir).await,
    }
}

async fn fit(args: &FitArgs, data_dir: &Path, models_dir: &Path) -> anyhow::Result<()> {
    let unit: Unit = args.unit.parse()?;
    let source = args.source.source(data_dir);
    let opts = RfmOptions {
        unit,
        calibration_end: args.calibration_end,
        holdout_end: args.holdout_end,
    };
    let started = std::time::Instant::now();
    let rfm = rfm_summary(&source, &opts)
        .await
        .context("summarising purchases")?;
    let rfm_secs = started.elapsed().as_secs_f64();
    let fitter = ClvFitter {
        bgnbd: BgNbdFitter::default().with_penalty(args.penalty),
        gamma_gamma: GammaGammaFitter {
            penalty: args.spend_penalty,
            ..Default::default()
        },
    };
    let model = fitter.fit(&rfm, source).context("fitting the CLV model")?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => models_dir
            .join("clv")
            .join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()),
    };
    model.save(&dir)?;
    let max_f = rfm.frequency.iter().copied().fold(0.0, f64::max).min(60.0);
    let max_t = rfm.t.iter().copied().fold(1.0, f64::max);
    write_report(&model, max_f, max_t, &dir)?;
    print!("{}", model.summary());
    println!(
        "RFM summary {rfm_secs:.2}s, total {:.2}s; model written to {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

/// The model directory itself, or the newest model directory inside it.
fn resolve_model_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join("params.json").exists() || dir.is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading model directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("params.json").exists())
        .collect();
    versions.sort();
    versions.pop().with_context(|| {
        format!(
            "{}: no params.json here or in its subdirectories",
            dir.display()
        )
    })
}

async fn predict(args: &PredictArgs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = resolve_model_dir(&args.model)?;
    let model = ClvModel::load(&dir)?;
    let source = if args.source.transactions.is_some() {
        args.source.source(data_dir)
    } else {
        model.source.clone()
    };
    let rfm = rfm_summary(
        &source,
        &RfmOptions {
            unit: model.unit,
            calibration_end: args.as_of,
            holdout_end: None,
        },
    )
    .await
    .context("summarising purchases")?;
    let mut opts = ClvOptions::one_year(model.unit);
    if let Some(h) = args.horizon {
        opts.horizon = h;
    }
    opts.discount_rate = args.discount;
    opts.period = args.period_days / model.unit.days();
    let gg = model.gamma_gamma.as_ref().map(|g| &g.params);
    let batch = predict_table(&model.bgnbd.params, gg, &rfm, &opts)?;
    write_parquet_atomic(&args.out, batch.schema(), std::slice::from_ref(&batch))?;

    let n = rfm.customer_id.len() as f64;
    let col = |name: &str| -> Vec<Option<f64>> {
        let c = batch.column_by_name(name).expect("column");
        let a = c
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("f64");
        a.iter().collect()
    };
    let purchases = col(&expected_purchases_column(opts.horizon));
    let alive = col("p_alive");
    let clv = col("clv");
    let sum = |v: &[Option<f64>]| v.iter().flatten().sum::<f64>();
    println!(
        "{} customers as of {} ({} horizon {} {}, discount {} per {} days)",
        rfm.customer_id.len(),
        rfm.calibration_end,
        dir.display(),
        opts.horizon,
        model.unit,
        opts.discount_rate,
        args.period_days
    );
    println!(
        "mean expected purchases {:.3}, mean P(alive) {:.3}, total CLV {:.2}, mean CLV {:.2}",
        sum(&purchases) / n,
        sum(&alive) / n,
        sum(&clv),
        sum(&clv) / n
    );
    let mut top: Vec<(usize, f64)> = clv
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !top.is_empty() {
        println!(
            "  {:>16} {:>6} {:>8} {:>8} {:>9} {:>10}",
            "customer", "freq", "recency", "P(alive)", "purchases", "clv"
        );
    }
    for &(i, v) in top.iter().take(5) {
        println!(
            "  {:>16} {:>6} {:>8.1} {:>8.3} {:>9.2} {:>10.2}",
            rfm.customer_id[i],
            rfm.frequency[i],
            rfm.recency[i],
            alive[i].unwrap_or(f64::NAN),
            purchases[i].unwrap_or(f64::NAN),
            v
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
