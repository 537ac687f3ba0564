//! `airlock policy check | explain | schema`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;

use airlock::policy::{PolicySet, tool_file_schema};

use super::PoliciesArg;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate every policy file; report every error (file, line, fix).
    /// Exit 0 when the policies are valid, 1 otherwise.
    Check {
        #[command(flatten)]
        policies: PoliciesArg,
    },
    /// Print, as JSON, the decision for a call, the rule that made it and the resolved
    /// grant, without running anything.
    Explain {
        /// The tool's name.
        tool: String,
        /// Who asks.
        #[arg(long, value_name = "NAME")]
        caller: String,
        /// The arguments, as a JSON object.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        args: String,
        /// The workspace [default: the current directory].
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        #[command(flatten)]
        policies: PoliciesArg,
    },
    /// Print the JSON Schema of a tool file (policies/tools/NAME.toml).
    Schema,
}

pub async fn policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { policies } => {
            let dir = policies.dir();
            match PolicySet::load(&dir) {
                Ok(set) => {
                    println!(
                        "{}: ok: {} tools, {} designations, {} callers; digest {}",
                        dir.display(),
                        set.tools().count(),
                        set.designations().count(),
                        set.callers().count(),
                        set.digest()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for error in &errors.0 {
                        eprintln!("{error}");
                    }
                    eprintln!("{}: {} error(s)", dir.display(), errors.0.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        PolicyCommand::Explain { tool, caller, args, workspace, policies } => {
            let set = PolicySet::load(&policies.dir())?;
            let arguments: serde_json::Value = serde_json::from_str(&args).context("--args is not valid JSON")?;
            let workspace = match workspace {
                Some(dir) => dir,
                None => std::env::current_dir().context("cannot read the current directory; pass --workspace")?,
            };
            let evaluation = set.evaluate(&caller, &tool, &arguments, &workspace);
            println!("{}", serde_json::to_string_pretty(&evaluation)?);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&tool_file_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
