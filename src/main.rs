//! The `ninja-fs` command line: parse, call the library, print.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ninja_fs::apply::{self, ApplyError, WriteBack};
use ninja_fs::files::{self, FileError, Output};
use ninja_fs::patch::any::{Patch, PatchFormat};
use ninja_fs::patch::rup::{RupInfo, TextEncoding};
use ninja_fs::patch::{ApplyOptions, Limits, PatchError};
use ninja_fs::report::RomReport;
use ninja_fs::system::{self, SystemError, SystemType};
use ninja_fs::views::NinjaFs;

#[derive(Parser)]
#[command(
    name = "ninja-fs",
    version,
    about = "NINJA 2.0's ROM normalization made exact, and the patch formats people use"
)]
struct Cli {
    /// More log output (repeat for more); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what each ROM is (system, headers, interleave, internal header,
    /// checksums) or what each patch holds (format, sizes, checksums, metadata).
    Info {
        #[arg(required = true)]
        roms: Vec<PathBuf>,
        /// Print stable JSON (an array, one object per file) instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every file as a ROM of this system instead of detecting it.
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
    },
    /// Write NINJA's common format: headerless, deinterleaved, big-endian.
    Normalize(ConvertArgs),
    /// Write the layout emulators play: deinterleaved, with iNES/UNIF/LNX headers kept,
    /// copier and NSRT headers dropped, and a Famtasia/FFE dump made an iNES file.
    Deinterleave(ConvertArgs),
    /// Apply patches in order (a stack); the output is the deinterleaved image.
    ///
    /// A patch that carries a checksum applies to whichever of the raw, normalized
    /// and deinterleaved images it matches; one without applies to the deinterleaved
    /// image. A folder and a multi-file NINJA2 patch give a patched copy of the folder.
    Apply {
        /// The ROM (or, for a multi-file .rup, a folder).
        rom: PathBuf,
        #[arg(required = true)]
        patches: Vec<PathBuf>,
        /// Output file (- for standard output) or, for a folder, output folder.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
        /// Apply even when a patch's checksums do not match.
        #[arg(long)]
        ignore_checksum: bool,
        /// Write the dumped header back as NINJA 2.0 did (a Famtasia/FFE dump keeps its
        /// FFE header, a SNES dump its NSRT header) instead of the form emulators play.
        #[arg(long)]
        keep_header: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Make a patch from ORIGINAL to MODIFIED (two files, or two folders for rup).
    Create {
        original: PathBuf,
        modified: PathBuf,
        #[arg(short, long, value_name = "PATCH")]
        output: PathBuf,
        /// rup bps ips ups ppf aps gdiff pat ffp fc (default: from PATCH's extension).
        #[arg(long, value_name = "FORMAT")]
        format: Option<PatchFormat>,
        /// Read both as this system (rup: the entry's type; default: detected).
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
        #[command(flatten)]
        metadata: RupMetadata,
        /// Replace PATCH if it exists.
        #[arg(long)]
        force: bool,
    },
    // --- mount / unmount (FUSE) ---
    /// Show every ROM under BACKING as normalized, deinterleaved and patched
    /// files at MOUNTPOINT (read-only). Returns once the mount is ready.
    Mount(MountArgs),
    /// Unmount a ninja-fs mount.
    Unmount { mountpoint: PathBuf },
}

#[derive(clap::Args)]
struct LimitArgs {
    /// Largest image a patch may make (protects against hostile patches).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = files::parse_size)]
    max_size: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_image_size: self.max_size,
        }
    }
}

/// NINJA2 metadata (rup only).
#[derive(clap::Args)]
struct RupMetadata {
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    author: Option<String>,
    #[arg(long)]
    version: Option<String>,
    #[arg(long)]
    genre: Option<String>,
    #[arg(long)]
    language: Option<String>,
    /// YYYYMMDD.
    #[arg(long)]
    date: Option<String>,
    #[arg(long)]
    website: Option<String>,
    /// Free text; a line break is written as the two characters \n.
    #[arg(long)]
    description: Option<String>,
}

impl RupMetadata {
    fn info(&self) -> RupInfo {
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        RupInfo {
            title: field(&self.title),
            author: field(&self.author),
            version: field(&self.version),
            genre: field(&self.genre),
            language: field(&self.language),
            date: field(&self.date),
            website: field(&self.website),
            description: field(&self.description).replace('\n', "\\n"),
            encoding: TextEncoding::Utf8,
        }
    }

    fn is_empty(&self) -> bool {
        [
            &self.title,
            &self.author,
            &self.version,
            &self.genre,
            &self.language,
            &self.date,
            &self.website,
            &self.description,
        ]
        .iter()
        .all(|v| v.is_none())
    }
}

#[derive(clap::Args)]
struct ConvertArgs {
    rom: PathBuf,
    /// Output file, or - for standard output.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Read the ROM as this system (raw nes fds snes n64 gb sms mega pce lynx).
    #[arg(long, value_name = "TYPE")]
    system: Option<SystemType>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
}

/// A failure, already worded for the user.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: {source}", path.display())]
    System { path: PathBuf, source: SystemError },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{}: {source}", path.display())]
    Patch { path: PathBuf, source: PatchError },
    #[error("{0}")]
    Reported(String),
}

fn system_error(path: &Path) -> impl FnOnce(SystemError) -> CliError + '_ {
    move |source| CliError::System {
        path: path.to_path_buf(),
        source,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // fuser's session warns that it "failed to umount" whenever the mount
    // was unmounted from outside (`ninja-fs unmount`, `umount`), which is
    // the normal way: only -vv shows its messages below errors.
    let level = match cli.verbose {
        // The mount's info lines say which files it leaves out and why.
        0 if matches!(cli.command, Command::Mount(_)) => "warn,ninja_fs=info,fuser::session=error",
        0 => "warn,fuser::session=error",
        1 => "info,fuser::session=error",
        2 => "debug",
        _ => "trace",
    };
    ninja_fs::logging::init(level);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ninja-fs: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Info { roms, json, system } => info(&roms, json, system),
        Command::Normalize(args) => convert(&args, false),
        Command::Deinterleave(args) => convert(&args, true),
        Command::Apply {
            rom,
            patches,
            output,
            system,
            ignore_checksum,
            keep_header,
            limits,
            force,
        } => {
            let opts = ApplyOptions {
                limits: limits.limits(),
                ignore_checksums: ignore_checksum,
            };
            let write_back = if keep_header {
                WriteBack::Ninja
            } else {
                WriteBack::Playable
            };
            if rom.is_dir() {
                apply_to_folder(&rom, &patches, &output, &opts, write_back, force)
            } else {
                let output = Output::new(&output, force);
                apply_to_file(&rom, &patches, &output, system, &opts, write_back)
            }
        }
        Command::Create {
            original,
            modified,
            output,
            format,
            system,
            metadata,
            force,
        } => create(
            &original, &modified, &output, format, system, &metadata, force,
        ),
        Command::Mount(args) => run_mount(&args),
        Command::Unmount { mountpoint } => run_unmount(&mountpoint),
    }
}

fn info(paths: &[PathBuf], json: bool, forced: Option<SystemType>) -> Result<(), CliError> {
    let mut tables = Vec::new();
    let mut objects = Vec::new();
    let mut failures = 0;
    for path in paths {
        match describe_file(path, forced) {
            Ok((table, object)) => {
                tables.push(table);
                objects.push(object);
            }
            Err(error) => {
                eprintln!("ninja-fs: {error}");
                failures += 1;
            }
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&objects)
            .map_err(|e| CliError::Reported(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", tables.join("\n"));
    }
    if failures > 0 {
        return Err(CliError::Reported(format!(
            "{failures} of {} files could not be read",
            paths.len()
        )));
    }
    Ok(())
}

/// The info table and JSON object of one file, a patch or a ROM.
fn describe_file(
    path: &Path,
    forced: Option<SystemType>,
) -> Result<(String, serde_json::Value), CliError> {
    let bytes = files::read_input(path)?;
    let name = path.display().to_string();
    if forced.is_none()
        && let Some(format) = PatchFormat::detect(Some(&name), &bytes)
    {
        let patch =
            Patch::parse(format, &bytes, &Limits::default()).map_err(|source| CliError::Patch {
                path: path.to_path_buf(),
                source,
            })?;
        let rows = patch.describe();
        let summary = patch.summary();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut table = format!("{}\n", ninja_fs::text::str_as_text(&name));
        for (key, value) in &rows {
            // A value of several lines (NINJA2 descriptions) is indented.
            for line in format!("  {key:<width$}  {value}").lines() {
                table.push_str(line.trim_end());
                table.push('\n');
            }
        }
        let object = serde_json::json!({
            "file": name,
            "patch": {
                "format": format.name(),
                "source_size": summary.source_size,
                "target_size": summary.target_size,
                "source_checksum": summary.source_checksum.map(|c| c.to_string()),
                "target_checksum": summary.target_checksum.map(|c| c.to_string()),
                "details": rows,
            }
        });
        return Ok((table, object));
    }
    let report = RomReport::build(&name, &bytes, forced).map_err(system_error(path))?;
    let object = serde_json::to_value(&report)
        .map_err(|e| CliError::Reported(format!("cannot write JSON: {e}")))?;
    Ok((report.to_text(), object))
}

fn convert(args: &ConvertArgs, deinterleave: bool) -> Result<(), CliError> {
    let output = Output::new(&args.output, args.force);
    output.check(&[&args.rom])?;
    let raw = files::read_input(&args.rom)?;
    let name = args.rom.to_string_lossy();
    let layout =
        system::identify(Some(&name), &raw, args.system).map_err(system_error(&args.rom))?;
    let normalized = system::normalize(&raw, &layout).map_err(system_error(&args.rom))?;
    log::info!(
        "{}: {} ({}), {} -> {} bytes",
        args.rom.display(),
        layout.system.word(),
        layout.interleave.name(),
        raw.len(),
        normalized.len()
    );
    if deinterleave {
        let restored = system::restore(&normalized, &layout).map_err(system_error(&args.rom))?;
        output.write(&restored)?;
    } else {
        output.write(&normalized)?;
    }
    Ok(())
}

/// A patch file read and its format found.
struct PatchFile {
    path: PathBuf,
    bytes: files::Input,
    format: PatchFormat,
}

fn read_patch(path: &Path) -> Result<PatchFile, CliError> {
    let bytes = files::read_input(path)?;
    let format = PatchFormat::detect(Some(&path.to_string_lossy()), &bytes).ok_or_else(|| {
        CliError::Reported(format!(
            "{}: not a patch this tool knows (IPS, UPS, BPS, PPF, NINJA2 RUP, APS, EBP, GDIFF, PAT, FFP, fc /b)",
            path.display()
        ))
    })?;
    Ok(PatchFile {
        path: path.to_path_buf(),
        bytes,
        format,
    })
}

fn parse_patch<'a>(file: &'a PatchFile, limits: &Limits) -> Result<Patch<'a>, CliError> {
    Patch::parse(file.format, &file.bytes, limits).map_err(|source| CliError::Patch {
        path: file.path.clone(),
        source,
    })
}

fn apply_to_file(
    rom: &Path,
    patch_paths: &[PathBuf],
    output: &Output,
    forced: Option<SystemType>,
    opts: &ApplyOptions,
    write_back: WriteBack,
) -> Result<(), CliError> {
    let mut inputs: Vec<&Path> = vec![rom];
    inputs.extend(patch_paths.iter().map(PathBuf::as_path));
    output.check(&inputs)?;
    let raw = files::read_input(rom)?;
    let patch_files = patch_paths
        .iter()
        .map(|p| read_patch(p))
        .collect::<Result<Vec<_>, _>>()?;
    let patches = patch_files
        .iter()
        .map(|f| Ok((f.path.display().to_string(), parse_patch(f, &opts.limits)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    let rom_name = rom.display().to_string();
    if let ([(name, Patch::Vcdiff(vcdiff))], true) = (patches.as_slice(), output.is_file()) {
        // xdelta patches of large images: written as each window is made.
        let mut failure = None;
        let written = output.write_streamed(|sink| {
            apply::stream_vcdiff_with(
                &rom_name, &raw, forced, name, vcdiff, opts, write_back, sink,
            )
            .map_err(|error| match error {
                apply::StreamFailure::Write(error) => error,
                apply::StreamFailure::Apply(error) => {
                    failure = Some(error);
                    std::io::Error::other("the patch failed")
                }
            })
        });
        return match (failure, written) {
            (Some(error), _) => Err(error.into()),
            (None, written) => Ok(written?),
        };
    }
    let image = apply::apply_stack_with(&rom_name, &raw, forced, &patches, opts, write_back)?;
    output.write(&image)?;
    Ok(())
}

fn apply_to_folder(
    dir: &Path,
    patch_paths: &[PathBuf],
    output: &Path,
    opts: &ApplyOptions,
    write_back: WriteBack,
    force: bool,
) -> Result<(), CliError> {
    let [patch_path] = patch_paths else {
        return Err(CliError::Reported(
            "a folder takes exactly one multi-file .rup patch".into(),
        ));
    };
    files::check_folder_output(dir, output, force)?;
    let file = read_patch(patch_path)?;
    let Patch::Rup(rup) = parse_patch(&file, &opts.limits)? else {
        return Err(CliError::Reported(format!(
            "{}: only NINJA2 .rup patches apply to a folder",
            patch_path.display()
        )));
    };
    let patched = apply::apply_rup_to_folder_with(
        dir,
        &patch_path.display().to_string(),
        &rup,
        opts,
        write_back,
    )?;
    files::write_folder_copy(dir, output, &patched, force)?;
    Ok(())
}

fn create(
    original: &Path,
    modified: &Path,
    output: &Path,
    format: Option<PatchFormat>,
    forced: Option<SystemType>,
    metadata: &RupMetadata,
    force: bool,
) -> Result<(), CliError> {
    let format = match format {
        Some(format) => format,
        None => PatchFormat::from_extension(&output.to_string_lossy())
            .filter(|f| f.can_create())
            .ok_or_else(|| {
                CliError::Reported(format!(
                    "{}: cannot tell the patch format from the name; say --format rup, bps, ips or ups",
                    output.display()
                ))
            })?,
    };
    if format != PatchFormat::Rup && !metadata.is_empty() {
        return Err(CliError::Reported(format!(
            "--title, --author and the other metadata options are for rup patches, not {format}"
        )));
    }
    let out = Output::new(output, force);
    out.check(&[original, modified])?;
    let info = if metadata.is_empty() {
        RupInfo::default()
    } else {
        metadata.info()
    };
    let patch = match (original.is_dir(), modified.is_dir()) {
        (true, true) if format == PatchFormat::Rup => {
            ninja_fs::create::create_for_folders(original, modified, forced, &info)?
        }
        (false, false) => {
            ninja_fs::create::create_for_files(format, original, modified, forced, &info)?
        }
        (true, true) => {
            return Err(CliError::Reported(format!(
                "patches between folders are rup patches; {format} holds one file"
            )));
        }
        _ => {
            return Err(CliError::Reported(
                "ORIGINAL and MODIFIED must both be files or both be folders".into(),
            ));
        }
    };
    out.write(&patch)?;
    Ok(())
}

// --- mount / unmount (FUSE) ---

#[derive(clap::Args)]
struct MountArgs {
    /// The folder of ROMs and patches (never modified).
    backing: PathBuf,
    /// An empty folder.
    mountpoint: PathBuf,
    /// Stay in the foreground, logging to stderr; Ctrl-C unmounts.
    #[arg(short, long)]
    foreground: bool,
    /// Memory for images computed on first read.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = files::parse_size)]
    cache_size: u64,
    /// Let other users read the mount.
    #[arg(long)]
    allow_other: bool,
    /// Do not keep header analyses in ~/.cache/ninja-fs (every mount then
    /// reads every file's headers again).
    #[arg(long)]
    no_header_cache: bool,
}

impl From<ninja_fs::mount::MountError> for CliError {
    fn from(error: ninja_fs::mount::MountError) -> Self {
        CliError::Reported(error.to_string())
    }
}

fn run_mount(args: &MountArgs) -> Result<(), CliError> {
    use ninja_fs::mount::{self, MountOptions};
    mount::check_backing(&args.backing)?;
    mount::check_mount_point(&args.mountpoint)?;
    mount::check_outside_backing(&args.backing, &args.mountpoint)?;
    // The background process works from /: hand the core an absolute path.
    let backing = std::fs::canonicalize(&args.backing).map_err(|error| {
        CliError::Reported(format!(
            "backing folder {}: {error}",
            args.backing.display()
        ))
    })?;
    let opts = MountOptions {
        foreground: args.foreground,
        allow_other: args.allow_other,
        fs_name: format!("ninja-fs:{}", backing.display()),
        ..MountOptions::default()
    };
    let cache_size = args.cache_size;
    // Images are large and short-lived, and freed by whichever of the
    // daemon's threads drops them last. With one heap for all threads a
    // freed image is reused by the next one; per-thread heaps keep freed
    // images where only their own thread can reuse them, and the daemon
    // then grows well past its cache bound (measured: 76 MiB against
    // 134 MiB reading 1,000 variants through a 64 MiB cache). The daemon's
    // few, large allocations do not contend for the one heap.
    // SAFETY: mallopt only tunes the allocator; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let header_cache = if args.no_header_cache {
        None
    } else {
        let dir = ninja_fs::library::header_cache::default_dir();
        if dir.is_none() {
            log::warn!("no header cache: neither XDG_CACHE_HOME nor HOME is an absolute path");
        }
        dir
    };
    mount::mount(
        || {
            let fs = NinjaFs::new(&backing, cache_size, Limits::default())?;
            if let Some(dir) = &header_cache {
                fs.library().use_header_cache(dir);
            }
            Ok(fs)
        },
        &args.mountpoint,
        &opts,
    )?;
    Ok(())
}

fn run_unmount(mountpoint: &Path) -> Result<(), CliError> {
    ninja_fs::mount::unmount(mountpoint)?;
    Ok(())
}
