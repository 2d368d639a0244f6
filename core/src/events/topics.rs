//! Topic patterns: `plugin.*` (the `plugin` topics at any depth), `*`
//! (everything), `task.*.failed` (`*` in the middle stands for one segment),
//! or an exact topic.

/// Whether `topic` matches `pattern`.
pub fn matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut pattern_segments = pattern.split('.').peekable();
    let mut topic_segments = topic.split('.');
    while let Some(expected) = pattern_segments.next() {
        let is_last = pattern_segments.peek().is_none();
        match topic_segments.next() {
            None => return false,
            // A trailing `*` takes the rest, at least one segment.
            Some(_) if expected == "*" && is_last => return true,
            Some(_) if expected == "*" => {}
            Some(actual) if actual == expected => {}
            Some(_) => return false,
        }
    }
    topic_segments.next().is_none()
}

/// Checks a pattern clients may subscribe with: dotted segments of
/// `a-z0-9_-`, each possibly `*`.
pub fn is_valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 128
        && pattern.split('.').all(|segment| {
            segment == "*"
                || (!segment.is_empty()
                    && segment.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
                    }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", "anything.at.all"));
        assert!(matches("plugin.*", "plugin.loaded"));
        assert!(matches("plugin.*", "plugin.import.progress"));
        assert!(!matches("plugin.*", "plugin"));
        assert!(!matches("plugin.*", "plugins.loaded"));
        assert!(matches("task.*.failed", "task.cleanup.failed"));
        assert!(!matches("task.*.failed", "task.cleanup.completed"));
        assert!(matches("user.login", "user.login"));
        assert!(!matches("user.login", "user.login.extra"));
        assert!(!matches("user.login.extra", "user.login"));
    }

    #[test]
    fn patterns_are_validated() {
        for good in ["*", "plugin.*", "products.created", "task.*.failed"] {
            assert!(is_valid_pattern(good), "{good}");
        }
        for bad in ["", "plugin.", ".x", "Plugin.*", "a b", "plugin.**"] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }
}
