//! Running the host tools (virsh, qemu-img, tgtadm, ssh, genisoimage) as processes, always
//! with a timeout, with their stderr kept for error messages.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nepho_provider_api::ProviderError;
use tokio::process::Command;

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args...` with a timeout; `Err` only when it could not run or timed out.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output, ProviderError> {
    run_with_input(program, args, None, timeout).await
}

/// Like [`run`], with `input` written to the command's stdin (never logged: it can carry a
/// provisioner's secrets).
pub async fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, ProviderError> {
    use tokio::io::AsyncWriteExt;
    // `-v`: what nepho runs; `-vv`: how long it took (the span's close); `-vvv`: what it said.
    let line = format!("{program} {}", args.join(" "));
    let started = std::time::Instant::now();
    tracing::info!("{line}");
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| ProviderError::Unavailable {
        message: format!("cannot run {program}: {e}"),
        hint: Some(install_hint(program).to_string()),
    })?;
    let stdin = child.stdin.take();
    let feeding = async {
        let write = async {
            if let (Some(bytes), Some(mut stdin)) = (input, stdin) {
                // A command that exits without reading it all is reported by its exit status.
                let _ = stdin.write_all(&bytes).await;
                let _ = stdin.shutdown().await;
            }
        };
        // Both at once: a command that prints while it reads must not block on a full pipe.
        tokio::join!(write, child.wait_with_output()).1
    };
    let finished = tokio::time::timeout(timeout, feeding).await;
    tracing::debug!("{line}: {:.1?}", started.elapsed());
    if let Ok(Ok(out)) = &finished {
        tracing::trace!(
            status = %out.status,
            stdout = %String::from_utf8_lossy(&out.stdout),
            stderr = %String::from_utf8_lossy(&out.stderr),
            "{program} answered"
        );
    }
    match finished {
        Ok(Ok(out)) => Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(ProviderError::Failed {
            message: format!("{program} failed: {e}"),
            hint: None,
        }),
        Err(_) => Err(ProviderError::Failed {
            message: format!(
                "`{program} {}` did not finish within {} s",
                args.join(" "),
                timeout.as_secs()
            ),
            hint: None,
        }),
    }
}

/// Like [`run`], but a non-zero exit is an error carrying the command's stderr.
pub async fn check(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, ProviderError> {
    let out = run(program, args, timeout).await?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(ProviderError::Failed {
            message: format!(
                "`{program} {}` failed: {}",
                args.join(" "),
                first_lines(&out.stderr, &out.stdout)
            ),
            hint: None,
        })
    }
}

fn first_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    text.trim().lines().take(5).collect::<Vec<_>>().join(" / ")
}

/// Which Debian package provides a tool, for "not installed" errors.
pub fn install_hint(program: &str) -> &'static str {
    match program {
        "virsh" => {
            "install libvirt: apt-get install libvirt-clients libvirt-daemon-system qemu-system-x86"
        }
        "qemu-img" => "apt-get install qemu-utils",
        "tgtadm" => "apt-get install tgt (and start tgtd)",
        "genisoimage" => "apt-get install genisoimage",
        "ssh" | "ssh-keygen" | "scp" => "apt-get install openssh-client",
        "qemu-system-x86_64" => "apt-get install qemu-system-x86",
        _ => "install the missing tool",
    }
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    which(program).is_some()
}

/// Where `program` is found on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

/// Single-quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A failed file operation, naming the file.
pub fn io_failed(path: &Path, e: std::io::Error) -> ProviderError {
    ProviderError::Failed {
        message: format!("{}: {e}", path.display()),
        hint: None,
    }
}
