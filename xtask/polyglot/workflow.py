"""The whole upgrade workflow, as a Python team would write it with the client that
openapi-python-client generates from the published spec (its functions and models only, no raw
httpx). `cargo xtask polyglot` runs it against the embedded mock on loopback:

    python workflow.py BASE_URL TOKEN ELIGIBLE_CUSTOMER NOT_ELIGIBLE_CUSTOMER CONFLICT_CUSTOMER

It prints one JSON line per scenario; the xtask checks each line's facts (and the mock's ledger),
so a line says what happened, not merely "ok". A scenario that raises prints
{"scenario": ..., "error": ...} and the others still run.

openapi-python-client 0.29 hands a `format: uuid` header to httpx as a UUID object, which httpx
refuses: header ids are passed as strings (documented in the README).
"""

import json
import sys
import time
import uuid

from partner_center_product_upgrades_client import AuthenticatedClient
from partner_center_product_upgrades_client.api.product_upgrades import (
    check_eligibility,
    create_upgrade,
    get_upgrade_status,
)
from partner_center_product_upgrades_client.models import (
    ProductUpgradeRequest,
    ProductUpgradesEligibility,
    ProductUpgradesStatus,
    ServiceError,
    ThrottlingError,
)
from partner_center_product_upgrades_client.types import Unset

base_url, token, eligible_customer, not_eligible_customer, conflict_customer = sys.argv[1:6]
client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def ids(correlation_id, request_id=None):
    """The headers of one new logical call: a new request id, the flow's correlation id."""
    return {
        "ms_request_id": request_id or str(uuid.uuid4()),
        "ms_correlation_id": correlation_id,
    }


def request(customer):
    return ProductUpgradeRequest(customer_id=uuid.UUID(customer), product_family="Azure")


def code(failure):
    if isinstance(failure, ServiceError):
        return failure.code
    if isinstance(failure, ThrottlingError):
        return failure.status_code
    return None


def upgrade_id_from(location):
    """The upgrade id: the last path segment of Location (relative, absolute or /v1/-prefixed)."""
    segments = [s for s in (location or "").split("?")[0].split("/") if s]
    if not segments:
        raise RuntimeError(f"create answered 202 without a usable Location: {location!r}")
    return segments[-1]


def eligibility(customer, correlation_id):
    answer = check_eligibility.sync_detailed(client=client, body=request(customer), **ids(correlation_id))
    if not isinstance(answer.parsed, ProductUpgradesEligibility):
        raise RuntimeError(f"eligibility answered {answer.status_code}: {answer.content!r}")
    return answer.parsed


def create(customer, correlation_id, request_id=None):
    answer = create_upgrade.sync_detailed(client=client, body=request(customer), **ids(correlation_id, request_id))
    return answer.status_code, answer.headers.get("location"), answer.parsed


def wait_for_completion(customer, upgrade_id, correlation_id):
    """Polls until the upgrade is over (Completed or Failed), at most 50 times."""
    for polls in range(1, 51):
        answer = get_upgrade_status.sync_detailed(
            uuid.UUID(upgrade_id), client=client, body=request(customer), **ids(correlation_id)
        )
        status = answer.parsed
        if not isinstance(status, ProductUpgradesStatus):
            raise RuntimeError(f"status answered {answer.status_code}: {answer.content!r}")
        if status.status.lower() in ("completed", "failed"):
            return str(status.id), status.status, polls
        time.sleep(0.02)
    raise RuntimeError(f"upgrade {upgrade_id} was not over after 50 polls")


def eligible():
    """eligible -> create (202, Location) -> poll to the end."""
    correlation_id = str(uuid.uuid4())
    answer = eligibility(eligible_customer, correlation_id)
    status, location, parsed = create(eligible_customer, correlation_id)
    if status != 202:
        raise RuntimeError(f"create answered {status}: {parsed!r}")
    upgrade_id = upgrade_id_from(location)
    status_id, final, polls = wait_for_completion(eligible_customer, upgrade_id, correlation_id)
    return {
        "eligible": answer.is_eligible,
        "createStatus": status,
        "upgradeId": upgrade_id,
        "statusId": status_id,
        "status": final,
        "polls": polls,
    }


def not_eligible():
    """Not eligible, with a reason; a create anyway is refused with Partner Center's error."""
    correlation_id = str(uuid.uuid4())
    answer = eligibility(not_eligible_customer, correlation_id)
    status, _, parsed = create(not_eligible_customer, correlation_id)
    reason = None if isinstance(answer.reason, Unset) else answer.reason
    return {"eligible": answer.is_eligible, "reason": reason, "createStatus": status, "createCode": code(parsed)}


def conflict():
    """A second create (another MS-RequestId) while the first runs: 409 900109; eligibility names
    the upgrade under way, and the client follows it to the end."""
    correlation_id = str(uuid.uuid4())
    first, location, parsed = create(conflict_customer, correlation_id, str(uuid.uuid4()))
    if first != 202:
        raise RuntimeError(f"first create answered {first}: {parsed!r}")
    second, _, refused = create(conflict_customer, correlation_id, str(uuid.uuid4()))
    answer = eligibility(conflict_customer, correlation_id)
    followed = None if isinstance(answer.upgrade_id, Unset) else answer.upgrade_id
    if not followed:
        raise RuntimeError(f"eligibility names no upgrade: {answer.to_dict()!r}")
    _, final, polls = wait_for_completion(conflict_customer, followed, correlation_id)
    return {
        "firstStatus": first,
        "upgradeId": upgrade_id_from(location),
        "conflictStatus": second,
        "conflictCode": code(refused),
        "eligible": answer.is_eligible,
        "followed": followed,
        "status": final,
        "polls": polls,
    }


for scenario, run in (("eligible", eligible), ("notEligible", not_eligible), ("conflict", conflict)):
    started = time.monotonic()
    try:
        line = {"scenario": scenario, **run()}
    except Exception as e:  # one scenario's failure is reported, and the others still run
        line = {"scenario": scenario, "error": f"{type(e).__name__}: {e}"}
    line["ms"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(line), flush=True)
