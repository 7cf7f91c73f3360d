//! Making patches from ROMs: NINJA2 patches from normalized images (one
//! file or two folders), every other format from deinterleaved images, the
//! layout patch authors target and `apply` tries first for formats without
//! checksums.

use std::path::Path;

use crate::apply::{ApplyError, list_files};
use crate::patch::any::{self, PatchFormat};
use crate::patch::rup::{self, CreateEntry, RupInfo};
use crate::system::{self, SystemType};

/// A ROM read for patch making: the image the format diffs, and the system
/// type it was read as.
struct Image {
    bytes: Vec<u8>,
    system: SystemType,
}

fn read_image(
    path: &Path,
    forced: Option<SystemType>,
    normalized: bool,
) -> Result<Image, ApplyError> {
    let raw = std::fs::read(path).map_err(|source| ApplyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    image_of(&path.to_string_lossy(), &raw, forced, normalized)
}

/// The image of ROM `raw`, named `name` (detection reads its extension).
fn image_of(
    name: &str,
    raw: &[u8],
    forced: Option<SystemType>,
    normalized: bool,
) -> Result<Image, ApplyError> {
    let rom_error = |source| ApplyError::Rom {
        rom: name.to_string(),
        source,
    };
    let layout = system::identify(Some(name), raw, forced).map_err(rom_error)?;
    let norm = system::normalize(raw, &layout).map_err(rom_error)?;
    let bytes = if normalized {
        norm.into_owned()
    } else {
        system::restore(&norm, &layout)
            .map_err(rom_error)?
            .into_owned()
    };
    Ok(Image {
        bytes,
        system: layout.system,
    })
}

/// A patch from `original` to `modified` (both files). For RUP the system
/// is the original's (detected, or `forced`), and both are normalized as
/// that system.
pub fn create_for_files(
    format: PatchFormat,
    original: &Path,
    modified: &Path,
    forced: Option<SystemType>,
    info: &RupInfo,
) -> Result<Vec<u8>, ApplyError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ApplyError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let (from, to) = (read(original)?, read(modified)?);
    create_for_images(
        format,
        (&original.to_string_lossy(), &from),
        (&modified.to_string_lossy(), &to),
        forced,
        info,
    )
}

/// [`create_for_files`] for ROMs already read (an archive's members), each
/// given with the name detection reads.
pub fn create_for_images(
    format: PatchFormat,
    (original_name, original): (&str, &[u8]),
    (modified_name, modified): (&str, &[u8]),
    forced: Option<SystemType>,
    info: &RupInfo,
) -> Result<Vec<u8>, ApplyError> {
    let patch_error = |source| ApplyError::Create {
        format: format.name(),
        source,
    };
    let normalized = format == PatchFormat::Rup;
    let source = image_of(original_name, original, forced, normalized)?;
    let target = image_of(modified_name, modified, Some(source.system), normalized)?;
    if format == PatchFormat::Rup {
        let entry = CreateEntry {
            name: None,
            system_type: source.system.code(),
            source: &source.bytes,
            target: &target.bytes,
        };
        return rup::create(&[entry], info).map_err(patch_error);
    }
    any::create(format, &source.bytes, &target.bytes).map_err(patch_error)
}

/// Which files of two folders a multi-file patch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FolderDepth {
    /// The files directly in each folder, as NINJA 2.0 took them: its
    /// patch for the same folders is byte for byte this one.
    #[default]
    TopLevel,
    /// Every file under each folder, subfolders included (`sub/c.bin`).
    Recursive,
}

/// A multi-file NINJA2 patch from folder `original` to folder `modified`:
/// one named entry for every file that differs, in sorted path order, each
/// of its own detected system (or `forced`). A file only in `modified` is
/// made from an empty one; a file only in `original` becomes empty.
pub fn create_for_folders(
    original: &Path,
    modified: &Path,
    forced: Option<SystemType>,
    info: &RupInfo,
    depth: FolderDepth,
) -> Result<Vec<u8>, ApplyError> {
    let listed = |dir: &Path| match depth {
        FolderDepth::TopLevel => top_level_files(dir),
        FolderDepth::Recursive => list_files(dir),
    };
    let mut names = listed(original)?;
    names.extend(listed(modified)?);
    names.sort();
    names.dedup();
    let mut images = Vec::new();
    for name in &names {
        let (from, to) = (original.join(name), modified.join(name));
        let read = |path: &Path, system: Option<SystemType>| -> Result<Image, ApplyError> {
            if path.exists() {
                read_image(path, system, true)
            } else {
                Ok(Image {
                    bytes: Vec::new(),
                    system: system.unwrap_or(SystemType::Raw),
                })
            }
        };
        let source = read(&from, forced)?;
        let target = read(&to, Some(source.system))?;
        if source.bytes != target.bytes {
            images.push((name.as_str(), source, target));
        }
    }
    let entries: Vec<CreateEntry<'_>> = images
        .iter()
        .map(|(name, source, target)| CreateEntry {
            name: Some(name),
            system_type: source.system.code(),
            source: &source.bytes,
            target: &target.bytes,
        })
        .collect();
    rup::create(&entries, info).map_err(|source| ApplyError::Create {
        format: rup::NAME,
        source,
    })
}

/// The regular files directly in `dir`, sorted by name.
fn top_level_files(dir: &Path) -> Result<Vec<String>, ApplyError> {
    let io_error = |source| ApplyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if entry.file_type().map_err(io_error)?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
