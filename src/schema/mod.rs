//! The data contracts of DESIGN.md as Arrow schemas, plus the validation that turns raw rows
//! (CSV, JSON Lines, Parquet) into contract-typed batches with per-row errors.

mod validate;

pub use validate::{Cell, RowError, TableKind, Validated, Validator};

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The event-time type of every `ts` column: microseconds, UTC.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Channels Baton knows. Other channel names are rejected at ingest.
pub const CHANNELS: [&str; 9] = [
    "web",
    "app",
    "email",
    "sms",
    "push",
    "store",
    "call_center",
    "chat",
    "mail",
];

/// Canonical event types. Unknown types are accepted and kept.
pub const EVENT_TYPES: [&str; 17] = [
    "visit",
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "checkout_start",
    "purchase",
    "return",
    "app_open",
    "support_contact",
    "survey_nps",
    "survey_csat",
    "action_delivered",
    "action_opened",
    "action_clicked",
    "action_converted",
    "unsubscribe",
];

/// Consent columns of the customers table and the channel each governs.
/// Channels not listed here (web, app, store, chat) are inbound: the customer is present,
/// so no marketing consent is needed to show them something.
pub const CONSENT_COLUMNS: [(&str, &str); 5] = [
    ("consent_email", "email"),
    ("consent_sms", "sms"),
    ("consent_push", "push"),
    ("consent_call", "call_center"),
    ("consent_mail", "mail"),
];

/// The consent column governing `channel`, if the channel needs consent.
pub fn consent_column(channel: &str) -> Option<&'static str> {
    CONSENT_COLUMNS
        .iter()
        .find(|(_, c)| *c == channel)
        .map(|(col, _)| *col)
}

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, true),
        Field::new("action_id", DataType::Utf8, true),
        Field::new("decision_id", DataType::Utf8, true),
        Field::new("item_id", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("properties", DataType::Utf8, true),
    ]))
});

/// The `events` contract.
pub fn events_schema() -> SchemaRef {
    EVENTS.clone()
}

static CUSTOMERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("created_at", ts_type(), false),
        Field::new("age_band", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
    ];
    for (col, _) in CONSENT_COLUMNS {
        fields.push(Field::new(col, DataType::Boolean, true));
    }
    fields.push(Field::new("attributes", DataType::Utf8, true));
    fields.push(Field::new("updated_at", ts_type(), true));
    Arc::new(Schema::new(fields))
});

/// The `customers` contract. Attribute columns beyond `age_band`, `region` and `segment`
/// are kept in `attributes` as a JSON object; a missing consent means no consent.
pub fn customers_schema() -> SchemaRef {
    CUSTOMERS.clone()
}

/// The struct of one ranked candidate in a decision.
pub fn candidate_fields() -> Fields {
    Fields::from(vec![
        Field::new("action_id", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("p_response", DataType::Float64, true),
        Field::new("value", DataType::Float64, false),
        Field::new("score", DataType::Float64, true),
    ])
}

static DECISIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("decision_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("context", DataType::Utf8, true),
        Field::new(
            "candidates",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(candidate_fields()),
                true,
            ))),
            true,
        ),
        Field::new("action_id", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("position", DataType::Int32, false),
        Field::new("propensity", DataType::Float64, false),
        Field::new("explore", DataType::Boolean, false),
        Field::new("policy_version", DataType::Utf8, false),
        Field::new("model_versions", DataType::Utf8, true),
    ]))
});

/// The `decisions` contract (the decision log): the chosen action and channel, its
/// position in the ranking and the true probability that the policy chose it.
pub fn decisions_schema() -> SchemaRef {
    DECISIONS.clone()
}

static OUTCOMES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("decision_id", DataType::Utf8, false),
        Field::new("action_id", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("reward", DataType::Float64, false),
    ]))
});

/// The `outcomes` contract.
pub fn outcomes_schema() -> SchemaRef {
    OUTCOMES.clone()
}
