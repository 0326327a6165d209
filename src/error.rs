//! Errors a user can act on, and the documented exit codes they map to.
//!
//! Library code returns [`Error`]; `main` prints it (message, then a `hint:` line naming the
//! flag or command that fixes it) and exits with [`Error::exit_code`].

use std::path::PathBuf;

use crate::yaml::YamlError;

/// Documented process exit codes (see README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    /// Anything not covered below (I/O failure, internal error).
    Failure = 1,
    /// Bad command line (clap's own usage errors use 2 as well).
    Usage = 2,
    /// The named cloudlet, scenario, formation or registry entry does not exist.
    NotFound = 3,
    /// Invalid input: YAML, types, missing values, unsafe cloudlet contents, bad templates.
    Invalid = 4,
    /// A provider (CloudFormation, Vagrant, libvirt) reported a failure.
    Provider = 5,
    /// The operation conflicts with existing state (already installed, in use, local changes).
    Conflict = 6,
    /// A network service or tool is unreachable or missing (git, registry).
    Unavailable = 7,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Yaml(#[from] YamlError),
    #[error("{message}")]
    NotFound {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
        /// The file, line and column the error is about (already in `message` as text).
        span: Option<Box<Span>>,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    Provider {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Error {
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::NotFound {
            message: message.into(),
            hint: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid {
            message: message.into(),
            hint: None,
            span: None,
        }
    }
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::Conflict {
            message: message.into(),
            hint: None,
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::Unavailable {
            message: message.into(),
            hint: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Attaches (or replaces) the hint shown under the message.
    pub fn with_hint(mut self, text: impl Into<String>) -> Error {
        let text = Some(text.into());
        match &mut self {
            Error::NotFound { hint, .. }
            | Error::Invalid { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::Unavailable { hint, .. }
            | Error::Provider { hint, .. }
            | Error::Usage { hint, .. } => *hint = text,
            _ => {}
        }
        self
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::NotFound { hint, .. }
            | Error::Invalid { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::Unavailable { hint, .. }
            | Error::Provider { hint, .. }
            | Error::Usage { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// Records the place in a file an `Invalid` error is about (for `-o json`'s `span`).
    pub fn with_span(mut self, file: impl Into<PathBuf>, line: usize, column: usize) -> Error {
        if let Error::Invalid { span, .. } = &mut self {
            *span = Some(Box::new(Span {
                file: file.into(),
                line,
                column,
            }));
        }
        self
    }

    /// The file, line and column the error is about, when it is about a file's text.
    pub fn span(&self) -> Option<(&std::path::Path, usize, usize)> {
        match self {
            Error::Yaml(e) if e.pos.line > 0 => Some((&e.file, e.pos.line, e.pos.col)),
            Error::Invalid {
                span: Some(span), ..
            } => Some((&span.file, span.line, span.column)),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Yaml(_) | Error::Invalid { .. } => ExitCode::Invalid,
            Error::NotFound { .. } => ExitCode::NotFound,
            Error::Conflict { .. } => ExitCode::Conflict,
            Error::Unavailable { .. } => ExitCode::Unavailable,
            Error::Provider { .. } => ExitCode::Provider,
            Error::Usage { .. } => ExitCode::Usage,
            Error::Io { .. } | Error::Other(_) => ExitCode::Failure,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    /// Short machine-readable kind, used in `-o json` error objects.
    pub fn kind(&self) -> &'static str {
        match self.exit_code() {
            ExitCode::Success => "success",
            ExitCode::Failure => "failure",
            ExitCode::Usage => "usage",
            ExitCode::NotFound => "not_found",
            ExitCode::Invalid => "invalid",
            ExitCode::Provider => "provider",
            ExitCode::Conflict => "conflict",
            ExitCode::Unavailable => "unavailable",
            ExitCode::Interrupted => "interrupted",
        }
    }
}

impl From<nepho_engine::Error> for Error {
    fn from(e: nepho_engine::Error) -> Error {
        match e {
            nepho_engine::Error::Io { path, source } => Error::Io { path, source },
        }
    }
}

/// `fs` calls with the path in the error.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
