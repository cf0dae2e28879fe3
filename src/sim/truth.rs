//! The customers table and the per-customer ground truth (`ground_truth.parquet`).
//!
//! Ground truth has one row per customer × cutoff. Cutoffs are the starts of days 30, 60,
//! 90, … while `cutoff + 30 <= days` (so there is at least one whenever `days >= 60`, and
//! none for shorter runs). Each row holds: whether the customer existed and had not churned
//! at the cutoff (`alive_at_cutoff`); for alive customers the oracle's `p_churn_30d` and
//! `p_no_purchase_30d` (see [`super::oracle`]) and what was realised
//! (`churned_within_30d`: the latent churn event fell within days `[cutoff, cutoff + 30)`;
//! `no_purchase_within_30d`: no order in those days); the latent state at the cutoff
//! (satisfaction, irritation, daily hazard); the latent churn time `churned_at` (end of the
//! churn day, null if the customer never churned); and the static hidden traits.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::customer::Customer;
use super::oracle::{HorizonTruth, Oracle};
use super::state::State;
use crate::error::Result;
use crate::schema::{customers_schema, ts_type};

/// Days of the ground-truth cutoffs for a run of `days` days.
pub fn cutoff_days(days: u32) -> Vec<i32> {
    (1..)
        .map(|k| 30 * k)
        .take_while(|c| c + 30 <= days as i32)
        .collect()
}

/// Per-cutoff facts gathered while a customer is simulated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CutoffRow {
    pub day: i32,
    /// The oracle's view at the cutoff, with (satisfaction, irritation, hazard); `None` if
    /// the customer was not alive.
    pub truth: Option<(HorizonTruth, f64, f64, f64)>,
}

const TRAITS: [&str; 23] = [
    "engagement",
    "price_sensitivity",
    "mean_basket",
    "base_hazard",
    "base_satisfaction",
    "return_rate",
    "support_rate",
    "affinity_web",
    "affinity_app",
    "affinity_store",
    "resp_email",
    "resp_sms",
    "resp_push",
    "resp_call_center",
    "resp_mail",
    "resp_web",
    "resp_app",
    "resp_offer",
    "resp_message",
    "resp_service",
    "annoyed_by_offer",
    "annoyed_by_message",
    "annoyed_by_service",
];

static GROUND_TRUTH: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("cutoff", ts_type(), false),
        Field::new("alive_at_cutoff", DataType::Boolean, false),
        Field::new("p_churn_30d", DataType::Float64, true),
        Field::new("churned_within_30d", DataType::Boolean, true),
        Field::new("p_no_purchase_30d", DataType::Float64, true),
        Field::new("no_purchase_within_30d", DataType::Boolean, true),
        Field::new("satisfaction_at_cutoff", DataType::Float64, true),
        Field::new("irritation_at_cutoff", DataType::Float64, true),
        Field::new("hazard_at_cutoff", DataType::Float64, true),
        Field::new("churned_at", ts_type(), true),
    ];
    for t in TRAITS {
        let ty = if t.starts_with("annoyed") {
            DataType::Boolean
        } else {
            DataType::Float64
        };
        f.push(Field::new(t, ty, false));
    }
    Arc::new(Schema::new(f))
});

/// Schema of `ground_truth.parquet` (see the module docs).
pub fn ground_truth_schema() -> SchemaRef {
    GROUND_TRUTH.clone()
}

fn trait_values(c: &Customer) -> [f64; 20] {
    let t = &c.traits;
    let r = &t.channel_responsiveness;
    [
        t.engagement,
        t.price_sensitivity,
        c.mean_basket(),
        t.base_hazard,
        t.base_satisfaction,
        t.return_rate,
        t.support_rate,
        t.session_affinity[0],
        t.session_affinity[1],
        t.session_affinity[2],
        r[2],
        r[3],
        r[4],
        r[6],
        r[8],
        r[0],
        r[1],
        t.kind_responsiveness[0],
        t.kind_responsiveness[1],
        t.kind_responsiveness[2],
    ]
}

/// Customers and ground-truth rows of one chunk.
pub(crate) struct TruthRows {
    c_id: StringBuilder,
    c_created: TimestampMicrosecondBuilder,
    c_attr: [StringBuilder; 3],
    c_consent: [BooleanBuilder; 5],
    c_updated: TimestampMicrosecondBuilder,
    c_rows: usize,
    g_id: StringBuilder,
    g_cutoff: TimestampMicrosecondBuilder,
    g_alive: BooleanBuilder,
    g_state: [Float64Builder; 5],
    g_real: [BooleanBuilder; 2],
    g_churned_at: TimestampMicrosecondBuilder,
    g_traits: [Float64Builder; 20],
    g_annoyed: [BooleanBuilder; 3],
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

impl TruthRows {
    pub(crate) fn new() -> Self {
        Self {
            c_id: StringBuilder::new(),
            c_created: ts(),
            c_attr: std::array::from_fn(|_| StringBuilder::new()),
            c_consent: std::array::from_fn(|_| BooleanBuilder::new()),
            c_updated: ts(),
            c_rows: 0,
            g_id: StringBuilder::new(),
            g_cutoff: ts(),
            g_alive: BooleanBuilder::new(),
            g_state: std::array::from_fn(|_| Float64Builder::new()),
            g_real: std::array::from_fn(|_| BooleanBuilder::new()),
            g_churned_at: ts(),
            g_traits: std::array::from_fn(|_| Float64Builder::new()),
            g_annoyed: std::array::from_fn(|_| BooleanBuilder::new()),
        }
    }

    /// Appends a finished customer: its customers row (final consents; `updated_at` is the
    /// last consent change, else `created_at`) and its ground-truth rows.
    pub(crate) fn push(
        &mut self,
        o: &Oracle,
        c: &Customer,
        s: &State,
        cutoffs: &[CutoffRow],
        purchase_days: &[i32],
    ) {
        let created = o.day_start_us(c.created_day) + c.created_sec as i64 * 1_000_000;
        self.c_id.append_value(&c.id);
        self.c_created.append_value(created);
        for (b, v) in self
            .c_attr
            .iter_mut()
            .zip([c.age_band, c.region, c.segment])
        {
            b.append_value(v);
        }
        for (b, v) in self.c_consent.iter_mut().zip(s.consents) {
            b.append_value(v);
        }
        self.c_updated
            .append_value(s.consent_changed_us.unwrap_or(created));
        self.c_rows += 1;
        let traits = trait_values(c);
        let churned_at = s.churned_day.map(|d| o.day_start_us(d + 1) - 1);
        for row in cutoffs {
            self.g_id.append_value(&c.id);
            self.g_cutoff.append_value(o.day_start_us(row.day));
            self.g_alive.append_value(row.truth.is_some());
            let horizon = row.day..row.day + 30;
            match row.truth {
                Some((h, sat, irr, haz)) => {
                    for (b, v) in
                        self.g_state
                            .iter_mut()
                            .zip([h.p_churn, h.p_no_purchase, sat, irr, haz])
                    {
                        b.append_value(v);
                    }
                    let churned = s.churned_day.is_some_and(|d| horizon.contains(&d));
                    let bought = purchase_days.iter().any(|d| horizon.contains(d));
                    self.g_real[0].append_value(churned);
                    self.g_real[1].append_value(!bought);
                }
                None => {
                    self.g_state.iter_mut().for_each(|b| b.append_null());
                    self.g_real.iter_mut().for_each(|b| b.append_null());
                }
            }
            self.g_churned_at.append_option(churned_at);
            for (b, v) in self.g_traits.iter_mut().zip(traits) {
                b.append_value(v);
            }
            for (b, v) in self.g_annoyed.iter_mut().zip(c.traits.annoyed_by) {
                b.append_value(v);
            }
        }
    }

    /// Builds (customers, ground truth).
    pub(crate) fn finish(mut self) -> Result<[RecordBatch; 2]> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.c_id.finish()),
            Arc::new(self.c_created.finish()),
        ];
        cols.extend(
            self.c_attr
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.extend(
            self.c_consent
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.push(arrow::array::new_null_array(&DataType::Utf8, self.c_rows));
        cols.push(Arc::new(self.c_updated.finish()));
        let customers = RecordBatch::try_new(customers_schema(), cols)?;
        let [p_churn, p_nop, sat, irr, haz] = self
            .g_state
            .each_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let [churned, nop] = self
            .g_real
            .each_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.g_id.finish()),
            Arc::new(self.g_cutoff.finish()),
            Arc::new(self.g_alive.finish()),
            p_churn,
            churned,
            p_nop,
            nop,
            sat,
            irr,
            haz,
            Arc::new(self.g_churned_at.finish()),
        ];
        cols.extend(
            self.g_traits
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.extend(
            self.g_annoyed
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        let truth = RecordBatch::try_new(ground_truth_schema(), cols)?;
        Ok([customers, truth])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_every_30_days_with_a_full_horizon() {
        assert!(cutoff_days(59).is_empty());
        assert_eq!(cutoff_days(60), vec![30]);
        assert_eq!(cutoff_days(120), vec![30, 60, 90]);
        assert_eq!(cutoff_days(180), vec![30, 60, 90, 120, 150]);
        assert_eq!(ground_truth_schema().fields().len(), 11 + TRAITS.len());
    }
}
