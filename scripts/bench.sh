#!/usr/bin/env bash
# The project's speed measurements, as BENCHMARKS.md reports them.
#
#   scripts/bench.sh            everything (about 10 minutes on 2 cores)
#   scripts/bench.sh --no-criterion   only the whole-command timings
#
# 1. builds the release binary and the benches;
# 2. runs the criterion benches (benches/system.rs, benches/patch.rs) with the
#    sample counts and times set in those files; extra criterion options can
#    be given in CRITERION_ARGS (e.g. CRITERION_ARGS=--quick);
# 3. times whole commands with hyperfine (installed with apt-get when
#    missing and run as root), each against a reference run in the same
#    hyperfine session, and quotes the ratio:
#      ninja-fs normalize of a 64 MiB .v64   vs  dd conv=swab of it
#      ninja-fs normalize of a 64 MiB .smc   vs  tail -c +513 of it
#    once with the output to /dev/null and once to a file on tmpfs, and
#      ninja-fs apply of a 4 MiB NINJA2 patch vs  md5sum of its two images,
#      ninja-fs apply of a 4 MiB plain VCDIFF vs  xdelta3 -d of it (to
#        /dev/null, to a file on tmpfs, and to a file on disk, where
#        ninja-fs's fsync before the rename is also compared with
#        xdelta3 -d followed by `sync FILE`),
#      ninja-fs create --format bps, 64 MiB   vs  flips --create --bps-delta
#        (two pairs: noise with edits, and structured data with edits,
#        insertions and deletions; 3 runs each, patch sizes reported);
#        needs a Floating IPS binary: FLIPS=/path/to/flips, or `flips` on
#        PATH, else these rows are left out.
#
# BASELINE=/path/to/an/older/ninja-fs adds that binary to every
# whole-command row (same arguments), with the ratio new / baseline.
#
# Inputs are generated deterministically (python3) in a temp dir, on tmpfs
# when /dev/shm exists, and removed at the end. The summary tables are
# written to target/bench/report.md (and printed).

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/report.md"
RUN_CRITERION=1
[[ "${1:-}" == "--no-criterion" ]] && RUN_CRITERION=0

base=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && base=/dev/shm
WORK=$(mktemp -d "$base/ninja-fs-bench.XXXXXX")
DISK=
cleanup() { rm -rf "$WORK" ${DISK:+"$DISK"}; }
trap cleanup EXIT

mkdir -p "$REPORT_DIR"
started=$(date +%s)

# ---- the machine ----
{
    echo "# ninja-fs benchmark run"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- cores (nproc): $(nproc)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel: $(uname -sr)"
    echo "- rustc: $(rustc --version)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- temp dir: $WORK"
    echo
} >"$REPORT"

# ---- build ----
cargo build --release --quiet
cargo bench --no-run --quiet 2>/dev/null || cargo bench --no-run
BIN="$ROOT/target/release/ninja-fs"

# ---- criterion ----
# Reads criterion's estimates into one markdown table: group, function,
# input, mean time and mean throughput.
criterion_table() {
    local dir="$ROOT/target/criterion"
    echo "| group | function | input | mean time | throughput (GB/s) |"
    echo "| --- | --- | --- | ---: | ---: |"
    find "$dir" -path '*/new/benchmark.json' | sort | while read -r bench; do
        local est="${bench%benchmark.json}estimates.json"
        [[ -f "$est" ]] || continue
        jq -r --slurpfile e "$est" '
            def t(ns): if ns >= 1e9 then "\(ns/1e9*1000|round/1000) s"
                       elif ns >= 1e6 then "\(ns/1e6*100|round/100) ms"
                       elif ns >= 1e3 then "\(ns/1e3*100|round/100) µs"
                       else "\(ns*10|round/10) ns" end;
            ($e[0].mean.point_estimate) as $ns
            | (.throughput.Bytes // 0) as $b
            | "| \(.group_id) | \(.function_id) | \(.value_str) | \(t($ns)) | "
              + (if $b > 0 then "\($b / $ns * 100 | round / 100)" else "-" end) + " |"
        ' "$bench"
    done
}

if [[ $RUN_CRITERION == 1 ]]; then
    rm -rf "$ROOT/target/criterion"
    phase=$(date +%s)
    # shellcheck disable=SC2086
    cargo bench --quiet --bench system -- ${CRITERION_ARGS:-} 2>&1 | tee "$REPORT_DIR/system.log"
    system_secs=$(($(date +%s) - phase))
    phase=$(date +%s)
    # shellcheck disable=SC2086
    cargo bench --quiet --bench patch -- ${CRITERION_ARGS:-} 2>&1 | tee "$REPORT_DIR/patch.log"
    patch_secs=$(($(date +%s) - phase))
    {
        echo "## Criterion"
        echo
        echo "benches/system.rs ran ${system_secs} s, benches/patch.rs ${patch_secs} s."
        echo
        criterion_table
        echo
        echo "## Patch sizes (printed by benches/patch.rs)"
        grep -E '^(\| |Patch sizes|BPS )' "$REPORT_DIR/patch.log" | sed 's/^\(Patch sizes\|BPS \)/\n&/'
        echo
    } >>"$REPORT"
fi

# ---- whole commands ----
missing=()
for tool in hyperfine xdelta3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "missing: ${missing[*]}: install them (Debian packages of the same names) and run again" >&2
        exit 1
    fi
fi
FLIPS=${FLIPS:-$(command -v flips || true)}
BASELINE=${BASELINE:-}

# 64 MiB of deterministic noise: a v64 (N64 boot word byte-swapped) and a
# LoROM SNES with a valid internal header behind a Super Wild Card header.
python3 - "$WORK" <<'EOF'
import random, sys
work = sys.argv[1]
size = 64 << 20
data = bytearray(random.Random(20060101).randbytes(size))
data[0:4] = bytes([0x37, 0x80, 0x40, 0x12])
open(f"{work}/big.v64", "wb").write(data)
data = bytearray(random.Random(20060102).randbytes(size))
base, other = 0x7FC0, 0xFFC0
data[other + 0x1C:other + 0x20] = bytes(4)
checksum = int.from_bytes(data[base + 0x1E:base + 0x20], "little")
data[base + 0x1C:base + 0x1E] = (checksum ^ 0xFFFF).to_bytes(2, "little")
data[base + 0x15] = 0x20
header = bytearray(512)
header[8:11] = bytes([0xAA, 0xBB, 0x04])
open(f"{work}/big.smc", "wb").write(header + data)
EOF

# The commands must do what they are timed for.
"$BIN" normalize "$WORK/big.v64" -o "$WORK/check.z64"
dd if="$WORK/big.v64" of="$WORK/check.swab" bs=1M conv=swab status=none
cmp "$WORK/check.z64" "$WORK/check.swab"
"$BIN" normalize "$WORK/big.smc" -o "$WORK/check.sfc"
tail -c +513 "$WORK/big.smc" | cmp - "$WORK/check.sfc"
rm -f "$WORK"/check.*

# hyperfine: the reference first, then (with BASELINE) the older binary,
# then ninja-fs; prints the ratio of means. SHELL_MODE=none runs the
# commands directly; otherwise through sh, whose start-up hyperfine
# measures and subtracts. RUNS=N runs each command N times (no warm-up)
# instead of at least 20.
compare() {
    local name=$1 reference=$2 ours=$3
    local commands=(-n reference "$reference")
    [[ -n $BASELINE ]] && commands+=(-n baseline "${ours//$BIN/$BASELINE}")
    commands+=(-n ninja-fs "$ours")
    local runs=(--warmup 3 --min-runs 20)
    [[ -n ${RUNS:-} ]] && runs=(--runs "$RUNS")
    hyperfine --shell="${SHELL_MODE:-none}" "${runs[@]}" --style basic \
        --export-json "$WORK/$name.json" "${commands[@]}" \
        >"$WORK/$name.txt" 2>&1 || { cat "$WORK/$name.txt"; return 1; }
    cat "$WORK/$name.txt" >&2
    jq -r --arg name "$name" --arg ref "$reference" --arg ours "$ours" '
        def ms(r): "\(r.mean*1000*10|round/10) ± \(r.stddev*1000*10|round/10)";
        (.results[0]) as $r | (.results[-1]) as $o
        | "| \($name) | `\($ref)` | \(ms($r)) | `\($ours)` | \(ms($o)) | \($o.mean/$r.mean*100|round/100) |"
          + (if (.results | length) == 3
             then " \(ms(.results[1])) | \($o.mean/.results[1].mean*100|round/100) |" else "" end)
    ' "$WORK/$name.json"
}

v64="$WORK/big.v64"
smc="$WORK/big.smc"

# A 4 MiB LoROM and a target with 2000 scattered 16-byte edits and a 256 KiB
# grown tail, as in benches/patch.rs, joined by a NINJA2 patch.
rup_source="$WORK/rup_source.sfc"
rup_target="$WORK/rup_target.sfc"
rup_patch="$WORK/rup_source.rup"
python3 - "$rup_source" "$rup_target" <<'PY'
import random, sys
rng = random.Random(7)
def noise(n):
    return bytearray(rng.getrandbits(8 * n).to_bytes(n, "little"))
source = noise(4 << 20)
source[0x7FD5] = 0x20
source[0x7FDC:0x7FE0] = bytes([0xFF, 0xFF, 0, 0])
open(sys.argv[1], "wb").write(source)
target = bytearray(source)
for _ in range(2000):
    at = rng.randrange(0x8000, len(target) - 64)
    target[at:at + 16] = noise(16)
target += noise(256 << 10)
open(sys.argv[2], "wb").write(target)
PY
"$BIN" create "$rup_source" "$rup_target" --format rup -o "$rup_patch"
"$BIN" apply "$rup_source" "$rup_patch" -o - | cmp - "$rup_target"

# The same pair as a plain VCDIFF; outputs on disk go to a second temp dir
# under TMPDIR (or /var/tmp), which is not tmpfs here, for the fsync rows.
vcdiff_patch="$WORK/rup_source.vcdiff"
xdelta3 -e -S none -f -s "$rup_source" "$rup_target" "$vcdiff_patch"
"$BIN" apply "$rup_source" "$vcdiff_patch" -o - | cmp - "$rup_target"
DISK=$(mktemp -d "${TMPDIR:-/var/tmp}/ninja-fs-bench-disk.XXXXXX")

# Two 64 MiB pairs for BPS delta creation (only with Floating IPS).
if [[ -n $FLIPS ]]; then
    python3 - "$WORK" <<'PY'
import random, sys
work = sys.argv[1]
size = 64 << 20

# Noise: 2000 edits of 1-64 bytes, 20 insertions and 20 deletions, a
# 300,000-byte block copied from elsewhere, a zeroed 64 KiB run, and a
# 256 KiB tail that repeats its first 64 KiB.
rng = random.Random(16)
source = bytearray(rng.randbytes(size))
target = bytearray(source)
for _ in range(2000):
    at = rng.randrange(0, len(target) - 64)
    n = rng.randrange(1, 65)
    target[at:at + n] = rng.randbytes(n)
for _ in range(20):
    at = rng.randrange(0, len(target))
    target[at:at] = rng.randbytes(rng.randrange(1, 65))
for _ in range(20):
    at = rng.randrange(0, len(target) - 64)
    del target[at:at + rng.randrange(1, 65)]
at, length = rng.randrange(0, size // 2), 300_000
target[size // 2:size // 2 + length] = source[at:at + length]
zero = rng.randrange(0, len(target) - 65536)
target[zero:zero + 65536] = bytes(65536)
tail = rng.randbytes(64 << 10)
target += tail + rng.randbytes(128 << 10) + tail
open(f"{work}/bps_noise.src", "wb").write(source)
open(f"{work}/bps_noise.tgt", "wb").write(target)

# Structured, like code and tables: pieces of earlier output repeated with
# a few bytes changed, runs of a 24-byte alphabet, runs of one byte, noise;
# the target has 20,000 small edits, 2,000 insertions of source pieces and
# 2,000 deletions.
rng = random.Random(1616)
out = bytearray()
alphabet = rng.randbytes(24)
while len(out) < size:
    kind = rng.random()
    if kind < 0.35 and len(out) > 4096:
        at = rng.randrange(0, len(out) - 256)
        piece = bytearray(out[at:at + rng.randrange(8, 256)])
        for _ in range(rng.randrange(0, 3)):
            piece[rng.randrange(len(piece))] = rng.randrange(256)
        out += piece
    elif kind < 0.6:
        out += bytes(rng.choice(alphabet) for _ in range(rng.randrange(4, 64)))
    elif kind < 0.65:
        out += bytes([rng.randrange(256)]) * rng.randrange(4, 512)
    else:
        out += rng.randbytes(rng.randrange(4, 96))
source = bytes(out[:size])
target = bytearray(source)
for _ in range(20000):
    at = rng.randrange(0, len(target) - 64)
    n = rng.randrange(1, 17)
    target[at:at + n] = bytes(rng.choice(alphabet) for _ in range(n))
for _ in range(2000):
    at = rng.randrange(0, len(target))
    piece = rng.randrange(0, len(source) - 64)
    target[at:at] = source[piece:piece + rng.randrange(4, 64)]
for _ in range(2000):
    at = rng.randrange(0, len(target) - 64)
    del target[at:at + rng.randrange(1, 65)]
open(f"{work}/bps_structured.src", "wb").write(source)
open(f"{work}/bps_structured.tgt", "wb").write(target)
PY
fi
{
    echo "## Whole commands (hyperfine, 64 MiB inputs on tmpfs)"
    echo
    echo "Ratio = ninja-fs mean / reference mean, both measured in the same hyperfine run."
    echo
    if [[ -n $BASELINE ]]; then
        echo "| case | reference | ref ms | ninja-fs | ninja-fs ms | ratio | baseline ms | new / baseline |"
        echo "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"
    else
        echo "| case | reference | ref ms | ninja-fs | ninja-fs ms | ratio |"
        echo "| --- | --- | ---: | --- | ---: | ---: |"
    fi
    # Standard output goes to /dev/null (hyperfine's default).
    compare v64_null "dd if=$v64 bs=1M conv=swab status=none" \
        "$BIN normalize $v64 -o -"
    compare smc_null "tail -c +513 $smc" \
        "$BIN normalize $smc -o -"
    # To a file on the same tmpfs, through sh (for tail's redirection):
    # ninja-fs writes a temp file, syncs and renames it (its atomic write),
    # dd and tail just write.
    SHELL_MODE=sh compare v64_file "dd if=$v64 of=$WORK/out.dd bs=1M conv=swab status=none" \
        "$BIN normalize $v64 -o $WORK/out.z64 --force"
    SHELL_MODE=sh compare smc_file "tail -c +513 $smc > $WORK/out.tail" \
        "$BIN normalize $smc -o $WORK/out.sfc --force"
    # RUP apply, 4 MiB SNES: the format demands an MD5 of the input and of
    # the result; the reference is md5sum of the same two files.
    compare rup_apply_4m "md5sum $rup_source $rup_target" \
        "$BIN apply $rup_source $rup_patch -o -"
    # Plain VCDIFF (no secondary compression), 4 MiB, made by xdelta3 from
    # the same pair. xdelta3 -d writes its output and stops; ninja-fs writes
    # a temp file, fsyncs it and renames it over the output.
    compare vcdiff_4m_null "xdelta3 -d -c -s $rup_source $vcdiff_patch" \
        "$BIN apply $rup_source $vcdiff_patch -o -"
    SHELL_MODE=sh compare vcdiff_4m_tmpfs "xdelta3 -d -f -s $rup_source $vcdiff_patch $WORK/out.xd" \
        "$BIN apply $rup_source $vcdiff_patch -o $WORK/out.vc --force"
    SHELL_MODE=sh compare vcdiff_4m_disk "xdelta3 -d -f -s $rup_source $vcdiff_patch $DISK/out.xd" \
        "$BIN apply $rup_source $vcdiff_patch -o $DISK/out.vc --force"
    SHELL_MODE=sh compare vcdiff_4m_disk_synced "xdelta3 -d -f -s $rup_source $vcdiff_patch $DISK/out.xd && sync $DISK/out.xd" \
        "$BIN apply $rup_source $vcdiff_patch -o $DISK/out.vc --force"
    # BPS delta create, 64 MiB, against Floating IPS's suffix-array creator.
    if [[ -n $FLIPS ]]; then
        for pair in noise structured; do
            RUNS=3 compare "bps_create_64m_$pair" \
                "$FLIPS --create --bps-delta $WORK/bps_$pair.src $WORK/bps_$pair.tgt $WORK/flips_$pair.bps" \
                "$BIN create $WORK/bps_$pair.src $WORK/bps_$pair.tgt --format bps -o $WORK/ninja_$pair.bps --force"
        done
    fi
    echo
    if [[ -n $FLIPS ]]; then
        for pair in noise structured; do
            "$BIN" apply "$WORK/bps_$pair.src" "$WORK/ninja_$pair.bps" -o - | cmp - "$WORK/bps_$pair.tgt"
            "$BIN" apply "$WORK/bps_$pair.src" "$WORK/flips_$pair.bps" -o - | cmp - "$WORK/bps_$pair.tgt"
            echo "- BPS delta patch, 64 MiB $pair pair: ninja-fs $(stat -c %s "$WORK/ninja_$pair.bps") bytes, Floating IPS $(stat -c %s "$WORK/flips_$pair.bps") bytes"
        done
    else
        echo "- BPS create rows left out: no Floating IPS (set FLIPS=/path/to/flips)"
    fi
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- total run time: $(($(date +%s) - started)) s"
} >>"$REPORT"

echo
cat "$REPORT"
