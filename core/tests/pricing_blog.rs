//! The pricing plugin's blog (seed 002) through the real host and the
//! real `.so` files, read the way an attacker would: anonymous reads of
//! published articles only (drafts and scheduled ones are neither listed
//! nor found, but writers see them); writes refused to anonymous callers
//! and to `pricing:read` holders; scripts, event handlers, `javascript:`
//! links, frames and styles stripped from `contenu` while article markup
//! stays; the 300-character resume of accented text; French slugs and the
//! 409 of a taken one; the seed's paging envelope and order; every bad
//! field named in one 422; the trailing slash optional; `PUT` and
//! `DELETE`. Runs on SQLite, and on PostgreSQL when
//! `XCORE_TEST_DATABASE_URL` is set.

mod common;

use common::PluginApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

const API: &str = "/api/v1/pricing";

/// The host with the products and pricing plugins.
struct Blog(PluginApp);

impl std::ops::Deref for Blog {
    type Target = PluginApp;

    fn deref(&self) -> &PluginApp {
        &self.0
    }
}

async fn start() -> Blog {
    Blog(PluginApp::start(API, &["products", "pricing"], |_| {}).await)
}

impl Blog {
    /// `POST /blog` as the admin (a `pricing:write` holder); the article.
    async fn write(&self, article: Value) -> Value {
        self.server
            .as_(&self.admin)
            .post(&format!("{API}/blog"))
            .json(article)
            .expect(StatusCode::CREATED)
            .await
    }

    /// An anonymous GET of the public blog.
    async fn public(&self, path: &str) -> Value {
        self.server
            .anonymous()
            .get(&format!("{API}{path}"))
            .expect(StatusCode::OK)
            .await
    }

    /// An anonymous GET that must be the standard 404.
    async fn hidden(&self, path: &str) {
        self.server
            .anonymous()
            .get(&format!("{API}{path}"))
            .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
            .await;
    }

    /// The writers' list, as the admin.
    async fn editorial(&self, query: &str) -> Value {
        self.server
            .as_(&self.admin)
            .get(&format!("{API}/blog-admin{query}"))
            .expect(StatusCode::OK)
            .await
    }
}

/// The `field`s of a standard error body's details, in order.
fn fields(error: &Value) -> Vec<String> {
    error["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|detail| detail["field"].as_str().map(str::to_string))
        .collect()
}

/// The slugs of a list's items (`data` of the seed's envelope, `items` of
/// the standard list body).
fn slugs(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|article| article["slug"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_published_articles_and_only_writers_write() {
    let blog = start().await;
    let article = json!({
        "titre": "Meilleur Smartphone & Mobile 2026 — été",
        "contenu": "<h2>Introduction</h2><p>Le comparatif.</p>",
        "image": "https://api.toprix.tn/media/blog/image.jpg",
        "date_publication": "2025-01-15T10:00:00+01:00",
        "avantages": ["Excellente autonomie", "Appareil photo 200MP"],
        "inconvenients": ["Prix élevé"],
        "specifications": {"ram": "12 Go", "audio": null, "ecran": "6.8\" AMOLED 120Hz"},
    });

    // Nobody but pricing:write holders writes: anonymous callers are
    // 401, a pricing:read holder (every signed-in user) 403.
    let anonymous = blog.server.anonymous();
    anonymous
        .post(&format!("{API}/blog"))
        .json(&article)
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    anonymous
        .get(&format!("{API}/blog-admin"))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let (_, reader) = blog.server.user_token("reader@example.com").await;
    let reader = blog.server.as_(&reader);
    for request in [
        reader.post(&format!("{API}/blog")).json(&article),
        reader
            .put(&format!("{API}/blog/1"))
            .json(json!({"draft": true})),
        reader.delete(&format!("{API}/blog/1")),
        reader.get(&format!("{API}/blog-admin")),
        reader.get(&format!("{API}/blog-admin/1")),
    ] {
        request
            .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
            .await;
    }

    // Written: the slug is the French slug of the title, the date UTC.
    let written = blog.write(article.clone()).await;
    assert_eq!(written["slug"], "meilleur-smartphone-mobile-2026-ete");
    assert_eq!(written["date_publication"], "2025-01-15T09:00:00.000000Z");
    assert_eq!(written["status"], "published");
    assert_eq!(written["draft"], false);
    let id = written["id"].as_str().expect("the id is text").to_string();

    // Read anonymously, with or without the trailing slash: the seed's
    // fields.
    let list = blog.public("/blog/").await;
    assert_eq!(
        list["meta"],
        json!({"page": 1, "total_pages": 1, "total_items": 1, "par_page": 12})
    );
    assert_eq!(
        list["data"][0],
        json!({
            "id": id,
            "slug": "meilleur-smartphone-mobile-2026-ete",
            "titre": "Meilleur Smartphone & Mobile 2026 — été",
            "image": "https://api.toprix.tn/media/blog/image.jpg",
            "date_publication": "2025-01-15T09:00:00.000000Z",
            "resume": "Introduction Le comparatif.",
        })
    );
    assert_eq!(blog.public("/blog").await, list);
    let full = blog
        .public("/blog/meilleur-smartphone-mobile-2026-ete/")
        .await;
    assert_eq!(
        full["contenu"],
        "<h2>Introduction</h2><p>Le comparatif.</p>"
    );
    assert_eq!(
        full["avantages"],
        json!(["Excellente autonomie", "Appareil photo 200MP"])
    );
    assert_eq!(full["inconvenients"], json!(["Prix élevé"]));
    assert_eq!(
        full["specifications"],
        json!({"audio": null, "ecran": "6.8\" AMOLED 120Hz", "ram": "12 Go"})
    );
    assert!(full.get("draft").is_none(), "no writers' field: {full}");
    assert_eq!(
        blog.public("/blog/meilleur-smartphone-mobile-2026-ete")
            .await,
        full
    );
    blog.hidden("/blog/nope/").await;
    blog.hidden("/blog/nope").await;

    // A taken slug is a 409 naming it, whether derived or sent.
    for taken in [
        json!({"titre": "Meilleur smartphone, mobile 2026 : ÉTÉ", "contenu": "<p>x</p>"}),
        json!({"titre": "Autre", "slug": "meilleur-smartphone-mobile-2026-ete", "contenu": "<p>x</p>"}),
    ] {
        let conflict = blog
            .server
            .as_(&blog.admin)
            .post(&format!("{API}/blog"))
            .json(taken)
            .expect_error(StatusCode::CONFLICT, "CONFLICT")
            .await;
        assert_eq!(fields(&conflict), ["slug"]);
        let message = conflict["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("meilleur-smartphone-mobile-2026-ete"),
            "{message}"
        );
    }

    // A draft and a scheduled article: hidden from readers, shown to
    // writers with their state.
    let draft = blog
        .write(json!({"titre": "Brouillon", "contenu": "<p>Pas prêt</p>", "draft": true}))
        .await;
    assert_eq!(draft["status"], "draft");
    let scheduled = blog
        .write(json!({"titre": "Bientôt", "contenu": "<p>Demain</p>",
                      "date_publication": "2999-01-01T00:00:00+01:00"}))
        .await;
    assert_eq!(scheduled["status"], "scheduled");
    assert_eq!(
        slugs(&blog.public("/blog/").await, "data"),
        ["meilleur-smartphone-mobile-2026-ete"]
    );
    blog.hidden("/blog/brouillon/").await;
    blog.hidden("/blog/bientot/").await;
    let everything = blog.editorial("").await;
    assert_eq!(everything["total"], 3);
    assert_eq!(
        slugs(&everything, "items"),
        [
            "bientot",
            "brouillon",
            "meilleur-smartphone-mobile-2026-ete"
        ]
    );
    let states: Vec<&str> = everything["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["status"].as_str())
        .collect();
    assert_eq!(states, ["scheduled", "draft", "published"]);
    assert!(everything["items"][0].get("contenu").is_none());
    assert_eq!(
        slugs(&blog.editorial("?status=draft").await, "items"),
        ["brouillon"]
    );
    assert_eq!(
        slugs(&blog.editorial("?status=scheduled").await, "items"),
        ["bientot"]
    );
    assert_eq!(
        slugs(&blog.editorial("?status=published").await, "items"),
        ["meilleur-smartphone-mobile-2026-ete"]
    );
    let admin = blog.server.as_(&blog.admin);
    admin
        .get(&format!("{API}/blog-admin?status=secret"))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let draft_id = draft["id"].as_str().expect("id");
    let read = admin
        .get(&format!("{API}/blog-admin/{draft_id}"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(read["contenu"], "<p>Pas prêt</p>");

    // PUT changes the fields sent and keeps the others; a new title keeps
    // the address.
    let published = admin
        .put(&format!("{API}/blog/{draft_id}"))
        .json(json!({"draft": false, "titre": "Enfin prêt", "date_publication": "2025-02-01T00:00:00Z"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(published["status"], "published");
    assert_eq!(published["slug"], "brouillon");
    assert_eq!(published["contenu"], "<p>Pas prêt</p>");
    let shown = blog.public("/blog/brouillon").await;
    assert_eq!(shown["titre"], "Enfin prêt");
    assert_eq!(
        slugs(&blog.public("/blog/").await, "data"),
        ["brouillon", "meilleur-smartphone-mobile-2026-ete"]
    );
    let moved = admin
        .put(&format!("{API}/blog/{draft_id}"))
        .json(
            json!({"slug": "Enfin Prêt !", "contenu": "<p>Nouveau <em>texte</em></p>",
                     "image": null, "avantages": ["Un"]}),
        )
        .expect(StatusCode::OK)
        .await;
    assert_eq!(moved["slug"], "enfin-pret");
    assert_eq!(moved["resume"], "Nouveau texte");
    assert_eq!(moved["image"], Value::Null);
    assert_eq!(moved["avantages"], json!(["Un"]));
    assert_eq!(moved["titre"], "Enfin prêt");
    blog.hidden("/blog/brouillon/").await;
    blog.public("/blog/enfin-pret/").await;
    let conflict = admin
        .put(&format!("{API}/blog/{draft_id}"))
        .json(json!({"slug": "bientot"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert_eq!(fields(&conflict), ["slug"]);
    admin
        .put(&format!("{API}/blog/999999"))
        .json(json!({"titre": "Personne"}))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    admin
        .put(&format!("{API}/blog/enfin-pret"))
        .json(json!({"titre": "Par le slug"}))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    // DELETE: gone for readers and writers; a second time is a 404.
    admin
        .delete(&format!("{API}/blog/{draft_id}"))
        .expect(StatusCode::NO_CONTENT)
        .await;
    blog.hidden("/blog/enfin-pret/").await;
    admin
        .get(&format!("{API}/blog-admin/{draft_id}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    admin
        .delete(&format!("{API}/blog/{draft_id}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    assert_eq!(blog.editorial("").await["total"], 2);
    blog.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenu_is_sanitised_and_the_resume_is_its_text() {
    let blog = start().await;
    let hostile = concat!(
        "<h2 onmouseover=\"steal()\">Guide</h2>",
        "<p style=\"position:fixed\">Lisez <a href=\"https://toprix.tn/guide\">le guide</a> ",
        "ou <a href=\"javascript:alert(document.cookie)\">ceci</a> ",
        "ou <a href=\"JaVaScRiPt:alert(1)\">cela</a>.</p>",
        "<ul><li>Un</li><li>Deux</li></ul>",
        "<img src=\"https://toprix.tn/a.jpg\" onerror=\"alert(1)\" alt=\"Photo\">",
        "<img src=\"javascript:alert(2)\">",
        "<script>alert(3)</script>",
        "<style>body{display:none}</style>",
        "<iframe src=\"https://evil.example/\"></iframe>",
        "<svg><script>alert(4)</script></svg>",
        "<table><thead><tr><th>Modèle</th></tr></thead><tbody><tr><td>S24</td></tr></tbody></table>",
        "<p><em>Fin</em> &amp; <strong>merci</strong></p>",
    );
    let written = blog
        .write(json!({"titre": "Guide d'achat", "contenu": hostile}))
        .await;
    let public = blog.public("/blog/guide-d-achat/").await;
    assert_eq!(public["contenu"], written["contenu"]);
    let contenu = public["contenu"].as_str().expect("contenu");
    for kept in [
        "<h2>Guide</h2>",
        "<p>Lisez <a href=\"https://toprix.tn/guide\" rel=\"noopener noreferrer\">le guide</a>",
        "<ul><li>Un</li><li>Deux</li></ul>",
        "<img src=\"https://toprix.tn/a.jpg\" alt=\"Photo\">",
        "<th>Modèle</th>",
        "<td>S24</td>",
        "<em>Fin</em> &amp; <strong>merci</strong>",
    ] {
        assert!(contenu.contains(kept), "{kept} kept in {contenu}");
    }
    let lowered = contenu.to_lowercase();
    for gone in [
        "<script",
        "alert",
        "javascript",
        "onmouseover",
        "onerror",
        "style",
        "<iframe",
        "evil.example",
        "<svg",
        "steal",
    ] {
        assert!(!lowered.contains(gone), "{gone} left in {contenu}");
    }
    assert_eq!(
        public["resume"],
        "Guide Lisez le guide ou ceci ou cela. Un Deux Modèle S24 Fin & merci"
    );

    // 300 characters, not bytes, of the text: no tag, no entity, one
    // space between words.
    let words = "Écran très lumineux, autonomie énorme, qualité d'image époustouflante. ";
    let long = format!(
        "<h2>Été&nbsp;2026</h2><p>{}</p><ul><li>{}</li></ul>",
        words.repeat(4),
        words.repeat(4)
    );
    let written = blog
        .write(json!({"titre": "Résumé", "contenu": long}))
        .await;
    let resume = written["resume"].as_str().expect("resume");
    let text = format!("Été 2026 {}", words.repeat(8));
    let expected: String = text.chars().take(300).collect();
    assert_eq!(resume.chars().count(), 300, "{resume}");
    assert_eq!(resume, expected.trim_end());
    assert!(
        resume.len() > 300,
        "accents take more bytes than characters"
    );
    assert!(!resume.contains('<') && !resume.contains("&nbsp;"));
    assert_eq!(blog.public("/blog/").await["data"][0]["resume"], resume);

    // PUT sanitises too.
    let id = written["id"].as_str().expect("id");
    let changed = blog
        .server
        .as_(&blog.admin)
        .put(&format!("{API}/blog/{id}"))
        .json(json!({"contenu": "<p onclick=\"x()\">Propre<script>x()</script></p>"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(changed["contenu"], "<p>Propre</p>");
    assert_eq!(changed["resume"], "Propre");
    blog.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_newest_first_and_bad_input_is_named() {
    let blog = start().await;
    // 14 articles, written oldest last: the order is the date's, not the
    // writing's.
    for day in (1..=14).rev() {
        blog.write(json!({
            "titre": format!("Article {day}"),
            "contenu": format!("<p>Jour {day}</p>"),
            "date_publication": format!("2025-03-{day:02}T08:00:00+01:00"),
        }))
        .await;
    }
    let first = blog.public("/blog/").await;
    assert_eq!(
        first["meta"],
        json!({"page": 1, "total_pages": 2, "total_items": 14, "par_page": 12})
    );
    let expected: Vec<String> = (3..=14).rev().map(|day| format!("article-{day}")).collect();
    assert_eq!(slugs(&first, "data"), expected);
    let second = blog.public("/blog?page=2").await;
    assert_eq!(second["meta"]["page"], 2);
    assert_eq!(slugs(&second, "data"), ["article-2", "article-1"]);
    let beyond = blog.public("/blog/?page=3").await;
    assert_eq!(beyond["data"], json!([]));
    for page in ["0", "101", "abc", "-1", "1.5"] {
        let refused = blog
            .server
            .anonymous()
            .get(&format!("{API}/blog/?page={page}"))
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        assert_eq!(fields(&refused), ["page"], "page={page}");
    }

    // Every bad field named at once.
    let admin = blog.server.as_(&blog.admin);
    let refused = admin
        .post(&format!("{API}/blog"))
        .json(json!({
            "titre": "T".repeat(201),
            "contenu": 42,
            "slug": "—",
            "image": "javascript:alert(1)",
            "date_publication": "15/01/2026",
            "avantages": vec!["bien"; 51],
            "inconvenients": ["ok", "", 3],
            "specifications": {"ram": 12, " ": "vide"},
            "draft": "oui",
            "auteur": "moi",
        }))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let mut named = fields(&refused);
    named.sort();
    assert_eq!(
        named,
        [
            "auteur",
            "avantages",
            "contenu",
            "date_publication",
            "draft",
            "image",
            "inconvenients[1]",
            "inconvenients[2]",
            "slug",
            "specifications. ",
            "specifications.ram",
            "titre",
        ]
    );
    let missing = admin
        .post(&format!("{API}/blog"))
        .json(json!({}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(fields(&missing), ["titre", "contenu"]);
    let no_slug = admin
        .post(&format!("{API}/blog"))
        .json(json!({"titre": "★ ★ ★", "contenu": "<p>x</p>"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(fields(&no_slug), ["slug"]);
    let too_many = admin
        .post(&format!("{API}/blog"))
        .json(json!({
            "titre": "Fiche",
            "contenu": "<p>x</p>",
            "specifications": (0..101).map(|n| (format!("s{n}"), json!("v"))).collect::<serde_json::Map<_, _>>(),
        }))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(fields(&too_many), ["specifications"]);
    admin
        .post(&format!("{API}/blog"))
        .json(json!(["not", "an", "object"]))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let article = blog.public("/blog/article-1/").await;
    let refused = admin
        .put(&format!(
            "{API}/blog/{}",
            article["id"].as_str().expect("id")
        ))
        .json(json!({"titre": null, "date_publication": "demain"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(fields(&refused), ["titre", "date_publication"]);

    // The largest valid article (200 KB of content, every list full, all
    // of it accented) fits the route's body limit even escaped as \uXXXX,
    // as Python's json.dumps sends it: past the server's 1 MiB default.
    let content = format!("<p>{}</p>", "é".repeat(100 * 1024 - 4));
    assert_eq!(content.len(), 200 * 1024 - 1);
    let points = vec!["é".repeat(500); 50];
    let specifications: serde_json::Map<String, Value> = (0..100)
        .map(|n| (format!("{n:03}{}", "é".repeat(97)), json!("é".repeat(500))))
        .collect();
    let largest = json!({"titre": "é".repeat(200), "slug": "le-plus-long", "contenu": content,
                         "avantages": points, "inconvenients": points,
                         "specifications": specifications})
    .to_string()
    .replace('é', "\\u00e9");
    assert!(largest.len() > 1024 * 1024, "{} bytes", largest.len());
    let written = admin
        .post(&format!("{API}/blog"))
        .header("content-type", "application/json")
        .with(|builder| builder.body(largest))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(written["resume"], "é".repeat(300));
    assert_eq!(
        written["specifications"].as_object().map(|s| s.len()),
        Some(100)
    );
    let refused = admin
        .post(&format!("{API}/blog"))
        .json(
            json!({"titre": "Trop long", "contenu": format!("<p>{}</p>", "a".repeat(200 * 1024))}),
        )
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(fields(&refused), ["contenu"]);
    admin
        .post(&format!("{API}/blog"))
        .json(json!({"titre": "Énorme", "contenu": "a".repeat(3 * 1024 * 1024)}))
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "VALIDATION_ERROR")
        .await;
    blog.0.stop().await;
}
