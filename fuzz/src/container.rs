//! Several files in one fuzz input.
//!
//! ```text
//! <preamble><MARK>name-1\n<bytes of file 1><MARK>name-2\n<bytes of file 2>…
//! ```
//!
//! [`MARK`] starts with bytes that are not UTF-8, so nothing the engine
//! writes (JSON text, NUL padding) contains it: a seed made of real files
//! splits back into exactly those files. A mutated input splits somewhere
//! else, which is fine: it is just other files. A name that is not a plain
//! file name (see [`file_name`]) drops its file.

/// What starts each file of a container.
pub const MARK: &[u8] = b"\xff\xfeFILE ";

/// One file of a container: its name as written, and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The name, up to the newline after the mark.
    pub name: &'a [u8],
    /// Everything up to the next mark or the end of the input.
    pub bytes: &'a [u8],
}

/// Splits `data` into what comes before the first mark and the files.
pub fn split(data: &[u8]) -> (&[u8], Vec<Part<'_>>) {
    let marks: Vec<usize> = (0..data.len())
        .filter(|&i| data[i..].starts_with(MARK))
        .collect();
    let preamble = &data[..marks.first().copied().unwrap_or(data.len())];
    let mut parts = Vec::with_capacity(marks.len());
    for (k, &at) in marks.iter().enumerate() {
        let end = marks.get(k + 1).copied().unwrap_or(data.len());
        let body = &data[at + MARK.len()..end];
        let (name, bytes) = match body.iter().position(|&b| b == b'\n') {
            Some(nl) => (&body[..nl], &body[nl + 1..]),
            None => (body, &body[body.len()..]),
        };
        parts.push(Part { name, bytes });
    }
    (preamble, parts)
}

/// Packs files into a container (the inverse of [`split`]).
pub fn join(preamble: &[u8], files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = preamble.to_vec();
    for (name, bytes) in files {
        out.extend_from_slice(MARK);
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes);
    }
    out
}

/// `name` if it is a plain file name: 1 to 255 bytes of ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`. Anything else could leave
/// the scratch directory or name a directory the harness needs.
pub fn file_name(name: &[u8]) -> Option<&str> {
    let ok = (1..=255).contains(&name.len())
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != b"."
        && name != b"..";
    if ok {
        std::str::from_utf8(name).ok()
    } else {
        None
    }
}

/// `name` split into one of `dirs` and a plain file name in it
/// (`journal/00000000000000000001.jsonl`).
pub fn file_in<'a>(name: &'a [u8], dirs: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let slash = name.iter().position(|&b| b == b'/')?;
    let dir = std::str::from_utf8(&name[..slash]).ok()?;
    let dir = dirs.iter().copied().find(|d| *d == dir)?;
    Some((dir, file_name(&name[slash + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_split_are_inverse() {
        let files = vec![
            ("a.jsonl".to_owned(), b"{\"x\":1}\n\0\0".to_vec()),
            ("b".to_owned(), Vec::new()),
        ];
        let data = join(b"123", &files);
        let (preamble, parts) = split(&data);
        assert_eq!(preamble, b"123");
        let back: Vec<(String, Vec<u8>)> = parts
            .iter()
            .map(|p| {
                (
                    String::from_utf8(p.name.to_vec()).unwrap(),
                    p.bytes.to_vec(),
                )
            })
            .collect();
        assert_eq!(back, files);
    }

    #[test]
    fn only_plain_names_pass() {
        assert_eq!(file_name(b"snapshot-1.json"), Some("snapshot-1.json"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0", b"\xff"] {
            assert_eq!(file_name(bad), None, "{bad:?}");
        }
        assert_eq!(
            file_in(b"journal/1.jsonl", &["journal", "snapshots"]),
            Some(("journal", "1.jsonl"))
        );
        assert_eq!(file_in(b"other/1.jsonl", &["journal"]), None);
        assert_eq!(file_in(b"journal/../x", &["journal"]), None);
    }
}
