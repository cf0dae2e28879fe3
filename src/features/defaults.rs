//! The built-in feature set (used when `baton.toml` has no `[[features]]`): recency,
//! frequency and monetary value, browsing, channel mix, carts, support, satisfaction,
//! responses to past actions per kind and channel, tenure, profile and consents. It includes
//! every name of [`crate::sim::ELIGIBILITY_VARIABLES`] with the simulator's meaning, so the
//! catalog's eligibility rules evaluate on features.

use super::spec::FeatureSpec;
use crate::schema::CONSENT_COLUMNS;
use crate::sim::{AGE_BANDS, REGIONS, SEGMENTS};

fn agg(
    name: &str,
    aggregation: &str,
    field: Option<&str>,
    filter: &str,
    window: &str,
) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        aggregation: aggregation.into(),
        field: field.map(Into::into),
        filter: (!filter.is_empty()).then(|| filter.into()),
        window: (window != "all").then(|| window.into()),
        ..Default::default()
    }
}

fn count(name: &str, filter: &str, window: &str) -> FeatureSpec {
    agg(name, "count", None, filter, window)
}

fn ratio(name: &str, numerator: &str, denominator: &str) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        aggregation: "ratio".into(),
        numerator: Some(numerator.into()),
        denominator: Some(denominator.into()),
        ..Default::default()
    }
}

fn expr(name: &str, e: &str) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        aggregation: "expr".into(),
        expr: Some(e.into()),
        ..Default::default()
    }
}

fn attribute(name: &str, categories: &[&str]) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        aggregation: "attribute".into(),
        column: Some(name.into()),
        encoding: Some("one_hot".into()),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

const PURCHASE: &str = "event_type = 'purchase'";
const VISIT: &str = "event_type = 'visit'";

/// The default feature set (see the module docs).
pub fn default_features() -> Vec<FeatureSpec> {
    let mut f = vec![
        // Recency, frequency, monetary.
        count("purchase_count", PURCHASE, "all"),
        count("purchases_30d", PURCHASE, "30d"),
        count("purchases_90d", PURCHASE, "90d"),
        agg("spend_30d", "sum", Some("value"), PURCHASE, "30d"),
        agg("spend_90d", "sum", Some("value"), PURCHASE, "90d"),
        agg("spend_total", "sum", Some("value"), PURCHASE, "all"),
        agg("avg_order_value_90d", "avg", Some("value"), PURCHASE, "90d"),
        agg("max_order_value_90d", "max", Some("value"), PURCHASE, "90d"),
        agg("min_order_value_90d", "min", Some("value"), PURCHASE, "90d"),
        agg("last_order_value", "last", Some("value"), PURCHASE, "all"),
        agg(
            "days_since_last_purchase",
            "days_since_last",
            None,
            PURCHASE,
            "all",
        ),
        agg(
            "days_since_first_purchase",
            "days_since_first",
            None,
            PURCHASE,
            "all",
        ),
        agg(
            "distinct_items_90d",
            "distinct_count",
            Some("item_id"),
            PURCHASE,
            "90d",
        ),
        count("returns_90d", "event_type = 'return'", "90d"),
        agg(
            "return_value_90d",
            "sum",
            Some("value"),
            "event_type = 'return'",
            "90d",
        ),
        ratio("return_rate_90d", "returns_90d", "purchases_90d"),
        // Browsing intensity.
        count("visits_7d", VISIT, "7d"),
        count("visits_30d", VISIT, "30d"),
        count("page_views_30d", "event_type = 'page_view'", "30d"),
        count("product_views_30d", "event_type = 'product_view'", "30d"),
        count("searches_30d", "event_type = 'search'", "30d"),
        count("app_opens_30d", "event_type = 'app_open'", "30d"),
        agg(
            "distinct_products_viewed_30d",
            "distinct_count",
            Some("item_id"),
            "event_type = 'product_view'",
            "30d",
        ),
        agg(
            "days_since_last_visit",
            "days_since_last",
            None,
            VISIT,
            "all",
        ),
        ratio("visit_conversion_30d", "purchases_30d", "visits_30d"),
        // Channel mix.
        count(
            "visits_web_30d",
            "event_type = 'visit' and channel = 'web'",
            "30d",
        ),
        count(
            "visits_app_30d",
            "event_type = 'visit' and channel = 'app'",
            "30d",
        ),
        count(
            "visits_store_30d",
            "event_type = 'visit' and channel = 'store'",
            "30d",
        ),
        ratio("app_share_30d", "visits_app_30d", "visits_30d"),
        // The inbound channel mix over 90 days, as shares smoothed towards a third each
        // (one pseudo-visit per channel): a customer's habits show in a month's few visits
        // only in part.
        count("visits_90d", VISIT, "90d"),
        count(
            "visits_web_90d",
            "event_type = 'visit' and channel = 'web'",
            "90d",
        ),
        count(
            "visits_app_90d",
            "event_type = 'visit' and channel = 'app'",
            "90d",
        ),
        count(
            "visits_store_90d",
            "event_type = 'visit' and channel = 'store'",
            "90d",
        ),
        expr("web_share_90d", "(visits_web_90d + 1) / (visits_90d + 3)"),
        expr("app_share_90d", "(visits_app_90d + 1) / (visits_90d + 3)"),
        expr(
            "store_share_90d",
            "(visits_store_90d + 1) / (visits_90d + 3)",
        ),
        count(
            "purchases_online_90d",
            "event_type = 'purchase' and channel in ('web', 'app')",
            "90d",
        ),
        ratio(
            "online_purchase_share_90d",
            "purchases_online_90d",
            "purchases_90d",
        ),
        agg(
            "distinct_channels_30d",
            "distinct_count",
            Some("channel"),
            "event_type in ('visit', 'app_open', 'purchase', 'support_contact', 'action_clicked')",
            "30d",
        ),
        // Carts.
        count("carts_7d", "event_type = 'add_to_cart'", "7d"),
        count("checkouts_30d", "event_type = 'checkout_start'", "30d"),
        agg(
            "days_since_last_cart",
            "days_since_last",
            None,
            "event_type = 'add_to_cart'",
            "all",
        ),
        expr(
            "cart_abandoned_7d",
            "days_since_last_cart is not null and days_since_last_cart < 7 and \
             (days_since_last_purchase is null or days_since_last_purchase > days_since_last_cart)",
        ),
        // Support and satisfaction.
        count(
            "support_contacts_30d",
            "event_type = 'support_contact'",
            "30d",
        ),
        count(
            "support_contacts_90d",
            "event_type = 'support_contact'",
            "90d",
        ),
        agg(
            "days_since_last_support",
            "days_since_last",
            None,
            "event_type = 'support_contact'",
            "all",
        ),
        agg(
            "last_nps",
            "last",
            Some("value"),
            "event_type = 'survey_nps'",
            "all",
        ),
        agg(
            "last_csat",
            "last",
            Some("value"),
            "event_type = 'survey_csat'",
            "all",
        ),
        agg(
            "avg_csat_90d",
            "avg",
            Some("value"),
            "event_type = 'survey_csat'",
            "90d",
        ),
        expr("nps_detractor", "last_nps is not null and last_nps <= 6"),
        // Responses to past actions.
        count("deliveries_30d", "event_type = 'action_delivered'", "30d"),
        count("deliveries_90d", "event_type = 'action_delivered'", "90d"),
        count("opens_90d", "event_type = 'action_opened'", "90d"),
        count("clicks_90d", "event_type = 'action_clicked'", "90d"),
        count("conversions_90d", "event_type = 'action_converted'", "90d"),
        ratio("click_rate_90d", "clicks_90d", "deliveries_90d"),
        ratio("conversion_rate_90d", "conversions_90d", "deliveries_90d"),
        agg(
            "days_since_last_delivery",
            "days_since_last",
            None,
            "event_type = 'action_delivered'",
            "all",
        ),
        agg(
            "distinct_actions_90d",
            "distinct_count",
            Some("action_id"),
            "event_type = 'action_delivered'",
            "90d",
        ),
        count("unsubscribes", "event_type = 'unsubscribe'", "all"),
    ];
    for kind in ["offer", "message", "service"] {
        f.push(count(
            &format!("{kind}_delivered_90d"),
            &format!("event_type = 'action_delivered' and action_kind = '{kind}'"),
            "90d",
        ));
        f.push(count(
            &format!("{kind}_clicked_90d"),
            &format!("event_type = 'action_clicked' and action_kind = '{kind}'"),
            "90d",
        ));
        f.push(ratio(
            &format!("{kind}_click_rate_90d"),
            &format!("{kind}_clicked_90d"),
            &format!("{kind}_delivered_90d"),
        ));
    }
    for ch in ["email", "sms", "push", "call_center"] {
        f.push(count(
            &format!("{ch}_delivered_90d"),
            &format!("event_type = 'action_delivered' and channel = '{ch}'"),
            "90d",
        ));
        f.push(count(
            &format!("{ch}_clicked_90d"),
            &format!("event_type = 'action_clicked' and channel = '{ch}'"),
            "90d",
        ));
        f.push(ratio(
            &format!("{ch}_click_rate_90d"),
            &format!("{ch}_clicked_90d"),
            &format!("{ch}_delivered_90d"),
        ));
    }
    // Profile.
    f.push(FeatureSpec {
        name: "tenure_days".into(),
        aggregation: "tenure_days".into(),
        ..Default::default()
    });
    f.push(attribute("segment", &SEGMENTS));
    f.push(attribute("age_band", &AGE_BANDS));
    f.push(attribute("region", &REGIONS));
    for (col, _) in CONSENT_COLUMNS {
        f.push(FeatureSpec {
            name: col.into(),
            aggregation: "consent".into(),
            column: Some(col.into()),
            ..Default::default()
        });
    }
    f
}
