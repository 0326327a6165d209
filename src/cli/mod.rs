//! Command-line parsing and dispatch. This layer only parses and prints: each command calls one
//! `crate::ops` function and prints the typed result it returns (`crate::output`).
//!
//! Commands are groups (`cloudlet`, `scenario`, `registry`) with subcommands; the roadmap's colon
//! form (`cloudlet:install`) is rewritten to the space form before clap sees it.

mod cloudlet;
mod cluster;
mod context;
mod formation;
mod library;
mod register;
mod registry;
mod scenario;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::{Error, ExitCode, Result};
pub use crate::help::completion_script;
use crate::help::{COMPLETE_VAR, completion_args};
pub use crate::ops::Context;
use crate::output::{Format, Out};

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
    /// Use this context's provider settings (AWS account and region, KVM cluster) instead of
    /// the one chosen with `nepho context:use`
    #[arg(long, global = true, value_name = "NAME", env = "NEPHO_CONTEXT")]
    pub context: Option<String>,
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
    /// The library of base images on every KVM host (`image: NAME` in a pattern)
    #[command(subcommand)]
    Image(library::ImageCommand),
    /// The library of ISO images on every KVM host (`formation:attach-iso FORMATION NAME`)
    #[command(subcommand)]
    Iso(library::IsoCommand),
    /// The on-prem KVM cluster
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Set provider credentials and settings (stored 0600)
    Register(register::RegisterArgs),
    /// Named sets of provider settings (AWS accounts and regions, KVM clusters)
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Shortcut for formation:create
    #[command(visible_alias = "up")]
    Create(formation::CreateArgs),
    /// Shortcut for formation:destroy
    #[command(visible_alias = "rm")]
    Destroy(formation::DestroyArgs),
    /// Shortcut for formation:list
    #[command(visible_aliases = ["ls", "status"])]
    List,
    /// Shortcut for formation:stop
    #[command(visible_alias = "halt")]
    Stop(formation::MachineArgs),
    /// Shortcut for formation:ssh
    Ssh(formation::SshArgs),
    /// Shortcut for formation:open
    Open(formation::OpenArgs),
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
    /// Move a machine to another host, offline (clean shutdown, local disks copied, started
    /// again there if it was running) or with --live while it runs (disks all on iSCSI)
    Migrate(cluster::MigrateArgs),
    /// Even out memory use across the hosts by migrating machines, one at a time (live when
    /// they run on shared disks, else offline)
    Rebalance(cluster::RebalanceArgs),
    /// Move every machine off a live host (maintenance), one at a time (live when they run on
    /// shared disks, else offline)
    Evacuate(cluster::EvacuateArgs),
    /// What each machine uses: per disk / iSCSI export (space, I/O, sessions) and per address
    /// (traffic)
    Usage(cluster::UsageArgs),
    /// Give every host the whole image and ISO library: copy what a host misses or holds with
    /// another checksum (from a host whose copy is right), and check it there
    Sync,
    /// The cluster's journal: failovers, migrations, rebalances, evacuations and library
    /// changes, with the versioned event shape of `formation:events`
    Events {
        /// Only events with this sequence number or later
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
}

/// Group names that accept the colon form.
const GROUPS: &[&str] = &[
    "cloudlet",
    "scenario",
    "registry",
    "formation",
    "cluster",
    "context",
    "image",
    "iso",
];

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
        // After `--`, and an option's value, stay as they are.
        if done || std::mem::take(&mut expecting_value) {
            out.push(arg);
            continue;
        }
        let s = arg.to_string_lossy().into_owned();
        if s.starts_with('-') {
            done = s == "--";
            expecting_value = matches!(s.as_str(), "-o" | "--output" | "--config" | "--context");
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
    crate::help::with_completers(crate::help::decorate(Cli::command()))
}

/// One man page per command, from this command line's definition; see [`crate::help::man_pages`].
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    crate::help::man_pages(command())
}

/// Asks on the terminal (stderr), with dialoguer; Ctrl-C at a prompt is an interrupt (exit 130).
struct Terminal;

impl Terminal {
    fn answer<T>(r: dialoguer::Result<T>) -> Result<T> {
        r.map_err(|e| match e {
            dialoguer::Error::IO(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                Error::Interrupted
            }
            other => Error::Other(format!("prompt failed: {other}")),
        })
    }
}

impl crate::ops::Prompter for Terminal {
    fn confirm(&self, question: &str) -> Result<bool> {
        let c = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false);
        Self::answer(c.interact())
    }
    fn input(&self, label: &str, default: Option<&str>) -> Result<String> {
        let theme = dialoguer::theme::SimpleTheme;
        let mut input = dialoguer::Input::<String>::with_theme(&theme).with_prompt(label);
        if let Some(d) = default {
            input = input.default(d.to_string());
        }
        Self::answer(input.interact_text())
    }
    fn password(&self, label: &str) -> Result<String> {
        let theme = dialoguer::theme::SimpleTheme;
        Self::answer(
            dialoguer::Password::with_theme(&theme)
                .with_prompt(label)
                .interact(),
        )
    }
    fn select(&self, label: &str, items: &[String]) -> Result<usize> {
        let theme = dialoguer::theme::SimpleTheme;
        let select = dialoguer::Select::with_theme(&theme).with_prompt(label);
        Self::answer(select.items(items).default(0).interact())
    }
}

/// The detached process that runs a build, started by nepho itself as `nepho __nanny …`. Not a
/// clap subcommand, so help and shell completion never offer it.
#[derive(Debug, Parser)]
#[command(name = "nepho __nanny")]
struct NannyArgs {
    formation: String,
    op: String,
    #[arg(long)]
    lock_fd: i32,
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    no_rollback: bool,
}

fn nanny_entry(args: Vec<std::ffi::OsString>) -> i32 {
    let args = match NannyArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = crate::ops::formation::nanny(
        &args.formation,
        &args.op,
        args.lock_fd,
        args.resume,
        !args.no_rollback,
    );
    exit_code(result, &Out::plain(Format::Table))
}

fn exit_code(result: Result<()>, out: &Out) -> i32 {
    match result {
        Ok(()) => ExitCode::Success as i32,
        Err(e) => {
            out.error(&e);
            e.exit_code() as i32
        }
    }
}

/// The output format asked for on the command line or in NEPHO_OUTPUT, read before parsing so
/// that even a usage error can be reported in it.
fn requested_format(args: &[std::ffi::OsString]) -> Option<Format> {
    let parse = |v: &str| match v {
        "json" => Some(Format::Json),
        "yaml" => Some(Format::Yaml),
        _ => None,
    };
    let mut found = std::env::var("NEPHO_OUTPUT").ok().and_then(|v| parse(&v));
    let mut iter = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = iter.next() {
        if a == "--" {
            break;
        }
        let value = if a == "-o" || a == "--output" {
            iter.next().map(|v| v.into_owned())
        } else if let Some(v) = a.strip_prefix("--output=") {
            Some(v.to_string())
        } else {
            a.strip_prefix("-o")
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_start_matches('=').to_string())
        };
        if let Some(v) = value {
            found = parse(&v).or(found);
        }
    }
    found
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "__nanny") {
        return nanny_entry(raw[1..].to_vec());
    }
    // A shell asking for completions: answer and exit.
    if std::env::var_os(COMPLETE_VAR).is_some() {
        let args = completion_args(raw.clone(), expand_colon_form);
        let done = clap_complete::CompleteEnv::with_factory(command)
            .var(COMPLETE_VAR)
            .try_complete(args, std::env::current_dir().ok().as_deref());
        match done {
            Ok(true) => return 0,
            Ok(false) => {}
            Err(e) => {
                let _ = e.print();
                return e.exit_code();
            }
        }
    }
    let requested = requested_format(&raw);
    let args = expand_colon_form(raw);
    let parsed = command()
        .try_get_matches_from(args)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let informational = matches!(
                e.kind(),
                K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
            );
            match requested {
                // Scripts that asked for JSON/YAML get the usage error in that form too.
                Some(format) if !informational => {
                    Out::plain(format).error(&crate::output::usage_error(&e.render().to_string()));
                    return ExitCode::Usage as i32;
                }
                _ => {
                    let _ = e.print();
                    return e.exit_code();
                }
            }
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
    let result = run(cli, &mut out);
    exit_code(result, &out)
}

fn run(cli: Cli, out: &mut Out) -> Result<()> {
    crate::output::init_logging(cli.global.verbose, out.color);
    let g = &cli.global;
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let cx = Context::load(
        g.config.as_deref(),
        g.context.as_deref(),
        g.output.is_some(),
        g.no_input,
        terminal,
        out,
    )?;
    if !matches!(
        cli.command,
        Command::Formation(_) | Command::Create(_) | Command::Destroy(_)
    ) {
        // Builds handle Ctrl-C themselves (detach); elsewhere it cleans up and exits 130.
        crate::git::catch_interrupts();
    }
    match cli.command {
        Command::Cloudlet(c) => cloudlet::run(&cx, c),
        Command::Scenario(c) => scenario::run(&cx, c),
        Command::Registry(c) => registry::run(&cx, c),
        Command::Formation(c) => formation::run(&cx, c),
        Command::Register(a) => register::run(&cx, a),
        Command::Context(c) => context::run(&cx, c),
        Command::Cluster(ClusterCommand::Status) => cluster::status(&cx),
        Command::Cluster(ClusterCommand::Failover { host }) => cluster::failover(&cx, &host),
        Command::Cluster(ClusterCommand::Watch(a)) => cluster::watch(&cx, &a),
        Command::Cluster(ClusterCommand::Migrate(a)) => cluster::migrate(&cx, &a),
        Command::Cluster(ClusterCommand::Rebalance(a)) => cluster::rebalance(&cx, &a),
        Command::Cluster(ClusterCommand::Evacuate(a)) => cluster::evacuate(&cx, &a),
        Command::Cluster(ClusterCommand::Usage(a)) => cluster::usage(&cx, &a),
        Command::Cluster(ClusterCommand::Sync) => library::sync(&cx),
        Command::Image(c) => library::image(&cx, c),
        Command::Iso(c) => library::iso(&cx, c),
        Command::Cluster(ClusterCommand::Events { since }) => {
            crate::ops::cluster::events(&cx, since, &mut |e| cx.out.event(e))
        }
        Command::Create(a) => formation::run(&cx, formation::FormationCommand::Create(a)),
        Command::List => formation::run(&cx, formation::FormationCommand::List),
        Command::Stop(a) => formation::run(&cx, formation::FormationCommand::Stop(a)),
        Command::Destroy(a) => formation::run(&cx, formation::FormationCommand::Destroy(a)),
        Command::Ssh(a) => formation::run(&cx, formation::FormationCommand::Ssh(a)),
        Command::Open(a) => formation::run(&cx, formation::FormationCommand::Open(a)),
        Command::Completions { shell } => {
            crate::output::write_stdout(&completion_script(shell));
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
