//! Embeds what `arakoon --version` prints of the build: the git revision
//! (`git describe --all --long --always --dirty`, as Arakoon's build
//! records it; "unknown" outside a git checkout) and the compiler's version.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    let revision = output(
        "git",
        &["describe", "--all", "--long", "--always", "--dirty"],
    )
    .unwrap_or_else(|| "unknown".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let compiler = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ARAKOON_GIT_REVISION={revision}");
    println!("cargo:rustc-env=ARAKOON_RUSTC_VERSION={compiler}");
    // A new commit or checkout changes the revision.
    for path in [
        "../../.git/HEAD",
        "../../.git/index",
        "../../.git/refs/heads",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
