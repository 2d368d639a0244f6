//! The statement as the guard reads it: tokens (string literals and
//! comments skipped, quoted identifiers kept), statements split at `;`,
//! and the few structural facts the checks need (CTE names, which tokens
//! sit in a query, an index name before `ON`).

use super::SKIPPED_BEFORE_NAME;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    /// A bare word, lower-cased: keyword or identifier.
    Word(String),
    /// A quoted identifier, as written between the quotes.
    Quoted(String),
    /// A number literal, or a `$n`/`?` parameter.
    Literal,
    /// A string literal's text (an FTS5 `content='...'` option names a
    /// table in one).
    Text(String),
    /// Any other character (`(`, `)`, `,`, `.`, `;`, operators).
    Punct(char),
}

impl Token {
    pub(super) fn is_word(&self, word: &str) -> bool {
        matches!(self, Token::Word(w) if w == word)
    }

    /// The identifier this token names, if it can name one.
    pub(super) fn name(&self) -> Option<&str> {
        match self {
            Token::Word(word) | Token::Quoted(word) => Some(word),
            _ => None,
        }
    }
}

pub(super) fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| format!("unterminated {what} in SQL");
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .ok_or_else(|| unterminated("comment"))?;
                i = end + 2;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(unterminated("string")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token::Text(text));
            }
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut name = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(unterminated("quoted identifier")),
                        Some(&ch) if ch == close && chars.get(i + 1) == Some(&close) => {
                            name.push(ch);
                            i += 2;
                        }
                        Some(&ch) if ch == close => break,
                        Some(&ch) => {
                            name.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token::Quoted(name.to_lowercase()));
            }
            '$' => {
                // `$1` is a parameter; `$tag$ ... $tag$` a PostgreSQL
                // dollar-quoted string.
                let digits = chars[i + 1..]
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                if digits > 0 {
                    i += 1 + digits;
                    tokens.push(Token::Literal);
                    continue;
                }
                let tag_len = chars[i + 1..]
                    .iter()
                    .take_while(|d| d.is_alphanumeric() || **d == '_')
                    .count();
                if chars.get(i + 1 + tag_len) != Some(&'$') {
                    tokens.push(Token::Punct('$'));
                    i += 1;
                    continue;
                }
                let tag: String = chars[i..i + tag_len + 2].iter().collect();
                let body_start = i + tag_len + 2;
                let rest: String = chars[body_start..].iter().collect();
                let end = rest
                    .find(&tag)
                    .ok_or_else(|| unterminated("dollar-quoted string"))?;
                i = body_start + rest[..end].chars().count() + tag.chars().count();
                tokens.push(Token::Literal);
            }
            '?' => {
                i += 1;
                tokens.push(Token::Literal);
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(Token::Word(word.to_lowercase()));
            }
            other => {
                i += 1;
                tokens.push(Token::Punct(other));
            }
        }
    }
    Ok(tokens)
}

/// The position of the first token from `at` that is not one of
/// [`SKIPPED_BEFORE_NAME`].
pub(super) fn skip_words(tokens: &[Token], mut at: usize) -> usize {
    while tokens
        .get(at)
        .is_some_and(|t| SKIPPED_BEFORE_NAME.iter().any(|word| t.is_word(word)))
    {
        at += 1;
    }
    at
}

/// Splits a script into statements at `;`, except inside a trigger's
/// `BEGIN ... END` body, whose own statements end in `;` (a `CASE ... END`
/// inside the body does not close it).
pub(super) fn split_statements(tokens: &[Token]) -> Vec<&[Token]> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut body_depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Word(word) if word == "begin" && body_depth == 0 => {
                let statement = &tokens[start..i];
                let is_trigger = statement.first().is_some_and(|t| t.is_word("create"))
                    && statement.iter().take(4).any(|t| t.is_word("trigger"));
                if is_trigger {
                    body_depth = 1;
                }
            }
            Token::Word(word) if word == "case" && body_depth > 0 => body_depth += 1,
            Token::Word(word) if word == "end" && body_depth > 0 => body_depth -= 1,
            Token::Punct(';') if body_depth == 0 => {
                statements.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    statements.push(&tokens[start..]);
    statements.retain(|statement| !statement.is_empty());
    statements
}

/// `CREATE INDEX name ON table`: is the `ON` at `at` the one after an
/// index name (and not a join condition)?
pub(super) fn index_name_before(tokens: &[Token], at: usize) -> bool {
    tokens[..at]
        .iter()
        .rev()
        .take(6)
        .any(|token| token.is_word("index"))
        && !tokens[..at].iter().any(|token| token.is_word("join"))
}

/// Names a `WITH` clause defines: `name AS (` or `name (cols) AS (` at
/// depth 0.
pub(super) fn cte_names(tokens: &[Token]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth = depth.saturating_sub(1),
            Token::Word(word)
                if depth == 0 && word == "as" && tokens.get(i + 1) == Some(&Token::Punct('(')) =>
            {
                let mut before = i;
                if before > 0 && tokens[before - 1] == Token::Punct(')') {
                    // Skip the column list.
                    let mut inner = 0usize;
                    while before > 0 {
                        before -= 1;
                        match tokens[before] {
                            Token::Punct(')') => inner += 1,
                            Token::Punct('(') => {
                                inner -= 1;
                                if inner == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                if let Some(name) = before.checked_sub(1).and_then(|b| tokens[b].name()) {
                    names.push(name.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

/// For each token, whether it sits in query context (top level or inside
/// a parenthesised subquery) rather than in an expression's parentheses.
pub(super) fn query_context(tokens: &[Token]) -> Vec<bool> {
    let mut stack = vec![true];
    let mut context = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => {
                context.push(*stack.last().unwrap_or(&true));
                let next = tokens.get(i + 1);
                stack.push(next.is_some_and(|n| {
                    n.is_word("select") || n.is_word("with") || n.is_word("values")
                }));
            }
            Token::Punct(')') => {
                if stack.len() > 1 {
                    stack.pop();
                }
                context.push(*stack.last().unwrap_or(&true));
            }
            _ => context.push(*stack.last().unwrap_or(&true)),
        }
    }
    context
}
