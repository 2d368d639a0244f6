//! The blog's HTML: `contenu` cleaned on write with ammonia's allow list,
//! and the text the `resume` is cut from.

use std::sync::LazyLock;

use super::RESUME_CHARS;

/// The sanitiser: ammonia's allow list of article markup (headings,
/// paragraphs, lists, links, images, tables, emphasis, quotes, code),
/// without `style` or any `on*` attribute; links and images only to
/// http(s), `mailto:` and `tel:` (or relative); the content of scripts,
/// styles, frames and objects dropped with them, not left as text.
static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::default();
    builder
        .add_tags(["tfoot"])
        .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
        .add_clean_content_tags(["iframe", "noscript", "object", "template"]);
    builder
});

/// `contenu` as stored: article markup only.
pub(super) fn sanitise(html: &str) -> String {
    SANITISER.clean(html).to_string()
}

/// Tags that run inside a line of text: a word may start in one and end
/// outside (`<strong>É</strong>té`), so they separate nothing. Every other
/// tag (a paragraph, a heading, a list item, a cell, a line break, an
/// image) separates what is on either side.
const INLINE_TAGS: [&str; 26] = [
    "a", "abbr", "acronym", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "i",
    "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "u",
];

/// The text of sanitised HTML (tags removed, entities decoded, whitespace
/// collapsed). It reads [`sanitise`]'s output only, which html5ever
/// serialised: `<` in text is always `&lt;`, every attribute value is in
/// double quotes (a `"` inside is `&quot;`), comments are gone, and text
/// holds no entity but `&amp;`, `&lt;`, `&gt;` and `&nbsp;`.
pub(super) fn text_of(sanitised: &str) -> String {
    let mut text = String::with_capacity(sanitised.len());
    let mut rest = sanitised;
    while let Some(start) = rest.find('<') {
        push_decoded(&mut text, &rest[..start]);
        let tag = &rest[start + 1..];
        let mut quoted = false;
        let end = tag
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == '>' && !quoted
            })
            .map_or(tag.len(), |(end, _)| end);
        let name = tag[..end]
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if !INLINE_TAGS.contains(&name) {
            text.push(' ');
        }
        rest = tag.get(end + 1..).unwrap_or_default();
    }
    push_decoded(&mut text, rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Appends `html` text with the serialiser's four entities decoded.
pub(super) fn push_decoded(text: &mut String, html: &str) {
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&nbsp;", ' '),
        ]
        .into_iter()
        .find(|(entity, _)| rest.starts_with(entity));
        match entity {
            Some((entity, decoded)) => {
                text.push(decoded);
                rest = &rest[entity.len()..];
            }
            None => {
                text.push('&');
                rest = &rest[1..];
            }
        }
    }
    text.push_str(rest);
}

/// `resume`: the first 300 characters (not bytes) of the text, without a
/// space left at the cut.
pub(super) fn resume_of(sanitised: &str) -> String {
    let text: String = text_of(sanitised).chars().take(RESUME_CHARS).collect();
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_keeps_article_markup_and_drops_what_runs() {
        let clean = sanitise(
            "<h2 onclick=\"x()\">Titre</h2><p style=\"color:red\">Un <strong>bon</strong> \
             <a href=\"https://toprix.tn/\">lien</a> <a href=\"javascript:alert(1)\">piège</a></p>\
             <ul><li>un</li></ul><img src=\"https://toprix.tn/i.jpg\" onerror=\"alert(1)\">\
             <script>alert(1)</script><style>p{}</style><iframe src=\"https://evil.example\">x</iframe>\
             <table><tr><td>1</td></tr></table>",
        );
        for kept in [
            "<h2>Titre</h2>",
            "<strong>bon</strong>",
            "<a href=\"https://toprix.tn/\" rel=\"noopener noreferrer\">lien</a>",
            "<ul><li>un</li></ul>",
            "<img src=\"https://toprix.tn/i.jpg\">",
            "<td>1</td>",
        ] {
            assert!(clean.contains(kept), "{kept} in {clean}");
        }
        for gone in [
            "script",
            "alert",
            "style",
            "onclick",
            "onerror",
            "iframe",
            "evil",
            "javascript",
        ] {
            assert!(!clean.contains(gone), "{gone} in {clean}");
        }
    }

    #[test]
    fn text_decodes_entities_separates_blocks_and_keeps_inline_words() {
        let html = sanitise(
            "<h2>Intro</h2><p>Prix &amp; qualit&eacute; &lt;3&nbsp;!</p><p><b>É</b>té \
             <img alt=\"a > b\" src=\"https://x.tn/i.png\">fin</p>",
        );
        assert_eq!(text_of(&html), "Intro Prix & qualité <3 ! Été fin");
    }

    #[test]
    fn the_resume_counts_characters_not_bytes() {
        let html = sanitise(&format!("<p>{}</p>", "Crèmes ".repeat(100)));
        let resume = resume_of(&html);
        assert_eq!(resume.chars().count(), RESUME_CHARS);
        assert!(resume.len() > RESUME_CHARS);
        assert!(resume.ends_with("Crèmes"));
    }
}
