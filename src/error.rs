//! The crate's error type. Every fallible library function returns [`Result`].
//!
//! Variants carry enough context (file, row, column, key) for a person to act on the
//! message; `main` maps any error to exit code 2 with a one-line cause.

use std::path::PathBuf;

/// Baton's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid; `key` is the dotted path of the offending key.
    #[error("config error at `{key}`: {message}")]
    Config { key: String, message: String },
    /// An input file breaks its data contract as a whole (e.g. a missing required column).
    #[error("{path}: {message}")]
    Contract { path: PathBuf, message: String },
    /// An expression (eligibility, filter) does not parse or refers to something unknown.
    #[error("{context}: {message} (at position {position})")]
    Expression {
        context: String,
        position: usize,
        message: String,
    },
    /// A request or argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Not enough or degenerate data for the requested computation.
    #[error("{0}")]
    Data(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error at a dotted key.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Adds the path to an `std::io::Result`.
pub trait IoContext<T> {
    /// Maps the I/O error to [`Error::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
