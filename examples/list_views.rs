//! Times listing each view of a backing folder through the filesystem core
//! (no FUSE): `cargo run --release --example list_views -- BACKING`.

use std::time::Instant;

use ninja_fs::patch::Limits;
use ninja_fs::vfs::{ROOT_INO, VirtualFs};
use ninja_fs::views::NinjaFs;

fn main() -> Result<(), String> {
    let backing = std::env::args().nth(1).ok_or("usage: list_views BACKING")?;
    let fs = NinjaFs::new(std::path::Path::new(&backing), 64 << 20, Limits::default())?;
    for pass in ["cold", "warm"] {
        for view in ["normalized", "deinterleaved", "patched", "info"] {
            let start = Instant::now();
            let root = fs
                .lookup(ROOT_INO, view.as_ref())
                .map_err(|e| e.to_string())?;
            let mut count = 0;
            let mut pending = vec![root.ino];
            while let Some(ino) = pending.pop() {
                for entry in fs.readdir(ino).map_err(|e| e.to_string())? {
                    count += 1;
                    if entry.attributes.kind == ninja_fs::vfs::NodeKind::Directory {
                        pending.push(entry.attributes.ino);
                    }
                }
            }
            println!("{pass} {view}: {count} entries in {:?}", start.elapsed());
        }
    }
    Ok(())
}
