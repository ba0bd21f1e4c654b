//! REST routes and wire shapes of the profile domain.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::{Access, Role};
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};
use crate::core::ids::is_valid_id;
use crate::domains::favorites::Counts;
use crate::domains::user::model::{PresenceRecord, UserRecord};

use super::model::*;
use super::{OwnProfile, ProfilePatch};

/// What anyone may see of a person. Nothing private belongs here: this shape is also the
/// payload of `profile_updated` events.
#[derive(Debug, Clone, PartialEq, Object, Serialize, Deserialize, schemars::JsonSchema)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct PublicProfile {
    pub user_id: String,
    pub display_name: Option<String>,
    /// Whole years, from the private birth date.
    pub age: Option<i32>,
    pub gender: Option<Gender>,
    pub country: Option<String>,
    pub languages: Vec<String>,
    pub bio: Option<String>,
    /// The avatar, once approved by moderation (until then others see none).
    pub avatar_media_id: Option<String>,
    /// The profile's approved photos, in the owner's order. (In events: left out when none,
    /// as in those stored before photos existed.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photo_media_ids: Vec<String>,
    pub role: Role,
    pub online: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub online_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_seen: Option<OffsetDateTime>,
    /// How many people have them among their favorites.
    pub followers_count: u64,
    /// How many favorites they have.
    pub following_count: u64,
}

impl PublicProfile {
    /// `approved`: the media ids among the profile's that anyone may see.
    pub fn build(
        user: &UserRecord,
        p: &ProfileRecord,
        presence: &PresenceRecord,
        counts: Counts,
        today: Date,
        approved: &[String],
    ) -> Self {
        PublicProfile {
            user_id: user.id.clone(),
            display_name: p.display_name.clone(),
            age: p
                .birth_date
                .as_deref()
                .and_then(|d| parse_date(d).ok())
                .map(|b| age_on(b, today)),
            gender: p.gender,
            country: p.country.clone(),
            languages: p.languages.clone(),
            bio: p.bio.clone(),
            avatar_media_id: p.avatar_media_id.clone().filter(|id| approved.contains(id)),
            photo_media_ids: p
                .photo_media_ids
                .iter()
                .filter(|id| approved.contains(id))
                .cloned()
                .collect(),
            role: user.role,
            online: presence.online,
            online_since: presence.online_since_ms.map(to_datetime),
            last_seen: presence.last_seen_ms.map(to_datetime),
            followers_count: counts.followers,
            following_count: counts.following,
        }
    }
}

#[derive(Object, Clone)]
#[oai(rename_all = "camelCase")]
pub struct PayoutDetailsDto {
    pub method: PayoutMethod,
    pub account: String,
    pub holder_name: String,
}

/// What only the owner (and staff) may see.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PrivateProfile {
    /// The account's email: the verified one it signs in with, or else the one it added and
    /// has not verified yet (see `emailVerified`). Change it through `/v1/me/identities`.
    pub email: Option<String>,
    /// Whether `email` is verified; an unverified email cannot sign in or get emails.
    pub email_verified: bool,
    pub phone: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Set by moderators through KYC review.
    pub kyc_status: KycStatus,
    pub payout_details: Option<PayoutDetailsDto>,
    /// The profile is kept out of the gallery.
    pub hidden_from_gallery: bool,
    /// The avatar and photos as set, whatever their moderation (others see only the approved
    /// ones, in `public`).
    pub avatar_media_id: Option<String>,
    pub photo_media_ids: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MyProfile {
    pub public: PublicProfile,
    pub private: PrivateProfile,
}

/// Fields left out stay as they are; `null` clears a field.
#[derive(Object, Default)]
#[oai(rename_all = "camelCase")]
pub struct ProfilePatchBody {
    /// 1–40 characters.
    pub display_name: MaybeUndefined<String>,
    /// `YYYY-MM-DD`; the user must be 18 or older.
    pub birth_date: MaybeUndefined<String>,
    pub gender: MaybeUndefined<Gender>,
    /// ISO 3166-1 alpha-2.
    pub country: MaybeUndefined<String>,
    /// BCP 47 tags, at most 10; `null` or `[]` clears.
    pub languages: MaybeUndefined<Vec<String>>,
    /// At most 500 characters.
    pub bio: MaybeUndefined<String>,
    /// One of your public photos (`POST /v1/media?kind=photo`), not rejected; others see it
    /// once it is approved.
    pub avatar_media_id: MaybeUndefined<String>,
    /// Up to 9 of your public photos, in order; `null` or `[]` clears.
    pub photo_media_ids: MaybeUndefined<Vec<String>>,
    /// E.164.
    pub phone: MaybeUndefined<String>,
    pub payout_details: MaybeUndefined<PayoutDetailsDto>,
    /// Keep the profile out of the gallery (`true`) or show it again (`false`).
    pub hidden_from_gallery: Option<bool>,
}

/// `None`: absent; `Some(None)`: null; `Some(Some(v))`: a value, validated by `parse`.
fn field<T, U>(
    v: MaybeUndefined<T>,
    parse: impl FnOnce(T) -> AppResult<U>,
) -> AppResult<Option<Option<U>>> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(x) => Ok(Some(Some(parse(x)?))),
    }
}

impl ProfilePatchBody {
    fn validate(self, today: Date) -> AppResult<ProfilePatch> {
        Ok(ProfilePatch {
            display_name: field(self.display_name, |s| parse_display_name(&s))?,
            birth_date: field(self.birth_date, |s| parse_birth_date(&s, today))?,
            gender: field(self.gender, Ok)?,
            country: field(self.country, |s| parse_country(&s))?,
            languages: field(self.languages, |l| parse_languages(&l))?
                .map(Option::unwrap_or_default),
            bio: field(self.bio, |s| parse_bio(&s))?,
            avatar_media_id: field(self.avatar_media_id, |s| {
                if is_valid_id(&s) {
                    Ok(s)
                } else {
                    Err(AppError::validation("avatarMediaId is not a media id"))
                }
            })?,
            photo_media_ids: field(self.photo_media_ids, |ids| {
                if ids.len() > PROFILE_PHOTOS_MAX {
                    return Err(AppError::validation(format!(
                        "photoMediaIds holds at most {PROFILE_PHOTOS_MAX} photos"
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                for id in &ids {
                    if !is_valid_id(id) {
                        return Err(AppError::validation(format!("{id:?} is not a media id")));
                    }
                    if !seen.insert(id) {
                        return Err(AppError::validation(format!("{id} is listed twice")));
                    }
                }
                Ok(ids)
            })?
            .map(Option::unwrap_or_default),
            phone: field(self.phone, |s| parse_phone(&s))?,
            payout: field(self.payout_details, |d| {
                parse_payout(d.method, &d.account, &d.holder_name)
            })?,
            hidden_from_gallery: self.hidden_from_gallery,
        })
    }
}

fn my_profile(own: OwnProfile, today: Date) -> MyProfile {
    let p = &own.profile;
    MyProfile {
        public: PublicProfile::build(
            &own.user,
            p,
            &own.presence,
            own.counts,
            today,
            &own.approved_media,
        ),
        private: PrivateProfile {
            email: own
                .user
                .email
                .clone()
                .or_else(|| own.user.pending_email.as_ref().map(|p| p.address.clone())),
            email_verified: own.user.email.is_some(),
            phone: p.phone.clone(),
            birth_date: p.birth_date.clone(),
            kyc_status: p.kyc_status,
            payout_details: p.payout.as_ref().map(|d| PayoutDetailsDto {
                method: d.method,
                account: d.account.clone(),
                holder_name: d.holder_name.clone(),
            }),
            hidden_from_gallery: p.hidden_from_gallery,
            avatar_media_id: p.avatar_media_id.clone(),
            photo_media_ids: p.photo_media_ids.clone(),
        },
    }
}

pub struct ProfileApi;

#[OpenApi(tag = "ApiTags::Profile")]
impl ProfileApi {
    /// The caller's profile, both parts. Any role.
    #[oai(
        path = "/v1/me/profile",
        method = "get",
        operation_id = "me_profile_get"
    )]
    async fn get_me(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<MyProfile>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let own = super::own(&ctx, &who.user_id).await?;
        Ok(Json(my_profile(own, super::today(&ctx))))
    }

    /// Change the caller's profile. Any role.
    #[oai(
        path = "/v1/me/profile",
        method = "patch",
        operation_id = "me_profile_patch"
    )]
    async fn patch_me(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ProfilePatchBody>,
    ) -> AppResult<Json<MyProfile>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let today = super::today(&ctx);
        let patch = body.0.validate(today)?;
        let own = super::update(&ctx, &who.user_id, patch).await?;
        Ok(Json(my_profile(own, today)))
    }

    /// Someone's public profile. Any role.
    #[oai(
        path = "/v1/profiles/:user_id",
        method = "get",
        operation_id = "profile_get"
    )]
    async fn get_public(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<Json<PublicProfile>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let profile = super::public(&ctx, &user_id).await?;
        ctx.views.viewed(&who.user_id, &user_id);
        Ok(Json(profile))
    }
}
