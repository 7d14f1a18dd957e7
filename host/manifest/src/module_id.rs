//! Module identity in Arcella's model: `name@version`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ModuleIdError;

/// The longest module name accepted, in characters.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// Checks a module name: 1 to 128 characters, each an ASCII letter, digit,
/// `-` or `_` (Arcella's `^[a-zA-Z0-9_-]+$`).
///
/// ```
/// use mini_manifest::validate_module_name;
/// assert!(validate_module_name("http_logger-2").is_ok());
/// assert!(validate_module_name("a b").is_err());
/// ```
pub fn validate_module_name(name: &str) -> Result<(), ModuleIdError> {
    if name.is_empty() {
        return Err(ModuleIdError::EmptyName);
    }
    let len = name.chars().count();
    if len > MAX_MODULE_NAME_LEN {
        return Err(ModuleIdError::NameTooLong(len));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ModuleIdError::InvalidNameChar(name.to_string()));
    }
    Ok(())
}

/// A strict `major.minor.patch` version: three decimal numbers, no leading
/// zeros (except `0` itself), no pre-release, no build metadata.
///
/// Versions order by major, then minor, then patch.
///
/// ```
/// use mini_manifest::Version;
/// let v: Version = "1.20.3".parse()?;
/// assert_eq!((v.major, v.minor, v.patch), (1, 20, 3));
/// assert!("1.2".parse::<Version>().is_err());
/// # Ok::<(), mini_manifest::ModuleIdError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Compatible additions.
    pub minor: u64,
    /// Compatible fixes.
    pub patch: u64,
}

impl Version {
    /// A version from its three numbers.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl FromStr for Version {
    type Err = ModuleIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || ModuleIdError::VersionShape(s.to_string());
        let mut numbers = [0u64; 3];
        let mut parts = s.split('.');
        for number in &mut numbers {
            let part = parts.next().ok_or_else(shape)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(shape());
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(ModuleIdError::LeadingZero {
                    version: s.to_string(),
                    part: part.to_string(),
                });
            }
            *number = part.parse().map_err(|_| ModuleIdError::VersionTooLarge {
                version: s.to_string(),
                part: part.to_string(),
            })?;
        }
        if parts.next().is_some() {
            return Err(shape());
        }
        let [major, minor, patch] = numbers;
        Ok(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// The identity of a module: `name@version`, e.g. `logger@1.0.0`.
///
/// The name is also the module's storage namespace, so a new version of a
/// module opens the data the old one wrote.
///
/// Serialized as the string `"name@version"`; deserialized from that string
/// or from a table `{ name = "...", version = "..." }`.
///
/// ```
/// use mini_manifest::ModuleId;
/// let id: ModuleId = "logger@1.0.0".parse()?;
/// assert_eq!(id.name(), "logger");
/// assert_eq!(id.version().to_string(), "1.0.0");
/// assert_eq!(id, ModuleId::new("logger", "1.0.0")?);
/// assert_eq!(id.to_string(), "logger@1.0.0");
/// # Ok::<(), mini_manifest::ModuleIdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId {
    name: String,
    version: Version,
}

impl ModuleId {
    /// Validates `name` (see [`validate_module_name`]) and parses `version`
    /// (see [`Version`]).
    pub fn new(name: impl Into<String>, version: &str) -> Result<Self, ModuleIdError> {
        let name = name.into();
        validate_module_name(&name)?;
        let version = version.parse()?;
        Ok(ModuleId { name, version })
    }

    /// A module id from a name and an already parsed version.
    pub fn with_version(name: impl Into<String>, version: Version) -> Result<Self, ModuleIdError> {
        let name = name.into();
        validate_module_name(&name)?;
        Ok(ModuleId { name, version })
    }

    /// The module's name (its storage namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module's version.
    pub fn version(&self) -> &Version {
        &self.version
    }
}

impl FromStr for ModuleId {
    type Err = ModuleIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = s
            .split_once('@')
            .ok_or_else(|| ModuleIdError::MissingAt(s.to_string()))?;
        ModuleId::new(name, version)
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl Serialize for ModuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ModuleIdVisitor)
    }
}

struct ModuleIdVisitor;

impl<'de> Visitor<'de> for ModuleIdVisitor {
    type Value = ModuleId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a module id \"name@version\" or a table { name, version }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ModuleId, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModuleId, A::Error> {
        let mut name: Option<String> = None;
        let mut version: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "version" => version = Some(map.next_value()?),
                // Arcella ignores other keys; so do we.
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
        ModuleId::new(name, &version).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        match s.parse::<ModuleId>() {
            Ok(id) => panic!("{s:?} parsed as {id}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn valid_ids_parse_and_display_round_trip() {
        for s in [
            "logger@1.0.0",
            "a@0.0.1",
            "test-1@9.9.9",
            "x@10.200.3",
            "A_b-9@0.10.0",
        ] {
            let id: ModuleId = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.to_string(), s);
            assert_eq!(id.to_string().parse::<ModuleId>().unwrap(), id);
        }
        let id: ModuleId = "x@10.200.3".parse().unwrap();
        assert_eq!(id.name(), "x");
        assert_eq!(*id.version(), Version::new(10, 200, 3));
        let max = format!("{}@1.0.0", "n".repeat(128));
        assert!(max.parse::<ModuleId>().is_ok());
        let big = format!("a@{}.0.0", u64::MAX);
        assert_eq!(big.parse::<ModuleId>().unwrap().version().major, u64::MAX);
    }

    #[test]
    fn each_broken_rule_is_named() {
        assert_eq!(
            err("a@1.2"),
            "version \"1.2\" must be three numbers major.minor.patch \
             (no pre-release or build metadata)"
        );
        assert!(
            err("a@01.2.3").contains("leading zero"),
            "{}",
            err("a@01.2.3")
        );
        assert!(err("a@1.02.3").contains("leading zero"));
        assert_eq!(
            err("a b@1.0.0"),
            "name \"a b\" may contain only ASCII letters, digits, '-' and '_'"
        );
        let long = format!("{}@1.0.0", "n".repeat(129));
        assert!(
            err(&long).contains("at most 128 characters"),
            "{}",
            err(&long)
        );
        assert!(err("logger").contains("must be name@version"));
        assert!(err("@1.0.0").contains("must not be empty"));
        for shape in [
            "a@1.0.0.0",
            "a@1.0.0-alpha",
            "a@1.0.0+build",
            "a@1..0",
            "a@",
            "a@v1.0.0",
        ] {
            assert!(err(shape).contains("must be three numbers"), "{shape}");
        }
        assert!(err("a@1.0.99999999999999999999").contains("does not fit in 64 bits"));
        assert!(err("bad@@version").contains("must be three numbers"));
        assert!(err("é@1.0.0").contains("may contain only ASCII"));
    }

    #[test]
    fn new_checks_both_parts() {
        assert!(ModuleId::new("logger", "1.0.0").is_ok());
        assert_eq!(
            ModuleId::new("", "1.0.0").unwrap_err(),
            ModuleIdError::EmptyName
        );
        assert!(matches!(
            ModuleId::new("logger", "1.0").unwrap_err(),
            ModuleIdError::VersionShape(_)
        ));
        assert!(ModuleId::with_version("a:b", Version::new(1, 0, 0)).is_err());
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("2.0.0") > v("1.99.99"));
        assert_eq!(v("0.0.0"), Version::new(0, 0, 0));
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Holder {
        module_id: ModuleId,
    }

    #[test]
    fn serde_reads_string_and_table_and_writes_string() {
        let from_string: Holder = toml::from_str(r#"module_id = "logger@1.2.3""#).unwrap();
        let from_table: Holder =
            toml::from_str(r#"module_id = { name = "logger", version = "1.2.3" }"#).unwrap();
        assert_eq!(from_string, from_table);
        assert_eq!(from_string.module_id.to_string(), "logger@1.2.3");

        let from_subtable: Holder =
            toml::from_str("[module_id]\nname = \"logger\"\nversion = \"1.2.3\"\n").unwrap();
        assert_eq!(from_subtable, from_string);

        let written = toml::to_string(&from_table).unwrap();
        assert_eq!(written.trim(), r#"module_id = "logger@1.2.3""#);
    }

    #[test]
    fn serde_refusals_keep_the_rule() {
        let e = toml::from_str::<Holder>(r#"module_id = "logger@1.2""#).unwrap_err();
        assert!(e.message().contains("must be three numbers"), "{e}");
        let e = toml::from_str::<Holder>(r#"module_id = { name = "a b", version = "1.0.0" }"#)
            .unwrap_err();
        assert!(e.message().contains("may contain only ASCII"), "{e}");
        let e = toml::from_str::<Holder>(r#"module_id = { name = "a" }"#).unwrap_err();
        assert!(e.message().contains("version"), "{e}");
        let e = toml::from_str::<Holder>("module_id = 3").unwrap_err();
        assert!(e.message().contains("name@version"), "{e}");
    }
}
