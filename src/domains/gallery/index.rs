//! The tantivy index behind the feeds, in `<data_dir>/gallery/`: one document per account
//! that could be shown, derived from redb (user, profile, presence, calls, wallet) and
//! rebuildable from it. Documents hold only what feeds filter and sort on; the cards are read
//! from redb for the page shown.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, Term, doc};

use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};

use super::rules::{Rule, Sort};

/// Bump when the documents change shape: the server rebuilds an index of another version.
pub const INDEX_VERSION: u32 = 4;
const VERSION_FILE: &str = "duet-gallery-version";
/// Memory the writer may use before it flushes a segment.
const WRITER_BYTES: usize = 32 * 1024 * 1024;
/// Profiles one ranked list holds, at most.
pub const RANKED_MAX: usize = 20_000;

/// What the index knows of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub user_id: String,
    pub role: Role,
    /// Shown at all: not banned, not erased, not hidden by its owner.
    pub listed: bool,
    /// The profile photo passed moderation (true until media moderation decides otherwise).
    pub approved: bool,
    pub online: bool,
    pub online_since_ms: i64,
    pub busy: bool,
    /// A user whose wallet covers the first checkpoint of the call they would make.
    pub can_pay: bool,
    pub country: Option<String>,
    /// Primary language subtags, lowercased.
    pub languages: Vec<String>,
    pub gender: Option<String>,
    pub age: Option<u64>,
    pub tags: Vec<String>,
}

/// The fast field each order ranks by, highest first (one field per order: ranking reads one
/// column and needs no second pass).
fn rank_field(sort: Sort) -> &'static str {
    match sort {
        Sort::OnlineLongest => "rank_longest",
        Sort::OnlineNewest => "rank_newest",
        Sort::PayersFirst => "rank_payers",
    }
}

/// The filters a feed request may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    pub country: Option<String>,
    pub language: Option<String>,
    pub min_age: Option<u64>,
    pub max_age: Option<u64>,
    pub gender: Option<String>,
    pub tag: Option<String>,
}

struct Fields {
    id: Field,
    role: Field,
    listed: Field,
    approved: Field,
    online: Field,
    busy: Field,
    rank_longest: Field,
    rank_newest: Field,
    rank_payers: Field,
    country: Field,
    language: Field,
    gender: Field,
    age: Field,
    tag: Field,
}

pub struct GalleryIndex {
    fields: Fields,
    /// `None` once closed (shutdown): the directory's lock is free for the next server.
    writer: parking_lot::Mutex<Option<IndexWriter>>,
    reader: IndexReader,
}

fn closed() -> AppError {
    AppError::new(
        crate::core::error::Code::Unavailable,
        "the gallery index is closed (shutting down)",
    )
}

fn failed(e: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("gallery index: {e}"))
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | FAST),
        role: b.add_u64_field("role", INDEXED),
        listed: b.add_u64_field("listed", INDEXED),
        approved: b.add_u64_field("approved", INDEXED),
        online: b.add_u64_field("online", INDEXED),
        busy: b.add_u64_field("busy", FAST),
        rank_longest: b.add_i64_field(rank_field(Sort::OnlineLongest), FAST),
        rank_newest: b.add_i64_field(rank_field(Sort::OnlineNewest), FAST),
        rank_payers: b.add_i64_field(rank_field(Sort::PayersFirst), FAST),
        country: b.add_text_field("country", STRING),
        language: b.add_text_field("language", STRING),
        gender: b.add_text_field("gender", STRING),
        age: b.add_u64_field("age", INDEXED),
        tag: b.add_text_field("tag", STRING),
    };
    (b.build(), fields)
}

fn role_code(role: Role) -> u64 {
    match role {
        Role::User => 0,
        Role::Streamer => 1,
        Role::Moderator => 2,
        Role::Admin => 3,
    }
}

impl GalleryIndex {
    /// Opens the index in `dir`, or creates an empty one; `true` when it was created (or was of
    /// another version and started over), so the caller fills it from redb.
    pub fn open(dir: &Path) -> AppResult<(GalleryIndex, bool)> {
        let (schema, fields) = schema();
        let version_path = dir.join(VERSION_FILE);
        let current = std::fs::read_to_string(&version_path)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            == Some(INDEX_VERSION);
        let fresh = !current;
        if fresh && dir.exists() {
            std::fs::remove_dir_all(dir).map_err(failed)?;
        }
        std::fs::create_dir_all(dir).map_err(failed)?;
        let index = if fresh {
            Index::create_in_dir(dir, schema).map_err(failed)?
        } else {
            Index::open_in_dir(dir).map_err(failed)?
        };
        let writer = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(failed)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(failed)?;
        if fresh {
            std::fs::write(&version_path, INDEX_VERSION.to_string()).map_err(failed)?;
        }
        Ok((
            GalleryIndex {
                fields,
                writer: parking_lot::Mutex::new(Some(writer)),
                reader,
            },
            fresh,
        ))
    }

    /// Replaces (or removes, `None`) the documents of `entries` and commits them at once: the
    /// index is a batch behind redb at most.
    pub fn apply(&self, entries: &[(String, Option<Entry>)]) -> AppResult<()> {
        let f = &self.fields;
        let mut guard = self.writer.lock();
        let w = guard.as_mut().ok_or_else(closed)?;
        for (user_id, entry) in entries {
            w.delete_term(Term::from_field_text(f.id, user_id));
            let Some(e) = entry else { continue };
            let mut d = doc!(
                f.id => e.user_id.clone(),
                f.role => role_code(e.role),
                f.listed => u64::from(e.listed),
                f.approved => u64::from(e.approved),
                f.online => u64::from(e.online),
                f.busy => u64::from(e.busy),
                f.rank_longest => -e.online_since_ms,
                f.rank_newest => e.online_since_ms,
                // Unix ms fit in 41 bits: who can pay ranks above everyone who cannot.
                f.rank_payers => (i64::from(e.can_pay) << 45) + e.online_since_ms,
            );
            if let Some(c) = &e.country {
                d.add_text(f.country, c);
            }
            for l in &e.languages {
                d.add_text(f.language, l);
            }
            if let Some(g) = &e.gender {
                d.add_text(f.gender, g);
            }
            if let Some(a) = e.age {
                d.add_u64(f.age, a);
            }
            for t in &e.tags {
                d.add_text(f.tag, t);
            }
            w.add_document(d).map_err(failed)?;
        }
        w.commit().map_err(failed)?;
        drop(guard);
        self.reader.reload().map_err(failed)
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> AppResult<()> {
        let mut guard = self.writer.lock();
        let w = guard.as_mut().ok_or_else(closed)?;
        w.delete_all_documents().map_err(failed)?;
        w.commit().map_err(failed)?;
        drop(guard);
        self.reader.reload().map_err(failed)
    }

    /// Lets go of the writer (after any commit in progress) and so of the directory's lock.
    pub fn close(&self) {
        let writer = self.writer.lock().take();
        drop(writer);
    }

    /// The ids of the listed, approved, online accounts of the role `rule` shows that pass
    /// `filters` and the rule's tag conditions, in the rule's order, with whether each is
    /// busy; at most [`RANKED_MAX`].
    pub fn ranked(&self, rule: &Rule, filters: &Filters) -> AppResult<Vec<(String, bool)>> {
        let f = &self.fields;
        let u64_term = |field, v: u64| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_u64(field, v),
                IndexRecordOption::Basic,
            ))
        };
        let text_term = |field, v: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, v),
                IndexRecordOption::Basic,
            ))
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::Must, u64_term(f.role, role_code(rule.shows))),
            (Occur::Must, u64_term(f.listed, 1)),
            (Occur::Must, u64_term(f.approved, 1)),
            (Occur::Must, u64_term(f.online, 1)),
        ];
        if let Some(c) = &filters.country {
            must.push((Occur::Must, text_term(f.country, c)));
        }
        if let Some(l) = &filters.language {
            must.push((Occur::Must, text_term(f.language, l)));
        }
        if let Some(g) = &filters.gender {
            must.push((Occur::Must, text_term(f.gender, g)));
        }
        if let Some(t) = &filters.tag {
            must.push((Occur::Must, text_term(f.tag, t)));
        }
        if !rule.only_tags.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = rule
                .only_tags
                .iter()
                .map(|t| (Occur::Should, text_term(f.tag, t)))
                .collect();
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        for t in &rule.hidden_tags {
            must.push((Occur::MustNot, text_term(f.tag, t)));
        }
        if filters.min_age.is_some() || filters.max_age.is_some() {
            let lo = Term::from_field_u64(f.age, filters.min_age.unwrap_or(0));
            let hi = Term::from_field_u64(f.age, filters.max_age.unwrap_or(u64::MAX));
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    std::ops::Bound::Included(lo),
                    std::ops::Bound::Included(hi),
                )),
            ));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(RANKED_MAX)
            .order_by_fast_field::<i64>(rank_field(rule.sort), Order::Desc);
        let hits = searcher.search(&query, &top).map_err(failed)?;
        // Ids and busy flags come from columns, not the document store: no block to decompress
        // per hit.
        let mut columns = Vec::new();
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let ids = fast.str("id").map_err(failed)?;
            let busy = fast.u64("busy").map_err(failed)?;
            columns.push((ids, busy));
        }
        let mut out = Vec::with_capacity(hits.len());
        let mut id = String::new();
        for (_, addr) in hits {
            let (ids, busy) = &columns[addr.segment_ord as usize];
            let ord = ids
                .as_ref()
                .and_then(|c| c.term_ords(addr.doc_id).next())
                .ok_or_else(|| failed("a document without an id"))?;
            ids.as_ref()
                .map(|c| c.ord_to_str(ord, &mut id))
                .transpose()
                .map_err(failed)?;
            out.push((id.clone(), busy.first(addr.doc_id) == Some(1)));
        }
        Ok(out)
    }
}
