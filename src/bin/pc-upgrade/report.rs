//! `pc-upgrade report`: turn the journal `apply` wrote into files people and tools read — one
//! CSV and one JSON file per table (customers, line items) and a self-contained HTML page
//! (counts by state, a chart of outcomes over time, a filterable table). The journal is opened
//! read-only and read in one snapshot, row by row: the files are written while the rows stream,
//! so a book of 10,000 customers costs no more memory than a few rows and the chart's points.
//! `apply` calls [`write_report`] at the end of a run; the command is the same for a journal
//! left by an earlier or a killed run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use partner_center_upgrades::printable;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use serde_json::{Map, Value, json};

use super::{Output, exit};

/// The journal format this reader understands (`run.journal_version`).
const JOURNAL_VERSION: i64 = 1;

#[derive(Args)]
pub struct ReportArgs {
    /// The journal `pc-upgrade apply` wrote (SQLite); only read, never changed
    #[arg(value_name = "JOURNAL")]
    pub journal: PathBuf,
    /// The folder to write customers.csv/.json, line_items.csv/.json and report.html into
    /// (created if missing; each file replaced atomically)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// What a report counted and wrote.
pub struct Summary {
    /// Customers in the journal.
    pub total: u64,
    /// Line items in the journal.
    pub line_items: u64,
    /// Customers per state: every state the journal format knows, in [`STATES`] order (zeros
    /// included), then any other state the journal holds, by name.
    pub counts: Vec<(String, u64)>,
    /// The files written, report.html first.
    pub files: Vec<PathBuf>,
}

impl Summary {
    /// The summary `--output json` prints.
    pub fn to_json(&self) -> Value {
        let counts: Map<String, Value> = self
            .counts
            .iter()
            .map(|(state, count)| (state.clone(), json!(count)))
            .collect();
        json!({
            "total": self.total,
            "lineItems": self.line_items,
            "counts": counts,
            "files": self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        })
    }
}

/// A customer state as journal.sql defines it: its key, how the report names it, the colour
/// of its series in the chart (`None`: not an outcome, so not charted).
struct State {
    key: &'static str,
    label: &'static str,
    colour: Option<&'static str>,
}

/// The states of journal.sql, outcomes first (the order of the counts and the chart legend).
const STATES: [State; 9] = [
    State {
        key: "completed",
        label: "completed",
        colour: Some("#1a7f37"),
    },
    State {
        key: "partiallyCompleted",
        label: "partially completed",
        colour: Some("#bf8700"),
    },
    State {
        key: "cancelled",
        label: "cancelled",
        colour: Some("#6e7781"),
    },
    State {
        key: "failed",
        label: "failed",
        colour: Some("#cf222e"),
    },
    State {
        key: "notEligible",
        label: "not eligible",
        colour: Some("#8250df"),
    },
    State {
        key: "error",
        label: "errors",
        colour: Some("#bc4c00"),
    },
    State {
        key: "following",
        label: "under way",
        colour: None,
    },
    State {
        key: "creating",
        label: "creating",
        colour: None,
    },
    State {
        key: "pending",
        label: "pending",
        colour: None,
    },
];

fn state_info(key: &str) -> Option<&'static State> {
    STATES.iter().find(|s| s.key == key)
}

/// The colour of a state no journal version 1 should hold, should one turn up in the chart.
const OTHER_COLOUR: &str = "#57606a";

/// `pc-upgrade report`: write the report, print the counts and the files.
pub fn report(args: ReportArgs, output: Output) -> u8 {
    // Checked before anything is written, so a wrong file is a usage error that leaves DIR
    // alone; what fails after that (the folder, the disk, a damaged journal page) is a report
    // that could not be written.
    if let Err(message) = open_journal(&args.journal) {
        eprintln!("error: {}", printable(&message));
        return exit::USAGE;
    }
    let summary = match write_report(&args.journal, &args.out) {
        Ok(summary) => summary,
        Err(message) => {
            eprintln!("error: {}", printable(&message));
            return exit::SERVICE_ERROR;
        }
    };
    match output {
        Output::Json => {
            let mut value = summary.to_json();
            value["journal"] = json!(args.journal.display().to_string());
            value["out"] = json!(args.out.display().to_string());
            println!("{value}");
        }
        Output::Text => {
            println!(
                "report of {} written to {}",
                printable(&args.journal.display().to_string()),
                printable(&args.out.display().to_string())
            );
            println!(
                "customers: {}, line items: {}",
                summary.total, summary.line_items
            );
            for (state, count) in &summary.counts {
                let label = state_info(state).map_or(state.as_str(), |s| s.label);
                println!("  {}: {count}", printable(label));
            }
            for file in &summary.files {
                println!("{}", printable(&file.display().to_string()));
            }
        }
    }
    exit::SUCCESS
}

/// Writes the report of `journal` into `out` (created if missing), each file through a
/// temporary file renamed over it, and returns what it counted and wrote. The error says which
/// file (journal or report) and why, in a sentence.
pub fn write_report(journal: &Path, out: &Path) -> Result<Summary, String> {
    let mut conn = open_journal(journal)?;
    let read = |e: rusqlite::Error| format!("cannot read the journal {}: {e}", journal.display());
    let write = |e: std::io::Error| format!("cannot write the report into {}: {e}", out.display());
    // One read transaction: every query sees the same snapshot, even while `apply` writes
    // (write-ahead log), so the counts, the chart and the rows agree with one another.
    let snapshot = conn.transaction().map_err(read)?;
    let head = Head::read(&snapshot).map_err(read)?;
    let chart = Chart::read(&snapshot).map_err(read)?;

    std::fs::create_dir_all(out).map_err(write)?;
    let mut html = Staged::create(out, "report.html").map_err(write)?;
    let mut customers_csv = Staged::create(out, "customers.csv").map_err(write)?;
    let mut customers_json = Staged::create(out, "customers.json").map_err(write)?;
    let mut items_csv = Staged::create(out, "line_items.csv").map_err(write)?;
    let mut items_json = Staged::create(out, "line_items.json").map_err(write)?;

    html.write_all(head.html_top(&chart).as_bytes())
        .map_err(write)?;
    customers_csv
        .write_all(csv_record(CUSTOMER_COLUMNS.iter().map(|c| Cell::Text(Some(c)))).as_bytes())
        .map_err(write)?;
    customers_json.write_all(b"[").map_err(write)?;
    let mut statement = snapshot
        .prepare(
            "SELECT customer_id, planned, state, upgrade_id, upgrade_status, reason, error_code, \
             error_message, http_status, create_request_id, create_correlation_id, \
             create_attempts, polls, resumed, started_at, finished_at \
             FROM customers ORDER BY customer_id",
        )
        .map_err(read)?;
    let mut rows = statement.query([]).map_err(read)?;
    let mut total = 0u64;
    while let Some(row) = rows.next().map_err(read)? {
        let customer = CustomerRow::from_row(row).map_err(read)?;
        let cells = customer.cells();
        customers_csv
            .write_all(csv_record(cells.iter().copied()).as_bytes())
            .map_err(write)?;
        customers_json
            .write_all(if total == 0 { b"\n" } else { b",\n" })
            .map_err(write)?;
        customers_json
            .write_all(json_record(&CUSTOMER_COLUMNS, &cells).as_bytes())
            .map_err(write)?;
        html.write_all(customer.html_row().as_bytes())
            .map_err(write)?;
        total += 1;
    }
    drop(rows);
    drop(statement);
    customers_json
        .write_all(if total == 0 { b"]\n" } else { b"\n]\n" })
        .map_err(write)?;
    html.write_all(head.html_bottom().as_bytes())
        .map_err(write)?;

    items_csv
        .write_all(csv_record(ITEM_COLUMNS.iter().map(|c| Cell::Text(Some(c)))).as_bytes())
        .map_err(write)?;
    items_json.write_all(b"[").map_err(write)?;
    let mut statement = snapshot
        .prepare(
            "SELECT l.customer_id, c.upgrade_id, l.seq, l.source_id, l.source_name, l.target_id, \
             l.target_name, l.status, l.upgraded_date, l.error_code, l.error_description, \
             c.create_request_id, c.create_correlation_id \
             FROM line_items l LEFT JOIN customers c ON c.customer_id = l.customer_id \
             ORDER BY l.customer_id, l.seq",
        )
        .map_err(read)?;
    let mut rows = statement.query([]).map_err(read)?;
    let mut line_items = 0u64;
    while let Some(row) = rows.next().map_err(read)? {
        let item = ItemRow::from_row(row).map_err(read)?;
        let cells = item.cells();
        items_csv
            .write_all(csv_record(cells.iter().copied()).as_bytes())
            .map_err(write)?;
        items_json
            .write_all(if line_items == 0 { b"\n" } else { b",\n" })
            .map_err(write)?;
        items_json
            .write_all(json_record(&ITEM_COLUMNS, &cells).as_bytes())
            .map_err(write)?;
        line_items += 1;
    }
    items_json
        .write_all(if line_items == 0 { b"]\n" } else { b"\n]\n" })
        .map_err(write)?;

    // Everything is written before anything is renamed: a failure above leaves the previous
    // report, if any, as it was.
    let mut files = Vec::new();
    for staged in [html, customers_csv, customers_json, items_csv, items_json] {
        files.push(staged.commit().map_err(write)?);
    }
    Ok(Summary {
        total,
        line_items,
        counts: head.counts,
        files,
    })
}

/// Opens `path` read-only and checks it is a journal of [`JOURNAL_VERSION`]; the error names
/// what is wrong with it.
fn open_journal(path: &Path) -> Result<Connection, String> {
    let name = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read the journal {name}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{name} is not a file, so not a pc-upgrade journal"));
    }
    // The bundled SQLite reads `:memory:` and a name starting with `file:` as something other
    // than a file; a relative path is made explicit so it always names the file.
    let path = super::journal::sqlite_path(path);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the journal {name}: {e}"))?;
    // A running `apply` may hold the write lock for a moment (a checkpoint, say).
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| format!("cannot open the journal {name}: {e}"))?;
    let tables = table_names(&conn).map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            format!("{name} is not a pc-upgrade journal: it is not an SQLite database")
        }
        _ => format!("cannot read the journal {name}: {e}"),
    })?;
    if !tables.iter().any(|t| t == "run") {
        return Err(format!(
            "{name} is not a pc-upgrade journal: it has no run table"
        ));
    }
    let version: Option<Value> = conn
        .query_row("SELECT journal_version FROM run WHERE id = 1", [], |row| {
            Ok(match row.get_ref(0)? {
                ValueRef::Integer(n) => json!(n),
                other => json!(text_of(other)),
            })
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(format!("{name} is not a pc-upgrade journal: {e}")),
        })?;
    match version {
        None => {
            return Err(format!(
                "{name} is not a pc-upgrade journal: its run table is empty"
            ));
        }
        Some(v) if v == json!(JOURNAL_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "{name} is a journal of version {v}; this pc-upgrade reads version {JOURNAL_VERSION}"
            ));
        }
    }
    for table in ["sessions", "customers", "line_items", "events"] {
        if !tables.iter().any(|t| t == table) {
            return Err(format!(
                "{name} is not a complete pc-upgrade journal: it has no {table} table"
            ));
        }
    }
    Ok(conn)
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = statement
        .query_map([], |row| Ok(text(row, 0)?.unwrap_or_default()))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// A text column, tolerantly: SQLite stores what it is given, and a report should show it
/// rather than refuse the journal (bytes that are not UTF-8 are replaced, numbers written out).
fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(text_of(row.get_ref(index)?))
}

fn text_of(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// One value of a CSV or JSON row.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(bool),
}

impl Cell<'_> {
    fn json(self) -> Value {
        match self {
            Cell::Text(text) => json!(text),
            Cell::Int(n) => json!(n),
            Cell::Bool(b) => json!(b),
        }
    }
}

/// One JSON object, its members in the columns' order (a `Map` would sort them).
fn json_record(columns: &[&str], cells: &[Cell<'_>]) -> String {
    let mut out = String::from("{");
    for (index, (name, cell)) in columns.iter().zip(cells).enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*name).to_string());
        out.push(':');
        out.push_str(&cell.json().to_string());
    }
    out.push('}');
    out
}

/// The columns of customers.csv and customers.json, in order; [`CustomerRow::cells`] gives
/// the values in the same order.
const CUSTOMER_COLUMNS: [&str; 16] = [
    "customerId",
    "planned",
    "state",
    "upgradeId",
    "upgradeStatus",
    "reason",
    "errorCode",
    "errorMessage",
    "httpStatus",
    "createRequestId",
    "createCorrelationId",
    "createAttempts",
    "polls",
    "resumed",
    "startedAt",
    "finishedAt",
];

/// One row of the customers table.
struct CustomerRow {
    customer_id: String,
    planned: Option<String>,
    state: String,
    upgrade_id: Option<String>,
    upgrade_status: Option<String>,
    reason: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    http_status: Option<i64>,
    create_request_id: Option<String>,
    create_correlation_id: Option<String>,
    create_attempts: Option<i64>,
    polls: Option<i64>,
    resumed: bool,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl CustomerRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<CustomerRow> {
        Ok(CustomerRow {
            customer_id: text(row, 0)?.unwrap_or_default(),
            planned: text(row, 1)?,
            state: text(row, 2)?.unwrap_or_default(),
            upgrade_id: text(row, 3)?,
            upgrade_status: text(row, 4)?,
            reason: text(row, 5)?,
            error_code: text(row, 6)?,
            error_message: text(row, 7)?,
            http_status: row.get(8)?,
            create_request_id: text(row, 9)?,
            create_correlation_id: text(row, 10)?,
            create_attempts: row.get(11)?,
            polls: row.get(12)?,
            resumed: row.get::<_, Option<i64>>(13)?.is_some_and(|n| n != 0),
            started_at: text(row, 14)?,
            finished_at: text(row, 15)?,
        })
    }

    fn cells(&self) -> [Cell<'_>; 16] {
        [
            Cell::Text(Some(&self.customer_id)),
            Cell::Text(self.planned.as_deref()),
            Cell::Text(Some(&self.state)),
            Cell::Text(self.upgrade_id.as_deref()),
            Cell::Text(self.upgrade_status.as_deref()),
            Cell::Text(self.reason.as_deref()),
            Cell::Text(self.error_code.as_deref()),
            Cell::Text(self.error_message.as_deref()),
            Cell::Int(self.http_status),
            Cell::Text(self.create_request_id.as_deref()),
            Cell::Text(self.create_correlation_id.as_deref()),
            Cell::Int(self.create_attempts),
            Cell::Int(self.polls),
            Cell::Bool(self.resumed),
            Cell::Text(self.started_at.as_deref()),
            Cell::Text(self.finished_at.as_deref()),
        ]
    }

    /// The customer's row in the page's table; `data-state` is what the state filter matches.
    fn html_row(&self) -> String {
        let opt = |v: &Option<String>| html(v.as_deref().unwrap_or(""));
        let number = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        // Partner Center's reason (not eligible) and the last error, whichever there are.
        let why = match (self.reason.as_deref(), self.error_message.as_deref()) {
            (Some(reason), Some(message)) if reason != message => format!("{reason}; {message}"),
            (Some(text), _) | (None, Some(text)) => text.to_owned(),
            (None, None) => String::new(),
        };
        let mut row = String::with_capacity(512);
        let _ = writeln!(
            row,
            "<tr data-state=\"{}\" data-customer=\"{}\"><td class=\"id\">{}</td><td>{}</td>\
             <td><span class=\"state {}\">{}</span></td><td class=\"id\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"why\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td class=\"time\">{}</td>\
             <td class=\"time\">{}</td></tr>",
            html(&self.state),
            html(&self.customer_id),
            html(&self.customer_id),
            opt(&self.planned),
            state_class(&self.state),
            html(&self.state),
            opt(&self.upgrade_id),
            opt(&self.upgrade_status),
            opt(&self.error_code),
            html(&number(self.http_status)),
            html(&why),
            html(&number(self.create_attempts)),
            html(&number(self.polls)),
            if self.resumed { "yes" } else { "" },
            opt(&self.started_at),
            opt(&self.finished_at),
        );
        row
    }
}

/// The columns of line_items.csv and line_items.json, in order; [`ItemRow::cells`] gives the
/// values in the same order.
const ITEM_COLUMNS: [&str; 13] = [
    "customerId",
    "upgradeId",
    "seq",
    "sourceSubscription",
    "sourceName",
    "targetSubscription",
    "targetName",
    "status",
    "upgradedDate",
    "errorCode",
    "errorDescription",
    "createRequestId",
    "createCorrelationId",
];

/// One line item with its customer's upgrade and create ids.
struct ItemRow {
    texts: [Option<String>; 12],
    seq: Option<i64>,
}

impl ItemRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<ItemRow> {
        let mut texts: [Option<String>; 12] = Default::default();
        // Columns 0 and 1, then 3 to 12: every column but seq (2) is text.
        for (slot, index) in texts.iter_mut().zip((0..2).chain(3..13)) {
            *slot = text(row, index)?;
        }
        Ok(ItemRow {
            texts,
            seq: row.get(2)?,
        })
    }

    fn cells(&self) -> [Cell<'_>; 13] {
        let t = |i: usize| Cell::Text(self.texts[i].as_deref());
        [
            t(0),
            t(1),
            Cell::Int(self.seq),
            t(2),
            t(3),
            t(4),
            t(5),
            t(6),
            t(7),
            t(8),
            t(9),
            t(10),
            t(11),
        ]
    }
}

/// One CSV record (RFC 4180): fields separated by commas, a field with a comma, a quote or a
/// line break in double quotes (quotes doubled), CRLF at the end.
fn csv_record<'a>(cells: impl Iterator<Item = Cell<'a>>) -> String {
    let mut line = String::new();
    for (index, cell) in cells.enumerate() {
        if index > 0 {
            line.push(',');
        }
        match cell {
            Cell::Text(text) => line.push_str(&csv_field(text.unwrap_or(""))),
            Cell::Int(n) => {
                if let Some(n) = n {
                    let _ = write!(line, "{n}");
                }
            }
            Cell::Bool(b) => line.push_str(if b { "true" } else { "false" }),
        }
    }
    line.push_str("\r\n");
    line
}

/// One text field of a CSV file. Reasons and messages come from Partner Center, and the file
/// is made to be opened in a spreadsheet, which runs a field starting with `=`, `+`, `-` or `@`
/// (or a tab, CR or LF before one) as a formula: such a field gets a leading `'`, so a
/// spreadsheet shows it as text. The cost is that character in the file; customers.json has
/// every value exactly as the journal holds it.
fn csv_field(text: &str) -> String {
    let guard = text.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']);
    let quote = text.contains([',', '"', '\r', '\n']);
    let mut field = String::with_capacity(text.len() + 3);
    if quote {
        field.push('"');
    }
    if guard {
        field.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            field.push('"');
        }
        field.push(c);
    }
    if quote {
        field.push('"');
    }
    field
}

/// Text for HTML, as element content or a double- or single-quoted attribute value: the five
/// characters HTML gives meaning to become references, and control and bidirectional-override
/// characters are written out as `\u{..}` (as everywhere the tool prints server text), so a
/// value can neither add markup nor reorder or hide what is shown around it.
fn html(text: &str) -> String {
    let text = printable(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for the inside of a `<script>` element: `<`, `>` and `&` (which only occur inside
/// strings) are written as `\u` escapes, so no value can close the element (`</script>`) or
/// open a comment (`<!--`) that would change how the page parses; U+2028 and U+2029 too, for
/// any reader that takes the text as JavaScript, and the control and bidirectional characters
/// serde_json leaves as they are, so the page's source reads as it parses.
fn script_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}')
            || c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The CSS class of a state's badge: its key when the journal format knows it, so a value
/// from the file never becomes a class name.
fn state_class(state: &str) -> String {
    match state_info(state) {
        Some(s) => format!("s-{}", s.key),
        None => "s-other".to_owned(),
    }
}

/// One session of `apply`, with the events it wrote.
struct Session {
    id: i64,
    started_at: Option<String>,
    ended_at: Option<String>,
    operator: Option<String>,
    tenant: Option<String>,
    host: Option<String>,
    pid: Option<i64>,
    version: Option<String>,
    events: i64,
    calls: i64,
}

/// Everything above the customers' rows: the run, its sessions, the calls, the counts.
struct Head {
    run: Map<String, Value>,
    sessions: Vec<Session>,
    /// Calls per operation: (operation, calls, attempts).
    calls: Vec<(String, i64, i64)>,
    counts: Vec<(String, u64)>,
    total: u64,
}

impl Head {
    fn read(conn: &Connection) -> rusqlite::Result<Head> {
        let run = conn.query_row(
            "SELECT plan_path, plan_sha256, plan_created_at, base_url, product_family, created_at \
             FROM run WHERE id = 1",
            [],
            |row| {
                let mut run = Map::new();
                for (index, name) in [
                    "planPath",
                    "planSha256",
                    "planCreatedAt",
                    "baseUrl",
                    "productFamily",
                    "createdAt",
                ]
                .into_iter()
                .enumerate()
                {
                    run.insert(name.to_owned(), json!(text(row, index)?));
                }
                Ok(run)
            },
        )?;

        let mut per_session: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut statement = conn.prepare(
            "SELECT session_id, COUNT(*), COUNT(operation) FROM events GROUP BY session_id",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            per_session.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
        drop(rows);
        let mut statement = conn.prepare(
            "SELECT id, started_at, ended_at, operator, tenant, host, pid, version \
             FROM sessions ORDER BY id",
        )?;
        let mut rows = statement.query([])?;
        let mut sessions = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let (events, calls) = per_session.get(&id).copied().unwrap_or_default();
            sessions.push(Session {
                id,
                started_at: text(row, 1)?,
                ended_at: text(row, 2)?,
                operator: text(row, 3)?,
                tenant: text(row, 4)?,
                host: text(row, 5)?,
                pid: row.get(6)?,
                version: text(row, 7)?,
                events,
                calls,
            });
        }
        drop(rows);

        let mut statement = conn.prepare(
            "SELECT operation, COUNT(*), TOTAL(attempts) FROM events \
             WHERE operation IS NOT NULL GROUP BY operation ORDER BY operation",
        )?;
        let mut rows = statement.query([])?;
        let mut calls = Vec::new();
        while let Some(row) = rows.next()? {
            let attempts: f64 = row.get(2)?;
            calls.push((
                text(row, 0)?.unwrap_or_default(),
                row.get(1)?,
                attempts as i64,
            ));
        }
        drop(rows);

        let mut found: Vec<(String, u64)> = Vec::new();
        let mut statement =
            conn.prepare("SELECT state, COUNT(*) FROM customers GROUP BY state ORDER BY state")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let count: i64 = row.get(1)?;
            found.push((text(row, 0)?.unwrap_or_default(), count as u64));
        }
        let mut counts: Vec<(String, u64)> = STATES
            .iter()
            .map(|s| {
                let count = found.iter().find(|(k, _)| k == s.key).map_or(0, |f| f.1);
                (s.key.to_owned(), count)
            })
            .collect();
        counts.extend(found.into_iter().filter(|(k, _)| state_info(k).is_none()));
        let total = counts.iter().map(|c| c.1).sum();
        Ok(Head {
            run,
            sessions,
            calls,
            counts,
            total,
        })
    }

    /// The page from its start to the first customer row.
    fn html_top(&self, chart: &Chart) -> String {
        let run = |key: &str| html(self.run.get(key).and_then(Value::as_str).unwrap_or(""));
        let mut page = String::with_capacity(16 * 1024);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>pc-upgrade report: {plan}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header>\n<h1>Upgrade report</h1>\n<dl class=\"run\">\n\
             <dt>Plan</dt><dd id=\"plan-path\">{plan}</dd>\n\
             <dt>Plan SHA-256</dt><dd class=\"id\">{sha}</dd>\n\
             <dt>Plan created</dt><dd>{plan_created}</dd>\n\
             <dt>Partner Center</dt><dd id=\"base-url\">{base_url}</dd>\n\
             <dt>Product family</dt><dd>{family}</dd>\n\
             <dt>Journal started</dt><dd>{created}</dd>\n\
             <dt>Report written</dt><dd>{now}</dd>\n</dl>\n</header>\n",
            csp = html(&content_security_policy()),
            plan = run("planPath"),
            sha = run("planSha256"),
            plan_created = run("planCreatedAt"),
            base_url = run("baseUrl"),
            family = run("productFamily"),
            created = run("createdAt"),
            now = html(&now()),
        );

        page.push_str(
            "<section id=\"sessions\">\n<h2>Sessions</h2>\n<table>\n<thead><tr><th>#</th>\
             <th>Operator</th><th>Tenant</th><th>Host</th><th>PID</th><th>Version</th>\
             <th>Started</th><th>Ended</th><th>Calls</th><th>Events</th></tr></thead>\n<tbody>\n",
        );
        for s in &self.sessions {
            let opt = |v: &Option<String>| html(v.as_deref().unwrap_or(""));
            let ended = match &s.ended_at {
                Some(at) => html(at),
                None => "<em>did not end (killed, or still running)</em>".to_owned(),
            };
            let _ = writeln!(
                page,
                "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"id\">{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td>{}</td><td class=\"time\">{}</td>\
                 <td class=\"time\">{ended}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                s.id,
                opt(&s.operator),
                opt(&s.tenant),
                opt(&s.host),
                s.pid.map(|p| p.to_string()).unwrap_or_default(),
                opt(&s.version),
                opt(&s.started_at),
                s.calls,
                s.events,
            );
        }
        if self.sessions.is_empty() {
            page.push_str("<tr><td colspan=\"10\"><em>no session recorded</em></td></tr>\n");
        }
        page.push_str("</tbody>\n</table>\n");
        if !self.calls.is_empty() {
            page.push_str(
                "<table class=\"calls\">\n<thead><tr><th>Call</th><th>Calls</th>\
                 <th>Attempts</th></tr></thead>\n<tbody>\n",
            );
            for (operation, calls, attempts) in &self.calls {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td class=\"n\">{calls}</td><td class=\"n\">{attempts}</td></tr>",
                    html(operation)
                );
            }
            page.push_str("</tbody>\n</table>\n");
        }
        page.push_str("</section>\n");

        page.push_str(
            "<section id=\"counts\">\n<h2>Customers by state</h2>\n<ul class=\"counts\">\n",
        );
        for (state, count) in &self.counts {
            let (label, id) = match state_info(state) {
                Some(s) => (s.label.to_owned(), format!(" id=\"count-{}\"", s.key)),
                None => (state.clone(), String::new()),
            };
            let _ = writeln!(
                page,
                "<li class=\"{}{}\"><span class=\"label\">{}</span> \
                 <span{id} class=\"count\" data-state=\"{}\" data-count=\"{count}\">{count}</span></li>",
                state_class(state),
                if *count == 0 { " zero" } else { "" },
                html(&label),
                html(state),
            );
        }
        let _ = write!(
            page,
            "<li class=\"total\"><span class=\"label\">total</span> \
             <span id=\"count-total\" class=\"count\" data-count=\"{0}\">{0}</span></li>\n\
             </ul>\n</section>\n",
            self.total
        );

        page.push_str("<section id=\"chart\">\n<h2>Finished customers over time</h2>\n");
        page.push_str(&chart.svg());
        page.push_str("</section>\n");

        let _ = write!(
            page,
            "<section id=\"customers-section\">\n<h2>Customers</h2>\n<div class=\"filters\">\n\
             <input id=\"filter-text\" type=\"search\" placeholder=\"Filter by any text\" \
             aria-label=\"Filter the customers by any text\" autocomplete=\"off\">\n\
             <select id=\"filter-state\" aria-label=\"Filter the customers by state\">\n\
             <option value=\"\">every state ({})</option>\n",
            self.total
        );
        for (state, count) in &self.counts {
            let label = state_info(state).map_or(state.as_str(), |s| s.label);
            let _ = writeln!(
                page,
                "<option value=\"{}\">{} ({count})</option>",
                html(state),
                html(label)
            );
        }
        let _ = write!(
            page,
            "</select>\n<span class=\"shown\"><output id=\"shown\" data-count=\"{0}\">{0}</output> \
             of <span id=\"shown-of\">{0}</span> shown</span>\n\
             <span class=\"hint\">a link can carry a filter: #state=failed&amp;filter=text</span>\n\
             </div>\n<div class=\"scroll\">\n<table id=\"customers\">\n<thead><tr>\
             <th>Customer</th><th>Planned</th><th>State</th><th>Upgrade</th><th>Status</th>\
             <th>Code</th><th>HTTP</th><th>Reason or error</th><th>Creates</th><th>Polls</th>\
             <th>Resumed</th><th>Started</th><th>Finished</th></tr></thead>\n<tbody>\n",
            self.total
        );
        page
    }

    /// The page after the last customer row: the data the script reads, and the script.
    fn html_bottom(&self) -> String {
        let counts: Map<String, Value> = self
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let data = json!({
            "journalVersion": JOURNAL_VERSION,
            "run": self.run,
            "total": self.total,
            "counts": counts,
        });
        format!(
            "</tbody>\n</table>\n</div>\n</section>\n\
             <script type=\"application/json\" id=\"report-data\">{}</script>\n\
             <script>{SCRIPT}</script>\n</body>\n</html>\n",
            script_json(&data)
        )
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The page's own policy: nothing is fetched from anywhere (`default-src 'none'`), inline
/// styles are allowed, and the one script that runs is ours, by its hash — so even a value that
/// slipped past escaping could not run code or call out.
fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = sha2::Sha256::digest(SCRIPT.as_bytes());
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; \
         img-src data:; base-uri 'none'; form-action 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Columns of time in the chart: at most this many steps per line, whatever the book's size.
const CHART_COLUMNS: i64 = 400;

/// When each customer reached its outcome, for the chart: (milliseconds, series).
struct Chart {
    /// The series' states, outcomes in [`STATES`] order, then others by name.
    series: Vec<String>,
    points: Vec<(i64, usize)>,
    /// Finished customers whose time does not parse (not charted).
    unparsed: u64,
}

impl Chart {
    /// Reads each finished customer's outcome and time: `finished_at`, or for an error (which
    /// a resume retries, so need not be final) the last update.
    fn read(conn: &Connection) -> rusqlite::Result<Chart> {
        let mut series: Vec<String> = STATES
            .iter()
            .filter(|s| s.colour.is_some())
            .map(|s| s.key.to_owned())
            .collect();
        let mut points = Vec::new();
        let mut unparsed = 0;
        let mut statement = conn.prepare(
            "SELECT state, COALESCE(finished_at, CASE WHEN state = 'error' THEN updated_at END) \
             FROM customers WHERE finished_at IS NOT NULL OR state = 'error'",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let state = text(row, 0)?.unwrap_or_default();
            if state_info(&state).is_some_and(|s| s.colour.is_none()) {
                // Finished, yet under way again (a journal written by hand?): not an outcome.
                continue;
            }
            let Some(at) = text(row, 1)?
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                .map(|t| t.timestamp_millis())
            else {
                unparsed += 1;
                continue;
            };
            let index = match series.iter().position(|s| *s == state) {
                Some(index) => index,
                None => {
                    series.push(state);
                    series.len() - 1
                }
            };
            points.push((at, index));
        }
        Ok(Chart {
            series,
            points,
            unparsed,
        })
    }

    /// An inline SVG: one step line per outcome, the cumulative number of customers that had
    /// reached it by each moment; each line carries its state and final count as attributes.
    fn svg(&self) -> String {
        let mut out = String::new();
        if self.points.is_empty() {
            out.push_str("<p class=\"empty\">No customer has finished yet.</p>\n");
            self.note_unparsed(&mut out);
            return out;
        }
        let first = self.points.iter().map(|p| p.0).min().unwrap_or(0);
        let last = self.points.iter().map(|p| p.0).max().unwrap_or(0);
        // A run that finished within one millisecond still gets a time axis.
        let (start, end) = if last > first {
            (first, last)
        } else {
            (first - 30_000, first + 30_000)
        };
        let span = i128::from(end - start);
        let precise = span < 120_000;
        let columns = CHART_COLUMNS as usize;
        let mut per_column = vec![vec![0u64; columns]; self.series.len()];
        for &(at, series) in &self.points {
            let column = (i128::from(at - start) * i128::from(CHART_COLUMNS) / span)
                .clamp(0, i128::from(CHART_COLUMNS - 1)) as usize;
            per_column[series][column] += 1;
        }
        let totals: Vec<u64> = per_column.iter().map(|c| c.iter().sum()).collect();
        let top = totals.iter().copied().max().unwrap_or(0).max(1);

        const WIDTH: f64 = 900.0;
        const HEIGHT: f64 = 320.0;
        const LEFT: f64 = 60.0;
        const RIGHT: f64 = 700.0;
        const TOP: f64 = 16.0;
        const BOTTOM: f64 = 280.0;
        let x = |column: usize| LEFT + (RIGHT - LEFT) * column as f64 / CHART_COLUMNS as f64;
        let y = |count: u64| BOTTOM - (BOTTOM - TOP) * count as f64 / top as f64;

        let _ = write!(
            out,
            "<svg id=\"outcomes-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-labelledby=\"chart-title\">\n<title id=\"chart-title\">Customers finished \
             per outcome, cumulative, from {} to {}</title>\n",
            html(&time_label(start, precise)),
            html(&time_label(end, precise))
        );
        // Axes, and the count and time marks.
        let _ = writeln!(
            out,
            "<path class=\"axis\" d=\"M{LEFT} {TOP} V{BOTTOM} H{RIGHT}\" fill=\"none\" \
             stroke=\"#8c959f\"/>"
        );
        let mut marks = vec![0, top];
        if top >= 4 {
            marks.insert(1, top / 2);
        }
        for mark in marks {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{mark}</text>",
                LEFT - 6.0,
                y(mark) + 4.0
            );
        }
        for (column, anchor) in [(0, "start"), (columns / 2, "middle"), (columns, "end")] {
            let at =
                start + (i128::from(end - start) * column as i128 / CHART_COLUMNS as i128) as i64;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\" class=\"tick\">{}</text>",
                x(column),
                BOTTOM + 18.0,
                html(&time_label(at, precise))
            );
        }
        let mut legend_y = TOP + 10.0;
        for (index, state) in self.series.iter().enumerate() {
            let total = totals[index];
            if total == 0 {
                continue;
            }
            let colour = state_info(state)
                .and_then(|s| s.colour)
                .unwrap_or(OTHER_COLOUR);
            let mut points = format!("{LEFT},{BOTTOM}");
            let mut sum = 0u64;
            for (column, &count) in per_column[index].iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let _ = write!(points, " {:.1},{:.1}", x(column), y(sum));
                sum += count;
                let _ = write!(points, " {:.1},{:.1}", x(column), y(sum));
            }
            let _ = write!(points, " {RIGHT},{:.1}", y(sum));
            let label = state_info(state).map_or(state.as_str(), |s| s.label);
            let _ = writeln!(
                out,
                "<polyline class=\"series\" data-state=\"{}\" data-final=\"{total}\" \
                 fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>",
                html(state)
            );
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
                 <text x=\"{}\" y=\"{:.1}\" class=\"legend\">{} ({total})</text>",
                RIGHT + 20.0,
                legend_y - 10.0,
                RIGHT + 38.0,
                legend_y,
                html(label)
            );
            legend_y += 20.0;
        }
        out.push_str("</svg>\n");
        self.note_unparsed(&mut out);
        out
    }

    fn note_unparsed(&self, out: &mut String) {
        if self.unparsed > 0 {
            let _ = writeln!(
                out,
                "<p class=\"note\">Not in the chart: {} finished customer(s) whose time is \
                 not RFC 3339.</p>",
                self.unparsed
            );
        }
    }
}

/// A moment on the time axis; to the millisecond when the whole axis spans under two minutes
/// (a small book against a quick service), where whole seconds would all read the same.
fn time_label(millis: i64, precise: bool) -> String {
    let format = if precise {
        "%Y-%m-%d %H:%M:%S%.3fZ"
    } else {
        "%Y-%m-%d %H:%M:%SZ"
    };
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

/// A file of the report, written beside its destination under a temporary name and renamed
/// over it by [`Staged::commit`]; removed when dropped before that.
struct Staged {
    temp: PathBuf,
    destination: PathBuf,
    file: Option<BufWriter<std::fs::File>>,
}

impl Staged {
    fn create(dir: &Path, name: &str) -> std::io::Result<Staged> {
        let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Staged {
            temp,
            destination: dir.join(name),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
        })
    }

    fn commit(mut self) -> std::io::Result<PathBuf> {
        let file = self.file.take().ok_or(std::io::ErrorKind::Other)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.temp, &self.destination)?;
        self.temp = PathBuf::new();
        Ok(std::mem::take(&mut self.destination))
    }
}

impl Write for Staged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(file) => file.write(bytes),
            None => Err(std::io::ErrorKind::Other.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

const STYLE: &str = "
:root { color-scheme: light; font-family: system-ui, -apple-system, 'Segoe UI', sans-serif;
  color: #1f2328; background: #fff; }
body { margin: 0 auto; padding: 1rem 2rem 3rem; max-width: 110rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0; }
h2 { font-size: 1.2rem; margin: 1.8rem 0 0.6rem; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0; }
dl.run dt { color: #57606a; }
dl.run dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.id, dd.id { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace;
  font-size: 0.8rem; white-space: nowrap; }
td.time { white-space: nowrap; }
td.why { min-width: 16rem; max-width: 36rem; overflow-wrap: break-word; }
table.calls { margin-top: 0.8rem; }
ul.counts { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.6rem; }
ul.counts li { border: 1px solid #d0d7de; border-left-width: 6px; border-radius: 6px;
  padding: 0.4rem 0.8rem; min-width: 7rem; }
ul.counts li.zero { opacity: 0.55; }
ul.counts .label { display: block; color: #57606a; font-size: 0.8rem; }
ul.counts .count { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.s-completed { border-left-color: #1a7f37 !important; }
.s-partiallyCompleted { border-left-color: #bf8700 !important; }
.s-cancelled { border-left-color: #6e7781 !important; }
.s-failed { border-left-color: #cf222e !important; }
.s-notEligible { border-left-color: #8250df !important; }
.s-error { border-left-color: #bc4c00 !important; }
.s-following, .s-creating, .s-pending, .s-other { border-left-color: #0969da !important; }
span.state { border-left: 4px solid; padding-left: 0.3rem; white-space: nowrap; }
svg { max-width: 60rem; width: 100%; height: auto; font-size: 11px; }
svg .tick, svg .legend { fill: #57606a; }
.filters { display: flex; flex-wrap: wrap; align-items: center; gap: 0.8rem; margin: 0.4rem 0; }
.filters input { min-width: 20rem; padding: 0.3rem; }
.hint, .note, .empty { color: #57606a; font-size: 0.8rem; }
.scroll { overflow-x: auto; }
tr[hidden] { display: none; }
";

/// The page's one script: filters the customers' table by text (every word must appear in the
/// row) and by state, from the controls or from the URL's fragment (`#state=failed&filter=..`),
/// which it keeps in step so a filtered view can be linked to. No library, nothing fetched.
const SCRIPT: &str = r#"
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var text = document.getElementById('filter-text');
  var state = document.getElementById('filter-state');
  var shown = document.getElementById('shown');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#customers > tbody > tr'));
  // Each row's text, lower-cased once: a keystroke then filters thousands of rows quickly.
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  document.getElementById('shown-of').textContent = String(data.total);

  function isOption(value) {
    return Array.prototype.some.call(state.options, function (o) { return o.value === value; });
  }

  function apply() {
    var words = text.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = state.value;
    var count = 0;
    rows.forEach(function (row, i) {
      var visible = (wanted === '' || row.getAttribute('data-state') === wanted) &&
        words.every(function (w) { return texts[i].indexOf(w) !== -1; });
      row.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = String(count);
    shown.setAttribute('data-count', String(count));
  }

  function fromFragment() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ''));
    text.value = params.get('filter') || '';
    var wanted = params.get('state') || '';
    state.value = isOption(wanted) ? wanted : '';
    apply();
  }

  function toFragment() {
    var params = new URLSearchParams();
    if (state.value) { params.set('state', state.value); }
    if (text.value) { params.set('filter', text.value); }
    var hash = params.toString();
    try {
      history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search);
    } catch (e) {
      // Some browsers refuse this on file: pages; the filter applies all the same.
    }
    apply();
  }

  text.addEventListener('input', toFragment);
  state.addEventListener('change', toFragment);
  window.addEventListener('hashchange', fromFragment);
  fromFragment();
}());
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            html("</script><script>alert(1)</script>"),
            "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            html(r#"a "b" 'c' & d"#),
            "a &quot;b&quot; &#39;c&#39; &amp; d"
        );
        assert_eq!(html("x\u{1b}[31my\n"), "x\\u{1b}[31my\\u{a}");
        assert_eq!(html("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(html("Contoso, Ltd — ünïcode"), "Contoso, Ltd — ünïcode");
        assert_eq!(html(""), "");
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=1+2", "'=1+2"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("a=b", "a=b"),
        ];
        for (text, expected) in cases {
            assert_eq!(csv_field(text), expected, "{text:?}");
        }
        let record = csv_record(
            [
                Cell::Text(Some("x")),
                Cell::Text(None),
                Cell::Int(Some(-3)),
                Cell::Int(None),
                Cell::Bool(true),
            ]
            .into_iter(),
        );
        assert_eq!(record, "x,,-3,,true\r\n");
    }

    #[test]
    fn script_json_cannot_close_the_script_element_and_reads_back_the_same() {
        let value = json!({
            "reason": "</script><script>alert(1)</script><!-- & \u{2028}\u{2029} \\< \"",
            "controls": "\u{1b}[31m \u{85} \u{7f} \u{202e}txt \u{2066}",
        });
        let text = script_json(&value);
        assert!(text.is_ascii(), "{text}");
        assert!(!text.contains('<'), "{text}");
        assert!(!text.contains('>'), "{text}");
        assert!(text.contains("\\u003c/script\\u003e"), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn the_script_and_style_need_no_escaping_and_fetch_nothing() {
        for (name, text) in [("script", SCRIPT), ("style", STYLE)] {
            assert!(!text.contains("</"), "{name} would end its element early");
            for fetch in [
                "http:",
                "https:",
                "url(",
                "@import",
                "fetch(",
                "XMLHttpRequest",
            ] {
                assert!(!text.contains(fetch), "{name} mentions {fetch}");
            }
        }
    }
}
