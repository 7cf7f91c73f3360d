#!/usr/bin/env bash
# Filesystem benchmarks (issue: the mount's speed), each as a ratio against a
# reference measured in the same run. Needs root and /dev/fuse; installs
# hyperfine with apt-get when missing. Prints a report (markdown table).
#
#   scripts/bench_mount.sh                        # builds the release binary first
#   NINJA_FS_BIN=/path/to/ninja-fs scripts/bench_mount.sh   # measures that binary
#
# Everything it makes (inputs, mounts, logs, header cache, the report) is
# in one temporary folder under /var/tmp, deleted at the end; the build
# goes where cargo puts it (CARGO_TARGET_DIR, else the checkout's target/).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hyperfine >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine
fi
if [ -n "${NINJA_FS_BIN:-}" ]; then
    bin=$(realpath "$NINJA_FS_BIN")
else
    cargo build --release --quiet
    bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release/ninja-fs
fi
work=$(mktemp -d /var/tmp/ninja-bench.XXXXXX)
out=$work
mnt=$work/mnt
mkdir -p "$mnt" "$work/b"
# The mounts' header cache and logs go here, not into ~/.cache and
# ~/.local/state.
export XDG_CACHE_HOME=$work/xdg XDG_STATE_HOME=$work/state
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    if mountpoint -q "$mnt"; then "$bin" unmount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "making inputs in $work/b ..."
python3 - "$work/b" <<'PY'
import os, random, struct, sys
root = sys.argv[1]
rng = random.Random(7)
def noise(n):
    return bytearray(rng.getrandbits(8 * n).to_bytes(n, "little"))
def snes(n):
    d = noise(n)
    d[0x7FD5] = 0x20  # LoROM
    d[0x7FDC:0x7FE0] = bytes([0xFF, 0xFF, 0, 0])  # complement + checksum = 0xFFFF
    return d
os.makedirs(f"{root}/big")
big = snes(64 << 20)
open(f"{root}/big/Game.sfc", "wb").write(big)
# The same ROM behind a copier header: its views are images ninja-fs builds.
open(f"{root}/big/Headered.smc", "wb").write(bytes(512) + big)
os.makedirs(f"{root}/p")
src = snes(4 << 20)
open(f"{root}/p/Game.sfc", "wb").write(src)
dst = bytearray(src)
for _ in range(2000):
    at = rng.randrange(0x8000, len(dst) - 64)
    dst[at:at + 16] = noise(16)
dst += noise(256 << 10)
open(f"{root}/p.target.sfc", "wb").write(dst)
os.makedirs(f"{root}/many")
gb = noise(32 << 10)
gb[0x104:0x108] = bytes([0xCE, 0xED, 0x66, 0x66])
for i in range(10000):
    gb[0x134:0x140] = b"GAME%08d" % i
    open(f"{root}/many/game{i:05d}.gb", "wb").write(gb)
os.makedirs(f"{root}/variants")
for r in range(100):
    rom = snes(1 << 20)
    open(f"{root}/variants/rom{r:03d}.sfc", "wb").write(rom)
    os.makedirs(f"{root}/variants/rom{r:03d}")
    for v in range(10):
        at = 0x10000 + v * 4096
        ips = b"PATCH" + struct.pack(">I", at)[1:] + struct.pack(">H", 4) + bytes([v, r & 0xFF, 1, 2]) + b"EOF"
        open(f"{root}/variants/rom{r:03d}/fix{v}.ips", "wb").write(ips)
PY
"$bin" create "$work/b/p/Game.sfc" "$work/b/p.target.sfc" -o "$work/b/p/Game.bps"
mv "$work/b/p.target.sfc" "$work/"

mount_fs() { "$bin" mount "$work/b" "$mnt" "$@"; }
unmount_fs() {  # and wait for the daemon to exit
    "$bin" unmount "$mnt"
    while pgrep -f "^$bin mount $work/b $mnt" >/dev/null; do sleep 0.05; done
}
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches || true; }

# remount [fresh]: unmount, wait for the daemon to exit (it finishes saving
# its header cache first), with "fresh" delete the header cache, drop the
# page cache, mount again.
cat > "$work/remount" <<SCRIPT
#!/bin/sh
"$bin" unmount "$mnt" 2>/dev/null
while pgrep -f "^$bin mount $work/b $mnt\$" >/dev/null; do sleep 0.01; done
if [ "\$1" = fresh ]; then rm -rf "$XDG_CACHE_HOME/ninja-fs"; fi
sync; echo 3 > /proc/sys/vm/drop_caches
"$bin" mount "$work/b" "$mnt"
SCRIPT
chmod +x "$work/remount"

ratio() {  # ratio JSON: mean of command 1 / mean of command 2
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f" % (r[0]["mean"]/r[1]["mean"]))' "$1"
}
mean_ms() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" / ".join("%.1f" % (x["mean"]*1000) for x in r))' "$1"
}
report=$out/mount-report.md
{
    echo "# Mount benchmarks"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| measure | ninja-fs / reference (ms) | ratio |"
    echo "| --- | --- | ---: |"
} > "$report"

mount_fs
# 1. Warm sequential read of 64 MiB vs the backing file: a view that is the
#    backing file itself (the kernel reads it directly: FUSE passthrough),
#    and an image ninja-fs built (served from the kernel's page cache).
cat "$mnt/deinterleaved/big/Game.sfc" "$mnt/normalized/big/Headered.sfc" > /dev/null
cmp "$mnt/normalized/big/Headered.sfc" "$work/b/big/Game.sfc"
for view_file in deinterleaved/big/Game.sfc normalized/big/Headered.sfc; do
    hyperfine -N --warmup 3 --runs 20 --export-json "$work/read.json" \
        "dd if=$mnt/$view_file of=/dev/null bs=1M" \
        "dd if=$work/b/big/Game.sfc of=/dev/null bs=1M" >/dev/null
    echo "| warm sequential read, 64 MiB, $view_file (mount / backing; ratio = backing time : mount time) | $(mean_ms "$work/read.json") | $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f" % (r[1]["mean"]/r[0]["mean"]))' "$work/read.json") |" >> "$report"
done

# 2. First read of a patched 4 MiB SNES ROM vs `ninja-fs apply` as a process.
#    Touching the patch changes its identity, so every run builds afresh.
patched="$mnt/patched/p/Game [Game].sfc"
apply="$bin apply '$work/b/p/Game.sfc' '$work/b/p/Game.bps' -o - > /dev/null"
hyperfine --warmup 3 --runs 30 --export-json "$work/first.json" \
    --prepare "touch '$work/b/p/Game.bps'" \
    "cat '$patched' > /dev/null" "$apply" >/dev/null
echo "| first read of a patched 4 MiB SNES ROM, the patch touched before each run (mount / apply) | $(mean_ms "$work/first.json") | $(ratio "$work/first.json") |" >> "$report"
cmp "$patched" "$work/p.target.sfc"
unmount_fs
#    The patch unchanged, the image evicted: a mount whose cache is smaller
#    than the image builds it at every open; the kernel's pages of the file
#    (if it keeps any) are dropped before each run.
mount_fs --cache-size 4M
evict="python3 -c 'import os,sys; f=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(f,0,0,os.POSIX_FADV_DONTNEED)' '$patched'"
hyperfine --warmup 3 --runs 30 --export-json "$work/first.json" \
    --prepare "$evict" "cat '$patched' > /dev/null" "$apply" >/dev/null
echo "| first read of a patched 4 MiB SNES ROM, the patch unchanged and the image evicted (mount / apply) | $(mean_ms "$work/first.json") | $(ratio "$work/first.json") |" >> "$report"
cmp "$patched" "$work/p.target.sfc"
unmount_fs
mount_fs

# 3. ls -l of 10,000 ROMs in each view, warm and cold. None of them has a
#    patch, so patched/ shows no many/ folder: listing patched/ pairs all
#    10,000 to find that out.
listed() {  # listed VIEW: what `ls -l` lists of that view
    if [ "$1" = patched ]; then echo "$mnt/patched"; else echo "$mnt/$1/many"; fi
}
for view in normalized deinterleaved info patched; do
    hyperfine -N --warmup 2 --runs 10 --export-json "$work/lsw.json" \
        "ls -l $(listed $view)" "ls -l $work/b/many" >/dev/null
    echo "| ls -l 10,000 ROMs, warm, $view (mount / backing) | $(mean_ms "$work/lsw.json") | $(ratio "$work/lsw.json") |" >> "$report"
done
unmount_fs
#    Cold: page cache dropped and a fresh mount before each run. First
#    mount: the header cache deleted too, so every file's headers are read
#    (and the cache saved). Later mounts: the cache the first one saved.
cold_listings() {  # cold_listings REMOUNT-ARGUMENT DESCRIPTION
    for view in normalized deinterleaved info patched; do
        hyperfine -N --runs 5 --export-json "$work/lsc.json" \
            --prepare "$work/remount $1" \
            "ls -l $(listed $view)" \
            --prepare "sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'" \
            "ls -l $work/b/many" >/dev/null
        echo "| ls -l 10,000 ROMs, cold $2, $view (mount / backing) | $(mean_ms "$work/lsc.json") | $(ratio "$work/lsc.json") |" >> "$report"
    done
}
cold_listings fresh "first mount (page cache dropped, no header cache)"
"$work/remount" fresh
ls -l "$mnt"/*/many > /dev/null
cold_listings "" "later mount (page cache dropped, header cache kept)"
mountpoint -q "$mnt" && unmount_fs

# 4. Peak memory reading 1,000 distinct patched variants through a 64 MiB cache.
"$bin" mount -f --cache-size 64M "$work/b" "$mnt" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 600); do mountpoint -q "$mnt" && break; sleep 0.05; done
if ! mountpoint -q "$mnt"; then
    echo "the foreground mount did not come up:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
count=0
for f in "$mnt"/patched/variants/*.sfc; do cat "$f" > /dev/null; count=$((count + 1)); done
peak=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
# Images the daemon keeps in files of its private tmpfs are not in VmHWM
# (they are not mapped while the kernel reads them): add what it holds.
files=$(python3 - "$daemon" <<'PY2'
import os, sys
fds = f"/proc/{sys.argv[1]}/fd"
total = 0
for fd in os.listdir(fds):
    try:
        if os.readlink(f"{fds}/{fd}").startswith("/#"):  # an unnamed tmpfs file
            total += os.stat(f"{fds}/{fd}").st_size
    except OSError:
        pass
print(total // 1024)
PY2
)
echo "| peak memory (VmHWM) of the daemon after reading $count distinct 1 MiB variants through a 64 MiB cache, plus its images in tmpfs files at the end | $((peak / 1024)) + $((files / 1024)) MiB / 96 MiB allowed | $(python3 -c "print(f'{($peak+$files)/1024/96:.2f}')") |" >> "$report"
kill -TERM "$daemon"; wait "$daemon" || true; daemon=

echo
cat "$report"
