//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! One module a task; each task says what failed and how to fix it.

mod arazzo;
mod codegen_task;
mod compat;
mod contract;
mod diff;
mod independent;
mod mock;
mod polyglot;
mod publish;
mod report;
mod spec_rules;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Tasks of the partner-center-upgrades project"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check that the spec, the generated client and a server agree; prints a report table.
    Contract(contract::Options),
    /// Serve the stateful mock of the API on 127.0.0.1 until stopped.
    Mock(mock::Options),
    /// Write (or --check) the committed review copy of the generated client.
    Codegen(codegen_task::Options),
    /// List the spec's changes since a git revision or file, breaking or not, for clients and servers.
    Diff(diff::Options),
    /// Publish the spec (YAML, JSON, checksums, changelog) for other language teams.
    Publish(publish::Options),
    /// Prove that other languages' clients, generated from the published spec, run the whole
    /// workflow against the embedded mock (TypeScript and Python; C# where a .NET SDK is installed).
    Polyglot,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.task {
        Task::Contract(options) => contract::run(&root, &options),
        Task::Mock(options) => mock::run(&options),
        Task::Codegen(options) => codegen_task::run(&root, &options),
        Task::Diff(options) => diff::run(&root, &options),
        Task::Publish(options) => publish::run(&root, &options),
        Task::Polyglot => polyglot::run(&root),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: the parent of this package's directory.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}
