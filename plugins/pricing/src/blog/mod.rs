//! The blog of seed 002 (`GET /blog/`, `GET /blog/<slug>/`), and the
//! routes its writers use.
//!
//! Public, anonymous, with or without the trailing slash: `/blog/` lists
//! the published articles, newest `date_publication` first, 12 a page in
//! the seed's envelope; `/blog/{id}/` is one published article by its slug
//! (the host's router takes one parameter name per position, and the
//! writers' `PUT`/`DELETE /blog/{id}` need the number, so the segment is
//! named `{id}` and read as the slug here, as `/produits/{id}/` reads a
//! slug too). An article is published once it is not a draft and its
//! `date_publication` has come: drafts and scheduled articles are neither
//! listed nor found (404).
//!
//! `pricing:write` holders write: `POST /blog`, `PUT /blog/{id}` (a
//! partial update: absent fields are kept), `DELETE /blog/{id}`, and see
//! every article, drafts and scheduled ones included, at `/blog-admin`
//! and `/blog-admin/{id}` (a path of its own: under `/blog/` it would hide
//! the article of that slug).
//!
//! The seed's front end injects `contenu` as is (`dangerouslySetInnerHTML`),
//! so it is cleaned on write with ammonia's allow list (article markup
//! stays; scripts, event handlers, styles, frames and `javascript:` URLs
//! go) and stored clean; `resume`, the first 300 characters of its text,
//! is computed then too, so reads only copy.
//!
//! Files: this one holds the routes, the rows and the handlers; `html`
//! the sanitiser and the text the resume is cut from; `input` the
//! writers' bodies, checked field by field.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use xcore_plugin_sdk::{extract::FromRequest, openapi::Operation, prelude::*};

use crate::{
    offers::flag,
    public::{both_slashes, page_number},
    search::MAX_PAGE,
    text, Pricing, WRITE,
};

mod html;
mod input;

use html::resume_of;
use input::{capped_slug, read_changes};

/// Articles per page of `GET /blog/` (the seed's `par_page`).
pub const PAGE_SIZE: i64 = 12;

/// Longest `titre`, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// Longest slug, in characters.
const MAX_SLUG_CHARS: usize = 200;

/// Largest `contenu` as sent, in bytes (200 KB).
pub const MAX_CONTENT_BYTES: usize = 200 * 1024;

/// Most entries of `avantages`, and of `inconvenients`.
const MAX_POINTS: usize = 50;

/// Longest entry of `avantages`/`inconvenients`, and longest
/// specification value, in characters.
const MAX_POINT_CHARS: usize = 500;

/// Most `specifications`.
const MAX_SPECIFICATIONS: usize = 100;

/// Longest specification name, in characters.
const MAX_SPECIFICATION_NAME_CHARS: usize = 100;

/// Length of `resume`, in characters.
pub const RESUME_CHARS: usize = 300;

/// Body limit of `POST /blog` and `PUT /blog/{id}`. The largest valid
/// article is at most about 0.65 MB of UTF-8 (200 KB of content, and
/// 110,000 characters of title, lists and specifications), and clients
/// that escape send up to about three times that (Python's `json.dumps`
/// writes `é` as `\u00e9`, Go's `encoding/json` writes `<` as `\u003c`):
/// past the server's 1 MiB default, within 2 MiB.
const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

/// The fields a writer may send.
const FIELDS: [&str; 9] = [
    "titre",
    "contenu",
    "slug",
    "image",
    "date_publication",
    "avantages",
    "inconvenients",
    "specifications",
    "draft",
];

/// A published article in the list (the seed's fields).
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Summary {
    /// The article's number, as text (the seed's `"1"`).
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String)]
    id: i64,
    /// Its address: `/blog/<slug>/`.
    slug: String,
    /// Title.
    titre: String,
    /// Image URL.
    image: Option<String>,
    /// RFC 3339, UTC.
    date_publication: String,
    /// The first 300 characters of the text.
    resume: String,
}

/// A published article in full (the seed's fields).
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Article {
    /// The article's number, as text (the seed's `"1"`).
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String)]
    id: i64,
    /// Its address: `/blog/<slug>/`.
    slug: String,
    /// Title.
    titre: String,
    /// Sanitised HTML.
    contenu: String,
    /// Image URL.
    image: Option<String>,
    /// RFC 3339, UTC.
    date_publication: String,
    /// The first 300 characters of the text.
    resume: String,
    /// Strong points, plain text.
    #[serde(deserialize_with = "json_text")]
    avantages: Vec<String>,
    /// Weak points, plain text.
    #[serde(deserialize_with = "json_text")]
    inconvenients: Vec<String>,
    /// Name to value (`null`: not applicable), names in alphabetical order.
    #[serde(deserialize_with = "json_text")]
    specifications: BTreeMap<String, Option<String>>,
}

/// What writers see of an article beyond the public fields.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Editorial {
    /// A draft is never public.
    #[serde(deserialize_with = "flag")]
    draft: bool,
    /// `draft`, `scheduled` (its date has not come) or `published`
    /// (computed, not stored: `default` lets the row be read without it).
    #[serde(default)]
    #[schema(pattern = "^(draft|scheduled|published)$")]
    status: String,
    /// Who created it.
    created_by: Option<i64>,
    /// RFC 3339, UTC.
    created_at: String,
    /// RFC 3339, UTC.
    updated_at: String,
}

/// An article in full, as writers see it.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct EditedArticle {
    #[serde(flatten)]
    article: Article,
    #[serde(flatten)]
    editorial: Editorial,
}

/// An article in the writers' list.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct EditedSummary {
    #[serde(flatten)]
    summary: Summary,
    #[serde(flatten)]
    editorial: Editorial,
}

/// The seed's `meta`.
#[derive(Serialize, ToSchema)]
pub struct BlogMeta {
    page: i64,
    total_pages: i64,
    total_items: i64,
    par_page: i64,
}

/// `GET /blog/`'s answer: the seed's envelope.
#[derive(Serialize, ToSchema)]
pub struct BlogPage {
    data: Vec<Summary>,
    meta: BlogMeta,
}

/// `GET /blog/`'s query.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BlogQuery {
    /// Page, 1 to 100.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    page: Option<String>,
}

/// `GET /blog-admin`'s query.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EditorialFilter {
    /// Only the articles in this state: `draft`, `scheduled` or
    /// `published`.
    status: Option<String>,
}

/// What `POST /blog` and `PUT /blog/{id}` take (read field by field, so
/// every problem is named at once). `PUT` changes the fields sent and
/// keeps the others; changing `titre` keeps the slug (addresses stay).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documentation: `read_changes` reads the fields by hand.
pub struct ArticleInput {
    /// Title, plain text, 1 to 200 characters (required on `POST`).
    titre: Option<String>,
    /// HTML, at most 200 KB; cleaned of anything but article markup
    /// (required on `POST`).
    contenu: Option<String>,
    /// Address; made a French slug (`Été 2026` -> `ete-2026`). On `POST`,
    /// derived from `titre` when absent. Taken: 409.
    slug: Option<String>,
    /// An http(s) URL; `null` or `""` clears it.
    image: Option<String>,
    /// RFC 3339, any offset; absent or `null`: now on `POST`, kept on
    /// `PUT`. Public once it has come (unless a draft).
    date_publication: Option<String>,
    /// Up to 50 strong points (plain text, 500 characters each).
    avantages: Option<Vec<String>>,
    /// Up to 50 weak points (plain text, 500 characters each).
    inconvenients: Option<Vec<String>>,
    /// Up to 100 names (100 characters) to a text (500 characters) or
    /// `null` (an empty text is `null`).
    specifications: Option<BTreeMap<String, Option<String>>>,
    /// A draft is not public (default false).
    draft: Option<bool>,
}

/// `{id}` of `PUT`/`DELETE /blog/{id}` and `/blog-admin/{id}`: an
/// article's number, else 404.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArticleId(pub i64);

impl FromRequest for ArticleId {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Id::read(request, "no article has this id").map(ArticleId)
    }

    fn document(operation: &mut Operation) {
        Id::document_parameter(operation);
    }
}

/// `{id}` of the public `GET /blog/{id}/`: the seed's `<slug>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArticleSlug(pub String);

impl FromRequest for ArticleSlug {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        request
            .param("id")
            .map(|raw| ArticleSlug(raw.to_string()))
            .ok_or_else(|| Response::not_found("no article slug in the path"))
    }

    fn document(operation: &mut Operation) {
        operation.add_parameter(json!({
            "name": "id", "in": "path", "required": true,
            "description": "The article's slug (`meilleur-smartphone-2026`)",
            "schema": {"type": "string"},
        }));
    }
}

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    let router = both_slashes(
        router,
        "/blog",
        "Published blog articles, newest first (seed 002)",
        Pricing::blog,
        &[(422, "page is not an integer from 1 to 100")],
    );
    let router = both_slashes(
        router,
        "/blog/{id}",
        "A published blog article by its slug (seed 002)",
        Pricing::blog_article,
        &[(404, "No published article has this slug")],
    );
    router
        .post("/blog", Access::Requires(WRITE), Pricing::create_article)
        .summary("Write a blog article (its HTML is sanitised)")
        .max_body(MAX_BODY_BYTES)
        .doc(|op| {
            op.request_body::<ArticleInput>();
            op.error_response(409, "An article has this slug");
            op.error_response(422, "Fields invalid, each named");
        })
        .put(
            "/blog/{id}",
            Access::Requires(WRITE),
            Pricing::update_article,
        )
        .summary("Change the fields sent of a blog article")
        .max_body(MAX_BODY_BYTES)
        .doc(|op| {
            op.request_body::<ArticleInput>();
            op.error_response(404, "No such article");
            op.error_response(409, "An article has this slug");
            op.error_response(422, "Fields invalid, each named");
        })
        .delete(
            "/blog/{id}",
            Access::Requires(WRITE),
            Pricing::delete_article,
        )
        .summary("Delete a blog article")
        .doc(|op| op.error_response(404, "No such article"))
        .get(
            "/blog-admin",
            Access::Requires(WRITE),
            Pricing::list_articles,
        )
        .summary("Every blog article, drafts and scheduled ones included, newest first")
        .get(
            "/blog-admin/{id}",
            Access::Requires(WRITE),
            Pricing::edited_article,
        )
        .summary("A blog article in full, whatever its state")
        .doc(|op| op.error_response(404, "No such article"))
}

/// The id as the seed shows it: text.
fn as_text<S: serde::Serializer>(id: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// A JSON column (TEXT on both databases) read into `T`.
fn json_text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let text = String::deserialize(deserializer)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}

const SUMMARY_COLUMNS: &str = "id, slug, titre, image, date_publication, resume";

const ARTICLE_COLUMNS: &str = "id, slug, titre, contenu, image, date_publication, resume, \
     avantages, inconvenients, specifications";

const EDITED_COLUMNS: &str = "id, slug, titre, contenu, image, date_publication, resume, \
     avantages, inconvenients, specifications, draft, created_by, created_at, updated_at";

const EDITED_SUMMARY_COLUMNS: &str = "id, slug, titre, image, date_publication, resume, \
     draft, created_by, created_at, updated_at";

/// Published: not a draft, and its date has come.
const PUBLISHED: &str = "draft = 0 AND date_publication <= $1";

/// The condition and parameters of `GET /blog-admin?status=`: `draft`,
/// `scheduled` (not a draft, its date to come) or `published`.
fn state_filter(status: Option<&str>, now: &str) -> Result<(&'static str, Vec<Value>), Response> {
    Ok(match status {
        None => ("", params![]),
        Some("draft") => ("WHERE draft = 1", params![]),
        Some("scheduled") => ("WHERE draft = 0 AND date_publication > $1", params![now]),
        Some("published") => ("WHERE draft = 0 AND date_publication <= $1", params![now]),
        Some(_) => return Err(Response::invalid("status", "draft, scheduled or published")),
    })
}

impl Editorial {
    /// Fills `status` as of `now`.
    fn at(mut self, date_publication: &str, now: &str) -> Self {
        self.status = if self.draft {
            "draft"
        } else if date_publication > now {
            "scheduled"
        } else {
            "published"
        }
        .into();
        self
    }
}

impl EditedArticle {
    /// Fills `status` as of `now`.
    fn at(self, now: &str) -> Self {
        let editorial = self.editorial.at(&self.article.date_publication, now);
        Self { editorial, ..self }
    }
}

fn no_article(id: i64) -> Response {
    Response::not_found(&format!("no article {id}"))
}

/// The 409 for a taken slug, naming it; other errors as the host says.
fn slug_taken(slug: &str) -> impl FnOnce(HostError) -> Response + '_ {
    move |error| match error {
        HostError::UniqueViolation { .. } => Response::error_with_details(
            409,
            "CONFLICT",
            &format!("an article with slug {slug} already exists"),
            &[("slug", "already used")],
        ),
        other => other.into_response(),
    }
}

/// Text for a JSON column.
fn json_column<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl Pricing {
    fn blog(&self, Query(query): Query<BlogQuery>) -> Result<Json<BlogPage>, Response> {
        let page = page_number(query.page.as_deref())?;
        let now = now();
        let total: i64 = self.host.query_scalar(
            &format!("SELECT COUNT(*) FROM pricing_articles WHERE {PUBLISHED}"),
            params![now],
        )?;
        let data: Vec<Summary> = self.host.query_as(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM pricing_articles WHERE {PUBLISHED} \
                 ORDER BY date_publication DESC, id DESC LIMIT $2 OFFSET $3"
            ),
            params![now, PAGE_SIZE, (page - 1) * PAGE_SIZE],
        )?;
        let total_pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).min(MAX_PAGE);
        Ok(Json(BlogPage {
            data,
            meta: BlogMeta {
                page,
                total_pages,
                total_items: total,
                par_page: PAGE_SIZE,
            },
        }))
    }

    fn blog_article(&self, ArticleSlug(key): ArticleSlug) -> Result<Json<Article>, Response> {
        let slug = text::slugify(&key);
        self.host
            .query_one_as(
                &format!(
                    "SELECT {ARTICLE_COLUMNS} FROM pricing_articles \
                     WHERE {PUBLISHED} AND slug = $2"
                ),
                params![now(), slug],
            )?
            .map(Json)
            .ok_or_else(|| Response::not_found(&format!("no article {key}")))
    }

    /// The article in full, whatever its state, or a 404.
    fn article(&self, id: i64) -> Result<EditedArticle, Response> {
        let row: Option<EditedArticle> = self.host.query_one_as(
            &format!("SELECT {EDITED_COLUMNS} FROM pricing_articles WHERE id = $1"),
            params![id],
        )?;
        row.map(|article| article.at(&now()))
            .ok_or_else(|| no_article(id))
    }

    fn create_article(
        &self,
        caller: Caller,
        Json(body): Json<Value>,
    ) -> Result<Created<EditedArticle>, Response> {
        let changes = read_changes(&body, true)?;
        let (Some(titre), Some(contenu)) = (changes.titre, changes.contenu) else {
            // read_changes(.., true) refuses a body without them.
            return Err(Response::plugin_error(
                "an article without titre or contenu",
            ));
        };
        let slug = match changes.slug {
            Some(slug) => slug,
            None => {
                let derived = capped_slug(text::slugify(&titre));
                if derived.is_empty() {
                    return Err(Response::invalid(
                        "slug",
                        "the title has no letter or digit to make one of: send a slug",
                    ));
                }
                derived
            }
        };
        let now = now();
        let resume = resume_of(&contenu);
        let article: EditedArticle = self
            .host
            .query_row_as(
                &format!(
                    "INSERT INTO pricing_articles (slug, titre, contenu, resume, image, \
                     date_publication, avantages, inconvenients, specifications, draft, \
                     created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                     RETURNING {EDITED_COLUMNS}"
                ),
                params![
                    slug,
                    titre,
                    contenu,
                    resume,
                    changes.image.flatten(),
                    changes.date_publication.unwrap_or_else(|| now.clone()),
                    json_column(&changes.avantages.unwrap_or_default()),
                    json_column(&changes.inconvenients.unwrap_or_default()),
                    json_column(&changes.specifications.unwrap_or_default()),
                    i64::from(changes.draft.unwrap_or(false)),
                    caller.user_id,
                    now
                ],
            )
            .map_err(slug_taken(&slug))?;
        Ok(Created(article.at(&now)))
    }

    fn update_article(
        &self,
        ArticleId(id): ArticleId,
        Json(body): Json<Value>,
    ) -> Result<Json<EditedArticle>, Response> {
        let changes = read_changes(&body, false)?;
        let current = self.article(id)?;
        let mut article = current.article;
        if let Some(titre) = changes.titre {
            article.titre = titre;
        }
        if let Some(contenu) = changes.contenu {
            article.resume = resume_of(&contenu);
            article.contenu = contenu;
        }
        if let Some(slug) = changes.slug {
            article.slug = slug;
        }
        if let Some(image) = changes.image {
            article.image = image;
        }
        if let Some(at) = changes.date_publication {
            article.date_publication = at;
        }
        if let Some(avantages) = changes.avantages {
            article.avantages = avantages;
        }
        if let Some(inconvenients) = changes.inconvenients {
            article.inconvenients = inconvenients;
        }
        if let Some(specifications) = changes.specifications {
            article.specifications = specifications;
        }
        let draft = changes.draft.unwrap_or(current.editorial.draft);
        let now = now();
        let updated: Option<EditedArticle> = self
            .host
            .query_one_as(
                &format!(
                    "UPDATE pricing_articles SET slug = $1, titre = $2, contenu = $3, \
                     resume = $4, image = $5, date_publication = $6, avantages = $7, \
                     inconvenients = $8, specifications = $9, draft = $10, updated_at = $11 \
                     WHERE id = $12 RETURNING {EDITED_COLUMNS}"
                ),
                params![
                    article.slug,
                    article.titre,
                    article.contenu,
                    article.resume,
                    article.image,
                    article.date_publication,
                    json_column(&article.avantages),
                    json_column(&article.inconvenients),
                    json_column(&article.specifications),
                    i64::from(draft),
                    now,
                    id
                ],
            )
            .map_err(slug_taken(&article.slug))?;
        updated
            .map(|article| Json(article.at(&now)))
            .ok_or_else(|| no_article(id))
    }

    fn delete_article(&self, ArticleId(id): ArticleId) -> Result<NoContent, Response> {
        self.host
            .query_one(
                "DELETE FROM pricing_articles WHERE id = $1 RETURNING id",
                params![id],
            )?
            .map(|_| NoContent)
            .ok_or_else(|| no_article(id))
    }

    fn list_articles(
        &self,
        Query(filter): Query<EditorialFilter>,
        window: Window,
    ) -> Result<ListBody<EditedSummary>, Response> {
        let now = now();
        let (condition, params) = state_filter(filter.status.as_deref(), &now)?;
        let mut list: ListBody<EditedSummary> = self.host.query_page(
            &format!(
                "SELECT {EDITED_SUMMARY_COLUMNS} FROM pricing_articles {condition} \
                 ORDER BY date_publication DESC, id DESC"
            ),
            params,
            window,
        )?;
        list.items = list
            .items
            .into_iter()
            .map(|item| EditedSummary {
                editorial: item.editorial.at(&item.summary.date_publication, &now),
                ..item
            })
            .collect();
        Ok(list)
    }

    fn edited_article(&self, ArticleId(id): ArticleId) -> Result<Json<EditedArticle>, Response> {
        self.article(id).map(Json)
    }
}
