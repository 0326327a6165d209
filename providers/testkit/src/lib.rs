//! What every provider crate's tests share: a step driver that runs a [`Plan`] the way the
//! engine does (ready steps together, a simulated crash and a resume, undo), a recording
//! [`EventSink`], and the conformance suite each provider runs against its real backend.
//!
//! [`Plan`]: nepho_provider_api::Plan
//! [`EventSink`]: nepho_provider_api::EventSink

mod driver;
mod recorder;
mod suite;

pub use driver::{
    Crashed, Outcomes, StepFailure, resume_plan, run_plan, run_plan_until_crash, undo_steps,
};
pub use recorder::{Recorded, Recorder};
pub use suite::{Backend, Conformance, Expect, Steps, destroy_missing};
