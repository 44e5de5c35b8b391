//! A deterministic cpio "newc" writer: the format the kernel unpacks into
//! its initial rootfs.
//!
//! Pure: entries in, bytes out. Timestamps are 0, owners root, inode numbers
//! count up in path order, so the same entries always give the same bytes
//! (the image cache and reproducibility depend on it). Missing parent
//! directories are added, and entries are written parents first.

use std::collections::BTreeMap;

/// What one path in the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    /// A character device, e.g. `/dev/console` (5, 1): the kernel opens it for
    /// init's stdio before anything could create it.
    CharDevice {
        mode: u32,
        major: u32,
        minor: u32,
    },
}

/// An archive being assembled: paths (absolute or relative, `/` separated)
/// to nodes. Later inserts of the same path replace earlier ones.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    entries: BTreeMap<String, Node>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const TRAILER: &str = "TRAILER!!!";

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.insert(path, Node::Dir { mode })
    }

    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        self.insert(
            path,
            Node::File {
                mode,
                data: data.into(),
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        )
    }

    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.insert(path, Node::CharDevice { mode, major, minor })
    }

    pub fn insert(&mut self, path: &str, node: Node) -> &mut Self {
        let path = normalize(path);
        if !path.is_empty() {
            self.entries.insert(path, node);
        }
        self
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The archive as cpio newc bytes, ending with the trailer and padded to 512.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Implicit parents (0755 directories) for every path that lacks one.
        let mut all = self.entries.clone();
        for path in self.entries.keys() {
            let mut parent = path.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                all.entry(up.to_string())
                    .or_insert(Node::Dir { mode: 0o755 });
                parent = up;
            }
        }
        // Sorting by path components puts every directory before its contents.
        let mut paths: Vec<&String> = all.keys().collect();
        paths.sort_by(|a, b| a.split('/').cmp(b.split('/')));

        let mut out = Vec::new();
        for (index, path) in paths.into_iter().enumerate() {
            let ino = index as u32 + 1;
            let header = match &all[path] {
                Node::Dir { mode } => Header::new(ino, S_IFDIR | mode, 2, 0),
                Node::File { mode, data } => Header::new(ino, S_IFREG | mode, 1, data.len()),
                Node::Symlink { target } => Header::new(ino, S_IFLNK | 0o777, 1, target.len()),
                Node::CharDevice { mode, major, minor } => Header {
                    rdev: (*major, *minor),
                    ..Header::new(ino, S_IFCHR | mode, 1, 0)
                },
            };
            let body: &[u8] = match &all[path] {
                Node::File { data, .. } => data,
                Node::Symlink { target } => target.as_bytes(),
                Node::Dir { .. } | Node::CharDevice { .. } => &[],
            };
            header.write(path, &mut out);
            out.extend_from_slice(body);
            pad(&mut out, 4);
        }
        Header::new(0, 0, 1, 0).write(TRAILER, &mut out);
        pad(&mut out, 512);
        out
    }
}

/// `./a//b/` → `a/b`: cpio paths are relative to the root.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
}

impl Header {
    fn new(ino: u32, mode: u32, nlink: u32, size: usize) -> Self {
        Header {
            ino,
            mode,
            nlink,
            size,
            rdev: (0, 0),
        }
    }

    fn write(&self, name: &str, out: &mut Vec<u8>) {
        let fields = [
            self.ino,
            self.mode,
            0, // uid
            0, // gid
            self.nlink,
            0, // mtime
            self.size as u32,
            0, // devmajor
            0, // devminor
            self.rdev.0,
            self.rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad(out, 4);
    }
}

fn pad(out: &mut Vec<u8>, to: usize) {
    while out.len() % to != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sample() -> Archive {
        let mut archive = Archive::new();
        archive
            .file("/bin/busybox", 0o755, b"\x7fELF".to_vec())
            .symlink("/bin/sh", "busybox")
            .file("/init", 0o755, b"#!/bin/sh\n".to_vec())
            .char_device("/dev/console", 0o600, 5, 1)
            .dir("/root", 0o700);
        archive
    }

    #[test]
    fn same_entries_give_same_bytes_whatever_the_insert_order() {
        let mut reversed = Archive::new();
        reversed
            .dir("root", 0o700)
            .char_device("dev/console", 0o600, 5, 1)
            .file("./init", 0o755, b"#!/bin/sh\n".to_vec())
            .symlink("bin/sh", "busybox")
            .file("bin//busybox", 0o755, b"\x7fELF".to_vec());
        assert_eq!(sample().to_bytes(), reversed.to_bytes());
    }

    #[test]
    fn layout_is_newc_with_parents_first_and_a_trailer() {
        let bytes = sample().to_bytes();
        assert_eq!(bytes.len() % 512, 0);
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        let bin = text.find("bin\0").unwrap();
        let busybox = text.find("bin/busybox\0").unwrap();
        assert!(bin < busybox, "parent directory must come first");
        assert!(text.contains("TRAILER!!!\0"));
    }

    /// The system's cpio must read back what we wrote, with modes and links intact.
    #[test]
    fn system_cpio_lists_the_archive() {
        let bytes = sample().to_bytes();
        let mut child = match Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "cpio missing: {err}");
                eprintln!("skipping: cpio not installed ({err})");
                return;
            }
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 7, "{listing}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("bin/busybox")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("bin/sh -> busybox")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("crw-------") && l.ends_with("dev/console")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("drwx------") && l.ends_with("root")));
    }
}
