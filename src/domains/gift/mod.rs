//! The gift domain: a catalog of gifts, and sending one — a single ledger operation that moves
//! the price from the sender's wallet to the streamer's earnings and the platform's revenue by
//! the gift's share.

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::NewEvent;
use crate::core::idempotency::Idempotency;
use crate::core::ids::new_id;
use crate::core::platform::Platform;
use crate::core::store::{dec, get, put};
use crate::core::text::Text;
use crate::domains::balance::{self, model::*};
use crate::domains::blocklist;
use crate::domains::user;
use tables::*;

pub const NAME_CHARS_MAX: usize = 60;
/// Gifts in the catalog at most.
pub const GIFTS_MAX: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gift {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub icon_media_id: Option<String>,
    /// Coins the sender pays.
    pub price: i64,
    /// Percent of the price credited to the streamer; the rest is platform revenue.
    pub streamer_share_percent: u8,
    pub active: bool,
    pub sort: i32,
    /// Platforms the gift is offered on.
    pub platforms: Vec<Platform>,
    pub updated_at_ms: i64,
}

impl Gift {
    /// The streamer's part, rounded down: the platform keeps the fraction of a coin.
    pub fn streamer_coins(&self) -> i64 {
        self.price * i64::from(self.streamer_share_percent) / 100
    }
}

/// A gift's editable fields, validated.
#[derive(Debug, Clone)]
pub struct GiftInput {
    pub name: String,
    pub icon_media_id: Option<String>,
    pub price: i64,
    pub streamer_share_percent: u8,
    pub active: bool,
    pub sort: i32,
    pub platforms: Vec<Platform>,
}

impl GiftInput {
    pub fn validate(self) -> AppResult<GiftInput> {
        let name = Text::<1, NAME_CHARS_MAX>::parse("name", &self.name)?.into_string();
        if self.price <= 0 || self.price > balance::AMOUNT_MAX {
            return Err(AppError::validation(
                "price must be a positive number of coins",
            ));
        }
        if self.streamer_share_percent > 100 {
            return Err(AppError::validation("streamerSharePercent must be 0–100"));
        }
        if let Some(m) = &self.icon_media_id
            && !crate::core::ids::is_valid_id(m)
        {
            return Err(AppError::validation("iconMediaId is not a media id"));
        }
        let mut platforms = self.platforms;
        platforms.sort_by_key(|p| p.as_str());
        platforms.dedup();
        Ok(GiftInput {
            name,
            platforms,
            ..self
        })
    }
}

pub async fn catalog(
    ctx: &Ctx,
    platform: Option<Platform>,
    include_inactive: bool,
) -> AppResult<Vec<Gift>> {
    ctx.store
        .read(move |rtx| {
            let mut out: Vec<Gift> = Vec::new();
            for row in rtx.open_table(GIFTS)?.iter()? {
                let g: Gift = dec(row?.1.value())?;
                if (include_inactive || g.active)
                    && platform.is_none_or(|p| g.platforms.contains(&p))
                {
                    out.push(g);
                }
            }
            out.sort_by(|a, b| (a.sort, &a.name).cmp(&(b.sort, &b.name)));
            Ok(out)
        })
        .await
}

/// Creates (`id` = None) or replaces a gift. Audited.
pub async fn save(ctx: &Ctx, actor: &str, id: Option<String>, input: GiftInput) -> AppResult<Gift> {
    let input = input.validate()?;
    let actor = actor.to_owned();
    let new_id_value = new_id();
    ctx.store
        .write(move |tx| {
            let id = match &id {
                Some(id) => {
                    get::<&str, Gift>(&tx.read(GIFTS)?, id.as_str())?
                        .ok_or_else(|| AppError::not_found(format!("no gift {id}")))?;
                    id.clone()
                }
                None => {
                    if redb::ReadableTableMetadata::len(&tx.read(GIFTS)?)? as usize >= GIFTS_MAX {
                        return Err(AppError::validation(format!("the catalog holds at most {GIFTS_MAX} gifts")));
                    }
                    new_id_value.clone()
                }
            };
            let gift = Gift {
                id: id.clone(),
                name: input.name.clone(),
                icon_media_id: input.icon_media_id.clone(),
                price: input.price,
                streamer_share_percent: input.streamer_share_percent,
                active: input.active,
                sort: input.sort,
                platforms: input.platforms.clone(),
                updated_at_ms: tx.now_ms(),
            };
            put(&mut tx.table(GIFTS)?, id.as_str(), &gift)?;
            crate::domains::audit::record_tx(
                tx,
                &actor,
                "gift.save",
                &id,
                json!({"name": gift.name, "price": gift.price, "streamerSharePercent": gift.streamer_share_percent, "active": gift.active}),
            )?;
            Ok(gift)
        })
        .await
}

pub async fn delete(ctx: &Ctx, actor: &str, id: String) -> AppResult<()> {
    let actor = actor.to_owned();
    ctx.store
        .write(move |tx| {
            get::<&str, Gift>(&tx.read(GIFTS)?, id.as_str())?
                .ok_or_else(|| AppError::not_found(format!("no gift {id}")))?;
            tx.table(GIFTS)?.remove(id.as_str())?;
            crate::domains::audit::record_tx(tx, &actor, "gift.delete", &id, json!({}))
        })
        .await
}

/// The result of a sent gift (also what an idempotent retry returns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub gift_id: String,
    pub to_user_id: String,
    pub price: i64,
    pub streamer_coins: i64,
    /// The sender's wallet after the gift.
    pub balance: i64,
    pub transfer_ids: Vec<String>,
}

pub async fn send(
    ctx: &Ctx,
    from: &str,
    gift_id: &str,
    to: &str,
    call_id: Option<String>,
    idem: Idempotency,
) -> AppResult<Sent> {
    if from == to {
        return Err(AppError::validation("you cannot send a gift to yourself"));
    }
    // It goes into the ledger's reference (with an agency's commission, inside a longer one).
    if call_id
        .as_deref()
        .is_some_and(|c| !crate::core::ids::is_valid_id(c))
    {
        return Err(AppError::validation("callId is not a call id"));
    }
    let (from, gift_id, to) = (from.to_owned(), gift_id.to_owned(), to.to_owned());
    ctx.store
        .write(move |tx| {
            idem.run(tx, || {
                let gift: Gift = get(&tx.read(GIFTS)?, gift_id.as_str())?
                    .filter(|g: &Gift| g.active)
                    .ok_or_else(|| AppError::not_found(format!("no active gift {gift_id}")))?;
                let receiver = user::find_user_tx(tx, &to)?
                    .filter(|u| u.is_reachable(tx.now_ms()))
                    .ok_or_else(|| AppError::not_found("no such user"))?;
                blocklist::refuse_if_blocked_tx(tx, &from, &to)?;
                if receiver.role != Role::Streamer {
                    return Err(AppError::new(
                        Code::Forbidden,
                        "only streamers receive gifts",
                    ));
                }
                let streamer = gift.streamer_coins();
                let platform = gift.price - streamer;
                let reference = format!("gift:{}:{}", gift.id, call_id.as_deref().unwrap_or("-"));
                let wallet = Account::wallet(&from);
                let mut legs = Vec::with_capacity(2);
                if streamer > 0 {
                    // An agency's streamer shares it with the agency, in this same operation.
                    legs.extend(crate::domains::agency::split_earning(
                        tx,
                        Leg {
                            debit: wallet.clone(),
                            credit: Account::earnings(&to),
                            amount: streamer,
                            kind: TransferKind::Gift,
                            reference: reference.clone(),
                        },
                    )?);
                }
                if platform > 0 {
                    legs.push(Leg {
                        debit: wallet.clone(),
                        credit: Account::system(SystemAccount::PlatformRevenue),
                        amount: platform,
                        kind: TransferKind::GiftFee,
                        reference: reference.clone(),
                    });
                }
                let posted = balance::post(tx, &legs, Some(&idem.key))?;
                let balance = balance::balance_tx(tx, &wallet)?;
                tx.emit(NewEvent::about(
                    &to,
                    events::GiftEvent::Sent {
                        gift_id: gift.id.clone(),
                        name: gift.name.clone(),
                        icon_media_id: gift.icon_media_id.clone(),
                        price: gift.price,
                        streamer_coins: streamer,
                        from_user_id: from.clone().into(),
                        to_user_id: to.clone().into(),
                        call_id: call_id.clone().map(Into::into),
                    },
                ))?;
                Ok(Sent {
                    gift_id: gift.id,
                    to_user_id: to.clone(),
                    price: gift.price,
                    streamer_coins: streamer,
                    balance,
                    transfer_ids: posted.into_iter().map(|t| t.id).collect(),
                })
            })
        })
        .await
}
