//! `image:*` and `iso:*` (KVM): the library of base images and ISOs copied to every host, and
//! `cluster:sync`, which gives hosts the copies they miss.

use std::path::PathBuf;

use clap::Subcommand;
use nepho_provider_api::LibraryKind;

use super::Context;
use crate::error::Result;
use crate::ops::library::{self as ops, AddRequest};
use crate::output::human;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Copy a qcow2 base image to every host (checked there) and register it under NAME, for
    /// a pattern's `image: NAME`
    Add {
        /// 1 to 64 letters, digits and `-`, starting with a letter
        name: String,
        /// The qcow2 file on this machine
        file: PathBuf,
        /// What it runs (free text, shown by image:list)
        #[arg(long)]
        os: Option<String>,
        /// Put FILE in the place of an image of the same name (refused while a machine uses it)
        #[arg(long)]
        replace: bool,
    },
    /// The registered images, each host's copy and checksum
    List,
    /// Delete an image's copies on every host and its record (refused while a machine uses it)
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum IsoCommand {
    /// Copy an ISO image to every host (checked there) and register it under NAME, for
    /// `formation:attach-iso FORMATION NAME`
    Add {
        /// 1 to 64 letters, digits and `-`, starting with a letter
        name: String,
        /// The ISO file on this machine
        file: PathBuf,
        /// Put FILE in the place of an ISO of the same name (refused while a machine has it)
        #[arg(long)]
        replace: bool,
    },
    /// The registered ISOs, each host's copy and checksum
    List,
    /// Delete an ISO's copies on every host and its record (refused while a machine has it)
    Remove { name: String },
}

pub fn image(cx: &Context, cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Add {
            name,
            file,
            os,
            replace,
        } => add(cx, LibraryKind::Image, &name, &file, os.as_deref(), replace),
        ImageCommand::List => list(cx, LibraryKind::Image),
        ImageCommand::Remove { name } => remove(cx, LibraryKind::Image, &name),
    }
}

pub fn iso(cx: &Context, cmd: IsoCommand) -> Result<()> {
    match cmd {
        IsoCommand::Add {
            name,
            file,
            replace,
        } => add(cx, LibraryKind::Iso, &name, &file, None, replace),
        IsoCommand::List => list(cx, LibraryKind::Iso),
        IsoCommand::Remove { name } => remove(cx, LibraryKind::Iso, &name),
    }
}

fn add(
    cx: &Context,
    kind: LibraryKind,
    name: &str,
    file: &std::path::Path,
    os: Option<&str>,
    replace: bool,
) -> Result<()> {
    let request = AddRequest {
        kind,
        name,
        file,
        os,
        replace,
    };
    cx.out.show(&ops::add(cx, &request)?);
    Ok(())
}

fn list(cx: &Context, kind: LibraryKind) -> Result<()> {
    let entries = ops::list(cx, kind)?;
    cx.out.data(&entries, || human::library_list(&entries));
    Ok(())
}

fn remove(cx: &Context, kind: LibraryKind, name: &str) -> Result<()> {
    cx.out.show(&ops::remove(cx, kind, name)?);
    Ok(())
}

/// `cluster:sync`.
pub fn sync(cx: &Context) -> Result<()> {
    let reports = ops::sync(cx)?;
    cx.out.data(&reports, || human::library_sync(&reports));
    ops::all_synced(&reports)
}
