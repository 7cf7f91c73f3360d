#!/usr/bin/env bash
# Object-store benchmarks (issue 15), each a ratio against a reference client
# (boto3) measured in the same run against the same server: moto on
# 127.0.0.1. Needs root, /dev/fuse and moto[server]. Writes
# target/bench/s3-report.md.
#
#   scripts/bench_s3.sh [ROMS]          (default 1000)
#   NINJA_FS_BIN=path/to/ninja-fs scripts/bench_s3.sh   (skip the release build)
#   LATENCY_MS=20 scripts/bench_s3.sh   (the server in a network namespace
#                                        of its own, its replies delayed by
#                                        netem; needs iproute2)
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-1000}
if [ -z "${NINJA_FS_BIN:-}" ]; then
    cargo build --release --quiet
    bin=$PWD/target/release/ninja-fs
else
    bin=$NINJA_FS_BIN
fi
out=$PWD/target/bench
mkdir -p "$out"
work=$(mktemp -d /var/tmp/ninja-s3-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
export XDG_CACHE_HOME=$work/xdg
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
latency=${LATENCY_MS:-0}
host=127.0.0.1
netns=
in_netns=()
moto=
cleanup() {
    if mountpoint -q "$mnt"; then "$bin" unmount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
    if [ -n "$moto" ]; then kill "$moto" 2>/dev/null || true; wait "$moto" 2>/dev/null || true; fi
    if [ -n "$netns" ]; then
        ip link del "nfs3h$$" 2>/dev/null || true
        ip netns del "$netns" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ "$latency" != 0 ]; then
    # A host of its own on a veth pair, whose every reply waits
    # LATENCY_MS: the store is as far away as a NAS across a building.
    netns=ninja-s3-bench-$$
    ip netns add "$netns"
    ip link add "nfs3h$$" type veth peer name "nfs3n$$"
    ip link set "nfs3n$$" netns "$netns"
    ip addr add 10.231.0.1/24 dev "nfs3h$$"
    ip link set "nfs3h$$" up
    ip netns exec "$netns" ip addr add 10.231.0.2/24 dev "nfs3n$$"
    ip netns exec "$netns" ip link set "nfs3n$$" up
    ip netns exec "$netns" ip link set lo up
    ip netns exec "$netns" tc qdisc add dev "nfs3n$$" root netem delay "${latency}ms"
    host=10.231.0.2
    in_netns=(ip netns exec "$netns")
fi
endpoint=http://$host:$port
"${in_netns[@]}" python3 -m moto.server -H "$host" -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('$host', $port))" 2>/dev/null && break
    sleep 0.2
done

echo "putting $count ROMs (256 KiB) and one 4 MiB ROM into s3://bench ..."
python3 - "$endpoint" "$count" <<'PY'
import random, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
endpoint, count = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket="bench")
rng = random.Random(7)
def snes(n):
    d = bytearray(rng.getrandbits(8 * n).to_bytes(n, "little"))
    d[0x7FD5] = 0x20
    d[0x7FDC:0x7FE0] = bytes([0xFF, 0xFF, 0, 0])
    return bytes(d)
roms = [snes(256 << 10) for _ in range(8)]
def put(i):
    s3.put_object(Bucket="bench", Key=f"roms/Game {i:05d}.sfc", Body=roms[i % 8])
with ThreadPoolExecutor(16) as pool:
    list(pool.map(put, range(count)))
s3.put_object(Bucket="bench", Key="big/Big.sfc", Body=snes(4 << 20))
PY

now() { date +%s.%N; }
seconds() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# The reference: a paginated LIST, then one ranged GET (the first two
# detection windows' span) per object, one after another.
reference() {
    python3 - "$endpoint" "$1" <<'PY'
import sys, time
import boto3
endpoint, gets = sys.argv[1], sys.argv[2] == "gets"
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
start = time.monotonic()
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="roms/", Delimiter="/"):
    keys += [o["Key"] for o in page.get("Contents", [])]
if gets:
    for key in keys:
        s3.get_object(Bucket="bench", Key=key, Range="bytes=0-66047")["Body"].read()
print(f"{time.monotonic() - start:.3f}")
PY
}

mount_bucket() {
    "$bin" mount "s3://bench/$1" "$mnt" --s3-endpoint "$endpoint" >/dev/null 2>&1
}

ref_gets=$(reference gets)
ref_list=$(reference list)
# Timed from the mount command on: mounting lists the bucket's root.
t0=$(now); mount_bucket roms; ls -l "$mnt/normalized" >/dev/null; t1=$(now)
first=$(seconds "$t0" "$t1")
"$bin" unmount "$mnt"
sleep 1
t0=$(now); mount_bucket roms; ls -l "$mnt/normalized" >/dev/null; t1=$(now)
later=$(seconds "$t0" "$t1")
"$bin" unmount "$mnt"
sleep 1

ref_big=$(python3 - "$endpoint" <<'PY'
import sys, time
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
start = time.monotonic()
s3.get_object(Bucket="bench", Key="big/Big.sfc")["Body"].read()
print(f"{time.monotonic() - start:.3f}")
PY
)
mount_bucket big
ls -l "$mnt/normalized" >/dev/null
t0=$(now); cat "$mnt/normalized/Big.sfc" >/dev/null; t1=$(now)
big=$(seconds "$t0" "$t1")
"$bin" unmount "$mnt"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
{
    echo "Added latency: ${latency} ms"
    echo
    echo "| what | ninja-fs | reference | ratio |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| mount + first \`ls -l\` of $count ROMs (no header cache) vs LIST + 1 ranged GET each, sequential | ${first} s | ${ref_gets} s | $(ratio "$first" "$ref_gets") |"
    echo "| mount + later \`ls -l\` (header cache) vs the LIST alone | ${later} s | ${ref_list} s | $(ratio "$later" "$ref_list") |"
    echo "| read a 4 MiB ROM's normalized/ file vs one GET of the object | ${big} s | ${ref_big} s | $(ratio "$big" "$ref_big") |"
} | tee "$out/s3-report.md"
