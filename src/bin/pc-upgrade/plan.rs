//! `pc-upgrade plan`: check eligibility for a whole customer book and write a plan file, with
//! no create call. The first step of the bulk workflow (issue 12); `apply` reads the plan.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use futures_util::StreamExt;
use partner_center_upgrades::{
    Client, CustomerId, Eligibility, Error, ProductFamily, RequestIds, Response, ServiceErrorCode,
    UpgradeRequest, printable,
};
use serde_json::{Value, json};

use super::{Output, exit};

/// The largest customer file read.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// The longest line of a customer file.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// The plan file's format version.
const PLAN_VERSION: u32 = 1;
/// The longest reason or message kept per customer: the plan stays bounded whatever a server
/// says.
const MAX_TEXT_CHARS: usize = 1000;
/// The longest textual error code kept.
const MAX_CODE_CHARS: usize = 64;
/// The most not-eligible reasons printed (the plan has them all).
const MAX_REASONS_SHOWN: usize = 20;

/// Server text as the plan keeps it: printable and bounded.
fn text(value: &str) -> String {
    super::journal::bounded_to(value, MAX_TEXT_CHARS)
}

/// An error code as the plan keeps it: a number as it is, text printable and bounded.
fn code(code: &ServiceErrorCode) -> Value {
    match code {
        ServiceErrorCode::Number(n) => json!(n),
        other => json!(super::journal::bounded_to(
            &other.to_string(),
            MAX_CODE_CHARS
        )),
    }
}

#[derive(Args)]
pub struct PlanArgs {
    /// The customers: a CSV file with a `customerId` column (and a header row), or one id per
    /// line (`#` comments and blank lines skipped); `-` reads stdin
    #[arg(long, value_name = "FILE")]
    customers: String,
    /// Where to write the plan (JSON), atomically
    #[arg(long, value_name = "PLAN")]
    out: PathBuf,
    /// Eligibility checks in flight at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

/// What the eligibility check said about one customer, in the plan's order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Eligible,
    UnderWay,
    NotEligible,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Eligible,
        Outcome::UnderWay,
        Outcome::NotEligible,
        Outcome::Error,
    ];

    fn key(self) -> &'static str {
        match self {
            Outcome::Eligible => "eligible",
            Outcome::UnderWay => "underWay",
            Outcome::NotEligible => "notEligible",
            Outcome::Error => "error",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Eligible => "eligible",
            Outcome::UnderWay => "upgrade already under way",
            Outcome::NotEligible => "not eligible",
            Outcome::Error => "errors",
        }
    }
}

/// One customer's line in the plan.
struct Entry {
    customer: CustomerId,
    outcome: Outcome,
    json: Value,
}

/// `pc-upgrade plan`: read the customers, check each once, write the plan, print the counts.
pub async fn plan(client: &Client, args: PlanArgs, output: Output) -> u8 {
    let ids = match read_input(&args.customers).and_then(|text| parse_customers(&text)) {
        Ok(ids) => ids,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::USAGE;
        }
    };
    for (customer, lines) in &ids.duplicates {
        let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
        eprintln!(
            "warning: customer {customer} is listed more than once (lines {}); checked once",
            lines.join(", ")
        );
    }
    // Claim the temporary file before sending anything: a plan that cannot be written is
    // found out before a thousand checks, not after.
    let mut temp = match TempFile::create(&args.out) {
        Ok(temp) => temp,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::SERVICE_ERROR;
        }
    };

    let family = ProductFamily::azure();
    let mut entries: Vec<Entry> =
        futures_util::stream::iter(ids.unique.iter().copied().map(|customer| async move {
            let answer = client
                .check_eligibility(&UpgradeRequest::azure(customer))
                .await;
            classify(customer, answer)
        }))
        .buffer_unordered(usize::from(args.concurrency))
        .collect()
        .await;
    entries.sort_by_key(|e| (e.outcome, e.customer));

    let counts = counts(&entries, ids.duplicates.len());
    let document = json!({
        "version": PLAN_VERSION,
        "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "baseUrl": client.base_url().as_str(),
        "productFamily": family.as_str(),
        "customers": entries.iter().map(|e| &e.json).collect::<Vec<_>>(),
        "counts": counts,
    });
    if let Err(message) = temp.commit(&document) {
        eprintln!("error: {}", printable(&message));
        return exit::SERVICE_ERROR;
    }

    match output {
        Output::Json => println!("{counts}"),
        Output::Text => print_counts(&counts, &entries, &args.out),
    }
    exit::SUCCESS
}

fn classify(customer: CustomerId, answer: Result<Response<Eligibility>, Error>) -> Entry {
    let mut json = json!({ "customerId": customer });
    let ids = |json: &mut Value, source: &dyn RequestIds| {
        if let Some(id) = source.request_id() {
            json["requestId"] = json!(id.to_string());
        }
        if let Some(id) = source.correlation_id() {
            json["correlationId"] = json!(id.to_string());
        }
    };
    let outcome = match answer {
        Ok(response) => {
            ids(&mut json, &response);
            let answer = response.value();
            if let Some(id) = answer.upgrade_id {
                json["upgradeId"] = json!(id.to_string());
            }
            if let Some(reason) = &answer.reason {
                json["reason"] = json!(text(reason));
            }
            if answer.is_eligible {
                Outcome::Eligible
            } else if answer.upgrade_id.is_some() {
                Outcome::UnderWay
            } else {
                Outcome::NotEligible
            }
        }
        Err(error) => {
            ids(&mut json, &error);
            if let Some(status) = error.status() {
                json["status"] = json!(status);
            }
            match error.service_error() {
                // Partner Center refusing the check for this customer (no Azure
                // subscriptions, 900108, say) is an answer about the customer.
                Some(service) if error.status() == Some(403) => {
                    json["reason"] = json!(text(&service.description));
                    json["code"] = code(&service.code);
                    Outcome::NotEligible
                }
                service => {
                    if let Some(service) = service {
                        json["code"] = code(&service.code);
                    }
                    json["message"] = json!(text(&super::report(&error)));
                    Outcome::Error
                }
            }
        }
    };
    json["outcome"] = json!(outcome.key());
    Entry {
        customer,
        outcome,
        json,
    }
}

/// The counts object: per outcome, the not-eligible reasons (with their code), errors by status.
fn counts(entries: &[Entry], duplicates: usize) -> Value {
    let mut counts = json!({ "total": entries.len(), "duplicates": duplicates });
    for outcome in Outcome::ALL {
        counts[outcome.key()] = json!(entries.iter().filter(|e| e.outcome == outcome).count());
    }
    let mut reasons: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        let text = |key: &str| match &entry.json[key] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match entry.outcome {
            Outcome::NotEligible => {
                *reasons.entry((text("reason"), text("code"))).or_default() += 1
            }
            Outcome::Error => *errors.entry(text("status")).or_default() += 1,
            _ => {}
        }
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts["notEligibleReasons"] = reasons
        .into_iter()
        .map(|((reason, code), count)| {
            let mut item = json!({ "reason": reason, "count": count });
            if !code.is_empty() {
                item["code"] = json!(code);
            }
            item
        })
        .collect();
    counts["errorsByStatus"] = errors
        .into_iter()
        .map(|(status, count)| {
            let status = if status.is_empty() {
                "noAnswer".to_owned()
            } else {
                status
            };
            (status, json!(count))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    counts
}

fn print_counts(counts: &Value, entries: &[Entry], out: &Path) {
    println!(
        "plan written to {}; customers checked: {}",
        printable(&out.display().to_string()),
        counts["total"]
    );
    for outcome in Outcome::ALL {
        println!("{}: {}", outcome.label(), counts[outcome.key()]);
        if outcome == Outcome::NotEligible {
            let reasons = counts["notEligibleReasons"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for item in reasons.iter().take(MAX_REASONS_SHOWN) {
                let code = item["code"]
                    .as_str()
                    .map(|c| format!(" (code {})", printable(c)))
                    .unwrap_or_default();
                let reason = item["reason"].as_str().unwrap_or_default();
                let reason = if reason.is_empty() {
                    "no reason given"
                } else {
                    reason
                };
                println!("  {:>5}  {}{}", item["count"], printable(reason), code);
            }
            if reasons.len() > MAX_REASONS_SHOWN {
                println!(
                    "  ... and {} other reasons (the plan lists them all)",
                    reasons.len() - MAX_REASONS_SHOWN
                );
            }
        }
    }
    // A few failed checks by name, so the operator sees what went wrong without the file.
    for entry in entries
        .iter()
        .filter(|e| e.outcome == Outcome::Error)
        .take(5)
    {
        println!(
            "  {}: {}",
            entry.customer,
            printable(entry.json["message"].as_str().unwrap_or_default())
        );
    }
    if counts["duplicates"].as_u64().unwrap_or(0) > 0 {
        println!("duplicates (checked once): {}", counts["duplicates"]);
    }
}

/// The file's text, at most [`MAX_INPUT_BYTES`].
fn read_input(path: &str) -> Result<String, String> {
    let name = if path == "-" { "stdin" } else { path };
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        if file.metadata().is_ok_and(|m| m.len() > MAX_INPUT_BYTES) {
            return Err(too_large(name));
        }
        file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)
    };
    read.map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(name));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8 text"))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

fn too_large(name: &str) -> String {
    format!(
        "{name} is larger than {} MiB; split it",
        MAX_INPUT_BYTES / 1024 / 1024
    )
}

/// The customers of a file, in the order first listed, and the ids listed more than once with
/// the lines they are on.
struct Customers {
    unique: Vec<CustomerId>,
    duplicates: Vec<(CustomerId, Vec<usize>)>,
}

/// A CSV with a `customerId` column in its header row, or one id per line. Every id must parse;
/// the first that does not is named with its line number.
fn parse_customers(text: &str) -> Result<Customers, String> {
    let mut found: Vec<(usize, CustomerId)> = Vec::new();
    let mut column: Option<usize> = None;
    let mut format_known = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(format!(
                "line {number} is longer than {MAX_LINE_BYTES} bytes"
            ));
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if !format_known {
            if trimmed.starts_with('#') {
                continue;
            }
            format_known = true;
            let fields = split_csv(trimmed).map_err(|e| format!("line {number}: {e}"))?;
            if let Some(at) = fields
                .iter()
                .position(|f| f.eq_ignore_ascii_case("customerId"))
            {
                column = Some(at);
                continue;
            }
            if fields.len() > 1 {
                return Err(format!(
                    "line {number}: a CSV file needs a header row with a customerId column"
                ));
            }
        }
        let field = match column {
            Some(at) => {
                let fields = split_csv(trimmed).map_err(|e| format!("line {number}: {e}"))?;
                fields.get(at).cloned().ok_or_else(|| {
                    format!("line {number}: no customerId field (column {})", at + 1)
                })?
            }
            None if trimmed.starts_with('#') => continue,
            None => trimmed.to_owned(),
        };
        let id = CustomerId::parse(field.trim())
            .map_err(|e| format!("line {number}: not a customer id: {e}"))?;
        found.push((number, id));
    }
    if found.is_empty() {
        return Err("no customers listed".to_owned());
    }
    let mut lines: HashMap<CustomerId, Vec<usize>> = HashMap::new();
    let mut unique = Vec::new();
    for (number, id) in found {
        let at = lines.entry(id).or_default();
        if at.is_empty() {
            unique.push(id);
        }
        at.push(number);
    }
    let duplicates = unique
        .iter()
        .filter_map(|id| {
            let at = &lines[id];
            (at.len() > 1).then(|| (*id, at.clone()))
        })
        .collect();
    Ok(Customers { unique, duplicates })
}

/// One CSV record on one line: fields split on commas, double quotes around a field, `""`
/// for a quote inside one.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_owned()),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    fields.push(field.trim().to_owned());
    Ok(fields)
}

/// The plan's temporary file beside its destination, renamed over it once written; removed
/// when dropped before that.
struct TempFile {
    path: PathBuf,
    destination: PathBuf,
    file: Option<std::fs::File>,
}

impl TempFile {
    fn create(destination: &Path) -> Result<TempFile, String> {
        let name = destination
            .file_name()
            .ok_or_else(|| format!("{} is not a file name", destination.display()))?;
        let dir = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let path = dir.join(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot write the plan {}: {e}", destination.display()))?;
        Ok(TempFile {
            path,
            destination: destination.to_owned(),
            file: Some(file),
        })
    }

    fn commit(&mut self, document: &Value) -> Result<(), String> {
        let fail = |e: std::io::Error| {
            format!("cannot write the plan {}: {e}", self.destination.display())
        };
        let mut file = self
            .file
            .take()
            .ok_or_else(|| "already written".to_owned())?;
        let text = serde_json::to_vec_pretty(document).map_err(|e| e.to_string())?;
        file.write_all(&text).map_err(fail)?;
        file.write_all(b"\n").map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&self.path, &self.destination).map_err(fail)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
