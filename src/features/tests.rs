//! Unit tests of specs, validation and the online state; batch/online parity lives in the
//! integration tests (`tests/integration/features.rs`).

use std::sync::Arc;

use super::*;
use crate::config::{Config, default_actions};
use crate::decide::expr::Value;
use crate::sim::ELIGIBILITY_VARIABLES;

fn compile(specs: &[FeatureSpec]) -> crate::Result<FeatureSet> {
    FeatureSet::compile(specs, &default_actions())
}

fn spec(name: &str, aggregation: &str) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        aggregation: aggregation.into(),
        ..Default::default()
    }
}

#[test]
fn default_set_is_large_and_covers_eligibility_variables() {
    let set = compile(&default_features()).unwrap();
    assert!(set.specs().len() >= 40, "{}", set.specs().len());
    for v in ELIGIBILITY_VARIABLES {
        assert!(set.index(v).is_some(), "missing {v}");
    }
    for a in default_actions() {
        let e = a.eligibility_expr().unwrap();
        e.check_variables(|v| set.index(v).is_some()).unwrap();
    }
}

fn err(specs: &[FeatureSpec]) -> String {
    compile(specs).unwrap_err().to_string()
}

#[test]
fn errors_name_the_feature_and_the_part() {
    let mut s = spec("spend", "summ");
    let m = err(&[s.clone()]);
    assert!(
        m.contains("features[0].aggregation") && m.contains("`spend`") && m.contains("summ"),
        "{m}"
    );

    s.aggregation = "sum".into();
    s.field = Some("amount".into());
    let m = err(&[s.clone()]);
    assert!(
        m.contains("features[0].field") && m.contains("`spend`") && m.contains("amount"),
        "{m}"
    );

    s.field = Some("value".into());
    s.window = Some("7days".into());
    let m = err(&[s.clone()]);
    assert!(
        m.contains("features[0].window") && m.contains("`spend`") && m.contains("7days"),
        "{m}"
    );

    s.window = Some("7d".into());
    s.filter = Some("event_type = 'purchase' and chanel = 'web'".into());
    let m = err(&[s.clone()]);
    assert!(
        m.contains("features[0].filter") && m.contains("chanel") && m.contains("position 28"),
        "{m}"
    );

    s.filter = Some("event_type = ".into());
    let m = err(&[s.clone()]);
    assert!(
        m.contains("features[0].filter") && m.contains("position 13"),
        "{m}"
    );

    let mut r = spec("rate", "ratio");
    r.numerator = Some("spend".into());
    r.denominator = Some("nope".into());
    s.filter = None;
    let m = err(&[s.clone(), r]);
    assert!(
        m.contains("features[1].denominator") && m.contains("`rate`") && m.contains("nope"),
        "{m}"
    );

    let mut a = spec("a", "expr");
    a.expr = Some("b + 1".into());
    let mut b = spec("b", "expr");
    b.expr = Some("a * 2".into());
    let m = err(&[a, b]);
    assert!(m.contains("cycle") && m.contains("a -> b -> a"), "{m}");

    let mut d = spec("d", "count");
    d.numerator = Some("x".into());
    assert!(err(&[d]).contains("features[0].numerator"));

    let m = err(&[spec("x", "count"), spec("x", "count")]);
    assert!(m.contains("duplicate"), "{m}");
}

#[test]
fn config_toml_round_trip_and_errors() {
    let text = r#"
[[features]]
name = "web_visits_7d"
aggregation = "count"
filter = "event_type = 'visit' and channel in ('web', 'app')"
window = "7d"
"#;
    let c = Config::from_toml(text).unwrap();
    assert_eq!(c.features.len(), 1);
    let bad = text.replace("\"7d\"", "\"week\"");
    let m = Config::from_toml(&bad).unwrap_err().to_string();
    assert!(
        m.contains("features[0].window") && m.contains("web_visits_7d"),
        "{m}"
    );
    let c = Config::default();
    let back = Config::from_toml(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

fn ev(ts: i64, t: &str, channel: Option<&str>, value: Option<f64>) -> Event {
    Event {
        ts,
        event_type: t.into(),
        channel: channel.map(Into::into),
        value,
        ..Default::default()
    }
}

#[test]
fn online_windows_are_day_aligned_and_strict() {
    let set = Arc::new(compile(&default_features()).unwrap());
    let mut s = OnlineState::new(set.clone(), None);
    let d = |day: i64, h: i64| day * DAY_US + h * 3_600_000_000;
    // Purchases on days 10 (two), 50 and 99 (late, out of order).
    s.update(&ev(d(50, 12), "purchase", Some("web"), Some(20.0)));
    s.update(&ev(d(10, 9), "purchase", Some("store"), Some(10.0)));
    s.update(&ev(d(10, 9), "purchase", Some("store"), Some(30.0)));
    s.update(&ev(d(99, 23), "add_to_cart", Some("web"), None));
    let now = d(100, 0);
    assert!(s.exact_at(now));
    let v = s.vector(now);
    let get = |n: &str| set.value(&v, n);
    assert_eq!(get("purchase_count"), Value::Num(3.0));
    // 90d window at day 100 covers days 10..=100.
    assert_eq!(get("purchases_90d"), Value::Num(3.0));
    assert_eq!(get("spend_90d"), Value::Num(60.0));
    assert_eq!(get("purchases_30d"), Value::Num(0.0));
    assert_eq!(get("days_since_last_purchase"), Value::Num(50.0));
    assert_eq!(get("days_since_first_purchase"), Value::Num(90.0));
    // Tie on ts: the largest value is the last.
    assert_eq!(get("last_order_value"), Value::Num(20.0));
    assert_eq!(get("max_order_value_90d"), Value::Num(30.0));
    assert_eq!(get("cart_abandoned_7d"), Value::Bool(true));
    assert_eq!(get("last_nps"), Value::Null);
    assert_eq!(get("segment"), Value::Null);
    // One day later, day 10 leaves the 90d window.
    let v = s.vector(d(101, 0));
    assert_eq!(set.value(&v, "purchases_90d"), Value::Num(1.0));
    assert_eq!(set.value(&v, "avg_order_value_90d"), Value::Num(20.0));
}

#[test]
fn profile_encodings() {
    let set = Arc::new(compile(&default_features()).unwrap());
    let p = Profile {
        created_at: Some(5 * DAY_US + 7),
        attributes: [
            Some("25-34".into()),
            Some("mars".into()),
            Some("vip".into()),
        ],
        consents: [Some(true), None, Some(false), None, None],
    };
    let s = OnlineState::new(set.clone(), Some(p));
    let v = s.vector(20 * DAY_US);
    assert_eq!(set.value(&v, "tenure_days"), Value::Num(15.0));
    assert_eq!(set.value(&v, "segment"), Value::Str("vip".into()));
    assert_eq!(set.value(&v, "region"), Value::Null);
    assert_eq!(set.value(&v, "consent_email"), Value::Bool(true));
    assert_eq!(set.value(&v, "consent_sms"), Value::Bool(false));
    let c = set
        .columns()
        .iter()
        .position(|c| c == "region__north")
        .unwrap();
    assert_eq!(v[c], Some(0.0));
    assert!(set.value(&v, "spend_90d") == Value::Num(0.0));
}
