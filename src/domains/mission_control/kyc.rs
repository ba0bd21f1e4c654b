//! KYC: a streamer submits identity documents (ID front, ID back, a selfie), uploaded as
//! `kyc_document` media that only they and moderators can see; the case is `pending` until a
//! moderator verifies or rejects it with a reason (audited, and the streamer is notified).
//! Only a verified streamer may request payouts (`payouts.require_kyc`) and, when
//! `gallery.streamers_need_kyc` is on, be shown in the gallery. The documents of a decided case
//! are deleted `payouts.kyc_document_retention_days` after the decision; the decision stays.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Reads, Tx, get, put};
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::media::{self, model::MediaKind, model::MediaRecord};

use super::events::KycEvent;
use super::tables::{KYC_BY_STATE, KYC_BY_STREAMER, KYC_CASES, KYC_RETENTION};

/// The actor named when documents are deleted after their retention.
pub const ACTOR: &str = "system:kyc_retention";
/// Cases whose documents one retention pass deletes (one commit).
pub const RETENTION_BATCH: usize = 100;

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
pub enum KycState {
    Pending,
    Verified,
    Rejected,
}

impl KycState {
    pub fn as_str(self) -> &'static str {
        match self {
            KycState::Pending => "pending",
            KycState::Verified => "verified",
            KycState::Rejected => "rejected",
        }
    }
}

/// The three documents of a case, as media ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Documents {
    pub id_front: String,
    pub id_back: String,
    pub selfie: String,
}

impl Documents {
    pub fn ids(&self) -> [&str; 3] {
        [&self.id_front, &self.id_back, &self.selfie]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KycCase {
    pub id: String,
    pub streamer_id: String,
    pub documents: Documents,
    pub state: KycState,
    pub submitted_at_ms: i64,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub reason: Option<String>,
    /// When the documents were deleted after the retention period.
    pub documents_deleted_at_ms: Option<i64>,
}

/// A streamer submits their documents. `conflict` while a case is pending or once verified;
/// a rejected streamer may submit again.
pub async fn submit(ctx: &Ctx, streamer_id: &str, documents: Documents) -> AppResult<KycCase> {
    let ids = documents.ids();
    if ids[0] == ids[1] || ids[0] == ids[2] || ids[1] == ids[2] {
        return Err(AppError::validation(
            "idFront, idBack and selfie must be three different documents",
        ));
    }
    let streamer_id = streamer_id.to_owned();
    let id = new_id();
    ctx.store
        .write(move |tx| {
            if let Some(current) = current_tx(tx, &streamer_id)?
                && current.state != KycState::Rejected
            {
                return Err(AppError::conflict(format!(
                    "your KYC case is {} already",
                    current.state.as_str()
                )));
            }
            for (field, doc) in ["idFront", "idBack", "selfie"]
                .into_iter()
                .zip(documents.ids())
            {
                let ok = media::find(tx, doc)?
                    .is_some_and(|m| m.owner_id == streamer_id && m.kind == MediaKind::KycDocument);
                if !ok {
                    return Err(AppError::validation(format!(
                        "{field} must be one of your kyc_document uploads"
                    )));
                }
            }
            let case = KycCase {
                id: id.clone(),
                streamer_id: streamer_id.clone(),
                documents: documents.clone(),
                state: KycState::Pending,
                submitted_at_ms: tx.now_ms(),
                decided_by: None,
                decided_at_ms: None,
                reason: None,
                documents_deleted_at_ms: None,
            };
            store_tx(tx, &case, None)?;
            Ok(case)
        })
        .await
}

fn store_tx(tx: &Tx, case: &KycCase, previous: Option<KycState>) -> AppResult<()> {
    put(&mut tx.table(KYC_CASES)?, case.id.as_str(), case)?;
    let mut by_state = tx.table(KYC_BY_STATE)?;
    if let Some(prev) = previous {
        by_state.remove((prev.as_str(), case.id.as_str()))?;
    }
    by_state.insert((case.state.as_str(), case.id.as_str()), ())?;
    drop(by_state);
    tx.table(KYC_BY_STREAMER)?
        .insert(case.streamer_id.as_str(), case.id.as_str())?;
    tx.emit(
        NewEvent::about(
            &case.streamer_id,
            KycEvent::Status {
                case_id: case.id.clone(),
                streamer_id: case.streamer_id.clone().into(),
                state: case.state,
                reason: case.reason.clone(),
            },
        )
        .to(Audience::Users(vec![case.streamer_id.clone().into()])),
    )?;
    Ok(())
}

fn current_tx(r: &impl Reads, streamer_id: &str) -> AppResult<Option<KycCase>> {
    let Some(id) = r
        .read_table(KYC_BY_STREAMER)?
        .get(streamer_id)?
        .map(|v| v.value().to_owned())
    else {
        return Ok(None);
    };
    get(&r.read_table(KYC_CASES)?, id.as_str())
}

/// The streamer's latest case, if any.
pub async fn current(ctx: &Ctx, streamer_id: &str) -> AppResult<Option<KycCase>> {
    let id = streamer_id.to_owned();
    ctx.store.read(move |rtx| current_tx(rtx, &id)).await
}

/// Whether the streamer's latest case is verified.
pub fn is_verified(r: &impl Reads, streamer_id: &str) -> AppResult<bool> {
    Ok(current_tx(r, streamer_id)?.is_some_and(|c| c.state == KycState::Verified))
}

/// Refuses a payout request of a streamer who is not verified, when that is required.
pub fn require_verified(required: bool, r: &impl Reads, streamer_id: &str) -> AppResult<()> {
    if required && !is_verified(r, streamer_id)? {
        return Err(AppError::new(
            Code::KycRequired,
            "payouts need a verified KYC case: submit your documents at /v1/me/kyc",
        ));
    }
    Ok(())
}

/// Cases in one state, oldest first, after the id cursor.
pub async fn list(
    ctx: &Ctx,
    state: KycState,
    after: Option<String>,
    limit: usize,
) -> AppResult<Vec<KycCase>> {
    ctx.store
        .read(move |rtx| {
            super::in_state(
                rtx,
                KYC_BY_STATE,
                KYC_CASES,
                state.as_str(),
                after.as_deref(),
                limit,
            )
        })
        .await
}

/// One case for a moderator, with its documents' media records (`None` once deleted): the look
/// is audited (`kyc.view`).
pub async fn open_case(
    ctx: &Ctx,
    moderator: &str,
    case_id: &str,
) -> AppResult<(KycCase, Vec<Option<MediaRecord>>)> {
    let (moderator, case_id) = (moderator.to_owned(), case_id.to_owned());
    ctx.store
        .write(move |tx| {
            let case: KycCase = get(&tx.read(KYC_CASES)?, case_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such KYC case"))?;
            audit_tx(
                tx,
                &moderator,
                "kyc.view",
                &case.id,
                json!({"streamerId": case.streamer_id}),
            )?;
            let docs = case
                .documents
                .ids()
                .into_iter()
                .map(|id| media::find(tx, id))
                .collect::<AppResult<_>>()?;
            Ok((case, docs))
        })
        .await
}

/// A moderator verifies a pending case, or rejects it with a reason; audited, the streamer is
/// told (`kyc_status`). `conflict` for a case decided already.
pub async fn decide(
    ctx: &Ctx,
    moderator: &str,
    case_id: &str,
    verify: bool,
    reason: Option<String>,
) -> AppResult<KycCase> {
    if !verify && reason.is_none() {
        return Err(AppError::validation("a rejection needs a reason"));
    }
    let (moderator, case_id) = (moderator.to_owned(), case_id.to_owned());
    let retention_ms = i64::from(ctx.config.payouts.kyc_document_retention_days) * 86_400_000;
    ctx.store
        .write(move |tx| {
            let mut case: KycCase = get(&tx.read(KYC_CASES)?, case_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such KYC case"))?;
            if case.state != KycState::Pending {
                return Err(AppError::conflict(format!(
                    "the case was {} already",
                    case.state.as_str()
                )));
            }
            if case.streamer_id == moderator {
                return Err(AppError::conflict(
                    "moderators cannot decide their own case",
                ));
            }
            let now = tx.now_ms();
            case.state = if verify {
                KycState::Verified
            } else {
                KycState::Rejected
            };
            case.decided_by = Some(moderator.clone());
            case.decided_at_ms = Some(now);
            case.reason = reason.clone();
            store_tx(tx, &case, Some(KycState::Pending))?;
            tx.table(KYC_RETENTION)?
                .insert((now + retention_ms, case.id.as_str()), ())?;
            audit_tx(
                tx,
                &moderator,
                if verify { "kyc.verify" } else { "kyc.reject" },
                &case.id,
                json!({"streamerId": case.streamer_id, "reason": reason}),
            )?;
            Ok(case)
        })
        .await
}

/// Deletes the documents of decided cases past their retention (at most a batch a call);
/// returns how many cases it cleared.
pub async fn delete_expired_documents(ctx: &Ctx) -> AppResult<usize> {
    ctx.store
        .write(move |tx| {
            let now = tx.now_ms();
            let due: Vec<(i64, String)> = tx
                .read(KYC_RETENTION)?
                .range((i64::MIN, "")..=(now, "~"))?
                .take(RETENTION_BATCH)
                .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                .collect::<Result<_, _>>()?;
            for (at, id) in &due {
                tx.table(KYC_RETENTION)?.remove((*at, id.as_str()))?;
                let Some(mut case) = get::<&str, KycCase>(&tx.read(KYC_CASES)?, id.as_str())?
                else {
                    continue;
                };
                // A streamer may submit the same documents again after a rejection: what their
                // latest case still uses stays until that case's own retention.
                let latest = current_tx(tx, &case.streamer_id)?.filter(|l| l.id != case.id);
                for doc in case.documents.ids() {
                    if latest
                        .as_ref()
                        .is_some_and(|l| l.documents.ids().contains(&doc))
                    {
                        continue;
                    }
                    media::remove_by_id_tx(tx, doc)?;
                }
                case.documents_deleted_at_ms = Some(now);
                put(&mut tx.table(KYC_CASES)?, id.as_str(), &case)?;
                audit_tx(
                    tx,
                    ACTOR,
                    "kyc.documents_deleted",
                    id,
                    json!({"streamerId": case.streamer_id}),
                )?;
            }
            Ok(due.len())
        })
        .await
}
