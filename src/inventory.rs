//! What formations exist, and where. The registered providers' own records (stack tags, domain
//! metadata, Vagrant projects) are the truth; local records only cache them and add builds in
//! flight. A formation whose local record is missing or unreadable (another machine, a
//! reinstall, a corrupt file) is still found, described and destroyed through its provider.

use nepho_provider_api::{FormationDetails, FormationSummary, ProviderKind};
use serde::Serialize;

use crate::config::Paths;
use crate::error::{Error, Result};
use crate::formation::{
    self, FormationDir, FormationLock, FormationName, FormationRecord, RecordState,
};
use crate::providers;

/// A formation's state in `formation:list`: its provider's word for it, or what its local
/// record says when the provider does not list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListedState {
    Creating,
    Created,
    Running,
    Updating,
    Stopped,
    Failed,
    Cancelled,
    Destroying,
    Destroyed,
    /// A local record whose build stopped with no nanny left to finish it.
    Interrupted,
    /// A local record of a built formation its provider no longer lists.
    Missing,
    /// Its provider did not answer, or does not know.
    Unknown,
}

impl ListedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ListedState::Creating => "creating",
            ListedState::Created => "created",
            ListedState::Running => "running",
            ListedState::Updating => "updating",
            ListedState::Stopped => "stopped",
            ListedState::Failed => "failed",
            ListedState::Cancelled => "cancelled",
            ListedState::Destroying => "destroying",
            ListedState::Destroyed => "destroyed",
            ListedState::Interrupted => "interrupted",
            ListedState::Missing => "missing",
            ListedState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ListedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<nepho_provider_api::FormationState> for ListedState {
    fn from(s: nepho_provider_api::FormationState) -> ListedState {
        use nepho_provider_api::FormationState as S;
        match s {
            S::Creating => ListedState::Creating,
            S::Running => ListedState::Running,
            S::Updating => ListedState::Updating,
            S::Stopped => ListedState::Stopped,
            S::Failed => ListedState::Failed,
            S::Destroying => ListedState::Destroying,
            S::Destroyed => ListedState::Destroyed,
            S::Unknown => ListedState::Unknown,
        }
    }
}

impl From<crate::formation::RecordState> for ListedState {
    fn from(s: crate::formation::RecordState) -> ListedState {
        use crate::formation::RecordState as S;
        match s {
            S::Creating => ListedState::Creating,
            S::Created => ListedState::Created,
            S::Updating => ListedState::Updating,
            S::Failed => ListedState::Failed,
            S::Cancelled => ListedState::Cancelled,
            S::Destroying => ListedState::Destroying,
            S::Destroyed => ListedState::Destroyed,
        }
    }
}

/// Where a `formation:list` row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListSource {
    /// Read from the infrastructure.
    Provider,
    /// A local record of a build in flight or failed.
    Local,
}

/// One row of `formation:list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FormationListItem {
    pub name: String,
    pub provider: String,
    pub cloudlet: Option<String>,
    pub scenario: Option<String>,
    pub state: ListedState,
    pub status_reason: Option<String>,
    pub source: ListSource,
    /// A nanny is working on it right now.
    pub busy: bool,
}

/// `formation:list`: every registered provider's formations, then local records none of them
/// listed. A provider that cannot be asked is a warning, not a failure of the whole listing.
pub struct Listing {
    pub items: Vec<FormationListItem>,
    pub warnings: Vec<String>,
    /// Providers that were asked and did not answer, with why (one line each).
    pub unreachable: Vec<(ProviderKind, String)>,
    /// How many providers answered.
    pub answered: usize,
}

/// Asks every registered provider (and any provider a local record names) what exists.
pub async fn list(paths: &Paths) -> Result<Listing> {
    // Formations made in another context belong to other accounts or clusters: not asked, not
    // listed (`--context NAME` lists those).
    let records: Vec<_> = formation::records(paths)?
        .into_iter()
        .filter(|(_, r)| r.context == paths.context)
        .collect();
    let mut kinds = providers::registered(paths);
    kinds.extend(
        records
            .iter()
            .filter(|(_, r)| r.state != RecordState::Destroyed)
            .map(|(_, r)| r.provider),
    );
    kinds.sort();
    kinds.dedup();
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    let mut unreachable: Vec<(ProviderKind, String)> = Vec::new();
    let mut answered = 0;
    for kind in kinds {
        let listed = provider_list(paths, kind).await;
        if listed.is_ok() {
            answered += 1;
        }
        match listed {
            Ok(summaries) => items.extend(summaries.into_iter().map(|s| {
                let busy = FormationName::parse(&s.name)
                    .map(|n| building(&FormationDir::new(paths, &n)))
                    .unwrap_or(false);
                FormationListItem {
                    name: s.name,
                    provider: kind.to_string(),
                    cloudlet: s.cloudlet,
                    scenario: s.scenario,
                    state: s.state.into(),
                    status_reason: s.status_reason,
                    source: ListSource::Provider,
                    busy,
                }
            })),
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default().to_string();
                warnings.push(format!("cannot reach {kind}: {why}"));
                unreachable.push((kind, why));
            }
        }
    }
    for (fdir, r) in &records {
        let listed = items
            .iter()
            .any(|i| i.name == r.name && i.provider == r.provider.to_string());
        if r.state == RecordState::Destroyed || listed {
            continue;
        }
        let busy = building(fdir);
        items.push(FormationListItem {
            name: r.name.clone(),
            provider: r.provider.to_string(),
            cloudlet: Some(r.cloudlet.clone()),
            scenario: Some(r.scenario.clone()),
            state: match (r.state, busy) {
                // Its provider did not answer: nobody can say whether it exists.
                _ if unreachable.iter().any(|(k, _)| *k == r.provider) => ListedState::Unknown,
                (
                    RecordState::Creating | RecordState::Updating | RecordState::Destroying,
                    false,
                ) => ListedState::Interrupted,
                (RecordState::Created, _) => ListedState::Missing,
                (s, _) => s.into(),
            },
            status_reason: unreachable
                .iter()
                .find(|(k, _)| *k == r.provider)
                .map(|(k, _)| format!("{k} could not be reached"))
                .or_else(|| {
                    matches!(r.state, RecordState::Failed | RecordState::Cancelled)
                        .then(|| last_failure(fdir))
                        .flatten()
                }),
            source: ListSource::Local,
            busy,
        });
    }
    for (name, e) in unreadable_records(paths) {
        if !items.iter().any(|i| i.name == name.as_str()) {
            warnings.push(format!(
                "the local record of {name} is unreadable ({e}) and no provider lists it; `nepho formation:destroy {name}` clears it"
            ));
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Listing {
        items,
        warnings,
        unreachable,
        answered,
    })
}

/// A build is running: its lock is held and its record says it has not ended (a nanny that
/// finished lingers a few seconds for clients to read the last event, holding the lock).
fn building(fdir: &FormationDir) -> bool {
    formation::is_busy(fdir)
        && fdir.read_record().ok().flatten().is_none_or(|r| {
            matches!(
                r.state,
                RecordState::Creating | RecordState::Updating | RecordState::Destroying
            )
        })
}

/// Why the formation's last build ended badly: the message of its last failed or cancelled
/// event, from the journal.
fn last_failure(fdir: &FormationDir) -> Option<String> {
    let journal = crate::engine::journal::read_all(&fdir.journal_file()).ok()?;
    journal
        .events
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.status,
                nepho_provider_api::EventStatus::Failed
                    | nepho_provider_api::EventStatus::Cancelled
            )
        })
        .map(|e| e.message.clone())
}

/// Local records that exist but cannot be read (`formation::records` leaves them out).
fn unreadable_records(paths: &Paths) -> Vec<(FormationName, Error)> {
    let Ok(entries) = std::fs::read_dir(paths.formations_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<(FormationName, Error)> = entries
        .flatten()
        .filter_map(|e| FormationName::parse(e.file_name().to_str()?).ok())
        .filter_map(|name| {
            let e = FormationDir::new(paths, &name).read_record().err()?;
            Some((name, e))
        })
        .collect();
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out
}

async fn provider_list(paths: &Paths, kind: ProviderKind) -> Result<Vec<FormationSummary>> {
    let provider = providers::connect(kind, paths, true).await?;
    provider.list().await.map_err(providers::provider_error)
}

/// One formation, by name.
pub struct Located {
    pub fdir: FormationDir,
    pub provider: ProviderKind,
    /// The local record, when there is a readable one.
    pub record: Option<FormationRecord>,
    /// How the provider lists it, when it was found through the provider.
    pub summary: Option<FormationSummary>,
    /// Why the provider was asked instead of the local record (for a warning).
    pub recovered: Option<String>,
}

/// Where to look when no local record says.
pub enum Lookup {
    Found(Located),
    /// No registered provider has it. `unreadable` is why the local record could not be used,
    /// when there was one.
    Nowhere {
        fdir: FormationDir,
        unreadable: Option<Error>,
    },
}

/// Finds `name`: from its local record, else from the listing of every registered provider
/// (only what a provider marks as nepho's: tagged stacks, labelled domains, nepho's Vagrant
/// projects). A provider that cannot be asked is an error: "nowhere" must mean nowhere.
pub async fn lookup(paths: &Paths, name: &FormationName) -> Result<Lookup> {
    let fdir = FormationDir::new(paths, name);
    let unreadable = match fdir.read_record() {
        Ok(Some(record)) => {
            return Ok(Lookup::Found(Located {
                provider: record.provider,
                record: Some(record),
                summary: None,
                recovered: None,
                fdir,
            }));
        }
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let mut failures = Vec::new();
    for kind in providers::registered(paths) {
        match provider_list(paths, kind).await {
            Ok(summaries) => {
                if let Some(summary) = summaries.into_iter().find(|s| s.name == name.as_str()) {
                    let why = match &unreadable {
                        None => format!("no local record of {name}"),
                        Some(e) => format!("the local record of {name} is unreadable ({e})"),
                    };
                    return Ok(Lookup::Found(Located {
                        provider: kind,
                        record: None,
                        summary: Some(summary),
                        recovered: Some(format!("{why}; using what {kind} reports")),
                        fdir,
                    }));
                }
            }
            Err(e) => failures.push(format!("{kind}: {e}")),
        }
    }
    if !failures.is_empty() {
        return Err(Error::unavailable(format!(
            "{} has no {}local record, and not every provider could be asked about it: {}",
            name,
            if unreadable.is_some() {
                "readable "
            } else {
                ""
            },
            failures.join("; ")
        ))
        .with_hint(
            "fix the provider's settings or connection (`nepho register ...`) and try again",
        ));
    }
    Ok(Lookup::Nowhere { fdir, unreadable })
}

/// Like [`lookup`], but a formation found nowhere is a not-found error.
pub async fn locate(paths: &Paths, name: &FormationName) -> Result<Located> {
    match lookup(paths, name).await? {
        Lookup::Found(located) => Ok(located),
        Lookup::Nowhere { unreadable, .. } => Err(Error::not_found(format!(
            "no formation named {name}{}",
            unreadable
                .map(|e| format!(" (its local record is unreadable: {e})"))
                .unwrap_or_default()
        ))
        .with_hint("list them with `nepho formation:list`")),
    }
}

/// What a destroy works on.
pub enum DestroyTarget {
    /// A formation to tear down, locked; its local record (rebuilt from the provider's report
    /// when it was missing or unreadable) names the provider for the nanny.
    Formation(Box<Located>, FormationLock),
    /// Nothing exists anywhere; `removed_unreadable` when an unreadable local record was
    /// cleared away.
    Gone { removed_unreadable: bool },
}

/// Prepares `formation:destroy NAME`. Without a readable local record, the formation is looked
/// up through the providers and a record rebuilt from what its provider reports, so the nanny
/// tears down what the provider knows (its plan comes from the provider, not from `spec.json`).
pub async fn prepare_destroy(paths: &Paths, name: &FormationName) -> Result<DestroyTarget> {
    match lookup(paths, name).await? {
        Lookup::Found(located) => {
            let lock = FormationLock::acquire(&located.fdir, "destroy")?;
            if located.record.is_none() {
                let summary = located.summary.as_ref();
                located.fdir.create_dirs()?;
                located.fdir.write_record(&FormationRecord {
                    name: name.to_string(),
                    cloudlet: summary.and_then(|s| s.cloudlet.clone()).unwrap_or_default(),
                    scenario: summary.and_then(|s| s.scenario.clone()).unwrap_or_default(),
                    provider: located.provider,
                    created_at: crate::util::now_rfc3339(),
                    state: RecordState::Created,
                    updated_at: None,
                    context: paths.context.clone(),
                })?;
            }
            Ok(DestroyTarget::Formation(Box::new(located), lock))
        }
        Lookup::Nowhere { fdir, unreadable } => {
            let removed_unreadable = unreadable.is_some();
            if removed_unreadable {
                let _lock = FormationLock::acquire(&fdir, "destroy")?;
                fdir.remove_all()?;
            }
            Ok(DestroyTarget::Gone { removed_unreadable })
        }
    }
}

/// `formation:describe` from the provider: its details, or why they could not be read.
pub async fn describe(
    paths: &Paths,
    kind: ProviderKind,
    name: &FormationName,
) -> Result<FormationDetails> {
    let provider = providers::connect(kind, paths, true).await?;
    provider
        .describe(name.as_str())
        .await
        .map_err(providers::provider_error)
}
