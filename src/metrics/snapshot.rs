//! The snapshot: pure aggregation of API data into what `/metrics` shows. API pages go in
//! through [`SnapshotBuilder`]; an immutable [`Snapshot`] comes out. No I/O here.
//!
//! Built for 100k chats per sweep: only what the metrics need is kept per chat (no whole `Chat`
//! objects), repeated label values (numbers, services, statuses) are interned once as small
//! integer [`Label`]s, the dedupe index holds record positions rather than a second copy of each
//! id, and the aggregates are counted over integer keys before their labels are resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::api::models::Chat;

/// The upper bounds of the `linq_chats_by_health_score` buckets.
pub const SCORE_BUCKETS: [u32; 10] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

/// The health statuses the API documents; each gets a (possibly zero) count per number.
pub const KNOWN_STATUSES: [&str; 4] = ["HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT"];

/// Label value for a missing service, status or number.
pub const UNKNOWN: &str = "unknown";

/// An interned label value (a number, service or status): an index into [`Labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);

impl Label {
    /// `unknown`.
    pub const UNKNOWN: Label = Label(0);
    /// `HEALTHY`.
    pub const HEALTHY: Label = Label(1);
    /// `AT_RISK`.
    pub const AT_RISK: Label = Label(2);
    /// `CRITICAL`.
    pub const CRITICAL: Label = Label(3);
    /// `OPTED_OUT`.
    pub const OPTED_OUT: Label = Label(4);
    /// No label (a chat without a status); never a value in [`Labels`].
    pub const NONE: Label = Label(u32::MAX);
}

/// The values behind [`Label`]s. The documented statuses and `unknown` come first, at the
/// indices of the `Label` constants, so a status can be judged without a string compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    values: Vec<Arc<str>>,
    index: FxHashMap<Arc<str>, Label>,
}

impl Default for Labels {
    fn default() -> Self {
        let mut labels = Labels {
            values: Vec::new(),
            index: FxHashMap::default(),
        };
        for s in [UNKNOWN, "HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT"] {
            labels.intern(s);
        }
        labels
    }
}

impl Labels {
    /// The label of `s`, added if new.
    pub fn intern(&mut self, s: &str) -> Label {
        if let Some(l) = self.index.get(s) {
            return *l;
        }
        let label = Label(self.values.len() as u32);
        let value: Arc<str> = Arc::from(s);
        self.values.push(value.clone());
        self.index.insert(value, label);
        label
    }

    /// The value of a label.
    pub fn value(&self, l: Label) -> &Arc<str> {
        // Labels only come from `intern` on this table (or a clone of it).
        &self.values[l.0 as usize]
    }
}

/// What the exporter keeps of one chat: 64 bytes plus its id (and display name, when kept).
/// Absent values are stored as sentinels rather than `Option`s, which would double the size
/// of three fields; read them through [`ChatRecord::score`], [`ChatRecord::status`] and
/// [`ChatRecord::health_updated`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRecord {
    /// Chat id.
    pub id: Box<str>,
    /// Display name, kept only when the display-name label is enabled.
    pub display_name: Option<Box<str>>,
    /// `health_score.score`, or NaN (which JSON cannot carry) when the chat has none.
    score: f64,
    /// Unix time of the last health change, or `i64::MIN` when unknown.
    health_updated: i64,
    /// The `phone_number` label.
    pub phone_number: Label,
    /// The chat's service label.
    pub service: Label,
    /// `health_status.status`, or [`Label::NONE`] when the chat has none.
    status: Label,
    /// Group chat.
    pub is_group: bool,
    /// Archived chat; `None` when the API did not say.
    pub is_archived: Option<bool>,
}

impl Default for ChatRecord {
    fn default() -> Self {
        ChatRecord {
            id: Box::default(),
            display_name: None,
            score: f64::NAN,
            health_updated: i64::MIN,
            phone_number: Label::UNKNOWN,
            service: Label::UNKNOWN,
            status: Label::NONE,
            is_group: false,
            is_archived: None,
        }
    }
}

/// Where a record came from and its participants, kept by the builder only.
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// The walk that supplied the record (the earliest walk wins a duplicate).
    walk: u32,
    /// The chat's other participants: a range of the builder's participant list.
    participants: (u32, u32),
}

impl ChatRecord {
    /// `health_score.score`, when the chat has one.
    pub fn score(&self) -> Option<f64> {
        (!self.score.is_nan()).then_some(self.score)
    }

    /// `health_status.status`, when the chat has one.
    pub fn status(&self) -> Option<Label> {
        (self.status != Label::NONE).then_some(self.status)
    }

    /// Unix time of the last health change (`health_status.updated_at`, else
    /// `health_score.updated_at`), when known.
    pub fn health_updated(&self) -> Option<i64> {
        (self.health_updated != i64::MIN).then_some(self.health_updated)
    }

    /// Severity rank for choosing which chats keep per-chat series: lower is worse. The worse
    /// of the status and the score decides (a score below 30 ranks with CRITICAL, below 60
    /// with AT_RISK: the dashboards' red and amber thresholds).
    pub fn severity(&self) -> u8 {
        let by_status = match self.status() {
            Some(Label::CRITICAL) => 0,
            Some(Label::OPTED_OUT) => 1,
            Some(Label::AT_RISK) => 2,
            Some(Label::HEALTHY) => 4,
            Some(_) => 3,
            None => 5,
        };
        let by_score = match self.score() {
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
                    self.score().unwrap_or(f64::INFINITY),
                    other.score().unwrap_or(f64::INFINITY),
                );
                x.total_cmp(&y)
            })
            .then_with(|| self.id.cmp(&other.id))
    }

    /// Whether the chat counts as unhealthy for `--linq.chat-metrics=unhealthy`.
    pub fn is_unhealthy(&self, score_threshold: f64) -> bool {
        self.score().is_some_and(|s| s < score_threshold)
            || matches!(
                self.status(),
                Some(Label::AT_RISK | Label::CRITICAL | Label::OPTED_OUT)
            )
    }
}

/// Which chats get per-chat series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatMetrics {
    /// Every chat.
    All,
    /// Only chats scoring below the unhealthy threshold or AT_RISK, CRITICAL or OPTED_OUT.
    Unhealthy,
    /// No per-chat series, aggregates only.
    None,
}

impl FromStr for ChatMetrics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "unhealthy" => Ok(Self::Unhealthy),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not one of all, unhealthy, none")),
        }
    }
}

/// Key of `linq_chats`: (phone_number, service, is_group, is_archived).
pub type ChatCountKey = (Arc<str>, Arc<str>, bool, Option<bool>);
/// Key of `linq_chat_participants`: (phone_number, service, status).
pub type ParticipantKey = (Arc<str>, Arc<str>, Arc<str>);

/// The health scores of one number's chats: cumulative counts at each [`SCORE_BUCKETS`]
/// bound, and every scored chat's count and sum (a score above 100 counts only there).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoreHistogram {
    /// Scored chats at or below each bound.
    pub le: [u64; 10],
    /// Scored chats.
    pub count: u64,
    /// Sum of their scores.
    pub sum: f64,
}

/// A complete, immutable view of the account after one successful sweep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every chat, deduplicated, in the order the walks delivered them (per-chat series are
    /// rendered in id order: see [`Snapshot::chats_for_series`]).
    pub chats: Vec<ChatRecord>,
    /// The values of the chats' labels.
    pub labels: Labels,
    /// Chats by (number, service, group, archived).
    pub chat_counts: BTreeMap<ChatCountKey, u64>,
    /// Participants (not `is_me`) by (number, handle service, status).
    pub participants: BTreeMap<ParticipantKey, u64>,
    /// Chats by (number, health status).
    pub by_status: BTreeMap<(Arc<str>, Arc<str>), u64>,
    /// The distribution of health scores per number.
    pub score_buckets: BTreeMap<Arc<str>, ScoreHistogram>,
    /// Every `phone_number` label value in the snapshot.
    pub phone_numbers: BTreeSet<Arc<str>>,
    /// Pages fetched.
    pub pages: u64,
    /// Chats seen more than once and dropped.
    pub duplicates: u64,
    /// Line reputation per number (from `GET /v3/phone_numbers`), sorted by number.
    pub reputations: Vec<(Arc<str>, Arc<str>)>,
    /// Line type per number (`iMessage`, `RCS`, or `unknown` when not given), sorted by number.
    pub line_types: Vec<(Arc<str>, Arc<str>)>,
}

/// Builds a [`Snapshot`] from pages. Chats are deduplicated by id; when walks disagree about a
/// chat the earliest walk (in configuration order) wins, so the result does not depend on the
/// order in which concurrent walks finish.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    /// Records in arrival order.
    chats: Vec<ChatRecord>,
    /// Where each record came from, by position.
    origins: Vec<Origin>,
    /// Dedupe index: positions in `chats`, hashed by chat id (the id is stored once, in the record).
    index: HashTable<u32>,
    /// (service, status) of every chat's other participants; records hold ranges of it.
    participants: Vec<(Label, Label)>,
    labels: Labels,
    keep_display_name: bool,
    pages: u64,
    duplicates: u64,
}

fn id_hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

/// Parses an RFC 3339 time to Unix seconds; anything else is `None` (not worth failing a sweep).
fn unix_seconds(s: Option<&str>) -> Option<i64> {
    let s = s?;
    fast_utc_seconds(s).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp())
    })
}

/// The common form `YYYY-MM-DDTHH:MM:SSZ` without a parser; `None` for anything else (offsets,
/// fractions, out-of-range fields), which chrono then handles.
fn fast_utc_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + mi * 60 + sec)
}

impl SnapshotBuilder {
    /// A new builder; `keep_display_name` keeps chat display names for the opt-in label.
    pub fn new(keep_display_name: bool) -> Self {
        SnapshotBuilder {
            keep_display_name,
            ..Default::default()
        }
    }

    /// Reserves room for `chats` chats (the last sweep's count), so the index and the records
    /// are not regrown (briefly doubling their memory) as a large account is walked.
    pub fn with_capacity(mut self, chats: usize) -> Self {
        self.chats.reserve(chats);
        self.origins.reserve(chats);
        self.participants.reserve(chats + chats / 2);
        let records = &self.chats;
        self.index
            .reserve(chats, |&i| id_hash(&records[i as usize].id));
        self
    }

    /// Counts one fetched page.
    pub fn count_page(&mut self) {
        self.pages += 1;
    }

    /// Adds a chat seen by walk number `walk` (its index in configuration order), which used the
    /// `from` filter `walk_from` (`None` for an unfiltered walk).
    pub fn add_chat(&mut self, walk: usize, walk_from: Option<&str>, chat: &Chat<'_>) {
        let walk = u32::try_from(walk).unwrap_or(u32::MAX);
        let hash = id_hash(&chat.id);
        let records = &self.chats;
        let existing = self
            .index
            .find(hash, |&i| *records[i as usize].id == *chat.id)
            .copied();
        if let Some(i) = existing {
            self.duplicates += 1;
            if self.origins[i as usize].walk <= walk {
                return;
            }
        }
        let (record, origin) = self.record(walk, walk_from, chat);
        match existing {
            // An earlier walk's view replaces a later one's, in place.
            Some(i) => {
                self.chats[i as usize] = record;
                self.origins[i as usize] = origin;
            }
            None => {
                let i = self.chats.len() as u32;
                self.chats.push(record);
                self.origins.push(origin);
                let records = &self.chats;
                self.index
                    .insert_unique(hash, i, |&j| id_hash(&records[j as usize].id));
            }
        }
    }

    fn record(
        &mut self,
        walk: u32,
        walk_from: Option<&str>,
        chat: &Chat<'_>,
    ) -> (ChatRecord, Origin) {
        let labels = &mut self.labels;
        let phone = match walk_from {
            Some(n) => n,
            None => chat
                .handles
                .iter()
                .find(|h| h.is_me == Some(true))
                .map(|h| h.handle.as_ref())
                .unwrap_or(UNKNOWN),
        };
        let start = self.participants.len() as u32;
        self.participants.extend(
            chat.handles
                .iter()
                .filter(|h| h.is_me != Some(true))
                .map(|h| {
                    (
                        labels.intern(h.service.as_deref().unwrap_or(UNKNOWN)),
                        labels.intern(h.status.as_deref().unwrap_or(UNKNOWN)),
                    )
                }),
        );
        let end = self.participants.len() as u32;
        let health_updated = chat
            .health_status
            .as_ref()
            .and_then(|s| unix_seconds(s.updated_at.as_deref()))
            .or_else(|| {
                chat.health_score
                    .as_ref()
                    .and_then(|s| unix_seconds(s.updated_at.as_deref()))
            });
        let record = ChatRecord {
            id: Box::from(chat.id.as_ref()),
            phone_number: labels.intern(phone),
            service: labels.intern(chat.service.as_deref().unwrap_or(UNKNOWN)),
            status: chat
                .health_status
                .as_ref()
                .map_or(Label::NONE, |s| labels.intern(&s.status)),
            // A JSON number is never NaN, so NaN is free to mean "no score".
            score: chat.health_score.as_ref().map_or(f64::NAN, |s| s.score),
            health_updated: health_updated.unwrap_or(i64::MIN),
            display_name: if self.keep_display_name {
                chat.display_name.as_deref().map(Box::from)
            } else {
                None
            },
            is_group: chat.is_group,
            is_archived: chat.is_archived,
        };
        let origin = Origin {
            walk,
            participants: (start, end),
        };
        (record, origin)
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
        let SnapshotBuilder {
            chats,
            origins,
            index,
            participants,
            mut labels,
            pages,
            duplicates,
            ..
        } = self;
        drop(index);
        let mut numbers: BTreeSet<Label> = walk_numbers.iter().map(|n| labels.intern(n)).collect();
        let mut chat_counts: FxHashMap<(Label, Label, bool, Option<bool>), u64> =
            FxHashMap::default();
        let mut people: FxHashMap<(Label, Label, Label), u64> = FxHashMap::default();
        let mut by_status: FxHashMap<(Label, Label), u64> = FxHashMap::default();
        let mut buckets: FxHashMap<Label, ScoreHistogram> = FxHashMap::default();
        let mut last_phone = None;
        for (r, origin) in chats.iter().zip(&origins) {
            // Chats of one walk share a number: skip the set insert while it repeats.
            if last_phone != Some(r.phone_number) {
                numbers.insert(r.phone_number);
                last_phone = Some(r.phone_number);
            }
            *chat_counts
                .entry((r.phone_number, r.service, r.is_group, r.is_archived))
                .or_default() += 1;
            let (start, end) = origin.participants;
            for (service, status) in participants
                .get(start as usize..end as usize)
                .unwrap_or_default()
            {
                *people
                    .entry((r.phone_number, *service, *status))
                    .or_default() += 1;
            }
            if let Some(status) = r.status() {
                *by_status.entry((r.phone_number, status)).or_default() += 1;
            }
            if let Some(score) = r.score() {
                let b = buckets.entry(r.phone_number).or_default();
                for (i, le) in SCORE_BUCKETS.iter().enumerate() {
                    if score <= f64::from(*le) {
                        b.le[i] += 1;
                    }
                }
                b.count += 1;
                b.sum += score;
            }
        }
        drop((participants, origins));
        // Every number shows every documented status and every bucket, zero included, so
        // ratios and alerts have a denominator and series do not flap in and out of existence.
        for phone in &numbers {
            for s in [
                Label::HEALTHY,
                Label::AT_RISK,
                Label::CRITICAL,
                Label::OPTED_OUT,
            ] {
                by_status.entry((*phone, s)).or_insert(0);
            }
            buckets.entry(*phone).or_default();
        }
        let v = |l: Label| labels.value(l).clone();
        Snapshot {
            chat_counts: chat_counts
                .into_iter()
                .map(|((p, s, g, a), n)| ((v(p), v(s), g, a), n))
                .collect(),
            participants: people
                .into_iter()
                .map(|((p, s, st), n)| ((v(p), v(s), v(st)), n))
                .collect(),
            by_status: by_status
                .into_iter()
                .map(|((p, s), n)| ((v(p), v(s)), n))
                .collect(),
            score_buckets: buckets.into_iter().map(|(p, b)| (v(p), b)).collect(),
            phone_numbers: numbers.into_iter().map(v).collect(),
            chats,
            labels,
            pages,
            duplicates,
            reputations: Vec::new(),
            line_types: Vec::new(),
        }
    }
}

/// Sorts chats by id. The comparisons run on an integer prefix of each id kept beside it (ids
/// are compared in full only when their first eight bytes tie), which spares most of the
/// pointer chasing of comparing ids directly.
fn sort_by_id(chats: &mut Vec<&ChatRecord>) {
    if chats.is_sorted_by(|a, b| a.id <= b.id) {
        return;
    }
    let prefix = |id: &str| {
        let mut p = [0u8; 8];
        let n = id.len().min(8);
        p[..n].copy_from_slice(&id.as_bytes()[..n]);
        u64::from_be_bytes(p)
    };
    let mut keyed: Vec<(u64, &ChatRecord)> = chats.iter().map(|c| (prefix(&c.id), *c)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    chats.clear();
    chats.extend(keyed.into_iter().map(|(_, c)| c));
}

impl Snapshot {
    /// Total number of chats.
    pub fn total_chats(&self) -> usize {
        self.chats.len()
    }

    /// The value of one of the chats' labels.
    pub fn label(&self, l: Label) -> &str {
        self.labels.value(l)
    }

    /// The chats that get per-chat series under `mode`, capped at `max` (worst chats first);
    /// returns them in id order and how many eligible chats the cap dropped.
    pub fn chats_for_series(
        &self,
        mode: ChatMetrics,
        unhealthy_score: f64,
        max: Option<usize>,
    ) -> (Vec<&ChatRecord>, usize) {
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
                selected.select_nth_unstable_by(max.saturating_sub(1), |a, b| a.worse_first(b));
                selected.truncate(max);
            }
        }
        sort_by_id(&mut selected);
        (selected, dropped)
    }
}

/// One of the worst chats, as the status page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstChat {
    /// Chat id.
    pub id: String,
    /// `health_score.score`.
    pub score: Option<f64>,
    /// `health_status.status`.
    pub status: Option<String>,
    /// The chat's number.
    pub phone_number: String,
    /// The chat's service.
    pub service: String,
    /// Display name, when the display-name label is enabled.
    pub display_name: Option<String>,
}

/// What the status page shows of a snapshot, kept so the whole snapshot need not be.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Chats in the snapshot.
    pub total_chats: usize,
    /// Archived chats.
    pub archived: u64,
    /// Chats whose page did not say whether they are archived.
    pub archived_unknown: u64,
    /// Group chats.
    pub groups: u64,
    /// Chats by health status (every number together).
    pub by_status: Vec<(String, u64)>,
    /// Scored chats per score band (0-10, 10-20, ... 90-100).
    pub score_bands: [u64; 10],
    /// The worst chats, worst first.
    pub worst: Vec<WorstChat>,
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
            match archived {
                Some(true) => s.archived += n,
                Some(false) => {}
                None => s.archived_unknown += n,
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
            if let Some(score) = c.score() {
                let band = ((score / 10.0).floor().clamp(0.0, 9.0)) as usize;
                s.score_bands[band] += 1;
            }
        }
        let mut worst: Vec<&ChatRecord> = self
            .chats
            .iter()
            .filter(|c| c.score().is_some() || c.status().is_some())
            .collect();
        let n = worst.len().min(WORST_CHATS);
        if n > 0 {
            worst.select_nth_unstable_by(n - 1, |a, b| a.worse_first(b));
            worst.truncate(n);
            worst.sort_unstable_by(|a, b| a.worse_first(b));
        }
        s.worst = worst
            .into_iter()
            .map(|c| WorstChat {
                id: c.id.to_string(),
                score: c.score(),
                status: c.status().map(|l| self.label(l).to_string()),
                phone_number: self.label(c.phone_number).to_string(),
                service: self.label(c.service).to_string(),
                display_name: c.display_name.as_deref().map(str::to_string),
            })
            .collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decode::decode_chats_page;
    use ChatMetrics;

    const FULL: &str = include_str!("../../tests/fixtures/chats_page_full.json");

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
    fn a_page_without_is_archived_counts_as_unknown_not_as_unarchived() {
        // The field is deprecated: the day the API drops it, chats must not silently turn
        // "not archived".
        let body = r#"{"chats":[
            {"id":"x","handles":[{"id":"h","handle":"+14155550100","service":"SMS","is_me":true}],"is_group":false,"service":"SMS"},
            {"id":"y","handles":[{"id":"h","handle":"+14155550100","service":"SMS","is_me":true}],"is_archived":null,"is_group":false,"service":"SMS"},
            {"id":"z","handles":[{"id":"h","handle":"+14155550100","service":"SMS","is_me":true}],"is_archived":true,"is_group":false,"service":"SMS"}
        ],"next_cursor":null}"#;
        let page = decode_chats_page(body.as_bytes()).expect("page");
        let mut b = SnapshotBuilder::new(false);
        for c in &page.chats {
            b.add_chat(0, None, c);
        }
        let s = b.finish(&[]);
        let n = a("+14155550100");
        let expected: BTreeMap<ChatCountKey, u64> = [
            ((n.clone(), a("SMS"), false, None), 2),
            ((n.clone(), a("SMS"), false, Some(true)), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.chat_counts, expected);
        let summary = s.summary();
        assert_eq!((summary.archived, summary.archived_unknown), (1, 2));
    }

    #[test]
    fn aggregates_unfiltered_walk() {
        let s = build(None);
        assert_eq!(s.total_chats(), 4);
        let me = a("+14155551234");
        let unknown = a("unknown");
        // chat-4 has no is_me handle, so its number is unknown.
        assert_eq!(s.label(s.chats[3].phone_number), "unknown");
        let expected: BTreeMap<ChatCountKey, u64> = [
            ((me.clone(), a("WhatsApp"), false, Some(false)), 1),
            ((me.clone(), a("iMessage"), false, Some(false)), 1),
            ((me.clone(), a("unknown"), true, Some(true)), 1),
            ((unknown.clone(), a("SMS"), false, Some(false)), 1),
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
            s.score_buckets.get(&me).map(|h| h.le),
            Some([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
        );
        assert_eq!(
            s.score_buckets.get(&unknown).map(|h| h.le),
            Some([0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        );
        // health_status.updated_at wins over health_score.updated_at
        assert_eq!(s.chats[0].health_updated(), Some(1_777_716_000));
        assert_eq!(s.chats[3].health_updated(), Some(1_777_626_000));
        assert_eq!(s.chats[1].health_updated(), None);
        assert_eq!(s.chats[1].score(), None);
        assert_eq!(s.chats[1].status(), None);
        assert_eq!(s.chats[3].score(), Some(12.5));
        assert_eq!(s.chats[0].status(), Some(Label::HEALTHY));
    }

    #[test]
    fn from_walk_labels_every_chat_with_the_walked_number() {
        let s = build(Some("+15550001111"));
        assert!(s
            .chats
            .iter()
            .all(|c| s.label(c.phone_number) == "+15550001111"));
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
        assert_eq!(s.label(s.chats[0].phone_number), "+15550000001");
        assert_eq!(s.participants.values().sum::<u64>(), 1);
        // the number without chats still has zero status series
        assert_eq!(
            s.by_status.get(&(a("+15550000002"), a("CRITICAL"))),
            Some(&0)
        );
        assert_eq!(s.chats[0].display_name, None);
    }

    #[test]
    fn fast_time_parse_agrees_with_chrono() {
        let chrono = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp())
        };
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-05-02T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2000-02-29T12:00:00Z",
            "2100-03-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(fast_utc_seconds(s), chrono(s), "{s}");
            assert!(fast_utc_seconds(s).is_some(), "{s}");
        }
        // Not the fast form: chrono decides (offsets, fractions), or nobody can (nonsense).
        for s in [
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-05-02T24:00:00Z",
            "2026-05-02T00:00:00+02:00",
            "2026-05-02T00:00:00.5Z",
            "2026-05-02 00:00:00Z",
            "2026-0a-02T00:00:00Z",
        ] {
            assert_eq!(fast_utc_seconds(s), None, "{s}");
            assert_eq!(unix_seconds(Some(s)), chrono(s), "{s}");
        }
        assert_eq!(
            unix_seconds(Some("2026-05-02T02:00:00+02:00")),
            Some(1_777_680_000)
        );
    }

    #[test]
    fn records_are_sorted_by_the_whole_id() {
        let page = decode_chats_page(FULL.as_bytes()).expect("fixture");
        let mut chat = page.chats.into_iter().next().expect("a chat");
        let mut b = SnapshotBuilder::new(false);
        // Ids sharing their first eight bytes, shorter than eight bytes, and out of order.
        let ids = [
            "chat-000-b",
            "chat-000-a",
            "b",
            "chat-000",
            "a",
            "chat-001",
            "ab",
        ];
        for id in ids {
            chat.id = id.into();
            b.add_chat(0, None, &chat);
        }
        let s = b.finish(&[]);
        let got: Vec<&str> = s.chats.iter().map(|c| c.id.as_ref()).collect();
        assert_eq!(got, ids, "the snapshot keeps the API's order");
        let (series, _) = s.chats_for_series(ChatMetrics::All, 50.0, None);
        let got: Vec<&str> = series.iter().map(|c| c.id.as_ref()).collect();
        let mut want = ids.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "per-chat series come in id order");
    }

    #[test]
    fn sorting_by_prefix_matches_a_plain_sort() {
        // Pseudo-random ids, many sharing long prefixes, through every permutation shape.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ids = Vec::new();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ids.push(format!("chat-{:x}", x % 5000));
        }
        let records: Vec<ChatRecord> = ids
            .iter()
            .map(|id| ChatRecord {
                id: id.as_str().into(),
                ..Default::default()
            })
            .collect();
        let mut records: Vec<&ChatRecord> = records.iter().collect();
        sort_by_id(&mut records);
        ids.sort_unstable();
        let got: Vec<&str> = records.iter().map(|c| c.id.as_ref()).collect();
        assert_eq!(got, ids);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_record_is_64_bytes() {
        assert_eq!(std::mem::size_of::<ChatRecord>(), 64);
    }

    #[test]
    fn documented_statuses_have_fixed_labels() {
        let labels = Labels::default();
        for (l, s) in [
            (Label::UNKNOWN, "unknown"),
            (Label::HEALTHY, "HEALTHY"),
            (Label::AT_RISK, "AT_RISK"),
            (Label::CRITICAL, "CRITICAL"),
            (Label::OPTED_OUT, "OPTED_OUT"),
        ] {
            assert_eq!(labels.value(l).as_ref(), s);
        }
        let mut labels = labels;
        let x = labels.intern("+15550001111");
        assert_eq!(labels.intern("+15550001111"), x);
        assert_eq!(labels.intern("CRITICAL"), Label::CRITICAL);
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
