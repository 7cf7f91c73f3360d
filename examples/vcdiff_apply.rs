//! Applies a VCDIFF (xdelta3) patch and reports how long it took, for
//! comparing with `xdelta3 -d`:
//!
//! cargo run --release --example vcdiff_apply -- SOURCE PATCH [OUTPUT]
//!
//! The time covers parsing and applying, not reading the inputs or writing
//! the output.

use std::time::Instant;

use ninja_fs::patch::vcdiff;
use ninja_fs::patch::{ApplyOptions, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, patch, rest @ ..] = args.as_slice() else {
        return Err("usage: vcdiff_apply SOURCE PATCH [OUTPUT]".into());
    };
    let source = std::fs::read(source)?;
    let patch = std::fs::read(patch)?;
    let started = Instant::now();
    let parsed = vcdiff::parse(&patch, &Limits::default())?;
    let target = parsed.apply(&source, &ApplyOptions::default())?;
    let elapsed = started.elapsed();
    println!(
        "applied {} windows, {} bytes in {:.3} s ({:.0} MiB/s)",
        parsed.windows.len(),
        target.len(),
        elapsed.as_secs_f64(),
        target.len() as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
    if let Some(output) = rest.first() {
        std::fs::write(output, &target)?;
    }
    Ok(())
}
