//! Name patterns of storage grants: an exact name, or `prefix*`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::error::PatternError;

/// The longest storage name (and pattern prefix) accepted, in bytes: the
/// same limit as mini's engine, a file name limit on common file systems.
pub const MAX_NAME_LEN: usize = 255;

/// What a module may open of one kind of storage: an exact name (`jobs`),
/// every name starting with a prefix (`audit-*`), or every name (`*`).
///
/// The name or prefix must be a valid mini name: at most 255 bytes, not
/// starting with `.`, without `/`, `\`, `:`, NUL or control characters, and
/// with no `*` except one at the very end. Only the bare `*` may have an
/// empty prefix.
///
/// ```
/// use mini_manifest::NamePattern;
/// let audit: NamePattern = "audit-*".parse()?;
/// assert!(audit.matches("audit-2025"));
/// assert!(!audit.matches("jobs"));
/// assert_eq!(audit.to_string(), "audit-*");
/// assert!("a*b".parse::<NamePattern>().is_err());
/// # Ok::<(), mini_manifest::PatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamePattern {
    /// The exact name, or the prefix before the `*`.
    text: String,
    /// Whether the pattern ended with `*`.
    prefix: bool,
}

impl NamePattern {
    /// Parses a pattern (the same as [`str::parse`]).
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        let (text, prefix) = match pattern.strip_suffix('*') {
            Some(text) => (text, true),
            None => (pattern, false),
        };
        if text.len() > MAX_NAME_LEN {
            return Err(PatternError::TooLong {
                pattern: pattern.to_string(),
                len: text.len(),
            });
        }
        if text.starts_with('.') {
            return Err(PatternError::LeadingDot(pattern.to_string()));
        }
        if text.contains('*') {
            return Err(PatternError::MisplacedStar(pattern.to_string()));
        }
        if let Some(ch) = text
            .chars()
            .find(|&c| matches!(c, '/' | '\\' | ':') || c.is_control())
        {
            return Err(PatternError::ForbiddenChar {
                pattern: pattern.to_string(),
                ch,
            });
        }
        Ok(NamePattern {
            text: text.to_string(),
            prefix,
        })
    }

    /// The pattern that grants every name (`*`).
    pub fn any() -> Self {
        NamePattern {
            text: String::new(),
            prefix: true,
        }
    }

    /// Whether `name` is granted by this pattern. This is plain string
    /// matching: whether `name` itself is a valid name is checked where it
    /// is opened.
    pub fn matches(&self, name: &str) -> bool {
        if self.prefix {
            name.starts_with(&self.text)
        } else {
            name == self.text
        }
    }

    /// The name, if this pattern grants exactly one name.
    pub fn as_exact(&self) -> Option<&str> {
        (!self.prefix).then_some(self.text.as_str())
    }

    /// The prefix, if this is a `prefix*` pattern (`""` for `*`).
    pub fn as_prefix(&self) -> Option<&str> {
        self.prefix.then_some(self.text.as_str())
    }
}

impl FromStr for NamePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NamePattern::parse(s)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;
        impl de::Visitor<'_> for PatternVisitor {
            type Value = NamePattern;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name pattern: an exact name, \"prefix*\" or \"*\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NamePattern, E> {
                NamePattern::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(PatternVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NamePattern {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn exact_names_match_only_themselves() {
        let jobs = p("jobs");
        assert!(jobs.matches("jobs"));
        assert!(!jobs.matches("jobs2"));
        assert!(!jobs.matches("job"));
        assert!(!jobs.matches(""));
        assert_eq!(jobs.as_exact(), Some("jobs"));
        assert_eq!(jobs.as_prefix(), None);
    }

    #[test]
    fn prefixes_match_names_that_start_with_them() {
        let audit = p("audit-*");
        assert!(audit.matches("audit-"));
        assert!(audit.matches("audit-2025-01"));
        assert!(!audit.matches("audit"));
        assert!(!audit.matches("my-audit-x"));
        assert_eq!(audit.as_prefix(), Some("audit-"));
        assert_eq!(audit.as_exact(), None);
    }

    #[test]
    fn star_matches_everything() {
        let all = p("*");
        assert_eq!(all, NamePattern::any());
        for name in ["jobs", "audit-1", "x", ""] {
            assert!(all.matches(name));
        }
        assert_eq!(all.as_prefix(), Some(""));
    }

    #[test]
    fn display_round_trips() {
        for s in ["jobs", "audit-*", "*", "a b", "état"] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_rule() {
        assert_eq!(NamePattern::parse(""), Err(PatternError::Empty));
        assert_eq!(
            NamePattern::parse("a*b"),
            Err(PatternError::MisplacedStar("a*b".into()))
        );
        assert_eq!(
            NamePattern::parse("**"),
            Err(PatternError::MisplacedStar("**".into()))
        );
        assert_eq!(
            NamePattern::parse("../x"),
            Err(PatternError::LeadingDot("../x".into()))
        );
        assert_eq!(
            NamePattern::parse(".hidden"),
            Err(PatternError::LeadingDot(".hidden".into()))
        );
        assert_eq!(
            NamePattern::parse(".*"),
            Err(PatternError::LeadingDot(".*".into()))
        );
        for (bad, ch) in [
            ("a/b", '/'),
            ("a\\b", '\\'),
            ("a:b", ':'),
            ("a\0", '\0'),
            ("x\n*", '\n'),
        ] {
            assert_eq!(
                NamePattern::parse(bad),
                Err(PatternError::ForbiddenChar {
                    pattern: bad.into(),
                    ch
                })
            );
        }
        let long = "a".repeat(256);
        assert!(matches!(
            NamePattern::parse(&long),
            Err(PatternError::TooLong { len: 256, .. })
        ));
        assert!(NamePattern::parse(&"a".repeat(255)).is_ok());
        assert!(NamePattern::parse(&format!("{}*", "a".repeat(255))).is_ok());
        let msg = NamePattern::parse("a*b").unwrap_err().to_string();
        assert!(
            msg.contains("\"a*b\"") && msg.contains("only as its last"),
            "{msg}"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        p: NamePattern,
    }

    #[test]
    fn deserialize_reads_a_string_and_refuses_with_a_clear_message() {
        let h: Holder = toml::from_str(r#"p = "audit-*""#).unwrap();
        assert_eq!(h.p, p("audit-*"));
        let e = toml::from_str::<Holder>(r#"p = "a/b""#).unwrap_err();
        assert!(e.message().contains("forbidden character '/'"), "{e}");
        let e = toml::from_str::<Holder>("p = 3").unwrap_err();
        assert!(e.message().contains("name pattern"), "{e}");
    }
}
