//! Temporary files and directories carry the name of the process writing them (this boot of
//! this machine, its pid and its start time), so a later run can tell what a dead nepho left
//! from what a live one is still writing, and sweep only the former, without a lock between them.

use std::fmt;
use std::time::Duration;

/// The process writing a temporary file, as written into its name: `BOOT-PID-START`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// The first 8 hex digits of this machine's boot id.
    boot: String,
    pid: u32,
    /// When the process started, in clock ticks since boot: a pid used again is another start.
    start: u64,
}

fn boot_id() -> String {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    format!("{hex:0>8}")
}

/// Field 22 of `/proc/PID/stat`; `None` when there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Writer {
    pub fn this_process() -> Writer {
        let pid = std::process::id();
        Writer {
            boot: boot_id(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// The writer named at the end of `name` (`…BOOT-PID-START`, the boot id after the last
    /// `-` or `.` before the pid); `None` when the name does not end like that.
    pub fn ending(name: &str) -> Option<Writer> {
        let mut fields = name.rsplitn(4, '-');
        let start = fields.next()?.parse().ok()?;
        let pid = fields.next()?.parse().ok().filter(|p| *p > 0)?;
        let boot = fields.next()?.rsplit('.').next()?;
        (boot.len() == 8 && boot.chars().all(|c| c.is_ascii_hexdigit())).then(|| Writer {
            boot: boot.to_string(),
            pid,
            start,
        })
    }

    /// Whether the writer is gone: `None` when it ran on another machine or before this one
    /// rebooted, where only the age of what it left can tell.
    pub fn gone(&self) -> Option<bool> {
        if self.boot != boot_id() {
            return None;
        }
        Some(start_time(self.pid) != Some(self.start))
    }

    /// Whether what the writer left may be deleted: its writer is gone, or (unknowable) nothing
    /// touched it for longer than any live writer leaves it alone.
    pub fn is_stale(&self, idle: Duration, max_idle: Duration) -> bool {
        self.gone().unwrap_or(idle > max_idle)
    }
}

impl fmt::Display for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.boot, self.pid, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_found_again_in_a_name() {
        let me = Writer::this_process();
        assert_eq!(me.gone(), Some(false));
        let name = format!(".deb-12.qcow2.{me}");
        assert_eq!(Writer::ending(&name), Some(me.clone()));
        assert_eq!(
            Writer::ending(&format!(".tmp-install-0a1b2c3d-{me}")),
            Some(me)
        );
    }

    #[test]
    fn a_finished_process_or_a_pid_started_again_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or(0);
        child.wait().unwrap();
        let dead = Writer {
            boot: boot_id(),
            pid,
            start,
        };
        assert_eq!(dead.gone(), Some(true));
        let reused = Writer {
            start: Writer::this_process().start + 1,
            ..Writer::this_process()
        };
        assert_eq!(reused.gone(), Some(true));
    }

    #[test]
    fn another_boot_is_judged_by_age() {
        let elsewhere = Writer {
            boot: if boot_id() == "00000000" {
                "11111111".into()
            } else {
                "00000000".into()
            },
            ..Writer::this_process()
        };
        assert_eq!(elsewhere.gone(), None);
        let hour = Duration::from_secs(3600);
        assert!(!elsewhere.is_stale(hour, 2 * hour));
        assert!(elsewhere.is_stale(3 * hour, 2 * hour));
    }

    #[test]
    fn names_nepho_does_not_make_have_no_writer() {
        for name in [
            ".deb.qcow2.part",
            ".tmp-install-1234-00ab12cd",
            ".deb.qcow2.zzzzzzzz-12-34",
            "0a1b2c3d-0-34",
            "",
        ] {
            assert_eq!(Writer::ending(name), None, "{name}");
        }
    }
}
