//! The Complete Journey importer on the committed sample (data/samples/completejourney).

use std::path::Path;

use baton::store::DataDir;
use baton::store::import::import_completejourney;
use baton::store::summary::summarize;

fn sample() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/samples/completejourney"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_journey_sample_imports_to_expected_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let reports = import_completejourney(sample(), &dir).await.unwrap();
    let (customers, events) = (&reports[0], &reports[1]);
    // 40 households appear in the sample's transactions or campaigns.
    assert_eq!((customers.stored, customers.rejected), (40, 0));
    // 2,780 baskets + 36 campaign memberships + 34 coupon redemptions.
    assert_eq!((events.stored, events.rejected), (2_780 + 36 + 34, 0));

    let s = summarize(&dir).await.unwrap();
    let count = |t: &str| {
        s.by_type
            .iter()
            .find(|(n, _)| n == t)
            .map_or(0, |(_, c)| *c)
    };
    assert_eq!(count("purchase") + count("return"), 2_780);
    assert_eq!(count("action_delivered"), 36);
    assert_eq!(count("action_converted"), 34);

    // Importing again is idempotent: event ids are stable.
    let again = import_completejourney(sample(), &dir).await.unwrap();
    assert_eq!((again[1].stored, again[1].duplicates), (0, 2_850));
    assert_eq!(summarize(&dir).await.unwrap().events, 2_850);
}

#[tokio::test]
async fn missing_table_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let err = import_completejourney(tmp.path(), &dir)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing Complete Journey table `transactions`"),
        "{err}"
    );
}
