//! A customer's contact history: the deliveries the engine and other systems made, and
//! which of them got a response. It answers the contact-policy questions (caps per channel
//! and per action, cooldowns, suppression after ignored deliveries) and is bounded: only
//! deliveries within the longest window any rule looks at are kept.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::features::{DAY_US, Event};

/// One delivery of an action to the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// µs since the epoch.
    pub ts: i64,
    pub action_id: Arc<str>,
    pub channel: Arc<str>,
    pub decision_id: Option<Arc<str>>,
    /// An open, click or conversion was seen for it.
    pub responded: bool,
}

/// The contact-policy answers about one action: see [`ContactHistory::action_contacts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionContacts {
    /// Deliveries in `(now − per_days, now]`.
    pub sent: u32,
    /// The latest delivery at or before `now`.
    pub last: Option<i64>,
    /// The end of a suppression after ignored deliveries, if one holds at `now`.
    pub suppressed_until: Option<i64>,
}

/// The deliveries of one customer, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactHistory {
    deliveries: VecDeque<Delivery>,
}

/// Event types that count as a response to a delivery.
pub const RESPONSE_EVENTS: [&str; 3] = ["action_opened", "action_clicked", "action_converted"];

impl ContactHistory {
    /// The deliveries kept, oldest first.
    pub fn deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.deliveries.iter()
    }

    /// Records a delivery. A delivery whose `decision_id` is already recorded is ignored
    /// (a decision's own delivery event does not count twice). Deliveries older than
    /// `keep_days` before the newest one are dropped.
    pub fn record_delivery(
        &mut self,
        ts: i64,
        action_id: &str,
        channel: &str,
        decision_id: Option<&str>,
        keep_days: u32,
    ) {
        if let Some(d) = decision_id
            && self
                .deliveries
                .iter()
                .any(|x| x.decision_id.as_deref() == Some(d))
        {
            return;
        }
        let at = self.deliveries.partition_point(|x| x.ts <= ts);
        self.deliveries.insert(
            at,
            Delivery {
                ts,
                action_id: action_id.into(),
                channel: channel.into(),
                decision_id: decision_id.map(Into::into),
                responded: false,
            },
        );
        let newest = self.deliveries.back().map_or(ts, |d| d.ts);
        let horizon = newest - i64::from(keep_days) * DAY_US;
        while self.deliveries.front().is_some_and(|d| d.ts < horizon) {
            self.deliveries.pop_front();
        }
    }

    /// Marks the delivery a response belongs to: the one with `decision_id` when given,
    /// otherwise the latest delivery of `action_id` at or before `ts`. Returns whether one
    /// was found.
    pub fn record_response(&mut self, ts: i64, action_id: &str, decision_id: Option<&str>) -> bool {
        let hit = match decision_id {
            Some(d) => self
                .deliveries
                .iter_mut()
                .find(|x| x.decision_id.as_deref() == Some(d)),
            None => self
                .deliveries
                .iter_mut()
                .rev()
                .find(|x| x.ts <= ts && &*x.action_id == action_id),
        };
        match hit {
            Some(x) => {
                x.responded = true;
                true
            }
            None => false,
        }
    }

    /// Applies a journey event: `action_delivered` records a delivery, an open, click or
    /// conversion marks one as responded; other events are ignored.
    pub fn apply_event(&mut self, e: &Event, keep_days: u32) {
        let Some(action) = e.action_id.as_deref() else {
            return;
        };
        if e.event_type == "action_delivered" {
            let channel = e.channel.as_deref().unwrap_or("unknown");
            self.record_delivery(e.ts, action, channel, e.decision_id.as_deref(), keep_days);
        } else if RESPONSE_EVENTS.contains(&e.event_type.as_str()) {
            self.record_response(e.ts, action, e.decision_id.as_deref());
        }
    }

    /// Deliveries on `channel` in `(now − days, now]`.
    pub fn channel_count(&self, channel: &str, days: u32, now: i64) -> u32 {
        let since = now - i64::from(days) * DAY_US;
        self.deliveries
            .iter()
            .filter(|d| d.ts > since && d.ts <= now && &*d.channel == channel)
            .count() as u32
    }

    /// Deliveries of `action` in `(now − days, now]`. This and the next two are the
    /// plain one-question scans the tests hold [`ContactHistory::action_contacts`] to.
    #[cfg(test)]
    pub fn action_count(&self, action: &str, days: u32, now: i64) -> u32 {
        let since = now - i64::from(days) * DAY_US;
        self.deliveries
            .iter()
            .filter(|d| d.ts > since && d.ts <= now && &*d.action_id == action)
            .count() as u32
    }

    /// The latest delivery time of `action` at or before `now`.
    #[cfg(test)]
    pub fn last_delivery(&self, action: &str, now: i64) -> Option<i64> {
        self.deliveries
            .iter()
            .rev()
            .find(|d| d.ts <= now && &*d.action_id == action)
            .map(|d| d.ts)
    }

    /// When `action` is suppressed at `now`: the end of the suppression when the latest
    /// `after` resolved deliveries (older than `window_days`, so their response window has
    /// passed) were all ignored and the last of them is less than `days` old.
    #[cfg(test)]
    pub fn suppressed_until(
        &self,
        action: &str,
        after: u32,
        days: u32,
        window_days: u32,
        now: i64,
    ) -> Option<i64> {
        if after == 0 {
            return None;
        }
        let resolved_before = now - i64::from(window_days) * DAY_US;
        let mut streak = 0;
        let mut last_ignored = None;
        for d in self.deliveries.iter().rev() {
            if &*d.action_id != action || d.ts > now {
                continue;
            }
            if d.responded {
                break;
            }
            if d.ts > resolved_before {
                continue; // still inside its response window
            }
            streak += 1;
            last_ignored.get_or_insert(d.ts);
            if streak >= after {
                break;
            }
        }
        let until = last_ignored? + i64::from(days) * DAY_US;
        (streak >= after && until > now).then_some(until)
    }

    /// Everything the contact policy asks about `action` at `now`, in one pass over the
    /// history: the deliveries of `action` in `(now − per_days, now]`, its latest delivery
    /// at or before `now`, and the end of a suppression when its latest `after` resolved
    /// deliveries (older than `window_days`, so their response window has passed) were all
    /// ignored and the last of them is less than `days` old.
    pub fn action_contacts(
        &self,
        action: &str,
        per_days: u32,
        (after, days, window_days): (u32, u32, u32),
        now: i64,
    ) -> ActionContacts {
        let since = now - i64::from(per_days) * DAY_US;
        let resolved_before = now - i64::from(window_days) * DAY_US;
        let mut out = ActionContacts::default();
        let mut streak = 0;
        let mut streak_open = after > 0;
        let mut last_ignored = None;
        for d in self.deliveries.iter().rev() {
            if d.ts > now {
                continue;
            }
            if d.ts <= since && !streak_open && out.last.is_some() {
                break; // older deliveries change none of the answers
            }
            if &*d.action_id != action {
                continue;
            }
            out.last.get_or_insert(d.ts);
            if d.ts > since {
                out.sent += 1;
            }
            if streak_open {
                if d.responded {
                    streak_open = false;
                } else if d.ts <= resolved_before {
                    streak += 1;
                    last_ignored.get_or_insert(d.ts);
                    streak_open = streak < after;
                }
            }
        }
        if after > 0 && streak >= after {
            out.suppressed_until = last_ignored
                .map(|t: i64| t + i64::from(days) * DAY_US)
                .filter(|&until| until > now);
        }
        out
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.deliveries.capacity() * std::mem::size_of::<Delivery>()
            + self
                .deliveries
                .iter()
                .map(|d| {
                    d.action_id.len()
                        + d.channel.len()
                        + d.decision_id.as_ref().map_or(0, |x| x.len())
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const D: i64 = DAY_US;

    #[test]
    fn counts_windows_and_dedupes_decisions() {
        let mut h = ContactHistory::default();
        h.record_delivery(D, "a", "email", Some("d1"), 90);
        h.record_delivery(D, "a", "email", Some("d1"), 90);
        h.record_delivery(3 * D, "b", "email", None, 90);
        h.record_delivery(5 * D, "a", "sms", None, 90);
        assert_eq!(h.deliveries().count(), 3);
        assert_eq!(h.channel_count("email", 7, 6 * D), 2);
        assert_eq!(h.channel_count("email", 4, 6 * D), 1);
        assert_eq!(h.channel_count("email", 3, 6 * D), 0);
        assert_eq!(h.action_count("a", 30, 6 * D), 2);
        assert_eq!(h.last_delivery("a", 6 * D), Some(5 * D));
        assert_eq!(h.last_delivery("a", 4 * D), Some(D));
        // old deliveries fall out of the kept horizon
        h.record_delivery(200 * D, "c", "push", None, 90);
        assert_eq!(h.deliveries().count(), 1);
    }

    #[test]
    fn suppression_after_ignored_streak() {
        let mut h = ContactHistory::default();
        for d in [10, 20, 30] {
            h.record_delivery(d * D, "a", "email", None, 365);
        }
        // at day 45 all three are resolved and ignored: suppressed for 30 days after day 30
        assert_eq!(h.suppressed_until("a", 3, 30, 7, 45 * D), Some(60 * D));
        assert_eq!(h.suppressed_until("a", 3, 30, 7, 61 * D), None);
        // the third is still in its window at day 33
        assert_eq!(h.suppressed_until("a", 3, 30, 7, 33 * D), None);
        // a response breaks the streak
        assert!(h.record_response(31 * D, "a", None));
        assert_eq!(h.suppressed_until("a", 3, 30, 7, 45 * D), None);
        assert_eq!(h.suppressed_until("a", 0, 30, 7, 45 * D), None);
    }

    /// The one-pass answers equal the separate scans on many random histories.
    #[test]
    fn one_pass_answers_match_the_separate_scans() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut next = |n: u64| rng.random_range(0..n);
        let mut checked = 0;
        for _ in 0..300 {
            let mut h = ContactHistory::default();
            for _ in 0..next(25) {
                let (a, ch) = (
                    ["a", "b", "c"][next(3) as usize],
                    ["email", "sms"][next(2) as usize],
                );
                h.record_delivery(
                    next(60) as i64 * D + next(24) as i64 * 3_600_000_000,
                    a,
                    ch,
                    None,
                    365,
                );
                if next(4) == 0 {
                    h.record_response(next(60) as i64 * D, a, None);
                }
            }
            for _ in 0..10 {
                let now = next(70) as i64 * D + next(24) as i64 * 3_600_000_000;
                let (action, per_days) = (["a", "b", "c"][next(3) as usize], 1 + next(30) as u32);
                let rule = (next(4) as u32, 1 + next(30) as u32, next(10) as u32);
                let got = h.action_contacts(action, per_days, rule, now);
                let want = ActionContacts {
                    sent: h.action_count(action, per_days, now),
                    last: h.last_delivery(action, now),
                    suppressed_until: h.suppressed_until(action, rule.0, rule.1, rule.2, now),
                };
                assert_eq!(
                    got, want,
                    "{action} {per_days} {rule:?} at {now} over {h:?}"
                );
                checked +=
                    usize::from(want.suppressed_until.is_some()) + usize::from(want.sent > 0);
            }
        }
        assert!(checked > 300, "the histories exercise the rules: {checked}");
    }

    #[test]
    fn events_feed_the_history() {
        let mut h = ContactHistory::default();
        let ev = |t: &str, ts: i64| Event {
            ts,
            event_type: t.into(),
            channel: Some("email".into()),
            action_id: Some("a".into()),
            decision_id: Some("x".into()),
            item_id: None,
            value: None,
        };
        h.apply_event(&ev("action_delivered", D), 90);
        h.apply_event(&ev("action_clicked", 2 * D), 90);
        h.apply_event(&ev("purchase", 2 * D), 90);
        let all: Vec<_> = h.deliveries().collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].responded);
    }
}
