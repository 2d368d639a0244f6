//! The seed 002 public API, anonymous (the host's anonymous rate limits
//! apply), at the seed's paths with or without the trailing slash:
//! `/produits/`, `/produits/{id}/`, `/categories/`, `/categories/{slug}/`,
//! `/categories/{slug}/{sous}/` (the seed's `<parent>/<sous>`), `/marques/`, `/marques/{nom}/`,
//! `/boutiques/`. Lists use the seed's envelope `{"data": [...], "meta":
//! {"page", "total_pages", "total_items", "par_page"}}`; errors use the
//! platform's standard error body, not the seed's `{"erreur": ...}` (see
//! the README).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{openapi::Operation, prelude::*, router::Handler};

use crate::{
    money,
    offers::flag,
    search::{Card, Filters, Page, MAX_PAGE, PAGE_SIZE},
    text, BrandName, CategorySlug, OfferKey, Pricing, SubSlug,
};

/// `GET /produits/`'s query (all optional; the seed's names).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProductQuery {
    /// Search text, or a reference (`SM-S921B`).
    q: Option<String>,
    /// Category slug (parent or sub-category).
    categorie: Option<String>,
    /// Brand, any case.
    marque: Option<String>,
    /// Lowest price.
    #[schema(value_type = Option<f64>)]
    prix_min: Option<String>,
    /// Highest price.
    #[schema(value_type = Option<f64>)]
    prix_max: Option<String>,
    /// `1`/`true`: only offers with a reduction.
    en_promo: Option<String>,
    /// Page, 1 to 100.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    page: Option<String>,
}

/// `?page=` of the category and brand pages.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PageQuery {
    /// Page, 1 to 100.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    page: Option<String>,
}

/// The seed's `meta`.
#[derive(Serialize, ToSchema)]
pub struct Meta {
    page: i64,
    total_pages: i64,
    total_items: i64,
    par_page: i64,
}

/// The seed's paged list.
#[derive(Serialize, ToSchema)]
pub struct Envelope {
    data: Vec<Card>,
    meta: Meta,
}

fn envelope(page: Page, number: i64) -> Value {
    let total_pages = ((page.total + PAGE_SIZE - 1) / PAGE_SIZE).min(MAX_PAGE);
    json!({
        "data": page.cards,
        "meta": {"page": number, "total_pages": total_pages, "total_items": page.total, "par_page": PAGE_SIZE},
    })
}

/// Reads `page` (1..=100), as every public list of the seed does.
pub(crate) fn page_number(raw: Option<&str>) -> Result<i64, Response> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(1),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|page| (1..=MAX_PAGE).contains(page))
            .ok_or_else(|| Response::invalid("page", "must be an integer from 1 to 100")),
    }
}

/// Registers `path` and `path/` for anonymous readers (the seed's paths
/// end with a slash, and clients drop it), each with its `errors`.
pub(crate) fn both_slashes<H, Args>(
    router: Router<Pricing>,
    path: &str,
    summary: &str,
    handler: H,
    errors: &[(u16, &str)],
) -> Router<Pricing>
where
    H: Handler<Pricing, Args> + Copy,
{
    let document = |op: &mut Operation| {
        for (status, description) in errors {
            op.error_response(*status, description);
        }
    };
    router
        .get(path, Access::Public, handler)
        .summary(summary)
        .doc(document)
        .get(&format!("{path}/"), Access::Public, handler)
        .summary(summary)
        .doc(document)
}

/// [`both_slashes`] for the seed's routes, whose only error is a 404.
fn both<H, Args>(router: Router<Pricing>, path: &str, summary: &str, handler: H) -> Router<Pricing>
where
    H: Handler<Pricing, Args> + Copy,
{
    both_slashes(
        router,
        path,
        summary,
        handler,
        &[(404, "Nothing at this path")],
    )
}

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    let router = both(
        router,
        "/produits",
        "Search and list products (seed 002)",
        Pricing::produits,
    );
    let router = both(
        router,
        "/produits/{id}",
        "A product with every store's offer for its reference, cheapest first",
        Pricing::produit,
    );
    let router = both(
        router,
        "/categories",
        "Categories with their sub-categories, most products first",
        Pricing::categories,
    );
    let router = both(
        router,
        "/categories/{slug}",
        "A category's products",
        Pricing::categorie,
    );
    let router = both(
        router,
        "/categories/{slug}/{sous}",
        "A sub-category's products",
        Pricing::sous_categorie,
    );
    let router = both(
        router,
        "/marques",
        "Brands, most products first",
        Pricing::marques,
    );
    let router = both(
        router,
        "/marques/{nom}",
        "A brand's products",
        Pricing::marque,
    );
    both(
        router,
        "/boutiques",
        "The partner stores",
        Pricing::boutiques,
    )
}

/// An offer of the comparison.
#[derive(Deserialize)]
struct OfferRow {
    id: i64,
    reference: String,
    reference_key: String,
    reference_slug: String,
    title: String,
    brand: Option<String>,
    category: Option<String>,
    category_slug: Option<String>,
    image: Option<String>,
    description: Option<String>,
    price_cents: i64,
    old_price_cents: Option<i64>,
    discount_cents: i64,
    #[serde(deserialize_with = "flag")]
    in_stock: bool,
    url: Option<String>,
    boutique: String,
}

const OFFER_ROW: &str = "o.id, o.reference, o.reference_key, o.reference_slug, o.title, o.brand, \
     o.category, o.category_slug, o.image, o.description, o.price_cents, o.old_price_cents, \
     o.discount_cents, o.in_stock, o.url, s.nom AS boutique";

/// A category count row.
#[derive(Deserialize)]
struct CategoryRow {
    slug: String,
    nom: String,
    sous_slug: Option<String>,
    sous_nom: Option<String>,
    n: i64,
}

/// A brand count row.
#[derive(Deserialize)]
struct BrandRow {
    slug: String,
    nom: String,
    n: i64,
}

/// A store as the public list shows it.
#[derive(Deserialize, Serialize)]
struct Boutique {
    id: String,
    nom: String,
    site_web: Option<String>,
}

fn price_of(cents: Option<i64>) -> Value {
    money::to_json_opt(cents)
}

impl Pricing {
    fn produits(&self, Query(query): Query<ProductQuery>) -> Result<Json<Value>, Response> {
        let mut problems: Vec<(&str, String)> = Vec::new();
        let mut price = |raw: &Option<String>, field: &'static str| {
            raw.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .and_then(|raw| {
                    money::parse_decimal(raw)
                        .map_err(|m| problems.push((field, m)))
                        .ok()
                })
        };
        let prix_min = price(&query.prix_min, "prix_min");
        let prix_max = price(&query.prix_max, "prix_max");
        let page = page_number(query.page.as_deref()).unwrap_or_else(|_| {
            problems.push(("page", "must be an integer from 1 to 100".into()));
            1
        });
        if !problems.is_empty() {
            let details: Vec<(&str, &str)> =
                problems.iter().map(|(f, m)| (*f, m.as_str())).collect();
            return Err(Response::validation(&details));
        }
        let en_promo = matches!(
            query.en_promo.as_deref().map(str::trim),
            Some("1" | "true" | "True" | "oui")
        );
        let filters = Filters {
            q: query.q,
            categorie: query.categorie.filter(|s| !s.trim().is_empty()),
            marque: query.marque.filter(|s| !s.trim().is_empty()),
            prix_min,
            prix_max,
            en_promo,
            page,
            ..Filters::default()
        };
        Ok(Json(envelope(self.search(&filters)?, page)))
    }

    fn produit(&self, OfferKey(key): OfferKey) -> Result<Json<Value>, Response> {
        // Digits are an offer's id; anything else a comparison slug (the
        // slug of a reference).
        let by_id = !key.is_empty() && key.len() < 19 && key.bytes().all(|b| b.is_ascii_digit());
        let (condition, param) = if by_id {
            ("o.id = $1", json!(key.parse::<i64>().unwrap_or(0)))
        } else {
            ("o.reference_slug = $1", json!(text::slugify(&key)))
        };
        let sql = format!(
            "SELECT {OFFER_ROW} FROM pricing_offers o JOIN pricing_stores s ON s.id = o.store_id \
             WHERE {condition} ORDER BY o.price_cents, o.id LIMIT 1"
        );
        let main: OfferRow = self
            .host
            .query_one_as(&sql, vec![param])?
            .ok_or_else(|| Response::not_found(&format!("no product {key}")))?;
        // Every store's offer for the same reference, cheapest first; an
        // offer without a reference stands alone.
        let offers: Vec<OfferRow> = if main.reference_key.is_empty() {
            Vec::new()
        } else {
            self.host.query_as(
                &format!(
                    "SELECT {OFFER_ROW} FROM pricing_offers o \
                     JOIN pricing_stores s ON s.id = o.store_id \
                     WHERE o.reference_key = $1 ORDER BY o.price_cents, o.id"
                ),
                params![main.reference_key],
            )?
        };
        let offers = if offers.is_empty() {
            vec![main]
        } else {
            offers
        };
        let cheapest = &offers[0];
        let source = if by_id {
            offers
                .iter()
                .find(|o| o.id.to_string() == key)
                .unwrap_or(cheapest)
        } else {
            cheapest
        };
        // The catalogue product with this SKU, if the shop sells it too.
        let catalogue: Option<Value> = self
            .host
            .query_one_as::<Value>(
                "SELECT id FROM products WHERE sku = $1",
                params![source.reference],
            )
            .ok()
            .flatten()
            .and_then(|row| row.get("id").cloned());
        let offres: Vec<Value> = offers
            .iter()
            .map(|o| {
                json!({
                    "id": o.id.to_string(),
                    "boutique": o.boutique,
                    "prix": money::to_json(o.price_cents),
                    "stock": if o.in_stock { "En stock" } else { "Rupture" },
                    "url": o.url,
                    "image": o.image,
                })
            })
            .collect();
        Ok(Json(json!({
            "id": if by_id { key.clone() } else { source.id.to_string() },
            "slug": if by_id { key.clone() } else { source.reference_slug.clone() },
            "nom": source.title,
            "marque": source.brand,
            "categorie": source.category_slug,
            "categorie_nom": source.category,
            "reference": source.reference,
            "image": source.image,
            "description": source.description,
            "prix_min": money::to_json(cheapest.price_cents),
            "prix_max": price_of(source.old_price_cents.filter(|old| *old > source.price_cents)),
            "discount": money::to_json(source.discount_cents),
            "en_stock": source.in_stock,
            "boutique": source.boutique,
            "url_boutique": source.url,
            "produit_catalogue": catalogue,
            "offres": offres,
        })))
    }

    fn category_rows(&self) -> Result<Vec<CategoryRow>, HostError> {
        // Kept by the offer writes (see `offers::count_categories`): fifty
        // rows, whatever the number of offers.
        self.host.query_as(
            "SELECT category_slug AS slug, category AS nom, \
             NULLIF(subcategory_slug, '') AS sous_slug, subcategory AS sous_nom, n \
             FROM pricing_category_counts WHERE n > 0 \
             ORDER BY category_slug, subcategory_slug",
            params![],
        )
    }

    fn categories(&self) -> Result<Json<Value>, Response> {
        let mut parents: BTreeMap<String, (String, i64, Vec<Value>)> = BTreeMap::new();
        for row in self.category_rows()? {
            let parent = parents
                .entry(row.slug.clone())
                .or_insert_with(|| (row.nom.clone(), 0, Vec::new()));
            parent.1 += row.n;
            if let (Some(sous), Some(nom)) = (row.sous_slug.filter(|s| !s.is_empty()), row.sous_nom)
            {
                let id = format!("{}/{sous}", row.slug);
                parent.2.push(json!({
                    "id": id, "slug": id, "nom": nom, "parent_slug": row.slug, "nombre_produits": row.n,
                }));
            }
        }
        let mut data: Vec<(i64, Value)> = parents
            .into_iter()
            .map(|(slug, (nom, count, mut subs))| {
                subs.sort_by(|a, b| {
                    b["nombre_produits"]
                        .as_i64()
                        .cmp(&a["nombre_produits"].as_i64())
                        .then_with(|| a["slug"].as_str().cmp(&b["slug"].as_str()))
                });
                (
                    count,
                    json!({"id": slug, "slug": slug, "nom": nom, "nombre_produits": count, "sous_categories": subs}),
                )
            })
            .collect();
        // Most products first; ties by slug, so the order is stable.
        data.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1["slug"].as_str().cmp(&b.1["slug"].as_str()))
        });
        let total = data.len();
        let data: Vec<Value> = data.into_iter().map(|(_, v)| v).collect();
        Ok(Json(json!({"data": data, "meta": {"total_items": total}})))
    }

    fn categorie(
        &self,
        CategorySlug(slug): CategorySlug,
        Query(query): Query<PageQuery>,
    ) -> Result<Json<Value>, Response> {
        let page = page_number(query.page.as_deref())?;
        let slug = text::slugify(&slug);
        let nom = self
            .category_rows()?
            .into_iter()
            .find(|row| row.slug == slug)
            .map(|row| row.nom)
            .ok_or_else(|| Response::not_found(&format!("no category {slug}")))?;
        let found = self.search(&Filters {
            parent_category: Some(slug.clone()),
            page,
            ..Filters::default()
        })?;
        let mut body = envelope(found, page);
        body["categorie"] = json!({"slug": slug, "nom": nom});
        Ok(Json(body))
    }

    fn sous_categorie(
        &self,
        CategorySlug(parent): CategorySlug,
        SubSlug(sous): SubSlug,
        Query(query): Query<PageQuery>,
    ) -> Result<Json<Value>, Response> {
        let page = page_number(query.page.as_deref())?;
        let (parent, sous) = (text::slugify(&parent), text::slugify(&sous));
        let row = self
            .category_rows()?
            .into_iter()
            .find(|row| row.slug == parent && row.sous_slug.as_deref() == Some(sous.as_str()))
            .ok_or_else(|| Response::not_found(&format!("no category {parent}/{sous}")))?;
        let found = self.search(&Filters {
            sub_category: Some((parent.clone(), sous.clone())),
            page,
            ..Filters::default()
        })?;
        let mut body = envelope(found, page);
        body["categorie"] = json!({
            "slug": format!("{parent}/{sous}"),
            "nom": row.sous_nom,
            "parent_slug": parent,
            "parent_nom": row.nom,
        });
        Ok(Json(body))
    }

    fn brand_rows(&self) -> Result<Vec<BrandRow>, HostError> {
        self.host.query_as(
            "SELECT brand_slug AS slug, MIN(brand) AS nom, COUNT(*) AS n FROM pricing_offers \
             WHERE brand_slug IS NOT NULL AND brand_slug <> '' GROUP BY brand_slug \
             ORDER BY n DESC, slug",
            params![],
        )
    }

    fn marques(&self) -> Result<Json<Value>, Response> {
        let data: Vec<Value> = self
            .brand_rows()?
            .into_iter()
            .map(|b| json!({"id": b.slug, "slug": b.slug, "nom": b.nom, "nombre_produits": b.n}))
            .collect();
        let total = data.len();
        Ok(Json(json!({"data": data, "meta": {"total_items": total}})))
    }

    fn marque(
        &self,
        BrandName(nom): BrandName,
        Query(query): Query<PageQuery>,
    ) -> Result<Json<Value>, Response> {
        let page = page_number(query.page.as_deref())?;
        let slug = text::slugify(&nom);
        let brand: Option<BrandRow> = self.host.query_one_as(
            "SELECT brand_slug AS slug, MIN(brand) AS nom, COUNT(*) AS n FROM pricing_offers \
             WHERE brand_key = $1 OR brand_slug = $2 GROUP BY brand_slug",
            params![nom.trim().to_lowercase(), slug],
        )?;
        let brand = brand.ok_or_else(|| Response::not_found(&format!("no brand {nom}")))?;
        let found = self.search(&Filters {
            marque: Some(nom),
            page,
            ..Filters::default()
        })?;
        let mut body = envelope(found, page);
        body["marque"] = json!({"slug": brand.slug, "nom": brand.nom});
        Ok(Json(body))
    }

    fn boutiques(&self) -> Result<Json<Value>, Response> {
        let stores: Vec<Boutique> = self.host.query_as(
            "SELECT id, nom, site_web FROM pricing_stores ORDER BY nom, id",
            params![],
        )?;
        let total = stores.len();
        Ok(Json(
            json!({"data": stores, "meta": {"total_items": total}}),
        ))
    }
}
