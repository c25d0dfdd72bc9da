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

use std::path::{Path, PathBuf};

use partner_center_upgrades::{CallReport, CustomerId, Upgrade, UpgradeId, printable};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema version this code writes and reads.
pub const JOURNAL_VERSION: i64 = 1;
/// The longest `detail` kept per event: the audit trail stays bounded whatever a server says.
const MAX_DETAIL_CHARS: usize = 1000;

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

fn bounded(text: &str) -> String {
    let text = printable(text);
    if text.chars().count() > MAX_DETAIL_CHARS {
        let mut cut: String = text.chars().take(MAX_DETAIL_CHARS).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

impl Journal {
    /// Opens the journal at `path`, creating it for `run` with `customers` (the plan's
    /// eligible and under-way ones) when it does not exist. An existing journal must belong to
    /// the same plan (its SHA-256) and base URL. Starts a session.
    pub fn open(
        path: &Path,
        run: &RunInfo,
        customers: &[(CustomerId, &'static str)],
        operator: &Operator,
        durable: bool,
    ) -> Result<Journal, String> {
        let lock = lock_file(path)?;
        let fail = sql_error(path);
        let existed = path.exists();
        let conn = Connection::open(path).map_err(&fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(&fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&fail)?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .map_err(&fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(&fail)?;
        if existed {
            let found: Option<(i64, String, String)> = conn
                .query_row(
                    "SELECT journal_version, plan_sha256, base_url FROM run WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|_| {
                    format!(
                        "{} exists and is not a pc-upgrade journal; choose another --journal",
                        path.display()
                    )
                })?;
            let Some((version, sha, base_url)) = found else {
                return Err(format!(
                    "{} exists and is not a pc-upgrade journal; choose another --journal",
                    path.display()
                ));
            };
            if version != JOURNAL_VERSION {
                return Err(format!(
                    "journal {} is version {version}; this pc-upgrade reads version {JOURNAL_VERSION}",
                    path.display()
                ));
            }
            if sha != run.plan_sha256 {
                return Err(format!(
                    "journal {} belongs to another plan (SHA-256 {sha}); resume it with the plan it \
                     was started with, or start a new journal for this plan",
                    path.display()
                ));
            }
            if base_url != run.base_url {
                return Err(format!(
                    "journal {} ran against {base_url}, not {}",
                    path.display(),
                    printable(&run.base_url)
                ));
            }
        } else {
            conn.execute_batch(include_str!("journal.sql"))
                .map_err(&fail)?;
            let tx = conn.unchecked_transaction().map_err(&fail)?;
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
                operator.user,
                operator.tenant,
                std::env::var("HOSTNAME").ok(),
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
        self.change(customer, Some(call), "following", None, |c| {
            c.execute(
                "UPDATE customers SET polls = polls + 1, upgrade_status = ?2, updated_at = ?3 \
                 WHERE customer_id = ?1",
                params![customer.to_string(), status, at],
            )
        })
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
                printable(upgrade.status.as_str()),
                error.and_then(|e| e.code.as_ref()).map(|c| c.to_string()),
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
                    printable(line.status.as_str()),
                    line.upgraded_date_text.as_deref().map(bounded),
                    error.and_then(|e| e.code.as_ref()).map(|c| c.to_string()),
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
                    params![customer.to_string(), reason.map(bounded), code, at],
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
                params![customer.to_string(), bounded(message), status, code, at],
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

/// `JOURNAL.lock` beside the journal, held for the life of the process.
fn lock_file(journal: &Path) -> Result<std::fs::File, String> {
    let mut name = journal.as_os_str().to_owned();
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
