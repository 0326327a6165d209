//! The work behind each command, as in cargo's `ops`: the CLI parses arguments, calls one
//! function here and prints the typed result it returns. Progress, notices and warnings go to
//! stderr through `Context::out`; questions go through a [`Prompter`], so nothing here reads
//! the terminal itself.

pub mod cloudlet;
pub mod cluster;
pub mod context;
pub mod formation;
pub mod library;
pub mod machine;
pub mod register;
pub mod registry;
pub mod scenario;

use crate::config::{Config, Paths};
use crate::error::{Error, Result};
use crate::output::Out;

/// Everything a command needs: where things are, the config, and how to report progress.
pub struct Context {
    pub paths: Paths,
    pub config: Config,
    pub out: Out,
    /// True when prompting is allowed (TTY on stdin and stderr, and not --no-input). Also tells
    /// git whether it may ask for credentials.
    pub interactive: bool,
}

impl Context {
    /// The context of one command: the config file (`--config`, else the default) and provider
    /// context (`--context`, else the chosen one) loaded, the output format the config names
    /// applied to `out` unless `-o` was given. Prompting needs a `terminal` and no `no_input`.
    pub fn load(
        config_file: Option<&std::path::Path>,
        context: Option<&str>,
        output_given: bool,
        no_input: bool,
        terminal: bool,
        out: &mut Out,
    ) -> Result<Context> {
        if let Some(file) = config_file
            && !file.is_file()
        {
            return Err(
                Error::not_found(format!("--config {}: no such file", file.display()))
                    .with_hint("give the path of an existing config file, or leave --config out"),
            );
        }
        let paths = Paths::discover(config_file)?.with_context(context)?;
        tracing::info!(
            "config {}, cloudlets {}, state {}",
            paths.config_file.display(),
            paths.cloudlets_dir().display(),
            paths.state_dir.display()
        );
        let config = Config::load(&paths.config_file)?;
        for w in &config.warnings {
            out.warn(w);
        }
        if !output_given && let Some(f) = &config.output {
            out.format = match f.as_str() {
                "table" => crate::output::Format::Table,
                "json" => crate::output::Format::Json,
                "yaml" => crate::output::Format::Yaml,
                other => {
                    return Err(Error::invalid(format!(
                        "{}: unknown output format \"{other}\"",
                        paths.config_file.display()
                    )));
                }
            };
        }
        let no_input = no_input || config.no_input.unwrap_or(false);
        Ok(Context {
            paths,
            config,
            out: out.clone(),
            interactive: !no_input && terminal,
        })
    }

    pub fn git(&self) -> crate::git::Git {
        crate::git::Git {
            no_prompt: !self.interactive,
        }
    }

    pub fn registry(&self) -> crate::registry::Registry {
        crate::registry::Registry {
            sources: self.config.registries.clone(),
            trusted_keys: self.config.registry_keys.clone(),
            cache_dir: self.paths.registry_cache_dir(),
            default_max_age: self
                .config
                .registry_max_age
                .unwrap_or(crate::registry::DEFAULT_MAX_AGE),
        }
    }
}

/// Questions asked of the user. The CLI answers them on the terminal; ops only asks when
/// `Context::interactive` says someone is there to answer.
pub trait Prompter {
    /// Yes or no, no by default.
    fn confirm(&self, question: &str) -> Result<bool>;
    /// A line of text, with an optional default.
    fn input(&self, label: &str, default: Option<&str>) -> Result<String>;
    /// A line of text that is not echoed.
    fn password(&self, label: &str) -> Result<String>;
    /// One of `items` (its index), the first by default.
    fn select(&self, label: &str, items: &[String]) -> Result<usize>;
}

/// A prompter for when nobody can answer: every question is an error.
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn confirm(&self, question: &str) -> Result<bool> {
        Err(Error::usage(format!(
            "cannot ask \"{question}\": no terminal"
        )))
    }
    fn input(&self, label: &str, _: Option<&str>) -> Result<String> {
        Err(Error::usage(format!("cannot ask for {label}: no terminal")))
    }
    fn password(&self, label: &str) -> Result<String> {
        Err(Error::usage(format!("cannot ask for {label}: no terminal")))
    }
    fn select(&self, label: &str, _: &[String]) -> Result<usize> {
        Err(Error::usage(format!("cannot ask for {label}: no terminal")))
    }
}

/// A runtime for the provider calls of one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))
}
