//! The positioned YAML layer every crate shares (`nepho-yaml`, in `yaml/`).

pub use nepho_yaml::*;
