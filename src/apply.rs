//! Patches applied to ROMs rather than to byte slices: which layout of the
//! ROM (raw, normalized, deinterleaved) a patch fits, NINJA2 entries with
//! their own system types, stacks of patches, and the deinterleaved result.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use crate::patch::any::Patch;
use crate::patch::rup::{Direction, RupEntry, RupPatch};
use crate::patch::{ApplyOptions, PatchError};
use crate::system::{self, Layout, SystemError, SystemType};

/// The three forms of a ROM a patch may have been made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ImageLayout {
    Raw,
    Normalized,
    Deinterleaved,
}

impl fmt::Display for ImageLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageLayout::Raw => "raw",
            ImageLayout::Normalized => "normalized",
            ImageLayout::Deinterleaved => "deinterleaved",
        })
    }
}

/// What stops a patch being created, without repeating the format's name.
fn create_detail(error: &PatchError) -> String {
    match error {
        PatchError::Unsupported { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// Why a patch could not be applied to a ROM.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{patch}: {source}")]
    Patch { patch: String, source: PatchError },

    /// No layout of the ROM is the source the patch checks for.
    #[error(
        "{rom} does not match {patch}: the patch expects {expected}; {}",
        tried_list(.tried)
    )]
    NoLayoutMatches {
        rom: String,
        patch: String,
        expected: String,
        /// (which image, what it is: "has CRC32 c97d4234").
        tried: Vec<(String, String)>,
    },

    /// A patch that checks bytes as it goes (PPF, APS, text listings)
    /// found others.
    #[error(
        "{rom} does not match {patch}: the patch expects {} {expected}, this file has {actual}",
        crate::patch::expectation(what)
    )]
    Mismatch {
        rom: String,
        patch: String,
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// `create` could not write a patch of this format for these files.
    #[error("cannot create the {format} patch: {}", create_detail(.source))]
    Create {
        format: &'static str,
        source: PatchError,
    },

    #[error("{patch}: the patched image cannot be laid out again: {source}")]
    Restore { patch: String, source: SystemError },

    #[error("{rom}: {source}")]
    Rom { rom: String, source: SystemError },

    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// "this file's raw image has CRC32 ..., its normalized image has ...".
fn tried_list(tried: &[(String, String)]) -> String {
    tried
        .iter()
        .enumerate()
        .map(|(index, (image, fact))| {
            let whose = if index == 0 { "this file's" } else { "its" };
            format!("{whose} {image} {fact}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A patch's error on `rom`: a checksum mismatch names the ROM too.
fn patch_failure(rom: &str, patch: &str, source: PatchError) -> ApplyError {
    match source {
        PatchError::ChecksumMismatch {
            what,
            expected,
            actual,
            ..
        } => ApplyError::Mismatch {
            rom: rom.to_string(),
            patch: patch.to_string(),
            what,
            expected,
            actual,
        },
        source => ApplyError::Patch {
            patch: patch.to_string(),
            source,
        },
    }
}

/// Which deinterleaved image an application writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteBack {
    /// The image emulators play, as the mount's `deinterleaved/` shows it:
    /// a Famtasia/FFE dump becomes an iNES file.
    #[default]
    Playable,
    /// NINJA 2.0's own write-back: the dumped header put back as it was (an
    /// FFE dump keeps its FFE header), where NINJA exactness is the point.
    Ninja,
}

impl WriteBack {
    /// `layout` made to write this image.
    pub fn layout(self, layout: Layout) -> Layout {
        match self {
            WriteBack::Playable => layout,
            WriteBack::Ninja => layout.ninja_write_back(),
        }
    }
}

/// One patch's result: the deinterleaved image and how it was reached.
#[derive(Debug, Clone)]
pub struct Applied {
    pub image: Vec<u8>,
    pub layout: ImageLayout,
    /// A NINJA2 patch applied to its target gives back the source.
    pub reversed: bool,
}

/// The three layouts of one ROM image, computed once.
pub struct RomImage<'a> {
    pub raw: &'a [u8],
    pub layout: Layout,
    pub normalized: Cow<'a, [u8]>,
    /// `None` when the deinterleaved image is the normalized one (no header
    /// put back): images are large, and each copy costs its page faults.
    restored: Option<Vec<u8>>,
    write_back: WriteBack,
}

impl<'a> RomImage<'a> {
    /// The ROM with the deinterleaved image emulators play.
    pub fn new(raw: &'a [u8], layout: Layout) -> Result<RomImage<'a>, SystemError> {
        Self::with_write_back(raw, layout, WriteBack::Playable)
    }

    /// The ROM with the deinterleaved image `write_back` says.
    pub fn with_write_back(
        raw: &'a [u8],
        layout: Layout,
        write_back: WriteBack,
    ) -> Result<RomImage<'a>, SystemError> {
        let layout = write_back.layout(layout);
        let normalized = system::normalize(raw, &layout)?;
        let restored = match system::restore(&normalized, &layout)? {
            Cow::Borrowed(_) => None,
            Cow::Owned(image) => Some(image),
        };
        Ok(RomImage {
            raw,
            layout,
            normalized,
            restored,
            write_back,
        })
    }

    pub fn deinterleaved(&self) -> &[u8] {
        self.restored.as_deref().unwrap_or(&self.normalized)
    }

    /// The deinterleaved image, owned.
    pub fn into_deinterleaved(self) -> Vec<u8> {
        match self.restored {
            Some(image) => image,
            None => self.normalized.into_owned(),
        }
    }

    /// The distinct layouts, in the order patches are tried against them.
    fn candidates(&self) -> Vec<(ImageLayout, &[u8])> {
        let mut out: Vec<(ImageLayout, &[u8])> = vec![(ImageLayout::Raw, self.raw)];
        for (layout, bytes) in [
            (ImageLayout::Normalized, self.normalized.as_ref()),
            (ImageLayout::Deinterleaved, self.deinterleaved()),
        ] {
            if !out.iter().any(|(_, seen)| *seen == bytes) {
                out.push((layout, bytes));
            }
        }
        out
    }

    /// What a candidate layout's image is called in messages, with its
    /// verb: every layout with the same bytes, so the user sees all three
    /// were tried.
    fn image_label(&self, bytes: &[u8]) -> (String, &'static str) {
        let same: Vec<&str> = [
            ("raw", self.raw),
            ("normalized", self.normalized.as_ref()),
            ("deinterleaved", self.deinterleaved()),
        ]
        .into_iter()
        .filter(|(_, image)| *image == bytes)
        .map(|(name, _)| name)
        .collect();
        match same.as_slice() {
            [one] => (format!("{one} image"), "has"),
            [a, b] => (format!("{a} and {b} images"), "have"),
            _ => (
                "image (raw, normalized and deinterleaved alike)".to_string(),
                "has",
            ),
        }
    }

    /// `bytes`, a patched image in `layout`, as the deinterleaved image.
    fn to_deinterleaved(
        &self,
        bytes: Vec<u8>,
        layout: ImageLayout,
    ) -> Result<Vec<u8>, SystemError> {
        match layout {
            ImageLayout::Deinterleaved => Ok(bytes),
            ImageLayout::Normalized => restore_owned(bytes, &self.layout),
            ImageLayout::Raw => deinterleave_as(bytes, self.layout.system, self.write_back),
        }
    }
}

/// `normalized` restored, reusing its buffer when nothing is put back.
fn restore_owned(normalized: Vec<u8>, layout: &Layout) -> Result<Vec<u8>, SystemError> {
    Ok(match system::restore(&normalized, layout)? {
        Cow::Borrowed(_) => None,
        Cow::Owned(image) => Some(image),
    }
    .unwrap_or(normalized))
}

/// A whole file in some container of `system`, as its deinterleaved image;
/// the same buffer when it is one already.
fn deinterleave_as(
    raw: Vec<u8>,
    system: SystemType,
    write_back: WriteBack,
) -> Result<Vec<u8>, SystemError> {
    let layout = write_back.layout(system::analyze(&raw, system)?);
    if layout.deinterleaved_is_raw() {
        return Ok(raw);
    }
    let normalized = system::normalize(&raw, &layout)?;
    Ok(system::restore(&normalized, &layout)?.into_owned())
}

/// Applies one patch to a ROM. A patch that checks its source is tried on
/// the raw, normalized and deinterleaved image and applied where it fits;
/// one that cannot check (IPS, PPF 1.0, GDIFF), or any patch when checksums
/// are ignored, applies to the deinterleaved image. NINJA2 patches normalize
/// the ROM with each entry's own system type.
/// `rom_name` says what the ROM is in messages.
pub fn apply_patch(
    rom: &RomImage<'_>,
    rom_name: &str,
    patch_name: &str,
    patch: &Patch<'_>,
    opts: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let patch_error = |source| patch_failure(rom_name, patch_name, source);
    let restore_error = |source| ApplyError::Restore {
        patch: patch_name.to_string(),
        source,
    };
    if let Patch::Rup(rup) = patch {
        return apply_rup(rom, rom_name, patch_name, &rup.entries, opts, None);
    }
    if !patch.verifies_source() || opts.ignore_checksums {
        let image = patch
            .apply(rom.deinterleaved(), opts)
            .map_err(patch_error)?;
        return Ok(Applied {
            image,
            layout: ImageLayout::Deinterleaved,
            reversed: false,
        });
    }
    let mut tried = Vec::new();
    let mut expected = String::new();
    for (layout, bytes) in rom.candidates() {
        match patch.apply(bytes, opts) {
            Ok(out) => {
                let image = rom.to_deinterleaved(out, layout).map_err(restore_error)?;
                return Ok(Applied {
                    image,
                    layout,
                    reversed: false,
                });
            }
            Err(PatchError::ChecksumMismatch {
                expected: wanted,
                actual,
                what,
                ..
            }) => {
                expected = format!("{} {wanted}", crate::patch::expectation(what));
                let (image, has) = rom.image_label(bytes);
                tried.push((image, format!("{has} {actual}")));
            }
            Err(other) => return Err(patch_error(other)),
        }
    }
    Err(ApplyError::NoLayoutMatches {
        rom: rom_name.to_string(),
        patch: patch_name.to_string(),
        expected,
        tried,
    })
}

/// Undoes one patch on a ROM it patched (see [`Patch::revert`]): as
/// [`apply_patch`], a patch that checks what it reverts (the target's
/// checksum, a PPF block check, the listings' new bytes) is tried on the
/// raw, normalized and deinterleaved image; one that cannot check reverts
/// the deinterleaved image. A NINJA2 patch reverts where its target MD5
/// matches.
pub fn revert_patch(
    rom: &RomImage<'_>,
    rom_name: &str,
    patch_name: &str,
    patch: &Patch<'_>,
    opts: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let patch_error = |source| patch_failure(rom_name, patch_name, source);
    if let Patch::Rup(rup) = patch {
        return apply_rup(
            rom,
            rom_name,
            patch_name,
            &rup.entries,
            opts,
            Some(Direction::Reverse),
        );
    }
    if !patch.can_revert() {
        // The reason, before any image is tried.
        return Err(patch_error(patch.revert(&[], opts).err().unwrap_or(
            PatchError::Unsupported {
                format: patch.format().name(),
                detail: "it cannot be reverted".into(),
            },
        )));
    }
    let reverted = |layout: ImageLayout, image: Vec<u8>| Applied {
        image,
        layout,
        reversed: true,
    };
    // A PPF checks its records' bytes when it reverts, block check or not.
    let checks = patch.verifies_source() || matches!(patch, Patch::Ppf(_));
    if !checks || opts.ignore_checksums {
        let image = patch
            .revert(rom.deinterleaved(), opts)
            .map_err(patch_error)?;
        return Ok(reverted(ImageLayout::Deinterleaved, image));
    }
    let mut tried = Vec::new();
    let mut expected = String::new();
    for (layout, bytes) in rom.candidates() {
        match patch.revert(bytes, opts) {
            Ok(out) => {
                let image =
                    rom.to_deinterleaved(out, layout)
                        .map_err(|source| ApplyError::Restore {
                            patch: patch_name.to_string(),
                            source,
                        })?;
                return Ok(reverted(layout, image));
            }
            Err(PatchError::ChecksumMismatch {
                expected: wanted,
                actual,
                what,
                ..
            }) => {
                expected = format!("{} {wanted}", crate::patch::expectation(what));
                let (image, has) = rom.image_label(bytes);
                tried.push((image, format!("{has} {actual}")));
            }
            Err(other) => return Err(patch_error(other)),
        }
    }
    Err(ApplyError::NoLayoutMatches {
        rom: rom_name.to_string(),
        patch: patch_name.to_string(),
        expected,
        tried,
    })
}

/// NINJA2: every single-file entry is an alternative; the one whose MD5
/// matches the ROM normalized with the entry's type applies, forward or in
/// reverse (only in reverse when `wanted` says so). The result is written back in that type's deinterleaved layout,
/// then laid out as the ROM's own system.
fn apply_rup(
    rom: &RomImage<'_>,
    rom_name: &str,
    patch_name: &str,
    entries: &[RupEntry<'_>],
    opts: &ApplyOptions,
    wanted: Option<Direction>,
) -> Result<Applied, ApplyError> {
    let patch_error = |source| patch_failure(rom_name, patch_name, source);
    let reverting = wanted == Some(Direction::Reverse);
    let singles: Vec<&RupEntry<'_>> = match entries {
        [only] => vec![only],
        _ => entries.iter().filter(|e| e.name.is_none()).collect(),
    };
    if singles.is_empty() {
        return Err(patch_error(PatchError::Unsupported {
            format: crate::patch::rup::NAME,
            detail: "every file in this patch is named: apply it to a folder".into(),
        }));
    }
    let mut tried = Vec::new();
    for entry in &singles {
        let Some(entry_system) = SystemType::from_code(entry.system_type) else {
            continue;
        };
        let layout = match system::analyze(rom.raw, entry_system) {
            Ok(layout) => rom.write_back.layout(layout),
            Err(error) => {
                tried.push((
                    format!("image read as {entry_system}"),
                    format!("fails: {error}"),
                ));
                continue;
            }
        };
        let normalized = system::normalize(rom.raw, &layout).map_err(|source| ApplyError::Rom {
            rom: rom_name.to_string(),
            source,
        })?;
        let forced = singles.len() == 1 && opts.ignore_checksums;
        // Each image hashed once: the input and the result side by side.
        let crate::patch::rup::Hashed {
            input_digest: digest,
            applied: matched,
        } = entry
            .apply_if_matching(&normalized, wanted, opts)
            .map_err(patch_error)?;
        let direction = matched.as_ref().map(|(_, direction)| *direction);
        if direction.is_none() && forced && entry_system == SystemType::Raw {
            // Forced, a raw entry goes where patches without checksums go:
            // the deinterleaved image, not a copier header.
            let (image, direction) = entry
                .apply_normalized_in(rom.deinterleaved(), wanted, opts)
                .map_err(patch_error)?;
            return Ok(Applied {
                image,
                layout: ImageLayout::Deinterleaved,
                reversed: direction == Direction::Reverse,
            });
        }
        if direction.is_none() && !forced {
            tried.push((
                format!("image normalized as {entry_system}"),
                format!("has MD5 {}", crate::digest::hex(&digest)),
            ));
            continue;
        }
        let (out, direction) = match matched {
            Some(applied) => applied,
            None => entry
                .apply_normalized_with_digest(&normalized, &digest, wanted, opts)
                .map_err(patch_error)?,
        };
        let restore_error = |source| ApplyError::Restore {
            patch: patch_name.to_string(),
            source,
        };
        let in_entry_layout = restore_owned(out, &layout).map_err(restore_error)?;
        let (image, applied_layout) = if entry_system == rom.layout.system {
            (in_entry_layout, ImageLayout::Normalized)
        } else {
            (
                deinterleave_as(in_entry_layout, rom.layout.system, rom.write_back)
                    .map_err(restore_error)?,
                ImageLayout::Raw,
            )
        };
        return Ok(Applied {
            image,
            layout: applied_layout,
            reversed: direction == Direction::Reverse,
        });
    }
    // No entry matched the ROM normalized with its own type. Patches made
    // by other tools (RomPatcher.js writes type 0, no normalization) hash
    // whatever file their author had: try the ROM's own normalized and
    // deinterleaved images too, as for any patch that checks its source.
    for (layout, bytes) in rom.candidates() {
        if layout == ImageLayout::Raw {
            continue;
        }
        let digest = crate::digest::md5(bytes);
        let Some(entry) = singles.iter().find(|e| {
            SystemType::from_code(e.system_type).is_some()
                && ((!reverting && e.source_md5 == digest) || e.target_md5 == digest)
        }) else {
            let hex = crate::digest::hex(&digest);
            if !tried.iter().any(|(_, seen)| seen.ends_with(&hex)) {
                let (image, has) = match layout {
                    ImageLayout::Normalized => {
                        (format!("image normalized as {}", rom.layout.system), "has")
                    }
                    _ => rom.image_label(bytes),
                };
                tried.push((image, format!("{has} MD5 {hex}")));
            }
            continue;
        };
        let (out, direction) = entry
            .apply_normalized_with_digest(bytes, &digest, wanted, opts)
            .map_err(patch_error)?;
        let image = rom
            .to_deinterleaved(out, layout)
            .map_err(|source| ApplyError::Restore {
                patch: patch_name.to_string(),
                source,
            })?;
        return Ok(Applied {
            image,
            layout,
            reversed: direction == Direction::Reverse,
        });
    }
    let expected = singles
        .iter()
        .map(|e| match reverting {
            true => format!(
                "a target with MD5 {} (a file it patched, to undo it)",
                crate::digest::hex(&e.target_md5)
            ),
            false => format!(
                "a source with MD5 {} (or a target with MD5 {}, to undo it)",
                crate::digest::hex(&e.source_md5),
                crate::digest::hex(&e.target_md5)
            ),
        })
        .collect::<Vec<_>>()
        .join(", or ");
    Err(ApplyError::NoLayoutMatches {
        rom: rom_name.to_string(),
        patch: patch_name.to_string(),
        expected,
        tried,
    })
}

/// Applies `patches` in order; each applies to the previous result. The
/// output is the deinterleaved image emulators play.
pub fn apply_stack(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patches: &[(String, Patch<'_>)],
    opts: &ApplyOptions,
) -> Result<Vec<u8>, ApplyError> {
    apply_stack_with(rom_name, raw, forced, patches, opts, WriteBack::Playable)
}

/// [`apply_stack`] writing the deinterleaved image `write_back` says.
pub fn apply_stack_with(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patches: &[(String, Patch<'_>)],
    opts: &ApplyOptions,
    write_back: WriteBack,
) -> Result<Vec<u8>, ApplyError> {
    run_stack(
        rom_name,
        raw,
        forced,
        patches,
        opts,
        write_back,
        Step::Apply,
    )
}

/// Undoes `patches` on a ROM they patched, in the order given (name the
/// last one applied first); each undoes the previous result (see
/// [`revert_patch`]). The output is the deinterleaved image.
pub fn revert_stack(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patches: &[(String, Patch<'_>)],
    opts: &ApplyOptions,
) -> Result<Vec<u8>, ApplyError> {
    revert_stack_with(rom_name, raw, forced, patches, opts, WriteBack::Playable)
}

/// [`revert_stack`] writing the deinterleaved image `write_back` says.
pub fn revert_stack_with(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patches: &[(String, Patch<'_>)],
    opts: &ApplyOptions,
    write_back: WriteBack,
) -> Result<Vec<u8>, ApplyError> {
    run_stack(
        rom_name,
        raw,
        forced,
        patches,
        opts,
        write_back,
        Step::Revert,
    )
}

/// What each patch of a stack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Apply,
    Revert,
}

fn run_stack(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patches: &[(String, Patch<'_>)],
    opts: &ApplyOptions,
    write_back: WriteBack,
    step: Step,
) -> Result<Vec<u8>, ApplyError> {
    let rom_error = |source| ApplyError::Rom {
        rom: rom_name.to_string(),
        source,
    };
    let layout = system::identify(Some(rom_name), raw, forced).map_err(rom_error)?;
    let system = layout.system;
    let mut image = RomImage::with_write_back(raw, layout, write_back).map_err(rom_error)?;
    let mut owned: Vec<u8>;
    // After the first step the image is no longer the file as it is.
    let mut described = rom_name.to_string();
    for (index, (name, patch)) in patches.iter().enumerate() {
        let applied = match step {
            Step::Apply => apply_patch(&image, &described, name, patch, opts)?,
            Step::Revert => revert_patch(&image, &described, name, patch, opts)?,
        };
        described = if index == 0 {
            let done = match step {
                Step::Apply => "patched",
                Step::Revert => "reverted",
            };
            format!("{rom_name} {done} with {name}")
        } else {
            format!("{described} and {name}")
        };
        log_applied(name, applied.layout, applied.reversed);
        owned = applied.image;
        if index + 1 == patches.len() {
            return Ok(owned);
        }
        // The next step starts from this result, read as the same system.
        let layout = system::analyze(&owned, system).map_err(rom_error)?;
        image = RomImage::with_write_back(&owned, layout, write_back).map_err(rom_error)?;
    }
    Ok(image.into_deinterleaved())
}

/// Says in the log which image patch `name` applied to.
fn log_applied(name: &str, layout: ImageLayout, reversed: bool) {
    log::info!(
        "{name}: applied to the {layout} image{}",
        if reversed { ", in reverse" } else { "" }
    );
}

/// Every regular file under `dir`, as sorted relative paths with `/`.
pub fn list_files(dir: &Path) -> Result<Vec<String>, ApplyError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ApplyError> {
        let io_error = |source| ApplyError::Io {
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_error)?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file()
                && let Ok(relative) = path.strip_prefix(root)
            {
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Applies a multi-file NINJA2 patch to the files of `dir`: each named
/// entry to the file at its relative path (a missing file counts as empty),
/// each in its own direction. Returns the new contents by relative path.
pub fn apply_rup_to_folder(
    dir: &Path,
    patch_name: &str,
    patch: &RupPatch<'_>,
    opts: &ApplyOptions,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    apply_rup_to_folder_with(dir, patch_name, patch, opts, WriteBack::Playable)
}

/// [`apply_rup_to_folder`] writing the deinterleaved images `write_back`
/// says.
pub fn apply_rup_to_folder_with(
    dir: &Path,
    patch_name: &str,
    patch: &RupPatch<'_>,
    opts: &ApplyOptions,
    write_back: WriteBack,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    rup_in_folder(dir, patch_name, patch, opts, write_back, None)
}

/// [`apply_rup_to_folder_with`] with every entry undone: each file must be
/// the entry's target, and becomes its source.
pub fn revert_rup_in_folder(
    dir: &Path,
    patch_name: &str,
    patch: &RupPatch<'_>,
    opts: &ApplyOptions,
    write_back: WriteBack,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    rup_in_folder(
        dir,
        patch_name,
        patch,
        opts,
        write_back,
        Some(Direction::Reverse),
    )
}

fn rup_in_folder(
    dir: &Path,
    patch_name: &str,
    patch: &RupPatch<'_>,
    opts: &ApplyOptions,
    write_back: WriteBack,
    wanted: Option<Direction>,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    let mut results = Vec::new();
    for entry in &patch.entries {
        let Some(name) = &entry.name else {
            return Err(ApplyError::Patch {
                patch: patch_name.to_string(),
                source: PatchError::Unsupported {
                    format: crate::patch::rup::NAME,
                    detail: "it holds an unnamed entry: apply it to a file, not a folder".into(),
                },
            });
        };
        let path = dir.join(name);
        let raw = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(ApplyError::Io { path, source }),
        };
        let file_name = format!("{patch_name} ({name})");
        let system = SystemType::from_code(entry.system_type).unwrap_or(SystemType::Raw);
        let rom_error = |source| ApplyError::Rom {
            rom: path.display().to_string(),
            source,
        };
        let layout = system::analyze(&raw, system).map_err(rom_error)?;
        let image = RomImage::with_write_back(&raw, layout, write_back).map_err(rom_error)?;
        let rom_name = path.display().to_string();
        let applied = apply_rup(
            &image,
            &rom_name,
            &file_name,
            std::slice::from_ref(entry),
            opts,
            wanted,
        )?;
        results.push((name.clone(), applied.image));
    }
    Ok(results)
}

/// A lone NINJA2 patch checked against a ROM, its result not yet made:
/// [`CheckedRup::write_to`] makes it piece by piece into a writer, so a
/// whole image is never held in memory (nor its fresh pages faulted in,
/// most of an apply's time after the two MD5s).
pub struct CheckedRup<'a> {
    /// The header the deinterleaved image starts with, if any.
    header: Vec<u8>,
    entry: &'a RupEntry<'a>,
    normalized: &'a [u8],
    direction: Direction,
}

impl CheckedRup<'_> {
    /// Writes the deinterleaved result: only writing can fail now.
    pub fn write_to(&self, sink: &mut dyn std::io::Write) -> std::io::Result<()> {
        sink.write_all(&self.header)?;
        self.entry
            .write_checked(self.normalized, self.direction, sink)
    }
}

/// Checks a lone NINJA2 patch against a ROM without building the result,
/// where that result is the ROM's own deinterleaved image patched: an entry
/// of the ROM's system, a normalized image that is a slice of the file, and
/// at most a header put back before it. `None` when this does not hold or
/// the entry does not match (or checksums are ignored): [`apply_stack_with`]
/// then applies the patch, or says in full why it does not apply.
#[allow(clippy::too_many_arguments)] // apply_stack_with's inputs, and the direction
pub fn check_rup_in_pieces<'a>(
    rom_name: &str,
    raw: &'a [u8],
    forced: Option<SystemType>,
    patch_name: &str,
    patch: &'a RupPatch<'a>,
    opts: &ApplyOptions,
    write_back: WriteBack,
    revert: bool,
) -> Result<Option<CheckedRup<'a>>, ApplyError> {
    let [entry] = patch.entries.as_slice() else {
        return Ok(None);
    };
    let Ok(identified) = system::identify(Some(rom_name), raw, forced) else {
        return Ok(None);
    };
    if SystemType::from_code(entry.system_type) != Some(identified.system) {
        return Ok(None);
    }
    // The entry's own reading of the file, as the whole apply makes it.
    let Ok(layout) = system::analyze(raw, identified.system) else {
        return Ok(None);
    };
    if layout.header == Some(system::HeaderKind::Unif) {
        return Ok(None);
    }
    let layout = write_back.layout(layout);
    let header = match &layout.conversion {
        None => layout.header_bytes.clone(),
        Some(system::Conversion::Header(header)) => header.clone(),
        Some(_) => return Ok(None),
    };
    let Ok(Cow::Borrowed(normalized)) = system::normalize(raw, &layout) else {
        return Ok(None);
    };
    let wanted = revert.then_some(Direction::Reverse);
    let checked = entry
        .check_in_pieces(normalized, wanted, opts)
        .map_err(|source| patch_failure(rom_name, patch_name, source))?;
    Ok(checked.map(|direction| {
        log_applied(
            patch_name,
            ImageLayout::Normalized,
            direction == Direction::Reverse,
        );
        CheckedRup {
            header,
            entry,
            normalized,
            direction,
        }
    }))
}

/// Applies a lone VCDIFF patch window by window into `sink`, as xdelta3
/// does, instead of building the whole target in memory: the result is the
/// same deinterleaved image `apply_stack` makes (VCDIFF applies to the
/// deinterleaved image and its output is kept as it is).
pub fn stream_vcdiff(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patch_name: &str,
    patch: &crate::patch::vcdiff::VcdiffPatch<'_>,
    opts: &ApplyOptions,
    sink: &mut dyn std::io::Write,
) -> Result<(), StreamFailure> {
    let playable = WriteBack::Playable;
    stream_vcdiff_with(
        rom_name, raw, forced, patch_name, patch, opts, playable, sink,
    )
}

/// [`stream_vcdiff`] writing the image `write_back` says.
#[allow(clippy::too_many_arguments)] // stream_vcdiff's inputs, and the layout
pub fn stream_vcdiff_with(
    rom_name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    patch_name: &str,
    patch: &crate::patch::vcdiff::VcdiffPatch<'_>,
    opts: &ApplyOptions,
    write_back: WriteBack,
    sink: &mut dyn std::io::Write,
) -> Result<(), StreamFailure> {
    let rom_error = |source| ApplyError::Rom {
        rom: rom_name.to_string(),
        source,
    };
    let layout = system::identify(Some(rom_name), raw, forced).map_err(rom_error)?;
    let image = RomImage::with_write_back(raw, layout, write_back).map_err(rom_error)?;
    let mut sink = sink;
    match patch.apply_to_writer(image.deinterleaved(), opts, &mut sink) {
        Ok(_) => Ok(()),
        Err(crate::patch::vcdiff::StreamError::Write(error)) => Err(StreamFailure::Write(error)),
        Err(crate::patch::vcdiff::StreamError::Patch(source)) => Err(StreamFailure::Apply(
            patch_failure(rom_name, patch_name, source),
        )),
    }
}

/// Why streaming a patch stopped: the patch, or the output.
#[derive(Debug, thiserror::Error)]
pub enum StreamFailure {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    Write(std::io::Error),
}
