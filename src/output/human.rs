//! What `-o table` prints for each result: tables and text for people. The JSON and YAML shapes
//! are the types themselves (see the parent module).

use std::collections::BTreeMap;
use std::path::Path;

use nepho_provider_api::PlannedChange;
use nepho_provider_api::{
    ClusterUsage, DriveChange, DriveResize, FailoverReport, MediaChange, MigrateResult, NicChange,
    VncDisplay,
};

use super::{
    CancelRequested, CloudletDescription, ContextRow, Created, FormationDescription,
    FormationListItem, InstalledCloudlet, Registered, RenderedScenario, ScenarioDescription,
    ScenarioSummary, SshLine, Uninstalled, Url, WatcherStarted, render_table, table,
};
use crate::install::UpdateOutcome;
use crate::registry::build::BuildReport;
use crate::registry::serve::Serving;
use crate::registry::{RefreshReport, SearchHit};
use crate::validate::ValidationReport;

/// A value as a person types it: strings without quotes.
pub fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text `-o table` prints for a result.
pub trait Human {
    fn human(&self) -> String;
}

impl<T: Human> Human for Vec<T> {
    fn human(&self) -> String {
        self.iter().map(Human::human).collect::<Vec<_>>().join("\n")
    }
}

// ---- cloudlets -----------------------------------------------------------------------------

impl Human for [SearchHit] {
    fn human(&self) -> String {
        let hits = self;
        if hits.is_empty() {
            return String::new();
        }
        let several = hits.iter().any(|h| h.registry != hits[0].registry);
        let mut header = vec!["NAME", "VERSION", "SUMMARY"];
        if several {
            header.push("REGISTRY");
        }
        let mut t = table(&header);
        for h in hits {
            let mut row = vec![
                h.name.clone(),
                h.version.clone().unwrap_or_default(),
                h.summary.clone().unwrap_or_default(),
            ];
            if several {
                row.push(h.registry.clone());
            }
            t.add_row(row);
        }
        render_table(&t)
    }
}

impl Human for CloudletDescription {
    fn human(&self) -> String {
        let d = self;
        let mut s = format!("Name:        {}\n", d.name);
        let mut line = |label: &str, v: &Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!("{label:<13}{v}\n"));
            }
        };
        line("Summary:", &d.summary);
        line("Version:", &d.version);
        line("Author:", &d.author);
        line("License:", &d.license);
        line("Project URL:", &d.project_page);
        line("Source:", &d.source);
        line("Installed:", &d.path);
        line("Registry:", &d.registry);
        if !d.versions.is_empty() {
            let versions: Vec<String> = d
                .versions
                .iter()
                .map(|v| format!("{} ({})", v.version, &v.commit[..12.min(v.commit.len())]))
                .collect();
            s.push_str(&format!("{:<13}{}\n", "Versions:", versions.join(", ")));
        }
        if !d.tags.is_empty() {
            s.push_str(&format!("{:<13}{}\n", "Tags:", d.tags.join(", ")));
        }
        if let Some(desc) = &d.description {
            s.push_str(&format!("Description: {}\n", desc.trim()));
        }
        if !d.scenarios.is_empty() {
            s.push_str("Scenarios:\n");
            for sc in &d.scenarios {
                s.push_str(&format!(
                    "  {:<16} {}\n",
                    sc.name,
                    sc.summary.clone().unwrap_or_default()
                ));
            }
        }
        s
    }
}

/// Installed cloudlets as a tree under the cloudlets directory (`cloudlet:list`, `install`).
pub fn cloudlet_tree(root: &Path, items: &[InstalledCloudlet]) -> String {
    if items.is_empty() {
        return format!(
            "{}\n(no cloudlets installed; try `nepho cloudlet:install hello`)",
            root.display()
        );
    }
    let mut s = format!("{}\n", root.display());
    for (n, item) in items.iter().enumerate() {
        let branch = if n + 1 == items.len() {
            "└──"
        } else {
            "├──"
        };
        let dir = Path::new(&item.path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match (&item.error, &item.version) {
            (Some(e), _) => s.push_str(&format!(
                "{branch} {dir} (broken: {})\n",
                e.lines().next().unwrap_or_default()
            )),
            (None, Some(v)) => s.push_str(&format!("{branch} {dir} (v{v})\n")),
            (None, None) => s.push_str(&format!("{branch} {dir}\n")),
        }
    }
    s
}

impl Human for UpdateOutcome {
    fn human(&self) -> String {
        let o = self;
        if o.updated {
            format!(
                "{}: updated {} → {}",
                o.name,
                &o.from[..12.min(o.from.len())],
                &o.to[..12.min(o.to.len())]
            )
        } else {
            format!("{}: {}", o.name, o.note.clone().unwrap_or_default())
        }
    }
}

impl Human for Uninstalled {
    fn human(&self) -> String {
        format!("Removed {} from {}", self.name, self.path)
    }
}

impl Human for Created {
    fn human(&self) -> String {
        format!(
            "Created cloudlet {} in {}\nScenarios: {}\nNext: edit patterns/ and provisioners/, then `nepho cloudlet:validate {}`",
            self.name,
            self.path,
            self.scenarios.join(", "),
            self.path
        )
    }
}

impl Human for ValidationReport {
    fn human(&self) -> String {
        let report = self;
        let mut s = format!("{} ({})\n", report.cloudlet, report.path);
        for e in &report.errors {
            s.push_str(&format!("  error: {e}\n"));
        }
        for sc in &report.scenarios {
            let status = if sc.ok { "ok" } else { "FAILED" };
            s.push_str(&format!(
                "  {:<16} {:<8} {}\n",
                sc.scenario,
                sc.provider.clone().unwrap_or_default(),
                status
            ));
            for e in &sc.errors {
                for (n, line) in e.lines().enumerate() {
                    s.push_str(&format!(
                        "    {}{line}\n",
                        if n == 0 { "error: " } else { "       " }
                    ));
                }
            }
        }
        s
    }
}

// ---- scenarios -----------------------------------------------------------------------------

impl Human for [ScenarioSummary] {
    fn human(&self) -> String {
        let mut t = table(&["SCENARIO", "PROVIDER", "SUMMARY"]);
        for s in self {
            let summary = match &s.error {
                Some(e) => format!("(error: {})", e.lines().next().unwrap_or_default()),
                None => s.summary.clone().unwrap_or_default(),
            };
            t.add_row(vec![
                s.name.clone(),
                s.provider.clone().unwrap_or_default(),
                summary,
            ]);
        }
        render_table(&t)
    }
}

/// Files of the cloudlet are shown relative to it (the JSON keeps full paths).
impl Human for ScenarioDescription {
    fn human(&self) -> String {
        let d = self;
        let rule = "-".repeat(48);
        let mut s = format!(
            "Name:        {}/{}\nProvider:    {}\n",
            d.cloudlet, d.name, d.provider
        );
        if let Some(summary) = &d.summary {
            s.push_str(&format!("Summary:     {summary}\n"));
        }
        if let Some(desc) = &d.description {
            s.push_str(&format!("Description: {}\n", desc.trim()));
        }
        s.push_str(&format!("Pattern:     {}\n", d.pattern));
        if let Some(p) = &d.provisioner {
            s.push_str(&format!("Provisioner: {p}\n"));
        }
        s.push_str(&format!(
            "{rule}\nParameters (merged; later layers win):\n{rule}\n"
        ));
        let root = format!("{}/", d.root.display());
        let mut t = table(&["KEY", "VALUE", "LAYER", "FROM"]);
        for v in &d.values {
            t.add_row(vec![
                v.key.clone(),
                show_value(&v.value),
                v.layer.as_str().to_string(),
                v.source
                    .strip_prefix(&root)
                    .unwrap_or(&v.source)
                    .to_string(),
            ]);
        }
        for m in &d.missing {
            t.add_row(vec![
                m.clone(),
                "<required, not set>".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        s.push_str(&render_table(&t));
        s.push_str(&format!(
            "\n{rule}\nChange values with -f FILE or --set KEY=VALUE, or edit:\n{}\n",
            d.file
        ));
        s
    }
}

impl Human for RenderedScenario {
    fn human(&self) -> String {
        self.files
            .iter()
            .map(|f| f.contents.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---- registries, contexts, register ----------------------------------------------------------

impl Human for [RefreshReport] {
    fn human(&self) -> String {
        let mut t = table(&["REGISTRY", "STATUS", "CLOUDLETS", "SIGNED"]);
        for r in self {
            t.add_row(vec![
                r.source.clone(),
                r.status.clone(),
                r.entries.to_string(),
                if r.verified { "verified" } else { "-" }.into(),
            ]);
        }
        render_table(&t)
    }
}

impl Human for BuildReport {
    fn human(&self) -> String {
        let report = self;
        format!(
            "Built {} cloudlet{} ({} version{}, {} pages{}) in {} in {:.2}s",
            report.cloudlets,
            if report.cloudlets == 1 { "" } else { "s" },
            report.versions,
            if report.versions == 1 { "" } else { "s" },
            report.pages,
            if report.signed { ", signed" } else { "" },
            report.out,
            report.seconds
        )
    }
}

impl Human for Serving {
    fn human(&self) -> String {
        format!(
            "{}\nServing {} (index: {}); Ctrl-C stops",
            self.url, self.root, self.index_url
        )
    }
}

impl Human for [ContextRow] {
    fn human(&self) -> String {
        let mut t = table(&["CURRENT", "NAME", "PROVIDERS", "SETTINGS"]);
        for r in self {
            t.add_row(vec![
                if r.current { "*" } else { "" }.to_string(),
                r.name.clone(),
                r.providers.join(", "),
                r.path.clone(),
            ]);
        }
        render_table(&t)
    }
}

impl Human for ContextRow {
    fn human(&self) -> String {
        format!("using context {}", self.name)
    }
}

impl Human for Registered {
    fn human(&self) -> String {
        match self.provider.as_str() {
            "kvm" => format!(
                "kvm cluster file: {} (edit it to add hosts, networks, storage and images)",
                self.file
            ),
            "vagrant" => format!(
                "vagrant settings: {} ({})",
                self.file,
                self.settings
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("aws settings saved to {} (mode 0600)", self.file),
        }
    }
}

// ---- formations ----------------------------------------------------------------------------

impl Human for [PlannedChange] {
    fn human(&self) -> String {
        let mut t = table(&["ACTION", "RESOURCE", "TYPE", "REPLACEMENT"]);
        for c in self {
            t.add_row(vec![
                c.action.clone(),
                c.resource.clone(),
                c.kind.clone(),
                c.replacement.clone().unwrap_or_default(),
            ]);
        }
        if self.is_empty() {
            "no changes (dry run: nothing was changed)".to_string()
        } else {
            format!("{}\n(dry run: nothing was changed)", render_table(&t))
        }
    }
}

impl Human for [FormationListItem] {
    fn human(&self) -> String {
        let mut t = table(&["NAME", "PROVIDER", "CLOUDLET", "STATE", "REASON"]);
        for i in self {
            let cl = match (&i.cloudlet, &i.scenario) {
                (Some(c), Some(s)) => format!("{c}/{s}"),
                _ => String::new(),
            };
            let state = if i.busy {
                format!("{} (building)", i.state)
            } else {
                i.state.to_string()
            };
            t.add_row(vec![
                i.name.clone(),
                i.provider.clone(),
                cl,
                state,
                i.status_reason.clone().unwrap_or_default(),
            ]);
        }
        render_table(&t)
    }
}

impl Human for FormationDescription {
    fn human(&self) -> String {
        let d = self;
        let mut s = format!(
            "Name:      {}\nProvider:  {}\nCloudlet:  {}/{}\n",
            d.name, d.provider, d.cloudlet, d.scenario
        );
        match &d.details {
            Some(det) => {
                s.push_str(&format!(
                    "Status:    {:?}{}\n",
                    det.summary.state,
                    det.summary
                        .status_reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
                if !det.outputs.is_empty() {
                    s.push_str("Outputs:\n");
                    for (k, v) in &det.outputs {
                        s.push_str(&format!("  {k:<16} {v}\n"));
                    }
                }
                if !det.resources.is_empty() {
                    let mut t = table(&["RESOURCE", "TYPE", "STATUS", "REASON"]);
                    for r in &det.resources {
                        t.add_row(vec![
                            r.resource.clone(),
                            r.kind.clone(),
                            r.status.clone(),
                            r.reason.clone().unwrap_or_default(),
                        ]);
                    }
                    s.push_str(&format!("Resources:\n{}\n", render_table(&t)));
                }
                if !det.recent_events.is_empty() {
                    s.push_str(&format!(
                        "Recent events:\n  {}\n",
                        det.recent_events.join("\n  ")
                    ));
                }
            }
            None => s.push_str(&format!(
                "Status:    {} (local record; provider: {})\n",
                d.local_state
                    .map(|state| format!("{state:?}"))
                    .unwrap_or_else(|| "unknown".into()),
                d.provider_error.clone().unwrap_or_default()
            )),
        }
        s
    }
}

impl Human for CancelRequested {
    fn human(&self) -> String {
        format!(
            "cancel requested for {}; resume later with `{}`",
            self.name, self.resume
        )
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Human for SshLine {
    fn human(&self) -> String {
        self.command
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 0 { s.clone() } else { shell_quote(s) })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Human for Url {
    fn human(&self) -> String {
        self.url.clone()
    }
}

// ---- machines ------------------------------------------------------------------------------

/// `formation:add-drive` / `remove-drive` of formation `name`.
pub fn drive_change(name: &str, done: &DriveChange, added: bool) -> String {
    let what = if added { "added" } else { "removed" };
    format!(
        "{name}/{}: {} {what} ({} {}, guest device {})\n",
        done.machine, done.drive, done.storage, done.id, done.device
    )
}

/// `formation:resize-drive` of formation `name`.
pub fn drive_resize(name: &str, done: &DriveResize) -> String {
    if done.changed {
        format!(
            "{name}/{}: {} grown from {:.1} to {} GiB ({} {})\n",
            done.machine,
            done.drive,
            done.previous_bytes as f64 / f64::from(1u32 << 30),
            done.size_gb,
            done.storage,
            done.id
        )
    } else {
        format!(
            "{name}/{}: {} already has {} GiB\n",
            done.machine, done.drive, done.size_gb
        )
    }
}

/// `formation:attach-nic` / `detach-nic` of formation `name`.
pub fn nic_change(name: &str, done: &NicChange, attached: bool) -> String {
    let what = if attached {
        "attached to"
    } else {
        "detached from"
    };
    format!(
        "{name}/{}: {} ({}) {what} network {}{}{}\n",
        done.machine,
        done.nic,
        done.mac,
        done.network,
        done.ip
            .as_ref()
            .map(|ip| format!(", address {ip}"))
            .unwrap_or_default(),
        if done.live {
            ""
        } else {
            " (from the next start)"
        }
    )
}

/// `formation:attach-iso` / `detach-iso` of formation `name`.
pub fn media_change(name: &str, change: &MediaChange) -> String {
    match &change.iso {
        Some(iso) => format!(
            "{name}/{}: {} attached (host {})\n",
            change.machine,
            iso.display(),
            change.host
        ),
        None => format!("{name}/{}: no ISO attached\n", change.machine),
    }
}

impl Human for VncDisplay {
    fn human(&self) -> String {
        match &self.ssh {
            None => format!("{}\n", self.address),
            Some(dest) => format!(
                "{} (forwarded over ssh {dest} to port {} on host {})\n",
                self.address, self.host_port, self.host
            ),
        }
    }
}

// ---- cluster -------------------------------------------------------------------------------

impl Human for FailoverReport {
    fn human(&self) -> String {
        let report = self;
        if report.machines.is_empty() {
            return format!(
                "host {} had no nepho machines (none recorded on the shared storage)\n",
                report.host
            );
        }
        let mut t = table(&[
            "FORMATION",
            "MACHINE",
            "FROM",
            "TO",
            "STATUS",
            "ADDRESS",
            "SECONDS",
            "REASON",
        ]);
        for r in &report.machines {
            t.add_row(vec![
                r.formation.clone(),
                r.machine.clone(),
                r.from.clone(),
                r.to.clone().unwrap_or_default(),
                r.status.clone(),
                r.address.clone().unwrap_or_default(),
                format!("{:.1}", r.seconds),
                r.reason.clone().unwrap_or_default(),
            ]);
        }
        render_table(&t)
    }
}

impl Human for WatcherStarted {
    fn human(&self) -> String {
        format!("{}\n", self.pid)
    }
}

/// Machine moves (`cluster:migrate`, and in rebalance/evacuate reports).
pub fn moves(moves: &[MigrateResult]) -> String {
    let mut t = table(&[
        "FORMATION",
        "MACHINE",
        "FROM",
        "TO",
        "MEMORY",
        "STATUS",
        "HOW",
        "ADDRESS",
        "COPIED",
        "SECONDS",
        "DOWNTIME",
        "REASON",
    ]);
    for m in moves {
        t.add_row(vec![
            m.formation.clone(),
            m.machine.clone(),
            m.from.clone(),
            m.to.clone(),
            format!("{} MiB", m.memory_mb),
            m.status.clone(),
            match m.mode {
                nepho_provider_api::MoveMode::Live => "live".into(),
                nepho_provider_api::MoveMode::Offline => "offline".to_string(),
            },
            m.address.clone().unwrap_or_default(),
            format!("{:.1} MiB", m.copied_bytes as f64 / 1048576.0),
            format!("{:.1}", m.seconds),
            m.downtime_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            m.reason.clone().unwrap_or_default(),
        ]);
    }
    render_table(&t)
}

/// A rebalance/evacuate report; `nothing` says why there are no moves.
pub fn rebalance(
    report: &nepho_provider_api::RebalanceReport,
    dry_run: bool,
    nothing: &str,
) -> String {
    let spread = |m: &BTreeMap<String, f64>| {
        m.iter()
            .map(|(h, f)| format!("{h} {:.0}%", f * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!("memory used before: {}\n", spread(&report.before));
    if report.moves.is_empty() {
        text.push_str(nothing);
        text.push('\n');
    } else {
        text.push_str(&format!(
            "memory used after{}: {}\n",
            if dry_run { " (planned)" } else { "" },
            spread(&report.after)
        ));
        text.push_str(&moves(&report.moves));
    }
    text
}

fn bytes(b: Option<u64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

impl Human for ClusterUsage {
    fn human(&self) -> String {
        let report = self;
        let mut disks = table(&[
            "FORMATION",
            "MACHINE",
            "DISK",
            "HOST",
            "EXPORT",
            "SIZE",
            "ALLOCATED",
            "READ",
            "WRITTEN",
            "SESSIONS",
        ]);
        for d in &report.disks {
            disks.add_row(vec![
                d.formation.clone(),
                d.machine.clone(),
                d.disk.clone(),
                d.host.clone(),
                if d.kind == "iscsi" {
                    format!("iscsi {}", d.export)
                } else {
                    d.export.clone()
                },
                bytes(d.capacity_bytes),
                bytes(d.allocated_bytes),
                bytes(d.read_bytes),
                bytes(d.written_bytes),
                d.sessions.join(", "),
            ]);
        }
        let mut nets = table(&[
            "FORMATION",
            "MACHINE",
            "NIC",
            "NETWORK",
            "ADDRESS",
            "MAC",
            "RX",
            "TX",
        ]);
        for n in &report.addresses {
            nets.add_row(vec![
                n.formation.clone(),
                n.machine.clone(),
                n.nic.clone(),
                n.network.clone(),
                n.ip.clone().unwrap_or_else(|| "-".into()),
                n.mac.clone(),
                bytes(n.rx_bytes),
                bytes(n.tx_bytes),
            ]);
        }
        format!("{}\n{}", render_table(&disks), render_table(&nets))
    }
}

/// `cluster:status`, from its JSON form.
pub fn cluster_status(value: &serde_json::Value) -> String {
    let mut t = table(&[
        "HOST",
        "URI",
        "UP",
        "VCPUS USED",
        "MEMORY USED",
        "MEMORY IN USE",
        "CPU BUSY",
        "MACHINES",
    ]);
    for h in value["hosts"].as_array().into_iter().flatten() {
        let machines: Vec<String> = h["machines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}/{} ({})",
                    m["formation"].as_str().unwrap_or(""),
                    m["machine"].as_str().unwrap_or(""),
                    m["state"].as_str().unwrap_or("")
                )
            })
            .collect();
        t.add_row(vec![
            h["name"].as_str().unwrap_or("").to_string(),
            h["uri"].as_str().unwrap_or("").to_string(),
            if h["reachable"] == true {
                "yes".into()
            } else {
                "NO".into()
            },
            format!("{}/{}", h["used"]["cpus"], h["capacity"]["cpus"]),
            format!(
                "{}/{} MiB",
                h["used"]["memory_mb"], h["capacity"]["memory_mb"]
            ),
            // Measured on the host, every process counted (`-` when it cannot be read).
            match (
                h["measured"]["memory_used_mb"].as_u64(),
                h["measured"]["memory_total_mb"].as_u64(),
            ) {
                (Some(used), Some(total)) => format!("{used}/{total} MiB"),
                _ => "-".into(),
            },
            h["measured"]["cpu_busy_percent"]
                .as_f64()
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into()),
            machines.join(", "),
        ]);
    }
    render_table(&t)
}

// ---- image and ISO library -----------------------------------------------------------------

/// `image:list` / `iso:list`.
pub fn library_list(entries: &[crate::library::LibraryEntry]) -> String {
    if entries.is_empty() {
        return "the library is empty (add one with `nepho image:add NAME FILE` or `nepho iso:add NAME FILE`)\n".into();
    }
    let mut t = table(&["NAME", "OS", "SIZE", "SHA256", "HOSTS", "ADDED"]);
    for e in entries {
        t.add_row(vec![
            e.name.clone(),
            e.os.clone().unwrap_or_default(),
            e.size.to_string(),
            e.sha256.chars().take(16).collect::<String>(),
            e.hosts.keys().cloned().collect::<Vec<_>>().join(","),
            e.added.clone(),
        ]);
    }
    render_table(&t)
}

impl Human for crate::library::LibraryEntry {
    fn human(&self) -> String {
        format!(
            "{} {} ({} bytes, SHA-256 {}) on {}\n",
            self.kind,
            self.name,
            self.size,
            self.sha256,
            self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

impl Human for super::LibraryRemoved {
    fn human(&self) -> String {
        format!(
            "removed {} {} from {}\n",
            self.kind,
            self.name,
            if self.hosts.is_empty() {
                "the library".to_string()
            } else {
                self.hosts.join(", ")
            }
        )
    }
}

/// `cluster:sync`: one row per host and entry.
pub fn library_sync(reports: &[nepho_provider_api::HostSync]) -> String {
    let mut t = table(&["HOST", "KIND", "NAME", "STATUS", "PATH", "REASON"]);
    for r in reports {
        for i in &r.items {
            t.add_row(vec![
                r.host.clone(),
                i.kind.to_string(),
                i.name.clone(),
                i.status.clone(),
                i.path.display().to_string(),
                i.reason.clone().unwrap_or_default(),
            ]);
        }
    }
    let summary: Vec<String> = reports
        .iter()
        .map(|r| format!("{}: {} copied, {} failed", r.host, r.copied(), r.failed()))
        .collect();
    format!("{}{}\n", render_table(&t), summary.join("; "))
}
