//! Drawing a run's events on stderr: indicatif bars on a terminal (one line per step, "N of M
//! done", elapsed time, and what a stalled step waits for), plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use nepho_provider_api::{Event, EventKind, EventStatus};

pub struct Progress {
    bars: Option<Bars>,
    quiet: bool,
}

struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    steps: HashMap<String, ProgressBar>,
    done: u64,
    total: u64,
    started: Instant,
}

fn status_word(s: EventStatus) -> &'static str {
    match s {
        EventStatus::Started => "started",
        EventStatus::InProgress => "in progress",
        EventStatus::Waiting => "waiting",
        EventStatus::Succeeded => "done",
        EventStatus::Skipped => "already done",
        EventStatus::Failed => "FAILED",
        EventStatus::Cancelled => "cancelled",
        EventStatus::Info => "info",
    }
}

/// One plain line for an event (non-TTY output and `formation:events` tables).
pub fn line(e: &Event) -> String {
    let time = e.ts.get(11..23).unwrap_or(&e.ts);
    let progress = e
        .progress
        .as_ref()
        .map(|p| format!(" [{}/{}]", p.done, p.total))
        .unwrap_or_default();
    match &e.step {
        Some(step) => format!(
            "{time} {step}: {} {}{progress}",
            status_word(e.status),
            e.message
        ),
        None => format!("{time} {}{progress}", e.message),
    }
}

impl Progress {
    pub fn new(quiet: bool, title: &str) -> Progress {
        let tty =
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|_| true);
        let bars = (tty && !quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let header = multi.add(ProgressBar::new_spinner());
            header.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            header.set_message(title.to_string());
            header.enable_steady_tick(Duration::from_millis(120));
            Bars {
                multi,
                header,
                steps: HashMap::new(),
                done: 0,
                total: 0,
                started: Instant::now(),
            }
        });
        Progress { bars, quiet }
    }

    pub fn show(&mut self, e: &Event) {
        let Some(bars) = &mut self.bars else {
            if !self.quiet || matches!(e.status, EventStatus::Failed) {
                eprintln!("{}", line(e));
            }
            return;
        };
        if let Some(p) = &e.progress {
            bars.total = p.total;
            bars.done = bars.done.max(p.done);
        }
        match (&e.step, e.kind) {
            (Some(step), _) => {
                let bar = bars.steps.entry(step.0.clone()).or_insert_with(|| {
                    let bar = bars.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {spinner} {prefix:.bold} {wide_msg} [{elapsed}]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(step.0.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                match (e.kind, e.status) {
                    (EventKind::Step, EventStatus::Succeeded | EventStatus::Skipped) => {
                        bar.finish_with_message(format!("✔ {}", e.message))
                    }
                    (EventKind::Step, EventStatus::Failed) => {
                        bar.abandon_with_message(format!("✘ {}", e.message))
                    }
                    (EventKind::Step, EventStatus::Cancelled) => {
                        bar.finish_with_message(format!("↺ {}", e.message))
                    }
                    (_, EventStatus::Waiting) => bar.set_message(format!("waiting: {}", e.message)),
                    _ => bar.set_message(e.message.clone()),
                }
            }
            (None, EventKind::Formation) if super::is_final(e) => {
                let secs = bars.started.elapsed().as_secs_f64();
                bars.header
                    .finish_with_message(format!("{} ({secs:.1}s)", e.message));
            }
            (None, _) => {
                let counts = if bars.total > 0 {
                    format!(" — {} of {} steps done", bars.done, bars.total)
                } else {
                    String::new()
                };
                bars.header.set_message(format!("{}{counts}", e.message));
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bars) = &self.bars {
            for bar in bars.steps.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
            if !bars.header.is_finished() {
                bars.header.abandon();
            }
        }
    }
}
