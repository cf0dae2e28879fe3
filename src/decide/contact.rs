//! A customer's contact history: the deliveries the engine and other systems made, and
//! which of them got a response. It answers the contact-policy questions (caps per channel
//! and per action, cooldowns, suppression after ignored deliveries) and is bounded: only
//! deliveries within the longest window any rule looks at are kept.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use compact_str::CompactString;

use crate::features::{DAY_US, Event};

/// One delivery of an action to the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// µs since the epoch.
    pub ts: i64,
    /// Held inline (up to 24 bytes): the scans compare it without a pointer to follow.
    pub action_id: CompactString,
    pub channel: CompactString,
    pub decision_id: Option<Arc<str>>,
    /// An open, click or conversion was seen for it.
    pub responded: bool,
    /// A hash of `decision_id` (0: none): the scans for a decision compare this, held in
    /// the delivery, and follow the id to its heap block only on a match.
    decision_key: u64,
}

/// The [`Delivery::decision_key`] of decision `id`.
fn decision_key(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(id.as_bytes());
    h.finish().max(1)
}

impl Delivery {
    fn is_of_decision(&self, key: u64, id: &str) -> bool {
        self.decision_key == key && self.decision_id.as_deref() == Some(id)
    }
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
        let key = decision_id.map_or(0, decision_key);
        if let Some(d) = decision_id
            && self.deliveries.iter().any(|x| x.is_of_decision(key, d))
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
                decision_key: key,
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
            Some(d) => {
                let key = decision_key(d);
                self.deliveries
                    .iter_mut()
                    .find(|x| x.is_of_decision(key, d))
            }
            None => self
                .deliveries
                .iter_mut()
                .rev()
                .find(|x| x.ts <= ts && x.action_id == action_id),
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
            .filter(|d| d.ts > since && d.ts <= now && d.channel == channel)
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

    /// Everything the contact policy asks about `action` at `now`: the deliveries of
    /// `action` in `(now − per_days, now]`, its latest delivery at or before `now`, and the
    /// end of a suppression when its latest `after` resolved deliveries (older than
    /// `window_days`, so their response window has passed) were all ignored and the last
    /// of them is less than `days` old.
    pub fn action_contacts(
        &self,
        action: &str,
        per_days: u32,
        rule: (u32, u32, u32),
        now: i64,
    ) -> ActionContacts {
        self.contacts(&[(action, per_days)], &[] as &[(&str, u32)], rule, now)
            .0[0]
    }

    /// In one pass over the history (a decision asks about every action of the catalog and
    /// every capped channel; a scan for each made a long history cost once per question):
    /// [`ContactHistory::action_contacts`] of every `(action, per_days)` of `actions`, and
    /// [`ContactHistory::channel_count`] of every `(channel, days)` of `channels`, in their
    /// orders.
    pub fn contacts<A: AsRef<str>, C: AsRef<str>>(
        &self,
        actions: &[(A, u32)],
        channels: &[(C, u32)],
        (after, days, window_days): (u32, u32, u32),
        now: i64,
    ) -> (Vec<ActionContacts>, Vec<u32>) {
        struct Scan {
            since: i64,
            streak: u32,
            streak_open: bool,
            last_ignored: Option<i64>,
        }
        let resolved_before = now - i64::from(window_days) * DAY_US;
        let mut out = vec![ActionContacts::default(); actions.len()];
        let channel_since: Vec<i64> = channels
            .iter()
            .map(|&(_, d)| now - i64::from(d) * DAY_US)
            .collect();
        let mut counts = vec![0; channels.len()];
        let mut scans: Vec<Scan> = actions
            .iter()
            .map(|&(_, per_days)| Scan {
                since: now - i64::from(per_days) * DAY_US,
                streak: 0,
                streak_open: after > 0,
                last_ignored: None,
            })
            .collect();
        for d in self.deliveries.iter().rev() {
            if d.ts > now {
                continue;
            }
            if let Some(k) = channels.iter().position(|(c, _)| d.channel == c.as_ref())
                && d.ts > channel_since[k]
            {
                counts[k] += 1;
            }
            let Some(i) = actions.iter().position(|(a, _)| d.action_id == a.as_ref()) else {
                continue;
            };
            let (s, o) = (&mut scans[i], &mut out[i]);
            if d.ts <= s.since && !s.streak_open && o.last.is_some() {
                continue; // this and older deliveries change none of the action's answers
            }
            o.last.get_or_insert(d.ts);
            if d.ts > s.since {
                o.sent += 1;
            }
            if s.streak_open {
                if d.responded {
                    s.streak_open = false;
                } else if d.ts <= resolved_before {
                    s.streak += 1;
                    s.last_ignored.get_or_insert(d.ts);
                    s.streak_open = s.streak < after;
                }
            }
        }
        for (s, o) in scans.iter().zip(out.iter_mut()) {
            if after > 0 && s.streak >= after {
                o.suppressed_until = s
                    .last_ignored
                    .map(|t: i64| t + i64::from(days) * DAY_US)
                    .filter(|&until| until > now);
            }
        }
        (out, counts)
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.deliveries.capacity() * std::mem::size_of::<Delivery>()
            + self
                .deliveries
                .iter()
                .map(|d| {
                    let heap = |s: &CompactString| if s.is_heap_allocated() { s.len() } else { 0 };
                    heap(&d.action_id)
                        + heap(&d.channel)
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
                let want = |action: &str, per_days: u32| ActionContacts {
                    sent: h.action_count(action, per_days, now),
                    last: h.last_delivery(action, now),
                    suppressed_until: h.suppressed_until(action, rule.0, rule.1, rule.2, now),
                };
                let got = h.action_contacts(action, per_days, rule, now);
                let w = want(action, per_days);
                assert_eq!(got, w, "{action} {per_days} {rule:?} at {now} over {h:?}");
                checked += usize::from(w.suppressed_until.is_some()) + usize::from(w.sent > 0);
                // all at once, each action with its own window, one of them not delivered
                let many: Vec<(&str, u32)> = ["c", "a", "x", "b"]
                    .into_iter()
                    .map(|a| (a, 1 + next(30) as u32))
                    .collect();
                let chans = [("sms", 1 + next(30) as u32), ("email", 1 + next(30) as u32)];
                let (out, counts) = h.contacts(&many, &chans, rule, now);
                for (&(a, p), got) in many.iter().zip(&out) {
                    assert_eq!(*got, want(a, p), "{a} {p} {rule:?} at {now} over {h:?}");
                }
                for (&(c, p), got) in chans.iter().zip(&counts) {
                    assert_eq!(
                        *got,
                        h.channel_count(c, p, now),
                        "{c} {p} at {now} over {h:?}"
                    );
                }
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
