//! `nepho register aws|kvm|vagrant`: store a provider's settings (0600) so formations can use it.

use clap::{Args, ValueEnum};
use nepho_provider_api::ProviderKind;

use super::{Context, Terminal};
use crate::error::Result;
use crate::ops::register::{self as ops, RegisterOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegisterProvider {
    Aws,
    Kvm,
    Vagrant,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[arg(value_enum)]
    pub provider: RegisterProvider,
    /// AWS region (e.g. us-east-1)
    #[arg(long)]
    pub region: Option<String>,
    /// Use this AWS profile from ~/.aws/config instead of keys
    #[arg(long, conflicts_with = "access_key_id")]
    pub profile: Option<String>,
    /// AWS access key id (the secret key is read from AWS_SECRET_ACCESS_KEY or prompted)
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// AWS API endpoint (for AWS-compatible services and local mocks)
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// S3 bucket for large templates and Nepho 1.x payloads
    #[arg(long)]
    pub template_bucket: Option<String>,
    /// Vagrant: VAGRANT_HOME for nepho's vagrant calls (boxes, plugins); default: the environment's
    #[arg(long)]
    pub vagrant_home: Option<String>,
    /// Vagrant: provider passed as --provider when the scenario names none (default libvirt)
    #[arg(long)]
    pub default_provider: Option<String>,
    /// Vagrant: NEPHO_LIBVIRT_DRIVER for Vagrantfiles: kvm, qemu, or auto (probe for KVM)
    #[arg(long, value_parser = ["auto", "kvm", "qemu"])]
    pub libvirt_driver: Option<String>,
}

pub fn run(cx: &Context, a: RegisterArgs) -> Result<()> {
    let provider = match a.provider {
        RegisterProvider::Aws => ProviderKind::Aws,
        RegisterProvider::Kvm => ProviderKind::Kvm,
        RegisterProvider::Vagrant => ProviderKind::Vagrant,
    };
    let options = RegisterOptions {
        region: a.region,
        profile: a.profile,
        access_key_id: a.access_key_id,
        endpoint_url: a.endpoint_url,
        template_bucket: a.template_bucket,
        vagrant_home: a.vagrant_home,
        default_provider: a.default_provider,
        libvirt_driver: a.libvirt_driver,
    };
    cx.out
        .show(&ops::register(cx, &Terminal, provider, options)?);
    Ok(())
}
