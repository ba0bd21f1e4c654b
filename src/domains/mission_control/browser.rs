//! Unrestricted, read-only querying for admins: every table of the registry with its row
//! count, any table's records decoded as JSON (paged, filtered on fields), and a user search by
//! id, email, phone or display name. Each read is bounded in rows looked at
//! (`admin.rows_scanned_max`) and time (`admin.read_ms_max`) and stops with a cursor to go on;
//! credentials are never shown (`core::browse::REDACTED_FIELDS`); and every read is audited
//! with the keys of the records it returned: who looked at which private record.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::browse::{at_path, reads_as, redact};
use crate::core::error::{AppError, AppResult};
use crate::core::store::table_specs;
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::user::model::IdentityKind;
use crate::domains::{self, profile, user};

/// Records one page may hold.
pub const PAGE_MAX: usize = 200;
/// Accounts one search returns.
pub const SEARCH_RESULTS_MAX: usize = 50;

/// A table and how many rows it holds.
pub struct TableSize {
    pub name: &'static str,
    pub rows: u64,
}

pub async fn list_tables(ctx: &Ctx) -> AppResult<Vec<TableSize>> {
    ctx.store
        .read(|rtx| {
            table_specs(domains::TABLES)
                .map(|spec| {
                    Ok(TableSize {
                        name: spec.name,
                        rows: (spec.len)(rtx)?,
                    })
                })
                .collect()
        })
        .await
}

/// One `where` condition: the record's field at `path` (dotted; `$key`, `$key.0` for the key)
/// reads as `value`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub path: String,
    pub value: String,
}

impl Condition {
    /// `field:value` (the first `:` separates them; values may hold more).
    pub fn parse(raw: &str) -> AppResult<Condition> {
        let (path, value) = raw
            .split_once(':')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| AppError::validation(format!("where `{raw}` is not field:value")))?;
        if path.split('.').any(crate::core::browse::is_redacted) {
            // Matching on a hidden field would let a reader confirm guesses at it.
            return Err(AppError::validation(format!(
                "where cannot name the redacted field in `{path}`"
            )));
        }
        Ok(Condition {
            path: path.to_owned(),
            value: value.to_owned(),
        })
    }

    fn holds(&self, key: &Value, value: &Value) -> bool {
        let found = match self.path.strip_prefix("$key") {
            Some("") => Some(key),
            Some(rest) => rest.strip_prefix('.').and_then(|p| at_path(key, p)),
            None => at_path(value, &self.path),
        };
        found.is_some_and(|v| reads_as(v, &self.value))
    }
}

pub struct Row {
    pub key: Value,
    pub value: Value,
}

pub struct TablePage {
    pub rows: Vec<Row>,
    /// Where the next page starts (hex of the last key looked at); none at the table's end.
    pub next_from: Option<String>,
    pub scanned: u64,
    /// The read stopped at its row or time bound before the page was full.
    pub cut_short: bool,
}

/// Reads `name` after the `from` cursor: at most `limit` records matching every condition.
pub async fn read_table(
    ctx: &Ctx,
    actor: &str,
    name: &str,
    from: Option<String>,
    limit: usize,
    conditions: Vec<Condition>,
) -> AppResult<TablePage> {
    let spec = table_specs(domains::TABLES)
        .find(|s| s.name == name)
        .ok_or_else(|| AppError::not_found(format!("no table `{name}`")))?;
    let from = from
        .map(|f| {
            crate::core::ids::unhex(&f)
                .ok_or_else(|| AppError::validation("from is not a cursor we issued"))
        })
        .transpose()?;
    let scan_max = ctx.config.admin.rows_scanned_max;
    let time_max = Duration::from_millis(ctx.config.admin.read_ms_max);
    let browse = spec.browse;
    let page = ctx
        .store
        .read(move |rtx| {
            let started = Instant::now();
            let mut page = TablePage {
                rows: Vec::new(),
                next_from: None,
                scanned: 0,
                cut_short: false,
            };
            let mut last: Option<Vec<u8>> = None;
            let mut more = false;
            browse(rtx, from.as_deref(), &mut |raw, key, mut value| {
                if page.rows.len() >= limit
                    || page.scanned >= scan_max
                    || (page.scanned.is_multiple_of(256) && started.elapsed() >= time_max)
                {
                    more = true;
                    page.cut_short = page.rows.len() < limit;
                    return false;
                }
                page.scanned += 1;
                last = Some(raw.to_vec());
                if conditions.iter().all(|c| c.holds(&key, &value)) {
                    redact(&mut value);
                    page.rows.push(Row { key, value });
                }
                true
            })?;
            if more {
                page.next_from = last.map(|k| crate::core::ids::hex(&k));
            }
            Ok(page)
        })
        .await?;
    let (actor, table) = (actor.to_owned(), name.to_owned());
    let keys: Vec<Value> = page.rows.iter().map(|r| r.key.clone()).collect();
    ctx.store
        .write(move |tx| {
            audit_tx(
                tx,
                &actor,
                "table.read",
                &table,
                json!({"keys": keys, "scanned": page.scanned}),
            )
        })
        .await?;
    Ok(page)
}

/// An account a search found, and how.
pub struct Found {
    pub user: user::model::UserRecord,
    pub display_name: Option<String>,
    /// `id`, `email`, `phone` or `displayName`.
    pub matched: &'static str,
}

/// Accounts by id, email, phone number or a part of the display name; audited.
pub async fn search_users(ctx: &Ctx, actor: &str, q: &str) -> AppResult<Vec<Found>> {
    let q = q.trim().to_owned();
    if q.is_empty() || q.chars().count() > 320 {
        return Err(AppError::validation("q must be 1–320 characters"));
    }
    let scan_max = ctx.config.admin.rows_scanned_max as usize;
    let query = q.clone();
    let found = ctx
        .store
        .read(move |rtx| {
            let by = |id: Option<String>, matched| -> AppResult<Vec<(String, &'static str)>> {
                Ok(id.map(|id| (id, matched)).into_iter().collect())
            };
            let hits: Vec<(String, &'static str)> = if crate::core::ids::is_valid_id(&query) {
                by(Some(query.clone()), "id")?
            } else if query.contains('@') {
                let email = user::model::Email::parse(&query)?;
                by(
                    user::owner_of_identity(rtx, IdentityKind::Email, email.as_str())?,
                    "email",
                )?
            } else if query.starts_with('+') || query.chars().all(|c| c.is_ascii_digit()) {
                let phone = user::phone::parse_phone(&query)?;
                by(
                    user::owner_of_identity(rtx, IdentityKind::Phone, &phone)?,
                    "phone",
                )?
            } else {
                profile::search_names(rtx, &query, SEARCH_RESULTS_MAX, scan_max)?
                    .0
                    .into_iter()
                    .map(|(id, _)| (id, "displayName"))
                    .collect()
            };
            let mut out = Vec::new();
            for (id, matched) in hits {
                if let Some(u) = user::find_user(rtx, &id)? {
                    out.push(Found {
                        display_name: profile::profile_of(rtx, &id)?.display_name,
                        user: u,
                        matched,
                    });
                }
            }
            Ok(out)
        })
        .await?;
    let (actor, ids): (String, Vec<String>) = (
        actor.to_owned(),
        found.iter().map(|f| f.user.id.clone()).collect(),
    );
    ctx.store
        .write(move |tx| audit_tx(tx, &actor, "user.search", &q, json!({"found": ids})))
        .await?;
    Ok(found)
}
