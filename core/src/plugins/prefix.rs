//! Plugin identifiers and URL prefixes: their syntax, and the rule that a
//! plugin never shadows the host's own routes or another plugin's prefix.

/// Top-level paths the host serves itself; no plugin prefix may sit on or
/// under one of them.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/auth",
    "/admin",
    "/system",
    "/health",
    "/metrics",
    "/ws",
    "/static",
    "/core-docs",
    "/openapi.json",
    "/console",
];

/// Longest prefix accepted.
const MAX_PREFIX_LEN: usize = 128;

/// A plugin id: 1 to 64 of `a-z`, `0-9`, `_`, starting with a letter (it
/// names files, tables and permission resources, so it stays conservative).
pub fn check_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin id {id:?}: use 1-64 lower-case letters, digits and _, starting with a letter"
        ))
    }
}

/// A prefix: absolute, segments of `a-z0-9_-.`, no trailing slash, not the
/// root, not on or under a reserved host path.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let shape_ok = prefix.len() <= MAX_PREFIX_LEN
        && prefix.starts_with('/')
        && prefix.len() > 1
        && !prefix.ends_with('/')
        && prefix[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
                })
        });
    if !shape_ok {
        return Err(format!(
            "invalid api_prefix {prefix:?}: use an absolute path like /api/v1/name \
             (lower-case segments, no trailing slash)"
        ));
    }
    if let Some(reserved) = RESERVED_PREFIXES
        .iter()
        .find(|reserved| is_within(prefix, reserved))
    {
        return Err(format!(
            "api_prefix {prefix:?} is on the host's own route {reserved}"
        ));
    }
    Ok(())
}

/// Whether `path` equals `prefix` or lies under it (segment-wise: `/apix` is
/// not under `/api`).
pub fn is_within(path: &str, prefix: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("products").is_ok());
        assert!(check_id("erp_crm2").is_ok());
        for bad in ["", "Products", "2fa", "with-dash", "a/b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("/api/v1/products").is_ok());
        assert!(check_prefix("/erp/crm").is_ok());
        for bad in [
            "",
            "/",
            "api/v1",
            "/api/v1/",
            "/api//x",
            "/api/../x",
            "/API",
            "/a b",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
        for reserved in [
            "/auth",
            "/admin/plugins",
            "/health",
            "/static/x",
            "/openapi.json",
            "/core-docs",
            "/console/x",
        ] {
            assert!(check_prefix(reserved)
                .expect_err("reserved")
                .contains("host's own route"));
        }
        assert!(
            check_prefix("/authors").is_ok(),
            "segment-wise, not string-wise"
        );
    }

    #[test]
    fn within_is_segment_wise() {
        assert!(is_within("/api/v1/products/12", "/api/v1/products"));
        assert!(is_within("/api/v1/products", "/api/v1/products"));
        assert!(!is_within("/api/v1/productsx", "/api/v1/products"));
    }
}
