//! The `ninja-fs` command line: parse, call the library, print.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ninja_fs::files::{self, FileError, Output};
use ninja_fs::report::RomReport;
use ninja_fs::system::{self, SystemError, SystemType};

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
    /// Show what each ROM is: system, headers, interleave, internal header, checksums.
    Info {
        #[arg(required = true)]
        roms: Vec<PathBuf>,
        /// Print stable JSON (an array, one object per file) instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every ROM as this system instead of detecting it.
        #[arg(long, value_name = "TYPE")]
        system: Option<SystemType>,
    },
    /// Write NINJA's common format: headerless, deinterleaved, big-endian.
    Normalize(ConvertArgs),
    /// Write the layout emulators play: deinterleaved, with iNES/UNIF/NSRT/LNX headers kept.
    Deinterleave(ConvertArgs),
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
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
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
    }
}

fn info(roms: &[PathBuf], json: bool, forced: Option<SystemType>) -> Result<(), CliError> {
    let mut reports = Vec::new();
    let mut failures = 0;
    for path in roms {
        let result = files::read_input(path)
            .map_err(CliError::from)
            .and_then(|raw| {
                RomReport::build(&path.display().to_string(), &raw, forced)
                    .map_err(system_error(path))
            });
        match result {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("ninja-fs: {error}");
                failures += 1;
            }
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&reports)
            .map_err(|e| CliError::Reported(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        let tables: Vec<String> = reports.iter().map(RomReport::to_text).collect();
        print!("{}", tables.join("\n"));
    }
    if failures > 0 {
        return Err(CliError::Reported(format!(
            "{failures} of {} files could not be read",
            roms.len()
        )));
    }
    Ok(())
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
