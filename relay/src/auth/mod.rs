//! The users file and SASL mechanisms for edge sessions.
//!
//! # The users file
//!
//! Configured as `[auth] users`. UTF-8 text, one user per line:
//!
//! ```text
//! # comment (a line whose first character is #); blank lines are ignored
//! fred@example.com SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>
//! ```
//!
//! * The name is a full endpoint address `local@domain` without subaddress
//!   (RFC 3340 §2.2). The local part is compared octet-exact, the domain
//!   case-insensitively; the file holds the canonical form (domain in lower
//!   case, see [`canonical_user_name`]). Local parts may contain spaces, so
//!   the name ends at the **last** space or tab of the line.
//! * The verifier is RFC 5803's text form of a salted SCRAM-SHA-256 verifier
//!   (RFC 5802 §3, RFC 7677): iteration count (≥ 4096), salt (≥ 16 octets,
//!   24 random octets for new users), StoredKey and ServerKey, standard
//!   base64. The password itself is never stored; the verifier serves PLAIN
//!   now and SCRAM-SHA-256 later.
//! * A name appearing twice (in any domain case) is an error. Every error
//!   names the file and the line.
//! * A missing file is an empty user set: on a fresh installation
//!   `imxpd user add` creates it. [`Users::save`] rewrites the whole file
//!   (sorted, with a header comment; other comments are not kept)
//!   atomically, mode 0600. Two concurrent writers may lose one update; the
//!   daemon only reads (on start and [`EdgeSasl::reload`]).
//!
//! # Operator commands
//!
//! [`add_user`], [`set_password`], [`remove_user`] and [`list_users`] are
//! what `imxpd user add|passwd|del|list` run; [`read_password`] reads the
//! password from a file or standard input. [`create_dev_user`] provisions a
//! user with a random password for development setups.

pub mod penalty;
mod sasl;
pub mod scram;
mod scram_server;
mod users;

pub use penalty::{FailurePolicy, Penalties};
pub use sasl::{ANONYMOUS_IDENTITY, EdgeSasl, MECHANISMS};
pub use scram::ScramVerifier;
pub use users::{Users, canonical_user_name};

pub(crate) use users::write_private_atomic;

use base64::Engine as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why an authentication-store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the users file is invalid.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The users file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user name is not a valid endpoint address.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A password cannot be used.
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    /// An iteration count outside the accepted range.
    #[error(
        "iteration count {0} is outside {min}..={max}",
        min = scram::MIN_ITERATIONS,
        max = scram::MAX_ITERATIONS
    )]
    InvalidIterations(u32),
    /// The user exists already.
    #[error("user {0} exists already")]
    UserExists(String),
    /// No such user.
    #[error("no user {0}")]
    UnknownUser(String),
}

/// Largest password [`read_password`] accepts, in octets.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Reads a password from the file `source`, or from standard input when
/// `source` is `-`; one trailing newline (`\n` or `\r\n`) is removed. An
/// empty password, one longer than [`MAX_PASSWORD_LEN`] or one that is not
/// UTF-8 is refused.
pub fn read_password(source: &Path) -> Result<String, AuthError> {
    let io_error = |source_error| AuthError::Io {
        path: source.to_owned(),
        source: source_error,
    };
    let mut bytes = Vec::new();
    let limit = MAX_PASSWORD_LEN as u64 + 3;
    if source == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
    } else {
        std::fs::File::open(source)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .map_err(io_error)?;
    }
    password_from_bytes(bytes)
}

fn password_from_bytes(mut bytes: Vec<u8>) -> Result<String, AuthError> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(AuthError::InvalidPassword("empty".into()));
    }
    if bytes.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::InvalidPassword(format!(
            "longer than {MAX_PASSWORD_LEN} octets"
        )));
    }
    String::from_utf8(bytes).map_err(|_| AuthError::InvalidPassword("not UTF-8".into()))
}

/// Adds a user to the users file at `path` (created if missing); returns
/// the canonical name.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<String, AuthError> {
    let mut users = Users::load(path)?;
    let name = users.add(name, password)?;
    users.save()?;
    Ok(name)
}

/// Changes the password of a user in the users file at `path`; returns the
/// canonical name.
pub fn set_password(path: &Path, name: &str, password: &str) -> Result<String, AuthError> {
    let mut users = Users::load(path)?;
    let name = users.set_password(name, password)?;
    users.save()?;
    Ok(name)
}

/// Removes a user from the users file at `path`; returns the canonical name.
pub fn remove_user(path: &Path, name: &str) -> Result<String, AuthError> {
    let mut users = Users::load(path)?;
    let name = users.remove(name)?;
    users.save()?;
    Ok(name)
}

/// The user names in the users file at `path`, sorted.
pub fn list_users(path: &Path) -> Result<Vec<String>, AuthError> {
    Ok(Users::load(path)?.list())
}

/// The file [`create_dev_user`] keeps `name`'s password in: beside the users
/// file, `<name>.password` with characters other than ASCII letters, digits,
/// `.`, `_`, `-` and `@` replaced by `_`.
pub fn dev_password_path(users_path: &Path, name: &str) -> PathBuf {
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = match users_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    dir.join(format!("{file}.password"))
}

/// Development helper: makes sure user `name` exists with a known password
/// and returns `(password, password_file)`.
///
/// If the user exists and the password file beside the users file (see
/// [`dev_password_path`]) still holds its password, both are reused.
/// Otherwise a random password (32 characters of URL-safe base64) is set,
/// adding the user if needed, and written to the password file (mode
/// 0600, newline-terminated, readable by [`read_password`]).
pub fn create_dev_user(users_path: &Path, name: &str) -> Result<(String, PathBuf), AuthError> {
    let mut users = Users::load(users_path)?;
    let canonical = canonical_user_name(name)?;
    let password_path = dev_password_path(users_path, &canonical);
    if users.contains(&canonical)
        && let Ok(password) = read_password(&password_path)
        && users.verify_plain(&canonical, &password)
    {
        return Ok((password, password_path));
    }
    let mut random = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    if users.contains(&canonical) {
        users.set_password(&canonical, &password)?;
    } else {
        users.add(&canonical, &password)?;
    }
    write_private_atomic(&password_path, format!("{password}\n").as_bytes()).map_err(|source| {
        AuthError::Io {
            path: password_path.clone(),
            source,
        }
    })?;
    users.save()?;
    Ok((password, password_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_input_trims_one_newline() {
        assert_eq!(password_from_bytes(b"pw\n".to_vec()).unwrap(), "pw");
        assert_eq!(password_from_bytes(b"pw\r\n".to_vec()).unwrap(), "pw");
        assert_eq!(password_from_bytes(b"pw\n\n".to_vec()).unwrap(), "pw\n");
        assert_eq!(password_from_bytes(b" pw ".to_vec()).unwrap(), " pw ");
        assert!(password_from_bytes(b"\n".to_vec()).is_err());
        assert!(password_from_bytes(Vec::new()).is_err());
        assert!(password_from_bytes(vec![0xff, b'a']).is_err());
        assert!(password_from_bytes(vec![b'a'; MAX_PASSWORD_LEN + 1]).is_err());
        assert!(password_from_bytes(vec![b'a'; MAX_PASSWORD_LEN]).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2\n").unwrap();
        assert_eq!(read_password(&file).unwrap(), "hunter2");
        let missing = dir.path().join("missing");
        let error = read_password(&missing).unwrap_err().to_string();
        assert!(error.contains("missing"), "{error}");
    }

    #[test]
    fn operator_functions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(list_users(&path).unwrap().is_empty());
        assert_eq!(
            add_user(&path, "fred@EXAMPLE.com", "secret").unwrap(),
            "fred@example.com"
        );
        add_user(&path, "wilma@example.com", "pebbles").unwrap();
        assert!(matches!(
            add_user(&path, "fred@example.com", "x"),
            Err(AuthError::UserExists(_))
        ));
        assert_eq!(
            list_users(&path).unwrap(),
            vec!["fred@example.com", "wilma@example.com"]
        );
        set_password(&path, "fred@example.com", "new").unwrap();
        assert!(
            Users::load(&path)
                .unwrap()
                .verify_plain("fred@example.com", "new")
        );
        remove_user(&path, "wilma@example.com").unwrap();
        assert!(matches!(
            remove_user(&path, "wilma@example.com"),
            Err(AuthError::UnknownUser(_))
        ));
        assert_eq!(list_users(&path).unwrap(), vec!["fred@example.com"]);
    }

    #[test]
    fn dev_user_is_created_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let (password, file) = create_dev_user(&path, "dev@Localhost").unwrap();
        assert_eq!(file, dir.path().join("dev@localhost.password"));
        assert_eq!(password.len(), 32);
        assert_eq!(read_password(&file).unwrap(), password);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let users = Users::load(&path).unwrap();
        assert!(users.verify_plain("dev@localhost", &password));
        // Second call: same password.
        let (again, _) = create_dev_user(&path, "dev@localhost").unwrap();
        assert_eq!(again, password);
        // Lost password file: a new password replaces the old one.
        std::fs::remove_file(&file).unwrap();
        let (fresh, _) = create_dev_user(&path, "dev@localhost").unwrap();
        assert_ne!(fresh, password);
        let users = Users::load(&path).unwrap();
        assert!(users.verify_plain("dev@localhost", &fresh));
        assert!(!users.verify_plain("dev@localhost", &password));
        assert_eq!(users.len(), 1);
        assert_eq!(
            dev_password_path(Path::new("users"), "a b/c@x"),
            Path::new("./a_b_c@x.password")
        );
    }
}
