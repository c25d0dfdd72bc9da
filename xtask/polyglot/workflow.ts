// The whole upgrade workflow, as a TypeScript team would write it: openapi-fetch (a fetch-based
// runtime, node's global fetch) typed by the `paths` openapi-typescript generates from the
// published spec. `cargo xtask polyglot` compiles it with `tsc --strict` and runs it with node
// against the embedded mock on loopback:
//
//   node workflow.js BASE_URL TOKEN ELIGIBLE_CUSTOMER NOT_ELIGIBLE_CUSTOMER CONFLICT_CUSTOMER
//
// It prints one JSON line per scenario; the xtask checks each line's facts (and the mock's
// ledger), so a line says what happened, not merely "ok". A scenario that throws prints
// `{"scenario": ..., "error": ...}` and the others still run.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

// Node's own globals, without @types/node: the program needs only these.
declare const process: { argv: string[]; exitCode?: number };

type Eligibility = components["schemas"]["ProductUpgradesEligibility"];
type Status = components["schemas"]["ProductUpgradesStatus"];
type Failure = components["schemas"]["ServiceError"] | components["schemas"]["ThrottlingError"];

const [baseUrl, token, eligibleCustomer, notEligibleCustomer, conflictCustomer] = process.argv.slice(2);
if (!baseUrl || !token || !eligibleCustomer || !notEligibleCustomer || !conflictCustomer) {
  throw new Error("usage: workflow.js BASE_URL TOKEN ELIGIBLE NOT_ELIGIBLE CONFLICT");
}

const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

/** The headers of one new logical call: a new request id, the flow's correlation id. */
function ids(correlationId: string, requestId: string = crypto.randomUUID()) {
  return { "MS-RequestId": requestId, "MS-CorrelationId": correlationId };
}

function code(failure: Failure | undefined): string | number | undefined {
  if (failure === undefined) return undefined;
  return "code" in failure ? failure.code : failure.statusCode;
}

/** The upgrade id: the last path segment of `Location` (relative, absolute or `/v1/`-prefixed). */
function upgradeIdFrom(location: string | null): string {
  const segment = (location ?? "").split("?")[0].split("/").filter((s) => s.length > 0).pop();
  if (!segment) throw new Error(`create answered 202 without a usable Location: ${location}`);
  return segment;
}

async function eligibility(customerId: string, correlationId: string): Promise<Eligibility> {
  const { data, error, response } = await client.POST("/v1/productUpgrades/eligibility", {
    params: { header: ids(correlationId) },
    body: { customerId, productFamily: "Azure" },
  });
  if (data === undefined) throw new Error(`eligibility answered ${response.status}: ${JSON.stringify(error)}`);
  return data;
}

async function create(customerId: string, correlationId: string, requestId?: string) {
  const { error, response } = await client.POST("/v1/productUpgrades", {
    params: { header: ids(correlationId, requestId) },
    body: { customerId, productFamily: "Azure" },
  });
  return { status: response.status, location: response.headers.get("location"), error };
}

/** Polls until the upgrade is over (`Completed` or `Failed`), at most 50 times. */
async function waitForCompletion(customerId: string, upgradeId: string, correlationId: string) {
  for (let polls = 1; polls <= 50; polls++) {
    const { data, error, response } = await client.POST("/v1/productUpgrades/{upgradeId}/status", {
      params: { path: { upgradeId }, header: ids(correlationId) },
      body: { customerId, productFamily: "Azure" },
    });
    if (data === undefined) throw new Error(`status answered ${response.status}: ${JSON.stringify(error)}`);
    const status: Status = data;
    if (["completed", "failed"].includes(status.status.toLowerCase())) {
      return { id: status.id, status: status.status, polls };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`upgrade ${upgradeId} was not over after 50 polls`);
}

/** eligible → create (202, Location) → poll to the end. */
async function eligible() {
  const correlationId = crypto.randomUUID();
  const answer = await eligibility(eligibleCustomer, correlationId);
  const created = await create(eligibleCustomer, correlationId);
  if (created.status !== 202) {
    throw new Error(`create answered ${created.status}: ${JSON.stringify(created.error)}`);
  }
  const upgradeId = upgradeIdFrom(created.location);
  const done = await waitForCompletion(eligibleCustomer, upgradeId, correlationId);
  return {
    eligible: answer.isEligible,
    createStatus: created.status,
    upgradeId,
    statusId: done.id,
    status: done.status,
    polls: done.polls,
  };
}

/** Not eligible, with a reason; a create anyway is refused with Partner Center's error. */
async function notEligible() {
  const correlationId = crypto.randomUUID();
  const answer = await eligibility(notEligibleCustomer, correlationId);
  const refused = await create(notEligibleCustomer, correlationId);
  return {
    eligible: answer.isEligible,
    reason: answer.reason ?? null,
    createStatus: refused.status,
    createCode: code(refused.error) ?? null,
  };
}

/** A second create (another MS-RequestId) while the first runs: 409 900109; eligibility names
 *  the upgrade under way, and the client follows it to the end. */
async function conflict() {
  const correlationId = crypto.randomUUID();
  const first = await create(conflictCustomer, correlationId, crypto.randomUUID());
  if (first.status !== 202) throw new Error(`first create answered ${first.status}: ${JSON.stringify(first.error)}`);
  const second = await create(conflictCustomer, correlationId, crypto.randomUUID());
  const answer = await eligibility(conflictCustomer, correlationId);
  const followed = answer.upgradeId;
  if (!followed) throw new Error(`eligibility names no upgrade: ${JSON.stringify(answer)}`);
  const done = await waitForCompletion(conflictCustomer, followed, correlationId);
  return {
    firstStatus: first.status,
    upgradeId: upgradeIdFrom(first.location),
    conflictStatus: second.status,
    conflictCode: code(second.error) ?? null,
    eligible: answer.isEligible,
    followed,
    status: done.status,
    polls: done.polls,
  };
}

for (const [scenario, run] of [
  ["eligible", eligible],
  ["notEligible", notEligible],
  ["conflict", conflict],
] as const) {
  const started = Date.now();
  try {
    const facts = await run();
    console.log(JSON.stringify({ scenario, ...facts, ms: Date.now() - started }));
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    console.log(JSON.stringify({ scenario, error, ms: Date.now() - started }));
  }
}
