//! Command-line parsing and dispatch. This layer only parses and prints; the work lives in the
//! domain modules (`cloudlet`, `scenario`, `registry`).
//!
//! Commands are groups (`cloudlet`, `scenario`, `registry`) with subcommands; the roadmap's colon
//! form (`cloudlet:install`) is rewritten to the space form before clap sees it.

mod cloudlet;
mod cluster;
mod formation;
mod register;
mod registry;
mod scenario;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{Config, Paths};
use crate::error::{Error, ExitCode, Result};
use crate::output::{ErrorBody, ErrorReport, Format, Out};

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    failure (I/O, internal error)
  2    usage error (bad flags or arguments)
  3    not found (cloudlet, scenario, formation, registry entry)
  4    invalid input (YAML, parameter types, missing required values, unsafe cloudlet contents)
  5    provider failure
  6    conflict (already installed, in use, local changes)
  7    unavailable (git or a registry unreachable or missing)
  130  interrupted";

#[derive(Debug, Parser)]
#[command(
    name = "nepho",
    version,
    about = "Install shareable cloudlets and turn them into running formations",
    long_about = "nepho installs cloudlets (git repositories of scenarios, patterns and bootstrap scripts) \
and turns them into running formations on Vagrant, AWS CloudFormation and KVM/libvirt.\n\n\
Commands may be written in colon form (`nepho cloudlet:install hello`) or space form \
(`nepho cloudlet install hello`).",
    after_long_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format for results on stdout (progress and warnings always go to stderr).
    #[arg(short, long, global = true, value_enum, env = "NEPHO_OUTPUT")]
    pub output: Option<Format>,
    /// Never prompt; a missing value is an error naming the flag that supplies it
    /// (automatic when stdin is not a terminal).
    #[arg(long, global = true, env = "NEPHO_NO_INPUT", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_input: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more about what nepho does (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Use this config file instead of the default (`$XDG_CONFIG_HOME/nepho/config.yaml`).
    #[arg(long, global = true, value_name = "FILE", env = "NEPHO_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find, download and manage cloudlets
    #[command(subcommand)]
    Cloudlet(cloudlet::CloudletCommand),
    /// View cloudlet deployment scenarios
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Create and manage running cloudlet instances
    #[command(subcommand)]
    Formation(formation::FormationCommand),
    /// Manage the cloudlet registry index
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// The on-prem KVM cluster
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Set provider credentials and settings (stored 0600)
    Register(register::RegisterArgs),
    /// Shortcut for formation:create
    Create(formation::CreateArgs),
    /// Shortcut for formation:destroy
    Destroy(formation::DestroyArgs),
    /// Shortcut for formation:ssh
    Ssh(formation::SshArgs),
    /// Shortcut for formation:open
    Open(formation::OpenArgs),
    /// Internal: the detached process that runs a build (started by nepho itself)
    #[command(name = "__nanny", hide = true)]
    Nanny {
        formation: String,
        op: String,
        #[arg(long)]
        lock_fd: i32,
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        no_rollback: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Hosts, capacity, usage and the machines on each (read from the hosts)
    Status,
    /// Restart a dead host's machines (disks all on iSCSI) on other hosts with room
    Failover {
        /// The unreachable host (its name in the cluster file)
        host: String,
    },
    /// Watch the hosts and fail over every host that stays unreachable (runs until stopped)
    Watch(cluster::WatchArgs),
    /// Move a machine to another host, offline: clean shutdown, local disks copied, started
    /// again there if it was running
    Migrate(cluster::MigrateArgs),
    /// Even out memory use across the hosts by migrating machines (offline, one at a time)
    Rebalance(cluster::RebalanceArgs),
    /// Move every machine off a live host (maintenance), offline, one at a time
    Evacuate(cluster::EvacuateArgs),
    /// What each machine uses: per disk / iSCSI export (space, I/O, sessions) and per address
    /// (traffic)
    Usage(cluster::UsageArgs),
}

/// Group names that accept the colon form.
const GROUPS: &[&str] = &["cloudlet", "scenario", "registry", "formation", "cluster"];

/// Rewrites `cloudlet:install` into `cloudlet install` (the first positional argument only).
pub fn expand_colon_form(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut iter = args.into_iter();
    if let Some(bin) = iter.next() {
        out.push(bin);
    }
    let mut expecting_value = false;
    let mut done = false;
    for arg in iter {
        if done {
            out.push(arg);
            continue;
        }
        let s = arg.to_string_lossy().into_owned();
        if expecting_value {
            expecting_value = false;
            out.push(arg);
            continue;
        }
        if s == "--" {
            done = true;
            out.push(arg);
            continue;
        }
        if s.starts_with('-') {
            expecting_value = matches!(s.as_str(), "-o" | "--output" | "--config");
            out.push(arg);
            continue;
        }
        // `nepho help formation:create` is `nepho help formation create`.
        done = s != "help";
        match s.split_once(':') {
            Some((group, sub)) if GROUPS.contains(&group) && !sub.is_empty() => {
                out.push(group.into());
                out.push(sub.into());
            }
            _ => out.push(arg),
        }
    }
    out
}

pub fn command() -> clap::Command {
    Cli::command()
}

/// Everything a command needs: where things are, the config, and how to print.
pub struct Context {
    pub paths: Paths,
    pub config: Config,
    pub out: Out,
    /// True when prompting is allowed (TTY on stdin and stderr, and not --no-input).
    pub interactive: bool,
}

impl Context {
    pub fn git(&self) -> crate::git::Git {
        crate::git::Git {
            no_prompt: !self.interactive,
        }
    }

    pub fn registry(&self) -> crate::registry::Registry {
        crate::registry::Registry {
            sources: self.config.registries.clone(),
            trusted_keys: self.config.registry_keys.clone(),
            cache_dir: self.paths.registry_cache_dir(),
            default_max_age: self
                .config
                .registry_max_age
                .unwrap_or(crate::registry::DEFAULT_MAX_AGE),
        }
    }
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let args = expand_colon_form(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    let mut out = Out {
        format: cli.global.output.unwrap_or(Format::Table),
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
        color,
    };
    match run(cli, &mut out) {
        Ok(()) => ExitCode::Success as i32,
        Err(e) => {
            report_error(&out, &e);
            e.exit_code() as i32
        }
    }
}

fn report_error(out: &Out, e: &Error) {
    let code = e.exit_code() as i32;
    match out.format {
        Format::Json | Format::Yaml => {
            let report = ErrorReport {
                error: ErrorBody {
                    kind: e.kind().into(),
                    message: e.to_string(),
                    hint: e.hint().map(str::to_string),
                    exit_code: code,
                },
            };
            let text = if out.format == Format::Json {
                serde_json::to_string_pretty(&report).unwrap_or_default()
            } else {
                serde_saphyr::to_string(&serde_json::to_value(&report).unwrap_or_default())
                    .unwrap_or_default()
            };
            eprintln!("{}", text.trim_end());
        }
        Format::Table => {
            let prefix = if out.color {
                "\x1b[31merror:\x1b[0m"
            } else {
                "error:"
            };
            // Messages quote registry and cloudlet text, which may carry terminal escapes.
            eprintln!("{prefix} {}", crate::output::terminal_safe(&e.to_string()));
            if let Some(hint) = e.hint() {
                eprintln!("hint: {}", crate::output::terminal_safe(hint));
            }
        }
    }
}

fn run(cli: Cli, out: &mut Out) -> Result<()> {
    if let Some(file) = &cli.global.config
        && !file.is_file()
    {
        return Err(
            Error::not_found(format!("--config {}: no such file", file.display()))
                .with_hint("give the path of an existing config file, or leave --config out"),
        );
    }
    let paths = Paths::discover(cli.global.config.as_deref())?;
    let config = Config::load(&paths.config_file)?;
    for w in &config.warnings {
        out.warn(w);
    }
    if cli.global.output.is_none()
        && let Some(f) = &config.output
    {
        out.format = match f.as_str() {
            "table" => Format::Table,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            other => {
                return Err(Error::invalid(format!(
                    "{}: unknown output format \"{other}\"",
                    paths.config_file.display()
                )));
            }
        };
    }
    let no_input = cli.global.no_input || config.no_input.unwrap_or(false);
    let interactive =
        !no_input && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !matches!(
        cli.command,
        Command::Formation(_) | Command::Create(_) | Command::Destroy(_) | Command::Nanny { .. }
    ) {
        // Builds handle Ctrl-C themselves (detach); elsewhere it cleans up and exits 130.
        crate::git::catch_interrupts();
    }
    let cx = Context {
        paths,
        config,
        out: out.clone(),
        interactive,
    };
    match cli.command {
        Command::Cloudlet(c) => cloudlet::run(&cx, c),
        Command::Scenario(c) => scenario::run(&cx, c),
        Command::Registry(c) => registry::run(&cx, c),
        Command::Formation(c) => formation::run(&cx, c),
        Command::Register(a) => register::run(&cx, a),
        Command::Cluster(ClusterCommand::Status) => cluster::status(&cx),
        Command::Cluster(ClusterCommand::Failover { host }) => cluster::failover(&cx, &host),
        Command::Cluster(ClusterCommand::Watch(a)) => cluster::watch(&cx, &a),
        Command::Cluster(ClusterCommand::Migrate(a)) => cluster::migrate(&cx, &a),
        Command::Cluster(ClusterCommand::Rebalance(a)) => cluster::rebalance(&cx, &a),
        Command::Cluster(ClusterCommand::Evacuate(a)) => cluster::evacuate(&cx, &a),
        Command::Cluster(ClusterCommand::Usage(a)) => cluster::usage(&cx, &a),
        Command::Create(a) => formation::run(&cx, formation::FormationCommand::Create(a)),
        Command::Destroy(a) => formation::run(&cx, formation::FormationCommand::Destroy(a)),
        Command::Ssh(a) => formation::run(&cx, formation::FormationCommand::Ssh(a)),
        Command::Open(a) => formation::run(&cx, formation::FormationCommand::Open(a)),
        Command::Nanny {
            formation,
            op,
            lock_fd,
            resume,
            no_rollback,
        } => {
            match crate::nanny::nanny_main(
                &cx.paths,
                &formation,
                &op,
                lock_fd,
                resume,
                !no_rollback,
            )? {
                crate::engine::Outcome::Succeeded => Ok(()),
                crate::engine::Outcome::Cancelled => Err(Error::Interrupted),
                crate::engine::Outcome::Failed(e) => Err(crate::providers::provider_error(e)),
            }
        }
        Command::Completions { shell } => {
            let mut cmd = command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "nepho", &mut script);
            crate::output::write_stdout(&script);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &[&str]) -> Vec<String> {
        expand_colon_form(args.iter().map(|a| a.into()).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn colon_form_becomes_space_form() {
        assert_eq!(
            expand(&["nepho", "cloudlet:install", "x"]),
            ["nepho", "cloudlet", "install", "x"]
        );
        assert_eq!(
            expand(&["nepho", "-o", "json", "scenario:describe", "a/b"]),
            ["nepho", "-o", "json", "scenario", "describe", "a/b"]
        );
        // Only the command word is rewritten: values with colons stay as they are.
        assert_eq!(
            expand(&["nepho", "cloudlet", "install", "git@h:x.git"]),
            ["nepho", "cloudlet", "install", "git@h:x.git"]
        );
        assert_eq!(
            expand(&["nepho", "unknown:thing"]),
            ["nepho", "unknown:thing"]
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }
}
