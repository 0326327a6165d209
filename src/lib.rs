//! nepho: install shareable cloudlets and turn them into running formations.
//!
//! Data flows one way: cloudlet files → scenario merge (with provenance) → rendered pattern →
//! provider plan → engine → events → output.

pub mod cli;
pub mod cloudlet;
pub mod config;
pub mod error;
pub mod formation;
#[doc(hidden)]
pub mod fuzzing;
pub mod git;
pub mod help;
pub mod install;
pub mod inventory;
pub mod library;
pub mod nanny;
pub mod ops;
pub mod output;
pub mod params;
pub mod providers;
pub mod registry;
pub mod scenario;
pub mod schema;
pub mod secret;
pub mod util;
pub mod validate;
pub mod yaml;

/// The step engine lives in its own crate; `crate::engine::...` paths keep working.
pub use nepho_engine as engine;
