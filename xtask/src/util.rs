use std::path::PathBuf;
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, echoing it, and turns a non-zero exit into an error naming it.
pub fn status(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {}", render(cmd));
    let st = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", render(cmd)))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {st}", render(cmd)))
    }
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
