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
    /// The run's latest own message ("plan: 2 step(s): …"), shown with the step count.
    headline: String,
    steps: HashMap<String, ProgressBar>,
    /// Steps seen to finish (done or already done), and the plan's step count.
    finished: std::collections::BTreeSet<String>,
    total: u64,
    started: Instant,
    /// Usual step durations from past runs (seconds), and when each step started here.
    typical: std::collections::BTreeMap<String, f64>,
    step_started: HashMap<String, Instant>,
    /// The plan's step ids, for the ETA of steps not started yet.
    planned: Vec<String>,
}

impl Bars {
    fn refresh_header(&self) {
        let counts = if self.total > 0 {
            format!(
                " — {} of {} steps done",
                self.finished.len().min(self.total as usize),
                self.total
            )
        } else {
            String::new()
        };
        self.header
            .set_message(format!("{}{counts}{}", self.headline, self.eta()));
    }

    /// ` — about 40s left`, from past runs, once any step has a history.
    fn eta(&self) -> String {
        if self.typical.is_empty() || self.total == 0 {
            return String::new();
        }
        let mut left = 0.0;
        for step in &self.planned {
            if self.finished.contains(step) {
                continue;
            }
            let Some(usual) = self.typical.get(step) else {
                continue;
            };
            let spent = self
                .step_started
                .get(step)
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            left += (usual - spent).max(0.0);
        }
        format!(" — about {}s left", left.ceil() as u64)
    }

    /// A running step far over its usual time is named as what the run waits for.
    fn slow_note(&self, step: &str) -> String {
        match (self.typical.get(step), self.step_started.get(step)) {
            (Some(usual), Some(t)) => slow_note(*usual, t.elapsed().as_secs_f64()),
            _ => String::new(),
        }
    }
}

/// The note for a step that has run `spent` seconds and usually takes `usual`: empty until it
/// is well past its usual time (three times, and at least 20 s more).
fn slow_note(usual: f64, spent: f64) -> String {
    if spent > (usual * 3.0).max(usual + 20.0) {
        format!(
            " — slow: usually {}s, this is what the run waits for",
            usual.ceil() as u64
        )
    } else {
        String::new()
    }
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
        Progress::with_history(quiet, title, Default::default())
    }

    /// Like [`Progress::new`], with the usual step durations of past runs (ETA, slow steps).
    pub fn with_history(
        quiet: bool,
        title: &str,
        typical: std::collections::BTreeMap<String, f64>,
    ) -> Progress {
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
                headline: title.to_string(),
                steps: HashMap::new(),
                finished: Default::default(),
                total: 0,
                started: Instant::now(),
                typical,
                step_started: HashMap::new(),
                planned: Vec::new(),
            }
        });
        Progress { bars, quiet }
    }

    /// True when the events are drawn as bars (a terminal), which end with the run's result.
    pub fn drawn(&self) -> bool {
        self.bars.is_some()
    }

    pub fn show(&mut self, e: &Event) {
        let Some(bars) = &mut self.bars else {
            if !self.quiet || matches!(e.status, EventStatus::Failed) {
                eprintln!("{}", line(e));
            }
            return;
        };
        if let (None, Some(p)) = (&e.step, &e.progress) {
            bars.total = p.total;
        }
        if let Some(nepho_provider_api::EventData::Run(run)) = &e.data
            && let Some(steps) = &run.steps
        {
            bars.planned = steps.iter().map(|s| s.id.0.clone()).collect();
        }
        if let Some(step) = &e.step {
            bars.step_started
                .entry(step.0.clone())
                .or_insert_with(Instant::now);
        }
        // Warnings get a line of their own above the bars, whole, instead of flashing by in a
        // step's one-line message.
        if e.message.starts_with("warning:") {
            let _ = bars.multi.println(&e.message);
            return;
        }
        match (&e.step, e.kind) {
            (Some(step), _) => {
                let bar = bars
                    .steps
                    .entry(step.0.clone())
                    .or_insert_with(|| {
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
                    })
                    .clone();
                // Per-resource counts (`[1/3]`) as on a plain stream.
                let counts = e
                    .progress
                    .as_ref()
                    .map(|p| format!(" [{}/{}]", p.done, p.total))
                    .unwrap_or_default();
                match (e.kind, e.status) {
                    (EventKind::Step, EventStatus::Succeeded | EventStatus::Skipped) => {
                        bar.finish_with_message(format!("✔ {}{counts}", e.message));
                        bars.finished.insert(step.0.clone());
                        bars.refresh_header();
                    }
                    (EventKind::Step, EventStatus::Failed) => {
                        bar.abandon_with_message(format!("✘ {}", e.message))
                    }
                    (EventKind::Step, EventStatus::Cancelled) => {
                        bar.finish_with_message(format!("↺ {}", e.message))
                    }
                    (_, EventStatus::Waiting) => {
                        let slow = bars.slow_note(&step.0);
                        bar.set_message(format!("waiting: {}{counts}{slow}", e.message))
                    }
                    _ => {
                        let slow = bars.slow_note(&step.0);
                        bar.set_message(format!("{}{counts}{slow}", e.message))
                    }
                }
                bars.refresh_header();
            }
            (None, EventKind::Formation) if crate::engine::journal::is_final(e) => {
                let secs = bars.started.elapsed().as_secs_f64();
                // The final line says it once, with its own time (no running clock beside it).
                bars.header.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let mark = match e.status {
                    EventStatus::Succeeded => "✔",
                    EventStatus::Cancelled => "↺",
                    _ => "✘",
                };
                bars.header.finish_with_message(format!(
                    "{mark} {}: {} ({secs:.1}s)",
                    e.formation, e.message
                ));
            }
            (None, _) => {
                bars.headline = e.message.clone();
                bars.refresh_header();
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_step_far_over_its_usual_time_is_named() {
        assert_eq!(super::slow_note(10.0, 25.0), "");
        assert!(super::slow_note(10.0, 31.0).contains("usually 10s"));
        assert_eq!(super::slow_note(60.0, 150.0), "");
        assert!(super::slow_note(60.0, 181.0).contains("what the run waits for"));
    }
}
