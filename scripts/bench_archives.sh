#!/usr/bin/env bash
# Archive benchmarks (issue 10), each as a ratio against a reference
# measured in the same run: the first read of a ROM in a zip or 7z through
# the mount against `unzip -p` / `7z x -so`, `ls -l` of 10,000 one-ROM zips
# on a first and a later mount against `ls -l` of the backing folder, and
# the daemon's peak memory building a 64 MiB image from each archive kind.
# Needs root and /dev/fuse; installs hyperfine, zip, unzip and p7zip-full
# with apt-get when missing. Writes target/bench/archive-report.md; all
# else goes to a temporary folder, removed at the end.
#
#   scripts/bench_archives.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v unzip >/dev/null || missing+=(unzip)
command -v zip >/dev/null || missing+=(zip)
command -v 7z >/dev/null || missing+=(p7zip-full)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release --quiet
bin=$PWD/target/release/ninja-fs
out=$PWD/target/bench
mkdir -p "$out"
work=$(mktemp -d /var/tmp/ninja-archive-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt" "$work/b"
export XDG_CACHE_HOME=$work/xdg
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    if mountpoint -q "$mnt"; then "$bin" unmount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "making inputs in $work/b ..."
python3 - "$work" <<'PY'
import os, random, sys, zipfile
work = sys.argv[1]
rng = random.Random(11)
def rom(n):
    # Half noise, half runs: compresses about as real ROMs do (2:1 or so).
    d = bytearray()
    while len(d) < n:
        d += rng.getrandbits(8 * 256).to_bytes(256, "little")
        d += bytes([rng.randrange(256)]) * 256
    d = d[:n]
    d[0x7FD5] = 0x20  # SNES LoROM
    d[0x7FDC:0x7FE0] = bytes([0xFF, 0xFF, 0, 0])
    return bytes(d)
os.makedirs(f"{work}/src")
open(f"{work}/src/Game.sfc", "wb").write(rom(4 << 20))
open(f"{work}/src/Big.sfc", "wb").write(rom(64 << 20))
os.makedirs(f"{work}/b/many")
gb = bytearray(rom(32 << 10))
gb[0x104:0x108] = bytes([0xCE, 0xED, 0x66, 0x66])
os.makedirs(f"{work}/b/loose")
for i in range(10000):
    gb[0x134:0x140] = b"GAME%08d" % i
    with zipfile.ZipFile(f"{work}/b/many/game{i:05d}.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"game{i:05d}.gb", bytes(gb))
    # The same ROMs loose: what the mount's per-file path costs without
    # archives.
    with open(f"{work}/b/loose/game{i:05d}.gb", "wb") as f:
        f.write(gb)
PY
mkdir -p "$work/b/one" "$work/b/big"
# Each archive's member gets a name of its own: the mount names the ROM
# after it.
(
    cd "$work/src"
    cp Game.sfc Game7.sfc && cp Big.sfc BigZip.sfc && mv Big.sfc Big7.sfc
    zip -q -X "$work/b/one/Game.zip" Game.sfc
    7z a -bd -bso0 "$work/b/one/Game7.7z" Game7.sfc
    zip -q -X "$work/b/big/BigZip.zip" BigZip.sfc
    7z a -bd -bso0 "$work/b/big/Big7.7z" Big7.sfc
)

# Medians: on this shared VM a single run of either command can take twice
# its usual time, and one such run moves a mean of ten by a tenth. The
# ratio of the means follows in parentheses.
ratio() {  # ratio JSON: median of command 1 / median of command 2 (and of the means)
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f (%.2f)" % (r[0]["median"]/r[1]["median"], r[0]["mean"]/r[1]["mean"]))' "$1"
}
median_ms() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" / ".join("%.1f" % (x["median"]*1000) for x in r))' "$1"
}
report=$out/archive-report.md
{
    echo "# Archive benchmarks"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| measure | ninja-fs / reference, medians (ms) | ratio of medians (of means) |"
    echo "| --- | --- | ---: |"
} > "$report"

"$bin" mount "$work/b" "$mnt"
# 1. First read of a 4 MiB ROM from a deflate zip and from a 7z. Touching
#    the archive changes its identity: each run lists it again and builds
#    the image afresh, as the first read after a download would.
cmp "$mnt/normalized/one/Game.sfc" "$work/src/Game.sfc"
cmp "$mnt/normalized/one/Game7.sfc" "$work/src/Game.sfc"
hyperfine -N --warmup 2 --runs 15 --export-json "$work/zip.json" \
    --prepare "touch $work/b/one/Game.zip" "cat $mnt/normalized/one/Game.sfc" \
    --prepare "true" "unzip -p $work/b/one/Game.zip" >/dev/null
echo "| first read of a 4 MiB ROM in a deflate zip (mount / unzip -p) | $(median_ms "$work/zip.json") | $(ratio "$work/zip.json") |" >> "$report"
hyperfine -N --warmup 2 --runs 15 --export-json "$work/7z.json" \
    --prepare "touch $work/b/one/Game7.7z" "cat $mnt/normalized/one/Game7.sfc" \
    --prepare "true" "7z x -so $work/b/one/Game7.7z" >/dev/null
echo "| first read of a 4 MiB ROM in a 7z (mount / 7z x -so) | $(median_ms "$work/7z.json") | $(ratio "$work/7z.json") |" >> "$report"
"$bin" unmount "$mnt"
while pgrep -f "^$bin mount $work/b $mnt\$" >/dev/null; do sleep 0.01; done

# 2. ls -l of 10,000 one-ROM zips, warm page cache, on a fresh mount each
#    run: the first mount with no header cache (every zip's directory and
#    detection bytes read), later mounts with the cache the first saved.
cat > "$work/remount" <<SCRIPT
#!/bin/sh
"$bin" unmount "$mnt" 2>/dev/null
while pgrep -f "^$bin mount $work/b $mnt\$" >/dev/null; do sleep 0.01; done
if [ "\$1" = fresh ]; then rm -rf "$XDG_CACHE_HOME/ninja-fs"; fi
# Warm page cache: this VM's page cache drops pages of files only listed
# (a zip's middle pages were read back from disk in the timed listing).
cat "$work"/b/\$2/* > /dev/null
"$bin" mount "$work/b" "$mnt"
SCRIPT
chmod +x "$work/remount"
for folder in many loose; do
    ls -l "$work/b/$folder" > /dev/null
    files="one-ROM zips"
    [ $folder = loose ] && files="loose ROMs (the same, unzipped)"
    for kind in fresh kept; do
        what="first mount (no header cache)"
        [ $kind = kept ] && what="later mount (header cache kept)"
        if [ $kind = kept ]; then "$work/remount" fresh $folder; ls -l "$mnt/normalized/$folder" > /dev/null; fi
        hyperfine -N --warmup 1 --runs 15 --export-json "$work/ls.json" \
            --prepare "$work/remount $kind $folder" "ls -l $mnt/normalized/$folder" \
            --prepare "true" "ls -l $work/b/$folder" >/dev/null
        echo "| ls -l of 10,000 $files, warm page cache, $what (mount / backing) | $(median_ms "$work/ls.json") | $(ratio "$work/ls.json") |" >> "$report"
    done
done
"$bin" unmount "$mnt"
while pgrep -f "^$bin mount $work/b $mnt\$" >/dev/null; do sleep 0.01; done

# 3. Peak memory building a 64 MiB image from each archive kind, against
#    the image itself: what is left is the decompressor's state (and the
#    daemon's own few MiB). A fresh daemon for each.
for file in big/BigZip.sfc big/Big7.sfc; do
    "$bin" mount -f "$work/b" "$mnt" 2>"$work/daemon.log" &
    daemon=$!
    for _ in $(seq 600); do mountpoint -q "$mnt" && break; sleep 0.05; done
    mountpoint -q "$mnt" || { cat "$work/daemon.log" >&2; exit 1; }
    base=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
    cmp "$mnt/normalized/$file" "$work/src/BigZip.sfc"
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
    extra=$(( (peak - base) / 1024 - 64 ))
    echo "| peak memory building a 64 MiB image from $file's archive, above the image and the daemon before it (limit 64 MiB) | $extra MiB | $(python3 -c "print(f'{$extra/64:.2f}')") |" >> "$report"
    kill -TERM "$daemon"; wait "$daemon" || true; daemon=
done

cat "$report"
