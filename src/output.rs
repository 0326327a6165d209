//! Machine output is a contract: every shape printed with `-o json|yaml` is defined here once,
//! and `schema/*.json` is generated from these types (a test fails when it is stale).
//! Tables are for people; progress, prompts and warnings go to stderr.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::cloudlet::CloudletFormat;

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

    pub fn debug(&self, msg: &str) {
        if self.verbose > 0 {
            eprintln!("debug: {msg}");
        }
    }

    /// Prints `value` as JSON or YAML, or the table/text from `human` for `-o table`.
    pub fn data<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
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
    pub broken_blueprints: Vec<crate::cloudlet::install::BrokenBlueprint>,
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
    /// cloudlet | scenario | provider-defaults | user | stored | values-file | set | prompt
    pub layer: String,
    /// `file:line:col`, or `--set KEY=VALUE`.
    pub source: String,
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ParameterDeclaration {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Option<String>,
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
    /// not_found | invalid | conflict | unavailable | provider | usage | failure | interrupted
    pub kind: String,
    pub message: String,
    pub hint: Option<String>,
    pub exit_code: i32,
}

/// `-o json` result of create, update and destroy.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OperationResult {
    pub formation: String,
    pub operation: String,
    /// succeeded | failed | cancelled | detached
    pub status: String,
    pub provider: String,
    pub journal: String,
}

/// One row of `formation:list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FormationListItem {
    pub name: String,
    pub provider: String,
    pub cloudlet: Option<String>,
    pub scenario: Option<String>,
    pub state: String,
    pub status_reason: Option<String>,
    /// provider (read from the infrastructure) | local (a record of a build in flight or failed)
    pub source: String,
    /// A nanny is working on it right now.
    pub busy: bool,
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

/// Every schema under `schema/`, by file name.
/// `formation:cancel`: the running build was asked to stop.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CancelRequested {
    pub name: String,
    /// The build rolls back what it made; this continues it later instead.
    pub resume: String,
}

pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
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
            schema_for!(Vec<crate::cloudlet::install::UpdateOutcome>),
        ),
        ("cloudlet-uninstall.json", schema_for!(Uninstalled)),
        ("cloudlet-create.json", schema_for!(Created)),
        (
            "cloudlet-validate.json",
            schema_for!(Vec<crate::cloudlet::validate::ValidationReport>),
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
        (
            "context-list.json",
            schema_for!(Vec<crate::cli::context::ContextRow>),
        ),
        (
            "context-use.json",
            schema_for!(crate::cli::context::ContextRow),
        ),
        ("error.json", schema_for!(ErrorReport)),
        ("event.json", schema_for!(nepho_provider_api::Event)),
        ("formation-result.json", schema_for!(OperationResult)),
        ("formation-list.json", schema_for!(Vec<FormationListItem>)),
        (
            "formation-media.json",
            schema_for!(nepho_provider_kvm::MediaChange),
        ),
        (
            "formation-drive.json",
            schema_for!(nepho_provider_kvm::DriveChange),
        ),
        (
            "formation-resize.json",
            schema_for!(nepho_provider_kvm::DriveResize),
        ),
        (
            "formation-vnc.json",
            schema_for!(nepho_provider_kvm::VncDisplay),
        ),
        (
            "formation-nic.json",
            schema_for!(nepho_provider_kvm::NicChange),
        ),
        (
            "cluster-status.json",
            schema_for!(nepho_provider_kvm::ClusterStatus),
        ),
        (
            "cluster-failover.json",
            schema_for!(nepho_provider_kvm::FailoverReport),
        ),
        (
            "cluster-migrate.json",
            schema_for!(nepho_provider_kvm::MigrateResult),
        ),
        (
            "cluster-rebalance.json",
            schema_for!(nepho_provider_kvm::RebalanceReport),
        ),
        (
            "cluster-usage.json",
            schema_for!(nepho_provider_kvm::ClusterUsage),
        ),
        ("formation-describe.json", schema_for!(FormationDescription)),
        (
            "formation-dry-run.json",
            schema_for!(Vec<nepho_provider_api::PlannedChange>),
        ),
    ]
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
