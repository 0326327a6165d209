//! Embeds the example cloudlets under `cloudlets/` so `nepho cloudlet:install hello` works offline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read cloudlets/")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudlets");
    println!("cargo:rerun-if-changed=cloudlets");
    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &mut files);
    }
    let mut code = String::from("pub static FILES: &[(&str, &[u8], bool)] = &[\n");
    for file in files {
        use std::os::unix::fs::PermissionsExt;
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .expect("utf-8 path")
            .to_string();
        let exec = std::fs::metadata(&file).unwrap().permissions().mode() & 0o111 != 0;
        writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?}), {exec}),",
            file.to_str().unwrap()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled.rs");
    std::fs::write(out, code).unwrap();
}
