//! Names of journals and namespaces: they become directory names, so they are
//! checked before they touch the file system.

/// The longest name accepted, in bytes (a file name limit on common file systems).
pub const MAX_NAME_LEN: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name is {0} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    /// The name is `.` or `..`, or starts with a dot (kept for the engine's own files).
    #[error("name must not start with '.'")]
    Dot,
    /// The name contains a path separator, NUL or a control character.
    #[error("name contains the forbidden character {0:?}")]
    ForbiddenChar(char),
}

/// Checks that `name` is usable as one path component that cannot escape its
/// parent directory.
///
/// ```
/// use mini_engine::name::{validate_name, NameError};
/// assert!(validate_name("counter").is_ok());
/// assert_eq!(validate_name("../x"), Err(NameError::Dot));
/// assert_eq!(validate_name("a/b"), Err(NameError::ForbiddenChar('/')));
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name.starts_with('.') {
        return Err(NameError::Dot);
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
    {
        return Err(NameError::ForbiddenChar(c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_bad_name() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("."), Err(NameError::Dot));
        assert_eq!(validate_name(".."), Err(NameError::Dot));
        assert_eq!(validate_name("../x"), Err(NameError::Dot));
        assert_eq!(validate_name("a/b"), Err(NameError::ForbiddenChar('/')));
        assert_eq!(validate_name("a\\b"), Err(NameError::ForbiddenChar('\\')));
        assert_eq!(validate_name("a\0b"), Err(NameError::ForbiddenChar('\0')));
        assert_eq!(validate_name("a\nb"), Err(NameError::ForbiddenChar('\n')));
        assert_eq!(
            validate_name(&"a".repeat(300)),
            Err(NameError::TooLong(300))
        );
        assert!(validate_name(&"a".repeat(255)).is_ok());
        assert!(validate_name("module@1.0.0_x-y").is_ok());
    }
}
