//! `pc-upgrade report` as a process: journals built here from the committed schema
//! (journal.sql), the CSV, JSON and HTML files checked against them, hostile values made inert,
//! files that are not journals refused, and the page rendered by headless Chromium with its
//! scripts run and no network.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};

/// The schema `apply` writes; the journals of these tests are made from it.
const SCHEMA: &str = include_str!("../../src/bin/pc-upgrade/journal.sql");

/// The journal's customer states, in the order the report counts them.
const STATES: [&str; 9] = [
    "completed",
    "partiallyCompleted",
    "cancelled",
    "failed",
    "notEligible",
    "error",
    "following",
    "creating",
    "pending",
];

/// customers.csv/.json columns and the journal column each comes from.
const CUSTOMER_COLUMNS: [(&str, &str); 16] = [
    ("customerId", "customer_id"),
    ("planned", "planned"),
    ("state", "state"),
    ("upgradeId", "upgrade_id"),
    ("upgradeStatus", "upgrade_status"),
    ("reason", "reason"),
    ("errorCode", "error_code"),
    ("errorMessage", "error_message"),
    ("httpStatus", "http_status"),
    ("createRequestId", "create_request_id"),
    ("createCorrelationId", "create_correlation_id"),
    ("createAttempts", "create_attempts"),
    ("polls", "polls"),
    ("resumed", "resumed"),
    ("startedAt", "started_at"),
    ("finishedAt", "finished_at"),
];

/// line_items.csv/.json columns and the journal column each comes from (`c.`: the customer's).
const ITEM_COLUMNS: [(&str, &str); 13] = [
    ("customerId", "customer_id"),
    ("upgradeId", "c.upgrade_id"),
    ("seq", "seq"),
    ("sourceSubscription", "source_id"),
    ("sourceName", "source_name"),
    ("targetSubscription", "target_id"),
    ("targetName", "target_name"),
    ("status", "status"),
    ("upgradedDate", "upgraded_date"),
    ("errorCode", "error_code"),
    ("errorDescription", "error_description"),
    ("createRequestId", "c.create_request_id"),
    ("createCorrelationId", "c.create_correlation_id"),
];

/// A folder of its own for one test's files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcu-report-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A journal as `apply` leaves it: the schema, write-ahead log on, the run's row.
struct Journal {
    dir: PathBuf,
    path: PathBuf,
    conn: Connection,
    /// The customers inserted, by id.
    customers: BTreeMap<String, Value>,
    /// The line items inserted, in (customer, seq) order.
    items: Vec<Value>,
}

impl Journal {
    fn new() -> Journal {
        Journal::with_run(json!({
            "id": 1,
            "journal_version": 1,
            "plan_path": "plans/book-2025.json",
            "plan_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "plan_created_at": "2025-03-01T09:00:00Z",
            "base_url": "https://api.partnercenter.microsoft.com/",
            "product_family": "Azure",
            "created_at": "2025-03-01T09:05:00Z",
        }))
    }

    fn with_run(run: Value) -> Journal {
        let dir = scratch();
        let path = dir.join("journal.sqlite");
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch(SCHEMA).unwrap();
        insert(&conn, "run", &run);
        Journal {
            dir,
            path,
            conn,
            customers: BTreeMap::new(),
            items: Vec::new(),
        }
    }

    fn session(&self, row: Value) {
        insert(&self.conn, "sessions", &row);
    }

    /// Inserts a customer in `state`, with `extra` columns over the defaults; returns its id.
    fn customer(&mut self, state: &str, extra: Value) -> String {
        let mut row = json!({
            "customer_id": id(),
            "planned": "eligible",
            "state": state,
            "updated_at": "2025-03-01T10:00:00.000Z",
        });
        for (key, value) in extra.as_object().unwrap() {
            row[key] = value.clone();
        }
        insert(&self.conn, "customers", &row);
        let customer = row["customer_id"].as_str().unwrap().to_owned();
        self.customers.insert(customer.clone(), row);
        customer
    }

    fn line_item(&mut self, customer: &str, seq: i64, extra: Value) {
        let mut row = json!({ "customer_id": customer, "seq": seq, "status": "completed" });
        for (key, value) in extra.as_object().unwrap() {
            row[key] = value.clone();
        }
        insert(&self.conn, "line_items", &row);
        self.items.push(row);
        self.items.sort_by(|a, b| {
            (a["customer_id"].as_str(), a["seq"].as_i64())
                .cmp(&(b["customer_id"].as_str(), b["seq"].as_i64()))
        });
    }

    fn event(&self, session: i64, customer: &str, operation: Option<&str>, state: &str) {
        insert(
            &self.conn,
            "events",
            &json!({
                "at": "2025-03-01T10:00:00.000Z",
                "session_id": session,
                "customer_id": customer,
                "operation": operation,
                "request_id": id(),
                "correlation_id": id(),
                "http_status": 200,
                "attempts": 1,
                "state": state,
            }),
        );
    }

    fn out(&self) -> PathBuf {
        self.dir.join("report")
    }

    /// customers.json's rows as the journal says they must be, in customer id order.
    fn expected_customers(&self) -> Vec<Value> {
        self.customers
            .values()
            .map(|row| {
                let mut expected = serde_json::Map::new();
                for (key, column) in CUSTOMER_COLUMNS {
                    let value = match (column, row.get(column)) {
                        ("resumed", value) => {
                            json!(value.and_then(Value::as_i64).unwrap_or(0) != 0)
                        }
                        ("create_attempts" | "polls", None) => json!(0),
                        (_, value) => value.cloned().unwrap_or(Value::Null),
                    };
                    expected.insert(key.to_owned(), value);
                }
                Value::Object(expected)
            })
            .collect()
    }

    /// line_items.json's rows as the journal says they must be.
    fn expected_items(&self) -> Vec<Value> {
        self.items
            .iter()
            .map(|row| {
                let customer = &self.customers[row["customer_id"].as_str().unwrap()];
                let mut expected = serde_json::Map::new();
                for (key, column) in ITEM_COLUMNS {
                    let value = match column.strip_prefix("c.") {
                        Some(column) => customer.get(column),
                        None => row.get(column),
                    };
                    expected.insert(key.to_owned(), value.cloned().unwrap_or(Value::Null));
                }
                Value::Object(expected)
            })
            .collect()
    }

    fn count(&self, state: &str) -> usize {
        self.customers
            .values()
            .filter(|c| c["state"] == state)
            .count()
    }
}

/// Inserts `row` (an object of column → value) into `table`.
fn insert(conn: &Connection, table: &str, row: &Value) {
    use rusqlite::types::Value as Sql;
    let object = row.as_object().unwrap();
    let columns: Vec<&str> = object.keys().map(String::as_str).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    let values = object.values().map(|value| match value {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Number(n) => Sql::Integer(n.as_i64().unwrap()),
        Value::String(s) => Sql::Text(s.clone()),
        other => panic!("no SQL value for {other}"),
    });
    conn.execute(&sql, rusqlite::params_from_iter(values))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `pc-upgrade [global] report JOURNAL --out DIR`.
fn report(journal: &Path, out: &Path, global: &[&str]) -> Output {
    crate::support::pc_upgrade_command()
        .args(global)
        .arg("report")
        .arg(journal)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the file was written"))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// An RFC 4180 reader: CRLF between records, double quotes around a field holding a comma,
/// quote or line break, `""` for a quote. Strict: a bare LF outside quotes fails.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    assert!(text.ends_with("\r\n"), "records end with CRLF: {text:?}");
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            '"' => panic!("a quote inside an unquoted field: {text:?}"),
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF outside quotes");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("a bare LF outside quotes: {text:?}"),
            c => field.push(c),
        }
    }
    assert!(!quoted, "a quoted field is not closed");
    records
}

/// The CSV text of a JSON value: empty for null, and text a spreadsheet would run as a
/// formula with a leading `'`.
fn csv_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']) => {
            format!("'{s}")
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks `csv` has the header `columns` and one record per JSON row, field for field.
fn assert_csv_matches(csv: &Path, columns: &[&str], rows: &[Value]) {
    let text = std::fs::read_to_string(csv).unwrap();
    let records = parse_csv(&text);
    assert_eq!(records[0], columns, "{}", csv.display());
    assert_eq!(records.len() - 1, rows.len(), "{}", csv.display());
    for (record, row) in records[1..].iter().zip(rows) {
        let expected: Vec<String> = columns.iter().map(|c| csv_text(&row[*c])).collect();
        assert_eq!(record, &expected, "{}", csv.display());
    }
}

/// A journal with a customer in every state, two sessions (the first killed), line items and
/// events.
fn book() -> Journal {
    let mut journal = Journal::new();
    journal.session(json!({
        "id": 1, "started_at": "2025-03-01T09:05:00Z", "operator": "admin@contoso.onmicrosoft.com",
        "tenant": id(), "host": "ops-1", "pid": 4242, "version": "0.1.0",
    }));
    journal.session(json!({
        "id": 2, "started_at": "2025-03-01T11:00:00Z", "ended_at": "2025-03-01T11:30:00Z",
        "operator": "admin@contoso.onmicrosoft.com", "host": "ops-1", "pid": 4343,
        "version": "0.1.0",
    }));
    let upgraded = |n: u32, state: &str, extra: Value| {
        let mut row = json!({
            "upgrade_id": id(),
            "create_request_id": id(),
            "create_correlation_id": id(),
            "create_attempts": 1,
            "upgrade_status": state,
            "polls": n,
            "started_at": format!("2025-03-01T09:1{n}:00.000Z"),
            "finished_at": format!("2025-03-01T10:{:02}:00.000Z", n * 5),
        });
        for (key, value) in extra.as_object().unwrap() {
            row[key] = value.clone();
        }
        row
    };
    let first = journal.customer("completed", upgraded(1, "completed", json!({})));
    journal.customer(
        "completed",
        upgraded(
            2,
            "completed",
            json!({ "resumed": 1, "create_attempts": 0 }),
        ),
    );
    let partial = journal.customer(
        "partiallyCompleted",
        upgraded(3, "partiallyCompleted", json!({})),
    );
    journal.customer(
        "failed",
        upgraded(
            4,
            "failed",
            json!({ "error_code": "600051", "error_message": "the upgrade failed: quota" }),
        ),
    );
    journal.customer("cancelled", upgraded(5, "cancelled", json!({})));
    journal.customer(
        "notEligible",
        json!({
            "reason": "The customer has no Azure subscriptions",
            "error_code": "900108",
            "http_status": 403,
            "finished_at": "2025-03-01T10:07:00.000Z",
        }),
    );
    journal.customer(
        "error",
        json!({
            "error_message": "Partner Center answered 503 Service Unavailable",
            "http_status": 503,
            "create_request_id": id(),
            "create_attempts": 4,
            "updated_at": "2025-03-01T10:40:00.000Z",
        }),
    );
    journal.customer(
        "following",
        json!({ "upgrade_id": id(), "upgrade_status": "inProgress", "polls": 7 }),
    );
    journal.customer(
        "creating",
        json!({ "create_request_id": id(), "planned": "underWay" }),
    );
    journal.customer("pending", json!({}));
    for (seq, (source, target)) in [("sub-1", "plan-1"), ("sub-2", "plan-1")]
        .iter()
        .enumerate()
    {
        journal.line_item(
            &first,
            seq as i64,
            json!({
                "source_id": source, "source_name": "Azure subscription",
                "target_id": target, "target_name": "Azure plan",
                "upgraded_date": "2025-03-01T10:05:00Z",
            }),
        );
    }
    journal.line_item(
        &partial,
        0,
        json!({ "source_id": "sub-3", "status": "failed", "error_code": "600052",
                "error_description": "the subscription has reservations" }),
    );
    let ids: Vec<(String, String)> = journal
        .customers
        .iter()
        .map(|(id, row)| (id.clone(), row["state"].as_str().unwrap().to_owned()))
        .collect();
    for (customer, state) in ids {
        journal.event(1, &customer, Some("checkEligibility"), "pending");
        journal.event(2, &customer, Some("createUpgrade"), &state);
        journal.event(2, &customer, None, &state);
    }
    journal
}

#[test]
fn report_rows_match_the_journal() {
    let journal = book();
    let out = journal.out();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let customers = read_json(&out.join("customers.json"));
    assert_eq!(customers, Value::Array(journal.expected_customers()));
    let items = read_json(&out.join("line_items.json"));
    assert_eq!(items, Value::Array(journal.expected_items()));
    // The members come in the columns' order, as in the CSV files.
    let text = std::fs::read_to_string(out.join("customers.json")).unwrap();
    let second_line = text.lines().nth(1).unwrap();
    assert!(second_line.starts_with("{\"customerId\":"), "{second_line}");
    let columns: Vec<&str> = CUSTOMER_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(
        &out.join("customers.csv"),
        &columns,
        customers.as_array().unwrap(),
    );
    let columns: Vec<&str> = ITEM_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(
        &out.join("line_items.csv"),
        &columns,
        items.as_array().unwrap(),
    );

    let text = stdout(&output);
    assert!(text.contains("customers: 10, line items: 3"), "{text}");
    for (label, count) in [
        ("completed", 2),
        ("partially completed", 1),
        ("failed", 1),
        ("not eligible", 1),
        ("under way", 1),
        ("pending", 1),
    ] {
        assert!(
            text.contains(&format!("  {label}: {count}\n")),
            "{label}: {text}"
        );
    }
    for file in [
        "report.html",
        "customers.csv",
        "customers.json",
        "line_items.csv",
        "line_items.json",
    ] {
        assert!(
            text.contains(&out.join(file).display().to_string()),
            "{file}: {text}"
        );
    }

    // The page: counts by state, the chart's lines ending at each outcome's count, sessions.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for state in STATES {
        let count = journal.count(state);
        assert!(
            page.contains(&format!(
                "<span id=\"count-{state}\" class=\"count\" data-state=\"{state}\" \
                 data-count=\"{count}\">{count}</span>"
            )),
            "{state}"
        );
    }
    assert!(page.contains("<span id=\"count-total\" class=\"count\" data-count=\"10\">10</span>"));
    for state in [
        "completed",
        "partiallyCompleted",
        "failed",
        "cancelled",
        "notEligible",
        "error",
    ] {
        let count = journal.count(state);
        assert!(
            page.contains(&format!("data-state=\"{state}\" data-final=\"{count}\"")),
            "chart line for {state}"
        );
    }
    assert!(page.contains("admin@contoso.onmicrosoft.com"));
    assert!(page.contains("did not end"), "session 1 was killed");
    assert_eq!(page.matches("<tr data-state=").count(), 10);

    // --output json: the same counts; a second report replaces the files and leaves no
    // temporary file behind.
    let output = report(&journal.path, &out, &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["total"], 10);
    assert_eq!(summary["lineItems"], 3);
    for state in STATES {
        assert_eq!(summary["counts"][state], journal.count(state), "{state}");
    }
    assert_eq!(summary["files"].as_array().unwrap().len(), 5);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "customers.csv",
            "customers.json",
            "line_items.csv",
            "line_items.json",
            "report.html"
        ]
    );
}

#[test]
fn report_csv_quotes_fields_and_neutralises_formulas() {
    let mut journal = Journal::new();
    let hostile = [
        "=HYPERLINK(\"http://example.invalid\",\"click\")",
        "+1+1",
        "-2+3",
        "@SUM(A1:A9)",
        "\tTab first",
        "\rCR first",
    ];
    let customer = journal.customer(
        "failed",
        json!({
            "reason": hostile[0],
            "error_code": hostile[3],
            "error_message": "Contoso, \"Ltd\"\r\nsecond line",
            "upgrade_status": hostile[4],
        }),
    );
    journal.customer(
        "failed",
        json!({ "reason": hostile[1], "error_message": hostile[5] }),
    );
    journal.customer("notEligible", json!({ "reason": hostile[2] }));
    journal.line_item(
        &customer,
        0,
        json!({ "source_name": "a,b", "target_name": "+cmd|' /C calc'!A0",
                "error_description": "line one\nline two" }),
    );
    let out = journal.out();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // The JSON files keep every value exactly; the CSV files quote and neutralise (checked
    // field by field against the JSON with an RFC 4180 reader).
    let customers = read_json(&out.join("customers.json"));
    assert_eq!(customers, Value::Array(journal.expected_customers()));
    let items = read_json(&out.join("line_items.json"));
    assert_eq!(items, Value::Array(journal.expected_items()));
    let columns: Vec<&str> = CUSTOMER_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(
        &out.join("customers.csv"),
        &columns,
        customers.as_array().unwrap(),
    );
    let columns: Vec<&str> = ITEM_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(
        &out.join("line_items.csv"),
        &columns,
        items.as_array().unwrap(),
    );

    // And as bytes: no field starts with a formula character, quotes doubled.
    let text = std::fs::read_to_string(out.join("customers.csv")).unwrap();
    assert!(text.contains(",\"'=HYPERLINK(\"\"http://example.invalid\"\",\"\"click\"\")\","));
    assert!(text.contains(",'+1+1,"));
    assert!(text.contains(",'@SUM(A1:A9),"));
    assert!(text.contains(",\"Contoso, \"\"Ltd\"\"\r\nsecond line\","));
    for record in parse_csv(&text) {
        for field in record {
            assert!(
                !field.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{field:?} would run as a formula"
            );
        }
    }
    let text = std::fs::read_to_string(out.join("line_items.csv")).unwrap();
    assert!(text.contains(",\"a,b\","), "{text}");
    assert!(text.contains(",'+cmd|' /C calc'!A0,"), "{text}");
}

/// Values as hostile as Partner Center's text (or a tampered journal) could be: markup,
/// a script element's end, quotes that end attributes, control and bidirectional characters,
/// and resources that would be fetched if any of it became markup.
const SCRIPT_ESCAPE: &str = "</script><script>alert(1)</script>";
const PWN_SCRIPT: &str =
    "</script><script>document.documentElement.setAttribute('data-pwned','script')</script>";
const PWN_IMG: &str = "\"><img src=\"https://pwned.invalid/x.png\" \
                       onerror=\"document.documentElement.setAttribute('data-pwned','img')\">";
const PWN_SVG: &str =
    "'><svg onload=\"document.documentElement.setAttribute('data-pwned','svg')\">";

fn hostile_journal() -> (Journal, String) {
    let mut journal = Journal::with_run(json!({
        "id": 1,
        "journal_version": 1,
        "plan_path": format!("plans/{PWN_SCRIPT}{SCRIPT_ESCAPE}<!--.json"),
        "plan_sha256": PWN_IMG,
        "plan_created_at": "2025-03-01T09:00:00Z",
        "base_url": "https://api.partnercenter.microsoft.com/",
        "product_family": "Azure\u{1b}[31m\u{202e}",
        "created_at": "2025-03-01T09:05:00Z",
    }));
    journal.session(json!({
        "id": 1, "started_at": "2025-03-01T09:05:00Z", "operator": PWN_IMG,
        "host": PWN_SVG, "pid": 1, "version": SCRIPT_ESCAPE,
    }));
    let failed = journal.customer(
        "failed",
        json!({
            "reason": SCRIPT_ESCAPE,
            "error_message": PWN_SCRIPT,
            "error_code": PWN_SVG,
            "upgrade_status": PWN_IMG,
            "finished_at": "2025-03-01T10:00:00.000Z",
        }),
    );
    journal.customer(
        PWN_IMG,
        json!({ "planned": PWN_SVG, "finished_at": "not a time" }),
    );
    journal.event(1, &failed, Some(PWN_SCRIPT), "failed");
    (journal, failed)
}

/// Every tag of `page`. Escaped text holds no `<`, nor does the inline JSON (`\u003c`) or
/// the script and style, so each `<` in the file starts a real tag.
fn tags(page: &str) -> Vec<&str> {
    page.match_indices('<')
        .map(|(at, _)| {
            let end = page[at..].find('>').expect("a tag ends") + at;
            &page[at..=end]
        })
        .collect()
}

fn tag_name(tag: &str) -> String {
    tag.trim_start_matches('<')
        .trim_start_matches('/')
        .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .next()
        .unwrap()
        .to_ascii_lowercase()
}

/// The attributes of `tag` as an HTML parser reads them (names, then a quoted or bare value),
/// so a hostile value is checked to stay inside its quotes.
fn tag_attributes(tag: &str) -> Vec<(String, String)> {
    let inner = tag.trim_start_matches('<').trim_end_matches('>');
    let mut chars = inner.chars().peekable();
    // The tag name.
    while chars.peek().is_some_and(|c| !c.is_whitespace()) {
        chars.next();
    }
    let mut attributes = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '/') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '/' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            match chars.peek().copied() {
                Some(quote @ ('"' | '\'')) => {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == quote {
                            break;
                        }
                        value.push(c);
                    }
                }
                _ => {
                    while chars.peek().is_some_and(|c| !c.is_whitespace()) {
                        value.push(chars.next().unwrap());
                    }
                }
            }
        }
        attributes.push((name, value));
    }
    attributes
}

#[test]
fn report_html_escapes_hostile_values() {
    let (journal, _) = hostile_journal();
    let out = journal.out();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();

    // Only the page's own elements, with no attribute that could fetch or run anything.
    let allowed: BTreeSet<&str> = [
        "!doctype", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "dl",
        "dt", "dd", "section", "table", "thead", "tbody", "tr", "th", "td", "em", "ul", "li",
        "span", "svg", "path", "text", "polyline", "rect", "p", "div", "input", "select", "option",
        "output", "script",
    ]
    .into();
    let all = tags(&page);
    for tag in &all {
        assert!(
            allowed.contains(tag_name(tag).as_str()),
            "unexpected tag {tag}"
        );
        for (name, _) in tag_attributes(tag) {
            let name = name.to_ascii_lowercase();
            assert!(
                ![
                    "src",
                    "href",
                    "xlink:href",
                    "srcset",
                    "action",
                    "style",
                    "data",
                    "formaction"
                ]
                .contains(&name.as_str())
                    && !name.starts_with("on"),
                "attribute {name} in {tag}"
            );
        }
    }
    let scripts: Vec<&&str> = all.iter().filter(|t| tag_name(t) == "script").collect();
    assert_eq!(
        scripts,
        [
            &"<script type=\"application/json\" id=\"report-data\">",
            &"</script>",
            &"<script>",
            &"</script>"
        ]
    );
    assert!(!page.contains("url("), "no CSS fetch");
    assert!(!page.contains("@import"));

    // The values are there, as text.
    assert!(page.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=&quot;https://pwned.invalid/x.png&quot;"));
    assert!(page.contains("&#39;&gt;&lt;svg onload="));
    assert!(
        page.contains("Azure\\u{1b}[31m\\u{202e}"),
        "control characters written out"
    );
    assert!(!page.contains('\u{1b}') && !page.contains('\u{202e}'));

    // The inline JSON cannot end its element, and reads back as the journal's values.
    let start = page
        .find("<script type=\"application/json\" id=\"report-data\">")
        .unwrap();
    let json_text = &page[start..];
    let json_text =
        &json_text[json_text.find('>').unwrap() + 1..json_text.find("</script>").unwrap()];
    assert!(!json_text.contains('<'));
    let data: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(
        data["run"]["planPath"],
        format!("plans/{PWN_SCRIPT}{SCRIPT_ESCAPE}<!--.json")
    );
    assert_eq!(data["total"], 2);

    // The state no journal should hold is counted under its own name, not as an id or class.
    assert!(page.contains("s-other"));
    assert!(!page.contains("id=\"count-\""));
    // The policy allows our script alone, and no fetch.
    assert!(
        page.contains("default-src &#39;none&#39;"),
        "a Content-Security-Policy"
    );
}

#[test]
fn report_refuses_files_that_are_not_journals() {
    let dir = scratch();
    let plan = dir.join("plan.json");
    std::fs::write(&plan, "{\"version\":1,\"customers\":[]}\n").unwrap();
    let empty = dir.join("empty.sqlite");
    std::fs::write(&empty, "").unwrap();
    let other = dir.join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id TEXT)")
        .unwrap();
    let newer = Journal::with_run(json!({
        "id": 1, "journal_version": 2, "plan_path": "p", "plan_sha256": "s",
        "plan_created_at": "t", "base_url": "u", "product_family": "Azure", "created_at": "t",
    }));
    let no_run_row = dir.join("no-run.sqlite");
    Connection::open(&no_run_row)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let partial = dir.join("partial.sqlite");
    Connection::open(&partial)
        .unwrap()
        .execute_batch(
            "CREATE TABLE run (id INTEGER PRIMARY KEY, journal_version INTEGER);
             INSERT INTO run VALUES (1, 1);",
        )
        .unwrap();

    let cases: [(&Path, &str); 7] = [
        (&dir.join("missing.sqlite"), "cannot read the journal"),
        (&dir, "is not a file"),
        (
            &plan,
            "is not a pc-upgrade journal: it is not an SQLite database",
        ),
        (&empty, "is not a pc-upgrade journal: it has no run table"),
        (&other, "is not a pc-upgrade journal: it has no run table"),
        (
            &newer.path,
            "is a journal of version 2; this pc-upgrade reads version 1",
        ),
        (
            &no_run_row,
            "is not a pc-upgrade journal: its run table is empty",
        ),
    ];
    for (path, message) in cases.into_iter().chain([(
        partial.as_path(),
        "is not a complete pc-upgrade journal: it has no sessions table",
    )]) {
        let out = dir.join(format!("out-{}", uuid::Uuid::new_v4()));
        let output = report(path, &out, &[]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}: {}",
            path.display(),
            stderr(&output)
        );
        let text = stderr(&output);
        assert!(text.starts_with("error: "), "{text}");
        assert!(text.contains(message), "{}: {text}", path.display());
        assert!(!out.exists(), "nothing written for {}", path.display());
    }
    // The plan is untouched (read-only: SQLite did not turn it into a database).
    assert_eq!(
        std::fs::read_to_string(&plan).unwrap(),
        "{\"version\":1,\"customers\":[]}\n"
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn report_of_a_journal_with_no_customers_is_valid() {
    let journal = Journal::new();
    let out = journal.out();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("customers: 0, line items: 0"));
    assert_eq!(read_json(&out.join("customers.json")), json!([]));
    assert_eq!(read_json(&out.join("line_items.json")), json!([]));
    let columns: Vec<&str> = CUSTOMER_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(&out.join("customers.csv"), &columns, &[]);
    let columns: Vec<&str> = ITEM_COLUMNS.iter().map(|c| c.0).collect();
    assert_csv_matches(&out.join("line_items.csv"), &columns, &[]);
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("<span id=\"count-total\" class=\"count\" data-count=\"0\">0</span>"));
    assert!(page.contains("No customer has finished yet."));
    assert!(page.contains("no session recorded"));
    assert!(page.trim_end().ends_with("</html>"));
}

#[test]
fn report_into_a_folder_it_cannot_create_exits_5() {
    let journal = book();
    let out = journal.dir.join("a-file");
    std::fs::write(&out, "not a folder").unwrap();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot write the report into"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "not a folder");
}

#[test]
fn report_reads_a_killed_runs_journal_without_changing_it() {
    // A copy of the files while the writer is still open: what a killed `apply` leaves, its
    // last transactions still in the write-ahead log, not yet in the database file.
    let mut journal = book();
    journal
        .conn
        .pragma_update(None, "wal_autocheckpoint", 0)
        .unwrap();
    journal.customer(
        "completed",
        json!({ "finished_at": "2025-03-01T11:10:00.000Z" }),
    );
    let killed = scratch();
    let path = killed.join("journal.sqlite");
    std::fs::copy(&journal.path, &path).unwrap();
    let wal = killed.join("journal.sqlite-wal");
    std::fs::copy(journal.dir.join("journal.sqlite-wal"), &wal).unwrap();
    let before = std::fs::read(&path).unwrap();
    let wal_before = std::fs::read(&wal).unwrap();
    assert!(!wal_before.is_empty(), "the test's changes are in the log");

    let out = killed.join("report");
    let output = report(&path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        read_json(&out.join("customers.json")),
        Value::Array(journal.expected_customers()),
        "the log's rows are read"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the journal is unchanged"
    );
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        wal_before,
        "its log is unchanged"
    );
}

#[test]
fn report_of_ten_thousand_customers_and_a_hundred_thousand_events() {
    let mut journal = Journal::new();
    journal.session(
        json!({ "id": 1, "started_at": "2025-03-01T09:05:00Z", "pid": 1,
                            "version": "0.1.0" }),
    );
    let tx = journal.conn.transaction().unwrap();
    {
        let mut customer = tx
            .prepare(
                "INSERT INTO customers (customer_id, planned, state, upgrade_id, reason, polls, \
                 updated_at, finished_at) VALUES (?, 'eligible', ?, ?, ?, ?, ?, ?)",
            )
            .unwrap();
        let mut item = tx
            .prepare("INSERT INTO line_items (customer_id, seq, source_id, status) VALUES (?, ?, ?, 'completed')")
            .unwrap();
        let mut event = tx
            .prepare(
                "INSERT INTO events (at, session_id, customer_id, operation, request_id, \
                 http_status, attempts, state, detail) VALUES (?, 1, ?, 'getUpgradeStatus', ?, 200, 1, ?, ?)",
            )
            .unwrap();
        for n in 0..10_000u32 {
            let id = format!("{n:08x}-0000-4000-8000-000000000000");
            let state = ["completed", "failed", "notEligible", "following"][(n % 4) as usize];
            let at = format!(
                "2025-03-01T{:02}:{:02}:{:02}.000Z",
                10 + n / 3600,
                n / 60 % 60,
                n % 60
            );
            let finished = (state != "following").then_some(at.clone());
            customer
                .execute(rusqlite::params![
                    id,
                    state,
                    uuid::Uuid::new_v4().to_string(),
                    "a reason of some length, as Partner Center writes them",
                    10,
                    at,
                    finished
                ])
                .unwrap();
            for seq in 0..2 {
                item.execute(rusqlite::params![id, seq, format!("sub-{n}-{seq}")])
                    .unwrap();
            }
            for _ in 0..10 {
                event
                    .execute(rusqlite::params![
                        at,
                        id,
                        uuid::Uuid::new_v4().to_string(),
                        state,
                        "{\"status\":\"inProgress\"}"
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();

    let out = journal.out();
    let started = Instant::now();
    let output = report(&journal.path, &out, &["--output", "json"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["total"], 10_000);
    assert_eq!(summary["lineItems"], 20_000);
    for state in ["completed", "failed", "notEligible", "following"] {
        assert_eq!(summary["counts"][state], 2_500, "{state}");
    }
    assert_eq!(
        read_json(&out.join("customers.json"))
            .as_array()
            .unwrap()
            .len(),
        10_000
    );
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(page.matches("<tr data-state=").count(), 10_000);
    // The chart stays small whatever the book: at most two points per time column per line.
    for line in page.lines().filter(|l| l.starts_with("<polyline")) {
        let points = line.split("points=\"").nth(1).unwrap();
        assert!(points.split(' ').count() <= 2 * 400 + 2, "{line}");
        assert!(line.contains("data-final=\"2500\""), "{line}");
    }
    // Some 40 MB of journal and report: not left in the temporary folder.
    let _ = std::fs::remove_dir_all(&journal.dir);
}

// --- Headless Chromium -------------------------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium's path, or `None` (with a message) when it is not installed and `CI` is not set;
/// on CI its absence fails the test, so the check cannot silently stop running there.
fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {CHROMIUM} is missing: install chromium (apt-get install chromium)");
    }
    eprintln!(
        "skipped: {CHROMIUM} is not installed (apt-get install chromium); set CI to make this fail"
    );
    None
}

/// A proxy on loopback that answers nothing and remembers what it was asked: Chromium is sent
/// through it, so nothing leaves the machine and every request shows up here.
struct Trap {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let requests = requests.clone();
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut line = String::new();
                    let _ = BufReader::new(&stream).read_line(&mut line);
                    requests.lock().unwrap().push(line.trim().to_owned());
                }
            }
        });
        Trap {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening; the requests it saw (first lines).
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.requests.lock().unwrap().clone()
    }
}

/// The host a proxied request's first line names (`CONNECT host:443 ...`, `GET http://host/...`).
fn requested_host(line: &str) -> String {
    let target = line.split(' ').nth(1).unwrap_or_default();
    let target = target.split("://").last().unwrap_or_default();
    let host = target.split(['/', ':']).next().unwrap_or_default();
    host.to_ascii_lowercase()
}

/// Chromium's own background requests (network time, sign-in, variations), which no flag
/// silences entirely; through the trap they go nowhere. Anything else came from the page.
fn chromium_own(host: &str) -> bool {
    [
        "google.com",
        "googleapis.com",
        "gstatic.com",
        "gvt1.com",
        "gvt2.com",
    ]
    .iter()
    .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

/// The DOM of `page` (with `fragment`) after its scripts ran, and the hosts the page asked
/// the network for (there must be none).
fn dump_dom(chromium: &Path, page: &Path, fragment: &str) -> (String, Vec<String>) {
    let profile = scratch();
    let trap = Trap::start();
    let mut url = url::Url::from_file_path(page).unwrap();
    url.set_fragment(Some(fragment).filter(|f| !f.is_empty()));
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--proxy-server=http://127.0.0.1:{}", trap.port))
        // No name is looked up either: what the proxy does not carry goes nowhere.
        .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        .arg("--dump-dom")
        .arg(url.as_str())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
        text
    });
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = reader.join().unwrap();
    let errors = errors.join().unwrap();
    assert!(status.success(), "chromium failed: {status}\n{errors}");
    assert!(dom.contains("</html>"), "no DOM dumped:\n{errors}");
    let _ = std::fs::remove_dir_all(&profile);
    let hosts = trap
        .finish()
        .iter()
        .map(|line| requested_host(line))
        .filter(|host| !chromium_own(host))
        .collect();
    (dom, hosts)
}

/// The opening tag of the element with `id` in `dom`, and the text right after it.
fn element<'a>(dom: &'a str, id: &str) -> (&'a str, &'a str) {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no element {id}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let text_end = end + dom[end..].find('<').unwrap();
    (&dom[start..=end], &dom[end + 1..text_end])
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let at = tag.find(&marker)? + marker.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The customers' rows of the DOM: (customer id, state, visible).
fn rows(dom: &str) -> Vec<(String, String, bool)> {
    let table = &dom[dom.find("<table id=\"customers\">").unwrap()..];
    let body = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    body.match_indices("<tr ")
        .map(|(at, _)| {
            let tag = &body[at..at + body[at..].find('>').unwrap() + 1];
            (
                attribute(tag, "data-customer").unwrap().to_owned(),
                attribute(tag, "data-state").unwrap().to_owned(),
                !tag.contains(" hidden"),
            )
        })
        .collect()
}

fn visible(rows: &[(String, String, bool)]) -> BTreeSet<String> {
    rows.iter().filter(|r| r.2).map(|r| r.0.clone()).collect()
}

#[test]
fn report_page_in_headless_chromium_counts_filters_and_fetches_nothing() {
    let Some(chromium) = chromium() else {
        return;
    };
    let mut journal = book();
    // A hostile customer besides: were any of it markup, the DOM would show it.
    let hostile = journal.customer(
        "failed",
        json!({ "reason": PWN_SCRIPT, "error_message": PWN_IMG, "error_code": PWN_SVG,
                "finished_at": "2025-03-01T10:50:00.000Z" }),
    );
    journal.session(
        json!({ "id": 3, "started_at": "2025-03-01T12:00:00Z", "operator": PWN_IMG,
                            "host": PWN_SVG, "pid": 3, "version": SCRIPT_ESCAPE }),
    );
    let out = journal.out();
    let output = report(&journal.path, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = out.join("report.html");

    // No fragment: every count as the journal has it, every row shown, nothing run but ours.
    let (dom, hosts) = dump_dom(chromium, &page, "");
    assert_eq!(
        hosts,
        Vec::<String>::new(),
        "the page asked the network for these"
    );
    let html_tag = &dom[dom.find("<html").unwrap()..];
    let html_tag = &html_tag[..html_tag.find('>').unwrap()];
    assert!(
        !html_tag.contains("data-pwned"),
        "a hostile value ran: {html_tag}"
    );
    assert!(!dom.contains("<img"), "a hostile value became markup");
    for state in STATES {
        let count = journal.count(state).to_string();
        let (tag, text) = element(&dom, &format!("count-{state}"));
        assert_eq!(
            attribute(tag, "data-count"),
            Some(count.as_str()),
            "{state}"
        );
        assert_eq!(text, count, "{state}");
    }
    let total = journal.customers.len().to_string();
    let (tag, text) = element(&dom, "count-total");
    assert_eq!(
        (attribute(tag, "data-count"), text),
        (Some(total.as_str()), total.as_str())
    );
    let all = rows(&dom);
    assert_eq!(all.len(), journal.customers.len());
    assert_eq!(visible(&all).len(), journal.customers.len());
    let (tag, text) = element(&dom, "shown");
    assert_eq!(
        (attribute(tag, "data-count"), text),
        (Some(total.as_str()), total.as_str())
    );
    assert_eq!(
        element(&dom, "shown-of").1,
        total,
        "the script read the inline JSON"
    );

    // #state=failed: the script selects the state on load and hides every other row.
    let (dom, hosts) = dump_dom(chromium, &page, "state=failed");
    assert_eq!(hosts, Vec::<String>::new());
    let failed: BTreeSet<String> = journal
        .customers
        .iter()
        .filter(|(_, row)| row["state"] == "failed")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.contains(&hostile));
    assert_eq!(visible(&rows(&dom)), failed);
    assert_eq!(element(&dom, "shown").1, "2");

    // #filter=...: every word must be in the row's text, whatever its state.
    let (dom, _) = dump_dom(chromium, &page, "filter=900108%20subscriptions");
    let not_eligible: BTreeSet<String> = journal
        .customers
        .iter()
        .filter(|(_, row)| row["state"] == "notEligible")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(visible(&rows(&dom)), not_eligible);
    let (dom, _) = dump_dom(chromium, &page, "state=completed&filter=no-such-text");
    assert_eq!(visible(&rows(&dom)), BTreeSet::new());
    assert_eq!(element(&dom, "shown").1, "0");
}
