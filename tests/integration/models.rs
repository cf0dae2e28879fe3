//! Models end to end on simulated data: quality against the oracle, save → load → score,
//! schema mismatch refused, the registry's aliases and history, the Scorer trait.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use baton::config::Config;
use baton::features::{DatasetSpec, FeatureSet, Task, cutoffs_every, write_dataset};
use baton::models::{
    FeatureSchema, LearnerKind, Model, Part, Registry, Scorer, Table, TrainConfig, Trained, train,
};
use baton::sim::{SimParams, simulate};
use baton::store::{DataDir, read_parquet};

/// One simulated data directory with the three training sets, shared by the tests.
pub(crate) struct Lab {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

pub(crate) fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let data = DataDir::create(tmp.path()).unwrap();
        let config = Config::default();
        let params = SimParams {
            customers: 12_000,
            days: 120,
            seed: 11,
            start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            action_rate: 0.15,
        };
        simulate(&config, &params, &data, &|_| {}).unwrap();
        let set = FeatureSet::compile(&config.features, &config.actions).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ctx = data.session().await.unwrap();
            let cutoffs = cutoffs_every(&ctx, 30, 30).await.unwrap();
            for task in [Task::Churn, Task::Response, Task::Channel] {
                let spec = DatasetSpec::new(task, cutoffs.clone());
                let out = tmp.path().join(format!("{task:?}.parquet"));
                write_dataset(&data, &set, &spec, &out).await.unwrap();
            }
        });
        Lab {
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    })
}

fn schema(task: Task) -> FeatureSchema {
    let c = Config::default();
    let set = FeatureSet::compile(&c.features, &c.actions).unwrap();
    FeatureSchema::for_task(task, &set, &c.actions)
}

pub(crate) fn table(task: Task) -> Table {
    Table::load(
        &lab().dir.join(format!("{task:?}.parquet")),
        task,
        &schema(task),
        None,
    )
    .unwrap()
}

pub(crate) fn fit(task: Task, learner: LearnerKind) -> Trained {
    let t = table(task);
    let cfg = TrainConfig {
        learner,
        importance_rows: 1000,
        ..TrainConfig::default()
    };
    train(&t, &schema(task), &cfg, &|_| {}).unwrap()
}

fn ratio_line(task: Task, t: &Trained) -> String {
    let e = &t.evaluation;
    format!(
        "{task:?} {}: AUC {:?} oracle {:?} ratio {:?}",
        e.learner.as_str(),
        e.auc,
        e.oracle_auc,
        e.oracle_ratio
    )
}

/// The best learner of each task against the oracle, (AUC − 0.5) / (oracle AUC − 0.5),
/// on test rows with a fixed seed (today churn 0.99, response 0.62, channel 0.81). Churn
/// meets the target of 0.95. Response and channel do not: the oracle knows hidden
/// per-customer traits (responsiveness per channel and per action kind, annoyance,
/// session affinities) that a few months of behaviour reveal only in part; there the
/// floors below are today's measured levels less a margin, so a regression in the
/// learners or the data still fails this test.
#[test]
fn best_learner_of_each_task_against_the_oracle() {
    for (task, learners, floor) in [
        (
            Task::Churn,
            vec![LearnerKind::Gbdt, LearnerKind::Logistic],
            0.95,
        ),
        (
            Task::Response,
            vec![LearnerKind::Gbdt, LearnerKind::Logistic],
            0.55,
        ),
        (
            // 0.81 today (gbdt), with the 90-day channel mix features
            Task::Channel,
            vec![LearnerKind::Gbdt, LearnerKind::Logistic],
            0.75,
        ),
    ] {
        let mut lines = Vec::new();
        let mut best = f64::NEG_INFINITY;
        for l in learners {
            let t = fit(task, l);
            lines.push(ratio_line(task, &t));
            best = best.max(t.evaluation.oracle_ratio.expect("oracle ratio"));
        }
        eprintln!("{}", lines.join("\n"));
        assert!(
            best >= floor,
            "{task:?}: best oracle ratio {best:.3} < {floor}\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn save_load_score_is_identical_and_a_schema_mismatch_is_refused() {
    let task = Task::Churn;
    let t = table(task);
    let models = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let registry = Registry::open(models.path());
    let rows: Vec<usize> = t.rows(Part::Test).into_iter().take(500).collect();
    for learner in LearnerKind::ALL {
        let trained = fit(task, learner);
        let cfg = TrainConfig::default();
        let v = registry
            .save(&trained.model, &cfg, &trained.evaluation, &|v| {
                Ok(format!("<html>{v}</html>"))
            })
            .unwrap();
        let (_, loaded) = registry.load(task, &v, Some(&schema(task))).unwrap();
        // the training set's customer-value fit travels with the model, to score online
        assert!(t.clv.is_some());
        assert_eq!(trained.model.schema.clv, t.clv);
        assert_eq!(loaded.schema.clv, t.clv);
        let a = trained.model.predict_rows(&t, &rows);
        let b = loaded.predict_rows(&t, &rows);
        assert_eq!(
            a, b,
            "{learner:?}: predictions changed through save and load"
        );
        assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    // The current specs lose a feature and gain another: the load names both.
    let mut c = Config::default();
    let removed = c.features.remove(0).name;
    let mut extra = c.features[0].clone();
    extra.name = "a_brand_new_feature".into();
    c.features.push(extra);
    let set = FeatureSet::compile(&c.features, &c.actions).unwrap();
    let changed = FeatureSchema::for_task(task, &set, &c.actions);
    let err = registry
        .load(task, "v1", Some(&changed))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match the feature specs"), "{err}");
    assert!(
        err.contains(&format!("`{removed}` is in the model but not in the specs")),
        "{err}"
    );
    assert!(
        err.contains("`a_brand_new_feature` is in the specs but not in the model"),
        "{err}"
    );
}

#[test]
fn registry_aliases_keep_an_append_only_history() {
    let trained = fit(Task::Churn, LearnerKind::Logistic);
    let models = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let r = Registry::open(models.path());
    let cfg = TrainConfig::default();
    let v1 = r
        .save(&trained.model, &cfg, &trained.evaluation, &|_| {
            Ok("x".into())
        })
        .unwrap();
    let v2 = r
        .save(&trained.model, &cfg, &trained.evaluation, &|_| {
            Ok("x".into())
        })
        .unwrap();
    assert_eq!((v1.as_str(), v2.as_str()), ("v1", "v2"));
    r.promote(Task::Churn, "v1", "champion").unwrap();
    r.promote(Task::Churn, "v2", "challenger").unwrap();
    let c = r.promote(Task::Churn, "challenger", "champion").unwrap();
    assert_eq!(c.previous.as_deref(), Some("v1"));
    assert_eq!(r.resolve(Task::Churn, "champion").unwrap(), "v2");
    let h = r.history(Task::Churn).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[0].alias.as_str(), h[0].version.as_str()),
        ("champion", "v1")
    );
    assert_eq!(h[2].previous.as_deref(), Some("v1"));
    let versions = r.versions(Task::Churn).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].aliases, vec!["challenger", "champion"]);
    // Unknown names and bad aliases are clear errors.
    let e = r.load(Task::Churn, "v9", None).unwrap_err().to_string();
    assert!(e.contains("no churn model version `v9`"), "{e}");
    let e = r.promote(Task::Churn, "v1", "v3").unwrap_err().to_string();
    assert!(e.contains("alias `v3`"), "{e}");
    let e = r
        .load(Task::Churn, "production", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("alias `production`"), "{e}");
}

#[test]
fn scorer_is_shared_across_threads_and_batch_scoring_matches_rows() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Scorer>();
    assert_send_sync::<Model>();
    assert_send_sync::<Registry>();

    let task = Task::Response;
    let trained = fit(task, LearnerKind::Gbdt);
    let t = table(task);
    let scorer: Arc<dyn Scorer> = trained.model.clone().into_scorer();
    // Batch scoring reads the training set's own columns by name.
    let (_, batches) = read_parquet(&lab().dir.join("Response.parquet")).unwrap();
    let batch = &batches[0];
    let mut batch_out = Vec::new();
    scorer.score_batch(batch, &mut batch_out).unwrap();
    let rows: Vec<usize> = (0..batch.num_rows()).collect();
    let by_row = trained.model.predict_rows(&t, &rows);
    assert_eq!(batch_out, by_row);
    // The same scorer from several threads.
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let s = Arc::clone(&scorer);
            let mut x = vec![0.0; s.schema().width()];
            t.row_into(k, &mut x);
            std::thread::spawn(move || {
                let mut out = [0.0];
                s.score_into(&x, &mut out).unwrap();
                out[0]
            })
        })
        .collect();
    for (k, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), by_row[k]);
    }
    // A wrong width is an error, not a panic.
    let mut out = [0.0];
    assert!(scorer.score_into(&[1.0, 2.0], &mut out).is_err());
    // A new action (not in the catalog) still gets a score from channel and kind.
    assert!(
        trained.model.schema.categorical[0]
            .values
            .iter()
            .all(|a| a != "brand_new")
    );
}

#[test]
fn a_training_set_of_another_task_is_refused() {
    let e = Table::load(
        &lab().dir.join("Channel.parquet"),
        Task::Churn,
        &schema(Task::Churn),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a churn training set"), "{e}");
    let e = Table::load(
        &lab().dir.join("Churn.parquet"),
        Task::Response,
        &schema(Task::Response),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a response training set"), "{e}");
}
