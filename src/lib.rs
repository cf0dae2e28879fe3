//! Baton: a next-best-action engine for customer journey orchestration.
//!
//! The library holds everything; the `baton` binary is a thin CLI over it. See
//! `DESIGN.md` (shared) for the data contracts and the data flow.
//!
//! - [`schema`]: the Arrow data contracts and row validation;
//! - [`store`]: the data directory, Parquet I/O and ingest;
//! - [`config`]: `baton.toml`, including the action catalog;
//! - [`sim`]: the journey simulator and its ground-truth oracle;
//! - [`decide`]: the decision engine: eligibility expressions, consent, contact policy,
//!   arbitration, exploration with logged propensities, the decision log;
//! - [`models`]: churn, response and channel models, their evaluation and registry;
//! - [`clv`]: BG/NBD, Gamma-Gamma, P(alive) and customer lifetime value;
//! - [`ope`]: off-policy estimators, learning from logs, closed-loop policy evaluation;
//! - [`batch`]: batch scoring of every customer with the server's engine, and allocation
//!   under per-action and per-channel budgets;
//! - [`serve`]: the axum HTTP server over the engine, with a write-ahead log;
//! - [`report`]: `baton report`, one HTML page over a data directory and its models;
//! - [`cli`]: the command-line interface (only `main` uses it).

pub mod batch;
pub mod cli;
pub mod clv;
pub mod config;
pub mod decide;
pub mod error;
pub mod features;
pub mod models;
pub mod ope;
pub mod report;
pub mod schema;
pub mod serve;
pub mod sim;
pub mod store;

pub use error::{Error, Result};
