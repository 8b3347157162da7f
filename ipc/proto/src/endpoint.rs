//! Where the shell for a data directory listens, and where its command-line token lives.
//!
//! Every data directory gets a private directory (mode 0700) under the user's runtime
//! directory, named by a short hash of the data directory's absolute path:
//! `$XDG_RUNTIME_DIR/weft-<hash>/`. The runtime directory is local, per-user and short
//! (socket paths are limited to 108 bytes), unlike a home directory that may be on NFS.
//! Without `XDG_RUNTIME_DIR` the system temporary directory is used, with the user id in
//! the name, and the directory's owner and mode are checked before use.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::Token;

/// The files through which clients find and authenticate to a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    dir: PathBuf,
}

impl Endpoint {
    /// The endpoint of the shell that owns `data_dir`, using the process's environment.
    pub fn for_data_dir(data_dir: &Path) -> io::Result<Self> {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Self::with_runtime_dir(data_dir, runtime.as_deref())
    }

    /// As [`Endpoint::for_data_dir`], with the runtime directory given explicitly.
    pub fn with_runtime_dir(data_dir: &Path, runtime_dir: Option<&Path>) -> io::Result<Self> {
        let key = canonical(data_dir)?;
        let hash = hex::encode(&Sha256::digest(key.as_os_str().as_encoded_bytes())[..6]);
        let dir = match runtime_dir {
            Some(runtime) => runtime.join(format!("weft-{hash}")),
            None => std::env::temp_dir().join(format!("weft-{}-{hash}", current_uid())),
        };
        Ok(Self { dir })
    }

    /// The private directory holding the socket, lock and token.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's listening socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("bus.sock")
    }

    /// The command-line token file (mode 0600), rewritten at every shell start.
    pub fn cli_token_path(&self) -> PathBuf {
        self.dir.join("cli.token")
    }

    /// The lock file held by the running shell for its whole life.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("shell.lock")
    }

    /// Creates the directory with mode 0700 if needed, and checks that it is a directory
    /// owned by this user and closed to everyone else.
    pub fn ensure_dir(&self) -> io::Result<()> {
        match fs::DirBuilder::new()
            .mode(0o700)
            .recursive(false)
            .create(&self.dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = self.dir.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::DirBuilder::new().mode(0o700).create(&self.dir)?;
            }
            Err(e) => return Err(e),
        }
        let meta = fs::symlink_metadata(&self.dir)?;
        let uid = current_uid();
        if !meta.is_dir() || meta.uid() != uid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a directory owned by this user (uid {uid})",
                    self.dir.display()
                ),
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Writes the command-line token, readable only by this user.
    pub fn write_cli_token(&self, token: &Token) -> io::Result<()> {
        let path = self.cli_token_path();
        let tmp = self.dir.join("cli.token.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        io::Write::write_all(&mut file, token.to_hex().as_bytes())?;
        file.sync_all()?;
        fs::rename(tmp, path)
    }

    /// Reads the command-line token.
    pub fn read_cli_token(&self) -> io::Result<Token> {
        let path = self.cli_token_path();
        let text = fs::read_to_string(&path)?;
        Token::from_hex(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }
}

/// The absolute form of `path`, with symbolic links resolved where it exists.
pub fn canonical(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) => std::path::absolute(path),
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_data_dirs_get_distinct_short_paths() {
        let rt = tempfile::tempdir().unwrap();
        let a = Endpoint::with_runtime_dir(Path::new("/home/u/a"), Some(rt.path())).unwrap();
        let b = Endpoint::with_runtime_dir(Path::new("/home/u/b"), Some(rt.path())).unwrap();
        assert_ne!(a, b);
        assert!(a.dir().starts_with(rt.path()));
        let name = a.dir().file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), "weft-".len() + 12, "{name}");
        // Same data dir, same endpoint: clients must find the shell.
        let again = Endpoint::with_runtime_dir(Path::new("/home/u/a"), Some(rt.path())).unwrap();
        assert_eq!(a, again);
    }

    #[test]
    fn directory_is_private_and_token_round_trips() {
        let rt = tempfile::tempdir().unwrap();
        let ep = Endpoint::with_runtime_dir(Path::new("/data"), Some(rt.path())).unwrap();
        ep.ensure_dir().unwrap();
        let mode = fs::metadata(ep.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let token = Token::random();
        ep.write_cli_token(&token).unwrap();
        let mode = fs::metadata(ep.cli_token_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(ep.read_cli_token().unwrap().ct_eq(&token));
        // A widened mode is narrowed again.
        fs::set_permissions(ep.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        ep.ensure_dir().unwrap();
        let mode = fs::metadata(ep.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn corrupt_token_file_names_the_file() {
        let rt = tempfile::tempdir().unwrap();
        let ep = Endpoint::with_runtime_dir(Path::new("/data"), Some(rt.path())).unwrap();
        ep.ensure_dir().unwrap();
        fs::write(ep.cli_token_path(), "nonsense").unwrap();
        let err = ep.read_cli_token().unwrap_err().to_string();
        assert!(err.contains("cli.token"), "{err}");
    }
}
