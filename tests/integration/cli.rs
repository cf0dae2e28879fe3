//! The CLI end to end: simulate → ingest round-trips; config and input errors exit 2 with
//! a message naming what is wrong.

use std::path::Path;

use arrow::array::RecordBatch;
use assert_cmd::Command;
use baton::store::{DataDir, read_parquet};

fn baton(cwd: &Path) -> Command {
    let mut cmd = Command::cargo_bin("baton").unwrap();
    cmd.current_dir(cwd).arg("--quiet");
    cmd
}

fn rows(paths: &[std::path::PathBuf]) -> usize {
    paths
        .iter()
        .map(|p| {
            read_parquet(p)
                .unwrap()
                .1
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>()
        })
        .sum()
}

#[test]
fn simulate_then_ingest_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let out = baton(tmp.path())
        .args([
            "simulate",
            "--customers",
            "300",
            "--days",
            "40",
            "--seed",
            "7",
            "--out",
            "sim",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim = DataDir::open(tmp.path().join("sim"));
    let parts = DataDir::parts(&sim.events_dir()).unwrap();
    let events = rows(&parts);
    assert!(events > 0);

    let mut cmd = baton(tmp.path());
    cmd.args(["--data", "copy", "ingest", "--customers"])
        .arg(sim.customers_path());
    cmd.arg("--events").arg(&parts[0]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 rejected"), "{stdout}");
    let copy = DataDir::open(tmp.path().join("copy"));
    assert_eq!(
        rows(&DataDir::parts(&copy.events_dir()).unwrap()),
        rows(&parts[..1])
    );
    assert_eq!(rows(&[copy.customers_path()]), 300);

    // The round trip preserves the events exactly (same schema, same rows).
    let (_, a) = read_parquet(&parts[0]).unwrap();
    let (_, b) = read_parquet(&DataDir::parts(&copy.events_dir()).unwrap()[0]).unwrap();
    let a = arrow::compute::concat_batches(&a[0].schema(), &a).unwrap();
    let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    assert_eq!(a, b);

    // Ingesting the same events again is idempotent on event_id.
    let out = baton(tmp.path())
        .args(["--data", "copy", "ingest", "--events"])
        .arg(&parts[0])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 stored"));

    // Summary reads it back.
    let out = baton(tmp.path())
        .args(["--data", "sim", "summary"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("customers: 300")
            && stdout.contains("events by type"),
        "{stdout}"
    );

    // Simulating into a non-empty directory is refused and leaves it alone.
    let out = baton(tmp.path())
        .args([
            "simulate",
            "--customers",
            "10",
            "--days",
            "5",
            "--out",
            "sim",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(rows(&DataDir::parts(&sim.events_dir()).unwrap()), events);
}

#[test]
fn malformed_config_exits_2_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("baton.toml"),
        "[simulate]\ndays = \"ninety\"\n",
    )
    .unwrap();
    let out = baton(tmp.path())
        .args(["simulate", "--out", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("simulate.days"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line cause: {err}");

    std::fs::write(
        tmp.path().join("bad.toml"),
        "[[actions]]\nid = \"x\"\nkind = \"offer\"\nchannels = [\"email\"]\nvalue = -3\n",
    )
    .unwrap();
    let out = baton(tmp.path())
        .args(["--config", "bad.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("actions[0].value"));

    let out = baton(tmp.path())
        .args(["--config", "missing.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn ingest_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = baton(tmp.path())
        .args(["ingest", "--events", "nope.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv"));
    let out = baton(tmp.path()).args(["ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = baton(tmp.path()).args(["summary"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn model_commands_explain_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let fails = |args: &[&str], needle: &str| {
        let out = baton(tmp.path()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    };
    // the closed loop writes no data directory: an --out would be silently ignored
    fails(
        &["simulate", "--policy", "all", "--out", "elsewhere"],
        "cannot be used with",
    );
    fails(&["simulate", "--table", "t.json"], "--policy");
    fails(&["train", "--task", "churn"], "no such training set");
    fails(
        &[
            "train",
            "--task",
            "churn",
            "--settings",
            "{\"gbdt\":{\"depth\":3}}",
        ],
        "no such training set",
    );
    fails(&["models", "compare", "--task", "churn"], "no churn models");
    fails(
        &["models", "promote", "--task", "churn", "--version", "v1"],
        "no churn model version `v1`",
    );
    fails(&["evaluate", "--task", "response"], "no such training set");
    // A file that is not a training set.
    std::fs::create_dir_all(tmp.path().join("data/datasets")).unwrap();
    std::fs::write(
        tmp.path().join("data/datasets/churn.parquet"),
        "not parquet",
    )
    .unwrap();
    fails(&["train", "--task", "churn"], "churn.parquet");
    let out = baton(tmp.path()).args(["models", "list"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no models"));
}
