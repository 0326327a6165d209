//! End-to-end tests: they drive the built `nepho` binary as a user would, each with its own
//! NEPHO_HOME, against real git daemons and HTTP servers on 127.0.0.1.

mod bad_input;
mod cli;
mod formations;
mod fuzz_regressions;
mod generated;
mod injection;
mod install;
mod kvm;
mod kvm_debian;
mod kvm_formation_ops;
mod kvm_hosts;
mod kvm_library;
mod kvm_live;
mod kvm_placement;
mod kvm_update;
mod recovery;
mod registry;
mod registry_site;
mod scenarios;
mod secrets;
mod support;
mod v1;
mod v1_corpus;
mod vagrant;
