//! The stateful flows: eligibility → create → create again with the same `MS-RequestId` →
//! (a second create and eligibility while the upgrade is under way) → status polls to the end.
//!
//! They check Partner Center's own semantics, which no schema states: a replay returns the first
//! answer and never starts a second upgrade, an upgrade under way is named by eligibility and
//! refuses another create (`409`, `900109`), and polls reach a final status. The operations are
//! the spec's, found by operationId; only what each step expects differs per operation.

use serde_json::json;
use uuid::Uuid;

use super::check::Contract;
use super::plan::{Probe, request_body};
use super::transport::{Case, Runner};
use crate::operations::Operation;

/// The operationIds a flow walks.
const ELIGIBILITY: &str = "checkEligibility";
const CREATE: &str = "createUpgrade";
const STATUS: &str = "getUpgradeStatus";

/// Says which operation a flow needs the spec does not declare.
pub(super) fn check_operations(contract: &Contract) -> Result<(), String> {
    for id in [ELIGIBILITY, CREATE, STATUS] {
        if contract.operation(id).is_none() {
            return Err(format!(
                "the spec has no operation {id}, which the flows need"
            ));
        }
    }
    Ok(())
}

fn operation<'c>(contract: &'c Contract, id: &str) -> &'c Operation {
    contract
        .operation(id)
        .expect("the run checked the flows' operations")
}

/// Eligibility → create → create again with the same `MS-RequestId` → status polls. Returns how
/// many requests it sent.
pub(super) async fn flow(
    runner: &Runner,
    customer: Uuid,
    request_id: Uuid,
    correlation_id: Uuid,
    stateless: bool,
    case: &mut Case,
) -> usize {
    let (eligibility_op, create_op, status_op) = (
        operation(&runner.contract, ELIGIBILITY),
        operation(&runner.contract, CREATE),
        operation(&runner.contract, STATUS),
    );
    let body = request_body(&customer.to_string(), "Azure");
    let probe = |operation: &Operation, upgrade: &str, request: Uuid| {
        Probe::positive(
            operation,
            upgrade,
            vec![
                ("ms-requestid".into(), request.to_string()),
                ("ms-correlationid".into(), correlation_id.to_string()),
            ],
            body.clone(),
        )
    };
    // The flow's other calls get ids derived from its seeded request id, so a seed repeats them.
    let mut next_id = 0u128;
    let mut derived_id = || {
        next_id += 1;
        Uuid::from_u128(request_id.as_u128().wrapping_add(next_id))
    };
    let mut sent = 1;
    let eligibility = probe(eligibility_op, "", derived_id());
    let Some((answer, Some(value))) = runner.exchange(&eligibility, case).await else {
        case.findings
            .failures
            .push("flow: eligibility gave no body; the flow stops".into());
        return sent;
    };
    if answer.status != 200 || value["isEligible"] != json!(true) {
        case.findings.failures.push(format!(
            "flow: a new customer should be eligible, got status {} and {value}",
            answer.status
        ));
        return sent;
    }
    let create = probe(create_op, "", request_id);
    sent += 1;
    let Some((first, _)) = runner.exchange(&create, case).await else {
        return sent;
    };
    if first.status != 202 {
        case.findings.failures.push(format!(
            "flow: create answered {}, expected 202",
            first.status
        ));
        return sent;
    }
    let location = first
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(upgrade) = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|id| Uuid::try_parse(id).ok())
    else {
        case.findings.failures.push(format!(
            "flow: create's Location {location:?} does not end in an upgrade id"
        ));
        return sent;
    };
    sent += 1;
    if let Some((replay, _)) = runner.exchange(&create, case).await {
        let again = replay
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if replay.status != first.status || again != location {
            case.findings.failures.push(format!(
                "flow: replaying create with the same MS-RequestId {request_id} answered {} with Location {again:?}; \
                 the first answer was 202 with {location:?} — a replay must return the first answer, not start a second upgrade",
                replay.status
            ));
        }
    }
    if !stateless {
        sent += 1;
        let second = probe(create_op, "", derived_id());
        if let Some((answer, body)) = runner.exchange(&second, case).await {
            let code = body
                .as_ref()
                .map(|b| b["code"].to_string().trim_matches('"').to_owned());
            if answer.status != 409 || code.as_deref() != Some("900109") {
                case.findings.failures.push(format!(
                    "flow: a second create (new MS-RequestId) while upgrade {upgrade} is under way answered {} {}; \
                     expected 409 with code 900109",
                    answer.status,
                    body.map(|b| b.to_string()).unwrap_or_default()
                ));
            }
        }
        sent += 1;
        let check = probe(eligibility_op, "", derived_id());
        if let Some((_, Some(value))) = runner.exchange(&check, case).await
            && value["upgradeId"] != json!(upgrade.to_string())
        {
            case.findings.failures.push(format!(
                "flow: while upgrade {upgrade} is under way, eligibility should name it in upgradeId, got {value}"
            ));
        }
    }
    for _poll in 0..10 {
        sent += 1;
        let status = probe(status_op, &upgrade.to_string(), derived_id());
        let Some((answer, Some(value))) = runner.exchange(&status, case).await else {
            return sent;
        };
        if answer.status != 200 {
            case.findings.failures.push(format!(
                "flow: status of upgrade {upgrade} answered {}",
                answer.status
            ));
            return sent;
        }
        if stateless {
            return sent;
        }
        if value["id"] != json!(upgrade.to_string()) {
            case.findings.failures.push(format!(
                "flow: status of upgrade {upgrade} names another upgrade: {}",
                value["id"]
            ));
            return sent;
        }
        let state = value["status"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if state == "completed" || state == "failed" {
            return sent;
        }
    }
    case.findings.failures.push(format!(
        "flow: upgrade {upgrade} did not reach Completed or Failed in 10 polls"
    ));
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_without_an_operation_the_flows_need_is_refused_by_name() {
        let mut spec = crate::spec();
        let paths = spec["paths"].as_object_mut().unwrap();
        let status = paths
            .keys()
            .find(|p| p.contains("{upgradeId}"))
            .unwrap()
            .clone();
        paths.remove(&status);

        let contract = Contract::new(spec).unwrap();

        assert!(check_operations(&Contract::new(crate::spec()).unwrap()).is_ok());
        let refused = check_operations(&contract).unwrap_err();
        assert!(refused.contains("getUpgradeStatus"), "{refused}");
    }
}
