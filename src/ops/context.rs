//! `context:*`: named sets of provider settings (an AWS account and region, a KVM cluster), as
//! kubectl's contexts and aws-cli's profiles. The default context keeps its settings directly
//! in the config directory; a named one in `<config>/contexts/NAME/`.

use nepho_provider_api::ProviderKind;

use super::Context;
use crate::config::{DEFAULT_CONTEXT, Paths, context_name};
use crate::error::{Error, Result};
pub use crate::output::ContextRow;

fn names(paths: &Paths) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(paths.config_dir.join("contexts"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| context_name(n).is_ok())
        .collect();
    names.sort();
    names.insert(0, DEFAULT_CONTEXT.to_string());
    names
}

fn row(cx: &Context, name: &str) -> Result<ContextRow> {
    let mut paths = cx.paths.clone().with_context(Some(name))?;
    paths.config_file = cx.paths.config_file.clone();
    let providers = ProviderKind::ALL
        .into_iter()
        .filter(|k| match k {
            ProviderKind::Kvm => crate::providers::cluster_file(&paths).is_file(),
            _ => crate::providers::settings_file(&paths, *k).is_file(),
        })
        .map(|k| k.to_string())
        .collect();
    let current = paths.context == cx.paths.context;
    Ok(ContextRow {
        name: name.to_string(),
        current,
        providers,
        path: paths.provider_dir().display().to_string(),
    })
}

/// `context:list`: the default context first, then the named ones.
pub fn list(cx: &Context) -> Result<Vec<ContextRow>> {
    names(&cx.paths).iter().map(|n| row(cx, n)).collect()
}

/// `context:use`: the context later commands use (`default`: none).
pub fn use_context(cx: &Context, name: &str) -> Result<ContextRow> {
    let file = cx.paths.chosen_context_file();
    if name == DEFAULT_CONTEXT {
        let _ = std::fs::remove_file(&file);
    } else {
        let name = context_name(name)?;
        if !names(&cx.paths).contains(&name) {
            return Err(Error::not_found(format!("no context named {name}"))
                .with_hint(format!(
                    "create it with `nepho register aws --context {name}` (or kvm, vagrant); `nepho context:list` shows them"
                )));
        }
        crate::config::write_atomic(&file, format!("{name}\n").as_bytes())?;
    }
    row(cx, name)
}
