//! `cargo xtask publish`: the spec as other teams consume it.
//!
//! Writes `product-upgrades.yaml` and `product-upgrades.json` (keys in a stable sorted order,
//! `$ref`s intact), `SHA256SUMS`, and `CHANGELOG.md` with a section generated from the diff
//! against the previously published spec (the `product-upgrades.json` already in the output
//! folder, committed in `publish/`). A changed spec must raise `info.version`: the major part for
//! a change that breaks existing clients, at least the minor or patch part otherwise.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff;

/// Options of `cargo xtask publish`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Where to publish; its product-upgrades.json is the previous publication
    #[arg(long, default_value = "publish")]
    pub out: PathBuf,
    /// Only check that the published copy matches the spec; write nothing
    #[arg(long)]
    pub check: bool,
}

fn version(spec: &Value) -> Result<semver::Version, String> {
    let text = spec["info"]["version"].as_str().unwrap_or_default();
    semver::Version::parse(text)
        .map_err(|e| format!("info.version {text:?} is not a semantic version: {e}"))
}

/// Why a publication is refused, if it is: the version must grow with the change.
pub fn refusal(
    previous: &Value,
    current: &Value,
    findings: &[diff::Finding],
) -> Result<Option<String>, String> {
    let (before, after) = (version(previous)?, version(current)?);
    if findings.is_empty() && previous == current {
        return Ok(None);
    }
    let breaking = findings.iter().any(|f| f.breaks_clients);
    if breaking && after.major <= before.major {
        return Ok(Some(format!(
            "the spec breaks existing clients ({} change(s), see `cargo xtask diff --old publish/product-upgrades.json`) \
             but info.version went from {before} to {after}: raise the major version",
            findings.iter().filter(|f| f.breaks_clients).count()
        )));
    }
    if after <= before {
        return Ok(Some(format!(
            "the spec changed but info.version stayed at {after} (published: {before}): raise it"
        )));
    }
    Ok(None)
}

/// The changelog section for a publication.
pub fn changelog_section(
    previous: Option<&Value>,
    current: &Value,
    findings: &[diff::Finding],
    date: &str,
) -> String {
    let mut section = format!(
        "## {} ({date})\n\n",
        current["info"]["version"].as_str().unwrap_or("?")
    );
    match previous {
        None => section.push_str("- First publication.\n"),
        Some(_) if findings.is_empty() => {
            section.push_str("- Documentation and examples only; no contract change.\n")
        }
        Some(_) => {
            for finding in findings {
                let label = match (finding.breaks_clients, finding.breaks_servers) {
                    (true, _) => "**Breaking for clients**",
                    (false, true) => "Breaking for servers",
                    (false, false) => "Compatible",
                };
                section.push_str(&format!(
                    "- {label}: {} (`{}`)\n",
                    finding.message, finding.path
                ));
            }
        }
    }
    section
}

/// The spec with every object's keys in sorted order, whatever map order serde_json was built
/// with, so that publishing the same spec twice gives the same bytes.
pub fn normalised(spec: &Value) -> Value {
    match spec {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), normalised(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(normalised).collect()),
        other => other.clone(),
    }
}

pub fn run(root: &Path, options: &Options) -> Result<bool, String> {
    let out = if options.out.is_absolute() {
        options.out.clone()
    } else {
        root.join(&options.out)
    };
    let current = normalised(&partner_center_contract::read_spec(
        &partner_center_contract::spec_path(),
    )?);
    let baseline = out.join("product-upgrades.json");
    let previous: Option<Value> = match std::fs::read_to_string(&baseline) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", baseline.display()))?,
        ),
        Err(_) => None,
    };
    let findings = match &previous {
        Some(previous) => diff::diff(previous, &current)?,
        None => Vec::new(),
    };
    if previous.as_ref() == Some(&current) {
        println!(
            "{} already publishes this spec (info.version {})",
            out.display(),
            current["info"]["version"]
        );
        return Ok(true);
    }
    if options.check {
        eprintln!(
            "{} is not the published form of the spec; run `cargo xtask publish`",
            out.display()
        );
        return Ok(false);
    }
    if let Some(previous) = &previous
        && let Some(why) = refusal(previous, &current, &findings)?
    {
        eprintln!("refusing to publish: {why}");
        return Ok(false);
    }
    write_spec(&current, &out)?;
    let date = chrono_date();
    let section = changelog_section(previous.as_ref(), &current, &findings, &date);
    let changelog_path = out.join("CHANGELOG.md");
    let old_changelog = std::fs::read_to_string(&changelog_path).unwrap_or_default();
    let body = old_changelog
        .strip_prefix("# Changelog of the product-upgrade spec\n\n")
        .unwrap_or(&old_changelog);
    std::fs::write(
        &changelog_path,
        format!("# Changelog of the product-upgrade spec\n\n{section}\n{body}"),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "published info.version {} to {}:\n\n{section}",
        current["info"]["version"],
        out.display()
    );
    Ok(true)
}

/// Writes the normalised spec as `product-upgrades.json` and `.yaml` with `SHA256SUMS` into `out`.
pub fn write_spec(spec: &Value, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let spec = normalised(spec);
    let json = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())? + "\n";
    let yaml = yaml_serde::to_string(&spec).map_err(|e| e.to_string())?;
    let mut sums = String::new();
    for (name, text) in [
        ("product-upgrades.json", &json),
        ("product-upgrades.yaml", &yaml),
    ] {
        std::fs::write(out.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
        sums.push_str(&format!("{:x}  {name}\n", Sha256::digest(text.as_bytes())));
    }
    std::fs::write(out.join("SHA256SUMS"), sums).map_err(|e| e.to_string())
}

/// Today's date (UTC) as YYYY-MM-DD.
fn chrono_date() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(version: &str, count_type: &str) -> Value {
        json!({
            "openapi": "3.0.3", "info": { "title": "t", "version": version },
            "paths": { "/v1/things": { "post": { "operationId": "getThing", "responses": {
                "200": { "description": "ok", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Thing" } } } } } } } },
            "components": { "schemas": { "Thing": { "type": "object", "required": ["count"],
                "properties": { "count": { "type": count_type } } } } }
        })
    }

    #[test]
    fn a_breaking_change_needs_a_new_major_version() {
        let old = spec("1.2.0", "integer");
        for (version, refused) in [("1.2.0", true), ("1.3.0", true), ("2.0.0", false)] {
            let new = spec(version, "string");
            let findings = diff::diff(&old, &new).unwrap();
            assert_eq!(
                refusal(&old, &new, &findings).unwrap().is_some(),
                refused,
                "{version}"
            );
        }
    }

    #[test]
    fn a_compatible_change_needs_a_higher_version() {
        let old = spec("1.2.0", "integer");
        let mut new = spec("1.2.0", "integer");
        new["components"]["schemas"]["Thing"]["properties"]["label"] = json!({ "type": "string" });
        let findings = diff::diff(&old, &new).unwrap();
        assert!(refusal(&old, &new, &findings).unwrap().is_some());
        new["info"]["version"] = json!("1.2.1");
        assert!(refusal(&old, &new, &findings).unwrap().is_none());
    }

    #[test]
    fn the_changelog_section_lists_each_change_with_its_class() {
        let old = spec("1.0.0", "integer");
        let new = spec("2.0.0", "string");
        let findings = diff::diff(&old, &new).unwrap();
        let section = changelog_section(Some(&old), &new, &findings, "2026-11-21");
        assert!(section.starts_with("## 2.0.0 (2026-11-21)"), "{section}");
        assert!(
            section.contains("**Breaking for clients**") && section.contains("Thing.count"),
            "{section}"
        );
        assert!(changelog_section(None, &new, &[], "2026-11-21").contains("First publication"));
    }

    #[test]
    fn normalised_specs_have_sorted_keys_at_every_level_and_keep_refs() {
        let spec = json!({ "b": 1, "a": { "z": [ { "y": 1, "x": 2 } ], "$ref": "#/x" } });
        let text = serde_json::to_string(&normalised(&spec)).unwrap();
        assert_eq!(text, r##"{"a":{"$ref":"#/x","z":[{"x":2,"y":1}]},"b":1}"##);
    }
}
