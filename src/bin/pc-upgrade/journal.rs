//! The journal of `pc-upgrade apply`: one SQLite file (schema in `journal.sql`) holding every
//! listed customer's state and the audit trail of every call, so a run killed at any instant
//! resumes from it.
//!
//! SQLite because a `kill -9` must never leave half a state change: in write-ahead-log mode each
//! change below is one transaction, and a process crash loses at most the change being written,
//! never an earlier one (`synchronous=NORMAL` keeps that promise against a crashed process; it
//! is a power cut that could lose the last transactions, and `--durable` asks for `FULL`).
//! rusqlite with the `bundled` library: no system SQLite to match. A lock file held with
//! `File::try_lock` keeps a second `apply` off the same journal; the kernel drops it when the
//! process dies, however it dies.
//!
//! The one rule that makes a resume safe lives in [`Journal::begin_create`]: the create's
//! `MS-RequestId` is committed *before* the create is sent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use partner_center_upgrades::{CallReport, CustomerId, RequestId, Upgrade, UpgradeId, printable};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema version this code writes and reads.
pub const JOURNAL_VERSION: i64 = 1;
/// The longest `detail` kept per event: the audit trail stays bounded whatever a server says.
const MAX_DETAIL_CHARS: usize = 1000;
/// The longest status or error code kept: Partner Center's are short words and numbers.
const MAX_CODE_CHARS: usize = 64;

/// What a journal belongs to: one plan, applied against one base URL.
pub struct RunInfo {
    pub plan_path: String,
    pub plan_sha256: String,
    pub plan_created_at: String,
    pub base_url: String,
    pub product_family: String,
}

/// Who is running this session, from the token's claims when it has them.
pub struct Operator {
    pub user: Option<String>,
    pub tenant: Option<String>,
}

/// A customer as the journal holds it.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    pub customer: CustomerId,
    pub state: String,
    pub upgrade_id: Option<UpgradeId>,
    pub create_request_id: Option<String>,
    pub create_correlation_id: Option<String>,
}

/// States in which a customer is done; every other state is picked up again by a resume.
pub const FINAL_STATES: [&str; 5] = [
    "completed",
    "partiallyCompleted",
    "cancelled",
    "failed",
    "notEligible",
];

/// The states a resume picks up (journal.sql).
const OPEN_STATES: [&str; 4] = ["pending", "creating", "following", "error"];

pub struct Journal {
    conn: Connection,
    session: i64,
    _lock: std::fs::File,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |e| format!("journal {}: {e}", path.display())
}

/// Server text as the journal keeps it: printable, at most [`MAX_DETAIL_CHARS`].
fn bounded(text: &str) -> String {
    bounded_to(text, MAX_DETAIL_CHARS)
}

/// A status or an error code as the journal keeps it: printable, at most [`MAX_CODE_CHARS`].
fn short(text: &str) -> String {
    bounded_to(text, MAX_CODE_CHARS)
}

/// `text` made printable and cut to `max` characters (an ellipsis marks a cut). Cut before it
/// is escaped too, so a huge answer costs no more than `max` characters of work.
pub fn bounded_to(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    let escaped = printable(&head);
    let mut out: String = escaped.chars().take(max).collect();
    if chars.next().is_some() || out.len() < escaped.len() {
        out.push('…');
    }
    out
}

impl Journal {
    /// Opens the journal at `path`, creating it for `run` with `customers` (the plan's
    /// eligible and under-way ones) when it does not exist. An existing journal must belong to
    /// the same plan (its SHA-256) and base URL, and list exactly the plan's customers, each in
    /// a state a resume can act on safely. Starts a session.
    ///
    /// Nothing is written to a file that turns out not to be such a journal (another program's
    /// database is left as it was found); an empty file, or an SQLite database with no tables
    /// (what a run killed while creating the journal leaves), is made a new journal.
    pub fn open(
        path: &Path,
        run: &RunInfo,
        customers: &[(CustomerId, &'static str)],
        operator: &Operator,
        durable: bool,
    ) -> Result<Journal, String> {
        let lock = lock_file(path)?;
        let fail = sql_error(path);
        let not_journal = || {
            format!(
                "{} exists and is not a pc-upgrade journal; choose another --journal",
                path.display()
            )
        };
        let file_path = sqlite_path(path);
        if file_path.exists() && !file_path.is_file() {
            return Err(not_journal());
        }
        let conn = Connection::open(&file_path).map_err(&fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(&fail)?;
        // Read only, until the file is known to be a journal (or empty).
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => not_journal(),
                _ => fail(e),
            })?;
        let existed = tables > 0;
        if existed {
            let found: Option<(i64, String, String)> = conn
                .query_row(
                    "SELECT journal_version, plan_sha256, base_url FROM run WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|_| not_journal())?;
            let Some((version, sha, base_url)) = found else {
                return Err(not_journal());
            };
            if version != JOURNAL_VERSION {
                return Err(format!(
                    "journal {} is version {version}; this pc-upgrade reads version {JOURNAL_VERSION}",
                    path.display()
                ));
            }
            if sha != run.plan_sha256 {
                return Err(format!(
                    "journal {} belongs to another plan (SHA-256 {}); resume it with the plan it \
                     was started with, or start a new journal for this plan",
                    path.display(),
                    short(&sha)
                ));
            }
            if base_url != run.base_url {
                return Err(format!(
                    "journal {} ran against {}, not {}",
                    path.display(),
                    bounded_to(&base_url, 200),
                    bounded_to(&run.base_url, 200)
                ));
            }
            check_tables(&conn).map_err(|e| {
                format!(
                    "journal {} is damaged or was changed outside pc-upgrade: {e}",
                    path.display()
                )
            })?;
            check_customers(&conn, customers).map_err(|e| {
                format!(
                    "journal {} was changed outside pc-upgrade: {e}; apply acts only on the \
                     customers its plan lists, as the journal recorded them",
                    path.display()
                )
            })?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&fail)?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .map_err(&fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(&fail)?;
        if !existed {
            // The schema, the run and the customers in one transaction: a run killed while
            // creating the journal leaves an empty database, which the next run creates anew.
            let tx = conn.unchecked_transaction().map_err(&fail)?;
            tx.execute_batch(include_str!("journal.sql"))
                .map_err(&fail)?;
            tx.execute(
                "INSERT INTO run (id, journal_version, plan_path, plan_sha256, plan_created_at, \
                 base_url, product_family, created_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    JOURNAL_VERSION,
                    run.plan_path,
                    run.plan_sha256,
                    run.plan_created_at,
                    run.base_url,
                    run.product_family,
                    now()
                ],
            )
            .map_err(&fail)?;
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO customers (customer_id, planned, state, updated_at) \
                         VALUES (?1, ?2, 'pending', ?3)",
                    )
                    .map_err(&fail)?;
                let at = now();
                for (customer, planned) in customers {
                    insert
                        .execute(params![customer.to_string(), planned, at])
                        .map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)?;
        }
        conn.execute(
            "INSERT INTO sessions (started_at, operator, tenant, host, pid, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now(),
                operator.user.as_deref().map(bounded),
                operator.tenant.as_deref().map(bounded),
                std::env::var("HOSTNAME").ok().as_deref().map(bounded),
                std::process::id(),
                env!("CARGO_PKG_VERSION")
            ],
        )
        .map_err(&fail)?;
        let session = conn.last_insert_rowid();
        Ok(Journal {
            conn,
            session,
            _lock: lock,
        })
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> String {
        |e| format!("journal: {e}")
    }

    /// The customers not yet in a final state, in the plan's order.
    pub fn unfinished(&self) -> Result<Vec<CustomerRow>, String> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT customer_id, state, upgrade_id, create_request_id, create_correlation_id \
                 FROM customers WHERE state NOT IN (?1, ?2, ?3, ?4, ?5) ORDER BY rowid",
            )
            .map_err(self.fail())?;
        let rows = statement
            .query_map(
                params![
                    FINAL_STATES[0],
                    FINAL_STATES[1],
                    FINAL_STATES[2],
                    FINAL_STATES[3],
                    FINAL_STATES[4]
                ],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .map_err(self.fail())?;
        let mut out = Vec::new();
        for row in rows {
            let (customer, state, upgrade, request, correlation) = row.map_err(self.fail())?;
            let customer = CustomerId::parse(&customer)
                .map_err(|e| format!("journal: customer {}: {e}", printable(&customer)))?;
            let upgrade_id = upgrade
                .map(|u| {
                    UpgradeId::parse(&u)
                        .map_err(|e| format!("journal: upgrade {}: {e}", printable(&u)))
                })
                .transpose()?;
            out.push(CustomerRow {
                customer,
                state,
                upgrade_id,
                create_request_id: request,
                create_correlation_id: correlation,
            });
        }
        Ok(out)
    }

    /// Customers per state.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, String> {
        let mut statement = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM customers GROUP BY state ORDER BY state")
            .map_err(self.fail())?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.fail())?;
        rows.map(|r| r.map(|(s, n)| (s, n.max(0) as u64)).map_err(self.fail()))
            .collect()
    }

    fn event(
        &self,
        customer: CustomerId,
        call: Option<&CallReport>,
        state: &str,
        detail: Option<&str>,
    ) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO events (at, session_id, customer_id, operation, request_id, \
                 correlation_id, http_status, attempts, state, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    now(),
                    self.session,
                    customer.to_string(),
                    call.map(|c| c.operation.operation_id()),
                    call.and_then(|c| c.request_id).map(|id| id.to_string()),
                    call.and_then(|c| c.correlation_id).map(|id| id.to_string()),
                    call.and_then(|c| c.status),
                    call.map(|c| c.attempts),
                    state,
                    detail.or(call.map(|c| c.detail.as_str())).map(bounded),
                ],
            )
            .map(|_| ())
            .map_err(self.fail())
    }

    /// Runs `change` and its event in one transaction.
    fn change(
        &self,
        customer: CustomerId,
        call: Option<&CallReport>,
        state: &str,
        detail: Option<&str>,
        change: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
    ) -> Result<(), String> {
        let tx = self.conn.unchecked_transaction().map_err(self.fail())?;
        let changed = change(&tx).map_err(self.fail())?;
        if changed != 1 {
            return Err(format!(
                "journal: customer {customer} is not in the journal"
            ));
        }
        self.event(customer, call, state, detail)?;
        tx.commit().map_err(self.fail())
    }

    /// The create's ids, committed before the create is sent: from here on, whatever happens
    /// to this process, a resume settles this customer with the same `MS-RequestId`.
    pub fn begin_create(
        &self,
        customer: CustomerId,
        request_id: &str,
        correlation_id: &str,
    ) -> Result<(), String> {
        let at = now();
        self.change(
            customer,
            None,
            "creating",
            Some(&format!(
                "create will be sent with MS-RequestId {request_id}"
            )),
            |c| {
                c.execute(
                    "UPDATE customers SET state = 'creating', create_request_id = ?2, \
                     create_correlation_id = ?3, started_at = COALESCE(started_at, ?4), \
                     updated_at = ?4 WHERE customer_id = ?1",
                    params![customer.to_string(), request_id, correlation_id, at],
                )
            },
        )
    }

    /// One call made while starting (eligibility, create), as it returned.
    pub fn call(&self, customer: CustomerId, call: &CallReport) -> Result<(), String> {
        let state: String = self
            .conn
            .query_row(
                "SELECT state FROM customers WHERE customer_id = ?1",
                [customer.to_string()],
                |r| r.get(0),
            )
            .map_err(self.fail())?;
        if call.operation.operation_id() == "createUpgrade" {
            self.conn
                .execute(
                    "UPDATE customers SET create_attempts = create_attempts + ?2 \
                     WHERE customer_id = ?1",
                    params![customer.to_string(), call.attempts],
                )
                .map_err(self.fail())?;
        }
        self.event(customer, Some(call), &state, None)
    }

    /// The upgrade to follow is known.
    pub fn following(
        &self,
        customer: CustomerId,
        upgrade_id: UpgradeId,
        resumed: bool,
    ) -> Result<(), String> {
        let at = now();
        self.change(
            customer,
            None,
            "following",
            Some(&format!(
                "{} upgrade {upgrade_id}",
                if resumed { "following" } else { "created" }
            )),
            |c| {
                c.execute(
                    "UPDATE customers SET state = 'following', upgrade_id = ?2, resumed = ?3, \
                     started_at = COALESCE(started_at, ?4), updated_at = ?4, error_message = NULL, \
                     http_status = NULL WHERE customer_id = ?1",
                    params![customer.to_string(), upgrade_id.to_string(), resumed, at],
                )
            },
        )
    }

    /// A status poll that found the upgrade not yet over.
    pub fn polled(
        &self,
        customer: CustomerId,
        call: &CallReport,
        status: &str,
    ) -> Result<(), String> {
        let at = now();
        let status = short(status);
        let previous: Option<String> = self
            .conn
            .query_row(
                "SELECT upgrade_status FROM customers WHERE customer_id = ?1",
                [customer.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.fail())?
            .flatten();
        let update = |c: &Connection| {
            c.execute(
                "UPDATE customers SET polls = polls + 1, upgrade_status = ?2, updated_at = ?3 \
                 WHERE customer_id = ?1",
                params![customer.to_string(), status, at],
            )
        };
        // The audit trail keeps each change of status, not every poll: an upgrade polled every
        // 30 s for a day would add thousands of identical rows per customer.
        if previous.as_deref() == Some(status.as_str()) {
            return update(&self.conn)
                .map_err(self.fail())
                .and_then(|n| match n {
                    1 => Ok(()),
                    _ => Err(format!(
                        "journal: customer {customer} is not in the journal"
                    )),
                });
        }
        self.change(customer, Some(call), "following", None, update)
    }

    /// The upgrade is over: its final state and line items.
    pub fn finished(
        &self,
        customer: CustomerId,
        call: &CallReport,
        state: &str,
        upgrade: &Upgrade,
    ) -> Result<(), String> {
        let at = now();
        let tx = self.conn.unchecked_transaction().map_err(self.fail())?;
        let error = upgrade.error_details.as_ref();
        tx.execute(
            "UPDATE customers SET state = ?2, polls = polls + 1, upgrade_status = ?3, \
             error_code = ?4, error_message = ?5, http_status = NULL, updated_at = ?6, \
             finished_at = ?6 WHERE customer_id = ?1",
            params![
                customer.to_string(),
                state,
                short(upgrade.status.as_str()),
                error
                    .and_then(|e| e.code.as_ref())
                    .map(|c| short(&c.to_string())),
                error.and_then(|e| e.text()).map(bounded),
                at
            ],
        )
        .map_err(self.fail())?;
        tx.execute(
            "DELETE FROM line_items WHERE customer_id = ?1",
            [customer.to_string()],
        )
        .map_err(self.fail())?;
        for (seq, line) in upgrade.line_items.iter().enumerate() {
            let source = line.source_product.as_ref();
            let target = line.target_product.as_ref();
            let error = line.error_details.as_ref();
            tx.execute(
                "INSERT INTO line_items (customer_id, seq, source_id, source_name, target_id, \
                 target_name, status, upgraded_date, error_code, error_description) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    customer.to_string(),
                    seq as i64,
                    source.and_then(|p| p.id.as_deref()).map(bounded),
                    source.and_then(|p| p.name.as_deref()).map(bounded),
                    target.and_then(|p| p.id.as_deref()).map(bounded),
                    target.and_then(|p| p.name.as_deref()).map(bounded),
                    short(line.status.as_str()),
                    line.upgraded_date_text.as_deref().map(bounded),
                    error
                        .and_then(|e| e.code.as_ref())
                        .map(|c| short(&c.to_string())),
                    error.and_then(|e| e.text()).map(bounded),
                ],
            )
            .map_err(self.fail())?;
        }
        self.event(customer, Some(call), state, None)?;
        tx.commit().map_err(self.fail())
    }

    /// Partner Center says the customer cannot be upgraded.
    pub fn not_eligible(
        &self,
        customer: CustomerId,
        reason: Option<&str>,
        code: Option<String>,
    ) -> Result<(), String> {
        let at = now();
        self.change(
            customer,
            None,
            "notEligible",
            Some(&format!(
                "not eligible: {}",
                reason.unwrap_or("no reason given")
            )),
            |c| {
                c.execute(
                    "UPDATE customers SET state = 'notEligible', reason = ?2, error_code = ?3, \
                     updated_at = ?4, finished_at = ?4 WHERE customer_id = ?1",
                    params![
                        customer.to_string(),
                        reason.map(bounded),
                        code.as_deref().map(short),
                        at
                    ],
                )
            },
        )
    }

    /// Gave up on this customer for this session; the ids stay, so a resume settles it.
    pub fn error(
        &self,
        customer: CustomerId,
        message: &str,
        status: Option<u16>,
        code: Option<String>,
    ) -> Result<(), String> {
        let at = now();
        self.change(customer, None, "error", Some(message), |c| {
            c.execute(
                "UPDATE customers SET state = 'error', error_message = ?2, http_status = ?3, \
                 error_code = COALESCE(?4, error_code), updated_at = ?5 WHERE customer_id = ?1",
                params![
                    customer.to_string(),
                    bounded(message),
                    status,
                    code.as_deref().map(short),
                    at
                ],
            )
        })
    }

    /// Marks the session ended (a killed session keeps `ended_at` NULL).
    pub fn end_session(&self) -> Result<(), String> {
        self.conn
            .execute(
                "UPDATE sessions SET ended_at = ?2 WHERE id = ?1",
                params![self.session, now()],
            )
            .map(|_| ())
            .map_err(self.fail())
    }
}

/// Every statement this file runs compiles against the journal's tables: a journal missing a
/// table or a column is refused before anything is sent, not found out mid-run.
fn check_tables(conn: &Connection) -> rusqlite::Result<()> {
    for sql in [
        "SELECT id, started_at, ended_at, operator, tenant, host, pid, version FROM sessions",
        "SELECT customer_id, planned, state, upgrade_id, create_request_id, \
         create_correlation_id, create_attempts, resumed, upgrade_status, polls, reason, \
         error_code, error_message, http_status, started_at, updated_at, finished_at \
         FROM customers",
        "SELECT customer_id, seq, source_id, source_name, target_id, target_name, status, \
         upgraded_date, error_code, error_description FROM line_items",
        "SELECT id, at, session_id, customer_id, operation, request_id, correlation_id, \
         http_status, attempts, state, detail FROM events",
    ] {
        conn.prepare(sql)?;
    }
    Ok(())
}

/// The journal's customers are exactly the plan's (by the text the journal writes), each in a
/// state this version knows, and each that may have sent its create holds the `MS-RequestId`
/// it was sent with: a row added, removed or edited by hand is refused, never acted on.
fn check_customers(
    conn: &Connection,
    customers: &[(CustomerId, &'static str)],
) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let mut planned: HashSet<String> = customers.iter().map(|(c, _)| c.to_string()).collect();
    let mut statement = conn
        .prepare("SELECT customer_id, state, upgrade_id, create_request_id FROM customers")
        .map_err(sql)?;
    let mut rows = statement.query([]).map_err(sql)?;
    let text = |row: &rusqlite::Row<'_>, i: usize| -> Result<Option<String>, String> {
        Ok(match row.get_ref(i).map_err(sql)? {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            other => Some(format!("{other:?}")),
        })
    };
    while let Some(row) = rows.next().map_err(sql)? {
        let customer = text(row, 0)?.unwrap_or_default();
        let shown = bounded_to(&customer, 100);
        if !planned.remove(&customer) {
            return Err(format!(
                "it lists customer {shown}, which the plan does not"
            ));
        }
        let state = text(row, 1)?.unwrap_or_default();
        if !OPEN_STATES.contains(&state.as_str()) && !FINAL_STATES.contains(&state.as_str()) {
            return Err(format!(
                "customer {shown} is in state {}, which pc-upgrade never writes",
                bounded_to(&state, 100)
            ));
        }
        let upgrade = text(row, 2)?;
        if let Some(upgrade) = &upgrade
            && UpgradeId::parse(upgrade).is_err()
        {
            return Err(format!(
                "customer {shown} follows upgrade {}, which is not a GUID",
                bounded_to(upgrade, 100)
            ));
        }
        // Past `pending` the create may have been sent: only its own MS-RequestId may send it
        // again.
        let request = text(row, 3)?;
        let request_ok = request
            .as_deref()
            .is_some_and(|r| RequestId::parse(r).is_ok());
        if OPEN_STATES.contains(&state.as_str())
            && state != "pending"
            && upgrade.is_none()
            && !request_ok
        {
            return Err(format!(
                "customer {shown} is in state {state} without the create's MS-RequestId"
            ));
        }
    }
    if let Some(missing) = planned.iter().next() {
        return Err(format!(
            "it lacks customer {missing}, whom the plan lists ({} missing in all)",
            planned.len()
        ));
    }
    Ok(())
}

/// `path` as SQLite must be given it to name that file: SQLite reads `:memory:`, an empty name
/// and a name starting with `file:` as something other than a file, so a relative path is
/// made explicit (`./:memory:` is a file).
pub fn sqlite_path(path: &Path) -> PathBuf {
    if path.is_relative() {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    }
}

/// `JOURNAL.lock` beside the journal's real file (symbolic links followed), so that every name
/// of one journal shares one lock; held for the life of the process.
fn lock_file(journal: &Path) -> Result<std::fs::File, String> {
    let real = match std::fs::canonicalize(journal) {
        Ok(real) => real,
        Err(_) => {
            let name = journal
                .file_name()
                .ok_or_else(|| format!("{} is not a file name", journal.display()))?;
            let parent = journal
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::canonicalize(parent)
                .map_err(|e| format!("cannot use the folder of {}: {e}", journal.display()))?
                .join(name)
        }
    };
    let mut name = real.into_os_string();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another pc-upgrade apply is using the journal {} (it holds {})",
            journal.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_is_printable_and_cut_with_a_mark() {
        let cases = [
            ("", 5, ""),
            ("short", 5, "short"),
            ("longer", 5, "longe…"),
            ("a\u{1b}[2J", 100, "a\\u{1b}[2J"),
            // The escape counts towards the bound: the cut may fall inside it.
            ("\u{1b}\u{1b}", 8, "\\u{1b}\\u…"),
            ("\u{202e}ünï", 3, "\\u{…"),
            ("ünïcödé", 4, "ünïc…"),
        ];
        for (text, max, expected) in cases {
            assert_eq!(bounded_to(text, max), expected, "{text:?} to {max}");
        }
        let huge = "x".repeat(1 << 20);
        assert_eq!(bounded_to(&huge, 64).chars().count(), 65);
    }
}
