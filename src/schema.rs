//! Where the JSON Schemas of nepho's machine output are published, and the `$id` and version
//! each carries. Below output and registry, which both write schemas.

/// Where the JSON Schemas are published: `{SCHEMA_BASE}/<name>/v{SCHEMA_VERSION}.json`.
pub const SCHEMA_BASE: &str = "https://nepho.dev/schema";
/// The version of every machine-readable shape: it changes only when a shape changes
/// incompatibly (fields are only ever added within a version).
pub const SCHEMA_VERSION: u32 = 1;

/// Gives the schema published as `file` (`registry-index.json`) its `$id` and version.
pub fn versioned(file: &str, mut schema: schemars::Schema) -> schemars::Schema {
    let stem = file.trim_end_matches(".json");
    schema.insert(
        "$id".into(),
        format!("{SCHEMA_BASE}/{stem}/v{SCHEMA_VERSION}.json").into(),
    );
    schema.insert("version".into(), SCHEMA_VERSION.into());
    schema
}
