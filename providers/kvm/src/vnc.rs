//! A machine's graphical console: every domain has a VNC display listening on its host's
//! loopback only (nothing on the network can reach it). On this machine that address is used
//! as is; a `qemu+ssh://` host's display is reached through an ssh local port forward with the
//! same ssh options as the host's URI, which lives as long as the returned [`VncForward`].

use std::process::Stdio;
use std::time::{Duration, Instant};

use nepho_provider_api::{
    BoxFuture, ConsoleForward, MachineOpError, ProviderError, VncConsole, VncDisplay,
};

use crate::KvmProvider;
use crate::libvirt;

const FORWARD_READY: Duration = Duration::from_secs(20);

/// A running `ssh -N -L` (killed when dropped).
pub struct VncForward {
    child: tokio::process::Child,
}

impl VncForward {
    /// Waits until ssh ends by itself (connection lost); returns why.
    pub async fn wait(&mut self) -> ProviderError {
        let status = self.child.wait().await;
        ProviderError::Failed {
            message: format!(
                "the ssh forward to the VNC display ended ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
            hint: None,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl ConsoleForward for VncForward {
    fn wait(&mut self) -> BoxFuture<'_, ProviderError> {
        Box::pin(VncForward::wait(self))
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(VncForward::stop(*self))
    }
}

/// The display's port on its host, from the live domain XML (`-1` or absent: none).
pub fn vnc_port(xml: &str) -> Option<u16> {
    let start = xml.find("<graphics type='vnc'")?;
    let tag = &xml[start..start + xml[start..].find('>')?];
    let port = tag.split(" port='").nth(1)?.split('\'').next()?;
    port.parse().ok().filter(|p| *p > 0)
}

impl KvmProvider {
    /// The VNC display of a running `machine` (default: the primary one); for a remote host,
    /// with an ssh forward to it on `local_port` (0: any free port).
    pub async fn vnc(
        &self,
        formation: &str,
        machine: Option<&str>,
        local_port: u16,
    ) -> Result<VncConsole, MachineOpError> {
        let d = self.one_machine(formation, machine).await?;
        let state = libvirt::domain_state(&d.uri, &d.name)
            .await
            .unwrap_or_else(|| d.state.clone());
        if state != "running" {
            return Err(MachineOpError::WrongState {
                formation: formation.to_string(),
                machine: d.record.machine.clone(),
                state,
                needed: "running",
            });
        }
        let xml = libvirt::virsh(&d.uri, &["dumpxml", &d.name]).await?;
        let host_port = vnc_port(&xml).ok_or_else(|| {
            ProviderError::NotFound(format!(
                "{} has no VNC display (machines defined before nepho gave them one do not)",
                d.record.machine
            ))
        })?;
        let host = self.machine_host(&d)?;
        let mut display = VncDisplay {
            machine: d.record.machine.clone(),
            host: d.host.clone(),
            address: format!("127.0.0.1:{host_port}"),
            port: host_port,
            host_port,
            ssh: None,
        };
        if host.is_local() {
            return Ok(VncConsole {
                display,
                forward: None,
            });
        }
        let target = host.ssh_target().ok_or_else(|| ProviderError::Invalid {
            message: format!(
                "host {} ({}) is neither local nor reached over ssh: its VNC display listens on its loopback only",
                host.name, host.uri
            ),
            hint: Some("use a qemu+ssh:// URI for the host in the cluster file".into()),
        })?;
        let port = match local_port {
            0 => free_port()?,
            p => p,
        };
        let mut args = vec![
            "-N".to_string(),
            "-o".to_string(),
            "ExitOnForwardFailure=yes".to_string(),
            "-L".to_string(),
            format!("127.0.0.1:{port}:127.0.0.1:{host_port}"),
        ];
        args.extend(target.ssh_args());
        let mut child = tokio::process::Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProviderError::Unavailable {
                message: format!("cannot run ssh: {e}"),
                hint: Some(crate::cmd::install_hint("ssh").into()),
            })?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let stderr = child
                    .wait_with_output()
                    .await
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                return Err(ProviderError::Failed {
                    message: format!(
                        "ssh to {} could not forward 127.0.0.1:{port} ({status}): {}",
                        target.destination,
                        stderr.trim()
                    ),
                    hint: Some("pick another local port with --local-port".into()),
                }
                .into());
            }
            if accepts(port).await {
                break;
            }
            if started.elapsed() > FORWARD_READY {
                return Err(ProviderError::Failed {
                    message: format!(
                        "the ssh forward to {} did not open 127.0.0.1:{port} within {} s",
                        target.destination,
                        FORWARD_READY.as_secs()
                    ),
                    hint: None,
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        display.address = format!("127.0.0.1:{port}");
        display.port = port;
        display.ssh = Some(target.destination.clone());
        Ok(VncConsole {
            display,
            forward: Some(Box::new(VncForward { child })),
        })
    }
}

/// A port nothing listens on now (ssh binds it a moment later).
fn free_port() -> Result<u16, ProviderError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ProviderError::Failed {
            message: format!("no free local port: {e}"),
            hint: None,
        })
}

async fn accepts(port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_comes_from_the_live_graphics_element() {
        let live = "<serial type='pty'><target port='0'/></serial>\
            <graphics type='vnc' port='5903' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>";
        assert_eq!(vnc_port(live), Some(5903));
        let inactive = "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>";
        assert_eq!(vnc_port(inactive), None);
        assert_eq!(vnc_port("<devices></devices>"), None);
    }
}
