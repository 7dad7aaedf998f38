//! What Lambda checks of a deployment package, checked first: the zip's
//! unzipped size, that the entry point the function names is in it, and
//! that a `bootstrap` was built for the function's architecture.
//!
//! Pure: it reads the zip's end (its central directory) and the start of
//! one entry, both fetched by [`crate::aws::code`] with ranged reads, so an
//! object of hundreds of MB is never held.

use std::fmt;

/// Lambda's limit on a function's unzipped code (and layers), bytes.
pub const UNZIPPED_LIMIT: u64 = 262_144_000;

/// How many bytes of the zip's end hold its end record even with the
/// longest comment a zip may carry.
pub const TAIL: u64 = 22 + 65_535;

/// One file of a zip, from the central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the zip.
    pub name: String,
    /// Compression method (0 stored, 8 deflated).
    pub method: u16,
    /// Compressed size.
    pub compressed: u64,
    /// Unzipped size.
    pub size: u64,
    /// Offset of its local header.
    pub offset: u64,
}

/// Where the central directory is: offset and length.
pub fn central_directory(tail: &[u8], object_size: u64) -> Result<(u64, u64), String> {
    let at = (0..=tail.len().saturating_sub(22))
        .rev()
        .find(|&i| tail[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or("not a zip file (no end of central directory record)")?;
    let end = &tail[at..];
    let size = u64::from(u32_at(end, 12));
    let offset = u64::from(u32_at(end, 16));
    if size == u64::from(u32::MAX) || offset == u64::from(u32::MAX) {
        return Err("a ZIP64 archive (over 4 GiB), far beyond what Lambda takes".into());
    }
    if offset + size > object_size {
        return Err("a damaged zip (its central directory lies past its end)".into());
    }
    Ok((offset, size))
}

/// The entries of a central directory.
pub fn entries(directory: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 46 <= directory.len() {
        let d = &directory[at..];
        if !d.starts_with(&[0x50, 0x4b, 0x01, 0x02]) {
            return Err("a damaged zip (bad central directory entry)".into());
        }
        let name_len = usize::from(u16_at(d, 28));
        let extra_len = usize::from(u16_at(d, 30));
        let comment_len = usize::from(u16_at(d, 32));
        let name = d
            .get(46..46 + name_len)
            .ok_or("a damaged zip (truncated central directory)")?;
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method: u16_at(d, 10),
            compressed: u64::from(u32_at(d, 20)),
            size: u64::from(u32_at(d, 24)),
            offset: u64::from(u32_at(d, 42)),
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// Where an entry's data starts, from its local header (`header`: at least
/// the 30 fixed bytes of it).
pub fn data_offset(entry: &Entry, header: &[u8]) -> Result<u64, String> {
    if header.len() < 30 || !header.starts_with(&[0x50, 0x4b, 0x03, 0x04]) {
        return Err(format!(
            "a damaged zip (bad local header of {})",
            entry.name
        ));
    }
    Ok(entry.offset + 30 + u64::from(u16_at(header, 26)) + u64::from(u16_at(header, 28)))
}

/// The first bytes of an entry's content from the start of its data.
pub fn first_bytes(entry: &Entry, data: &[u8], want: usize) -> Result<Vec<u8>, String> {
    match entry.method {
        0 => Ok(data[..data.len().min(want)].to_vec()),
        8 => match miniz_oxide::inflate::decompress_to_vec_with_limit(data, want) {
            Ok(out) => Ok(out),
            // More output than asked for: what it made so far is enough.
            Err(e) if e.output.len() >= want.min(entry.size as usize) => {
                Ok(e.output[..want.min(e.output.len())].to_vec())
            }
            Err(e) => Err(format!("{} cannot be inflated: {e}", entry.name)),
        },
        m => Err(format!(
            "{} uses compression method {m}; Lambda takes stored or deflated files",
            entry.name
        )),
    }
}

/// An executable's instruction set, from its ELF header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// x86-64 (`e_machine` 62).
    X86_64,
    /// AArch64 (`e_machine` 183).
    Arm64,
    /// Another.
    Other(u16),
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Arm64 => f.write_str("arm64"),
            Machine::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

/// The instruction set of an ELF executable, or `None` when `head` is not
/// the start of a 64-bit little-endian ELF file (a script, say, which
/// runs on any architecture).
pub fn elf_machine(head: &[u8]) -> Option<Machine> {
    if head.len() < 20 || !head.starts_with(b"\x7fELF") || head[4] != 2 || head[5] != 1 {
        return None;
    }
    Some(match u16_at(head, 18) {
        62 => Machine::X86_64,
        183 => Machine::Arm64,
        m => Machine::Other(m),
    })
}

/// The files the runtime would look for to start `handler` (any one of
/// them will do): none to
/// check for `provided.*` (it starts `bootstrap`, checked apart);
/// `module.py` for Python's `module.function`; `file.js`, `.mjs` or
/// `.cjs` for Node's `file.function`.
pub fn entry_point_files(runtime: &str, handler: &str) -> Vec<String> {
    let Some((module, _function)) = handler.rsplit_once('.') else {
        return Vec::new();
    };
    if runtime.starts_with("python") {
        let path = module.replace('.', "/");
        vec![format!("{path}.py"), format!("{path}/__init__.py")]
    } else if runtime.starts_with("nodejs") {
        ["js", "mjs", "cjs"]
            .iter()
            .map(|ext| format!("{module}.{ext}"))
            .collect()
    } else {
        Vec::new()
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zip of `files` (name, content, deflated?), as a zip tool writes it.
    pub(crate) fn zip(files: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for (name, content, deflate) in files {
            let data = if *deflate {
                miniz_oxide::deflate::compress_to_vec(content, 6)
            } else {
                content.to_vec()
            };
            let method: u16 = if *deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 8]); // time, date, crc (unchecked here)
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(content.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&3u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"xyz");
            out.extend_from_slice(&data);
            directory.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 3, 20, 0, 0, 0]);
            directory.extend_from_slice(&method.to_le_bytes());
            directory.extend_from_slice(&[0; 8]);
            directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(content.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 12]);
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let at = out.len() as u32;
        out.extend_from_slice(&directory);
        out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&7u16.to_le_bytes());
        out.extend_from_slice(b"comment");
        out
    }

    /// The first bytes of an ELF executable for `machine`.
    pub(crate) fn elf(machine: u16) -> Vec<u8> {
        let mut head = b"\x7fELF\x02\x01\x01\x00".to_vec();
        head.resize(18, 0);
        head.extend_from_slice(&machine.to_le_bytes());
        head.resize(200, 7);
        head
    }

    fn inspect(zip: &[u8], name: &str) -> (Vec<Entry>, Option<Vec<u8>>) {
        let (offset, size) = central_directory(zip, zip.len() as u64).expect("directory");
        let entries = entries(&zip[offset as usize..(offset + size) as usize]).expect("entries");
        let head = entries.iter().find(|e| e.name == name).map(|e| {
            let start = data_offset(e, &zip[e.offset as usize..]).expect("header") as usize;
            first_bytes(e, &zip[start..start + e.compressed as usize], 64).expect("bytes")
        });
        (entries, head)
    }

    #[test]
    fn the_bootstraps_machine_is_read_whether_stored_or_deflated() {
        for deflate in [false, true] {
            let z = zip(&[
                ("README", b"hello", false),
                ("bootstrap", &elf(183), deflate),
            ]);
            let (entries, head) = inspect(&z, "bootstrap");
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[1].size, 200);
            assert_eq!(elf_machine(&head.expect("bootstrap")), Some(Machine::Arm64));
        }
        assert_eq!(elf_machine(&elf(62)), Some(Machine::X86_64));
        assert_eq!(elf_machine(b"#!/bin/sh\nexec ./app\n"), None);
    }

    #[test]
    fn what_is_not_a_zip_says_so() {
        let err = central_directory(b"just some text, long enough to look for a zip end", 49)
            .expect_err("not a zip");
        assert!(err.contains("not a zip"), "{err}");
    }

    #[test]
    fn entry_points_name_the_file_the_runtime_loads() {
        assert_eq!(
            entry_point_files("python3.12", "pkg.jobs.handler"),
            ["pkg/jobs.py", "pkg/jobs/__init__.py"]
        );
        assert_eq!(
            entry_point_files("nodejs22.x", "index.handler"),
            ["index.js", "index.mjs", "index.cjs"]
        );
        assert!(entry_point_files("provided.al2023", "bootstrap").is_empty());
    }
}
