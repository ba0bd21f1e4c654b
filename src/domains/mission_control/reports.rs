//! Reports: a user reports a profile, a photo, a clip or a message with a reason; moderators
//! resolve them (dismiss, remove the item, warn, ban), audited.
//!
//! A report is a claim anyone can make (a device sign-in is free), so a report alone does
//! nothing to the reported person: it only fills the moderators' queue. What a reporter can
//! report is what they can see — a photo or clip visible to them, a message sent to them, a
//! profile of someone else — so a report never reveals a private item to a moderator that the
//! reporter had no business seeing either. One account files at most
//! `moderation.reports_per_day_max` reports in 24 hours, and one open report per item (a repeat
//! returns the open one). A resolution settles every open report on the same item at once.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::{Access, Principal, Role};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Reads, Tx, dec, get, put};
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::blocklist::BlockReason;
use crate::domains::media::{self, model::MediaKind};
use crate::domains::{chat, user};

use super::events::ReportEvent;
use super::tables::{REPORTS, REPORTS_BY_REPORTER, REPORTS_BY_STATE, REPORTS_BY_TARGET};

/// Open reports one resolution settles at most (one write); any beyond stay open for the
/// next resolution of the same item.
pub const SETTLED_MAX: usize = 1_000;
/// Report ids written into a resolution's audit entry (the count is always there).
const AUDITED_IDS_MAX: usize = 100;

/// Longest comment on a report, or note on a resolution, in characters.
pub const COMMENT_CHARS_MAX: usize = 1_000;
type Comment = crate::core::text::Text<1, COMMENT_CHARS_MAX>;

/// What a report is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum TargetKind {
    /// `targetId` is a user id.
    Profile,
    /// `targetId` is a photo's media id.
    Photo,
    /// `targetId` is a clip's media id.
    Clip,
    /// `targetId` is `<chatId>:<seq>`.
    Message,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Profile => "profile",
            TargetKind::Photo => "photo",
            TargetKind::Clip => "clip",
            TargetKind::Message => "message",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ReportState {
    Open,
    /// A moderator found nothing wrong.
    Dismissed,
    /// A moderator acted: removed the item, warned or banned its owner.
    Actioned,
}

impl ReportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Open => "open",
            ReportState::Dismissed => "dismissed",
            ReportState::Actioned => "actioned",
        }
    }
}

/// What a moderator does about a report.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ReportAction {
    Dismiss,
    /// Reject the photo or clip, or blank the message (not for profiles).
    RemoveItem,
    /// Tell the owner (a `moderation_warning` notification with the note).
    Warn,
    /// Ban the owner (the note is the ban's reason).
    Ban,
}

impl ReportAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportAction::Dismiss => "dismiss",
            ReportAction::RemoveItem => "remove_item",
            ReportAction::Warn => "warn",
            ReportAction::Ban => "ban",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolution {
    pub action: ReportAction,
    pub by: String,
    pub at_ms: i64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub reporter_id: String,
    pub target_kind: TargetKind,
    pub target_id: String,
    /// Whose the item is: the profile's user, the media's owner, the message's sender.
    pub owner_id: String,
    pub reason: BlockReason,
    pub comment: Option<String>,
    pub state: ReportState,
    pub created_at_ms: i64,
    pub resolution: Option<Resolution>,
}

impl Report {
    fn target_key(&self) -> String {
        target_key(self.target_kind, &self.target_id)
    }
}

/// Every row of one reporter in `report_by_reporter`.
fn of_reporter(reporter: &str) -> std::ops::RangeInclusive<(&str, i64, &str)> {
    (reporter, i64::MIN, "")..=(reporter, i64::MAX, "~")
}

fn target_key(kind: TargetKind, id: &str) -> String {
    format!("{}:{id}", kind.as_str())
}

/// What a user asks to report.
pub struct NewReport {
    pub target_kind: TargetKind,
    pub target_id: String,
    pub reason: BlockReason,
    pub comment: Option<String>,
}

/// Files a report (or returns the reporter's open report on the same item).
pub async fn file(ctx: &Ctx, who: &Principal, mut new: NewReport) -> AppResult<Report> {
    if new.target_kind == TargetKind::Message {
        // One spelling per message (`chat:07` and `chat:7` are the same item).
        let (chat_id, seq) = parse_message(&new.target_id)?;
        new.target_id = format!("{chat_id}:{seq}");
    }
    let comment = new
        .comment
        .as_deref()
        .map(|c| Comment::parse("comment", c))
        .transpose()?
        .map(Comment::into_string);
    let per_day = ctx.config.moderation.reports_per_day_max as usize;
    let who = who.clone();
    let id = new_id();
    ctx.store
        .write(move |tx| {
            let owner_id = owner_of(tx, &who, new.target_kind, &new.target_id)?;
            let key = target_key(new.target_kind, &new.target_id);
            let reports = tx.read(REPORTS)?;
            if let Some(open) = tx
                .read(REPORTS_BY_REPORTER)?
                .range(of_reporter(&who.user_id))?
                .rev()
                .filter_map(Result::ok)
                .filter_map(|(k, _)| get::<&str, Report>(&reports, k.value().2).ok().flatten())
                .find(|r| r.state == ReportState::Open && r.target_key() == key)
            {
                return Ok(open);
            }
            let now = tx.now_ms();
            let today = tx
                .read(REPORTS_BY_REPORTER)?
                .range(
                    (who.user_id.as_str(), now - 86_400_000, "")
                        ..=(who.user_id.as_str(), i64::MAX, "~"),
                )?
                .count();
            if today >= per_day {
                return Err(AppError::new(
                    Code::RateLimited,
                    format!("at most {per_day} reports in 24 hours"),
                ));
            }
            drop(reports);
            let report = Report {
                id: id.clone(),
                reporter_id: who.user_id.to_string(),
                target_kind: new.target_kind,
                target_id: new.target_id.clone(),
                owner_id,
                reason: new.reason,
                comment: comment.clone(),
                state: ReportState::Open,
                created_at_ms: now,
                resolution: None,
            };
            put(&mut tx.table(REPORTS)?, report.id.as_str(), &report)?;
            tx.table(REPORTS_BY_STATE)?
                .insert(("open", report.id.as_str()), ())?;
            tx.table(REPORTS_BY_TARGET)?
                .insert((key.as_str(), report.id.as_str()), ())?;
            tx.table(REPORTS_BY_REPORTER)?
                .insert((report.reporter_id.as_str(), now, report.id.as_str()), ())?;
            tx.emit(NewEvent::about(
                &report.reporter_id,
                ReportEvent::Filed {
                    report_id: report.id.clone(),
                    target_kind: report.target_kind,
                    target_id: report.target_id.clone(),
                    owner_id: report.owner_id.clone().into(),
                    reason: report.reason,
                },
            ))?;
            Ok(report)
        })
        .await
}

/// Whose the reported item is, when the reporter may report it: `not_found` for anything they
/// cannot see (the same answer as for what does not exist), `validation_failed` for reporting
/// oneself.
fn owner_of(tx: &Tx, who: &Principal, kind: TargetKind, target: &str) -> AppResult<String> {
    let owner = match kind {
        TargetKind::Profile => user::find_user_tx(tx, target)?
            .filter(|u| u.is_reachable(tx.now_ms()))
            .map(|u| u.id),
        TargetKind::Photo | TargetKind::Clip => {
            let want = if kind == TargetKind::Photo {
                MediaKind::Photo
            } else {
                MediaKind::Video
            };
            media::find(tx, target)?
                .filter(|m| m.kind == want && media::can_see(who, m))
                .map(|m| m.owner_id)
        }
        TargetKind::Message => {
            let (chat_id, seq) = parse_message(target)?;
            chat::reportable_message(tx, &who.user_id, chat_id, seq)?
        }
    };
    let owner = owner.ok_or_else(|| AppError::not_found(format!("no such {}", kind.as_str())))?;
    if owner == *who.user_id {
        return Err(AppError::validation("you cannot report yourself"));
    }
    Ok(owner)
}

fn parse_message(target: &str) -> AppResult<(&str, u64)> {
    target
        .rsplit_once(':')
        .and_then(|(chat, seq)| Some((chat, seq.parse().ok()?)))
        .ok_or_else(|| AppError::validation("a message's targetId is `<chatId>:<seq>`"))
}

/// Reports in one state, oldest first, after the id cursor.
pub async fn list(
    ctx: &Ctx,
    state: ReportState,
    after: Option<String>,
    limit: usize,
) -> AppResult<Vec<Report>> {
    ctx.store
        .read(move |rtx| {
            super::in_state(
                rtx,
                REPORTS_BY_STATE,
                REPORTS,
                state.as_str(),
                after.as_deref(),
                limit,
            )
        })
        .await
}

/// Every report on the same item as `report_id`, oldest first (at most `limit`).
pub async fn on_same_target(ctx: &Ctx, report_id: &str, limit: usize) -> AppResult<Vec<Report>> {
    let id = report_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let reports = rtx.read_table(REPORTS)?;
            let r: Report =
                get(&reports, id.as_str())?.ok_or_else(|| AppError::not_found("no such report"))?;
            let key = r.target_key();
            let mut out = Vec::new();
            for row in rtx
                .read_table(REPORTS_BY_TARGET)?
                .range((key.as_str(), "")..(key.as_str(), "~"))?
                .take(limit)
            {
                let (k, _) = row?;
                if let Some(v) = reports.get(k.value().1)? {
                    out.push(dec::<Report>(v.value())?);
                }
            }
            Ok(out)
        })
        .await
}

/// A moderator resolves a report and, with it, every open report on the same item. Returns
/// the reports it settled. `conflict` when the report was resolved already.
pub async fn resolve(
    ctx: &Ctx,
    moderator: &str,
    report_id: &str,
    action: ReportAction,
    note: Option<String>,
) -> AppResult<Vec<Report>> {
    let note = note
        .as_deref()
        .map(|n| Comment::parse("note", n))
        .transpose()?
        .map(Comment::into_string);
    if matches!(action, ReportAction::Warn | ReportAction::Ban) && note.is_none() {
        return Err(AppError::validation(
            "a warning or a ban needs a note: it is what the person is told",
        ));
    }
    if action == ReportAction::Ban
        && let Some(n) = &note
    {
        // The note becomes the ban's reason, which has its own bound.
        super::Reason::parse("note", n)?;
    }
    let (moderator, report_id) = (moderator.to_owned(), report_id.to_owned());
    ctx.store
        .write(move |tx| {
            let first: Report = get(&tx.read(REPORTS)?, report_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such report"))?;
            if first.state != ReportState::Open {
                return Err(AppError::conflict(format!(
                    "the report was {} already",
                    first.state.as_str()
                )));
            }
            if first.owner_id == moderator {
                return Err(AppError::conflict(
                    "reports about your own account or content are for another moderator",
                ));
            }
            // A moderator acts on users and streamers; staff are answerable to admins only.
            let owner_role = user::find_user_tx(tx, &first.owner_id)?.map(|u| u.role);
            let actor_role = user::find_user_tx(tx, &moderator)?.map(|u| u.role);
            if matches!(action, ReportAction::Warn | ReportAction::Ban)
                && owner_role.is_some_and(|r| Access::Staff.allows(r))
                && actor_role != Some(Role::Admin)
            {
                return Err(AppError::forbidden(
                    "only an admin warns or bans a moderator or an admin",
                ));
            }
            if action == ReportAction::RemoveItem && first.target_kind == TargetKind::Profile {
                return Err(AppError::validation(
                    "a profile cannot be removed: warn or ban its owner",
                ));
            }
            let key = first.target_key();
            let open: Vec<Report> = {
                let reports = tx.read(REPORTS)?;
                let mut open = Vec::new();
                for row in tx
                    .read(REPORTS_BY_TARGET)?
                    .range((key.as_str(), "")..(key.as_str(), "~"))?
                {
                    let (k, _) = row?;
                    if let Some(r) = get::<&str, Report>(&reports, k.value().1)?
                        && r.state == ReportState::Open
                    {
                        open.push(r);
                    }
                    if open.len() >= SETTLED_MAX {
                        break;
                    }
                }
                open
            };
            let reason = note.clone().unwrap_or_else(|| "reported".to_owned());
            match action {
                ReportAction::Dismiss => {}
                ReportAction::RemoveItem => match first.target_kind {
                    // Deleted since it was reported: nothing is left to remove.
                    TargetKind::Photo | TargetKind::Clip
                        if media::find(tx, &first.target_id)?.is_none() => {}
                    TargetKind::Photo | TargetKind::Clip => {
                        media::moderation::moderate_tx(
                            tx,
                            &moderator,
                            &first.target_id,
                            false,
                            Some(reason.clone()),
                        )?;
                    }
                    TargetKind::Message => {
                        let (chat_id, seq) = parse_message(&first.target_id)?;
                        chat::remove_message_tx(tx, chat_id, seq)?;
                    }
                    TargetKind::Profile => unreachable!("refused above"),
                },
                ReportAction::Warn => {
                    tx.emit(
                        NewEvent::about(
                            &first.owner_id,
                            ReportEvent::Warned {
                                user_id: first.owner_id.clone().into(),
                                target_kind: first.target_kind,
                                target_id: first.target_id.clone(),
                                note: reason.clone(),
                            },
                        )
                        .to(Audience::Users(vec![first.owner_id.clone().into()])),
                    )?;
                }
                ReportAction::Ban => {
                    user::ban_tx(tx, &first.owner_id, &reason, &moderator)?;
                }
            }
            let state = if action == ReportAction::Dismiss {
                ReportState::Dismissed
            } else {
                ReportState::Actioned
            };
            let now = tx.now_ms();
            let mut settled = Vec::with_capacity(open.len());
            for mut r in open {
                r.state = state;
                r.resolution = Some(Resolution {
                    action,
                    by: moderator.clone(),
                    at_ms: now,
                    note: note.clone(),
                });
                put(&mut tx.table(REPORTS)?, r.id.as_str(), &r)?;
                let mut by_state = tx.table(REPORTS_BY_STATE)?;
                by_state.remove(("open", r.id.as_str()))?;
                by_state.insert((state.as_str(), r.id.as_str()), ())?;
                settled.push(r);
            }
            audit_tx(
                tx,
                &moderator,
                &format!("report.{}", action.as_str()),
                &first.id,
                json!({
                    "targetKind": first.target_kind.as_str(),
                    "targetId": first.target_id,
                    "ownerId": first.owner_id,
                    "settled": settled.len(),
                    "reports": settled.iter().take(AUDITED_IDS_MAX).map(|r| r.id.as_str()).collect::<Vec<_>>(),
                    "note": note,
                }),
            )?;
            Ok(settled)
        })
        .await
}

/// The reports `user_id` filed, at most `limit`: oldest first (their data export) or newest
/// first (their list).
pub async fn filed_by(
    ctx: &Ctx,
    user_id: &str,
    limit: usize,
    newest_first: bool,
) -> AppResult<Vec<Report>> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let reports = rtx.read_table(REPORTS)?;
            let mut out = Vec::new();
            let idx = rtx.read_table(REPORTS_BY_REPORTER)?;
            let rows = idx.range(of_reporter(&uid))?;
            let rows: Box<dyn Iterator<Item = _>> = if newest_first {
                Box::new(rows.rev())
            } else {
                Box::new(rows)
            };
            for row in rows.take(limit) {
                let (k, _) = row?;
                if let Some(r) = get::<&str, Report>(&reports, k.value().2)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
}

/// Erasure: the comments of the person's reports go (they are the person's words); the reports
/// stay, naming them by id as the audit log does, so a moderator's decision keeps its grounds.
pub fn erase_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    let ids: Vec<String> = tx
        .read(REPORTS_BY_REPORTER)?
        .range(of_reporter(user_id))?
        .map(|row| row.map(|(k, _)| k.value().2.to_owned()))
        .collect::<Result<_, _>>()?;
    for id in ids {
        let Some(mut r) = get::<&str, Report>(&tx.read(REPORTS)?, id.as_str())? else {
            continue;
        };
        if r.comment.take().is_some() {
            put(&mut tx.table(REPORTS)?, id.as_str(), &r)?;
        }
    }
    Ok(())
}
