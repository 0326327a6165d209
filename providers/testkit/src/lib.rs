//! What every provider crate's tests share: plans run through the real engine
//! ([`nepho_engine`]) with a journal of their own in a temporary directory (a crash is the
//! engine stopped after some steps, a resume the engine reading that journal back), a
//! recording [`EventSink`], and the conformance suite each provider runs against its real
//! backend.
//!
//! [`EventSink`]: nepho_provider_api::EventSink

mod recorder;
mod runs;
mod suite;

pub use recorder::{Recorded, Recorder};
pub use runs::{EngineRun, Outcomes, StepFailure, run_plan, undo_steps};
pub use suite::{Backend, Conformance, Expect, Steps, destroy_missing};
