//! Vagrant's `--machine-readable` output: one record per line, `timestamp,target,type,data...`,
//! with commas inside data escaped as `%!(VAGRANT_COMMA)` and newlines as `\n`.

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub timestamp: u64,
    /// The machine the record is about; empty for global messages.
    pub target: String,
    /// `ui`, `state`, `action`, `metadata`, `error-exit`, `box-name`, ...
    pub kind: String,
    pub data: Vec<String>,
}

impl Record {
    pub fn data(&self, i: usize) -> &str {
        self.data.get(i).map(String::as_str).unwrap_or("")
    }
}

/// Parses one line; `None` for anything that is not a machine-readable record (Ruby warnings,
/// plugin chatter on stdout).
pub fn parse_line(line: &str) -> Option<Record> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut fields = line.split(',');
    let timestamp = fields.next()?.parse::<u64>().ok()?;
    let target = fields.next()?;
    let kind = fields.next()?;
    if kind.is_empty() {
        return None;
    }
    Some(Record {
        timestamp,
        target: unescape(target),
        kind: kind.to_string(),
        data: fields.map(unescape).collect(),
    })
}

pub fn unescape(field: &str) -> String {
    let field = field.replace("%!(VAGRANT_COMMA)", ",");
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('r') => {
                    chars.next();
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a record means for the user watching a build.
#[derive(Debug, Clone, PartialEq)]
pub enum Meaning {
    /// A machine changed state (`running`, `shutoff`, `not_created`).
    State {
        machine: String,
        state: String,
    },
    /// An action started or ended on a machine (`up`, `destroy`, `halt`).
    Action {
        machine: String,
        action: String,
        phase: String,
    },
    /// The machine is booting and Vagrant waits for SSH.
    WaitingForBoot {
        machine: String,
    },
    /// A box being added or imported into the provider's storage.
    BoxImport {
        machine: String,
        text: String,
    },
    /// A percentage (box download/import).
    Progress {
        percent: u64,
        text: String,
    },
    /// Vagrant failed; the text is Vagrant's own message.
    ErrorExit {
        class: String,
        message: String,
    },
    /// A line for the log (box import, provisioner output, settings).
    Log {
        machine: String,
        level: String,
        text: String,
    },
    Ignore,
}

pub fn meaning(r: &Record) -> Meaning {
    match r.kind.as_str() {
        "state" => Meaning::State {
            machine: r.target.clone(),
            state: r.data(0).to_string(),
        },
        "action" => Meaning::Action {
            machine: r.target.clone(),
            action: r.data(0).to_string(),
            phase: r.data(1).to_string(),
        },
        "error-exit" => Meaning::ErrorExit {
            class: r.data(0).to_string(),
            message: r.data(1).trim().to_string(),
        },
        "ui" => {
            let level = r.data(0).to_string();
            let text = r.data[1.min(r.data.len())..].join(",");
            let text = text.trim_end().to_string();
            if text.trim().is_empty() {
                return Meaning::Ignore;
            }
            if text.contains("Waiting for machine to boot") {
                return Meaning::WaitingForBoot {
                    machine: r.target.clone(),
                };
            }
            if BOX_IMPORT.iter().any(|p| text.contains(p)) {
                return Meaning::BoxImport {
                    machine: r.target.clone(),
                    text: text.trim().to_string(),
                };
            }
            if let Some(percent) = progress_percent(&text) {
                return Meaning::Progress {
                    percent,
                    text: text.trim().to_string(),
                };
            }
            Meaning::Log {
                machine: r.target.clone(),
                level,
                text,
            }
        }
        _ => Meaning::Ignore,
    }
}

/// What Vagrant and vagrant-libvirt print while adding or importing a box.
const BOX_IMPORT: [&str; 4] = [
    "Adding box '",
    "Successfully added box",
    "Uploading base box image as volume",
    "Box file was not detected as metadata",
];

/// `Progress: 45% (Rate: ...)` as printed by `vagrant box add`.
fn progress_percent(text: &str) -> Option<u64> {
    let rest = text.trim().strip_prefix("Progress:")?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if rest[digits.len()..].starts_with('%') {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_and_newlines_are_unescaped() {
        let r = parse_line(
            "1795388050,default,ui,warn,==> default: No version detected for b%!(VAGRANT_COMMA) using timestamp\\n==> default: next",
        )
        .unwrap();
        assert_eq!(r.timestamp, 1795388050);
        assert_eq!(r.target, "default");
        assert_eq!(r.kind, "ui");
        assert_eq!(
            r.data,
            [
                "warn",
                "==> default: No version detected for b, using timestamp\n==> default: next"
            ]
        );
    }

    #[test]
    fn records_get_their_meaning() {
        let m = |l: &str| meaning(&parse_line(l).unwrap());
        assert_eq!(
            m("1,default,state,running"),
            Meaning::State {
                machine: "default".into(),
                state: "running".into()
            }
        );
        assert_eq!(
            m("1,web,action,up,start"),
            Meaning::Action {
                machine: "web".into(),
                action: "up".into(),
                phase: "start".into()
            }
        );
        assert_eq!(
            m(
                "1,default,ui,output,==> default: Waiting for machine to boot. This may take a few minutes..."
            ),
            Meaning::WaitingForBoot {
                machine: "default".into()
            }
        );
        assert!(matches!(
            m(
                "1,,ui,detail,Progress: 45% (Rate: 10M/s%!(VAGRANT_COMMA) Estimated time remaining: 0:00:01)"
            ),
            Meaning::Progress { percent: 45, .. }
        ));
        assert_eq!(
            m(
                "1,,error-exit,Vagrant::Errors::SCPUnavailable,SSH server on the guest doesn't support SCP.\\nInstall it."
            ),
            Meaning::ErrorExit {
                class: "Vagrant::Errors::SCPUnavailable".into(),
                message: "SSH server on the guest doesn't support SCP.\nInstall it.".into()
            }
        );
        assert!(matches!(
            m(
                "1,default,ui,info,==> default: Uploading base box image as volume into Libvirt storage..."
            ),
            Meaning::BoxImport { .. }
        ));
        assert_eq!(m("1,default,metadata,provider,libvirt"), Meaning::Ignore);
    }

    #[test]
    fn non_records_are_skipped() {
        assert_eq!(parse_line("/usr/lib/ruby: warning: something"), None);
        assert_eq!(parse_line(""), None);
    }
}
