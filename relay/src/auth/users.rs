//! The users file: one SCRAM-SHA-256 verifier per endpoint address.
//!
//! See the [module documentation](super) for the format.

use super::AuthError;
use super::scram::{DEFAULT_ITERATIONS, ScramVerifier};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const HEADER: &str = "\
# imxpd users file: one user per line, NAME SP VERIFIER.
# NAME is an endpoint address (local@domain, no subaddress); VERIFIER is
# SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5803,
# base64). Manage with `imxpd user add|del|list`; comments are not kept.
";

/// The canonical form of a user name: an endpoint address `local@domain`
/// (RFC 3340 §2.2) without subaddress, the local part kept octet-exact and
/// the domain lower-cased (domains compare case-insensitively).
///
/// Refused: a missing or repeated `@`, an empty part, `/` (subaddresses
/// authenticate as their base address), control characters, a local part
/// beginning with the reserved `apex=`, with `#` (the file's comment mark)
/// or with or ending in white space, and a domain that is neither an ASCII
/// DNS name (use the `xn--` A-label form) nor an address literal `[…]`.
pub fn canonical_user_name(name: &str) -> Result<String, AuthError> {
    let invalid = |reason: &str| AuthError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let (local, domain) = name
        .split_once('@')
        .ok_or_else(|| invalid("a user name is an address local@domain"))?;
    if domain.contains('@') {
        return Err(invalid("more than one @"));
    }
    if local.is_empty() {
        return Err(invalid("empty local part"));
    }
    if local.contains('/') {
        return Err(invalid(
            "a user name has no subaddress (fred/x@ authenticates as fred@)",
        ));
    }
    if local.chars().any(|c| c.is_control()) {
        return Err(invalid("control character in the local part"));
    }
    if local.starts_with(char::is_whitespace) || local.ends_with(char::is_whitespace) {
        return Err(invalid("the local part begins or ends with white space"));
    }
    if local.starts_with('#') {
        return Err(invalid("the local part begins with #"));
    }
    if local.starts_with("apex=") {
        return Err(invalid("local parts beginning with apex= are reserved"));
    }
    let domain_ok = if let Some(literal) = domain.strip_prefix('[') {
        literal.strip_suffix(']').is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'[' && b != b']')
        })
    } else {
        !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !domain_ok {
        return Err(invalid(
            "the domain must be an ASCII DNS name or an address literal [...]",
        ));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// The users of the relay: canonical user name → SCRAM-SHA-256 verifier,
/// bound to the file they are loaded from and saved to.
#[derive(Debug, Clone)]
pub struct Users {
    path: PathBuf,
    users: BTreeMap<String, ScramVerifier>,
    iterations: u32,
}

impl Users {
    /// An empty set bound to `path` (nothing is read or written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            users: BTreeMap::new(),
            iterations: DEFAULT_ITERATIONS,
        }
    }

    /// Reads the users file at `path`. A missing file is an empty set (a
    /// fresh installation; [`Users::save`] creates it), so callers that
    /// require users should check [`Users::is_empty`]. Errors name the file
    /// and, for content, the line.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, AuthError> {
        let mut users = Self::new(path);
        users.reload()?;
        Ok(users)
    }

    /// Parses users-file text; `path` is only used in error messages and
    /// as the file [`Users::save`] writes.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self, AuthError> {
        let mut users = Self::new(path);
        users.users = parse_entries(&users.path, text)?;
        Ok(users)
    }

    /// Re-reads the file; on error the current set is kept.
    pub fn reload(&mut self) -> Result<(), AuthError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(AuthError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.users = parse_entries(&self.path, &text)?;
        Ok(())
    }

    /// The file this set is loaded from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the iteration count for verifiers created from now on (it must
    /// lie in [`scram::MIN_ITERATIONS`](super::scram::MIN_ITERATIONS)..=
    /// [`scram::MAX_ITERATIONS`](super::scram::MAX_ITERATIONS)).
    pub fn set_iterations(&mut self, iterations: u32) -> Result<(), AuthError> {
        if !(super::scram::MIN_ITERATIONS..=super::scram::MAX_ITERATIONS).contains(&iterations) {
            return Err(AuthError::InvalidIterations(iterations));
        }
        self.iterations = iterations;
        Ok(())
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The canonical user names, sorted.
    pub fn list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// `name` (in any domain case) is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.verifier(name).is_some()
    }

    /// The verifier of `name`, for SCRAM.
    pub fn verifier(&self, name: &str) -> Option<&ScramVerifier> {
        canonical_user_name(name)
            .ok()
            .and_then(|name| self.users.get(&name))
    }

    /// Adds a new user; returns the canonical name. Fails if the user
    /// exists (see [`Users::set_password`]).
    pub fn add(&mut self, name: &str, password: &str) -> Result<String, AuthError> {
        let name = canonical_user_name(name)?;
        if self.users.contains_key(&name) {
            return Err(AuthError::UserExists(name));
        }
        let verifier = new_verifier(password, self.iterations)?;
        self.users.insert(name.clone(), verifier);
        Ok(name)
    }

    /// Replaces the password of an existing user; returns the canonical name.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<String, AuthError> {
        let name = canonical_user_name(name)?;
        if !self.users.contains_key(&name) {
            return Err(AuthError::UnknownUser(name));
        }
        let verifier = new_verifier(password, self.iterations)?;
        self.users.insert(name.clone(), verifier);
        Ok(name)
    }

    /// Removes a user; returns the canonical name.
    pub fn remove(&mut self, name: &str) -> Result<String, AuthError> {
        let name = canonical_user_name(name)?;
        match self.users.remove(&name) {
            Some(_) => Ok(name),
            None => Err(AuthError::UnknownUser(name)),
        }
    }

    /// Checks a PLAIN password; the canonical user name on success. Unknown
    /// users cost as much as known ones, so timing does not tell them apart.
    pub fn authenticate(&self, user: &str, password: &str) -> Option<String> {
        let name = canonical_user_name(user).ok();
        let verifier = name.as_ref().and_then(|n| self.users.get(n));
        let valid = check_password(verifier, password);
        if valid { name } else { None }
    }

    /// Checks a PLAIN password of `user`.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        self.authenticate(user, password).is_some()
    }

    /// The file content: a header comment, then one line per user, sorted.
    pub fn to_text(&self) -> String {
        let mut text = String::from(HEADER);
        for (name, verifier) in &self.users {
            text.push_str(name);
            text.push(' ');
            text.push_str(&verifier.to_string());
            text.push('\n');
        }
        text
    }

    /// Writes the file atomically (temporary file in the same directory,
    /// then rename), mode 0600; creates the directory if needed.
    pub fn save(&self) -> Result<(), AuthError> {
        write_private_atomic(&self.path, self.to_text().as_bytes()).map_err(|source| {
            AuthError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}

fn new_verifier(password: &str, iterations: u32) -> Result<ScramVerifier, AuthError> {
    if password.is_empty() {
        return Err(AuthError::InvalidPassword("empty".into()));
    }
    ScramVerifier::generate_with_iterations(password, iterations)
}

/// Verifies `password` against `verifier`, or spends the same work on a
/// throw-away verifier when there is none.
pub(crate) fn check_password(verifier: Option<&ScramVerifier>, password: &str) -> bool {
    static DUMMY: OnceLock<ScramVerifier> = OnceLock::new();
    match verifier {
        Some(verifier) => verifier.verify_password(password),
        None => {
            let dummy = DUMMY.get_or_init(|| {
                ScramVerifier::derive("dummy", &[0u8; super::scram::SALT_LEN], DEFAULT_ITERATIONS)
                    .expect("ASCII passwords pass SASLprep")
            });
            let _ = dummy.verify_password(password);
            false
        }
    }
}

fn parse_entries(path: &Path, text: &str) -> Result<BTreeMap<String, ScramVerifier>, AuthError> {
    let mut users = BTreeMap::new();
    let mut lines_of: BTreeMap<String, usize> = BTreeMap::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let error = |reason: String| AuthError::Parse {
            path: path.to_owned(),
            line: number,
            reason,
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, verifier) = line
            .trim()
            .rsplit_once([' ', '\t'])
            .ok_or_else(|| error("expected NAME SCRAM-SHA-256$...".into()))?;
        let name = canonical_user_name(name.trim_end()).map_err(|e| error(e.to_string()))?;
        let verifier = ScramVerifier::parse(verifier).map_err(error)?;
        if let Some(first) = lines_of.insert(name.clone(), number) {
            return Err(error(format!("{name} already appears on line {first}")));
        }
        users.insert(name, verifier);
    }
    Ok(users)
}

/// Writes `contents` to `path` atomically with mode 0600: a new temporary
/// file in the same directory, fsync, rename over `path`, fsync of the
/// directory. Creates missing parent directories.
pub(crate) fn write_private_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{:016x}.tmp",
        file_name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    let written = (|| {
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(
            canonical_user_name("fred@Example.COM").unwrap(),
            "fred@example.com"
        );
        assert_eq!(
            canonical_user_name("Fred Flintstone@example.com").unwrap(),
            "Fred Flintstone@example.com"
        );
        assert_eq!(
            canonical_user_name("fred@[10.0.0.1]").unwrap(),
            "fred@[10.0.0.1]"
        );
        assert_eq!(
            canonical_user_name("jürgen@example.com").unwrap(),
            "jürgen@example.com"
        );
        for bad in [
            "fred",
            "@example.com",
            "fred@",
            "fred@a@b",
            "fred/wb@example.com",
            "fr\ted@example.com",
            " fred@example.com",
            "fred @example.com",
            "#fred@example.com",
            "apex=report@example.com",
            "fred@exa mple.com",
            "fred@example..com",
            "fred@bücher.example",
            "fred@[10.0.0.1",
            "fred@[]",
        ] {
            assert!(canonical_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_verify_remove() {
        let mut users = Users::new("/nonexistent/users");
        assert_eq!(
            users.add("fred@Example.com", "secret").unwrap(),
            "fred@example.com"
        );
        assert!(matches!(
            users.add("fred@example.COM", "other"),
            Err(AuthError::UserExists(_))
        ));
        assert!(matches!(
            users.add("wilma@example.com", ""),
            Err(AuthError::InvalidPassword(_))
        ));
        assert!(users.verify_plain("fred@example.com", "secret"));
        assert_eq!(
            users.authenticate("fred@EXAMPLE.com", "secret").as_deref(),
            Some("fred@example.com")
        );
        assert!(!users.verify_plain("fred@example.com", "Secret"));
        assert!(!users.verify_plain("Fred@example.com", "secret"));
        assert!(!users.verify_plain("barney@example.com", "secret"));
        assert!(!users.verify_plain("not an address", "secret"));
        users.set_password("fred@example.com", "new").unwrap();
        assert!(!users.verify_plain("fred@example.com", "secret"));
        assert!(users.verify_plain("fred@example.com", "new"));
        assert!(matches!(
            users.set_password("barney@example.com", "x"),
            Err(AuthError::UnknownUser(_))
        ));
        assert_eq!(users.list(), vec!["fred@example.com".to_owned()]);
        assert_eq!(
            users.remove("fred@example.com").unwrap(),
            "fred@example.com"
        );
        assert!(matches!(
            users.remove("fred@example.com"),
            Err(AuthError::UnknownUser(_))
        ));
        assert!(users.is_empty());
    }

    #[test]
    fn file_round_trip_mode_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/users");
        // Missing file: empty set.
        let mut users = Users::load(&path).unwrap();
        assert!(users.is_empty());
        users.add("fred@example.com", "secret").unwrap();
        users.add("Fred Flintstone@example.com", "yabba").unwrap();
        users.save().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret") && !text.contains("yabba"));
        assert!(text.contains("\nfred@example.com SCRAM-SHA-256$4096:"));
        // No temporary files are left behind.
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);

        let mut loaded = Users::load(&path).unwrap();
        assert_eq!(loaded.list(), users.list());
        assert!(loaded.verify_plain("Fred Flintstone@example.com", "yabba"));
        assert!(loaded.verify_plain("fred@example.com", "secret"));

        // Another writer removes a user; reload sees it.
        users.remove("fred@example.com").unwrap();
        users.save().unwrap();
        loaded.reload().unwrap();
        assert!(!loaded.verify_plain("fred@example.com", "secret"));
        assert_eq!(loaded.len(), 1);

        // A corrupt file fails reload and keeps the loaded set.
        fs::write(
            &path,
            format!("{}# comment\n\nbroken line\n", users.to_text()),
        )
        .unwrap();
        let error = loaded.reload().unwrap_err();
        let message = error.to_string();
        let line = users.to_text().lines().count() + 3;
        assert!(
            matches!(error, AuthError::Parse { line: l, .. } if l == line),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!(":{line}:")), "{message}");
        assert!(loaded.verify_plain("Fred Flintstone@example.com", "yabba"));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let verifier = ScramVerifier::generate("pw").unwrap();
        let good = format!("fred@example.com {verifier}\n");
        let users = Users::parse("u", &format!("# c\n\n  {good}")).unwrap();
        assert!(users.verify_plain("fred@example.com", "pw"));
        let users = Users::parse("u", &format!("fred@example.com\t{verifier}\r\n")).unwrap();
        assert_eq!(users.len(), 1);
        let cases = [
            (format!("{good}fred@EXAMPLE.com {verifier}\n"), 2, "line 1"),
            (format!("# c\n{good}fred {verifier}\n"), 3, "local@domain"),
            (
                format!("\n\nfred@example.com pencil\n{good}"),
                3,
                "SCRAM-SHA-256$",
            ),
            ("fred@example.com\n".to_owned(), 1, "expected NAME"),
        ];
        for (text, line, needle) in cases {
            let error = Users::parse("/etc/imxp/users", &text).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("/etc/imxp/users:{line}: ")),
                "{message}"
            );
            assert!(message.contains(needle), "{message}");
        }
    }
}
