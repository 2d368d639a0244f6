//! `multipart/form-data` request bodies (RFC 7578), parsed from the bytes
//! the host hands a plugin: file uploads and the text fields sent with them.
//!
//! The host reads the whole body (bounded by the route's body limit) before
//! calling the plugin, so a parser over a byte slice is all a plugin needs;
//! the async, streaming parsers would drag a runtime into the SDK. This one
//! is strict where sloppiness would hide a broken client (missing boundary,
//! a part without `Content-Disposition` or `name`, no closing delimiter) and
//! lenient where RFC 2046 allows it (preamble, epilogue, whitespace after a
//! delimiter, quoted or bare parameters).
//!
//! Errors are [`Response`]s: 400 `VALIDATION_ERROR` for a body that is not
//! well-formed multipart, 422 naming the field for a missing or wrong part.
//!
//! ```
//! use xcore_plugin_api::{multipart::Form, Request};
//!
//! let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"supplier_id\"\r\n\r\n42\r\n\
//! --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
//! Content-Type: text/csv\r\n\r\nref;nom\r\n--XyZ--\r\n";
//! let mut request = Request::default();
//! request.head.headers.insert("content-type".into(), "multipart/form-data; boundary=XyZ".into());
//! request.body = body.to_vec();
//!
//! let form = Form::from_request(&request).unwrap();
//! assert_eq!(form.text("supplier_id"), Some("42"));
//! let file = form.file("file").unwrap();
//! assert_eq!(file.filename.as_deref(), Some("a.csv"));
//! assert_eq!(file.bytes, b"ref;nom");
//! ```

use crate::http::{Request, Response};

/// Parts accepted in one body: a form is a handful of fields, so more than
/// this is a broken or hostile client, not a bigger upload.
pub const MAX_PARTS: usize = 64;

/// Bytes of headers accepted per part.
const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// One part of the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`Content-Disposition: form-data; name=...`).
    pub name: String,
    /// The file name, for file parts (`filename=...`), as the client sent it.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if given (RFC 7578 defaults it to
    /// `text/plain`, or `application/octet-stream` for files).
    pub content_type: Option<String>,
    /// The content, exactly as sent.
    pub bytes: Vec<u8>,
}

impl Part {
    /// Whether the client sent this part as a file.
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }
}

/// A parsed form: its parts in the order they came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// Every part, in order.
    pub parts: Vec<Part>,
}

fn malformed(message: &str) -> Response {
    Response::error(
        400,
        "VALIDATION_ERROR",
        &format!("malformed multipart/form-data body: {message}"),
    )
}

impl Form {
    /// Parses the request's body with the boundary of its `Content-Type`.
    /// A request that is not `multipart/form-data` gets a 400 that says so.
    pub fn from_request(request: &Request) -> Result<Self, Response> {
        let content_type = request
            .head
            .headers
            .get("content-type")
            .map(String::as_str)
            .unwrap_or_default();
        let boundary = boundary(content_type)?;
        Self::parse(&request.body, &boundary)
    }

    /// Parses `body` with `boundary` (without the leading `--`).
    pub fn parse(body: &[u8], boundary: &str) -> Result<Self, Response> {
        let delimiter = format!("--{boundary}").into_bytes();
        // The first delimiter may open the body; later ones follow a CRLF
        // that belongs to the delimiter, not to the preceding part.
        let mut position = if body.starts_with(&delimiter) {
            delimiter.len()
        } else {
            let mut with_crlf = b"\r\n".to_vec();
            with_crlf.extend_from_slice(&delimiter);
            find(body, &with_crlf, 0)
                .map(|at| at + with_crlf.len())
                .ok_or_else(|| malformed("the boundary never occurs in the body"))?
        };
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let mut parts = Vec::new();
        loop {
            let rest = &body[position..];
            if rest.starts_with(b"--") {
                // The close delimiter; anything after it is epilogue.
                return Ok(Self { parts });
            }
            // Transport padding (RFC 2046 allows spaces and tabs) then CRLF.
            let padding = rest
                .iter()
                .take_while(|byte| **byte == b' ' || **byte == b'\t')
                .count();
            if !rest[padding..].starts_with(b"\r\n") {
                return Err(malformed("a boundary line must end with CRLF"));
            }
            let start = position + padding + 2;
            let end = find_delimiter(body, &next_delimiter, start)
                .ok_or_else(|| malformed("the closing boundary is missing"))?;
            if parts.len() == MAX_PARTS {
                return Err(malformed(&format!("more than {MAX_PARTS} parts")));
            }
            parts.push(part(&body[start..end])?);
            position = end + next_delimiter.len();
        }
    }

    /// The first part named `name`.
    pub fn get(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|part| part.name == name)
    }

    /// The first part named `name` as UTF-8 text, if it is a text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .filter(|part| !part.is_file())
            .and_then(|part| std::str::from_utf8(&part.bytes).ok())
    }

    /// The first file part named `name`.
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.get(name).filter(|part| part.is_file())
    }

    /// A required text field, or a 422 naming it.
    pub fn required_text(&self, name: &str) -> Result<&str, Response> {
        match self.get(name) {
            None => Err(Response::invalid(name, "required")),
            Some(part) if part.is_file() => {
                Err(Response::invalid(name, "must be a text field, not a file"))
            }
            Some(part) => std::str::from_utf8(&part.bytes)
                .map_err(|_| Response::invalid(name, "must be UTF-8 text")),
        }
    }

    /// A required file part, or a 422 naming it.
    pub fn required_file(&self, name: &str) -> Result<&Part, Response> {
        match self.get(name) {
            None => Err(Response::invalid(name, "required (a file part)")),
            Some(part) if !part.is_file() => Err(Response::invalid(
                name,
                "must be a file part (with a filename)",
            )),
            Some(part) => Ok(part),
        }
    }
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, Response> {
    let mut pieces = content_type.split(';');
    let media_type = pieces.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Response::error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "expected a multipart/form-data body, got {}",
                if media_type.is_empty() {
                    "no Content-Type"
                } else {
                    media_type
                }
            ),
        ));
    }
    let boundary = parameters(pieces)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or_else(|| malformed("the Content-Type has no boundary parameter"))?;
    if boundary.is_empty()
        || boundary.len() > MAX_BOUNDARY_LEN
        || boundary.ends_with(' ')
        || boundary.contains(['\r', '\n'])
    {
        return Err(malformed("the boundary must be 1 to 70 characters"));
    }
    Ok(boundary)
}

/// `name=value` parameters after a header's main value; values may be
/// quoted (with `\` escapes) or bare tokens.
fn parameters<'a>(pieces: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    // Re-join and scan by hand: a quoted value may itself contain `;`.
    let text: String = pieces.collect::<Vec<_>>().join(";");
    let mut found = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ';') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() && chars.peek().is_none() {
            return found;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => break,
                        other => value.push(other),
                    }
                }
                // Skip anything up to the next parameter.
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        found.push((name.trim().to_ascii_lowercase(), value));
    }
}

/// One part: headers, an empty line, the content.
fn part(raw: &[u8]) -> Result<Part, Response> {
    let (headers, bytes) = match find(raw, b"\r\n\r\n", 0) {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        // A part with no headers at all starts with the empty line.
        None if raw.starts_with(b"\r\n") => (&raw[..0], &raw[2..]),
        None => return Err(malformed("a part has no empty line after its headers")),
    };
    if headers.len() > MAX_PART_HEADER_BYTES {
        return Err(malformed("a part's headers are too long"));
    }
    let headers =
        std::str::from_utf8(headers).map_err(|_| malformed("a part's headers are not UTF-8"))?;
    let (mut disposition, mut content_type) = (None, None);
    for line in headers.split("\r\n").filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(&format!("bad part header line {line:?}")))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => disposition = Some(value.trim().to_string()),
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let disposition =
        disposition.ok_or_else(|| malformed("a part has no Content-Disposition header"))?;
    let mut pieces = disposition.split(';');
    if !pieces
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case("form-data")
    {
        return Err(malformed("a part's Content-Disposition is not form-data"));
    }
    let parameters = parameters(pieces);
    let parameter = |wanted: &str| {
        parameters
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.clone())
    };
    let name = parameter("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| malformed("a part has no name"))?;
    Ok(Part {
        name,
        filename: parameter("filename"),
        content_type,
        bytes: bytes.to_vec(),
    })
}

/// The next real delimiter at or after `from`: `CRLF--boundary` followed
/// by `--` (the close delimiter) or by optional padding and CRLF. Content
/// that merely starts like one (`--boundaryX`) is content.
fn find_delimiter(body: &[u8], delimiter: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = find(body, delimiter, from)?;
        let rest = &body[at + delimiter.len()..];
        let padding = rest
            .iter()
            .take_while(|byte| **byte == b' ' || **byte == b'\t')
            .count();
        if rest.starts_with(b"--") || rest[padding..].starts_with(b"\r\n") {
            return Some(at);
        }
        from = at + 1;
    }
}

/// The first occurrence of `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    while at + needle.len() <= haystack.len() {
        // Jump to the next candidate first byte; the full compare is rare.
        let offset = haystack[at..=haystack.len() - needle.len()]
            .iter()
            .position(|byte| *byte == first)?;
        at += offset;
        if haystack[at..at + needle.len()] == *needle {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, body: &[u8]) -> Request {
        let mut request = Request::default();
        request
            .head
            .headers
            .insert("content-type".into(), content_type.into());
        request.body = body.to_vec();
        request
    }

    fn status(result: Result<Form, Response>) -> u16 {
        match result {
            Ok(form) => panic!("expected an error, parsed {form:?}"),
            Err(response) => response.status,
        }
    }

    #[test]
    fn fields_and_files_with_binary_content_and_a_preamble() {
        let mut body = b"preamble to ignore\r\n--b0undary\r\n\
Content-Disposition: form-data; name=\"supplier_id\"\r\n\r\n7\r\n\
--b0undary  \r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"caf\xc3\xa9; \\\"v2\\\".csv\"\r\n\
Content-Type: text/csv\r\n\r\n"
            .to_vec();
        // Latin-1 bytes and a CRLF inside the content stay as sent.
        body.extend_from_slice(b"ref;nom\r\nA1;Caf\xe9\r\n");
        body.extend_from_slice(b"\r\n--b0undary--\r\nepilogue");
        let form = Form::from_request(&request(
            "multipart/form-data; charset=utf-8; boundary=\"b0undary\"",
            &body,
        ))
        .expect("parses");
        assert_eq!(form.parts.len(), 2);
        assert_eq!(form.text("supplier_id"), Some("7"));
        assert_eq!(form.text("file"), None, "a file is not a text field");
        let file = form.required_file("file").expect("file");
        assert_eq!(file.filename.as_deref(), Some("café; \"v2\".csv"));
        assert_eq!(file.content_type.as_deref(), Some("text/csv"));
        assert_eq!(file.bytes, b"ref;nom\r\nA1;Caf\xe9\r\n");
        assert!(form.required_file("supplier_id").is_err());
        assert_eq!(
            form.required_text("missing").map_err(|r| r.status),
            Err(422)
        );
    }

    #[test]
    fn empty_content_and_an_empty_form() {
        let body = b"--x\r\nContent-Disposition: form-data; name=empty\r\n\r\n\r\n--x--";
        let form = Form::parse(body, "x").expect("parses");
        assert_eq!(form.text("empty"), Some(""));
        assert_eq!(Form::parse(b"--x--\r\n", "x").expect("empty").parts, []);
    }

    #[test]
    fn a_boundary_lookalike_inside_content_is_content() {
        let body = b"--abc\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n--abcd\r\nx--ab\r\n--abc--";
        let form = Form::parse(body, "abc").expect("parses");
        assert_eq!(form.file("f").expect("f").bytes, b"--abcd\r\nx--ab");
    }

    #[test]
    fn malformed_bodies_are_400() {
        let part = "Content-Disposition: form-data; name=\"a\"\r\n\r\n1";
        for (content_type, body) in [
            ("application/json", "{}".to_string()),
            ("", String::new()),
            ("multipart/form-data", format!("--x\r\n{part}\r\n--x--")),
            ("multipart/form-data; boundary=", String::new()),
            (
                "multipart/form-data; boundary=x",
                format!("--y\r\n{part}\r\n--y--"),
            ),
            // No closing delimiter: a truncated upload.
            ("multipart/form-data; boundary=x", format!("--x\r\n{part}")),
            (
                "multipart/form-data; boundary=x",
                "--x\r\nContent-Type: text/plain\r\n\r\n1\r\n--x--".to_string(),
            ),
            (
                "multipart/form-data; boundary=x",
                "--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--".to_string(),
            ),
            (
                "multipart/form-data; boundary=x",
                "--x\r\nContent-Disposition: attachment; name=a\r\n\r\n1\r\n--x--".to_string(),
            ),
            (
                "multipart/form-data; boundary=x",
                "--x\r\nContent-Disposition: form-data; name=a\r\n1\r\n--x--".to_string(),
            ),
            (
                "multipart/form-data; boundary=x",
                format!("--xjunk{part}\r\n--x--"),
            ),
        ] {
            assert_eq!(
                status(Form::from_request(&request(content_type, body.as_bytes()))),
                400,
                "{content_type:?} {body:?}"
            );
        }
    }

    #[test]
    fn too_many_parts_are_refused() {
        let mut body = String::new();
        for i in 0..=MAX_PARTS {
            body.push_str(&format!(
                "--x\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"
            ));
        }
        body.push_str("--x--");
        assert_eq!(status(Form::parse(body.as_bytes(), "x")), 400);
    }

    #[test]
    fn boundary_parameters_are_read_quoted_or_bare() {
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=abc").ok().as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("multipart/form-data; Boundary=\"a;b c\"; x=y")
                .ok()
                .as_deref(),
            Some("a;b c")
        );
        assert!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))).is_err());
    }
}
