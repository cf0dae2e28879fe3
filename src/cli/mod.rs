//! The `baton` command line: clap definitions and thin command functions over the library.
//! Only `main` uses this module; nothing in the core depends on it.

pub mod clv;
mod commands;
pub mod features;
pub mod models;
pub mod ope;
pub mod score;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commands::run;

/// Baton: a next-best-action engine for customer journey orchestration.
///
/// Simulate or ingest customer journeys, then (as the project grows) build features, train
/// models, decide the next best action per customer, score in batch and evaluate policies.
/// Start with `baton quickstart`.
#[derive(Debug, Parser)]
#[command(name = "baton", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file. Default `./baton.toml`; without that file the built-in defaults
    /// apply. A path given here must exist.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The data directory (events, customers, decisions, outcomes as Parquet).
    #[arg(long, global = true, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,

    /// The model registry directory.
    #[arg(long, global = true, value_name = "DIR", default_value = "models")]
    pub models: PathBuf,

    /// More log output (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate customer journeys (with hidden ground truth) into a data directory.
    ///
    /// Writes events, customers, a decision log of a uniform-random behaviour policy with its
    /// true propensities, outcomes, and the simulator's ground truth, all as Parquet.
    Simulate(SimulateArgs),
    /// Load events and/or customers from CSV, JSON Lines or Parquet into the data directory.
    ///
    /// Bad rows are rejected with reasons (the first few printed, all written to
    /// DIR/rejects/) and the good ones are stored. Events are idempotent on `event_id`;
    /// customers are upserted by `customer_id`.
    Ingest(IngestArgs),
    /// Import a public dataset into the data directory.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print a summary of a data directory: customers, events by type and channel, churn,
    /// response rates by action and channel.
    Summary,
    /// The guided tour: simulate a default dataset into DATA/quickstart and summarise it.
    Quickstart(QuickstartArgs),
    /// Build a point-in-time feature table: one row per customer, from events strictly
    /// before --as-of, with the feature definitions of the config (`[[features]]`).
    Features(features::FeaturesArgs),
    /// Build a point-in-time training set for churn, response or channel models: features
    /// before each cutoff, labels only from the horizon after it, split by time.
    Dataset(features::DatasetArgs),
    /// Customer value: BG/NBD + Gamma-Gamma fits, P(alive) and CLV.
    #[command(subcommand)]
    Clv(clv::ClvCommand),
    /// Train a churn, response or channel model on a training set, evaluate it on the
    /// validation split (next to the simulator's oracle where present) and save it as a new
    /// version in the registry with its report.
    Train(models::TrainArgs),
    /// Evaluate a stored model (version or alias) on the test rows of a training set's
    /// validation split (the rows its training report used).
    Evaluate(models::EvaluateArgs),
    /// The model registry: list, compare, promote, history.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Batch scoring: the server's engine for every customer as of a time, at most one
    /// action each under per-channel and per-action budgets (allocation maximising the
    /// expected gain), written as Parquet with ranks and reasons.
    Score(score::ScoreArgs),
    /// Serve decisions over HTTP: the engine with the champion models, every customer's
    /// online features from the data directory and the write-ahead log.
    Serve(serve::ServeArgs),
    /// The server's write-ahead log: `export` writes its decision log and outcomes as
    /// Parquet (the decisions and outcomes contracts).
    #[command(subcommand)]
    Log(LogCommand),
    /// Off-policy evaluation: estimate a policy's value from a decision log (IPS, SNIPS,
    /// DM, DR, switch-DR with bootstrap intervals), or learn a policy from a bandit table
    /// and estimate its value against the logging policy.
    Ope(ope::OpeArgs),
    /// Write an HTML overview of the data directory and its models (dataset summary,
    /// journey funnel, model comparison, policy table, batch scoring) that opens in a
    /// browser without a server.
    Report(ReportArgs),
    /// Print the effective configuration (defaults merged with the file) as TOML.
    Config,
}

/// Arguments of `baton simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of customers [default: simulate.customers in the config, 20000].
    #[arg(long)]
    pub customers: Option<u64>,
    /// Number of days [default: simulate.days, 120].
    #[arg(long)]
    pub days: Option<u32>,
    /// Random seed; the same seed gives the same data [default: simulate.seed, 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output data directory [default: the --data directory]. Must be empty or absent.
    /// Not with `--policy`: the closed loop writes only its policy table (`--table`).
    #[arg(long, value_name = "DIR", conflicts_with = "policy")]
    pub out: Option<PathBuf>,
    /// Closed loop instead: run these policies (comma separated: random, rules, baton,
    /// bayes-limited, oracle-limited, bayes, oracle, baton-cold; or all) day by day against
    /// the simulator's hidden truth and print the policy table (seed defaults to
    /// simulate.seed + 1: customers the models never saw).
    #[arg(long, value_name = "POLICIES")]
    pub policy: Option<String>,
    /// Closed loop: the models of the baton policy (alias or version).
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Closed loop: what counts as the response that earns an action's value.
    #[arg(long, value_enum, default_value = "click")]
    pub response: features::ResponseArg,
    /// Closed loop: where to write the policy table [default: DATA/reports/policies.json].
    #[arg(long, value_name = "FILE", requires = "policy")]
    pub table: Option<PathBuf>,
    /// Closed loop: retrain the baton policy's response model every DAYS simulated days on
    /// its training set plus what it observed in the loop (0: never) [default:
    /// simulate.retrain_every_days].
    #[arg(long, value_name = "DAYS", requires = "policy")]
    pub retrain_every: Option<u32>,
}

/// Arguments of `baton ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Events file (.csv, .jsonl/.ndjson or .parquet).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Customers file (.csv, .jsonl/.ndjson or .parquet).
    #[arg(long, value_name = "FILE")]
    pub customers: Option<PathBuf>,
}

/// The importers.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// The 84.51° Complete Journey retail dataset (fetch it with
    /// scripts/fetch-completejourney.sh): baskets become purchase events, campaign
    /// membership action_delivered (mail), coupon redemptions action_converted,
    /// demographics the customers.
    Completejourney {
        /// Directory holding the Complete Journey Parquet tables.
        #[arg(value_name = "DIR", default_value = "data/completejourney")]
        dir: PathBuf,
    },
    /// A logged-bandit CSV from another system (context columns, action, reward,
    /// propensity, optional position) into a bandit table for `baton ope --learn`.
    BanditLog(ope::BanditLogArgs),
}

/// `baton log`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Write DATA/wal/server.wal's decisions and outcomes to OUT/decisions.parquet and
    /// OUT/outcomes.parquet.
    Export(serve::ExportArgs),
}

/// Arguments of `baton report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output HTML file [default: DATA/reports/index.html].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Arguments of `baton quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Number of customers to simulate.
    #[arg(long, default_value_t = 20_000)]
    pub customers: u64,
    /// Number of days to simulate.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not keep serving at the end (one demonstration request is still made).
    #[arg(long)]
    pub no_serve: bool,
}
