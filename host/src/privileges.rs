//! Giving up root, as Postfix daemons do: after the sockets are bound and
//! before any thread starts, become `mail_owner` (its uid, its primary gid
//! and its supplementary groups). Tables are then opened, and files created,
//! as that user, so they get Postfix's owner. [`running_as_root`] lets the
//! callers warn when nothing asked for the switch.

use std::ffi::CString;
use std::path::Path;

/// A user to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// Why the switch failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("unknown mail_owner user \"{0}\": set mail_owner to an existing account")]
    UnknownUser(String),
    /// The owner is root, which Postfix refuses too.
    #[error("mail_owner \"{0}\" has uid 0: set mail_owner to an unprivileged account")]
    RootOwner(String),
    /// A system call failed.
    #[error("{call}({name}): {source}")]
    Call {
        /// The call.
        call: &'static str,
        /// The user.
        name: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Whether the effective uid is root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Look `name` up in the password database.
pub fn lookup(name: &str) -> Result<Account, PrivilegeError> {
    let c_name = CString::new(name).map_err(|_| PrivilegeError::UnknownUser(name.into()))?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: passwd is plain data; getpwnam_r fills it with pointers into
    // `buf`, which outlives every use below.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the lengths given.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(PrivilegeError::UnknownUser(name.into()));
    }
    Ok(Account {
        name: name.into(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Become `account`: gid, supplementary groups, then uid, and check that
/// root cannot be regained. Call before any thread starts.
pub fn become_user(account: &Account) -> Result<(), PrivilegeError> {
    if account.uid == 0 {
        return Err(PrivilegeError::RootOwner(account.name.clone()));
    }
    let fail = |call: &'static str| PrivilegeError::Call {
        call,
        name: account.name.clone(),
        source: std::io::Error::last_os_error(),
    };
    let c_name = CString::new(account.name.as_str())
        .map_err(|_| PrivilegeError::UnknownUser(account.name.clone()))?;
    // SAFETY: plain system calls; c_name is a valid C string.
    unsafe {
        if libc::setgid(account.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::initgroups(c_name.as_ptr(), account.gid) != 0 {
            return Err(fail("initgroups"));
        }
        if libc::setuid(account.uid) != 0 {
            return Err(fail("setuid"));
        }
        if libc::setuid(0) == 0 {
            return Err(PrivilegeError::Call {
                call: "setuid",
                name: account.name.clone(),
                source: std::io::Error::other("root could be regained"),
            });
        }
    }
    Ok(())
}

/// Give `path` (made by root for this server) to `account`, so that it can
/// still use it after the switch. Errors are returned for the caller to log.
pub fn give(path: &Path, account: &Account) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_and_refused_as_owner() {
        let root = lookup("root").unwrap();
        assert_eq!(root.uid, 0);
        assert!(matches!(
            become_user(&root),
            Err(PrivilegeError::RootOwner(_))
        ));
        assert!(matches!(
            lookup("no-such-user-here"),
            Err(PrivilegeError::UnknownUser(_))
        ));
    }
}
