//! The snapshot: pure aggregation of API data into what `/metrics` shows. API pages go in
//! through [`SnapshotBuilder`]; an immutable [`Snapshot`] comes out. No I/O here.
//!
//! Only what the metrics need is kept per chat (no whole `Chat` objects), and repeated label
//! values (numbers, services, statuses) are interned, so 100k chats stay small.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::models::Chat;

/// The upper bounds of the `linq_chats_by_health_score` buckets.
pub const SCORE_BUCKETS: [u32; 10] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

/// The health statuses the API documents; each gets a (possibly zero) count per number.
pub const KNOWN_STATUSES: [&str; 4] = ["HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT"];

/// Label value for a missing service, status or number.
pub const UNKNOWN: &str = "unknown";

/// What the exporter keeps of one chat.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRecord {
    /// Chat id (shared with the builder's index while building).
    pub id: Arc<str>,
    /// The `phone_number` label.
    pub phone_number: Arc<str>,
    /// The chat's service label.
    pub service: Arc<str>,
    /// Group chat.
    pub is_group: bool,
    /// Archived chat.
    pub is_archived: bool,
    /// `health_score.score`, when the chat has one.
    pub score: Option<f64>,
    /// `health_status.status`, when the chat has one.
    pub status: Option<Arc<str>>,
    /// Unix time of the last health change (`health_status.updated_at`, else `health_score.updated_at`).
    pub health_updated: Option<i64>,
    /// Display name, kept only when the display-name label is enabled.
    pub display_name: Option<Box<str>>,
}

impl ChatRecord {
    /// Severity rank for choosing which chats keep per-chat series: lower is worse. The worse
    /// of the status and the score decides (a score below 30 ranks with CRITICAL, below 60
    /// with AT_RISK: the dashboards' red and amber thresholds).
    pub fn severity(&self) -> u8 {
        let by_status = match self.status.as_deref() {
            Some("CRITICAL") => 0,
            Some("OPTED_OUT") => 1,
            Some("AT_RISK") => 2,
            Some("HEALTHY") => 4,
            Some(_) => 3,
            None => 5,
        };
        let by_score = match self.score {
            Some(s) if s < 30.0 => 0,
            Some(s) if s < 60.0 => 2,
            Some(_) => 4,
            None => 5,
        };
        by_status.min(by_score)
    }

    /// Orders chats worst first: severity, then lower score (unscored last), then id.
    pub fn worse_first(&self, other: &ChatRecord) -> std::cmp::Ordering {
        self.severity()
            .cmp(&other.severity())
            .then_with(|| {
                let (x, y) = (
                    self.score.unwrap_or(f64::INFINITY),
                    other.score.unwrap_or(f64::INFINITY),
                );
                x.total_cmp(&y)
            })
            .then_with(|| self.id.cmp(&other.id))
    }

    /// Whether the chat counts as unhealthy for `--linq.chat-metrics=unhealthy`.
    pub fn is_unhealthy(&self, score_threshold: f64) -> bool {
        self.score.is_some_and(|s| s < score_threshold)
            || matches!(
                self.status.as_deref(),
                Some("AT_RISK" | "CRITICAL" | "OPTED_OUT")
            )
    }
}

/// Key of `linq_chats`: (phone_number, service, is_group, is_archived).
pub type ChatCountKey = (Arc<str>, Arc<str>, bool, bool);
/// Key of `linq_chat_participants`: (phone_number, service, status).
pub type ParticipantKey = (Arc<str>, Arc<str>, Arc<str>);

/// A complete, immutable view of the account after one successful sweep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every chat, sorted by id.
    pub chats: Vec<ChatRecord>,
    /// Chats by (number, service, group, archived).
    pub chat_counts: BTreeMap<ChatCountKey, u64>,
    /// Participants (not `is_me`) by (number, handle service, status).
    pub participants: BTreeMap<ParticipantKey, u64>,
    /// Chats by (number, health status).
    pub by_status: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// Cumulative scored-chat counts per number, one per [`SCORE_BUCKETS`] bound.
    pub score_buckets: BTreeMap<Arc<str>, [u64; 10]>,
    /// Every `phone_number` label value in the snapshot.
    pub phone_numbers: BTreeSet<Arc<str>>,
    /// Pages fetched.
    pub pages: u64,
    /// Chats seen more than once and dropped.
    pub duplicates: u64,
    /// Line reputation per number (from `GET /v3/phone_numbers`), sorted by number.
    pub reputations: Vec<(Arc<str>, Arc<str>)>,
}

#[derive(Debug)]
struct Pending {
    walk: usize,
    record: ChatRecord,
    participants: Box<[(Arc<str>, Arc<str>)]>,
}

/// Builds a [`Snapshot`] from pages. Chats are deduplicated by id; when walks disagree about a
/// chat the earliest walk (in configuration order) wins, so the result does not depend on the
/// order in which concurrent walks finish.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    chats: HashMap<Arc<str>, Pending>,
    interned: HashMap<Box<str>, Arc<str>>,
    keep_display_name: bool,
    pages: u64,
    duplicates: u64,
}

/// Parses an RFC 3339 time to Unix seconds; anything else is `None` (not worth failing a sweep).
fn unix_seconds(s: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.timestamp())
}

impl SnapshotBuilder {
    /// A new builder; `keep_display_name` keeps chat display names for the opt-in label.
    pub fn new(keep_display_name: bool) -> Self {
        SnapshotBuilder {
            keep_display_name,
            ..Default::default()
        }
    }

    /// Reserves room for `chats` chats (the last sweep's count), so the index is not rehashed
    /// (briefly doubling its memory) as a large account is walked.
    pub fn with_capacity(mut self, chats: usize) -> Self {
        self.chats.reserve(chats);
        self
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.interned.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.interned.insert(Box::from(s), a.clone());
        a
    }

    /// Counts one fetched page.
    pub fn count_page(&mut self) {
        self.pages += 1;
    }

    /// Adds a chat seen by walk number `walk` (its index in configuration order), which used the
    /// `from` filter `walk_from` (`None` for an unfiltered walk).
    pub fn add_chat(&mut self, walk: usize, walk_from: Option<&str>, chat: &Chat<'_>) {
        if let Some(existing) = self.chats.get(chat.id.as_ref()) {
            self.duplicates += 1;
            if existing.walk <= walk {
                return;
            }
        }
        let phone = match walk_from {
            Some(n) => n,
            None => chat
                .handles
                .iter()
                .find(|h| h.is_me == Some(true))
                .map(|h| h.handle.as_ref())
                .unwrap_or(UNKNOWN),
        };
        let phone_number = self.intern(phone);
        let service = self.intern(chat.service.as_deref().unwrap_or(UNKNOWN));
        let status = chat
            .health_status
            .as_ref()
            .map(|s| s.status.as_ref())
            .map(|s| self.intern(s));
        let participants: Box<[(Arc<str>, Arc<str>)]> = chat
            .handles
            .iter()
            .filter(|h| h.is_me != Some(true))
            .map(|h| {
                (
                    self.intern(h.service.as_deref().unwrap_or(UNKNOWN)),
                    self.intern(h.status.as_deref().unwrap_or(UNKNOWN)),
                )
            })
            .collect();
        let health_updated = chat
            .health_status
            .as_ref()
            .and_then(|s| unix_seconds(s.updated_at.as_deref()))
            .or_else(|| {
                chat.health_score
                    .as_ref()
                    .and_then(|s| unix_seconds(s.updated_at.as_deref()))
            });
        let id: Arc<str> = Arc::from(chat.id.as_ref());
        let record = ChatRecord {
            id: id.clone(),
            phone_number,
            service,
            is_group: chat.is_group,
            is_archived: chat.is_archived,
            score: chat.health_score.as_ref().map(|s| s.score),
            status,
            health_updated,
            display_name: if self.keep_display_name {
                chat.display_name.as_deref().map(Box::from)
            } else {
                None
            },
        };
        self.chats.insert(
            id,
            Pending {
                walk,
                record,
                participants,
            },
        );
    }

    /// Number of distinct chats so far.
    pub fn len(&self) -> usize {
        self.chats.len()
    }

    /// Whether no chat has been added.
    pub fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }

    /// Aggregates everything into a snapshot. `walk_numbers` are numbers walked with `from`; they
    /// appear in the per-number status and score series even when they have no chats.
    pub fn finish(self, walk_numbers: &[String]) -> Snapshot {
        let mut snap = Snapshot {
            pages: self.pages,
            duplicates: self.duplicates,
            ..Default::default()
        };
        for n in walk_numbers {
            snap.phone_numbers.insert(Arc::from(n.as_str()));
        }
        let mut chats = Vec::with_capacity(self.chats.len());
        for (_, p) in self.chats {
            let r = &p.record;
            snap.phone_numbers.insert(r.phone_number.clone());
            *snap
                .chat_counts
                .entry((
                    r.phone_number.clone(),
                    r.service.clone(),
                    r.is_group,
                    r.is_archived,
                ))
                .or_default() += 1;
            for (service, status) in p.participants.iter() {
                *snap
                    .participants
                    .entry((r.phone_number.clone(), service.clone(), status.clone()))
                    .or_default() += 1;
            }
            if let Some(status) = &r.status {
                *snap
                    .by_status
                    .entry((r.phone_number.clone(), status.clone()))
                    .or_default() += 1;
            }
            if let Some(score) = r.score {
                let buckets = snap
                    .score_buckets
                    .entry(r.phone_number.clone())
                    .or_default();
                for (i, le) in SCORE_BUCKETS.iter().enumerate() {
                    if score <= f64::from(*le) {
                        buckets[i] += 1;
                    }
                }
            }
            chats.push(p.record);
        }
        // Every number shows every documented status and every bucket, zero included, so
        // ratios and alerts have a denominator and series do not flap in and out of existence.
        for phone in &snap.phone_numbers {
            for s in KNOWN_STATUSES {
                snap.by_status
                    .entry((phone.clone(), Arc::from(s)))
                    .or_insert(0);
            }
            snap.score_buckets.entry(phone.clone()).or_default();
        }
        chats.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        snap.chats = chats;
        snap
    }
}

impl Snapshot {
    /// Total number of chats.
    pub fn total_chats(&self) -> usize {
        self.chats.len()
    }

    /// The chats that get per-chat series under `mode`, capped at `max` (worst chats first);
    /// returns them in id order and how many eligible chats the cap dropped.
    pub fn chats_for_series(
        &self,
        mode: crate::config::ChatMetrics,
        unhealthy_score: f64,
        max: Option<usize>,
    ) -> (Vec<&ChatRecord>, usize) {
        use crate::config::ChatMetrics;
        let mut selected: Vec<&ChatRecord> = match mode {
            ChatMetrics::None => return (Vec::new(), 0),
            ChatMetrics::All => self.chats.iter().collect(),
            ChatMetrics::Unhealthy => self
                .chats
                .iter()
                .filter(|c| c.is_unhealthy(unhealthy_score))
                .collect(),
        };
        let mut dropped = 0;
        if let Some(max) = max {
            if selected.len() > max {
                dropped = selected.len() - max;
                selected.sort_unstable_by(|a, b| a.worse_first(b));
                selected.truncate(max);
                selected.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            }
        }
        (selected, dropped)
    }
}

/// What the status page shows of a snapshot, kept so the whole snapshot need not be.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Chats in the snapshot.
    pub total_chats: usize,
    /// Archived chats.
    pub archived: u64,
    /// Group chats.
    pub groups: u64,
    /// Chats by health status (every number together).
    pub by_status: Vec<(String, u64)>,
    /// Scored chats per score band (0-10, 10-20, ... 90-100).
    pub score_bands: [u64; 10],
    /// The worst chats, worst first.
    pub worst: Vec<ChatRecord>,
    /// Line reputations: (number, status).
    pub reputations: Vec<(String, String)>,
    /// Numbers in the snapshot.
    pub phone_numbers: usize,
}

/// How many chats the status page lists.
pub const WORST_CHATS: usize = 20;

impl Snapshot {
    /// The status page's view of this snapshot.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            total_chats: self.chats.len(),
            phone_numbers: self.phone_numbers.len(),
            reputations: self
                .reputations
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect(),
            ..Default::default()
        };
        for ((_, _, group, archived), n) in &self.chat_counts {
            if *group {
                s.groups += n;
            }
            if *archived {
                s.archived += n;
            }
        }
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, status), n) in &self.by_status {
            *by_status.entry(status).or_default() += n;
        }
        s.by_status = by_status
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for c in &self.chats {
            if let Some(score) = c.score {
                let band = ((score / 10.0).floor().clamp(0.0, 9.0)) as usize;
                s.score_bands[band] += 1;
            }
        }
        let mut worst: Vec<&ChatRecord> = self
            .chats
            .iter()
            .filter(|c| c.score.is_some() || c.status.is_some())
            .collect();
        worst.sort_unstable_by(|a, b| a.worse_first(b));
        s.worst = worst.into_iter().take(WORST_CHATS).cloned().collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChatMetrics;
    use crate::models::decode_chats_page;

    const FULL: &str = include_str!("../tests/fixtures/chats_page_full.json");

    fn build(walk_from: Option<&str>) -> Snapshot {
        let page = decode_chats_page(FULL.as_bytes()).expect("fixture");
        let mut b = SnapshotBuilder::new(true);
        b.count_page();
        for c in &page.chats {
            b.add_chat(0, walk_from, c);
        }
        b.finish(&[])
    }

    fn a(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn aggregates_unfiltered_walk() {
        let s = build(None);
        assert_eq!(s.total_chats(), 4);
        let me = a("+14155551234");
        let unknown = a("unknown");
        // chat-4 has no is_me handle, so its number is unknown.
        assert_eq!(s.chats[3].phone_number, unknown);
        let expected: BTreeMap<ChatCountKey, u64> = [
            ((me.clone(), a("WhatsApp"), false, false), 1),
            ((me.clone(), a("iMessage"), false, false), 1),
            ((me.clone(), a("unknown"), true, true), 1),
            ((unknown.clone(), a("SMS"), false, false), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.chat_counts, expected);

        let expected: BTreeMap<ParticipantKey, u64> = [
            ((me.clone(), a("SMS"), a("left")), 1),
            ((me.clone(), a("WhatsApp"), a("muted")), 1),
            ((me.clone(), a("iMessage"), a("active")), 1),
            ((me.clone(), a("iMessage"), a("unknown")), 1),
            ((unknown.clone(), a("SMS"), a("removed")), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.participants, expected);

        assert_eq!(s.by_status.get(&(me.clone(), a("HEALTHY"))), Some(&1));
        assert_eq!(s.by_status.get(&(me.clone(), a("SHADOWBANNED"))), Some(&1));
        assert_eq!(s.by_status.get(&(me.clone(), a("CRITICAL"))), Some(&0));
        assert_eq!(s.by_status.get(&(unknown.clone(), a("AT_RISK"))), Some(&0));
        assert_eq!(s.by_status.len(), 9);

        assert_eq!(
            s.score_buckets.get(&me),
            Some(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
        );
        assert_eq!(
            s.score_buckets.get(&unknown),
            Some(&[0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        );
        // health_status.updated_at wins over health_score.updated_at
        assert_eq!(s.chats[0].health_updated, Some(1_777_716_000));
        assert_eq!(s.chats[3].health_updated, Some(1_777_626_000));
    }

    #[test]
    fn from_walk_labels_every_chat_with_the_walked_number() {
        let s = build(Some("+15550001111"));
        assert!(s
            .chats
            .iter()
            .all(|c| c.phone_number.as_ref() == "+15550001111"));
        assert_eq!(s.phone_numbers.len(), 1);
    }

    #[test]
    fn duplicates_keep_the_earliest_walk() {
        let page = decode_chats_page(FULL.as_bytes()).expect("fixture");
        let mut b = SnapshotBuilder::new(false);
        // walk 1 first, then walk 0 sees the same chat: walk 0 wins, counted once.
        b.add_chat(1, Some("+15550000002"), &page.chats[0]);
        b.add_chat(0, Some("+15550000001"), &page.chats[0]);
        b.add_chat(1, Some("+15550000002"), &page.chats[0]);
        let s = b.finish(&["+15550000001".into(), "+15550000002".into()]);
        assert_eq!(s.total_chats(), 1);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.chats[0].phone_number.as_ref(), "+15550000001");
        assert_eq!(s.participants.values().sum::<u64>(), 1);
        // the number without chats still has zero status series
        assert_eq!(
            s.by_status.get(&(a("+15550000002"), a("CRITICAL"))),
            Some(&0)
        );
        assert_eq!(s.chats[0].display_name, None);
    }

    #[test]
    fn series_selection_and_cap() {
        let s = build(None);
        let ids = |v: &[&ChatRecord]| v.iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
        let (all, dropped) = s.chats_for_series(ChatMetrics::All, 50.0, None);
        assert_eq!((all.len(), dropped), (4, 0));
        let (none, _) = s.chats_for_series(ChatMetrics::None, 50.0, None);
        assert!(none.is_empty());
        // chat-4 scores 12.5; chat-3's status is not one of the unhealthy ones.
        let (unhealthy, _) = s.chats_for_series(ChatMetrics::Unhealthy, 50.0, None);
        assert_eq!(ids(&unhealthy), ["chat-4"]);
        let (unhealthy, _) = s.chats_for_series(ChatMetrics::Unhealthy, 90.0, None);
        assert_eq!(ids(&unhealthy), ["chat-1", "chat-4"]);
        // cap of 2: score 12.5 (chat-4) ranks as critical, an unknown status (chat-3) next;
        // HEALTHY chat-1 and unscored chat-2 are dropped.
        let (capped, dropped) = s.chats_for_series(ChatMetrics::All, 50.0, Some(2));
        assert_eq!(ids(&capped), ["chat-3", "chat-4"]);
        assert_eq!(dropped, 2);
    }
}
