//! The `ninja-fs` command line: parse, call the library, print.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
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

    /// The S3-compatible store that s3://BUCKET/KEY names are read from
    /// (e.g. http://127.0.0.1:9000); else AWS_ENDPOINT_URL, the profile's
    /// endpoint_url, or AWS S3 itself.
    #[arg(long, global = true, value_name = "URL")]
    s3_endpoint: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what each ROM is (system, headers, interleave, internal header,
    /// checksums) or what each patch holds (format, sizes, checksums, metadata).
    Info {
        /// ROMs and patches to describe (each is told apart by its content).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print stable JSON (an array, one object per file) instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every file as a ROM of this system instead of detecting it.
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
        /// Check each ROM against the DATs at PATH: a Logiqx XML or clrmamepro DAT, a
        /// folder of them (searched recursively) or a .zip of them. Repeatable.
        #[arg(long, value_name = "PATH")]
        dat: Vec<PathBuf>,
    },
    /// Write NINJA's common format: headerless, deinterleaved, big-endian.
    Normalize(ConvertArgs),
    /// Write the layout emulators play: deinterleaved, with iNES/UNIF/LNX headers kept,
    /// copier and NSRT headers dropped, and a Famtasia/FFE dump made an iNES file.
    Deinterleave(ConvertArgs),
    /// Write the deinterleaved image (as deinterleave does) with its internal checksums
    /// recomputed, and say which fields changed (old -> new).
    ///
    /// SNES checksum and complement, Game Boy header and global checksums, Mega Drive
    /// and Master System / Game Gear checksums, N64 CRC1/CRC2 (CIC 6101, 6102, 6103,
    /// 6105, 6106) and the GBA header complement. A ROM of another system, or with no
    /// header, is refused and nothing is written.
    FixChecksum(ConvertArgs),
    /// Apply patches in order (a stack); the output is the deinterleaved image.
    ///
    /// A patch that carries a checksum applies to whichever of the raw, normalized
    /// and deinterleaved images it matches; one without applies to the deinterleaved
    /// image. A folder and a multi-file NINJA2 patch give a patched copy of the folder.
    Apply {
        /// The ROM (or, for a multi-file .rup, a folder).
        rom: PathBuf,
        /// Patches to apply, in order (any format ninja-fs reads).
        #[arg(required = true, value_name = "PATCH")]
        patches: Vec<PathBuf>,
        /// Output file (- for standard output) or, for a folder, output folder.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// Read the ROM as this system (raw nes fds snes n64 gb sms mega pce lynx).
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
        /// Apply even when a patch's checksums do not match.
        #[arg(long)]
        ignore_checksum: bool,
        /// Recompute the output's internal checksums (as fix-checksum does) and say
        /// which fields changed.
        #[arg(long)]
        fix_checksum: bool,
        /// Write the dumped header back as NINJA 2.0 did (a Famtasia/FFE dump keeps its
        /// FFE header, a SNES dump its NSRT header) instead of the form emulators play.
        #[arg(long)]
        keep_header: bool,
        /// Undo the patches on a ROM they patched, in the order given (the last one
        /// applied first): PPF 3.0 with undo data, NINJA2, UPS, PAT/FFP/fc listings.
        /// Other formats carry no original bytes and are refused.
        #[arg(long)]
        revert: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Make a patch from ORIGINAL to MODIFIED (two files, or two folders for rup).
    Create {
        /// The file (or, for rup, the folder) the patch starts from.
        original: PathBuf,
        /// The file (or folder) the patch makes of ORIGINAL.
        modified: PathBuf,
        /// The patch file to write (- for standard output).
        #[arg(short, long, value_name = "PATCH")]
        output: PathBuf,
        /// The patch format, one of: rup bps ips ups ppf aps gdiff vcdiff pat ffp fc ips32 bdf
        /// (default: from PATCH's extension).
        #[arg(long, value_name = "FORMAT")]
        format: Option<PatchFormat>,
        /// Read both as this system (rup: the entry's type; default: detected).
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
        #[command(flatten)]
        metadata: RupMetadata,
        /// Folders: take the files in subfolders too (NINJA 2.0 took only the
        /// files directly in each folder, and so does the default).
        #[arg(long)]
        recursive: bool,
        /// Replace PATCH if it exists.
        #[arg(long)]
        force: bool,
    },
    // --- mount / unmount (FUSE) ---
    /// Show every ROM under BACKING as normalized, deinterleaved and patched
    /// files at MOUNTPOINT (read-only). Returns once the mount is ready.
    Mount(MountArgs),
    /// Unmount a ninja-fs mount.
    Unmount {
        /// Where the mount is.
        mountpoint: PathBuf,
    },
    /// Print a completion script for a shell (bash zsh fish elvish powershell).
    ///
    /// bash: `ninja-fs completions bash > /usr/share/bash-completion/completions/ninja-fs`;
    /// zsh: into a folder of $fpath as `_ninja-fs`; fish: into
    /// ~/.config/fish/completions/ninja-fs.fish.
    Completions {
        /// The shell the script is for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), every command included:
    /// `ninja-fs man > /usr/local/share/man/man1/ninja-fs.1`, or `ninja-fs man | man -l -`.
    Man,
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
    /// The patch's title (rup only).
    #[arg(long)]
    title: Option<String>,
    /// Who made the patch (rup only).
    #[arg(long)]
    author: Option<String>,
    /// The patch's version (rup only; at most 11 bytes).
    #[arg(long)]
    version: Option<String>,
    /// The game's genre (rup only).
    #[arg(long)]
    genre: Option<String>,
    /// The patch's language (rup only).
    #[arg(long)]
    language: Option<String>,
    /// The patch's date, YYYYMMDD (rup only).
    #[arg(long)]
    date: Option<String>,
    /// A web address for the patch (rup only).
    #[arg(long)]
    website: Option<String>,
    /// Free text (rup only); a line break is written as the two characters \n.
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
    /// The ROM to read.
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
    let cli = Cli::parse_from(helper_form(std::env::args_os().collect()));
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
    if let Some(endpoint) = &cli.s3_endpoint {
        ninja_fs::backing::s3::use_endpoint(endpoint);
    }
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
        Command::Info {
            files,
            json,
            system,
            dat,
        } => info(&files, json, system, &dat),
        Command::Normalize(args) => convert(&args, false),
        Command::Deinterleave(args) => convert(&args, true),
        Command::FixChecksum(args) => fix_checksum_file(&args),
        Command::Apply {
            rom,
            patches,
            output,
            system,
            ignore_checksum,
            fix_checksum,
            keep_header,
            revert,
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
            if rom.is_dir() && fix_checksum {
                return Err(CliError::Reported(
                    "--fix-checksum works on one ROM file, not on a folder".into(),
                ));
            }
            if rom.is_dir() {
                apply_to_folder(&rom, &patches, &output, &opts, write_back, force, revert)
            } else {
                let output = Output::new(&output, force);
                apply_to_file(
                    &rom,
                    &patches,
                    &output,
                    system,
                    &opts,
                    write_back,
                    revert,
                    fix_checksum,
                )
            }
        }
        Command::Create {
            original,
            modified,
            output,
            format,
            system,
            metadata,
            recursive,
            force,
        } => {
            let depth = if recursive {
                ninja_fs::create::FolderDepth::Recursive
            } else {
                ninja_fs::create::FolderDepth::TopLevel
            };
            create(
                &original, &modified, &output, format, system, &metadata, depth, force,
            )
        }
        Command::Mount(args) => run_mount(&args),
        Command::Unmount { mountpoint } => run_unmount(&mountpoint),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ninja-fs", &mut script);
            if shell == clap_complete::Shell::Bash {
                // clap_complete spells the states of a hyphenated program
                // two ways (clap-rs/clap#6421), so a command's options never
                // complete: use the spelling its dispatch loop uses.
                script = String::from_utf8_lossy(&script)
                    .replace("ninja__subcmd__fs__", "ninja__fs__")
                    .into_bytes();
            }
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(|e| CliError::Reported(format!("cannot write the script: {e}")))
        }
        Command::Man => {
            let mut page = Vec::new();
            man_page(&mut page)
                .and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &page))
                .map_err(|e| CliError::Reported(format!("cannot write the manual page: {e}")))
        }
    }
}

/// `mount(8)` runs `ninja-fs SOURCE MOUNTPOINT -o OPTIONS` (through
/// `mount.fuse3`, for `mount -t fuse.ninja-fs` and fstab's
/// `fuse.ninja-fs`): that is `ninja-fs mount SOURCE MOUNTPOINT -o ...`.
/// Arguments whose first is no command, no flag, and either a folder or
/// followed by `-o` are taken so; anything else is left to clap.
fn helper_form(mut args: Vec<OsString>) -> Vec<OsString> {
    let Some(first) = args.get(1) else {
        return args;
    };
    let command = Cli::command();
    let is_command = command
        .get_subcommands()
        .any(|c| c.get_name() == first || c.get_all_aliases().any(|a| a == first))
        || first == "help";
    let is_flag = first.as_encoded_bytes().starts_with(b"-");
    let looks_mounted = Path::new(first).is_dir() || args.iter().skip(2).any(|a| a == "-o");
    if !is_command && !is_flag && looks_mounted && args.len() >= 3 {
        args.insert(1, OsString::from("mount"));
    }
    args
}

fn info(
    paths: &[PathBuf],
    json: bool,
    forced: Option<SystemType>,
    dat_paths: &[PathBuf],
) -> Result<(), CliError> {
    let dats = ninja_fs::dat::load_for_command(dat_paths).map_err(CliError::Reported)?;
    let mut tables = Vec::new();
    let mut objects = Vec::new();
    let mut failures = 0;
    for path in paths {
        match describe_file(path, forced) {
            Ok((mut table, mut object, rom)) => {
                if let Some(rom) = rom.filter(|_| !dat_paths.is_empty()) {
                    let (name, bytes) = (&rom.name, &rom.bytes[..]);
                    ninja_fs::dat::add_to_report(
                        &dats,
                        name,
                        bytes,
                        forced,
                        &mut table,
                        &mut object,
                    );
                }
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

/// The info table and JSON object of one file, a patch or a ROM, and the
/// ROM as read (for the DATs to check without reading it again).
fn describe_file(
    path: &Path,
    forced: Option<SystemType>,
) -> Result<(String, serde_json::Value, Option<files::NamedInput>), CliError> {
    let input = match files::read_any(path, Limits::default().max_image_size)? {
        files::Opened::One(input) => input,
        // An archive holding several ROMs or patches, or none: its members.
        files::Opened::Listing(listing) => {
            let (table, object) = listing.describe();
            return Ok((table, object, None));
        }
    };
    let (bytes, name) = (input.bytes, input.name);
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
        return Ok((table, object, None));
    }
    if forced.is_none()
        && let Some(format) = unread_patch_format(path, &bytes)
    {
        return Err(CliError::Reported(format!(
            "{name}: {format} patch, a format ninja-fs does not read yet (it reads {READ_FORMATS})"
        )));
    }
    let report = RomReport::build(&name, &bytes, forced).map_err(system_error(path))?;
    let object = serde_json::to_value(&report)
        .map_err(|e| CliError::Reported(format!("cannot write JSON: {e}")))?;
    Ok((
        report.to_text(),
        object,
        Some(files::NamedInput { bytes, name }),
    ))
}

fn convert(args: &ConvertArgs, deinterleave: bool) -> Result<(), CliError> {
    let output = Output::new(&args.output, args.force);
    output.check(&[&args.rom])?;
    let rom = files::read_rom(&args.rom, Limits::default().max_image_size)?;
    let (raw, name) = (rom.bytes, rom.name);
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

/// `fix-checksum`: the deinterleaved image with its internal checksums
/// recomputed; a ROM without any is an error, and nothing is written.
fn fix_checksum_file(args: &ConvertArgs) -> Result<(), CliError> {
    let output = Output::new(&args.output, args.force);
    output.check(&[&args.rom])?;
    let rom = files::read_rom(&args.rom, Limits::default().max_image_size)?;
    let (raw, name) = (rom.bytes, rom.name);
    let layout =
        system::identify(Some(&name), &raw, args.system).map_err(system_error(&args.rom))?;
    let normalized = system::normalize(&raw, &layout).map_err(system_error(&args.rom))?;
    let mut image = system::restore(&normalized, &layout)
        .map_err(system_error(&args.rom))?
        .into_owned();
    let fixed = system::fix_checked(&mut image, layout.system)
        .map_err(|why| CliError::Reported(format!("{name}: {why}: nothing written")))?;
    output.write(&image)?;
    for line in fixed.lines() {
        eprintln!("ninja-fs: {name}: {line}");
    }
    Ok(())
}

/// Every patch format ninja-fs reads, for messages.
const READ_FORMATS: &str = "IPS, IPS32, EBP, UPS, BPS, PPF, NINJA2 RUP, APS, GDIFF, VCDIFF/xdelta, BSDIFF40 (BDF), PAT, FFP, fc /b, DPS, PMSR (Star Rod .mod), BSP";

/// Every patch format `create` writes, as `--format` takes them.
const WRITTEN_FORMATS: &str =
    "rup, bps, ips, ups, ppf, aps, gdiff, vcdiff, pat, ffp, fc, ips32 or bdf";

/// Patch formats people meet that ninja-fs does not read (yet): an
/// article and a name, so a file in one is not mistaken for a ROM.
fn unread_patch_format(_path: &Path, bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"ENDSLEY/BSDIFF43") {
        Some("an ENDSLEY/BSDIFF43")
    } else {
        None
    }
}

/// A patch file read and its format found.
struct PatchFile {
    path: PathBuf,
    bytes: files::Input,
    format: PatchFormat,
}

fn read_patch(path: &Path) -> Result<PatchFile, CliError> {
    let input = files::read_patch(path, Limits::default().max_image_size)?;
    let (bytes, name) = (input.bytes, input.name);
    let format = PatchFormat::detect(Some(&name), &bytes).ok_or_else(|| {
        CliError::Reported(match unread_patch_format(path, &bytes) {
            Some(name) => format!(
                "{}: {name} patch, a format ninja-fs does not read yet (it reads {READ_FORMATS})",
                path.display()
            ),
            None => format!(
                "{}: not a patch this tool knows ({READ_FORMATS})",
                path.display()
            ),
        })
    })?;
    Ok(PatchFile {
        // An archive member is named as `Hack.zip//Hack.ips`.
        path: PathBuf::from(name),
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

#[allow(clippy::too_many_arguments)] // the command's options, one by one
fn apply_to_file(
    rom: &Path,
    patch_paths: &[PathBuf],
    output: &Output,
    forced: Option<SystemType>,
    opts: &ApplyOptions,
    write_back: WriteBack,
    revert: bool,
    fix_checksum: bool,
) -> Result<(), CliError> {
    let mut inputs: Vec<&Path> = vec![rom];
    inputs.extend(patch_paths.iter().map(PathBuf::as_path));
    output.check(&inputs)?;
    let rom_input = files::read_rom(rom, opts.limits.max_image_size)?;
    let raw = rom_input.bytes;
    let patch_files = patch_paths
        .iter()
        .map(|p| read_patch(p))
        .collect::<Result<Vec<_>, _>>()?;
    let patches = patch_files
        .iter()
        .map(|f| Ok((f.path.display().to_string(), parse_patch(f, &opts.limits)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    let rom_name = rom_input.name;
    if let ([(name, Patch::Rup(rup))], false) = (patches.as_slice(), fix_checksum) {
        // NINJA2 patches: checked first, then the result written as it is made.
        let checked = apply::check_rup_in_pieces(
            &rom_name, &raw, forced, name, rup, opts, write_back, revert,
        )?;
        if let Some(checked) = checked {
            return Ok(output.write_checked(|sink| checked.write_to(sink))?);
        }
    }
    if let ([(name, Patch::Vcdiff(vcdiff))], true, false) = (
        patches.as_slice(),
        output.is_file() && !fix_checksum,
        revert,
    ) {
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
    let image = if revert {
        apply::revert_stack_with(&rom_name, &raw, forced, &patches, opts, write_back)?
    } else {
        apply::apply_stack_with(&rom_name, &raw, forced, &patches, opts, write_back)?
    };
    let mut image = image;
    // The patched image's checksums; a ROM without any is written as patched.
    let fixed = fix_checksum.then(|| {
        let system = system::identify(Some(&rom_name), &raw, forced).map(|l| l.system);
        system.map(|system| system::fix_checked(&mut image, system))
    });
    output.write(&image)?;
    match fixed {
        Some(Ok(Ok(fixed))) => fixed
            .lines()
            .iter()
            .for_each(|line| eprintln!("ninja-fs: {rom_name}: {line}")),
        Some(Ok(Err(why))) => eprintln!("ninja-fs: {rom_name}: {why}: written as patched"),
        Some(Err(_)) | None => {}
    }
    Ok(())
}

fn apply_to_folder(
    dir: &Path,
    patch_paths: &[PathBuf],
    output: &Path,
    opts: &ApplyOptions,
    write_back: WriteBack,
    force: bool,
    revert: bool,
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
    let run = if revert {
        apply::revert_rup_in_folder
    } else {
        apply::apply_rup_to_folder_with
    };
    let patched = run(
        dir,
        &patch_path.display().to_string(),
        &rup,
        opts,
        write_back,
    )?;
    files::write_folder_copy(dir, output, &patched, force)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the create command's options
fn create(
    original: &Path,
    modified: &Path,
    output: &Path,
    format: Option<PatchFormat>,
    forced: Option<SystemType>,
    metadata: &RupMetadata,
    depth: ninja_fs::create::FolderDepth,
    force: bool,
) -> Result<(), CliError> {
    let format = match format {
        Some(format) => format,
        None => PatchFormat::from_extension(&output.to_string_lossy())
            .filter(|f| f.can_create())
            .ok_or_else(|| {
                CliError::Reported(format!(
                    "{}: cannot tell the patch format from the name; say --format {WRITTEN_FORMATS}",
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
            ninja_fs::create::create_for_folders(original, modified, forced, &info, depth)?
        }
        (false, false) if depth == ninja_fs::create::FolderDepth::Recursive => {
            return Err(CliError::Reported(
                "--recursive is for patches between two folders".into(),
            ));
        }
        (false, false) => {
            let max = Limits::default().max_image_size;
            let from = files::read_rom(original, max)?;
            let to = files::read_rom(modified, max)?;
            ninja_fs::create::create_for_images(
                format,
                (&from.name, &from.bytes),
                (&to.name, &to.bytes),
                forced,
                &info,
            )?
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
    /// The folder of ROMs and patches (never modified), or a bucket of an
    /// S3-compatible store, s3://BUCKET[/PREFIX] (see --s3-endpoint).
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
    /// Where the mount logs: by default, once in the background, the system
    /// log when one answers on /dev/log, else
    /// $XDG_STATE_HOME/ninja-fs/<MD5 of the mount point>.log (rotated at 4 MiB);
    /// with -f, stderr.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Make patched/ files carry recomputed internal checksums (info/ says so for each
    /// file); off by default, since a fixed file no longer matches a patch's target
    /// checksum. -o fix_checksums is the same.
    #[arg(long)]
    fix_checksums: bool,
    /// Check every ROM against the DATs at PATH (a Logiqx XML or clrmamepro DAT, a
    /// folder of them searched recursively, or a .zip of them) and show verified/.
    /// Repeatable.
    #[arg(long, value_name = "PATH")]
    dat: Vec<PathBuf>,
    /// Mount options, as mount(8) and fstab give them (comma-separated):
    /// cache_size=SIZE, no_header_cache, fix_checksums, dat=PATH, log_file=PATH, allow_other, allow_root,
    /// default_permissions, ro, noexec, fsname=NAME; mount's generic options (rw, dev,
    /// suid, nofail, _netdev, noauto, user, users, x-systemd.*, ...) are accepted and
    /// change nothing: the mount is always read-only, nosuid and nodev.
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    options: Vec<String>,
}

impl From<ninja_fs::mount::MountError> for CliError {
    fn from(error: ninja_fs::mount::MountError) -> Self {
        CliError::Reported(error.to_string())
    }
}

fn run_mount(args: &MountArgs) -> Result<(), CliError> {
    use ninja_fs::mount::{self, MountOptions, options::FsOptions};
    let mut fs_options = FsOptions::default();
    for list in &args.options {
        fs_options
            .parse(list)
            .map_err(|e| CliError::Reported(e.to_string()))?;
    }
    let bucket = args
        .backing
        .to_str()
        .and_then(ninja_fs::backing::s3::S3Url::parse);
    if bucket.is_none() {
        mount::check_backing(&args.backing)?;
    }
    mount::check_mount_point(&args.mountpoint)?;
    let backing = match &bucket {
        Some(url) => PathBuf::from(url.to_url()),
        None => {
            mount::check_outside_backing(&args.backing, &args.mountpoint)?;
            // The background process works from /: hand the core an absolute path.
            std::fs::canonicalize(&args.backing).map_err(|error| {
                CliError::Reported(format!(
                    "backing folder {}: {error}",
                    args.backing.display()
                ))
            })?
        }
    };
    let opts = MountOptions {
        foreground: args.foreground,
        allow_other: args.allow_other || fs_options.allow_other,
        allow_root: fs_options.allow_root,
        no_exec: fs_options.no_exec,
        fs_name: fs_options
            .fs_name
            .clone()
            .unwrap_or_else(|| backing.display().to_string()),
        ..MountOptions::default()
    };
    let cache_size = fs_options.cache_size.unwrap_or(args.cache_size);
    let log_file = fs_options.log_file.as_ref().or(args.log_file.as_ref());
    let log = |error: ninja_fs::logging::LogError| CliError::Reported(error.to_string());
    let destination = match (args.foreground, log_file) {
        (true, None) => None,
        (true, Some(file)) => {
            let destination = ninja_fs::logging::to_file(file).map_err(log)?;
            eprintln!("ninja-fs: the log goes to {destination}");
            Some(destination)
        }
        (false, file) => Some(
            ninja_fs::logging::prepare_daemon(file.map(PathBuf::as_path), &args.mountpoint)
                .map_err(log)?,
        ),
    };
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
    let header_cache = if args.no_header_cache || fs_options.no_header_cache {
        None
    } else {
        // mount(8) runs ninja-fs without HOME: the password database says.
        let dir = ninja_fs::library::header_cache::default_dir()
            .or_else(|| ninja_fs::xdg::cache_home().map(|dir| dir.join("ninja-fs")));
        if dir.is_none() {
            log::warn!("no header cache: neither XDG_CACHE_HOME nor HOME is an absolute path");
        }
        dir
    };
    let dat_paths: Vec<PathBuf> = args.dat.iter().chain(&fs_options.dats).cloned().collect();
    let dats = (!dat_paths.is_empty()).then(|| ninja_fs::dat::load_for_mount(&dat_paths));
    let fix_checksums = args.fix_checksums || fs_options.fix_checksums;
    mount::mount(
        || {
            let fs = match &bucket {
                // Opened in the process that serves the mount: its runtime's
                // threads would not survive the fork into the background.
                Some(url) => {
                    let store = ninja_fs::backing::s3::S3Bucket::open(url, &Default::default())
                        .map_err(|error| error.to_string())?;
                    NinjaFs::with_backing(Box::new(store), cache_size, Limits::default())
                }
                None => NinjaFs::new(&backing, cache_size, Limits::default())?,
            };
            if let Some(dats) = dats {
                fs.use_dats(dats);
            }
            if let Some(dir) = &header_cache {
                fs.library().use_header_cache(dir);
            }
            fs.set_fix_checksums(fix_checksums);
            if let Err(error) = fs.keep_images_in_huge_pages() {
                log::debug!("{error}; built images stay on the heap");
            }
            Ok(fs)
        },
        &args.mountpoint,
        &opts,
    )?;
    if let (false, Some(destination)) = (args.foreground, destination) {
        eprintln!(
            "ninja-fs: mounted {} at {}; the log goes to {destination}",
            args.backing.display(),
            args.mountpoint.display()
        );
    }
    Ok(())
}

fn run_unmount(mountpoint: &Path) -> Result<(), CliError> {
    ninja_fs::mount::unmount(mountpoint)?;
    Ok(())
}

// --- manual page ---

/// The manual page: clap's sections for the program, one subsection per
/// command with its synopsis, description and options, then how to mount
/// from fstab and systemd, the files and the environment.
fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    use clap_mangen::Man;
    use clap_mangen::roff::{Roff, bold, italic, roman};
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let man = Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in command.get_subcommands() {
        let name = format!("ninja-fs {}", sub.get_name());
        let mut section = Vec::new();
        let sub_man = Man::new(sub.clone().bin_name(&name));
        sub_man.render_synopsis_section(&mut section)?;
        sub_man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            sub_man.render_options_section(&mut section)?;
        }
        // The page's sections become this command's paragraphs.
        let text = String::from_utf8_lossy(&section)
            .replace(".SH SYNOPSIS\n", &format!(".SS \"{name}\"\n"))
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".PP\n");
        out.extend_from_slice(text.as_bytes());
    }
    let mut roff = Roff::new();
    roff.control("SH", ["MOUNT OPTIONS"])
        .text([roman(
            "ninja-fs mount, mount(8) and fstab take these with -o, comma-separated: ",
        )])
        .text([
            bold("cache_size="),
            italic("SIZE"),
            roman(", "),
            bold("no_header_cache"),
            roman(", "),
            bold("fix_checksums"),
            roman(", "),
            bold("dat="),
            italic("PATH"),
            roman(", "),
            bold("log_file="),
            italic("PATH"),
            roman(", "),
            bold("allow_other"),
            roman(", "),
            bold("allow_root"),
            roman(", "),
            bold("default_permissions"),
            roman(", "),
            bold("ro"),
            roman(", "),
            bold("noexec"),
            roman(", "),
            bold("fsname="),
            italic("NAME"),
            roman(". "),
        ])
        .text([roman(
            "The generic options mount(8) and fstab pass (rw, dev, suid, exec, atime, \
             noatime, relatime, sync, async, dirsync, auto, noauto, user, users, nouser, \
             owner, group, defaults, nofail, _netdev, x-systemd.*, comment=...) are accepted \
             and change nothing: the mount is always read-only, nosuid and nodev. Any other \
             option is refused with its name.",
        )])
        .control("SH", ["FSTAB AND MOUNT(8)"])
        .text([roman(
            "With ninja-fs in /usr/local/bin, /usr/bin or /sbin (mount.fuse3 runs it \
             with a fixed PATH, which does not hold ~/.cargo/bin), and Debian's fuse3 \
             installed:",
        )])
        .control("PP", [])
        .text([roman(
            "mount -t fuse.ninja-fs /srv/roms /mnt/ninja -o allow_other,cache_size=512M",
        )])
        .control("PP", [])
        .text([roman("or the /etc/fstab line")])
        .control("PP", [])
        .text([roman(
            "/srv/roms /mnt/ninja fuse.ninja-fs ro,allow_other,nofail,cache_size=512M 0 0",
        )])
        .control("PP", [])
        .text([roman(
            "mount.fuse3 runs ninja-fs SOURCE MOUNTPOINT -o OPTIONS, the same as \
             ninja-fs mount SOURCE MOUNTPOINT -o OPTIONS. umount(8) or ninja-fs unmount \
             unmounts.",
        )])
        .control("SH", ["SYSTEMD"])
        .text([roman(
            "contrib/ninja-fs@.service runs ninja-fs mount -f (Type=notify: systemd is told \
             once the mount answers); its instance is the escaped mount point and \
             /etc/ninja-fs/INSTANCE.conf names the backing folder: BACKING=/srv/roms, \
             OPTIONS=-o allow_other. systemctl enable --now ninja-fs@mnt-ninja. SIGTERM, \
             SIGINT and SIGHUP unmount cleanly.",
        )])
        .control("SH", ["LOGS"])
        .text([roman(
            "With -f, log lines go to stderr (to the journal under systemd). In the \
             background, to the system log when one answers on /dev/log (journalctl -t \
             ninja-fs), else to $XDG_STATE_HOME/ninja-fs/<MD5 of the mount point>.log \
             (~/.local/state when XDG_STATE_HOME is unset; rotated at 4 MiB, the last \
             one kept as .log.1); --log-file chooses a file. ninja-fs mount says where. \
             -v and RUST_LOG filter all of them alike.",
        )])
        .control("SH", ["FILES"])
        .text([roman(
            "$XDG_CACHE_HOME/ninja-fs/<MD5 of the backing folder>.json (~/.cache/ninja-fs): \
             the header cache; deleting it is always safe.",
        )])
        .control("SH", ["ENVIRONMENT"])
        .text([roman(
            "RUST_LOG (log filter, as env_logger reads it), XDG_CACHE_HOME, \
             XDG_STATE_HOME, HOME, NOTIFY_SOCKET (set by systemd).",
        )])
        .control("SH", ["SEE ALSO"])
        .text([roman(
            "mount(8), fstab(5), mount.fuse3(8), systemd.service(5), umount(8)",
        )]);
    roff.to_writer(out)?;
    man.render_version_section(out)?;
    // Each rendered part starts with the same two lines defining \*(Aq:
    // once is enough.
    let preamble = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(out).into_owned();
    if let Some(first) = text.find(preamble) {
        let (head, tail) = text.split_at(first + preamble.len());
        *out = format!("{head}{}", tail.replace(preamble, "")).into_bytes();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument of every command says what it is for.
    #[test]
    fn every_flag_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "ninja-fs", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:?}");
    }

    #[test]
    fn the_format_lists_name_every_format() {
        for name in [
            "rup", "bps", "ips", "ups", "ppf", "aps", "gdiff", "vcdiff", "pat", "ffp", "fc",
        ] {
            let format: PatchFormat = name.parse().unwrap();
            assert!(WRITTEN_FORMATS.contains(name), "{name}");
            assert!(
                READ_FORMATS.contains(format.name().split(' ').next().unwrap()),
                "{format}"
            );
        }
        for name in ["ips32", "bdf"] {
            let format: PatchFormat = name.parse().unwrap();
            assert!(WRITTEN_FORMATS.contains(name), "{name}");
            assert!(READ_FORMATS.contains(format.name()), "{format}");
        }
        assert!(READ_FORMATS.contains("EBP"));
        for name in ["DPS", "PMSR", "BSP"] {
            assert!(READ_FORMATS.contains(name), "{name}");
        }
        let mut command = Cli::command();
        command.build();
        let create = command.find_subcommand("create").unwrap();
        let help = create
            .get_arguments()
            .find(|a| a.get_id() == "format")
            .and_then(|a| a.get_help())
            .unwrap()
            .to_string();
        for name in WRITTEN_FORMATS.replace(" or ", ", ").split(", ") {
            assert!(help.contains(name), "create --format does not list {name}");
        }
    }

    #[test]
    fn mount_helper_arguments_are_a_mount() {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().to_str().unwrap();
        assert_eq!(
            helper_form(args(&["ninja-fs", backing, "/mnt", "-o", "rw,allow_other"])),
            args(&["ninja-fs", "mount", backing, "/mnt", "-o", "rw,allow_other"])
        );
        // A folder without -o, and a missing folder with -o: a mount too.
        assert_eq!(
            helper_form(args(&["ninja-fs", backing, "/mnt"]))[1],
            OsString::from("mount")
        );
        assert_eq!(
            helper_form(args(&["ninja-fs", "/no/such", "/mnt", "-o", "dev"]))[1],
            OsString::from("mount")
        );
        for unchanged in [
            &["ninja-fs", "info", "x.sfc"][..],
            &["ninja-fs", "mount", backing, "/mnt", "-o", "ro"],
            &["ninja-fs", "--help"],
            &["ninja-fs", "help", "mount"],
            &["ninja-fs", "infp", "x.sfc"],
            &["ninja-fs"],
        ] {
            assert_eq!(helper_form(args(unchanged)), args(unchanged));
        }
        let cli = Cli::try_parse_from(helper_form(args(&[
            "ninja-fs",
            backing,
            "/mnt",
            "-o",
            "allow_other,cache_size=64M",
        ])))
        .unwrap();
        let Command::Mount(mount) = cli.command else {
            panic!("not a mount");
        };
        assert_eq!(mount.options, ["allow_other,cache_size=64M"]);
        assert_eq!(mount.mountpoint, Path::new("/mnt"));
    }

    #[test]
    fn the_manual_covers_every_command() {
        let mut page = Vec::new();
        man_page(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains("\n.TH ninja-fs 1 "), "{page}");
        for sub in Cli::command().get_subcommands() {
            let heading = format!(".SS \"ninja-fs {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading}");
        }
        for section in [
            "MOUNT OPTIONS",
            "FSTAB AND MOUNT(8)",
            "SYSTEMD",
            "LOGS",
            "FILES",
        ] {
            assert!(
                page.contains(&format!(".SH \"{section}\""))
                    || page.contains(&format!(".SH {section}")),
                "no {section}"
            );
        }
        assert!(page.contains("cache_size"));
        assert!(page.contains("log\\-file") || page.contains("log-file"));
    }
}
