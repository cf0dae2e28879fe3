//! Models: churn, response propensity and channel preference.
//!
//! - [`schema`]: a model's feature schema (names, encodings, hash) and its comparison with
//!   the current feature specs;
//! - [`data`]: training sets as matrices, with the train / tune / test parts;
//! - learners behind one config → fitted shape: [`logistic`] (linfa-logistic),
//!   [`gbdt`] (perpetual gradient-boosted trees), [`mlp`] (burn);
//! - [`calibrate`]: Platt or isotonic calibration chosen on held-out rows;
//! - [`metrics`]: ROC-AUC, PR-AUC, log loss, Brier, ECE, lift, multiclass metrics;
//! - [`train`]: training, evaluation against the oracle, permutation importance;
//! - [`scorer`]: the fitted [`Model`] and the object-safe [`Scorer`] trait;
//! - [`registry`]: versions, aliases and their history under `models/<task>/`;
//! - [`report`]: the HTML/SVG report of a version.

pub mod calibrate;
pub mod data;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod mlp;
pub mod registry;
pub mod report;
pub mod schema;
pub mod scorer;
pub mod toy;
pub mod train;

pub use data::{Part, RawRow, Table};
pub use registry::{Registry, load_model};
pub use schema::{CLV_COLUMNS, FeatureSchema};
pub use scorer::{LearnerKind, Model, Scorer};
pub use train::{Evaluation, TrainConfig, TrainEvent, Trained, evaluate, train};
