//! [`MachineOps`] for Vagrant: power is `vagrant halt|up|reload` of the formation's project;
//! media, drives, NICs and the console are not something nepho does through Vagrant, and say
//! so (they work on KVM formations).

use nepho_provider_api::{
    BoxFuture, DriveChange, DriveResize, MachineOpError, MachineOps, MediaChange, NicChange,
    PowerAction, ProviderError, ProviderKind, StorageKind, VncConsole,
};

use crate::{VagrantProvider, project, run};

impl VagrantProvider {
    async fn power_machines(
        &self,
        formation: &str,
        machine: Option<&str>,
        action: PowerAction,
    ) -> Result<(), ProviderError> {
        let dir = self.existing_dir(formation)?;
        let provider = project::read_meta(&dir)
            .map(|m| m.vagrant_provider)
            .unwrap_or_else(|| self.settings.default_provider.clone());
        let provider_arg = format!("--provider={provider}");
        let mut args: Vec<&str> = match action {
            PowerAction::Stop => vec!["halt"],
            PowerAction::Start => vec!["up", &provider_arg],
            PowerAction::Reset => vec!["reload"],
        };
        args.push("--machine-readable");
        if let Some(m) = machine {
            args.push(m);
        }
        let _ = std::fs::remove_file(dir.join(project::SSH_CACHE_FILE));
        let f = self
            .vagrant(&dir)
            .run(&dir, &args, self.settings.up_timeout, true, |_| {})
            .await?;
        if !f.success {
            return Err(run::failure(&format!("vagrant {}", args.join(" ")), &f));
        }
        Ok(())
    }
}

fn unsupported<'a, T: Send + 'a>(operation: &str) -> BoxFuture<'a, Result<T, MachineOpError>> {
    let e = MachineOpError::unsupported(ProviderKind::Vagrant, operation);
    Box::pin(async move { Err(e) })
}

impl MachineOps for VagrantProvider {
    fn power<'a>(
        &'a self,
        formation: &'a str,
        machine: Option<&'a str>,
        action: PowerAction,
    ) -> BoxFuture<'a, Result<(), MachineOpError>> {
        Box::pin(async move { Ok(self.power_machines(formation, machine, action).await?) })
    }

    fn attach_iso<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _iso: &'a nepho_provider_api::IsoMedium,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>> {
        unsupported("attach-iso")
    }

    fn detach_iso<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
    ) -> BoxFuture<'a, Result<MediaChange, MachineOpError>> {
        unsupported("detach-iso")
    }

    fn add_drive<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _size_gb: u64,
        _storage: StorageKind,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>> {
        unsupported("add-drive")
    }

    fn remove_drive<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _drive: &'a str,
    ) -> BoxFuture<'a, Result<DriveChange, MachineOpError>> {
        unsupported("remove-drive")
    }

    fn resize_drive<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _drive: &'a str,
        _size_gb: u64,
    ) -> BoxFuture<'a, Result<DriveResize, MachineOpError>> {
        unsupported("resize-drive")
    }

    fn attach_nic<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _network: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>> {
        unsupported("attach-nic")
    }

    fn detach_nic<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _nic: &'a str,
    ) -> BoxFuture<'a, Result<NicChange, MachineOpError>> {
        unsupported("detach-nic")
    }

    fn vnc<'a>(
        &'a self,
        _formation: &'a str,
        _machine: Option<&'a str>,
        _local_port: u16,
    ) -> BoxFuture<'a, Result<VncConsole, MachineOpError>> {
        unsupported("vnc")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nepho_provider_api::Provider;

    use super::*;
    use crate::VagrantSettings;

    fn provider(dir: &Path) -> VagrantProvider {
        VagrantProvider {
            settings: VagrantSettings::new(dir),
            kvm_probe: tokio::sync::OnceCell::new(),
        }
    }

    #[tokio::test]
    async fn only_power_is_offered_and_the_rest_says_where_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let vagrant = provider(dir.path());
        let provider: &dyn Provider = &vagrant;
        assert!(provider.cluster().is_none());
        let machines = provider
            .machines()
            .expect("vagrant offers machine operations");
        let e = machines
            .attach_iso(
                "lab",
                None,
                &nepho_provider_api::IsoMedium::File("/tmp/x.iso".into()),
            )
            .await
            .unwrap_err();
        match ProviderError::from(e) {
            ProviderError::Invalid { message, hint } => {
                assert_eq!(
                    message,
                    "formation:attach-iso is not supported by the vagrant provider"
                );
                assert!(hint.unwrap().contains("kvm"));
            }
            other => panic!("{other:?}"),
        }
        assert!(machines.vnc("lab", None, 0).await.is_err());
        // Power goes to the formation's project, which does not exist here.
        let e = machines
            .power("lab", None, PowerAction::Stop)
            .await
            .unwrap_err();
        assert!(
            matches!(e, MachineOpError::Provider(ProviderError::NotFound(_))),
            "{e:?}"
        );
    }
}
