//! Small tmpfs file systems inside a slot's work directory: the data dirs of the `disk-full`
//! nemesis. They belong to the slot like its namespaces, so the sweep unmounts them, also
//! after a run that was killed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use super::NetError;

/// Mounts a fresh tmpfs of `bytes` at `dir` (created if missing), for root only.
pub fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<(), NetError> {
    let io_error = |action, source| NetError::Io {
        action,
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| io_error("creating", e))?;
    let options = std::ffi::CString::new(format!("size={bytes},mode=0700"))
        .map_err(|e| io_error("mounting", io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    mount(
        "starling-jepsen",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        options.as_c_str(),
    )
    .map_err(|e| io_error("mounting a tmpfs on", io::Error::from(e)))
}

/// The mount points strictly below `dir` in a `/proc/self/mounts` listing, deepest first (the
/// order to unmount them in).
pub(super) fn mounts_below(listing: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|point| point != dir && point.starts_with(dir))
        .collect();
    found.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    found.dedup();
    found
}

/// The kernel writes spaces, tabs, newlines and backslashes in mount points as octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The mount points below `dir` now.
pub(super) fn current_mounts_below(dir: &Path) -> Result<Vec<PathBuf>, NetError> {
    let path = Path::new("/proc/self/mounts");
    let listing = fs::read_to_string(path).map_err(|source| NetError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    Ok(mounts_below(&listing, dir))
}

/// Unmounts everything below `dir`. Lazily: a node's mount namespace (from `ip netns exec`)
/// may still hold a copy for a moment after the node died, and the sweep must not stall.
pub(super) fn unmount_below(dir: &Path) -> Result<(), NetError> {
    for point in current_mounts_below(dir)? {
        match unmount(&point, UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(NetError::Io {
                    action: "unmounting",
                    path: point,
                    source: io::Error::from(e),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mounts_below_a_work_dir_deepest_first() {
        let listing = "proc /proc proc rw 0 0\n\
                       tmpfs /tmp tmpfs rw 0 0\n\
                       starling-jepsen /tmp/starling-jepsen/slot-3/n1.data tmpfs rw 0 0\n\
                       starling-jepsen /tmp/starling-jepsen/slot-3/n1.data/inner tmpfs rw 0 0\n\
                       starling-jepsen /tmp/starling-jepsen/slot-33/n1.data tmpfs rw 0 0\n\
                       starling-jepsen /tmp/starling-jepsen/slot-3/with\\040space tmpfs rw 0 0\n";
        let dir = Path::new("/tmp/starling-jepsen/slot-3");
        assert_eq!(
            mounts_below(listing, dir),
            [
                PathBuf::from("/tmp/starling-jepsen/slot-3/n1.data/inner"),
                PathBuf::from("/tmp/starling-jepsen/slot-3/n1.data"),
                PathBuf::from("/tmp/starling-jepsen/slot-3/with space"),
            ]
        );
        assert!(mounts_below(listing, Path::new("/tmp/starling-jepsen/slot-4")).is_empty());
        assert_eq!(unescape(r"a\134b\0"), r"a\b\0");
    }
}
