//! The keys a template may use, where: a key clerk does not know is
//! reported at its place with the closest known key, so `tpye:` is caught
//! instead of silently reading the field as text.

/// The top level of a template.
pub const TOP: &[&str] = &[
    "issuer",
    "keywords",
    "exclude_keywords",
    "priority",
    "required_fields",
    "fields",
    "options",
    "lines",
    "tables",
    "validation",
    // invoice2data picks a reader per template; clerk reads every document
    // the same way, so it is accepted and has no effect.
    "input_module",
    "template_name",
];

pub const OPTIONS: &[&str] = &[
    "remove_whitespace",
    "remove_accents",
    "lowercase",
    "currency",
    "date_formats",
    "languages",
    "decimal_separator",
    "replace",
    "cross_checks",
];

/// Keys of a field with each parser; clerk's `required`, `min_confidence`
/// and `area` go on any.
pub const FIELD_COMMON: &[&str] = &["parser", "required", "min_confidence", "area"];
pub const REGEX_FIELD: &[&str] = &["regex", "type", "group"];
pub const STATIC_FIELD: &[&str] = &["value", "type"];
/// A lines set, on its own or as an entry of `rules`.
pub const LINES_SET: &[&str] = &[
    "start",
    "end",
    "end_match",
    "line",
    "first_line",
    "last_line",
    "skip_line",
    "types",
    "line_separator",
    "other_lines",
];
pub const TABLE: &[&str] = &[
    "start",
    "end",
    "body",
    "types",
    "fields",
    "field_separator",
    "line_separator",
];
pub const CLERK_AREA: &[&str] = &["page", "x0", "y0", "x1", "y1"];
pub const I2D_AREA: &[&str] = &["f", "l", "r", "x", "y", "W", "H"];

/// invoice2data keys clerk reads no other way than invoice2data would not
/// read them either, or would read them with another meaning: using one
/// would change what the template extracts, so it makes it unusable.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "replace",
        "per-field `replace` is not supported; use options.replace",
    ),
    ("extract_number", "`extract_number` is not supported"),
];
