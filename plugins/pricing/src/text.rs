//! Text as the public API and search see it: accent folding, the French
//! slugs of the Toprix seed, search words, reference detection and the
//! edit distance that makes search typo-tolerant.

use unicode_normalization::UnicodeNormalization;

/// Lower case without diacritics: "Téléphonie" -> "telephonie",
/// "Œuf" -> "oeuf".
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.nfkd() {
        match c {
            'œ' | 'Œ' => folded.push_str("oe"),
            'æ' | 'Æ' => folded.push_str("ae"),
            'ß' => folded.push_str("ss"),
            c if unicode_normalization::char::is_combining_mark(c) => {}
            c => folded.extend(c.to_lowercase()),
        }
    }
    folded
}

/// The seed's `slugify_fr`: folded, runs of anything but letters and
/// digits become one `-`. "Smartphone & Mobile" -> `smartphone-mobile`.
pub fn slugify(text: &str) -> String {
    words(text).join("-")
}

/// The folded words of a text (runs of letters and digits), the way the
/// full-text indexes of both databases cut it.
pub fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a search looks like a product reference: one token, with a
/// digit or a dash (`SM-S921B`, `12000BTU`).
pub fn is_reference(query: &str) -> bool {
    let query = query.trim();
    !query.is_empty()
        && !query.contains(char::is_whitespace)
        && query.chars().any(|c| c.is_ascii_digit() || c == '-')
}

/// A reference as it is compared: trimmed, upper case.
pub fn reference_key(reference: &str) -> String {
    reference.trim().to_uppercase()
}

/// The edit distance allowed for a word of this length: none for short
/// words (every change makes another word), one up to 5 letters, two above.
pub fn allowed_typos(word: &str) -> usize {
    match word.chars().count() {
        0..=3 => 0,
        4..=5 => 1,
        _ => 2,
    }
}

/// Optimal string alignment distance (Levenshtein plus swapped neighbours,
/// the commonest typo), capped: anything above `max` is `max + 1`.
pub fn distance(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let width = b.len() + 1;
    let mut rows = vec![vec![0usize; width]; a.len() + 1];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()].min(max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_the_seeds() {
        assert_eq!(slugify("Smartphone & Mobile"), "smartphone-mobile");
        assert_eq!(slugify("Téléphonie"), "telephonie");
        assert_eq!(slugify("  Électroménager / Froid "), "electromenager-froid");
        assert_eq!(slugify("Cœur d'Été"), "coeur-d-ete");
        assert_eq!(fold("ÇA"), "ca");
    }

    #[test]
    fn references_and_typos() {
        assert!(is_reference("SM-S921B"));
        assert!(is_reference("12000BTU"));
        assert!(!is_reference("samsung galaxy"));
        assert!(!is_reference("laptop"));
        assert_eq!(distance("samsnug", "samsung", 2), 1);
        assert_eq!(distance("galxy", "galaxy", 2), 1);
        assert_eq!(distance("iphone", "huawei", 2), 3);
        assert_eq!(allowed_typos("tv"), 0);
    }
}
