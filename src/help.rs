//! Help text that applies across commands: an Examples section on every command, a description
//! for every positional argument, the global options under their own heading, completion of
//! names, and the man pages. Kept in tables so each command's declaration (`crate::cli`) stays
//! about its arguments.

/// `(command path, examples)`: shown after each command's help (`nepho help formation:create`).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "cloudlet search",
        "nepho cloudlet:search wiki\nnepho -o json cloudlet:search web cache",
    ),
    (
        "cloudlet describe",
        "nepho cloudlet:describe hello\nnepho -o yaml cloudlet:describe huit/mediawiki",
    ),
    (
        "cloudlet install",
        "nepho cloudlet:install hello\nnepho cloudlet:install https://github.com/acme/shop.git --ref v1.2.0\nnepho cloudlet:install https://git.example.edu/web.git --name web2   # a 1.x cloudlet under another name",
    ),
    (
        "cloudlet list",
        "nepho cloudlet:list\nnepho -o json cloudlet:list | jq '.[].broken_blueprints'",
    ),
    (
        "cloudlet update",
        "nepho cloudlet:update hello\nnepho cloudlet:update --all",
    ),
    (
        "cloudlet uninstall",
        "nepho cloudlet:uninstall hello\nnepho cloudlet:uninstall hello --force   # even if formations use it",
    ),
    (
        "cloudlet create",
        "nepho cloudlet:create acme/shop\nnepho cloudlet:create shop --path ./cloudlets/shop --no-git",
    ),
    (
        "cloudlet validate",
        "nepho cloudlet:validate ./shop\nnepho -o json cloudlet:validate hello",
    ),
    ("scenario list", "nepho scenario:list webapp"),
    (
        "scenario describe",
        "nepho scenario:describe webapp/aws\nnepho scenario:describe webapp/default -f prod.yaml --set web_count=3",
    ),
    (
        "scenario render",
        "nepho scenario:render hello/aws --name agmedia\nnepho scenario:render webapp/aws --set db_password=... --reveal-secrets",
    ),
    (
        "formation create",
        "nepho formation:create hello --name hi\nnepho formation:create webapp/aws --name shop -f prod.yaml --set web_count=3\nnepho formation:create webapp/aws --name shop --dry-run   # the change set; nothing changes\nnepho formation:create hello --name hi --detach          # returns at once; watch with formation:watch",
    ),
    (
        "formation list",
        "nepho formation:list\nnepho -o json formation:list",
    ),
    (
        "formation describe",
        "nepho formation:describe shop\nnepho -o json formation:describe shop | jq .outputs",
    ),
    ("formation watch", "nepho formation:watch shop"),
    (
        "formation events",
        "nepho formation:events shop\nnepho -o json formation:events shop --follow\nnepho -o yaml formation:events shop --since 10",
    ),
    (
        "formation update",
        "nepho formation:update shop --set web_count=3\nnepho formation:update shop -f new-secrets.yaml",
    ),
    (
        "formation destroy",
        "nepho formation:destroy shop          # shows what goes and asks\nnepho formation:destroy shop --yes    # in scripts",
    ),
    ("formation cancel", "nepho formation:cancel shop"),
    (
        "formation ssh",
        "nepho formation:ssh hi\nnepho formation:ssh shop web-2 -- uptime\nnepho formation:ssh hi --print",
    ),
    (
        "formation stop",
        "nepho formation:stop hi\nnepho formation:stop hi hello",
    ),
    ("formation start", "nepho formation:start hi"),
    ("formation reset", "nepho formation:reset hi hello"),
    (
        "formation attach-iso",
        "nepho formation:attach-iso hi tools.iso -m hello\nnepho formation:attach-iso hi rescue   # a registered ISO (nepho iso:list)",
    ),
    (
        "formation detach-iso",
        "nepho formation:detach-iso hi -m hello",
    ),
    (
        "formation add-drive",
        "nepho formation:add-drive hi --size-gb 20\nnepho formation:add-drive hi --size-gb 20 --storage iscsi",
    ),
    (
        "formation remove-drive",
        "nepho formation:remove-drive hi disk1",
    ),
    (
        "formation resize-drive",
        "nepho formation:resize-drive hi hello disk1 --size-gb 40",
    ),
    ("formation vnc", "nepho formation:vnc hi"),
    (
        "formation attach-nic",
        "nepho formation:attach-nic hi hello back",
    ),
    (
        "formation detach-nic",
        "nepho formation:detach-nic hi hello net1",
    ),
    ("formation open", "nepho formation:open shop"),
    ("registry update", "nepho registry:update"),
    (
        "registry build",
        "nepho registry:build https://git.example.com/a.git ./cloudlets/b --out site\nnepho registry:build --manifest entries.json --out site",
    ),
    (
        "registry serve",
        "nepho registry:serve site\nnepho registry:serve site --listen 127.0.0.1:8080",
    ),
    (
        "cluster status",
        "nepho cluster:status\nnepho -o json cluster:status",
    ),
    ("cluster failover", "nepho cluster:failover h2"),
    (
        "cluster watch",
        "nepho cluster:watch --grace 30\nnepho cluster:watch --detach\nnepho cluster:watch --status",
    ),
    ("cluster migrate", "nepho cluster:migrate hi hello --to h2"),
    (
        "cluster rebalance",
        "nepho cluster:rebalance --dry-run\nnepho cluster:rebalance --max-moves 2",
    ),
    (
        "cluster evacuate",
        "nepho cluster:evacuate h2 --dry-run\nnepho cluster:evacuate h2",
    ),
    (
        "cluster usage",
        "nepho cluster:usage\nnepho cluster:usage --formation hi",
    ),
    (
        "cluster sync",
        "nepho cluster:sync   # after adding a host to the cluster file\nnepho -o json cluster:sync",
    ),
    (
        "image add",
        "nepho image:add debian-12 ./debian-12-genericcloud-amd64.qcow2 --os 'Debian 12'\nnepho image:add debian-12 ./rebuilt.qcow2 --replace",
    ),
    ("image list", "nepho image:list\nnepho -o json image:list"),
    ("image remove", "nepho image:remove debian-12"),
    ("iso add", "nepho iso:add rescue ./systemrescue.iso"),
    ("iso list", "nepho iso:list"),
    ("iso remove", "nepho iso:remove rescue"),
    (
        "cluster events",
        "nepho cluster:events\nnepho -o json cluster:events --since 40   # NDJSON, as formation:events",
    ),
    (
        "register",
        "nepho register aws\nnepho register kvm\nnepho register vagrant\nnepho register aws --context prod --region eu-west-1   # a second account or region",
    ),
    ("context list", "nepho context:list"),
    (
        "context use",
        "nepho context:use prod\nnepho context:use default\nnepho --context prod formation:list   # once, without switching\nNEPHO_CONTEXT=prod nepho formation:list",
    ),
    ("create", "nepho create hello --name hi"),
    ("destroy", "nepho destroy hi --yes"),
    ("list", "nepho ls"),
    ("stop", "nepho halt hi"),
    ("ssh", "nepho ssh hi -- uptime"),
    ("open", "nepho open shop"),
    (
        "completions",
        "nepho completions bash > /etc/bash_completion.d/nepho\nnepho completions zsh > \"${fpath[1]}/_nepho\"",
    ),
];

/// Descriptions of positional arguments the declarations leave bare, by argument id (the
/// first matching command path prefix wins).
const POSITIONALS: &[(&str, &str, &str)] = &[
    (
        "cloudlet search",
        "terms",
        "Words to look for: names rank above tags, tags above summaries",
    ),
    (
        "cloudlet",
        "name",
        "An installed (or registry) cloudlet: `owner/name`, or `name` when unambiguous",
    ),
    ("scenario", "cloudlet", "An installed cloudlet's name"),
    ("completions", "shell", "The shell to write completions for"),
    (
        "register",
        "provider",
        "The provider to set up: aws, kvm or vagrant",
    ),
    (
        "image",
        "name",
        "The image's name in the library (as `nepho image:list` shows it)",
    ),
    (
        "iso",
        "name",
        "The ISO's name in the library (as `nepho iso:list` shows it)",
    ),
    (
        "",
        "name",
        "The formation's name (as `nepho formation:list` shows it)",
    ),
];

/// Adds examples, argument descriptions and the global options heading to `cmd` and all of its
/// subcommands.
pub fn decorate(cmd: clap::Command) -> clap::Command {
    decorate_at(cmd, "")
}

fn decorate_at(mut cmd: clap::Command, path: &str) -> clap::Command {
    if let Some((_, examples)) = EXAMPLES.iter().find(|(p, _)| *p == path) {
        let body: String = examples.lines().map(|l| format!("  {l}\n")).collect();
        cmd = cmd.after_help(format!("Examples:\n{}", body.trim_end()));
    }
    let positionals: Vec<(String, bool)> = cmd
        .get_positionals()
        .map(|a| (a.get_id().to_string(), a.get_help().is_none()))
        .collect();
    // `mut_arg` moves the argument to the end of the list, and positionals are numbered in list
    // order: so every positional is passed through, in order, to keep their order.
    for (id, bare) in positionals {
        let help = POSITIONALS
            .iter()
            .find(|(prefix, arg, _)| bare && *arg == id && path.starts_with(prefix))
            .map(|(_, _, help)| *help);
        cmd = cmd.mut_arg(id.as_str(), |a| match help {
            Some(help) => a.help(help),
            None => a,
        });
    }
    let globals: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    for id in globals {
        cmd = cmd.mut_arg(id.as_str(), |a| a.help_heading("Global options"));
    }
    for_each_subcommand(cmd, path, decorate_at)
}

/// Applies `f` to every subcommand of `cmd`, with the subcommand's path (`formation create`).
fn for_each_subcommand(
    mut cmd: clap::Command,
    path: &str,
    f: fn(clap::Command, &str) -> clap::Command,
) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(name.as_str(), |s| f(s, &sub_path));
    }
    cmd
}

/// Names completed from this machine's state, read straight from the directories (no YAML, no
/// provider): a TAB must answer in a few milliseconds.
mod candidates {
    use clap_complete::engine::CompletionCandidate;

    use crate::config::Paths;

    fn dir_names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    pub fn cloudlets() -> Vec<CompletionCandidate> {
        let Ok(paths) = Paths::discover(None) else {
            return Vec::new();
        };
        dir_names(&paths.cloudlets_dir())
            .into_iter()
            .map(CompletionCandidate::new)
            .collect()
    }

    /// `cloudlet/scenario` for every installed cloudlet (native `scenarios/`, 1.x `blueprints/`).
    pub fn scenarios() -> Vec<CompletionCandidate> {
        let Ok(paths) = Paths::discover(None) else {
            return Vec::new();
        };
        let root = paths.cloudlets_dir();
        let mut out = Vec::new();
        for cloudlet in dir_names(&root) {
            out.push(CompletionCandidate::new(cloudlet.clone()));
            for sub in ["scenarios", "blueprints"] {
                let Ok(entries) = std::fs::read_dir(root.join(&cloudlet).join(sub)) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_str()?.to_string();
                        let stem = n.strip_suffix(".yaml").or_else(|| n.strip_suffix(".yml"))?;
                        Some(stem.to_string())
                    })
                    .collect();
                names.sort();
                out.extend(
                    names
                        .into_iter()
                        .map(|s| CompletionCandidate::new(format!("{cloudlet}/{s}"))),
                );
            }
        }
        out
    }

    pub fn formations() -> Vec<CompletionCandidate> {
        let Ok(paths) = Paths::discover(None) else {
            return Vec::new();
        };
        dir_names(&paths.formations_dir())
            .into_iter()
            .map(CompletionCandidate::new)
            .collect()
    }
}

/// Which positional arguments complete which names: (command path prefix, argument id, kind).
type Completer = fn() -> Vec<clap_complete::engine::CompletionCandidate>;

const COMPLETED: &[(&str, &str, Completer)] = &[
    ("cloudlet", "name", candidates::cloudlets),
    ("cloudlet validate", "path", candidates::cloudlets),
    ("scenario list", "cloudlet", candidates::cloudlets),
    ("scenario", "scenario", candidates::scenarios),
    ("formation create", "scenario", candidates::scenarios),
    ("create", "scenario", candidates::scenarios),
    ("", "name", candidates::formations),
];

/// Attaches the completers of [`COMPLETED`] to `cmd`'s arguments (call after [`decorate`]).
pub fn with_completers(cmd: clap::Command) -> clap::Command {
    completers_at(cmd, "")
}

fn completers_at(mut cmd: clap::Command, path: &str) -> clap::Command {
    let positionals: Vec<String> = cmd
        .get_positionals()
        .map(|a| a.get_id().to_string())
        .collect();
    // In order, as `decorate` does: `mut_arg` moves an argument to the end of the list.
    for id in positionals {
        let completer = COMPLETED
            .iter()
            .find(|(prefix, arg, _)| *arg == id && path.starts_with(prefix))
            .map(|(_, _, f)| *f);
        cmd = cmd.mut_arg(id.as_str(), |a| match completer {
            Some(f) => a.add(clap_complete::engine::ArgValueCandidates::new(f)),
            None => a,
        });
    }
    for_each_subcommand(cmd, path, completers_at)
}

type RenderSection = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// One man page per command (`nepho.1`, `nepho-cloudlet.1`, `nepho-cloudlet-install.1`, …),
/// each with ENVIRONMENT, FILES and EXIT STATUS sections: (file name, roff).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
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
    let mut cmd = cmd.disable_help_subcommand(true);
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

/// `nepho -- nepho scenario:render we` as the shell sends it, with the colon form expanded
/// (`scenario render`) so completion sees what parsing will, and the shell's index of the word
/// being completed moved along.
/// `expand_colon_form` is the parser's own rewrite, supplied by the CLI.
pub(crate) fn completion_args(
    raw: Vec<std::ffi::OsString>,
    expand_colon_form: fn(Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
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
pub(crate) const COMPLETE_VAR: &str = "NEPHO_COMPLETE";

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
