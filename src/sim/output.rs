//! Arrow row builders for one chunk of customers: events, decisions, outcomes and the
//! per-decision ground truth (`ground_truth_decisions.parquet`), in the contracts of
//! [`crate::schema`]. Strings are attached here; the journey works on compact indices.

use std::fmt::Write;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, StringBuilder,
    StructBuilder, TimestampMicrosecondBuilder, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::customer::Customer;
use super::journey::{DayLog, Ev};
use super::oracle::Oracle;
use crate::error::Result;
use crate::schema::{CHANNELS, EVENT_TYPES, candidate_fields, ts_type};

/// The policy version the simulator logs.
pub const POLICY_VERSION: &str = "random-v1";

/// The decision id of the (only) decision of customer `index` on `day`.
pub fn decision_id(index: u64, day: i32) -> String {
    format!("d{index:07}-{day:03}")
}

static GT_DECISIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("decision_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("action_id", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("n_candidates", DataType::Int32, false),
        Field::new("p_open", DataType::Float64, false),
        Field::new("p_click", DataType::Float64, false),
        Field::new("p_convert", DataType::Float64, false),
        Field::new("opened", DataType::Boolean, false),
        Field::new("clicked", DataType::Boolean, false),
        Field::new("converted", DataType::Boolean, false),
    ]))
});

/// Schema of `ground_truth_decisions.parquet`: the true response probabilities of the
/// chosen pair of every decision, and what was realised.
pub fn ground_truth_decisions_schema() -> SchemaRef {
    GT_DECISIONS.clone()
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Events, decisions, outcomes and decision truth of one chunk.
pub(crate) struct JourneyRows {
    e_id: StringBuilder,
    e_customer: StringBuilder,
    e_ts: TimestampMicrosecondBuilder,
    e_type: StringBuilder,
    e_channel: StringBuilder,
    e_action: StringBuilder,
    e_decision: StringBuilder,
    e_item: StringBuilder,
    e_value: Float64Builder,
    e_props: StringBuilder,
    d_id: StringBuilder,
    d_customer: StringBuilder,
    d_ts: TimestampMicrosecondBuilder,
    d_context: StringBuilder,
    d_candidates: ListBuilder<StructBuilder>,
    d_action: StringBuilder,
    d_channel: StringBuilder,
    d_position: Int32Builder,
    d_propensity: Float64Builder,
    d_explore: BooleanBuilder,
    d_policy: StringBuilder,
    d_rows: usize,
    o_decision: StringBuilder,
    o_action: StringBuilder,
    o_ts: TimestampMicrosecondBuilder,
    o_kind: StringBuilder,
    o_reward: Float64Builder,
    g_n: Int32Builder,
    g_p: [Float64Builder; 3],
    g_hit: [BooleanBuilder; 3],
    buf: String,
}

impl JourneyRows {
    pub(crate) fn new() -> Self {
        let item = Field::new("item", DataType::Struct(candidate_fields()), true);
        Self {
            e_id: StringBuilder::new(),
            e_customer: StringBuilder::new(),
            e_ts: ts_builder(),
            e_type: StringBuilder::new(),
            e_channel: StringBuilder::new(),
            e_action: StringBuilder::new(),
            e_decision: StringBuilder::new(),
            e_item: StringBuilder::new(),
            e_value: Float64Builder::new(),
            e_props: StringBuilder::new(),
            d_id: StringBuilder::new(),
            d_customer: StringBuilder::new(),
            d_ts: ts_builder(),
            d_context: StringBuilder::new(),
            d_candidates: ListBuilder::new(StructBuilder::from_fields(candidate_fields(), 0))
                .with_field(Arc::new(item)),
            d_action: StringBuilder::new(),
            d_channel: StringBuilder::new(),
            d_position: Int32Builder::new(),
            d_propensity: Float64Builder::new(),
            d_explore: BooleanBuilder::new(),
            d_policy: StringBuilder::new(),
            d_rows: 0,
            o_decision: StringBuilder::new(),
            o_action: StringBuilder::new(),
            o_ts: ts_builder(),
            o_kind: StringBuilder::new(),
            o_reward: Float64Builder::new(),
            g_n: Int32Builder::new(),
            g_p: std::array::from_fn(|_| Float64Builder::new()),
            g_hit: std::array::from_fn(|_| BooleanBuilder::new()),
            buf: String::new(),
        }
    }

    fn event(&mut self, o: &Oracle, c: &Customer, did: &str, e: &Ev, seq: u64) {
        self.buf.clear();
        let _ = write!(self.buf, "e{:07}-{seq:05}", c.index);
        self.e_id.append_value(&self.buf);
        self.e_customer.append_value(&c.id);
        self.e_ts.append_value(e.ts);
        self.e_type.append_value(EVENT_TYPES[e.kind as usize]);
        self.e_channel
            .append_option(e.channel.map(|x| CHANNELS[x as usize]));
        self.e_action
            .append_option(e.action.map(|a| o.actions[a as usize].id.as_str()));
        self.e_decision.append_option(e.decision.then_some(did));
        match e.item {
            Some(it) => {
                self.buf.clear();
                let _ = write!(self.buf, "p{it:05}");
                self.e_item.append_value(&self.buf);
            }
            None => self.e_item.append_null(),
        }
        self.e_value.append_option(e.value);
        self.e_props.append_option(e.props);
    }

    /// Appends one customer-day.
    /// Appends one customer-day; `seq` numbers the customer's events (event ids are
    /// `e<customer index>-<seq>`, unique and deterministic).
    pub(crate) fn push_day(
        &mut self,
        o: &Oracle,
        c: &Customer,
        day: i32,
        log: &DayLog,
        seq: &mut u64,
    ) {
        let did = if log.decision.is_some() {
            decision_id(c.index, day)
        } else {
            String::new()
        };
        for e in &log.events {
            self.event(o, c, &did, e, *seq);
            *seq += 1;
        }
        let Some(d) = &log.decision else { return };
        let (ai, chn) = d.candidates[d.chosen];
        let action = o.actions[ai as usize].id.as_str();
        let channel = CHANNELS[chn as usize];
        self.d_id.append_value(&did);
        self.d_customer.append_value(&c.id);
        self.d_ts.append_value(d.ts);
        self.d_context.append_option(d.context.as_deref());
        for &(a, k) in &d.candidates {
            let sb = self.d_candidates.values();
            let am = &o.actions[a as usize];
            sb.field_builder::<StringBuilder>(0)
                .expect("action_id")
                .append_value(&am.id);
            sb.field_builder::<StringBuilder>(1)
                .expect("channel")
                .append_value(CHANNELS[k as usize]);
            sb.field_builder::<Float64Builder>(2)
                .expect("p_response")
                .append_null();
            sb.field_builder::<Float64Builder>(3)
                .expect("value")
                .append_value(am.value);
            sb.field_builder::<Float64Builder>(4)
                .expect("score")
                .append_null();
            sb.append(true);
        }
        self.d_candidates.append(true);
        self.d_action.append_value(action);
        self.d_channel.append_value(channel);
        self.d_position.append_value(d.chosen as i32);
        self.d_propensity
            .append_value(1.0 / d.candidates.len() as f64);
        self.d_explore.append_value(true);
        self.d_policy.append_value(POLICY_VERSION);
        self.d_rows += 1;
        let value = o.actions[ai as usize].value;
        for (hit, ts, kind, reward) in [
            (d.opened, d.open_ts, "opened", 0.0),
            (d.clicked, d.click_ts, "clicked", 0.0),
            (d.converted, d.conv_ts, "converted", value),
        ] {
            if hit {
                self.o_decision.append_value(&did);
                self.o_action.append_value(action);
                self.o_ts.append_value(ts.min(o.day_start_us(day + 1) - 1));
                self.o_kind.append_value(kind);
                self.o_reward.append_value(reward);
            }
        }
        self.g_n.append_value(d.candidates.len() as i32);
        for (b, p) in self
            .g_p
            .iter_mut()
            .zip([d.probs.p_open, d.probs.p_click, d.probs.p_convert])
        {
            b.append_value(p);
        }
        for (b, h) in self
            .g_hit
            .iter_mut()
            .zip([d.opened, d.clicked, d.converted])
        {
            b.append_value(h);
        }
    }

    /// Builds (events, decisions, outcomes, decision truth).
    pub(crate) fn finish(mut self) -> Result<[RecordBatch; 4]> {
        let events = RecordBatch::try_new(
            crate::schema::events_schema(),
            vec![
                Arc::new(self.e_id.finish()),
                Arc::new(self.e_customer.finish()),
                Arc::new(self.e_ts.finish()),
                Arc::new(self.e_type.finish()),
                Arc::new(self.e_channel.finish()),
                Arc::new(self.e_action.finish()),
                Arc::new(self.e_decision.finish()),
                Arc::new(self.e_item.finish()),
                Arc::new(self.e_value.finish()),
                Arc::new(self.e_props.finish()),
            ],
        )?;
        let ids: ArrayRef = Arc::new(self.d_id.finish());
        let customers: ArrayRef = Arc::new(self.d_customer.finish());
        let ts: ArrayRef = Arc::new(self.d_ts.finish());
        let actions: ArrayRef = Arc::new(self.d_action.finish());
        let channels: ArrayRef = Arc::new(self.d_channel.finish());
        let decisions = RecordBatch::try_new(
            crate::schema::decisions_schema(),
            vec![
                ids.clone(),
                customers.clone(),
                ts.clone(),
                Arc::new(self.d_context.finish()),
                Arc::new(self.d_candidates.finish()),
                actions.clone(),
                channels.clone(),
                Arc::new(self.d_position.finish()),
                Arc::new(self.d_propensity.finish()),
                Arc::new(self.d_explore.finish()),
                Arc::new(self.d_policy.finish()),
                new_null_array(&DataType::Utf8, self.d_rows),
            ],
        )?;
        let outcomes = RecordBatch::try_new(
            crate::schema::outcomes_schema(),
            vec![
                Arc::new(self.o_decision.finish()),
                Arc::new(self.o_action.finish()),
                Arc::new(self.o_ts.finish()),
                Arc::new(self.o_kind.finish()),
                Arc::new(self.o_reward.finish()),
            ],
        )?;
        let [p_open, p_click, p_convert] = self
            .g_p
            .each_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let [h_open, h_click, h_convert] = self
            .g_hit
            .each_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let truth = RecordBatch::try_new(
            ground_truth_decisions_schema(),
            vec![
                ids,
                customers,
                ts,
                actions,
                channels,
                Arc::new(self.g_n.finish()),
                p_open,
                p_click,
                p_convert,
                h_open,
                h_click,
                h_convert,
            ],
        )?;
        Ok([events, decisions, outcomes, truth])
    }
}
