//! The model registry: `<root>/<task>/<version>/` holds `model.json` (learner, calibration
//! and feature schema), `config.json`, `schema.json`, `metrics.json` and `report.html`.
//! `<root>/<task>/aliases.json` maps aliases (`champion`, `challenger`, …) to versions and
//! `<root>/<task>/aliases.log` is the append-only history of every change.
//!
//! A version is written into a hidden temporary directory and renamed into place, so a
//! failed or concurrent save never leaves a half-written version behind.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schema::FeatureSchema;
use super::scorer::Model;
use super::train::{Evaluation, TrainConfig, task_name};
use crate::error::{Error, IoContext, Result};
use crate::features::Task;

/// One entry of an alias's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasChange {
    /// RFC 3339 UTC.
    pub at: String,
    pub alias: String,
    pub version: String,
    pub previous: Option<String>,
}

/// A stored version with its metrics.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: String,
    pub created: String,
    pub evaluation: Evaluation,
    pub aliases: Vec<String>,
}

/// The model registry rooted at a directory (`--models`, default `models/`).
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

fn version_number(v: &str) -> Option<u64> {
    v.strip_prefix('v')?.parse().ok()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(value)?;
    std::fs::write(path, s).at(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).at(path)?;
    serde_json::from_str(&s).map_err(|e| Error::Contract {
        path: path.to_path_buf(),
        message: format!("not a valid file of this kind: {e}"),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Validates an alias name (letters, digits, `_`, `-`).
fn check_alias(alias: &str) -> Result<()> {
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || version_number(alias).is_some()
    {
        return Err(Error::Invalid(format!(
            "alias `{alias}`: use letters, digits, `_` or `-`, and not the form of a version (v7)"
        )));
    }
    Ok(())
}

impl Registry {
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn task_dir(&self, task: Task) -> PathBuf {
        self.root.join(task_name(task))
    }

    pub fn version_dir(&self, task: Task, version: &str) -> PathBuf {
        self.task_dir(task).join(version)
    }

    /// Saves a new version and returns its name (`v1`, `v2`, …); `report` renders
    /// `report.html` for the version name it is given.
    pub fn save(
        &self,
        model: &Model,
        config: &TrainConfig,
        evaluation: &Evaluation,
        report: &dyn Fn(&str) -> Result<String>,
    ) -> Result<String> {
        let task = model.task()?;
        let dir = self.task_dir(task);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        std::fs::create_dir_all(&tmp).at(&tmp)?;
        let written = (|| -> Result<()> {
            write_json(&tmp.join("model.json"), model)?;
            write_json(&tmp.join("config.json"), config)?;
            write_json(&tmp.join("schema.json"), &model.schema)?;
            write_json(&tmp.join("metrics.json"), evaluation)?;
            write_json(
                &tmp.join("created.json"),
                &serde_json::json!({ "created": now() }),
            )
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let mut next = self
            .version_names(task)?
            .iter()
            .filter_map(|v| version_number(v))
            .max()
            .unwrap_or(0)
            + 1;
        loop {
            let version = format!("v{next}");
            let target = dir.join(&version);
            let html = tmp.join("report.html");
            if let Err(e) = report(&version).and_then(|h| std::fs::write(&html, h).at(&html)) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
            // rename onto an existing non-empty directory fails, so a concurrent save
            // that took this number makes us try the next one (with its report).
            if !target.exists() && std::fs::rename(&tmp, &target).is_ok() {
                return Ok(version);
            }
            next += 1;
            if next > 1_000_000 {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::Data(format!(
                    "{}: no free version name",
                    dir.display()
                )));
            }
        }
    }

    fn version_names(&self, task: Task) -> Result<Vec<String>> {
        let dir = self.task_dir(task);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .at(&dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("model.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| version_number(n).is_some())
            .collect();
        v.sort_by_key(|n| version_number(n));
        Ok(v)
    }

    /// All versions of a task, oldest first.
    pub fn versions(&self, task: Task) -> Result<Vec<VersionInfo>> {
        let aliases = self.aliases(task)?;
        self.version_names(task)?
            .into_iter()
            .map(|version| {
                let dir = self.version_dir(task, &version);
                let evaluation: Evaluation = read_json(&dir.join("metrics.json"))?;
                let created = read_json::<serde_json::Value>(&dir.join("created.json"))
                    .ok()
                    .and_then(|v| v["created"].as_str().map(String::from))
                    .unwrap_or_default();
                let names = aliases
                    .iter()
                    .filter(|(_, v)| **v == version)
                    .map(|(a, _)| a.clone())
                    .collect();
                Ok(VersionInfo {
                    version,
                    created,
                    evaluation,
                    aliases: names,
                })
            })
            .collect()
    }

    /// The alias → version map of a task.
    pub fn aliases(&self, task: Task) -> Result<BTreeMap<String, String>> {
        let p = self.task_dir(task).join("aliases.json");
        if !p.exists() {
            return Ok(BTreeMap::new());
        }
        read_json(&p)
    }

    /// The history of alias changes, oldest first.
    pub fn history(&self, task: Task) -> Result<Vec<AliasChange>> {
        let p = self.task_dir(task).join("aliases.log");
        if !p.exists() {
            return Ok(Vec::new());
        }
        let s = std::fs::read_to_string(&p).at(&p)?;
        s.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| Error::Contract {
                    path: p.clone(),
                    message: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// Resolves a version name or an alias to a version name.
    pub fn resolve(&self, task: Task, name: &str) -> Result<String> {
        if version_number(name).is_some() {
            if self.version_dir(task, name).join("model.json").is_file() {
                return Ok(name.to_string());
            }
            return Err(Error::Invalid(format!(
                "no {} model version `{name}` in {} (see `baton models list`)",
                task_name(task),
                self.task_dir(task).display()
            )));
        }
        self.aliases(task)?.get(name).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "no {} model has the alias `{name}` (see `baton models list`; `baton models promote` sets one)",
                task_name(task)
            ))
        })
    }

    /// Points `alias` at `version` and appends the change to the history.
    pub fn promote(&self, task: Task, version: &str, alias: &str) -> Result<AliasChange> {
        check_alias(alias)?;
        let version = self.resolve(task, version)?;
        let mut aliases = self.aliases(task)?;
        let previous = aliases.insert(alias.to_string(), version.clone());
        let change = AliasChange {
            at: now(),
            alias: alias.to_string(),
            version,
            previous,
        };
        let dir = self.task_dir(task);
        let log = dir.join("aliases.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .at(&log)?;
        writeln!(f, "{}", serde_json::to_string(&change)?).at(&log)?;
        let tmp = dir.join(format!(".aliases-{}.json", std::process::id()));
        write_json(&tmp, &aliases)?;
        let path = dir.join("aliases.json");
        std::fs::rename(&tmp, &path).at(&path)?;
        Ok(change)
    }

    /// Loads a version (or alias). With `expected`, a model whose feature schema differs
    /// from it is refused with the list of differences.
    pub fn load(
        &self,
        task: Task,
        name: &str,
        expected: Option<&FeatureSchema>,
    ) -> Result<(String, Model)> {
        let version = self.resolve(task, name)?;
        let path = self.version_dir(task, &version).join("model.json");
        let model = load_model(&path, expected)?;
        if model.task()? != task {
            return Err(Error::Contract {
                path,
                message: format!("is a {} model, not {}", model.task, task_name(task)),
            });
        }
        Ok((version, model))
    }
}

/// Reads a `model.json`, checking its schema against `expected`.
pub fn load_model(path: &Path, expected: Option<&FeatureSchema>) -> Result<Model> {
    let model: Model = read_json(path)?;
    if let Some(expected) = expected {
        let diff = model.schema.diff(expected);
        if !diff.is_empty() {
            return Err(Error::Contract {
                path: path.to_path_buf(),
                message: format!(
                    "the model's feature schema does not match the feature specs ({} difference{}):\n  - {}\nretrain the model, or use the baton.toml it was trained with",
                    diff.len(),
                    if diff.len() == 1 { "" } else { "s" },
                    diff.join("\n  - ")
                ),
            });
        }
    }
    Ok(model)
}
