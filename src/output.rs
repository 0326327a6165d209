//! Machine output is a contract: every shape printed with `-o json|yaml` is defined here once,
//! and `schema/*.json` is generated from these types (a test fails when it is stale).
//! Tables are for people; progress, prompts and warnings go to stderr.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::cloudlet::CloudletFormat;
use crate::params::{LayerKind, ParamType};

pub mod human;

pub use crate::inventory::{FormationListItem, ListSource, ListedState};
pub use crate::schema::{SCHEMA_BASE, SCHEMA_VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Where output goes and how it looks.
#[derive(Debug, Clone)]
pub struct Out {
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
}

impl Out {
    /// Plain output in `format`: not quiet, not verbose, no colour.
    pub fn plain(format: Format) -> Out {
        Out {
            format,
            quiet: false,
            verbose: 0,
            color: false,
        }
    }

    pub fn warn(&self, msg: &str) {
        let prefix = if self.color {
            "\x1b[33mwarning:\x1b[0m"
        } else {
            "warning:"
        };
        eprintln!("{prefix} {}", terminal_safe(msg));
    }

    /// Progress and notices (stderr, silenced by --quiet).
    pub fn notice(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{}", terminal_safe(msg));
        }
    }

    /// Prints a typed result: JSON or YAML, or its table/text for people.
    pub fn show<T: Serialize + human::Human + ?Sized>(&self, value: &T) {
        self.data(value, || value.human());
    }

    /// One event of a journal: an NDJSON line, a `---` YAML document, or a progress line.
    pub fn event(&self, e: &nepho_provider_api::Event) {
        let text = match self.format {
            Format::Json => serde_json::to_string(e).unwrap_or_default() + "\n",
            Format::Yaml => {
                let value = serde_json::to_value(e).unwrap_or_default();
                let doc = serde_saphyr::to_string(&value).unwrap_or_default();
                format!(
                    "---\n{}{}",
                    doc,
                    if doc.ends_with('\n') { "" } else { "\n" }
                )
            }
            Format::Table => crate::nanny::progress::line(e) + "\n",
        };
        write_stdout(text.as_bytes());
    }

    /// Reports an error on stderr: as an [`ErrorReport`] with `-o json|yaml`, else as text.
    pub fn error(&self, e: &crate::error::Error) {
        let out = self;
        match out.format {
            Format::Json | Format::Yaml => {
                let report = ErrorReport::of(e);
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
                eprintln!("{prefix} {}", terminal_safe(&e.to_string()));
                if let Some(hint) = e.hint() {
                    eprintln!("hint: {}", terminal_safe(hint));
                }
            }
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.verbose > 0 {
            eprintln!("debug: {msg}");
        }
    }

    /// Prints `value` as JSON or YAML, or the table/text from `human` for `-o table`.
    pub fn data<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        let text = match self.format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(value).expect("output types serialize");
                s.push('\n');
                s
            }
            Format::Yaml => {
                let json = serde_json::to_value(value).expect("output types serialize");
                let mut s = serde_saphyr::to_string(&json).expect("output types serialize as YAML");
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
            Format::Table => {
                // Tables show text from registries and cloudlets, which may carry escapes.
                let mut s = terminal_safe(&human()).into_owned();
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
        };
        write_stdout(text.as_bytes());
    }
}

/// `-v`: what nepho does (git and host commands, provider calls, resolved paths); `-vv`: also how
/// long each took; `-vvv`: also what they answered and the HTTP traffic of the AWS SDK (which
/// redacts credentials itself). On stderr, so results on stdout stay clean.
pub fn init_logging(verbose: u8, color: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    if verbose == 0 {
        return;
    }
    let ours = crate::providers::LOG_TARGETS;
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

/// A usage error from clap's rendered text, for scripts that asked for JSON/YAML: the error
/// lines as its message, the `tip:`/`Usage:` lines as its hint.
pub fn usage_error(text: &str) -> crate::error::Error {
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
    crate::error::Error::Usage { message, hint }
}

/// Writes `text` to stdout as it is. When the reader went away (`nepho … | head`), nepho stops
/// quietly with success, as Unix tools do on SIGPIPE, instead of panicking.
pub fn write_stdout(text: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_all(text).and_then(|()| stdout.flush());
    if let Err(e) = result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Text from others made safe for a terminal: control characters other than newline and tab
/// (ESC, CR, backspace, DEL, C1 controls such as CSI) are shown as escapes (`\x1b`, `\u{9b}`)
/// instead of being sent to the terminal to act on.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A table in nepho's style: no borders, header row, wraps to the terminal.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    *t.style_mut() = presets::NOTHING;
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    match terminal_columns() {
        // A terminal that reports a usable size: wrap to it.
        Some(cols) if cols >= 20 => {}
        // A terminal that reports no size (CI, `docker -t`, `script`): 80 columns, not 0.
        Some(_) => {
            t.set_width(80);
        }
        None => {
            t.set_width(200);
        }
    }
    t
}

/// Columns of the terminal on stdout (`None` when stdout is not a terminal; `Some(0)` when it
/// is one that reports no size). `COLUMNS` wins when set.
fn terminal_columns() -> Option<u16> {
    if !stdout_is_tty() {
        return None;
    }
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(cols);
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own; fd 1 is stdout.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) } == 0;
    Some(if ok { size.ws_col } else { 0 })
}

/// Renders a table without trailing spaces.
pub fn render_table(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- shapes printed by commands ---------------------------------------------------------------

/// `cloudlet:list`, `cloudlet:install`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InstalledCloudlet {
    pub name: String,
    /// Installed directory.
    pub path: String,
    pub version: Option<String>,
    pub format: Option<CloudletFormat>,
    pub summary: Option<String>,
    /// Git URL or `bundled:NAME`.
    pub source: Option<String>,
    pub reference: Option<String>,
    pub commit: Option<String>,
    pub scenarios: Vec<String>,
    /// Nepho 1.x blueprints that did not load or render when installed (they fail when used).
    pub broken_blueprints: Vec<crate::validate::BrokenBlueprint>,
    /// Set when the installed copy no longer loads.
    pub error: Option<String>,
}

/// `cloudlet:describe`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CloudletDescription {
    pub name: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
    pub author: Option<String>,
    pub license: Option<String>,
    pub project_page: Option<String>,
    pub tags: Vec<String>,
    /// Where it installs from: a git URL or `bundled:NAME` (the same field as in
    /// `cloudlet:list`).
    pub source: Option<String>,
    /// The same as `source` (kept for scripts written before `source`).
    pub repository: Option<String>,
    pub installed: bool,
    pub path: Option<String>,
    pub scenarios: Vec<ScenarioSummary>,
    /// The registry it was found in (its name, or its URL when the config names none); absent
    /// for an installed cloudlet.
    pub registry: Option<String>,
    /// The versions the registry lists, newest first, each pinned to a commit.
    pub versions: Vec<crate::registry::RegistryVersion>,
}

/// `scenario:list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScenarioSummary {
    pub name: String,
    pub summary: Option<String>,
    pub provider: Option<String>,
    pub file: String,
    pub error: Option<String>,
}

/// One merged parameter value and where it came from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ParameterValue {
    /// Dotted key (`db.port`).
    pub key: String,
    /// The value (`"********"` for secrets).
    pub value: serde_json::Value,
    /// The layer the value came from.
    pub layer: LayerKind,
    /// `file:line:col`, or `--set KEY=VALUE`.
    pub source: String,
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ParameterDeclaration {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Option<ParamType>,
    pub description: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub allowed: Option<Vec<serde_json::Value>>,
    pub pattern: Option<String>,
    pub list_policy: String,
    pub declared_at: String,
}

/// `scenario:describe`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScenarioDescription {
    pub cloudlet: String,
    pub name: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub provider: String,
    pub pattern: String,
    pub provisioner: Option<String>,
    pub file: String,
    pub parameters: Vec<ParameterDeclaration>,
    pub values: Vec<ParameterValue>,
    /// Required parameters with no value yet.
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
    /// The cloudlet's directory: tables show its files relative to it.
    #[serde(skip)]
    pub root: std::path::PathBuf,
}

/// `scenario:render`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RenderedScenario {
    pub cloudlet: String,
    pub scenario: String,
    pub provider: String,
    /// True when secret values were replaced by `********`.
    pub secrets_redacted: bool,
    pub files: Vec<nepho_provider_api::RenderedFile>,
}

/// `cloudlet:uninstall`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Uninstalled {
    pub name: String,
    pub path: String,
}

/// `cloudlet:create`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Created {
    pub name: String,
    pub path: String,
    pub scenarios: Vec<String>,
}

/// Error object written to stderr with `-o json|yaml`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ErrorReport {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    pub exit_code: i32,
    /// Where in which file the error is, when it is about a file's text (YAML, templates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Span {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// What kind of failure an error is (its exit code, in words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Success,
    Failure,
    Usage,
    NotFound,
    Invalid,
    Provider,
    Conflict,
    Unavailable,
    Interrupted,
}

impl From<&crate::error::Error> for ErrorKind {
    fn from(e: &crate::error::Error) -> ErrorKind {
        use crate::error::ExitCode as C;
        match e.exit_code() {
            C::Success => ErrorKind::Success,
            C::Failure => ErrorKind::Failure,
            C::Usage => ErrorKind::Usage,
            C::NotFound => ErrorKind::NotFound,
            C::Invalid => ErrorKind::Invalid,
            C::Provider => ErrorKind::Provider,
            C::Conflict => ErrorKind::Conflict,
            C::Unavailable => ErrorKind::Unavailable,
            C::Interrupted => ErrorKind::Interrupted,
        }
    }
}

impl ErrorReport {
    pub fn of(e: &crate::error::Error) -> ErrorReport {
        ErrorReport {
            error: ErrorBody {
                kind: e.into(),
                message: e.to_string(),
                hint: e.hint().map(str::to_string),
                exit_code: e.exit_code() as i32,
                span: e.span().map(|(file, line, column)| Span {
                    file: file.display().to_string(),
                    line,
                    column,
                }),
            },
        }
    }
}

/// How a create, update or destroy ended (as far as this command saw it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    Succeeded,
    Failed,
    Cancelled,
    /// It goes on in its nanny (`--detach`, or Ctrl-C).
    Detached,
}

/// `-o json` result of create, update and destroy.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OperationResult {
    pub formation: String,
    pub operation: String,
    pub status: OperationStatus,
    pub provider: String,
    pub journal: String,
}

impl OperationResult {
    pub fn new(
        fdir: &crate::formation::FormationDir,
        op: crate::engine::Operation,
        status: OperationStatus,
        provider: nepho_provider_api::ProviderKind,
    ) -> OperationResult {
        OperationResult {
            formation: fdir.name.to_string(),
            operation: op.as_str().into(),
            status,
            provider: provider.to_string(),
            journal: fdir.journal_file().display().to_string(),
        }
    }
}

/// `formation:describe`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FormationDescription {
    pub name: String,
    pub provider: String,
    pub cloudlet: String,
    pub scenario: String,
    /// The local record's state; null when there is no readable local record (the formation
    /// was found through its provider).
    pub local_state: Option<crate::formation::RecordState>,
    pub busy: bool,
    pub details: Option<nepho_provider_api::FormationDetails>,
    pub provider_error: Option<String>,
    pub recent_journal: Vec<String>,
}

/// `formation:cancel`: the running build was asked to stop.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CancelRequested {
    pub name: String,
    /// The build rolls back what it made; this continues it later instead.
    pub resume: String,
}

/// `register`: where the settings went (secrets shown as `********`).
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub provider: String,
    pub file: String,
    pub settings: std::collections::BTreeMap<String, String>,
}

/// `cluster:watch --status`.
#[derive(Debug, Clone, Serialize)]
pub struct WatcherStatus {
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    pub log: String,
}

/// `cluster:watch --detach`.
#[derive(Debug, Clone, Serialize)]
pub struct WatcherStarted {
    pub pid: u32,
    pub log: String,
}

/// `formation:ssh --print`: the ssh command line, one argument each.
#[derive(Debug, Clone, Serialize)]
pub struct SshLine {
    pub command: Vec<String>,
}

/// `formation:open`.
#[derive(Debug, Clone, Serialize)]
pub struct Url {
    pub url: String,
}

/// `image:remove` / `iso:remove`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LibraryRemoved {
    pub kind: nepho_provider_api::LibraryKind,
    pub name: String,
    /// The hosts whose copy was deleted.
    pub hosts: Vec<String>,
}

/// Every schema under `schema/`, by file name, each with its `$id` and version.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    unversioned_schemas()
        .into_iter()
        .map(|(name, schema)| (name, crate::schema::versioned(name, schema)))
        .collect()
}

fn unversioned_schemas() -> Vec<(&'static str, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        ("cloudlet-list.json", schema_for!(Vec<InstalledCloudlet>)),
        ("cloudlet-install.json", schema_for!(InstalledCloudlet)),
        ("cloudlet-describe.json", schema_for!(CloudletDescription)),
        (
            "cloudlet-search.json",
            schema_for!(Vec<crate::registry::SearchHit>),
        ),
        (
            "cloudlet-update.json",
            schema_for!(Vec<crate::install::UpdateOutcome>),
        ),
        ("cloudlet-uninstall.json", schema_for!(Uninstalled)),
        ("cloudlet-create.json", schema_for!(Created)),
        (
            "cloudlet-validate.json",
            schema_for!(Vec<crate::validate::ValidationReport>),
        ),
        ("scenario-list.json", schema_for!(Vec<ScenarioSummary>)),
        ("scenario-describe.json", schema_for!(ScenarioDescription)),
        ("scenario-render.json", schema_for!(RenderedScenario)),
        (
            "registry-update.json",
            schema_for!(Vec<crate::registry::RefreshReport>),
        ),
        (
            "registry-index.json",
            schema_for!(crate::registry::RegistryIndex),
        ),
        (
            "registry-build.json",
            schema_for!(crate::registry::build::BuildReport),
        ),
        (
            "registry-serve.json",
            schema_for!(crate::registry::serve::Serving),
        ),
        ("formation-cancel.json", schema_for!(CancelRequested)),
        ("context-list.json", schema_for!(Vec<ContextRow>)),
        ("context-use.json", schema_for!(ContextRow)),
        ("error.json", schema_for!(ErrorReport)),
        ("event.json", schema_for!(nepho_provider_api::Event)),
        ("formation-result.json", schema_for!(OperationResult)),
        ("formation-list.json", schema_for!(Vec<FormationListItem>)),
        (
            "formation-media.json",
            schema_for!(nepho_provider_api::MediaChange),
        ),
        (
            "formation-drive.json",
            schema_for!(nepho_provider_api::DriveChange),
        ),
        (
            "formation-resize.json",
            schema_for!(nepho_provider_api::DriveResize),
        ),
        (
            "formation-vnc.json",
            schema_for!(nepho_provider_api::VncDisplay),
        ),
        (
            "formation-nic.json",
            schema_for!(nepho_provider_api::NicChange),
        ),
        (
            "cluster-status.json",
            schema_for!(nepho_provider_api::ClusterStatus),
        ),
        (
            "cluster-failover.json",
            schema_for!(nepho_provider_api::FailoverReport),
        ),
        (
            "cluster-migrate.json",
            schema_for!(nepho_provider_api::MigrateResult),
        ),
        (
            "cluster-rebalance.json",
            schema_for!(nepho_provider_api::RebalanceReport),
        ),
        (
            "cluster-usage.json",
            schema_for!(nepho_provider_api::ClusterUsage),
        ),
        ("formation-describe.json", schema_for!(FormationDescription)),
        (
            "library-list.json",
            schema_for!(Vec<crate::library::LibraryEntry>),
        ),
        (
            "library-add.json",
            schema_for!(crate::library::LibraryEntry),
        ),
        ("library-remove.json", schema_for!(LibraryRemoved)),
        (
            "cluster-sync.json",
            schema_for!(Vec<nepho_provider_api::HostSync>),
        ),
        (
            "formation-dry-run.json",
            schema_for!(Vec<nepho_provider_api::PlannedChange>),
        ),
    ]
}

/// One row of `context:list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ContextRow {
    pub name: String,
    pub current: bool,
    /// Providers with settings in this context (aws, kvm, vagrant).
    pub providers: Vec<String>,
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn terminal_safe_escapes_controls_but_keeps_text() {
        assert!(matches!(
            terminal_safe("plain\ttext\nnext, ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("\u{1b}[31mred\u{1b}[0m\r\u{7f}\u{9b}2J\u{7}"),
            "\\x1b[31mred\\x1b[0m\\x0d\\x7f\\u{9b}2J\\x07"
        );
    }
}
