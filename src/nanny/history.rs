//! How long each step took in past runs of the same cloudlet/scenario/provider, kept in the
//! state directory (`<state>/history/CLOUDLET__SCENARIO__PROVIDER.json`): the progress display
//! shows an ETA from it and names a step that takes far longer than it usually does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nepho_provider_api::{Event, EventKind, EventStatus};

use crate::config::Paths;

/// Runs remembered per step.
const KEPT: usize = 5;

/// Step → its durations in seconds, oldest first.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct History {
    pub steps: BTreeMap<String, Vec<f64>>,
}

fn file(paths: &Paths, cloudlet: &str, scenario: &str, provider: &str) -> PathBuf {
    let key: String = format!("{cloudlet}__{scenario}__{provider}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    paths.state_dir.join("history").join(format!("{key}.json"))
}

impl History {
    pub fn load(paths: &Paths, cloudlet: &str, scenario: &str, provider: &str) -> History {
        std::fs::read(file(paths, cloudlet, scenario, provider))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The usual (median) duration of each step with a history.
    pub fn typical(&self) -> BTreeMap<String, f64> {
        self.steps
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(step, d)| {
                let mut d = d.clone();
                d.sort_by(f64::total_cmp);
                (step.clone(), d[d.len() / 2])
            })
            .collect()
    }

    /// Adds the step durations of the journal's run starting at `from` (steps that ran, not
    /// skipped ones) and saves.
    pub fn record_run(
        paths: &Paths,
        (cloudlet, scenario, provider): (&str, &str, &str),
        events: &[Event],
        from: u64,
    ) {
        let mut history = History::load(paths, cloudlet, scenario, provider);
        let mut started: BTreeMap<&str, f64> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.seq >= from && e.kind == EventKind::Step)
        {
            let (Some(step), Some(t)) = (&e.step, seconds_of_day(&e.ts)) else {
                continue;
            };
            match e.status {
                EventStatus::Started => {
                    started.entry(step.0.as_str()).or_insert(t);
                }
                EventStatus::Succeeded => {
                    if let Some(t0) = started.get(step.0.as_str()) {
                        let took = (t - t0).rem_euclid(86_400.0);
                        let kept = history.steps.entry(step.0.clone()).or_default();
                        kept.push(took);
                        if kept.len() > KEPT {
                            kept.remove(0);
                        }
                    }
                }
                _ => {}
            }
        }
        let path = file(paths, cloudlet, scenario, provider);
        if let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec(&history)) {
            let _ = std::fs::create_dir_all(dir);
            let _ = crate::config::write_atomic(&path, &json);
        }
    }
}

/// `2026-12-01T11:48:47.848Z` → seconds since midnight.
fn seconds_of_day(ts: &str) -> Option<f64> {
    let clock = ts.get(11..)?.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_times() {
        assert_eq!(
            super::seconds_of_day("2026-12-01T01:02:03.500Z"),
            Some(3723.5)
        );
    }
}
