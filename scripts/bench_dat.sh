#!/usr/bin/env bash
# DAT verification's speed and memory, as BENCHMARKS.md reports them
# (section "DAT verification"):
#
#   1. loading a generated 50,000-entry Logiqx DAT: `ninja-fs info ROM --dat
#      big.dat` against `ninja-fs info ROM` (hyperfine), and the peak memory
#      of each (/usr/bin/time), against the entries' hash bytes;
#   2. the first listing of verified/ in a fresh mount (no header cache, so
#      every ROM is hashed) against `sha1sum` of the same files.
#
#   scripts/bench_dat.sh           builds the release binary
#   BIN=path scripts/bench_dat.sh  times that binary instead
#
# Needs hyperfine, jq, /usr/bin/time, python3 and /dev/fuse (root). Inputs
# are generated deterministically in a temp dir (on tmpfs when /dev/shm
# exists) and removed at the end; the table goes to target/bench/dat.md.

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
mkdir -p "$ROOT/target/bench"
REPORT="$ROOT/target/bench/dat.md"
ROMS=${ROMS:-64}
ROM_MIB=${ROM_MIB:-4}
RUNS=${RUNS:-3}

base=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && base=/dev/shm
WORK=$(mktemp -d "$base/ninja-fs-bench-dat.XXXXXX")
MNT="$WORK/mnt"
cleanup() {
    if mountpoint -q "$MNT" 2>/dev/null; then
        "$BIN" unmount "$MNT" || umount -l "$MNT" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${BIN:-}" ]]; then
    cargo build --release --quiet
    BIN="$ROOT/target/release/ninja-fs"
fi

# ROMS files of ROM_MIB MiB of noise (headerless Game Boy-sized raw .bin
# images: their three images are one), and a DAT of 50,000 entries: one
# per ROM with its real digests, the rest made up, like No-Intro's
# (name, description, size, CRC32, MD5, SHA-1).
python3 - "$WORK" "$ROMS" "$ROM_MIB" <<'EOF'
import hashlib, os, random, sys, zlib
work, count, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20260101)
os.makedirs(f"{work}/roms")
os.makedirs(f"{work}/mnt")
entries = []
for n in range(count):
    data = rng.randbytes(mib << 20)
    open(f"{work}/roms/rom{n:03}.bin", "wb").write(data)
    entries.append((f"Real Game {n} (World)", len(data), zlib.crc32(data),
                    hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest()))
while len(entries) < 50_000:
    n = len(entries)
    fake = rng.randbytes(36)
    entries.append((f"Made Up Game {n} (USA, Europe) (Rev {n % 3})", rng.randrange(1 << 15, 1 << 23),
                    int.from_bytes(fake[:4], "big"), fake[4:20].hex(), rng.randbytes(20).hex()))
with open(f"{work}/big.dat", "w") as out:
    out.write('<?xml version="1.0"?>\n<datafile>\n\t<header>\n\t\t<name>Bench - Generated</name>\n'
              '\t\t<version>1</version>\n\t</header>\n')
    for name, size, crc, md5, sha1 in entries:
        out.write(f'\t<game name="{name}">\n\t\t<description>{name}</description>\n'
                  f'\t\t<rom name="{name}.bin" size="{size}" crc="{crc:08x}" md5="{md5}" sha1="{sha1}" status="verified"/>\n'
                  '\t</game>\n')
    out.write('</datafile>\n')
EOF
printf '\x00%.0s' {1..32768} >"$WORK/tiny.bin"

dat_bytes=$(stat -c %s "$WORK/big.dat")
# The DAT's hash bytes: CRC32 + MD5 + SHA-1 per entry.
hash_kib=$((50000 * (4 + 16 + 20) / 1024))

{
    echo "# DAT verification benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- binary: $BIN"
    echo "- cores (nproc): $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- DAT: 50,000 entries, $((dat_bytes / 1024)) KiB; ROMs: $ROMS x $ROM_MIB MiB on $base"
    echo
} >"$REPORT"

# ---- 1. loading ----
hyperfine --shell=none --warmup 2 --min-runs 10 --style basic \
    --export-json "$WORK/load.json" \
    -n without "$BIN info $WORK/tiny.bin" \
    -n with-dat "$BIN info $WORK/tiny.bin --dat $WORK/big.dat" >&2
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss_without=$(peak "$BIN" info "$WORK/tiny.bin")
rss_with=$(peak "$BIN" info "$WORK/tiny.bin" --dat "$WORK/big.dat")
jq -r --arg without "$rss_without" --arg with "$rss_with" --arg hash "$hash_kib" '
    (.results[0]) as $a | (.results[1]) as $b
    | "| load a 50,000-entry DAT (info --dat less info) | \(($b.mean - $a.mean)*1000|round) ms | peak RSS \($with) KiB less \($without) KiB = \(($with|tonumber) - ($without|tonumber)) KiB | hash bytes \($hash) KiB |"
' "$WORK/load.json" >>"$REPORT"

# ---- 2. first listing of verified/ against sha1sum ----
list_times=()
for _ in $(seq "$RUNS"); do
    "$BIN" mount "$WORK/roms" "$MNT" --dat "$WORK/big.dat" --no-header-cache 2>/dev/null
    start=$(date +%s.%N)
    count=$(ls "$MNT/verified/Bench - Generated" | wc -l)
    end=$(date +%s.%N)
    "$BIN" unmount "$MNT"
    [[ "$count" == "$ROMS" ]] || { echo "verified/ lists $count files, not $ROMS" >&2; exit 1; }
    list_times+=("$(echo "$end - $start" | bc)")
done
sha_times=()
for _ in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    sha1sum "$WORK"/roms/*.bin >/dev/null
    end=$(date +%s.%N)
    sha_times+=("$(echo "$end - $start" | bc)")
done
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.3f", s / NR }'; }
list_mean=$(mean "${list_times[@]}")
sha_mean=$(mean "${sha_times[@]}")
{
    echo "| first listing of verified/ ($ROMS ROMs, $((ROMS * ROM_MIB)) MiB, hashed) | ${list_mean} s | sha1sum of the same files: ${sha_mean} s | ratio $(echo "scale=2; $list_mean / $sha_mean" | bc) |"
    echo
    echo "- runs: $RUNS each; listing times: ${list_times[*]}; sha1sum times: ${sha_times[*]}"
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$REPORT"
cat "$REPORT"
