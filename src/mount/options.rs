//! `-o` mount options, as `mount(8)`, `/etc/fstab` and `mount.fuse3` pass
//! them: `ninja-fs SOURCE MOUNTPOINT -o allow_other,cache_size=512M`.
//!
//! Every option ninja-fs has is here; the generic options `mount` and
//! fstab pass (`rw,dev,suid` by default, `nofail`, `_netdev`, `x-systemd.*`
//! ...) are accepted and change nothing: the mount stays read-only, nosuid
//! and nodev whatever they say. Anything else is refused, by name.

use std::path::PathBuf;

/// What the `-o` options ask of the mount.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsOptions {
    /// `allow_other`: every user may read the mount.
    pub allow_other: bool,
    /// `allow_root`: the user who mounted and root may read the mount.
    pub allow_root: bool,
    /// `cache_size=SIZE`: memory for images.
    pub cache_size: Option<u64>,
    /// `no_header_cache`: keep no header analyses on disk.
    pub no_header_cache: bool,
    /// `log_file=PATH`: where the daemon logs.
    pub log_file: Option<PathBuf>,
    /// `fsname=NAME`: the source `/proc/mounts` and `df` show.
    pub fs_name: Option<String>,
    /// `noexec`: passed on to the kernel (nothing in the mount is
    /// executable anyway).
    pub no_exec: bool,
    /// `fix_checksums`: `patched/` files carry recomputed internal checksums.
    pub fix_checksums: bool,
    /// `dat=PATH` (repeatable): DATs to verify ROMs against, as `--dat`.
    pub dats: Vec<PathBuf>,
}

/// The options ninja-fs itself takes, for messages and help.
pub const OWN_OPTIONS: &str = "cache_size=SIZE, no_header_cache, fix_checksums, dat=PATH, log_file=PATH, \
     allow_other, allow_root, default_permissions, ro, fsname=NAME";

/// Generic options of `mount(8)`, `fstab(5)` and FUSE that are accepted and
/// change nothing (`ro` included: the mount is always read-only).
const IGNORED: &[&str] = &[
    "ro",
    "rw",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "iversion",
    "noiversion",
    "mand",
    "nomand",
    "sync",
    "async",
    "dirsync",
    "silent",
    "loud",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "defaults",
    "nofail",
    "_netdev",
    "default_permissions",
];

/// Prefixes of generic options that are ignored with any value:
/// `x-systemd.automount`, `x-gvfs-show`, `comment=...`, and the `user=NAME`
/// a setuid `mount` adds for a `user` fstab entry.
const IGNORED_PREFIXES: &[&str] = &["x-", "comment=", "user="];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error(
        "unknown mount option '{0}': ninja-fs takes {OWN_OPTIONS} and the generic options of \
         mount(8) (see `ninja-fs mount --help`); remove it"
    )]
    Unknown(String),
    #[error("mount option '{option}' needs a value: write {option}={example}")]
    MissingValue {
        option: String,
        example: &'static str,
    },
    #[error("mount option '{0}' takes no value: write it alone")]
    UnexpectedValue(String),
    #[error("mount option '{option}': {reason}")]
    BadValue { option: String, reason: String },
    #[error("mount options allow_other and allow_root exclude each other: keep one")]
    AllowBoth,
}

/// Splits `list` at commas (a comma escaped as `\,` stays in its option).
fn split(list: &str) -> Vec<String> {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ',' => options.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    options.push(current);
    options.retain(|o| !o.is_empty());
    options
}

impl FsOptions {
    /// Reads one `-o` list into `self` (a later option wins).
    pub fn parse(&mut self, list: &str) -> Result<(), OptionError> {
        for option in split(list) {
            self.apply(&option)?;
        }
        if self.allow_other && self.allow_root {
            return Err(OptionError::AllowBoth);
        }
        Ok(())
    }

    fn apply(&mut self, option: &str) -> Result<(), OptionError> {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        let flag = |set: &mut bool| match value {
            None => {
                *set = true;
                Ok(())
            }
            Some(_) => Err(OptionError::UnexpectedValue(name.to_string())),
        };
        let valued = |example: &'static str| match value {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(OptionError::MissingValue {
                option: name.to_string(),
                example,
            }),
        };
        match name {
            "allow_other" => flag(&mut self.allow_other),
            "allow_root" => flag(&mut self.allow_root),
            "no_header_cache" => flag(&mut self.no_header_cache),
            "noexec" => flag(&mut self.no_exec),
            "fix_checksums" => flag(&mut self.fix_checksums),
            "cache_size" => {
                let size = crate::files::parse_size(valued("512M")?).map_err(|reason| {
                    OptionError::BadValue {
                        option: name.to_string(),
                        reason,
                    }
                })?;
                self.cache_size = Some(size);
                Ok(())
            }
            "log_file" => {
                self.log_file = Some(PathBuf::from(valued("/var/log/ninja-fs.log")?));
                Ok(())
            }
            "fsname" => {
                self.fs_name = Some(valued("NAME")?.to_string());
                Ok(())
            }
            "dat" => {
                self.dats.push(PathBuf::from(valued("/srv/dats")?));
                Ok(())
            }
            _ if IGNORED_PREFIXES.iter().any(|p| option.starts_with(p)) => Ok(()),
            _ if IGNORED.contains(&name) => match value {
                None => Ok(()),
                Some(_) => Err(OptionError::UnexpectedValue(name.to_string())),
            },
            _ => Err(OptionError::Unknown(option.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &str) -> Result<FsOptions, OptionError> {
        let mut options = FsOptions::default();
        options.parse(list).map(|()| options)
    }

    #[test]
    fn own_options_map() {
        let options =
            parse("allow_other,cache_size=512M,no_header_cache,log_file=/tmp/x.log").unwrap();
        assert_eq!(
            options,
            FsOptions {
                allow_other: true,
                cache_size: Some(512 << 20),
                no_header_cache: true,
                log_file: Some(PathBuf::from("/tmp/x.log")),
                ..FsOptions::default()
            }
        );
        assert!(parse("allow_root").unwrap().allow_root);
        assert_eq!(
            parse("dat=/a/x.dat,dat=/b").unwrap().dats,
            [PathBuf::from("/a/x.dat"), PathBuf::from("/b")]
        );
        assert_eq!(
            parse("dat").unwrap_err().to_string(),
            "mount option 'dat' needs a value: write dat=/srv/dats"
        );
        assert!(parse("noexec").unwrap().no_exec);
        assert!(parse("fix_checksums").unwrap().fix_checksums);
        assert_eq!(
            parse("fix_checksums=1").unwrap_err(),
            OptionError::UnexpectedValue("fix_checksums".into())
        );
        assert_eq!(
            parse("fsname=roms\\,all").unwrap().fs_name.as_deref(),
            Some("roms,all")
        );
    }

    #[test]
    fn generic_options_change_nothing() {
        let generic = "rw,dev,suid,exec,atime,ro,nodev,nosuid,relatime,noatime,sync,async,\
                       dirsync,nofail,_netdev,noauto,auto,user,users,nouser,owner,group,\
                       defaults,default_permissions,x-systemd.automount,x-systemd.idle-timeout=60,\
                       x-gvfs-show,comment=library,user=alice,silent,lazytime,iversion";
        assert_eq!(parse(generic).unwrap(), FsOptions::default());
        assert_eq!(parse("").unwrap(), FsOptions::default());
        assert_eq!(parse(",,").unwrap(), FsOptions::default());
    }

    #[test]
    fn refusals_name_the_option() {
        let unknown = parse("allow_other,bogus=1").unwrap_err();
        assert_eq!(unknown, OptionError::Unknown("bogus=1".into()));
        assert!(
            unknown
                .to_string()
                .starts_with("unknown mount option 'bogus=1': ")
        );
        assert_eq!(
            parse("cache_size").unwrap_err().to_string(),
            "mount option 'cache_size' needs a value: write cache_size=512M"
        );
        assert_eq!(
            parse("cache_size=lots").unwrap_err().to_string(),
            "mount option 'cache_size': 'lots' is not a size: write a number of bytes, \
             or one like 64K, 256M, 1G"
        );
        assert_eq!(
            parse("allow_other=yes").unwrap_err(),
            OptionError::UnexpectedValue("allow_other".into())
        );
        assert_eq!(
            parse("rw=1").unwrap_err(),
            OptionError::UnexpectedValue("rw".into())
        );
        assert_eq!(
            parse("allow_other,allow_root").unwrap_err(),
            OptionError::AllowBoth
        );
        assert_eq!(
            parse("max_read=4096").unwrap_err(),
            OptionError::Unknown("max_read=4096".into())
        );
    }

    #[test]
    fn later_values_win() {
        assert_eq!(
            parse("cache_size=1M,cache_size=2M").unwrap().cache_size,
            Some(2 << 20)
        );
    }
}
