//! `GET /v1/gallery`: the caller's feed.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::body::JsonBody;
use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::{Access, Role};
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};

use super::index::Filters;
use super::rules::{BusyMode, Rule, Sort};
use super::{Card, PAGE_DEFAULT, PAGE_MAX};

/// One profile in a feed: the public card.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GalleryCard {
    pub user_id: String,
    pub display_name: Option<String>,
    pub age: Option<i32>,
    pub country: Option<String>,
    pub languages: Vec<String>,
    /// The avatar's media id (approved photos only).
    pub avatar_media_id: Option<String>,
    /// A signed URL of the avatar's thumbnail (see `GET /v1/media/{mediaId}/url` for others).
    pub avatar_url: Option<String>,
    pub online_since: Option<OffsetDateTime>,
    /// In a call now.
    pub busy: bool,
    /// Their cohort tags that are shown to clients.
    pub tags: Vec<String>,
    /// The caller keeps them among their favorites.
    pub following: bool,
}

impl GalleryCard {
    fn of(ctx: &Ctx, c: Card) -> Self {
        let b = &c.base;
        GalleryCard {
            avatar_url: c
                .avatar_media_id
                .as_deref()
                .map(|id| crate::domains::media::photo_url(ctx, id, "thumb")),
            user_id: c.user_id,
            display_name: b.display_name.clone(),
            age: b.age,
            country: b.country.clone(),
            languages: b.languages.clone(),
            avatar_media_id: c.avatar_media_id.clone(),
            online_since: b.online_since_ms.map(to_datetime),
            busy: c.busy,
            tags: b.visible_tags.clone(),
            following: c.following,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GalleryPage {
    pub items: Vec<GalleryCard>,
    /// The next page of the same list; absent at its end. A page may hold fewer than `limit`
    /// items while this is present.
    pub next_cursor: Option<String>,
}

/// What one viewer role's feed shows.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RuleView {
    /// Whose feed this rule is.
    pub viewer: Role,
    /// The role the feed shows.
    pub shows: Role,
    pub sort: Sort,
    /// People in a call: shown as busy, or left out.
    pub busy: BusyMode,
    /// Cohort tags ranked first, in this order: those with the first tag, then the second…,
    /// each group in `sort` order, then everyone else. At most 20.
    #[oai(default)]
    pub boost_tags: Vec<String>,
    /// When not empty, only profiles carrying one of these tags are shown. At most 20.
    #[oai(default)]
    pub only_tags: Vec<String>,
    /// Profiles carrying one of these tags are never shown. At most 20.
    #[oai(default)]
    pub hidden_tags: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RuleList {
    pub items: Vec<RuleView>,
}

pub struct GalleryApi;

#[OpenApi(tag = "ApiTags::Social")]
impl GalleryApi {
    /// The caller's feed: users see online streamers, online longest first; streamers see
    /// online users, those who can pay for a call first, then the most recently online. Never
    /// the caller, anyone blocked either way, or banned accounts. The first page pins the
    /// list; `cursor` pages through it unchanged (`410 cursor_expired` after
    /// `gallery.cursor_ttl_secs`). `limit` 1–50 (20); a page may hold fewer while
    /// `nextCursor` is present (a page looks at 1,000 profiles at most): keep paging. Filters: `country` (ISO 3166 alpha-2),
    /// `language` (primary subtag), `minAge`, `maxAge`, `gender`, `tag`. Any role.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/v1/gallery", method = "get", operation_id = "gallery_feed")]
    async fn feed(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
        country: Query<Option<String>>,
        language: Query<Option<String>>,
        #[oai(name = "minAge")] min_age: Query<Option<u64>>,
        #[oai(name = "maxAge")] max_age: Query<Option<u64>>,
        gender: Query<Option<String>>,
        tag: Query<Option<String>>,
    ) -> AppResult<Json<GalleryPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = limit.0.map_or(PAGE_DEFAULT, |l| l as usize);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(AppError::validation(format!("limit must be 1–{PAGE_MAX}")));
        }
        let filters = Filters {
            country: country.0.map(|c| c.to_ascii_uppercase()),
            language: language.0.map(|l| l.to_ascii_lowercase()),
            min_age: min_age.0,
            max_age: max_age.0,
            gender: gender.0,
            tag: tag.0,
        };
        let page = super::feed(&ctx, &who, filters, cursor.0.as_deref(), limit).await?;
        Ok(Json(GalleryPage {
            items: page
                .items
                .into_iter()
                .map(|c| GalleryCard::of(&ctx, c))
                .collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Every viewer role's feed rule (the seed's defaults until edited). Admin.
    #[oai(
        path = "/v1/admin/gallery/rules",
        method = "get",
        operation_id = "admin_gallery_rules"
    )]
    async fn rules(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<RuleList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::rules::all(&ctx)
            .await?
            .into_iter()
            .map(|(viewer, r)| RuleView {
                viewer,
                shows: r.shows,
                sort: r.sort,
                busy: r.busy,
                boost_tags: r.boost_tags,
                only_tags: r.only_tags,
                hidden_tags: r.hidden_tags,
            })
            .collect();
        Ok(Json(RuleList { items }))
    }

    /// Replace the rules of the viewer roles listed; feeds use them from their next first
    /// page. Admin; audited.
    #[oai(
        path = "/v1/admin/gallery/rules",
        method = "put",
        operation_id = "admin_gallery_rules_put"
    )]
    async fn put_rules(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<RuleList>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        if body.items.is_empty() || body.items.len() > 4 {
            return Err(AppError::validation("give 1–4 rules, one per viewer role"));
        }
        // Every rule is checked before any is saved: a bad one leaves all as they were.
        let rules = body
            .0
            .items
            .into_iter()
            .map(|r| {
                let rule = Rule {
                    shows: r.shows,
                    sort: r.sort,
                    busy: r.busy,
                    boost_tags: r.boost_tags,
                    only_tags: r.only_tags,
                    hidden_tags: r.hidden_tags,
                };
                Ok((r.viewer, rule.validate()?))
            })
            .collect::<AppResult<Vec<_>>>()?;
        for (viewer, rule) in rules {
            super::rules::save(&ctx, &who, viewer, rule).await?;
        }
        Ok(NoContent::Done)
    }
}
