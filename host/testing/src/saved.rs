//! Copies of a sandbox's data directory: what an exploration restores
//! before each crash point.
//!
//! Only directories and regular files are copied (the engine makes
//! nothing else); lock files are copied as the empty files they are, and
//! no lock is held between runs.

use std::io;
use std::path::Path;

/// Copies the contents of `from` into `to` (created if missing).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Removes everything inside `dir`, keeping `dir`.
pub(crate) fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_tree_is_the_saved_one_and_nothing_else() {
        let root = tempfile::tempdir().expect("temp dir");
        let saved = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("ns/journal/j")).expect("dirs");
        std::fs::write(root.path().join("ns/journal/j/seg"), b"one").expect("write");
        copy_tree(root.path(), saved.path()).expect("saved");

        std::fs::write(root.path().join("ns/journal/j/seg"), b"changed").expect("write");
        std::fs::write(root.path().join("ns/new"), b"new").expect("write");
        clear_dir(root.path()).expect("cleared");
        copy_tree(saved.path(), root.path()).expect("restored");

        let seg = std::fs::read(root.path().join("ns/journal/j/seg")).expect("read");
        assert_eq!(seg, b"one");
        assert!(!root.path().join("ns/new").exists());
    }
}
