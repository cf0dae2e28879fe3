//! Ingest: every contract rejects wrong types, missing required columns and unparseable
//! timestamps with clear errors; mixed files store the good rows; events are idempotent.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use baton::schema::TableKind;
use baton::store::{DataDir, ingest_file, read_parquet, write_parquet_atomic};

fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn stored_rows(dir: &DataDir) -> usize {
    DataDir::parts(&dir.events_dir())
        .unwrap()
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
fn csv_mixed_rows_store_good_ones_and_report_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let src = tmp.path().join("events.csv");
    write(
        &src,
        "event_id,customer_id,ts,event_type,channel,value\n\
         e1,c1,2025-01-01T10:00:00Z,visit,web,\n\
         e2,c1,not-a-time,visit,web,\n\
         e3,c2,2025-01-02,purchase,store,abc\n\
         e4,c2,2025-01-02,purchase,store,19.99\n\
         e5,c3,2025-01-03,visit\n",
    );
    let r = ingest_file(&dir, TableKind::Events, &src, 10).unwrap();
    assert_eq!((r.rows_read, r.stored, r.rejected), (5, 2, 3));
    let msgs: Vec<String> = r.first_errors.iter().map(ToString::to_string).collect();
    assert!(
        msgs[0].contains("row 2")
            && msgs[0].contains("`ts`")
            && msgs[0].contains("cannot parse timestamp"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("row 3")
            && msgs[1].contains("`value`")
            && msgs[1].contains("expected a number"),
        "{msgs:?}"
    );
    assert!(
        msgs[2].contains("row 5") && msgs[2].contains("fields"),
        "{msgs:?}"
    );
    let rejects = std::fs::read_to_string(r.rejects_path.unwrap()).unwrap();
    assert_eq!(rejects.lines().count(), 4, "{rejects}");
    assert_eq!(stored_rows(&dir), 2);

    // Idempotent on event_id: the same file again stores nothing new.
    let again = ingest_file(&dir, TableKind::Events, &src, 10).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 2));
    assert_eq!(stored_rows(&dir), 2);
}

#[test]
fn missing_required_column_fails_the_file_and_keeps_stored_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let good = tmp.path().join("good.csv");
    write(&good, "customer_id,ts,event_type\nc1,2025-01-01,visit\n");
    ingest_file(&dir, TableKind::Events, &good, 10).unwrap();
    let bad = tmp.path().join("bad.csv");
    write(&bad, "customer_id,event_type\nc1,visit\n");
    let err = ingest_file(&dir, TableKind::Events, &bad, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.csv") && err.contains("missing required column `ts`"),
        "{err}"
    );
    assert_eq!(stored_rows(&dir), 1);

    let customers = tmp.path().join("customers.csv");
    write(&customers, "customer_id,region\nc1,north\n");
    let err = ingest_file(&dir, TableKind::Customers, &customers, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`created_at`"), "{err}");
}

#[test]
fn jsonl_rows_with_wrong_types_and_bad_json_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let src = tmp.path().join("events.jsonl");
    write(
        &src,
        "{\"customer_id\":\"c1\",\"ts\":\"2025-01-01T00:00:00Z\",\"event_type\":\"survey_nps\",\"value\":9}\n\
         {\"customer_id\":\"c1\",\"ts\":true,\"event_type\":\"visit\"}\n\
         {\"customer_id\":\"c1\",\"ts\":\"2025-01-01\",\"event_type\":\"visit\"\n\
         \n\
         {\"customer_id\":\"c2\",\"ts\":\"2025-01-01\",\"event_type\":\"survey_nps\",\"value\":\"high\"}\n\
         {\"customer_id\":\"c3\",\"ts\":\"2025-01-01\",\"event_type\":\"checkout_start\",\"device\":\"ios\"}\n",
    );
    let r = ingest_file(&dir, TableKind::Events, &src, 10).unwrap();
    assert_eq!((r.rows_read, r.stored, r.rejected), (5, 2, 3));
    assert_eq!(r.first_errors[0].column, "ts");
    assert!(r.first_errors[0].reason.contains("expected a timestamp"));
    assert!(r.first_errors[1].reason.contains("malformed JSON"));
    assert_eq!(r.first_errors[2].row, 5);
    let (_, batches) = read_parquet(r.stored_path.as_ref().unwrap()).unwrap();
    let props = batches[0].column_by_name("properties").unwrap();
    let props = props.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(props.value(1), r#"{"device":"ios"}"#);
}

#[test]
fn parquet_wrong_column_type_is_refused_and_mixed_rows_are_split() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("ts", DataType::Boolean, true),
        Field::new("event_type", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["c1"])),
            Arc::new(BooleanArray::from(vec![true])),
            Arc::new(StringArray::from(vec!["visit"])),
        ],
    )
    .unwrap();
    let bad = tmp.path().join("bad.parquet");
    write_parquet_atomic(&bad, schema, &[batch]).unwrap();
    let err = ingest_file(&dir, TableKind::Events, &bad, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `ts` has type Boolean"), "{err}");

    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("ts", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![Some("c1"), None, Some("c3")])),
            Arc::new(StringArray::from(vec![
                "2025-01-01",
                "2025-01-01",
                "01/02/2025",
            ])),
            Arc::new(StringArray::from(vec!["purchase", "visit", "visit"])),
            Arc::new(Float64Array::from(vec![Some(10.0), None, None])),
        ],
    )
    .unwrap();
    let mixed = tmp.path().join("mixed.parquet");
    write_parquet_atomic(&mixed, schema, &[batch]).unwrap();
    let r = ingest_file(&dir, TableKind::Events, &mixed, 10).unwrap();
    assert_eq!((r.stored, r.rejected), (1, 2));
    assert_eq!(r.first_errors[0].column, "customer_id");
    assert_eq!(r.first_errors[1].column, "ts");
}

#[test]
fn customers_are_upserted_and_consents_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let a = tmp.path().join("a.csv");
    write(
        &a,
        "customer_id,created_at,region,consent_email,consent_sms,income\n\
         c1,2024-01-01,north,true,false,50k\n\
         c2,2024-02-01,south,yes,maybe,\n\
         c3,2024-03-01,east,,,\n",
    );
    let r = ingest_file(&dir, TableKind::Customers, &a, 10).unwrap();
    assert_eq!((r.stored, r.rejected), (2, 1));
    assert_eq!(r.first_errors[0].column, "consent_sms");
    let b = tmp.path().join("b.jsonl");
    write(
        &b,
        "{\"customer_id\":\"c1\",\"created_at\":\"2024-01-01\",\"region\":\"west\",\"consent_email\":false}\n",
    );
    ingest_file(&dir, TableKind::Customers, &b, 10).unwrap();
    let (_, batches) = read_parquet(&dir.customers_path()).unwrap();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(all.num_rows(), 2);
    let ids = all
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let region = all
        .column_by_name("region")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone();
    let c1 = (0..all.num_rows()).find(|&i| ids.value(i) == "c1").unwrap();
    assert_eq!(region.value(c1), "west");
}

#[test]
fn unknown_file_type_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path().join("data")).unwrap();
    let src = tmp.path().join("events.xlsx");
    write(&src, "x");
    let err = ingest_file(&dir, TableKind::Events, &src, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown file type"), "{err}");
}
