-- The journal of `pc-upgrade apply`: every customer's state and the audit trail of every call.
-- One SQLite file in write-ahead-log mode; every state change is one transaction, so a process
-- killed at any instant leaves the journal as it was before or after each change, never between.
-- `journal.rs` writes it and `report.rs` reads it; both include this file.

CREATE TABLE IF NOT EXISTS run (
    -- One row: what this journal belongs to. A journal applies one plan.
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    journal_version INTEGER NOT NULL,
    plan_path       TEXT NOT NULL,
    plan_sha256     TEXT NOT NULL,      -- the plan's bytes; a resume refuses another plan
    plan_created_at TEXT NOT NULL,      -- RFC 3339, from the plan
    base_url        TEXT NOT NULL,
    product_family  TEXT NOT NULL,
    created_at      TEXT NOT NULL       -- RFC 3339, when the first apply started
);

CREATE TABLE IF NOT EXISTS sessions (
    -- One row per `apply` invocation: the first and every resume.
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,                   -- NULL when killed or still running
    operator    TEXT,                   -- who: the signed-in user (token claims), when known
    tenant      TEXT,                   -- the partner tenant (token claims), when known
    host        TEXT,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL           -- pc-upgrade's version
);

CREATE TABLE IF NOT EXISTS customers (
    -- One row per customer the plan listed as eligible or under way; nobody else, ever.
    customer_id           TEXT PRIMARY KEY,
    planned               TEXT NOT NULL,   -- 'eligible' | 'underWay', from the plan
    -- 'pending'   : nothing sent yet (or only eligibility)
    -- 'creating'  : create_request_id written; the create may have been sent
    -- 'following' : upgrade_id known; polling its status
    -- 'completed' | 'partiallyCompleted' | 'cancelled' | 'failed' : the upgrade ended so
    -- 'notEligible' : Partner Center says it cannot be upgraded (reason, error_code)
    -- 'error'     : gave up on this customer (error_message); a resume tries it again
    state                 TEXT NOT NULL,
    upgrade_id            TEXT,
    create_request_id     TEXT,            -- the create's MS-RequestId, written before it is sent
    create_correlation_id TEXT,            -- the flow's MS-CorrelationId
    create_attempts       INTEGER NOT NULL DEFAULT 0,  -- create calls' attempts, summed over resumes
    resumed               INTEGER NOT NULL DEFAULT 0,  -- 1: followed an upgrade that already existed
    upgrade_status        TEXT,            -- the last status read, as sent
    polls                 INTEGER NOT NULL DEFAULT 0,
    reason                TEXT,            -- not eligible: Partner Center's reason
    error_code            TEXT,            -- Partner Center's error code, when it sent one
    error_message         TEXT,            -- the last error, printable
    http_status           INTEGER,         -- of the last error
    started_at            TEXT,            -- first call for this customer
    updated_at            TEXT NOT NULL,
    finished_at           TEXT             -- when it reached a final state
);

CREATE TABLE IF NOT EXISTS line_items (
    -- The line items of each finished upgrade, as the last status answer listed them.
    customer_id         TEXT NOT NULL REFERENCES customers(customer_id),
    seq                 INTEGER NOT NULL,
    source_id           TEXT,              -- the source product (the Azure subscription)
    source_name         TEXT,
    target_id           TEXT,              -- what it became
    target_name         TEXT,
    status              TEXT NOT NULL,
    upgraded_date       TEXT,              -- as sent
    error_code          TEXT,
    error_description   TEXT,
    PRIMARY KEY (customer_id, seq)
);

CREATE TABLE IF NOT EXISTS events (
    -- The audit trail: every call made and every state change, in order.
    id             INTEGER PRIMARY KEY,
    at             TEXT NOT NULL,          -- RFC 3339 with milliseconds
    session_id     INTEGER NOT NULL REFERENCES sessions(id),
    customer_id    TEXT NOT NULL,
    operation      TEXT,                   -- 'checkEligibility' | 'createUpgrade' | 'getUpgradeStatus'; NULL for a state change alone
    request_id     TEXT,                   -- MS-RequestId
    correlation_id TEXT,                   -- MS-CorrelationId
    http_status    INTEGER,
    attempts       INTEGER,
    state          TEXT NOT NULL,          -- the customer's state after the event
    detail         TEXT                    -- what Partner Center answered, printable and bounded
);

CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, id);
