//! The errors of this crate: each names the rule that was broken and, when
//! the text came from a file, the file.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a module id (`name@version`), a module name or a version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleIdError {
    /// The text has no `@` between the name and the version.
    #[error("module id {0:?} must be name@version, e.g. \"logger@1.0.0\"")]
    MissingAt(String),
    /// The name is empty.
    #[error("module name must not be empty")]
    EmptyName,
    /// The name is longer than [`MAX_MODULE_NAME_LEN`](crate::MAX_MODULE_NAME_LEN).
    #[error("module name is {0} characters long; it may be at most 128 characters")]
    NameTooLong(usize),
    /// The name has a character other than an ASCII letter, digit, `-` or `_`.
    #[error("name {0:?} may contain only ASCII letters, digits, '-' and '_'")]
    InvalidNameChar(String),
    /// The version is not three dot-separated decimal numbers.
    #[error(
        "version {0:?} must be three numbers major.minor.patch \
         (no pre-release or build metadata)"
    )]
    VersionShape(String),
    /// A part of the version starts with `0` but is not `0` itself.
    #[error(
        "version {version:?} has a leading zero in {part:?}; only \"0\" itself may start with 0"
    )]
    LeadingZero {
        /// The whole version.
        version: String,
        /// The offending part.
        part: String,
    },
    /// A part of the version does not fit in a `u64`.
    #[error("version {version:?}: {part} does not fit in 64 bits")]
    VersionTooLarge {
        /// The whole version.
        version: String,
        /// The offending part.
        part: String,
    },
}

/// Why a storage name pattern (`name` or `prefix*`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("name pattern is empty; write \"*\" to grant every name")]
    Empty,
    /// The name or prefix is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    #[error("name pattern {pattern:?} is {len} bytes long; a name is at most 255 bytes")]
    TooLong {
        /// The refused pattern.
        pattern: String,
        /// Length of the name or prefix in bytes.
        len: usize,
    },
    /// The name or prefix starts with `.` (kept for the engine's own files).
    #[error("name pattern {0:?} must not start with '.'")]
    LeadingDot(String),
    /// A path separator, `:`, NUL or a control character.
    #[error("name pattern {pattern:?} contains the forbidden character {ch:?}")]
    ForbiddenChar {
        /// The refused pattern.
        pattern: String,
        /// The first forbidden character.
        ch: char,
    },
    /// A `*` somewhere else than at the very end.
    #[error("name pattern {0:?} may have '*' only as its last character")]
    MisplacedStar(String),
}

/// Why a `shared_queues` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedQueueError {
    /// The queue name is not a valid name.
    #[error("shared queue name: {0}")]
    Name(#[source] PatternError),
    /// The queue name is a `prefix*` pattern; a shared queue is granted by its exact name.
    #[error("shared queue name {0:?} must be an exact name, without '*'")]
    NotExact(String),
    /// The owning module is not a valid module name.
    #[error("shared queue module: {0}")]
    Module(#[source] ModuleIdError),
}

/// Why a component manifest or a deployment spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, a table or field has the wrong shape, or
    /// a value broke a rule checked while reading it (an unknown field in
    /// mini's storage table, a bad name pattern or module id, ...). The
    /// message gives the line and column when known.
    #[error("{}{message}", At(path))]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// What is wrong, and where.
        message: String,
    },
    /// The `[component]` table's `name` and `version` are not a valid module id.
    #[error("{}[component] name and version: {source}", At(path))]
    InvalidId {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The broken rule.
        source: ModuleIdError,
    },
    /// A value is well formed but out of range (e.g. `replicas = 0`).
    #[error("{}{message}", At(path))]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The field and the broken rule.
        message: String,
    },
}

impl ManifestError {
    /// The file the error is about, if the text came from a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ManifestError::Io { path, .. } => Some(path),
            ManifestError::Parse { path, .. }
            | ManifestError::InvalidId { path, .. }
            | ManifestError::Invalid { path, .. } => path.as_deref(),
        }
    }

    /// Records the file the text came from.
    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        match &mut self {
            ManifestError::Io { .. } => {}
            ManifestError::Parse { path, .. }
            | ManifestError::InvalidId { path, .. }
            | ManifestError::Invalid { path, .. } => *path = Some(file.to_path_buf()),
        }
        self
    }

    /// Turns a TOML error into a [`ManifestError::Parse`] with line and column.
    pub(crate) fn from_toml(err: &toml::de::Error, text: &str) -> Self {
        let message = match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}: {}", err.message().trim_end())
            }
            None => err.message().trim_end().to_string(),
        };
        ManifestError::Parse {
            path: None,
            message,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            path: None,
            message: message.into(),
        }
    }

    pub(crate) fn parse(message: impl Into<String>) -> Self {
        ManifestError::Parse {
            path: None,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Displays `"<path>: "` when there is a path, nothing otherwise.
struct At<'a>(&'a Option<PathBuf>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "{}: ", path.display()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a\nbc\nd";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 2));
        assert_eq!(line_column(text, 5), (3, 1));
        assert_eq!(line_column(text, 99), (3, 2));
    }

    #[test]
    fn display_names_the_file() {
        let err = ManifestError::invalid("deployment.replicas must be at least 1")
            .in_file(Path::new("web.deployment.toml"));
        assert_eq!(
            err.to_string(),
            "web.deployment.toml: deployment.replicas must be at least 1"
        );
        assert_eq!(err.path(), Some(Path::new("web.deployment.toml")));
    }
}
