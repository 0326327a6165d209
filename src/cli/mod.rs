//! Command-line parsing and dispatch. This layer only parses and prints; the work lives in the
//! domain modules (`cloudlet`, `scenario`, `registry`).
//!
//! Commands are groups (`cloudlet`, `scenario`, `registry`) with subcommands; the roadmap's colon
//! form (`cloudlet:install`) is rewritten to the space form before clap sees it.

mod cloudlet;
mod cluster;
pub(crate) mod context;
mod formation;
mod help;
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
const GROUPS: &[&str] = &[
    "cloudlet",
    "scenario",
    "registry",
    "formation",
    "cluster",
    "context",
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
    help::with_completers(help::decorate(Cli::command()))
}

/// `nepho -- nepho scenario:render we` as the shell sends it, with the colon form expanded
/// (`scenario render`) so completion sees what parsing will, and the shell's index of the word
/// being completed moved along.
fn completion_args(raw: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(sep) = raw.iter().position(|a| a == "--") else {
        return raw;
    };
    let index: Option<usize> = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse().ok());
    let words = raw[sep + 1..].to_vec();
    // Only words before the one being completed are expanded: a half-typed `formation:cr`
    // stays as typed.
    let upto = index
        .map(|i| i.min(words.len()))
        .unwrap_or(words.len().saturating_sub(1));
    let mut before = expand_colon_form(words[..upto].to_vec());
    let grew = before.len().saturating_sub(upto);
    before.extend_from_slice(&words[upto..]);
    if let (Some(i), true) = (index, grew > 0) {
        // SAFETY: single-threaded here, at the very start of main, before any thread exists.
        unsafe { std::env::set_var("_CLAP_COMPLETE_INDEX", (i + grew).to_string()) };
    }
    let mut out = raw[..=sep].to_vec();
    out.extend(before);
    out
}

/// The variable the shell sets when it asks nepho for completions (`NEPHO_COMPLETE=bash nepho …`).
const COMPLETE_VAR: &str = "NEPHO_COMPLETE";

/// The script a shell sources to complete nepho: it calls back into nepho, which completes
/// commands and options from its definition and cloudlet, scenario and formation names from
/// this machine's state.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let mut script = Vec::new();
    if let Some(completer) = shells.completer(&name) {
        let _ = completer.write_registration(COMPLETE_VAR, "nepho", "nepho", "nepho", &mut script);
    }
    script
}

type RenderSection = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// One man page per command (`nepho.1`, `nepho-cloudlet.1`, `nepho-cloudlet-install.1`, …),
/// each with ENVIRONMENT, FILES and EXIT STATUS sections: (file name, roff).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out);
        }
        let man = clap_mangen::Man::new(cmd.clone()).date("").source("nepho");
        let mut page = Vec::new();
        let sections: [RenderSection; 6] = [
            clap_mangen::Man::render_title,
            clap_mangen::Man::render_name_section,
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_description_section,
            clap_mangen::Man::render_options_section,
            clap_mangen::Man::render_subcommands_section,
        ];
        for (i, render) in sections.iter().enumerate() {
            if i == 5 && cmd.get_subcommands().all(|s| s.is_hide_set()) {
                continue;
            }
            let _ = render(&man, &mut page);
        }
        if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
            let _ = man.render_extra_section(&mut page);
        }
        page.extend_from_slice(MAN_COMMON_SECTIONS.as_bytes());
        let mut see_also: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| {
                format!(
                    "\\fB{}\\fR(1)",
                    s.get_display_name().unwrap_or(s.get_name())
                )
            })
            .collect();
        if see_also.is_empty() {
            see_also.push("\\fBnepho\\fR(1)".into());
        }
        page.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", see_also.join(", ")).as_bytes());
        out.push((man.get_filename(), page));
    }
    let mut cmd = command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &mut out);
    out.sort();
    out
}

const MAN_COMMON_SECTIONS: &str = r#".SH ENVIRONMENT
.TP
\fBNEPHO_HOME\fR
Keep config, cache, state and runtime files under this one directory.
.TP
\fBNEPHO_CONFIG\fR
The config file (as \fB\-\-config\fR).
.TP
\fBNEPHO_OUTPUT\fR, \fBNEPHO_NO_INPUT\fR
Defaults for \fB\-o\fR and \fB\-\-no\-input\fR.
.TP
\fBXDG_CONFIG_HOME\fR, \fBXDG_CACHE_HOME\fR, \fBXDG_STATE_HOME\fR, \fBXDG_RUNTIME_DIR\fR
Where files go without NEPHO_HOME.
.TP
\fBNO_COLOR\fR
Set (non\-empty) to turn colour off.
.TP
\fBAWS_PROFILE\fR, \fBAWS_REGION\fR, \fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR, \fBAWS_ENDPOINT_URL\fR
The standard AWS credential chain for the CloudFormation provider.
.TP
\fBNEPHO_LIBVIRT_DRIVER\fR, \fBVAGRANT_HOME\fR
libvirt domain type (kvm or qemu) and Vagrant's home for the Vagrant provider.
.SH FILES
.TP
\fI$XDG_CONFIG_HOME/nepho/config.yaml\fR
Settings: registries, output, provider settings (\fBnepho register\fR writes them, 0600).
.TP
\fI$XDG_CONFIG_HOME/nepho/cluster.yaml\fR
The KVM cluster: hosts, networks, storage.
.TP
\fI$XDG_DATA_HOME/nepho/cloudlets/\fR
Installed cloudlets, one git clone each.
.TP
\fI$XDG_STATE_HOME/nepho/formations/NAME/\fR
A formation's record, rendered spec and event journal.
.SH "EXIT STATUS"
.TP
0
success
.TP
1
failure (I/O, internal error)
.TP
2
usage error
.TP
3
not found (cloudlet, scenario, formation, registry entry)
.TP
4
invalid input (YAML, parameter types, missing required values, unsafe cloudlet contents, templates)
.TP
5
provider failure
.TP
6
conflict (already installed, in use, local changes)
.TP
7
unavailable (git, a registry or a provider unreachable or missing)
.TP
130
interrupted
"#;

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
    let out = Out {
        format: Format::Table,
        quiet: false,
        verbose: 0,
        color: false,
    };
    let context = std::env::var("NEPHO_CONTEXT").ok();
    let result = Paths::discover(None)
        .and_then(|p| p.with_context(context.as_deref()))
        .and_then(|paths| {
            match crate::nanny::nanny_main(
                &paths,
                &args.formation,
                &args.op,
                args.lock_fd,
                args.resume,
                !args.no_rollback,
            )? {
                crate::engine::Outcome::Succeeded => Ok(()),
                crate::engine::Outcome::Cancelled => Err(Error::Interrupted),
                crate::engine::Outcome::Failed(e) => Err(crate::providers::provider_error(e)),
            }
        });
    match result {
        Ok(()) => ExitCode::Success as i32,
        Err(e) => {
            report_error(&out, &e);
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
        let args = completion_args(raw.clone());
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
                    let text = e.render().to_string();
                    let lines: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                        .collect();
                    let is_aside = |l: &str| l.starts_with("tip:") || l.starts_with("Usage:");
                    let message = lines
                        .iter()
                        .take_while(|l| !is_aside(l))
                        .map(|l| l.trim_start_matches("error: "))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let hint: Vec<&str> = lines.iter().copied().filter(|l| is_aside(l)).collect();
                    let hint = (!hint.is_empty()).then(|| hint.join("; "));
                    let out = Out {
                        format,
                        quiet: false,
                        verbose: 0,
                        color: false,
                    };
                    let error = Error::Usage { message, hint };
                    report_error(&out, &error);
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

/// `-v`: what nepho does (git and host commands, provider calls, resolved paths); `-vv`: also how
/// long each took; `-vvv`: also what they answered and the HTTP traffic of the AWS SDK (which
/// redacts credentials itself). On stderr, so results on stdout stay clean.
fn init_logging(verbose: u8, color: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    if verbose == 0 {
        return;
    }
    let ours = [
        "nepho",
        "nepho_provider_kvm",
        "nepho_provider_vagrant",
        "nepho_provider_cloudformation",
    ];
    let mut filter = Targets::new();
    for target in ours {
        filter = filter.with_target(
            target,
            match verbose {
                1 => LevelFilter::INFO,
                2 => LevelFilter::DEBUG,
                _ => LevelFilter::TRACE,
            },
        );
    }
    if verbose >= 3 {
        filter = filter.with_default(LevelFilter::DEBUG);
    }
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(verbose >= 3);
    let layer = if verbose >= 2 {
        layer
            .with_timer(tracing_subscriber::fmt::time::Uptime::default())
            .boxed()
    } else {
        layer.without_time().boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

fn run(cli: Cli, out: &mut Out) -> Result<()> {
    init_logging(cli.global.verbose, out.color);
    if let Some(file) = &cli.global.config
        && !file.is_file()
    {
        return Err(
            Error::not_found(format!("--config {}: no such file", file.display()))
                .with_hint("give the path of an existing config file, or leave --config out"),
        );
    }
    let paths = Paths::discover(cli.global.config.as_deref())?
        .with_context(cli.global.context.as_deref())?;
    tracing::info!(
        "config {}, cloudlets {}, state {}",
        paths.config_file.display(),
        paths.cloudlets_dir().display(),
        paths.state_dir.display()
    );
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
        Command::Formation(_) | Command::Create(_) | Command::Destroy(_)
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
        Command::Context(c) => context::run(&cx, c),
        Command::Cluster(ClusterCommand::Status) => cluster::status(&cx),
        Command::Cluster(ClusterCommand::Failover { host }) => cluster::failover(&cx, &host),
        Command::Cluster(ClusterCommand::Watch(a)) => cluster::watch(&cx, &a),
        Command::Cluster(ClusterCommand::Migrate(a)) => cluster::migrate(&cx, &a),
        Command::Cluster(ClusterCommand::Rebalance(a)) => cluster::rebalance(&cx, &a),
        Command::Cluster(ClusterCommand::Evacuate(a)) => cluster::evacuate(&cx, &a),
        Command::Cluster(ClusterCommand::Usage(a)) => cluster::usage(&cx, &a),
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
