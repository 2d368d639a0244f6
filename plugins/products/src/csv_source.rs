//! Supplier CSV files: a supplier's import configuration (delimiter,
//! encoding, column mapping), decoding a file to UTF-8 text, and reading
//! its rows as product field objects for [`crate::fields::validate_new`].
//!
//! Files are decoded once, at upload: a file that cannot be decoded is
//! refused while the client is still there to hear it, and the stored text
//! is what every later run (or a resumed one) reads. Parsing is the `csv`
//! crate's (quotes, doubled quotes, delimiters and newlines inside quoted
//! cells, CRLF or LF); this module decides what a row means.
//!
//! Row rules, chosen where the seed is silent:
//! - the first record is the header; names match the mapping trimmed and
//!   case-insensitively (supplier tools vary in both);
//! - with a mapping, only mapped columns are read; without one, columns
//!   named like product fields are read as those fields;
//! - an empty cell is an absent field (optional fields stay unset,
//!   required ones fail validation);
//! - `images` is a `|`-separated list of URLs; `attributes` a JSON object;
//! - a row with more or fewer cells than the header is malformed.

use std::collections::BTreeMap;

use csv::{ReaderBuilder, StringRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xcore_plugin_sdk::prelude::{utoipa, ToSchema};

use crate::fields;

/// Product fields a column may be mapped to: every writable field but
/// `supplier_id`, which an import sets to its own supplier.
pub fn is_mappable(field: &str) -> bool {
    field != "supplier_id" && fields::FIELDS.contains(&field)
}

/// The fields a column may be mapped to, for messages and docs.
pub fn mappable() -> Vec<&'static str> {
    fields::FIELDS
        .into_iter()
        .filter(|field| is_mappable(field))
        .collect()
}

/// Fields every row needs ([`fields::validate_new`] requires them), so a
/// mapping without them is refused when the supplier is saved rather than
/// failing every row of every import.
pub const REQUIRED_FIELDS: &[&str] = &["sku", "name", "price"];

/// Delimiters a supplier may use: `;` (common in French spreadsheets,
/// where `,` is the decimal separator), `,`, tab and `|`.
pub const DELIMITERS: &[&str] = &[";", ",", "\t", "|"];

/// A file's character encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Encoding {
    /// UTF-8 (a leading byte-order mark is dropped).
    #[serde(rename = "utf-8")]
    Utf8,
    /// Latin-1 as files labelled so really are: windows-1252 (the WHATWG
    /// reading of the label), which adds `€`, `œ` and typographic quotes in
    /// the 0x80-0x9F range where ISO-8859-1 has unused control codes.
    #[serde(rename = "latin-1")]
    Latin1,
}

impl Encoding {
    /// Reads a label: `utf-8`/`utf8`, or `latin-1`/`latin1`/`iso-8859-1`/
    /// `windows-1252`/`cp1252`, in any case.
    pub fn from_label(label: &str) -> Option<Self> {
        match label.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "windows-1252" | "cp1252" => {
                Some(Self::Latin1)
            }
            _ => None,
        }
    }
}

/// How a supplier's files are read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportConfig {
    /// One of `;`, `,`, tab and `|`.
    #[schema(default = ",")]
    pub delimiter: String,
    /// The files' encoding.
    pub encoding: Encoding,
    /// File column name to product field (sku, name, description, price,
    /// stock, category_id, status, images, attributes); sku and name must
    /// be mapped, each field at most once. Empty: columns named like the
    /// fields are read.
    pub mapping: BTreeMap<String, String>,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            delimiter: ",".into(),
            encoding: Encoding::Utf8,
            mapping: BTreeMap::new(),
        }
    }
}

/// One problem with a configuration: `(field path, message)`.
pub type ConfigProblem = (String, String);

impl ImportConfig {
    /// Validates a JSON configuration (missing keys take the defaults);
    /// every problem is reported, each under `import_config.<key>`.
    pub fn from_json(value: &Value) -> Result<Self, Vec<ConfigProblem>> {
        let mut config = Self::default();
        let mut problems = Vec::new();
        let problem = |problems: &mut Vec<ConfigProblem>, key: &str, message: String| {
            problems.push((format!("import_config.{key}"), message));
        };
        let object = match value {
            Value::Null => return Ok(config),
            Value::Object(object) => object,
            _ => return Err(vec![("import_config".into(), "must be an object".into())]),
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "delimiter" | "encoding" | "mapping") {
                problem(
                    &mut problems,
                    key,
                    "unknown key (expected delimiter, encoding, mapping)".into(),
                );
            }
        }
        match object.get("delimiter") {
            None | Some(Value::Null) => {}
            Some(Value::String(delimiter)) if DELIMITERS.contains(&delimiter.as_str()) => {
                config.delimiter = delimiter.clone();
            }
            Some(_) => problem(
                &mut problems,
                "delimiter",
                "must be one of \";\", \",\", \"\\t\", \"|\"".into(),
            ),
        }
        match object.get("encoding") {
            None | Some(Value::Null) => {}
            Some(Value::String(label)) => match Encoding::from_label(label) {
                Some(encoding) => config.encoding = encoding,
                None => problem(
                    &mut problems,
                    "encoding",
                    "must be \"utf-8\" or \"latin-1\"".into(),
                ),
            },
            Some(_) => problem(
                &mut problems,
                "encoding",
                "must be \"utf-8\" or \"latin-1\"".into(),
            ),
        }
        match object.get("mapping") {
            None | Some(Value::Null) => {}
            Some(Value::Object(mapping)) => {
                let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
                let mut columns: BTreeMap<String, &str> = BTreeMap::new();
                for (column, target) in mapping {
                    let path = format!("mapping.{column}");
                    let Some(target) = target.as_str() else {
                        problem(&mut problems, &path, "must name a product field".into());
                        continue;
                    };
                    if column.trim().is_empty() {
                        problem(&mut problems, "mapping", "a column name is empty".into());
                    } else if let Some(other) = columns.insert(column.trim().to_lowercase(), column)
                    {
                        problem(
                            &mut problems,
                            &path,
                            format!(
                                "the same column as {other:?} (names are matched ignoring case)"
                            ),
                        );
                    }
                    if target == "supplier_id" {
                        problem(
                            &mut problems,
                            &path,
                            "supplier_id is set by the import, not read from the file".into(),
                        );
                    } else if !is_mappable(target) {
                        problem(
                            &mut problems,
                            &path,
                            format!(
                                "unknown product field {target:?}; expected one of {}",
                                mappable().join(", ")
                            ),
                        );
                    } else if let Some(other) = targets.insert(target, column) {
                        problem(
                            &mut problems,
                            &path,
                            format!("{target} is already mapped from column {other:?}"),
                        );
                    }
                    config.mapping.insert(column.clone(), target.to_string());
                }
                if !mapping.is_empty() {
                    for required in REQUIRED_FIELDS {
                        if !targets.contains_key(required) {
                            problem(
                                &mut problems,
                                "mapping",
                                format!("no column is mapped to {required}"),
                            );
                        }
                    }
                }
            }
            Some(_) => problem(
                &mut problems,
                "mapping",
                "must be an object of file column to product field".into(),
            ),
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// As JSON, for storage and responses.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The delimiter as the one byte the reader wants.
    fn delimiter_byte(&self) -> u8 {
        self.delimiter.as_bytes().first().copied().unwrap_or(b',')
    }
}

/// Decodes a file's bytes to text. UTF-8 that is not valid fails with the
/// line of the first bad byte and a hint, rather than being patched with
/// replacement characters that would end up in product names.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, String> {
    match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|error| {
                    let at = error.valid_up_to();
                    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
                    format!(
                        "the file is not valid UTF-8 (line {line}, byte {at}); if the supplier sends Latin-1, set its import_config.encoding to \"latin-1\""
                    )
                })
        }
        Encoding::Latin1 => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            Ok(text.into_owned())
        }
    }
}

/// A row read from the file: where it starts, and its fields or what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line of the file where the record starts.
    pub line: u64,
    /// The product fields, or why the row is malformed.
    pub fields: Result<Map<String, Value>, String>,
}

/// How one file's columns map to fields, worked out from its header.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `(column index, field)` pairs to read.
    columns: Vec<(usize, &'static str)>,
    /// Cells per row, from the header.
    width: usize,
    /// Header columns nobody reads, for the import log.
    pub ignored: Vec<String>,
}

fn reader<'t>(text: &'t str, config: &ImportConfig) -> csv::Reader<&'t [u8]> {
    ReaderBuilder::new()
        .delimiter(config.delimiter_byte())
        // Row widths are checked here, so a bad row is one logged error
        // instead of the reader's stop-everything error.
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes())
}

/// The line a record's first cell is on. The reader's position is where
/// it started reading the record, which is before any blank lines it then
/// skipped; those are counted here so the log names the line a person
/// sees in an editor.
fn first_line(text: &str, position: Option<&csv::Position>) -> u64 {
    let Some(position) = position else {
        return 0;
    };
    let mut line = position.line();
    let bytes = text.as_bytes();
    let mut at = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    while let Some(byte @ (b'\r' | b'\n')) = bytes.get(at) {
        if *byte == b'\n' {
            line += 1;
        }
        at += 1;
    }
    line
}

impl Plan {
    /// Reads the header of `text` and matches it against the mapping.
    pub fn new(text: &str, config: &ImportConfig) -> Result<Self, String> {
        let mut reader = reader(text, config);
        let header = reader
            .headers()
            .map_err(|error| format!("cannot read the header: {error}"))?
            .clone();
        if header.iter().all(|name| name.trim().is_empty()) {
            return Err("the file is empty: the first line must name the columns".into());
        }
        let names: Vec<String> = header.iter().map(|n| n.trim().to_lowercase()).collect();
        let index_of = |wanted: &str| -> Result<Option<usize>, String> {
            let wanted = wanted.trim().to_lowercase();
            let mut found = names.iter().enumerate().filter(|(_, n)| **n == wanted);
            match (found.next(), found.next()) {
                (Some((index, _)), None) => Ok(Some(index)),
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(format!("the header names column {wanted:?} twice")),
            }
        };
        let mut columns = Vec::new();
        if config.mapping.is_empty() {
            for field in mappable() {
                if let Some(index) = index_of(field)? {
                    columns.push((index, field));
                }
            }
            let missing: Vec<&str> = REQUIRED_FIELDS
                .iter()
                .filter(|required| !columns.iter().any(|(_, field)| field == *required))
                .copied()
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "the supplier has no column mapping and the header has no {} column (columns: {})",
                    missing.join(", "),
                    header.iter().collect::<Vec<_>>().join(", ")
                ));
            }
        } else {
            let mut absent = Vec::new();
            for (column, target) in &config.mapping {
                let Some(field) = mappable()
                    .into_iter()
                    .find(|field| *field == target.as_str())
                else {
                    return Err(format!("the mapping names unknown field {target:?}"));
                };
                match index_of(column)? {
                    Some(index) => columns.push((index, field)),
                    None => absent.push(column.as_str()),
                }
            }
            if !absent.is_empty() {
                return Err(format!(
                    "mapped column(s) {} not in the file's header (columns: {})",
                    absent.join(", "),
                    header.iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        columns.sort_unstable();
        let ignored = header
            .iter()
            .enumerate()
            .filter(|(index, name)| {
                !name.trim().is_empty() && !columns.iter().any(|(used, _)| used == index)
            })
            .map(|(_, name)| name.trim().to_string())
            .collect();
        Ok(Self {
            columns,
            width: header.len(),
            ignored,
        })
    }

    /// The data rows of `text`, from row `skip` (0-based, header excluded).
    pub fn rows<'t>(
        &'t self,
        text: &'t str,
        config: &ImportConfig,
        skip: usize,
    ) -> impl Iterator<Item = Row> + 't {
        reader(text, config)
            .into_records()
            .skip(skip)
            .map(move |record| match record {
                Ok(record) => Row {
                    line: first_line(text, record.position()),
                    fields: self.fields(&record),
                },
                Err(error) => Row {
                    line: first_line(text, error.position()),
                    fields: Err(format!("unreadable row: {error}")),
                },
            })
    }

    /// Data rows in `text` (header excluded).
    pub fn count(text: &str, config: &ImportConfig) -> u64 {
        let mut record = csv::ByteRecord::new();
        let mut reader = reader(text, config);
        let mut count = 0;
        while reader.read_byte_record(&mut record).unwrap_or(false) {
            count += 1;
        }
        count
    }

    fn fields(&self, record: &StringRecord) -> Result<Map<String, Value>, String> {
        if record.len() != self.width {
            return Err(format!(
                "expected {} cells like the header, found {}",
                self.width,
                record.len()
            ));
        }
        let mut fields = Map::new();
        for (index, field) in &self.columns {
            let cell = record.get(*index).unwrap_or_default().trim();
            if cell.is_empty() {
                continue;
            }
            let value = match *field {
                "images" => Value::Array(
                    cell.split('|')
                        .map(str::trim)
                        .filter(|url| !url.is_empty())
                        .map(|url| Value::String(url.to_string()))
                        .collect(),
                ),
                "attributes" => match serde_json::from_str::<Value>(cell) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => return Err("attributes: must be a JSON object".into()),
                },
                _ => Value::String(cell.to_string()),
            };
            fields.insert((*field).to_string(), value);
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: Value) -> ImportConfig {
        ImportConfig::from_json(&value).expect("valid config")
    }

    #[test]
    fn configs_are_validated_with_every_problem_named() {
        assert_eq!(
            ImportConfig::from_json(&Value::Null),
            Ok(ImportConfig::default())
        );
        let parsed = config(
            json!({"delimiter": ";", "encoding": "ISO-8859-1", "mapping": {"ref": "sku", "nom": "name", "prix": "price"}}),
        );
        assert_eq!(parsed.encoding, Encoding::Latin1);
        assert_eq!(parsed.to_json()["encoding"], "latin-1");
        let problems = ImportConfig::from_json(&json!({
            "delimiter": "::",
            "encoding": "ebcdic",
            "mapping": {"ref": "sku", "REF": "name", "x": "supplier_id", "y": "colour", "z": 3},
            "extra": 1
        }))
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
        for expected in [
            "import_config.extra",
            "import_config.delimiter",
            "import_config.encoding",
            "import_config.mapping.ref",
            "import_config.mapping.x",
            "import_config.mapping.y",
            "import_config.mapping.z",
        ] {
            assert!(fields.contains(&expected), "{expected} in {problems:?}");
        }
        let problems = ImportConfig::from_json(&json!({"mapping": {"ref": "sku", "code": "sku"}}))
            .expect_err("dup");
        assert!(
            problems.iter().any(|(_, m)| m.contains("already mapped")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(_, m)| m.contains("no column is mapped to name")),
            "{problems:?}"
        );
    }

    #[test]
    fn latin1_and_utf8_decode_and_bad_utf8_names_its_line() {
        assert_eq!(
            decode(b"nom\ncaf\xe9 \x80", Encoding::Latin1).as_deref(),
            Ok("nom\ncafé €")
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBFnom\ncaf\xc3\xa9", Encoding::Utf8).as_deref(),
            Ok("nom\ncafé")
        );
        let error = decode(b"nom\nok\ncaf\xe9", Encoding::Utf8).expect_err("not utf-8");
        assert!(
            error.contains("line 3") && error.contains("latin-1"),
            "{error}"
        );
    }

    #[test]
    fn rows_are_mapped_with_line_numbers_and_malformed_rows_reported() {
        let text = "Ref ; Nom;prix;ignored;images;attrs\n\
A1;\"Chaise; pliante\";12,50;x;http://a/1.jpg| http://a/2.jpg;{\"color\":\"red\"}\n\
A2;Table\n\
\n\
A3;\"Lampe\nde bureau\";;x;;\n\
A4;Vase;3;x;;not json\n";
        let config = config(
            json!({"delimiter": ";", "mapping": {"ref": "sku", "NOM": "name", "prix": "price", "images": "images", "attrs": "attributes"}}),
        );
        let plan = Plan::new(text, &config).expect("plan");
        assert_eq!(plan.ignored, vec!["ignored"]);
        assert_eq!(Plan::count(text, &config), 4);
        let rows: Vec<Row> = plan.rows(text, &config, 0).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            rows[0].fields,
            Ok(
                json!({"sku": "A1", "name": "Chaise; pliante", "price": "12,50",
                "images": ["http://a/1.jpg", "http://a/2.jpg"], "attributes": {"color": "red"}})
                .as_object()
                .cloned()
                .expect("object")
            )
        );
        assert_eq!(rows[1].line, 3);
        assert!(
            rows[1]
                .fields
                .as_ref()
                .is_err_and(|e| e.contains("found 2")),
            "{:?}",
            rows[1]
        );
        // The blank line is skipped; a quoted newline stays in the cell and
        // the next row's line counts it.
        assert_eq!(rows[2].line, 5);
        assert_eq!(
            rows[2].fields.as_ref().map(|f| f.get("name").cloned()),
            Ok(Some(json!("Lampe\nde bureau")))
        );
        assert!(
            rows[2]
                .fields
                .as_ref()
                .is_ok_and(|f| !f.contains_key("price")),
            "empty cell is absent"
        );
        assert_eq!(rows[3].line, 7);
        assert!(rows[3]
            .fields
            .as_ref()
            .is_err_and(|e| e.contains("attributes")));
        // Resuming skips rows already done.
        let resumed: Vec<u64> = plan.rows(text, &config, 3).map(|row| row.line).collect();
        assert_eq!(resumed, vec![7]);
        // The same with CRLF line ends and blank lines in a row.
        let crlf = text
            .replace('\n', "\r\n")
            .replace("A2;Table\r\n", "A2;Table\r\n\r\n");
        let lines: Vec<u64> = plan.rows(&crlf, &config, 0).map(|row| row.line).collect();
        assert_eq!(lines, vec![2, 3, 6, 8]);
    }

    #[test]
    fn headers_must_carry_the_mapped_or_named_columns() {
        let mapped = config(json!({"mapping": {"ref": "sku", "nom": "name", "prix": "price"}}));
        let error = Plan::new("ref,title,prix\n1,2,3\n", &mapped).expect_err("nom missing");
        assert!(
            error.contains("nom") && error.contains("ref, title, prix"),
            "{error}"
        );
        assert!(Plan::new("", &mapped).is_err());
        assert!(Plan::new("ref,nom,prix,ref\n", &mapped)
            .expect_err("twice")
            .contains("twice"));
        let identity = ImportConfig::default();
        let plan =
            Plan::new("SKU,Name,Price,Stock,colour\n", &identity).expect("named like fields");
        assert_eq!(plan.ignored, vec!["colour"]);
        assert!(Plan::new("sku,title,price\n", &identity)
            .expect_err("no name")
            .contains("name"));
    }
}
