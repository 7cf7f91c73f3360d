//! Times VCDIFF work, for comparing with xdelta3:
//!
//! cargo run --release --example vcdiff_apply -- SOURCE PATCH [OUTPUT] [--ignore-checksums]
//! cargo run --release --example vcdiff_apply -- --create SOURCE TARGET PATCH
//!
//! The time covers parsing and applying (or creating), not reading the
//! inputs; with OUTPUT it includes writing each window to the file as it
//! is made (`apply_to_writer`), without it the whole target is built in
//! memory (`apply`).

use std::time::Instant;

use ninja_fs::patch::vcdiff;
use ninja_fs::patch::{ApplyOptions, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let ignore_checksums = args.iter().any(|a| a == "--ignore-checksums");
    args.retain(|a| a != "--ignore-checksums");
    if args.first().map(String::as_str) == Some("--create") {
        let [_, source, target, patch] = args.as_slice() else {
            return Err("usage: vcdiff_apply --create SOURCE TARGET PATCH".into());
        };
        let (source, target) = (std::fs::read(source)?, std::fs::read(target)?);
        let started = Instant::now();
        let made = vcdiff::create(&source, &target)?;
        let elapsed = started.elapsed();
        println!(
            "created a {}-byte patch for {} bytes in {:.3} s",
            made.len(),
            target.len(),
            elapsed.as_secs_f64()
        );
        std::fs::write(patch, made)?;
        return Ok(());
    }
    let [source, patch, rest @ ..] = args.as_slice() else {
        return Err("usage: vcdiff_apply SOURCE PATCH [OUTPUT] [--ignore-checksums]".into());
    };
    let source = std::fs::read(source)?;
    let patch = std::fs::read(patch)?;
    let options = ApplyOptions {
        limits: Limits::default(),
        ignore_checksums,
    };
    let started = Instant::now();
    let parsed = vcdiff::parse(&patch, &options.limits)?;
    let (made, what) = match rest.first() {
        // With an output file: window by window, as xdelta3 -d works.
        Some(output) => {
            let mut file = std::fs::File::create(output)?;
            let written = parsed.apply_to_writer(&source, &options, &mut file)?;
            (written, "streamed")
        }
        None => (parsed.apply(&source, &options)?.len() as u64, "applied"),
    };
    let elapsed = started.elapsed();
    println!(
        "{what} {} windows, {made} bytes in {:.3} s ({:.0} MiB/s)",
        parsed.windows.len(),
        elapsed.as_secs_f64(),
        made as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
