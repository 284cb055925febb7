//! Atomic output directories.
//!
//! A stage writes everything into a hidden sibling of its output directory and
//! renames it into place only when all of it is written, so a reader never sees
//! a partial output, and a failed run leaves the previous output as it was.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// This process's staging directories not yet committed or dropped. A
/// process told to stop (Ctrl-C, SIGTERM) removes them with
/// [`remove_uncommitted`] before it exits, since they may hold raw records.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every staging directory of this process that was neither
/// committed nor dropped; returns how many there were. For a signal handler
/// (which then exits): destructors do not run on a signal.
pub fn remove_uncommitted() -> usize {
    let live = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for path in &live {
        let _ = fs::remove_dir_all(path);
    }
    live.len()
}

fn set_live(path: &Path, live: bool) {
    let mut list = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if live {
        list.push(path.to_path_buf());
    } else {
        list.retain(|p| p != path);
    }
}

/// A temporary directory that becomes the final output on [`StagingDir::commit`].
///
/// Dropped without commit, it is removed with everything in it.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
    swept: Vec<PathBuf>,
}

/// Errors of atomic output handling.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The output already exists and overwriting was not asked for.
    #[error("output {0} already exists; choose another --out or pass --force to replace it")]
    Exists(PathBuf),
    /// An I/O error on a named path.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        err: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StagingError + 'a {
    move |err| StagingError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

impl StagingDir {
    /// Creates the staging directory beside `target` (owner-only permissions,
    /// since it may briefly hold intermediate data).
    pub fn new(target: &Path, force: bool) -> Result<Self, StagingError> {
        if target.exists() && !force {
            return Err(StagingError::Exists(target.to_path_buf()));
        }
        let parent = parent_of(target);
        fs::create_dir_all(&parent).map_err(io_err("cannot create", &parent))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".to_string());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let prefix = format!(".{name}.tmp-");
        let swept = sweep_leftovers(&parent, &prefix);
        let path = parent.join(format!("{prefix}{}-{nanos}", std::process::id()));
        create_private_dir(&path).map_err(io_err("cannot create", &path))?;
        set_live(&path, true);
        Ok(Self {
            path,
            target: target.to_path_buf(),
            committed: false,
            swept,
        })
    }

    /// Staging directories of earlier runs for the same output that were
    /// killed before they could clean up (`kill -9`, a power cut), removed
    /// by [`StagingDir::new`]. The caller says so: they may have held raw
    /// records.
    pub fn swept(&self) -> &[PathBuf] {
        &self.swept
    }

    /// The directory to write into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final location.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged directory into place, replacing an existing target
    /// (only reachable when `force` was given to [`StagingDir::new`]).
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        set_public_dir(&self.path).map_err(io_err("cannot set permissions on", &self.path))?;
        if self.target.exists() {
            let old = self.path.with_extension("old");
            fs::rename(&self.target, &old).map_err(io_err("cannot move aside", &self.target))?;
            fs::rename(&self.path, &self.target).map_err(io_err("cannot rename", &self.path))?;
            fs::remove_dir_all(&old).map_err(io_err("cannot remove", &old))?;
        } else {
            fs::rename(&self.path, &self.target).map_err(io_err("cannot rename", &self.path))?;
        }
        self.committed = true;
        set_live(&self.path, false);
        Ok(self.target.clone())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
            set_live(&self.path, false);
        }
    }
}

/// Removes `PREFIX<pid>-…` entries of `dir` whose process is gone.
fn sweep_leftovers(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let path = entry.path();
            if fs::remove_dir_all(&path).is_ok() {
                swept.push(path);
            }
        }
    }
    swept
}

/// True when a process with this id runs. Where that cannot be known, true:
/// a directory is only removed when its writer is known to be gone.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)
}

#[cfg(unix)]
fn set_public_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_public_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Writes `data` to `path` atomically: a temporary file in the same directory,
/// flushed to disk, then renamed over the destination.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_staging_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let s = StagingDir::new(&target, false).unwrap();
            fs::write(s.path().join("a"), b"x").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_moves_into_place_and_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let s = StagingDir::new(&target, false).unwrap();
        fs::write(s.path().join("a"), b"x").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read(target.join("a")).unwrap(), b"x");
        assert!(matches!(
            StagingDir::new(&target, false),
            Err(StagingError::Exists(_))
        ));
        let s = StagingDir::new(&target, true).unwrap();
        fs::write(s.path().join("b"), b"y").unwrap();
        s.commit().unwrap();
        assert!(!target.join("a").exists());
        assert!(target.join("b").exists());
    }

    #[test]
    fn live_staging_is_registered_and_leftovers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let live = |p: &Path| LIVE.lock().unwrap().iter().any(|l| l == p);
        let s = StagingDir::new(&target, false).unwrap();
        let path = s.path().to_path_buf();
        assert!(live(&path));
        drop(s);
        assert!(!live(&path));
        // A killed run's folder: a process id that cannot exist.
        if Path::new("/proc").is_dir() {
            let dead = dir.path().join(format!(".out.tmp-{}-1", u32::MAX - 1));
            fs::create_dir(&dead).unwrap();
            fs::write(dead.join("raw"), b"x").unwrap();
            let s = StagingDir::new(&target, false).unwrap();
            assert_eq!(s.swept(), std::slice::from_ref(&dead));
            assert!(!dead.exists());
        }
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"2");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
