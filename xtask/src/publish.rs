//! `cargo xtask publish`: the spec as other teams consume it.
//!
//! Writes `product-upgrades.yaml` and `product-upgrades.json` (keys in a stable sorted order,
//! `$ref`s intact), `SHA256SUMS`, and `CHANGELOG.md` with a section generated from the diff
//! against the previously published spec (the `product-upgrades.json` already in the output
//! folder, committed in `publish/`). A changed spec must raise `info.version`: the major part for
//! a change that breaks existing clients, at least the minor or patch part otherwise.
//!
//! The YAML is written to mean the JSON to YAML 1.1 and 1.2 loaders alike (see `yaml`: every
//! string a loader could read as a date, a number, a boolean or null is quoted), and each run
//! proves it: PyYAML's `yaml.safe_load` must read the YAML as `json.load` reads the JSON. Without
//! python3 that check is skipped with a note.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{compat, diff, tools};

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

/// Why a publication is refused, if it is: the version must grow with the change, by the policy
/// `diff` applies too (`compat`). A changed document (the spec, or the workflow published beside
/// it: `workflows` is the previous one and the current one) always needs a new version, even when
/// only its documentation changed: the published bytes differ.
pub fn refusal(
    previous: &Value,
    current: &Value,
    workflows: (Option<&Value>, Option<&Value>),
    findings: &[diff::Finding],
) -> Option<String> {
    if findings.is_empty() && previous == current && workflows.0 == workflows.1 {
        return None;
    }
    let required = compat::required_bump(findings).max(compat::Bump::Patch);
    let version = |spec: &Value| {
        spec["info"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let why = compat::check(&version(previous), &version(current), required).err()?;
    Some(match required {
        compat::Bump::Major => format!(
            "{why} ({} change(s) break existing clients, see `cargo xtask diff --old publish/product-upgrades.json`)",
            findings.iter().filter(|f| f.breaks_clients).count()
        ),
        _ => why,
    })
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
    let workflow = std::fs::read_to_string(crate::arazzo::workflow_path(root))
        .ok()
        .map(|text| yaml_serde::from_str::<Value>(&text).map(|w| normalised(&w)))
        .transpose()
        .map_err(|e| format!("the workflow is not valid YAML: {e}"))?;
    let previous_workflow_path = out.join("product-upgrades.arazzo.json");
    let previous_workflow: Option<Value> = std::fs::read_to_string(&previous_workflow_path)
        .ok()
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| format!("{} is not JSON: {e}", previous_workflow_path.display()))?;
    let mut findings = match &previous {
        Some(previous) => diff::diff(previous, &current)?,
        None => Vec::new(),
    };
    if previous.is_some() {
        findings.extend(diff::diff_workflows(
            previous_workflow.as_ref(),
            workflow.as_ref(),
        ));
        findings.sort();
    }
    if previous.as_ref() == Some(&current) && previous_workflow == workflow {
        if yaml_is_current(&out, &current, workflow.as_ref()) {
            println!(
                "{} already publishes this spec (info.version {})",
                out.display(),
                current["info"]["version"]
            );
            return Ok(loaders_agree(root, &out));
        }
        if options.check {
            eprintln!(
                "{} publishes this contract, but its product-upgrades.yaml, \
                 product-upgrades.arazzo.yaml or SHA256SUMS is not what the publisher writes now \
                 (an older writer's, or edited); run `cargo xtask publish`",
                out.display()
            );
            return Ok(false);
        }
        // The same contract in the current YAML form: no new version, no changelog section.
        write_files(&current, workflow.as_ref(), &out)?;
        println!(
            "rewrote {}'s YAML files and SHA256SUMS in the current YAML form; \
             the contract (info.version {}) is unchanged",
            out.display(),
            current["info"]["version"]
        );
        return Ok(loaders_agree(root, &out));
    }
    if options.check {
        eprintln!(
            "{} is not the published form of the spec; run `cargo xtask publish`",
            out.display()
        );
        return Ok(false);
    }
    if let Some(previous) = &previous
        && let Some(why) = refusal(
            previous,
            &current,
            (previous_workflow.as_ref(), workflow.as_ref()),
            &findings,
        )
    {
        eprintln!("refusing to publish: {why}");
        return Ok(false);
    }
    write_files(&current, workflow.as_ref(), &out)?;
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
    Ok(loaders_agree(root, &out))
}

/// Whether the YAML files and `SHA256SUMS` in `out` are exactly what [`write_files`] writes for
/// `spec` and `workflow` (the JSON files are compared by `run` as values): a hand-edited or stale
/// `product-upgrades.arazzo.yaml` is not current, nor is one left behind with no workflow.
fn yaml_is_current(out: &Path, spec: &Value, workflow: Option<&Value>) -> bool {
    let read = |name: &str| std::fs::read_to_string(out.join(name)).ok();
    let spec_yaml = yaml::to_string(&normalised(spec));
    let workflow_yaml = workflow.map(|w| yaml::to_string(&normalised(w)));
    let sums_listed = |sums: &str, name: &str, text: Option<&str>| match text {
        Some(text) => sums
            .lines()
            .any(|line| line == format!("{:x}  {name}", Sha256::digest(text.as_bytes()))),
        None => !sums
            .lines()
            .any(|line| line.ends_with(&format!("  {name}"))),
    };
    let sums = read("SHA256SUMS").unwrap_or_default();
    let json_sums_ok = ["product-upgrades.json", "product-upgrades.arazzo.json"]
        .iter()
        .all(|name| match read(name) {
            Some(text) => sums_listed(&sums, name, Some(&text)),
            None => sums_listed(&sums, name, None),
        });
    read("product-upgrades.yaml").as_deref() == Some(spec_yaml.as_str())
        && read("product-upgrades.arazzo.yaml") == workflow_yaml
        && sums_listed(&sums, "product-upgrades.yaml", Some(&spec_yaml))
        && sums_listed(
            &sums,
            "product-upgrades.arazzo.yaml",
            workflow_yaml.as_deref(),
        )
        && json_sums_ok
}

/// Writes the normalised spec as `product-upgrades.json` and `.yaml` with `SHA256SUMS` into `out`.
///
/// The YAML is read back (as YAML 1.2, by yaml_serde) and must be the JSON value; `run` also
/// reads it with a YAML 1.1 loader (`loaders_agree`).
pub fn write_spec(spec: &Value, out: &Path) -> Result<(), String> {
    write_files(spec, None, out)
}

/// [`write_spec`], and the workflow (`product-upgrades.arazzo.json` and `.yaml`, in the same
/// normalised forms, listed in `SHA256SUMS`): its source description `./product-upgrades.yaml`
/// is the spec beside it.
fn write_files(spec: &Value, workflow: Option<&Value>, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let spec = normalised(spec);
    let json = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())? + "\n";
    let yaml = yaml::to_string(&spec);
    let read_back: Value = yaml_serde::from_str(&yaml)
        .map_err(|e| format!("the YAML written for the spec does not parse: {e}"))?;
    if read_back != spec {
        return Err("the YAML written for the spec does not read back as the spec".into());
    }
    let mut files = vec![
        ("product-upgrades.json", json),
        ("product-upgrades.yaml", yaml),
    ];
    if let Some(workflow) = workflow {
        let workflow = normalised(workflow);
        let yaml = yaml::to_string(&workflow);
        let read_back: Value = yaml_serde::from_str(&yaml)
            .map_err(|e| format!("the YAML written for the workflow does not parse: {e}"))?;
        if read_back != workflow {
            return Err("the YAML written for the workflow does not read back as it".into());
        }
        files.push((
            "product-upgrades.arazzo.json",
            serde_json::to_string_pretty(&workflow).map_err(|e| e.to_string())? + "\n",
        ));
        files.push(("product-upgrades.arazzo.yaml", yaml));
    } else {
        // No workflow any more: none may stay published beside the spec.
        for name in [
            "product-upgrades.arazzo.json",
            "product-upgrades.arazzo.yaml",
        ] {
            match std::fs::remove_file(out.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot remove {name}: {e}"));
                }
                _ => {}
            }
        }
    }
    let mut sums = String::new();
    for (name, text) in &files {
        std::fs::write(out.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
        sums.push_str(&format!("{:x}  {name}\n", Sha256::digest(text.as_bytes())));
    }
    std::fs::write(out.join("SHA256SUMS"), sums).map_err(|e| e.to_string())
}

/// Loads a YAML file with PyYAML's `yaml.safe_load` (YAML 1.1) and a JSON file with
/// `json.load`; prints the first path where they differ and exits 1, or exits 0 when they agree.
const COMPARE_LOADED: &str = r#"
import json, sys, yaml

def pointer(path):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)

def shown(value):
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 120 else text[:117] + "..."

def first_difference(expected, loaded, path):
    if type(expected) is not type(loaded):
        return path, f"the JSON has {shown(expected)}, the YAML 1.1 loader read {shown(loaded)}"
    if isinstance(expected, dict):
        missing = [k for k in expected if k not in loaded]
        extra = [k for k in loaded if k not in expected]
        if missing or extra:
            return path, (f"the JSON's keys {missing!r} are missing from what the YAML 1.1 "
                          f"loader read, which has the keys {extra!r} instead")
        for key in expected:
            found = first_difference(expected[key], loaded[key], path + [key])
            if found:
                return found
    elif isinstance(expected, list):
        if len(expected) != len(loaded):
            return path, f"the JSON has {len(expected)} items, the YAML 1.1 loader read {len(loaded)}"
        for index, (a, b) in enumerate(zip(expected, loaded)):
            found = first_difference(a, b, path + [index])
            if found:
                return found
    elif expected != loaded:
        return path, f"the JSON has {shown(expected)}, the YAML 1.1 loader read {shown(loaded)}"
    return None

with open(sys.argv[1], encoding="utf-8") as f:
    loaded = yaml.safe_load(f)
with open(sys.argv[2], encoding="utf-8") as f:
    expected = json.load(f)
found = first_difference(expected, loaded, [])
if found:
    print(f"first difference at {pointer(found[0])}: {found[1]}")
    sys.exit(1)
"#;

/// Where a YAML 1.1 loader (PyYAML's `safe_load`, run by `python`) reads `yaml` differently
/// from `json`: `None` when they agree, else the first differing path and both values.
pub fn yaml11_difference(
    python: &Path,
    yaml: &Path,
    json: &Path,
) -> Result<Option<String>, String> {
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(COMPARE_LOADED)
        .arg(yaml)
        .arg(json)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok(None),
        Some(1) if !stdout.is_empty() => Ok(Some(stdout)),
        _ => Ok(Some(format!(
            "the YAML 1.1 loader could not load it: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// True unless a YAML 1.1 loader reads the published YAML in `out` differently from its JSON;
/// says what it checked, or why it could not (no python3: a visible note, not a failure).
fn loaders_agree(root: &Path, out: &Path) -> bool {
    let (package, version) = tools::PYYAML;
    let python = match tools::pip_library(root, tools::PYYAML) {
        Ok(python) => python,
        Err(why) => {
            eprintln!(
                "note: NOT checked that a YAML 1.1 loader reads product-upgrades.yaml as \
                 product-upgrades.json ({package} {version} unavailable: {why})"
            );
            return true;
        }
    };
    let (yaml, json) = (
        out.join("product-upgrades.yaml"),
        out.join("product-upgrades.json"),
    );
    match yaml11_difference(&python, &yaml, &json) {
        Ok(None) => {
            println!(
                "checked: {package} {version} (YAML 1.1, yaml.safe_load) reads product-upgrades.yaml \
                 as json.load reads product-upgrades.json"
            );
            true
        }
        Ok(Some(difference)) => {
            eprintln!(
                "{} does not mean what {} means to a YAML 1.1 loader ({package} {version}): {difference}",
                yaml.display(),
                json.display()
            );
            false
        }
        Err(why) => {
            eprintln!(
                "cannot check {} with a YAML 1.1 loader: {why}",
                yaml.display()
            );
            false
        }
    }
}

/// Today's date (UTC) as YYYY-MM-DD.
fn chrono_date() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// The publisher's YAML writer: block style, keys in the order given, and every string written so
/// that YAML 1.1 loaders (PyYAML, SnakeYAML inside openapi-generator, js-yaml) and YAML 1.2
/// loaders all read back exactly the JSON value.
///
/// A string stays plain only when it is plainly a string to every loader: it starts with a
/// letter, `/`, `$` or `_`, holds only printable ASCII outside `:`, `#`, `\` and tabs, does not end
/// with a space, and is not one of the words YAML 1.1 reads as a boolean or null (`yes`, `No`,
/// `ON`, `y`, `null`...). That rules out timestamps, numbers of every base (`0x1F`, `017`,
/// sexagesimal `1:20`), `.inf`, `.nan`, `~`, `<<`, `=` and the empty string, which are
/// double-quoted. Multi-line text is a literal block (`|`) when that keeps it exactly, and
/// double-quoted with escapes otherwise.
pub mod yaml {
    use serde_json::{Map, Number, Value};

    /// The YAML text of `value`.
    pub fn to_string(value: &Value) -> String {
        let mut out = String::new();
        match value {
            Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
            Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
        out
    }

    /// True when `text` may be written as a plain scalar: every loader reads it as this string.
    pub fn plain_is_safe(text: &str) -> bool {
        const WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
        let Some(first) = text.chars().next() else {
            return false;
        };
        (first.is_ascii_alphabetic() || matches!(first, '/' | '$' | '_'))
            && text
                .chars()
                .all(|c| (c.is_ascii_graphic() || c == ' ') && !matches!(c, ':' | '#' | '\\'))
            && !text.ends_with(' ')
            && !WORDS.contains(&text.to_ascii_lowercase().as_str())
    }

    /// Characters a YAML stream may not hold raw, or that a loader reads as a line break.
    fn needs_escape(c: char) -> bool {
        matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
    }

    /// `text` double-quoted, with YAML escapes every loader knows.
    pub fn quoted(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// The literal block (`|` or `|-`, and its lines) that keeps `text` exactly, if one does.
    fn literal(text: &str) -> Option<(&'static str, Vec<&str>)> {
        let fits = text.contains('\n')
            && !text.starts_with([' ', '\n'])
            && !text.ends_with("\n\n")
            && !text.chars().any(|c| c != '\n' && needs_escape(c))
            && text.split('\n').all(|line| !line.ends_with(' '));
        if !fits {
            return None;
        }
        Some(match text.strip_suffix('\n') {
            Some(body) => ("|", body.split('\n').collect()),
            None => ("|-", text.split('\n').collect()),
        })
    }

    /// A number in a form both YAML 1.1 (which needs a `.` and a signed exponent in floats) and
    /// YAML 1.2 read as that number.
    fn number(n: &Number) -> String {
        let text = n.to_string();
        if !n.is_f64() {
            return text;
        }
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m.to_owned(), Some(e)),
            None => (text.clone(), None),
        };
        let mantissa = if mantissa.contains('.') {
            mantissa
        } else {
            format!("{mantissa}.0")
        };
        match exponent {
            Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
            Some(e) => format!("{mantissa}e+{e}"),
            None => mantissa,
        }
    }

    /// A scalar (or empty collection) on one line.
    fn inline(value: &Value) -> String {
        match value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => number(n),
            Value::String(s) if plain_is_safe(s) => s.clone(),
            Value::String(s) => quoted(s),
            Value::Array(_) => "[]".into(),
            Value::Object(_) => "{}".into(),
        }
    }

    fn pad(indent: usize, out: &mut String) {
        out.extend(std::iter::repeat_n(' ', indent));
    }

    /// A scalar after `key:` or `-`; a literal block's lines are indented by `indent`.
    fn scalar(value: &Value, indent: usize, out: &mut String) {
        if let Value::String(s) = value
            && let Some((header, lines)) = literal(s)
        {
            out.push(' ');
            out.push_str(header);
            out.push('\n');
            for line in lines {
                if !line.is_empty() {
                    pad(indent, out);
                    out.push_str(line);
                }
                out.push('\n');
            }
            return;
        }
        out.push(' ');
        out.push_str(&inline(value));
        out.push('\n');
    }

    fn mapping(map: &Map<String, Value>, indent: usize, out: &mut String) {
        for (key, value) in map {
            pad(indent, out);
            out.push_str(&inline(&Value::String(key.clone())));
            out.push(':');
            match value {
                Value::Object(inner) if !inner.is_empty() => {
                    out.push('\n');
                    mapping(inner, indent + 2, out);
                }
                Value::Array(items) if !items.is_empty() => {
                    out.push('\n');
                    sequence(items, indent, out);
                }
                other => scalar(other, indent + 2, out),
            }
        }
    }

    fn sequence(items: &[Value], indent: usize, out: &mut String) {
        for item in items {
            let mut nested = String::new();
            match item {
                Value::Object(inner) if !inner.is_empty() => {
                    mapping(inner, indent + 2, &mut nested)
                }
                Value::Array(inner) if !inner.is_empty() => {
                    sequence(inner, indent + 2, &mut nested)
                }
                other => {
                    pad(indent, out);
                    out.push('-');
                    scalar(other, indent + 2, out);
                    continue;
                }
            }
            // The collection's first line goes on the dash's line.
            pad(indent, out);
            out.push_str("- ");
            out.push_str(&nested[indent + 2..]);
        }
    }
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
                refusal(&old, &new, (None, None), &findings).is_some(),
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
        assert!(refusal(&old, &new, (None, None), &findings).is_some());
        new["info"]["version"] = json!("1.2.1");
        assert!(refusal(&old, &new, (None, None), &findings).is_none());
    }

    #[test]
    fn a_documentation_change_is_published_under_a_new_version_only() {
        let old = spec("1.2.0", "integer");
        let mut new = old.clone();
        new["info"]["description"] = json!("now documented");
        let findings = diff::diff(&old, &new).unwrap();
        assert!(findings.is_empty(), "{findings:?}");
        assert!(refusal(&old, &new, (None, None), &findings).is_some());
        new["info"]["version"] = json!("1.2.1");
        assert!(refusal(&old, &new, (None, None), &findings).is_none());
    }

    #[test]
    fn a_workflow_only_change_needs_a_higher_version() {
        let spec = spec("1.2.0", "integer");
        let old_flow = json!({ "arazzo": "1.0.1", "info": { "version": "1.2.0" },
            "workflows": [ { "workflowId": "w", "description": "before", "steps": [] } ] });
        let mut new_flow = old_flow.clone();
        new_flow["workflows"][0]["description"] = json!("after");
        let findings = diff::diff_workflows(Some(&old_flow), Some(&new_flow));
        assert!(!findings.is_empty() && !findings.iter().any(|f| f.breaks_clients));
        // Refused on the documents alone, whatever the rules found.
        assert!(
            refusal(&spec, &spec, (Some(&old_flow), Some(&new_flow)), &[]).is_some(),
            "a changed workflow was published under the same version"
        );
        assert!(refusal(&spec, &spec, (Some(&old_flow), Some(&old_flow)), &[]).is_none());
        let mut raised = spec.clone();
        raised["info"]["version"] = json!("1.2.1");
        assert!(
            refusal(
                &spec,
                &raised,
                (Some(&old_flow), Some(&new_flow)),
                &findings
            )
            .is_none()
        );
    }

    #[test]
    fn a_stale_or_edited_published_workflow_is_not_current() {
        let out =
            std::env::temp_dir().join(format!("xtask-publish-current-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let spec = spec("1.2.0", "integer");
        let flow = json!({ "arazzo": "1.0.1", "info": { "version": "1.2.0" }, "workflows": [] });
        write_files(&spec, Some(&flow), &out).unwrap();
        assert!(yaml_is_current(&out, &spec, Some(&flow)));

        let yaml_path = out.join("product-upgrades.arazzo.yaml");
        let written = std::fs::read_to_string(&yaml_path).unwrap();
        std::fs::write(&yaml_path, format!("{written}# edited\n")).unwrap();
        assert!(
            !yaml_is_current(&out, &spec, Some(&flow)),
            "an edited workflow YAML"
        );

        write_files(&spec, Some(&flow), &out).unwrap();
        let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
        let kept: String = sums
            .lines()
            .filter(|l| !l.contains("arazzo.json"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(out.join("SHA256SUMS"), kept).unwrap();
        assert!(
            !yaml_is_current(&out, &spec, Some(&flow)),
            "a SHA256SUMS without the workflow"
        );

        // The workflow withdrawn: its published copies go too.
        write_files(&spec, None, &out).unwrap();
        assert!(!yaml_path.exists() && !out.join("product-upgrades.arazzo.json").exists());
        assert!(yaml_is_current(&out, &spec, None));
        assert!(!yaml_is_current(&out, &spec, Some(&flow)));
        let _ = std::fs::remove_dir_all(&out);
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

    /// Strings that some YAML 1.1 or 1.2 loader reads as something else when written plain.
    const AMBIGUOUS: &[&str] = &[
        // timestamps and dates (YAML 1.1)
        "2019-08-29T23:47:28.8524555Z",
        "2019-08-29 23:47:28",
        "2019-08-29",
        // booleans (YAML 1.1 and 1.2), in their case variants
        "y",
        "Y",
        "n",
        "N",
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        // null
        "null",
        "Null",
        "NULL",
        "~",
        "",
        // numbers: decimal, signed, float, exponent, hex, octal (1.1 and 1.2), binary,
        // sexagesimal (1.1), underscores (1.1), infinities and not-a-number
        "200",
        "0",
        "-1",
        "+1",
        "1.5",
        "1e3",
        "1.0e+3",
        "0x1F",
        "017",
        "0o17",
        "0b101",
        "1:20",
        "190:20:30.15",
        "1_000",
        ".inf",
        "-.inf",
        "+.INF",
        ".Inf",
        ".nan",
        ".NaN",
        // merge and value keys (1.1), indicators, comments, and significant spaces
        "<<",
        "=",
        "- item",
        "? key",
        ": x",
        "a: b",
        "a:",
        "a #b",
        "#x",
        "[a]",
        "{a}",
        "*a",
        "&a",
        "!a",
        "%a",
        "@a",
        "`a",
        "'a'",
        "\"a\"",
        "|",
        ">",
        " leading",
        "trailing ",
        "tab\there",
        "back\\slash",
        "line\u{2028}separator",
        "bom\u{feff}",
    ];

    #[test]
    fn every_ambiguous_string_is_quoted_and_a_plain_word_stays_plain() {
        for text in AMBIGUOUS {
            let written = yaml::to_string(&json!({ "k": text }));
            assert!(
                written.starts_with("k: \"") && written.ends_with("\"\n"),
                "{text:?} was written as {written:?}"
            );
            let read_back: Value = yaml_serde::from_str(&written).unwrap();
            assert_eq!(read_back, json!({ "k": text }), "{written:?}");
            // The same string as a key: status codes such as "200" must stay strings.
            let written = yaml::to_string(&json!({ *text: 1 }));
            assert!(
                written.starts_with('"'),
                "key {text:?} was written as {written:?}"
            );
        }
        for word in [
            "Azure",
            "application/json",
            "$ref",
            "MS-AZR-0145P",
            "upgradeId",
            "Upgrade Microsoft Azure (MS-AZR-0145P) subscriptions to an Azure plan.",
        ] {
            assert_eq!(
                yaml::to_string(&json!({ word: word })),
                format!("{word}: {word}\n")
            );
        }
    }

    #[test]
    fn multi_line_text_is_a_literal_block_only_when_that_keeps_it_exactly() {
        let cases = [
            ("first\nsecond\n", "k: |\n  first\n  second\n"),
            ("first\n\nsecond", "k: |-\n  first\n\n  second\n"),
            ("first\n  indented\n", "k: |\n  first\n    indented\n"),
            (" leading\nspace", "k: \" leading\\nspace\"\n"),
            ("two blank\n\n", "k: \"two blank\\n\\n\"\n"),
            ("trailing \nspace", "k: \"trailing \\nspace\"\n"),
            ("carriage\r\nreturn", "k: \"carriage\\r\\nreturn\"\n"),
        ];
        for (text, expected) in cases {
            let value = json!({ "k": text });
            let written = yaml::to_string(&value);
            assert_eq!(written, expected, "{text:?}");
            assert_eq!(yaml_serde::from_str::<Value>(&written).unwrap(), value);
        }
    }

    #[test]
    fn numbers_and_nesting_read_back_unchanged() {
        let value = json!({
            "int": 42, "negative": -7, "float": 1.5, "big": 1e300, "small": 1.5e-7,
            "whole float": 100.0, "yes": true, "nothing": null, "empty": {}, "none": [],
            "list": [ "2019-08-29", { "a": 1, "b": [1, [2, "on"]] }, [ [] ], "x\ny\n" ],
            "200": { "description": "ok" }
        });
        let written = yaml::to_string(&value);
        assert!(written.contains("big: 1.0e+300\n"), "{written}");
        assert!(written.contains("small: 1.5e-7\n"), "{written}");
        assert_eq!(
            yaml_serde::from_str::<Value>(&written).unwrap(),
            value,
            "{written}"
        );
    }

    #[test]
    fn the_projects_spec_reads_back_unchanged() {
        let spec = normalised(&partner_center_contract::spec());
        let written = yaml::to_string(&spec);
        assert_eq!(yaml_serde::from_str::<Value>(&written).unwrap(), spec);
    }

    /// The YAML 1.1 comparison itself, with the machine's python3 and PyYAML when it has them.
    #[test]
    fn a_yaml_1_1_loader_finds_the_old_writers_unquoted_timestamp() {
        let python = Path::new("python3");
        let has_pyyaml = std::process::Command::new(python)
            .args(["-c", "import yaml"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_pyyaml {
            eprintln!("skipped: python3 with PyYAML is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-publish-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let value = json!({ "responses": { "200": { "example": "2019-08-29T23:47:28.8524555Z",
            "flags": ["yes", "1:20", "017", "~", ""] } } });
        let (yaml_path, json_path) = (dir.join("spec.yaml"), dir.join("spec.json"));
        std::fs::write(&json_path, value.to_string()).unwrap();
        std::fs::write(&yaml_path, yaml::to_string(&value)).unwrap();
        assert_eq!(
            yaml11_difference(python, &yaml_path, &json_path).unwrap(),
            None
        );
        // What the old writer wrote: the timestamp unquoted.
        std::fs::write(&yaml_path, yaml_serde::to_string(&value).unwrap()).unwrap();
        let found = yaml11_difference(python, &yaml_path, &json_path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let found = found.expect("PyYAML reads the unquoted timestamp as a datetime");
        assert!(
            found.contains("/responses/200/example") && found.contains("datetime"),
            "{found}"
        );
    }
}
