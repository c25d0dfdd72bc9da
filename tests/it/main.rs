//! The integration tests, in one binary, organised by what they test.

mod support;

mod apply;
mod bulk_hostile;
mod cli;
mod client;
mod examples;
mod faults;
mod flow;
mod generated;
mod hardening;
mod mock;
mod mock_limits;
mod mock_scale;
mod plan;
mod plausible;
mod props;
mod provider;
mod report;
mod retries;
mod signin;
mod signin_cli;
mod traces;
