//! Where things are (SPEC.md section 2): the config file, the runtime directory and the
//! control socket inside it.
//!
//! The resolution rules are pure functions of the environment values, passed in as
//! arguments, so tests never touch the process environment. [`Env::from_process`] reads
//! the real values. Only the server creates directories ([`create_private_dir`]); a client
//! that finds no directory concludes that no server is running.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The config file's name inside the config directory.
pub const CONFIG_FILE: &str = "pizauth.conf";
/// The runtime directory's name inside `$XDG_RUNTIME_DIR` (or its fallback).
pub const RUNTIME_DIR: &str = "pizauth";
/// The control socket's name inside the runtime directory.
pub const SOCKET_FILE: &str = "pizauth.sock";

/// The environment values that decide the paths. Empty values count as unset.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<OsString>,
    /// `$TMPDIR`.
    pub tmpdir: Option<OsString>,
    /// `$USER`, or failing that the name of the real user id from the password database.
    pub user: Option<OsString>,
}

impl Env {
    /// Reads the process environment (and the password database if `$USER` is unset).
    pub fn from_process() -> Env {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let xdg_runtime_dir = var("XDG_RUNTIME_DIR");
        // The password database can be slow (NSS, LDAP): ask it only when the name is
        // needed, which `show` on a desktop session never does.
        let need_user = absolute(xdg_runtime_dir.as_deref()).is_none();
        Env {
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            xdg_runtime_dir,
            tmpdir: var("TMPDIR"),
            user: var("USER").or_else(|| need_user.then(user_name_of_uid).flatten()),
        }
    }

    /// The config file: `explicit` (from `-c`) if given, else
    /// `$XDG_CONFIG_HOME/pizauth.conf`, else `$HOME/.config/pizauth.conf`.
    pub fn config_path(&self, explicit: Option<&Path>) -> Result<PathBuf, String> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        if let Some(dir) = absolute(self.xdg_config_home.as_deref()) {
            return Ok(dir.join(CONFIG_FILE));
        }
        if let Some(home) = absolute(self.home.as_deref()) {
            return Ok(home.join(".config").join(CONFIG_FILE));
        }
        Err(
            "cannot find the config file: neither $XDG_CONFIG_HOME nor $HOME is set \
             (give its path with -c)"
                .into(),
        )
    }

    /// The runtime directory: `$XDG_RUNTIME_DIR/pizauth`, else
    /// `${TMPDIR:-/tmp}/runtime-$USER/pizauth`.
    pub fn runtime_dir(&self) -> Result<PathBuf, String> {
        if let Some(dir) = absolute(self.xdg_runtime_dir.as_deref()) {
            return Ok(dir.join(RUNTIME_DIR));
        }
        let tmp = absolute(self.tmpdir.as_deref()).unwrap_or(Path::new("/tmp"));
        let user = self.user.as_deref().filter(|u| !u.is_empty()).ok_or(
            "cannot find the runtime directory: $XDG_RUNTIME_DIR and $USER are unset \
                    and the user id has no name",
        )?;
        let mut base = OsString::from("runtime-");
        base.push(user);
        Ok(tmp.join(base).join(RUNTIME_DIR))
    }
}

/// The control socket inside `runtime_dir`.
pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(SOCKET_FILE)
}

/// `value` as a path if it is set, non-empty and absolute. The XDG base directory
/// specification says relative values are invalid and must be ignored; a relative path
/// would also change meaning once the daemon moves to `/`.
fn absolute(value: Option<&OsStr>) -> Option<&Path> {
    value.map(Path::new).filter(|p| p.is_absolute())
}

/// Creates `dir` and each missing parent with mode 0700, then checks that `dir` is a real
/// directory owned by this user that nobody else can enter, and that its parent cannot be
/// used by another user to swap it (owned by this user or root, and not writable by others
/// unless sticky, like `/tmp`).
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("cannot {what} {}: {e}", dir.display());
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .collect();
    while let Some(level) = missing.pop() {
        match DirBuilder::new().mode(0o700).create(level) {
            // The umask may have cleared more bits than asked; 0700 is what we want.
            Ok(()) => fs::set_permissions(level, fs::Permissions::from_mode(0o700))
                .map_err(|e| fail("set the permissions of", e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!("cannot create directory {}: {e}", level.display()));
            }
        }
    }

    let me = current_uid();
    let meta = fs::symlink_metadata(dir).map_err(|e| fail("inspect", e))?;
    if !meta.file_type().is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "runtime directory {} belongs to another user",
            dir.display()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("set the permissions of", e))?;
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let meta = fs::metadata(parent).map_err(|e| fail("inspect the parent of", e))?;
        if !safe_parent(meta.uid(), meta.mode(), me) {
            return Err(format!(
                "directory {} can be changed by other users: remove it or set \
                 $XDG_RUNTIME_DIR to a private directory",
                parent.display()
            ));
        }
    }
    Ok(())
}

/// Whether a directory with owner `uid` and `mode` is safe to hold the runtime directory
/// of user `me`.
fn safe_parent(uid: u32, mode: u32, me: u32) -> bool {
    let owner_ok = uid == me || uid == 0;
    let writable_by_others = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    owner_ok && (!writable_by_others || sticky)
}

/// The real user id.
pub fn current_uid() -> u32 {
    pizauth_io::os::getuid()
}

/// The name of the real user id in the password database, if it has one.
fn user_name_of_uid() -> Option<OsString> {
    pizauth_io::os::user_name(current_uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        };
        Env {
            xdg_config_home: get("XDG_CONFIG_HOME"),
            home: get("HOME"),
            xdg_runtime_dir: get("XDG_RUNTIME_DIR"),
            tmpdir: get("TMPDIR"),
            user: get("USER"),
        }
    }

    #[test]
    fn config_path_order() {
        let e = env(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/u")]);
        assert_eq!(e.config_path(None).unwrap(), Path::new("/xdg/pizauth.conf"));
        assert_eq!(
            e.config_path(Some(Path::new("rel.conf"))).unwrap(),
            Path::new("rel.conf")
        );
        let e = env(&[("HOME", "/home/u")]);
        assert_eq!(
            e.config_path(None).unwrap(),
            Path::new("/home/u/.config/pizauth.conf")
        );
        // A relative XDG value is ignored, as the XDG specification says.
        let e = env(&[("XDG_CONFIG_HOME", "cfg"), ("HOME", "/h")]);
        assert_eq!(
            e.config_path(None).unwrap(),
            Path::new("/h/.config/pizauth.conf")
        );
        assert!(env(&[]).config_path(None).is_err());
        assert!(env(&[]).config_path(Some(Path::new("/given"))).is_ok());
    }

    #[test]
    fn runtime_dir_order() {
        let e = env(&[
            ("XDG_RUNTIME_DIR", "/run/user/7"),
            ("TMPDIR", "/t"),
            ("USER", "u"),
        ]);
        assert_eq!(e.runtime_dir().unwrap(), Path::new("/run/user/7/pizauth"));
        let e = env(&[("TMPDIR", "/t"), ("USER", "u")]);
        assert_eq!(e.runtime_dir().unwrap(), Path::new("/t/runtime-u/pizauth"));
        let e = env(&[("USER", "u")]);
        assert_eq!(
            e.runtime_dir().unwrap(),
            Path::new("/tmp/runtime-u/pizauth")
        );
        let e = env(&[("XDG_RUNTIME_DIR", "rel"), ("TMPDIR", "rel"), ("USER", "u")]);
        assert_eq!(
            e.runtime_dir().unwrap(),
            Path::new("/tmp/runtime-u/pizauth")
        );
        assert!(env(&[]).runtime_dir().is_err());
        assert_eq!(
            socket_path(Path::new("/r/pizauth")),
            Path::new("/r/pizauth/pizauth.sock")
        );
    }

    #[test]
    fn parents_that_others_could_change_are_refused() {
        assert!(safe_parent(1000, 0o40700, 1000));
        assert!(safe_parent(0, 0o41777, 1000)); // /tmp
        assert!(safe_parent(0, 0o40755, 1000)); // /run/user
        assert!(!safe_parent(1001, 0o40700, 1000));
        assert!(!safe_parent(1000, 0o40777, 1000));
        assert!(!safe_parent(0, 0o40775, 1000));
    }

    #[test]
    fn creates_missing_levels_private() {
        let base = std::env::temp_dir().join(format!("pizauth-paths-{}", std::process::id()));
        let dir = base.join("a").join("pizauth");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).unwrap();
        create_private_dir(&dir).unwrap();
        for level in [base.join("a"), dir.clone()] {
            let mode = fs::metadata(&level).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", level.display());
        }
        // Idempotent, and tightens a directory that is too open.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // A file in the way is an error, not a panic.
        let file = base.join("file");
        fs::write(&file, "").unwrap();
        assert!(create_private_dir(&file).is_err());
        assert!(create_private_dir(&file.join("pizauth")).is_err());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn uid_has_a_name_or_not_without_panicking() {
        let _ = user_name_of_uid();
    }
}
