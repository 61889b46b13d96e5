//! The Vulkan driver the wgpu tests need. On a machine with no GPU that is Mesa's
//! software rasteriser llvmpipe (Debian package `mesa-vulkan-drivers`): correct, slow,
//! never a performance reference.

use std::path::Path;
use std::process::Command;

use crate::util::status;

const INSTALL: &str = "sudo apt-get install -y mesa-vulkan-drivers libvulkan1";

/// Folders the Vulkan loader reads driver manifests (ICDs) from, besides the overrides.
const ICD_DIRS: &[&str] = &[
    "/usr/share/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
];

/// The Vulkan loader library, where Debian and most distributions put it.
const LOADERS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
    "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
    "/usr/lib64/libvulkan.so.1",
    "/usr/lib/libvulkan.so.1",
];

fn has_json(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "json"))
    })
}

/// Whether a Vulkan loader and at least one driver manifest are installed.
pub fn present() -> bool {
    let overridden = ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    let icd = overridden || ICD_DIRS.iter().any(|d| has_json(Path::new(d)));
    let loader = LOADERS.iter().any(|l| Path::new(l).exists());
    icd && loader
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    status(&mut cmd)
}

/// Makes sure the wgpu tests have a Vulkan driver: under `CI=true` on Linux a missing
/// one is installed (CI must test wgpu, so its tests fail rather than skip without one);
/// elsewhere this only says how to install it.
pub fn ensure() -> Result<(), String> {
    if present() {
        return Ok(());
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let apt = Path::new("/usr/bin/apt-get").exists();
    if !ci || !cfg!(target_os = "linux") || !apt {
        eprintln!(
            "note: no Vulkan driver found, so the wgpu tests will print SKIPPED. For software \
             Vulkan (llvmpipe, correctness only): `{INSTALL}`"
        );
        return Ok(());
    }
    println!(
        "CI=true and no Vulkan driver: installing mesa-vulkan-drivers (software Vulkan, \
         llvmpipe) so the wgpu tests run"
    );
    apt_get(&["update", "-qq"])?;
    apt_get(&["install", "-y", "-qq", "mesa-vulkan-drivers", "libvulkan1"])?;
    if !present() {
        return Err(format!(
            "installed mesa-vulkan-drivers but still found no Vulkan driver in {ICD_DIRS:?}"
        ));
    }
    Ok(())
}
