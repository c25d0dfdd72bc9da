//! `cargo xtask diff`: what a spec change does to existing clients and existing servers.
//!
//! Oxide's `drift` compares the two documents; its classes map onto the two audiences:
//! backward-incompatible changes break *existing clients* (generated from the old spec, talking
//! to a server on the new one), forward-incompatible ones break *existing servers* (implementing
//! the old spec, called by clients generated from the new one). The project adds rules only
//! where drift is silent (see `rules`), each tested with a pair of small spec fragments.
//!
//! Exits non-zero unless `info.version` grows as the changes ask, by the policy `publish` applies
//! too (`compat`): the major part for a change that breaks existing clients, any part for another
//! change to the contract.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::compat;

/// Options of `cargo xtask diff`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Compare against the spec at this git revision [default: the merge base with main]
    #[arg(long, conflicts_with = "old")]
    pub base: Option<String>,
    /// Compare against this spec file
    #[arg(long)]
    pub old: Option<PathBuf>,
}

/// One difference between two versions of the spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Where, as a JSON pointer into the new spec (or the old one, for removals).
    pub path: String,
    /// What changed.
    pub message: String,
    /// Clients generated from the old spec break against a server on the new one.
    pub breaks_clients: bool,
    /// Servers implementing the old spec break when called by clients of the new one.
    pub breaks_servers: bool,
    /// Which checker found it: `drift` or a project rule.
    pub found_by: &'static str,
}

/// Every difference between `old` and `new`.
pub fn diff(old: &Value, new: &Value) -> Result<Vec<Finding>, String> {
    let mut findings = Vec::new();
    let changes = drift::compare(old, new)
        .map_err(|e| format!("drift could not compare the specs: {e:#}"))?;
    for change in changes {
        let base = change
            .paths
            .first()
            .map(|p| p.new.to_string())
            .unwrap_or_default();
        // The first element of drift's path chain is the component or operation changed.
        let base = base.split(" -> ").next().unwrap_or_default().to_owned();
        for info in change.changes {
            // drift leaves property changes unclassified; `rules::properties` classifies them.
            if info.class == drift::ChangeClass::Unhandled
                && info.message == "object properties changed"
            {
                continue;
            }
            let (breaks_clients, breaks_servers) = match info.class {
                drift::ChangeClass::BackwardIncompatible => (true, false),
                drift::ChangeClass::ForwardIncompatible => (false, true),
                drift::ChangeClass::Incompatible => (true, true),
                drift::ChangeClass::Trivial => (false, false),
                // drift could not classify it: assume the worst and say so.
                drift::ChangeClass::Unhandled => (true, true),
            };
            let subpath = if info.new_subpath.is_empty() {
                &info.old_subpath
            } else {
                &info.new_subpath
            };
            let path = if subpath.is_empty() {
                base.clone()
            } else {
                format!("{base}/{subpath}")
            };
            let message = if info.class == drift::ChangeClass::Unhandled {
                format!(
                    "{} (drift could not classify this change; treated as breaking)",
                    info.message
                )
            } else {
                info.message
            };
            findings.push(Finding {
                path,
                message,
                breaks_clients,
                breaks_servers,
                found_by: "drift",
            });
        }
    }
    findings.extend(rules::security(old, new));
    findings.extend(rules::properties(old, new));
    findings.extend(rules::links(old, new));
    findings.sort();
    findings.dedup();
    Ok(findings)
}

/// Every difference between two versions of the workflow (`None`: no workflow there). A
/// workflow is a promise to the clients that run it: a workflow, step, output or branch taken
/// away, or a step moved to another operation, breaks them; one added does not (but still asks
/// for a new version).
pub fn diff_workflows(old: Option<&Value>, new: Option<&Value>) -> Vec<Finding> {
    let empty = Value::Null;
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut findings = Vec::new();
    let mut push = |path: String, message: String, breaks: bool| {
        findings.push(Finding {
            path,
            message,
            breaks_clients: breaks,
            breaks_servers: false,
            found_by: "workflow rule",
        })
    };
    let by_id = |doc: &Value, list: &str, key: &str| -> std::collections::BTreeMap<String, Value> {
        doc[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| Some((item[key].as_str()?.to_owned(), item.clone())))
            .collect()
    };
    let (old_flows, new_flows) = (
        by_id(old, "workflows", "workflowId"),
        by_id(new, "workflows", "workflowId"),
    );
    for (id, old_flow) in &old_flows {
        let at = format!("workflow {id}");
        let Some(new_flow) = new_flows.get(id) else {
            push(at, "workflow removed".into(), true);
            continue;
        };
        let (old_steps, new_steps) = (
            by_id(old_flow, "steps", "stepId"),
            by_id(new_flow, "steps", "stepId"),
        );
        for (step, old_step) in &old_steps {
            let at = format!("{at}, step {step}");
            let Some(new_step) = new_steps.get(step) else {
                push(at, "step removed".into(), true);
                continue;
            };
            if old_step["operationId"] != new_step["operationId"] {
                push(
                    at.clone(),
                    format!(
                        "operation changed from {} to {}",
                        old_step["operationId"], new_step["operationId"]
                    ),
                    true,
                );
            }
            for field in [
                "successCriteria",
                "onSuccess",
                "onFailure",
                "parameters",
                "requestBody",
            ] {
                if old_step[field] != new_step[field] {
                    // A field that was absent is an empty list when it becomes one.
                    let none = Vec::new();
                    let old_list = match &old_step[field] {
                        Value::Null if new_step[field].is_array() => Some(&none),
                        other => other.as_array(),
                    };
                    // Actions are tried in order, the first whose criteria match is taken: one
                    // moved or inserted before others changes the branch taken, so only entries
                    // appended keep the old branches. Criteria and parameters are sets.
                    let ordered = field == "onSuccess" || field == "onFailure";
                    let kept = match (old_list, new_step[field].as_array()) {
                        (Some(o), Some(n)) if ordered => n.starts_with(o),
                        (Some(o), Some(n)) => o.iter().all(|x| n.contains(x)),
                        _ => false,
                    };
                    push(
                        at.clone(),
                        format!(
                            "{field} changed{}",
                            if kept {
                                " (entries added)"
                            } else if ordered {
                                " (an entry removed, altered or moved)"
                            } else {
                                " (an entry removed or altered)"
                            }
                        ),
                        !kept,
                    );
                }
            }
            for (name, _) in old_step["outputs"].as_object().into_iter().flatten() {
                if new_step["outputs"].get(name).is_none() {
                    push(at.clone(), format!("output {name} removed"), true);
                }
            }
        }
        for step in new_steps.keys().filter(|s| !old_steps.contains_key(*s)) {
            push(format!("{at}, step {step}"), "step added".into(), false);
        }
        // A step without a `goto` goes on to the next one in the list: the kept steps must keep
        // their order.
        let order = |flow: &Value, others: &std::collections::BTreeMap<String, Value>| {
            flow["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["stepId"].as_str())
                .filter(|s| others.contains_key(*s))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        if order(old_flow, &new_steps) != order(new_flow, &old_steps) {
            push(at.clone(), "steps reordered".into(), true);
        }
        for (name, _) in old_flow["outputs"].as_object().into_iter().flatten() {
            if new_flow["outputs"].get(name).is_none() {
                push(at.clone(), format!("workflow output {name} removed"), true);
            }
        }
        let required = |flow: &Value| -> Vec<String> {
            flow["inputs"]["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        for input in required(new_flow) {
            if !required(old_flow).contains(&input) {
                push(at.clone(), format!("input {input} is now required"), true);
            }
        }
    }
    for id in new_flows.keys().filter(|id| !old_flows.contains_key(*id)) {
        push(format!("workflow {id}"), "workflow added".into(), false);
    }
    // Whatever the rules above do not classify (descriptions, input schemas, output values,
    // source descriptions) still changes the published document: it asks for a new version.
    if findings.is_empty() && old != new {
        findings.push(Finding {
            path: "workflow document".into(),
            message: "the workflow changed where no rule classifies it (documentation, inputs, \
                      output values or sources): compatible, published under a new version"
                .into(),
            breaks_clients: false,
            breaks_servers: false,
            found_by: "workflow rule",
        });
    }
    findings.sort();
    findings
}

/// Rules for what drift does not compare.
mod rules {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::Finding;

    /// Every link of `doc`: (where, the link).
    fn all_links(doc: &Value) -> std::collections::BTreeMap<String, Value> {
        let mut found = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (code, response) in op["responses"].as_object().into_iter().flatten() {
                    let response = match response["$ref"].as_str() {
                        Some(reference) => reference
                            .strip_prefix('#')
                            .and_then(|p| doc.pointer(p))
                            .unwrap_or(response),
                        None => response,
                    };
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        found.insert(
                            format!(
                                "/paths/{}/{method}/responses/{code}/links/{name}",
                                path.replace('~', "~0").replace('/', "~1")
                            ),
                            link.clone(),
                        );
                    }
                }
            }
        }
        found
    }

    /// Links: one added tells clients something new (compatible); one removed, or changed in
    /// its target, parameters or body, breaks clients and tools that follow it. Drift does not
    /// compare links.
    pub(super) fn links(old: &Value, new: &Value) -> Vec<Finding> {
        let (before, after) = (all_links(old), all_links(new));
        let mut findings = Vec::new();
        let mut push = |path: &str, message: String, breaks: bool| {
            findings.push(Finding {
                path: path.to_owned(),
                message,
                breaks_clients: breaks,
                breaks_servers: false,
                found_by: "link rule",
            })
        };
        for (path, link) in &before {
            match after.get(path) {
                None => push(path, "link removed".into(), true),
                Some(now) => {
                    for field in ["operationId", "operationRef", "parameters", "requestBody"] {
                        if link[field] != now[field] {
                            push(
                                path,
                                format!(
                                    "link {field} changed from {} to {}",
                                    link[field], now[field]
                                ),
                                true,
                            );
                        }
                    }
                    if link["description"] != now["description"] {
                        push(path, "link description changed".into(), false);
                    }
                }
            }
        }
        for path in after.keys().filter(|p| !before.contains_key(*p)) {
            push(path, "link added".into(), false);
        }
        findings
    }

    /// Where a component schema is used: in requests, in responses, or both.
    #[derive(Clone, Copy, Default)]
    struct Usage {
        request: bool,
        response: bool,
    }

    /// The component schemas reachable from request bodies and parameters, and from responses.
    fn usage(doc: &Value, name: &str) -> Usage {
        fn refs(doc: &Value, node: &Value, seen: &mut BTreeSet<String>) {
            match node {
                Value::Object(map) => {
                    if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                        && seen.insert(reference.to_owned())
                        && let Some(target) = doc.pointer(reference.trim_start_matches('#'))
                    {
                        refs(doc, target, seen);
                    }
                    for value in map.values() {
                        refs(doc, value, seen);
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| refs(doc, i, seen)),
                _ => {}
            }
        }
        let target = format!("#/components/schemas/{name}");
        let mut usage = Usage::default();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, i)| i)
        {
            for operation in item.as_object().into_iter().flatten().map(|(_, o)| o) {
                let mut inputs = BTreeSet::new();
                refs(doc, &operation["requestBody"], &mut inputs);
                refs(doc, &operation["parameters"], &mut inputs);
                let mut outputs = BTreeSet::new();
                refs(doc, &operation["responses"], &mut outputs);
                usage.request |= inputs.contains(&target);
                usage.response |= outputs.contains(&target);
            }
        }
        usage
    }

    fn required(schema: &Value) -> BTreeSet<String> {
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The parts of a property schema that decide which values it accepts, those set only.
    fn shape(property: &Value) -> Value {
        let parts = [
            ("type", &property["type"]),
            ("format", &property["format"]),
            ("$ref", &property["$ref"]),
            ("items", &property["items"]["$ref"]),
            ("itemsType", &property["items"]["type"]),
            ("nullable", &property["nullable"]),
            ("oneOf", &property["oneOf"]),
        ];
        Value::Object(
            parts
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
        )
    }

    fn enum_values(property: &Value) -> Option<BTreeSet<String>> {
        property["enum"]
            .as_array()
            .map(|values| values.iter().map(Value::to_string).collect())
    }

    /// Object properties, classified by where the schema is used. In a response, clients read:
    /// a field removed, made optional, retyped or given new enum values breaks them. In a request,
    /// clients write: a field made required, retyped or given fewer enum values breaks them.
    pub fn properties(old: &Value, new: &Value) -> Vec<Finding> {
        let mut findings = Vec::new();
        let schemas = |doc: &Value| {
            doc["components"]["schemas"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let (before, after) = (schemas(old), schemas(new));
        for (name, old_schema) in &before {
            let Some(new_schema) = after.get(name) else {
                continue;
            };
            let (Some(old_props), Some(new_props)) = (
                old_schema["properties"].as_object(),
                new_schema["properties"].as_object(),
            ) else {
                continue;
            };
            let used = {
                let (a, b) = (usage(old, name), usage(new, name));
                Usage {
                    request: a.request || b.request,
                    response: a.response || b.response,
                }
            };
            let (old_required, new_required) = (required(old_schema), required(new_schema));
            let mut push =
                |field: &str, message: String, breaks_clients: bool, breaks_servers: bool| {
                    findings.push(Finding {
                        path: format!("#/components/schemas/{name}/properties/{field}"),
                        message,
                        breaks_clients,
                        breaks_servers,
                        found_by: "rule: properties",
                    });
                };
            for (field, old_property) in old_props {
                let was_required = old_required.contains(field);
                match new_props.get(field) {
                    None => push(
                        field,
                        format!("{name}.{field} was removed"),
                        used.response,
                        used.request && was_required,
                    ),
                    Some(new_property) => {
                        let is_required = new_required.contains(field);
                        if was_required && !is_required {
                            push(
                                field,
                                format!("{name}.{field} became optional"),
                                used.response,
                                false,
                            );
                        }
                        if !was_required && is_required {
                            push(
                                field,
                                format!("{name}.{field} became required"),
                                used.request,
                                used.response,
                            );
                        }
                        if shape(old_property) != shape(new_property) {
                            push(
                                field,
                                format!(
                                    "{name}.{field} changed type or format from {} to {}",
                                    shape(old_property),
                                    shape(new_property)
                                ),
                                true,
                                true,
                            );
                        }
                        if let (Some(a), Some(b)) =
                            (enum_values(old_property), enum_values(new_property))
                        {
                            if !a.is_subset(&b) {
                                push(
                                    field,
                                    format!("{name}.{field}'s enum was narrowed"),
                                    used.request,
                                    used.response,
                                );
                            }
                            if !b.is_subset(&a) {
                                push(
                                    field,
                                    format!("{name}.{field}'s enum was widened"),
                                    used.response,
                                    used.request,
                                );
                            }
                        }
                    }
                }
            }
            for field in new_props.keys().filter(|f| !old_props.contains_key(*f)) {
                let is_required = new_required.contains(field);
                let kind = if is_required { "required" } else { "optional" };
                push(
                    field,
                    format!("{name}.{field} was added ({kind})"),
                    is_required && used.request,
                    is_required && used.response,
                );
            }
        }
        findings
    }

    /// Security requirements and schemes: drift does not look at them. A scheme removed or a
    /// requirement changed means old clients authenticate the wrong way.
    pub fn security(old: &Value, new: &Value) -> Vec<Finding> {
        let mut findings = Vec::new();
        if old["security"] != new["security"] {
            findings.push(Finding {
                path: "#/security".into(),
                message: format!(
                    "the security requirements changed from {} to {}",
                    old["security"], new["security"]
                ),
                breaks_clients: true,
                breaks_servers: true,
                found_by: "rule: security",
            });
        }
        let schemes = |doc: &Value| {
            doc["components"]["securitySchemes"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let (before, after) = (schemes(old), schemes(new));
        for (name, scheme) in &before {
            let path = format!("#/components/securitySchemes/{name}");
            match after.get(name) {
                None => findings.push(Finding {
                    path,
                    message: format!("the security scheme {name} was removed"),
                    breaks_clients: true,
                    breaks_servers: false,
                    found_by: "rule: security",
                }),
                Some(changed) if strip_docs(changed) != strip_docs(scheme) => {
                    findings.push(Finding {
                        path,
                        message: format!("the security scheme {name} changed"),
                        breaks_clients: true,
                        breaks_servers: true,
                        found_by: "rule: security",
                    })
                }
                Some(_) => {}
            }
        }
        for name in after.keys().filter(|n| !before.contains_key(*n)) {
            findings.push(Finding {
                path: format!("#/components/securitySchemes/{name}"),
                message: format!("the security scheme {name} was added"),
                breaks_clients: false,
                breaks_servers: false,
                found_by: "rule: security",
            });
        }
        findings
    }

    /// A scheme without its prose: a reworded description is not a change.
    fn strip_docs(scheme: &Value) -> Value {
        let mut scheme = scheme.clone();
        if let Some(map) = scheme.as_object_mut() {
            map.remove("description");
        }
        scheme
    }
}

/// Where the spec lives in the repository, relative to its top.
const SPEC_IN_REPO: &str = "openapi/product-upgrades.yaml";
const WORKFLOW_IN_REPO: &str = "openapi/product-upgrades.arazzo.yaml";

/// Reads the spec at a git revision, or `None` when the revision exists and the spec did not
/// exist there. Any other failure is an error naming it: an unknown revision (with a hint when
/// the clone is shallow), a missing object, git not found.
pub fn spec_at(root: &Path, revision: &str) -> Result<Option<Value>, String> {
    spec_at_with(OsStr::new("git"), root, revision)
}

/// The workflow (`openapi/product-upgrades.arazzo.yaml`) at `revision`, if it existed there.
pub fn workflow_at(root: &Path, revision: &str) -> Result<Option<Value>, String> {
    file_at_with(OsStr::new("git"), root, revision, WORKFLOW_IN_REPO)
}

/// `spec_at`, with the git program to run.
fn spec_at_with(git: &OsStr, root: &Path, revision: &str) -> Result<Option<Value>, String> {
    file_at_with(git, root, revision, SPEC_IN_REPO)
}

/// A YAML file of the repository at `revision`, if it existed there.
fn file_at_with(
    git: &OsStr,
    root: &Path,
    revision: &str,
    file: &str,
) -> Result<Option<Value>, String> {
    let run = |args: &[&str]| -> Result<Output, String> {
        Command::new(git)
            .current_dir(root)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", git.to_string_lossy()))
    };
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).trim().to_owned();

    if revision.starts_with('-') {
        return Err(format!(
            "{revision:?} is not a revision (it reads as an option)"
        ));
    }
    let resolved = run(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{revision}^{{commit}}"),
    ])?;
    if !resolved.status.success() {
        let mut message = format!("git knows no commit {revision:?} in {}", root.display());
        let git_said = stderr(&resolved);
        let shallow = run(&["rev-parse", "--is-shallow-repository"])?;
        if !git_said.is_empty() {
            message.push_str(&format!(" (git: {git_said})"));
        }
        if String::from_utf8_lossy(&shallow.stdout).trim() == "true" {
            message.push_str(
                "; this clone is shallow, so the revision may lie beyond its history: \
                 fetch more (`git fetch --deepen=N` or `git fetch --unshallow`)",
            );
        } else if git_said.is_empty() {
            message.push_str("; check the revision's spelling");
        }
        return Err(message);
    }
    let commit = String::from_utf8_lossy(&resolved.stdout).trim().to_owned();
    // The spec's path from the top of the repository (the workspace may sit inside one).
    let prefix = run(&["rev-parse", "--show-prefix"])?;
    if !prefix.status.success() {
        return Err(format!(
            "git rev-parse --show-prefix failed: {}",
            stderr(&prefix)
        ));
    }
    let spec = format!("{}{file}", String::from_utf8_lossy(&prefix.stdout).trim());
    let spec = spec.as_str();

    // Absent here is the only "nothing to compare"; ls-tree fails on a missing tree object.
    let listed = run(&["ls-tree", "--full-tree", &commit, "--", spec])?;
    if !listed.status.success() {
        return Err(format!(
            "cannot list {spec} at {revision} ({commit}): {}",
            stderr(&listed)
        ));
    }
    let listing = String::from_utf8_lossy(&listed.stdout);
    if listing.trim().is_empty() {
        return Ok(None);
    }
    if listing.split_whitespace().nth(1) != Some("blob") {
        return Err(format!(
            "{spec} at {revision} ({commit}) is not a file: {}",
            listing.trim()
        ));
    }
    let shown = run(&["cat-file", "blob", &format!("{commit}:{spec}")])?;
    if !shown.status.success() {
        return Err(format!(
            "cannot read {spec} at {revision} ({commit}): {}",
            stderr(&shown)
        ));
    }
    let text = String::from_utf8_lossy(&shown.stdout);
    yaml_serde::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{file} at {revision} is not valid YAML: {e}"))
}

/// The merge base of HEAD with `main`, or HEAD (saying so) when there is none.
fn default_base(root: &Path) -> String {
    let merge_base = Command::new("git")
        .current_dir(root)
        .args(["merge-base", "HEAD", "main"])
        .output();
    match merge_base {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => {
            eprintln!(
                "note: no merge base of HEAD with main; comparing with HEAD (pass --base REV to choose)"
            );
            "HEAD".into()
        }
    }
}

/// Prints the findings; true when the change may land with the new spec's `info.version`.
pub fn report(findings: &[Finding], old: &Value, new: &Value) -> bool {
    let (from, to) = (
        old["info"]["version"].as_str().unwrap_or("?"),
        new["info"]["version"].as_str().unwrap_or("?"),
    );
    if findings.is_empty() {
        println!("no changes to the contract (info.version {from} -> {to})");
    }
    for finding in findings {
        let label = match (finding.breaks_clients, finding.breaks_servers) {
            (true, true) => "BREAKING for clients and servers",
            (true, false) => "BREAKING for existing clients",
            (false, true) => "breaking for existing servers",
            (false, false) => "compatible",
        };
        println!(
            "{label}: {}: {} [{}]",
            finding.path, finding.message, finding.found_by
        );
    }
    let breaking = findings.iter().filter(|f| f.breaks_clients).count();
    if !findings.is_empty() {
        println!(
            "\n{} change(s), {breaking} breaking for existing clients; info.version {from} -> {to}",
            findings.len()
        );
    }
    match compat::check(from, to, compat::required_bump(findings)) {
        Ok(()) => {
            if breaking > 0 {
                println!("the major version was raised, so breaking changes are allowed");
            }
            true
        }
        Err(why) => {
            println!("{why}");
            false
        }
    }
}

/// Without `--old` there is always a base; this says so instead of panicking if not.
fn unreachable_base<T>() -> Result<T, String> {
    Err("no revision to compare with".to_owned())
}

pub fn run(root: &Path, options: &Options) -> Result<bool, String> {
    let new = partner_center_contract::read_spec(&partner_center_contract::spec_path())?;
    // The base is worked out once (it may print a note saying which it chose).
    let base = match &options.old {
        Some(_) => None,
        None => Some(options.base.clone().unwrap_or_else(|| default_base(root))),
    };
    let old = match (&options.old, &base) {
        (Some(file), _) => partner_center_contract::read_spec(file)?,
        (None, None) => unreachable_base()?,
        (None, Some(base)) => match spec_at(root, base)? {
            Some(old) => old,
            None => {
                println!(
                    "the spec does not exist at {base} ({SPEC_IN_REPO} is absent there): nothing to compare"
                );
                return Ok(true);
            }
        },
    };
    let mut findings = diff(&old, &new)?;
    let new_workflow = std::fs::read_to_string(root.join(WORKFLOW_IN_REPO))
        .ok()
        .map(|text| yaml_serde::from_str::<Value>(&text))
        .transpose()
        .map_err(|e| format!("{WORKFLOW_IN_REPO} is not valid YAML: {e}"))?;
    let old_workflow = match (&options.old, &base) {
        // A spec file given alone: the workflow beside it, if any.
        (Some(file), _) => {
            let beside = file.with_file_name("product-upgrades.arazzo.yaml");
            std::fs::read_to_string(&beside)
                .ok()
                .and_then(|text| yaml_serde::from_str::<Value>(&text).ok())
        }
        (None, Some(base)) => workflow_at(root, base)?,
        (None, None) => unreachable_base()?,
    };
    findings.extend(diff_workflows(old_workflow.as_ref(), new_workflow.as_ref()));
    findings.sort();
    Ok(report(&findings, &old, &new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small spec: one operation whose request and response bodies are `Thing`.
    fn spec(thing: Value) -> Value {
        json!({
            "openapi": "3.0.3",
            "info": { "title": "t", "version": "1.0.0" },
            "paths": { "/v1/things": { "post": {
                "operationId": "makeThing",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Request" } } } },
                "responses": {
                    "200": { "description": "ok", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Thing" } } } },
                    "400": { "description": "bad" }
                }
            } } },
            "components": { "schemas": {
                "Thing": thing,
                "Request": { "type": "object", "required": ["name"],
                    "properties": { "name": { "type": "string" }, "note": { "type": "string" } } }
            } },
            "security": [ { "bearer": [] } ]
        })
    }

    fn thing() -> Value {
        json!({ "type": "object", "required": ["id", "count"], "properties": {
            "id": { "type": "string", "format": "uuid" },
            "count": { "type": "integer" },
            "kind": { "type": "string", "enum": ["a", "b"] } } })
    }

    fn findings(old: &Value, new: &Value) -> Vec<Finding> {
        diff(old, new).unwrap()
    }

    fn breaks_clients(old: &Value, new: &Value) -> bool {
        findings(old, new).iter().any(|f| f.breaks_clients)
    }

    #[test]
    fn the_same_spec_has_no_findings() {
        assert_eq!(findings(&spec(thing()), &spec(thing())), vec![]);
    }

    #[test]
    fn a_field_type_change_is_breaking_and_names_the_field() {
        let mut changed = thing();
        changed["properties"]["count"] = json!({ "type": "string" });
        let found = findings(&spec(thing()), &spec(changed));
        assert!(
            found
                .iter()
                .any(|f| f.breaks_clients && f.path.contains("count")),
            "{found:#?}"
        );
    }

    #[test]
    fn an_optional_response_field_added_does_not_break_clients() {
        let mut added = thing();
        added["properties"]["label"] = json!({ "type": "string" });
        let found = findings(&spec(thing()), &spec(added));
        assert!(!found.iter().any(|f| f.breaks_clients), "{found:#?}");
    }

    #[test]
    fn a_response_field_removed_or_made_optional_breaks_clients() {
        let mut removed = thing();
        removed["properties"]
            .as_object_mut()
            .unwrap()
            .remove("count");
        removed["required"] = json!(["id"]);
        assert!(breaks_clients(&spec(thing()), &spec(removed)));
        let mut optional = thing();
        optional["required"] = json!(["id"]);
        assert!(breaks_clients(&spec(thing()), &spec(optional)));
    }

    #[test]
    fn a_request_field_becoming_required_breaks_clients() {
        let mut new = spec(thing());
        new["components"]["schemas"]["Request"]["required"] = json!(["name", "note"]);
        assert!(breaks_clients(&spec(thing()), &new));
    }

    #[test]
    fn a_format_change_is_a_change_that_breaks_someone() {
        let mut changed = thing();
        changed["properties"]["id"] = json!({ "type": "string", "format": "date-time" });
        let found = findings(&spec(thing()), &spec(changed));
        assert!(
            found
                .iter()
                .any(|f| (f.breaks_clients || f.breaks_servers) && f.path.contains("id")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_response_enum_widened_breaks_clients() {
        let mut widened = thing();
        widened["properties"]["kind"]["enum"] = json!(["a", "b", "c"]);
        assert!(breaks_clients(&spec(thing()), &spec(widened)));
    }

    #[test]
    fn a_removed_operation_or_a_new_status_code_breaks_clients() {
        let mut no_operation = spec(thing());
        no_operation["paths"] = json!({});
        assert!(breaks_clients(&spec(thing()), &no_operation));
        let mut new_status = spec(thing());
        new_status["paths"]["/v1/things"]["post"]["responses"]["409"] =
            json!({ "description": "conflict" });
        assert!(breaks_clients(&spec(thing()), &new_status));
    }

    #[test]
    fn a_removed_status_code_breaks_servers_not_clients() {
        let mut fewer = spec(thing());
        fewer["paths"]["/v1/things"]["post"]["responses"]
            .as_object_mut()
            .unwrap()
            .remove("400");
        let found = findings(&spec(thing()), &fewer);
        assert!(
            found.iter().any(|f| f.breaks_servers && !f.breaks_clients),
            "{found:#?}"
        );
    }

    #[test]
    fn security_changes_are_found_by_the_projects_rule() {
        let mut new = spec(thing());
        new["security"] = json!([ { "oauth": ["scope"] } ]);
        let found = findings(&spec(thing()), &new);
        assert!(
            found
                .iter()
                .any(|f| f.found_by == "rule: security" && f.breaks_clients),
            "{found:#?}"
        );
    }

    #[test]
    fn raising_the_major_version_lets_breaking_changes_land() {
        let old = spec(thing());
        let mut new = spec(json!({ "type": "object", "properties": {} }));
        let found = findings(&old, &new);
        assert!(!report(&found, &old, &new));
        new["info"]["version"] = json!("2.0.0");
        assert!(report(&found, &old, &new));
    }

    #[test]
    fn a_compatible_change_needs_a_higher_version_and_no_change_needs_none() {
        let old = spec(thing());
        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]["label"] = json!({ "type": "string" });
        let found = findings(&old, &new);
        assert!(!found.is_empty() && !found.iter().any(|f| f.breaks_clients));
        assert!(!report(&found, &old, &new));
        new["info"]["version"] = json!("1.0.1");
        assert!(report(&found, &old, &new));
        assert!(report(&[], &old, &old));
    }

    /// A git repository in a fresh temporary folder: a first commit without the spec, a second
    /// one with it.
    struct Repo(PathBuf);

    impl Repo {
        fn new(name: &str) -> Repo {
            let dir =
                std::env::temp_dir().join(format!("xtask-diff-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("openapi")).unwrap();
            let repo = Repo(dir);
            repo.git(&["init", "--quiet"]);
            std::fs::write(repo.0.join("README.md"), "before the spec\n").unwrap();
            repo.git(&["add", "README.md"]);
            repo.git(&["commit", "--quiet", "-m", "no spec yet"]);
            std::fs::write(
                repo.0.join(SPEC_IN_REPO),
                "openapi: 3.0.3\ninfo:\n  title: t\n  version: 1.0.0\npaths: {}\n",
            )
            .unwrap();
            repo.git(&["add", SPEC_IN_REPO]);
            repo.git(&["commit", "--quiet", "-m", "the spec"]);
            repo
        }

        fn git(&self, args: &[&str]) {
            let output = Command::new("git")
                .current_dir(&self.0)
                .args([
                    "-c",
                    "user.name=xtask",
                    "-c",
                    "user.email=xtask@example.invalid",
                ])
                .args([
                    "-c",
                    "commit.gpgsign=false",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .output()
                .expect("git runs");
            assert!(
                output.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_spec_is_read_at_a_revision_that_has_it() {
        let repo = Repo::new("present");
        let spec = spec_at(&repo.0, "HEAD")
            .unwrap()
            .expect("the spec is at HEAD");
        assert_eq!(spec["info"]["version"], "1.0.0");
    }

    #[test]
    fn a_revision_without_the_spec_is_nothing_to_compare() {
        let repo = Repo::new("absent");
        assert_eq!(spec_at(&repo.0, "HEAD~1").unwrap(), None);
    }

    #[test]
    fn a_mistyped_revision_is_an_error_naming_it() {
        let repo = Repo::new("mistyped");
        for revision in ["nosuchrev", "HEAD~5", "--all"] {
            let error = spec_at(&repo.0, revision).unwrap_err();
            assert!(error.contains(revision), "{error}");
        }
        // And `cargo xtask diff --base nosuchrev` fails (exit code 2) instead of passing.
        let options = Options {
            base: Some("nosuchrev".into()),
            old: None,
        };
        let error = run(&repo.0, &options).unwrap_err();
        assert!(error.contains("nosuchrev"), "{error}");
    }

    #[test]
    fn a_shallow_clone_without_the_revision_says_to_fetch_more_history() {
        let repo = Repo::new("deep");
        let shallow = Repo(repo.0.with_extension("shallow"));
        let _ = std::fs::remove_dir_all(&shallow.0);
        let url = format!("file://{}", repo.0.display());
        let clone = Command::new("git")
            .args(["clone", "--quiet", "--depth", "1", &url])
            .arg(&shallow.0)
            .output()
            .unwrap();
        assert!(
            clone.status.success(),
            "{}",
            String::from_utf8_lossy(&clone.stderr)
        );
        assert!(spec_at(&shallow.0, "HEAD").unwrap().is_some());
        let error = spec_at(&shallow.0, "HEAD~1").unwrap_err();
        assert!(
            error.contains("HEAD~1") && error.contains("shallow"),
            "{error}"
        );
    }

    #[test]
    fn git_that_cannot_run_is_an_error() {
        let repo = Repo::new("nogit");
        let error = spec_at_with(OsStr::new("/nonexistent/git"), &repo.0, "HEAD").unwrap_err();
        assert!(error.contains("cannot run /nonexistent/git"), "{error}");
    }

    fn with_link(link: Option<Value>) -> Value {
        let mut doc = spec(thing());
        if let Some(link) = link {
            doc["paths"]["/v1/things"]["post"]["responses"]["200"]["links"] =
                json!({ "Next": link });
        }
        doc
    }

    #[test]
    fn a_link_added_is_compatible_and_one_removed_or_retargeted_breaks_clients() {
        let link =
            json!({ "operationId": "makeThing", "parameters": { "id": "$response.body#/id" } });
        let added = findings(&with_link(None), &with_link(Some(link.clone())));
        assert_eq!(added.len(), 1, "{added:?}");
        assert!(added[0].message == "link added" && !added[0].breaks_clients);

        let removed = findings(&with_link(Some(link.clone())), &with_link(None));
        assert!(
            removed
                .iter()
                .any(|f| f.message == "link removed" && f.breaks_clients),
            "{removed:?}"
        );

        let mut moved = link.clone();
        moved["parameters"] = json!({ "id": "$response.body#/thingId" });
        let changed = findings(&with_link(Some(link)), &with_link(Some(moved)));
        assert!(
            changed
                .iter()
                .any(|f| f.message.starts_with("link parameters changed") && f.breaks_clients),
            "{changed:?}"
        );
    }

    fn workflow(steps: Value) -> Value {
        json!({ "arazzo": "1.0.1", "workflows": [ { "workflowId": "w",
            "inputs": { "required": ["a"] }, "steps": steps, "outputs": { "o": "$steps.one.outputs.x" } } ] })
    }

    #[test]
    fn workflow_steps_removed_or_moved_break_clients_and_added_ones_do_not() {
        let one = json!({ "stepId": "one", "operationId": "makeThing", "outputs": { "x": "$statusCode" } });
        let two = json!({ "stepId": "two", "operationId": "makeThing" });
        let base = workflow(json!([one.clone()]));

        let added = diff_workflows(
            Some(&base),
            Some(&workflow(json!([one.clone(), two.clone()]))),
        );
        assert!(
            added.iter().all(|f| !f.breaks_clients) && added.len() == 1,
            "{added:?}"
        );

        let removed = diff_workflows(Some(&workflow(json!([one.clone(), two]))), Some(&base));
        assert!(
            removed
                .iter()
                .any(|f| f.message == "step removed" && f.breaks_clients),
            "{removed:?}"
        );

        let mut moved = one.clone();
        moved["operationId"] = json!("readThing");
        let changed = diff_workflows(Some(&base), Some(&workflow(json!([moved]))));
        assert!(
            changed
                .iter()
                .any(|f| f.message.starts_with("operation changed") && f.breaks_clients)
        );

        let mut no_output = one;
        no_output["outputs"] = json!({});
        let changed = diff_workflows(Some(&base), Some(&workflow(json!([no_output]))));
        assert!(
            changed
                .iter()
                .any(|f| f.message == "output x removed" && f.breaks_clients)
        );

        let first = diff_workflows(None, Some(&base));
        assert!(first.iter().all(|f| !f.breaks_clients) && first[0].message == "workflow added");
        assert!(diff_workflows(Some(&base), Some(&base)).is_empty());
    }

    #[test]
    fn a_list_a_step_did_not_have_added_is_compatible_and_actions_moved_break_clients() {
        let plain = json!({ "stepId": "one", "operationId": "makeThing" });
        let mut with_failure = plain.clone();
        with_failure["onFailure"] = json!([{ "name": "again", "type": "retry" }]);
        let added = diff_workflows(
            Some(&workflow(json!([plain]))),
            Some(&workflow(json!([with_failure.clone()]))),
        );
        assert!(
            !added.is_empty() && added.iter().all(|f| !f.breaks_clients),
            "{added:?}"
        );

        let (a, b) = (
            json!({ "name": "a", "type": "end", "criteria": [{ "condition": "$statusCode == 200" }] }),
            json!({ "name": "b", "type": "goto", "stepId": "one" }),
        );
        let mut first = with_failure.clone();
        first["onSuccess"] = json!([a.clone(), b.clone()]);
        let mut swapped = first.clone();
        swapped["onSuccess"] = json!([b.clone(), a.clone()]);
        let moved = diff_workflows(
            Some(&workflow(json!([first.clone()]))),
            Some(&workflow(json!([swapped]))),
        );
        assert!(
            moved
                .iter()
                .any(|f| f.message.contains("onSuccess") && f.breaks_clients),
            "{moved:?}"
        );
        let mut appended = first.clone();
        appended["onSuccess"] = json!([a, b.clone(), b]);
        let appended = diff_workflows(
            Some(&workflow(json!([first]))),
            Some(&workflow(json!([appended]))),
        );
        assert!(
            !appended.is_empty() && appended.iter().all(|f| !f.breaks_clients),
            "{appended:?}"
        );
    }

    #[test]
    fn steps_reordered_break_clients_and_unclassified_changes_still_count() {
        let one = json!({ "stepId": "one", "operationId": "makeThing", "outputs": { "x": "$statusCode" } });
        let two = json!({ "stepId": "two", "operationId": "makeThing" });
        let before = workflow(json!([one.clone(), two.clone()]));
        let after = workflow(json!([two, one]));
        let found = diff_workflows(Some(&before), Some(&after));
        assert!(
            found
                .iter()
                .any(|f| f.message == "steps reordered" && f.breaks_clients),
            "{found:?}"
        );

        let mut documented = before.clone();
        documented["workflows"][0]["description"] = json!("now documented");
        let found = diff_workflows(Some(&before), Some(&documented));
        assert!(found.len() == 1 && !found[0].breaks_clients, "{found:?}");
    }
}
