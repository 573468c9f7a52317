#!/usr/bin/env bash
# Type-checks the whole workspace (the three crates, their tests and benches) for every
# system pizauth supports besides the host: Linux on aarch64 (glibc and musl) and x86-64
# musl, macOS on x86-64 and aarch64, FreeBSD and OpenBSD on x86-64.
#
#   bash tools/portability-check.sh [TRIPLE...]      (from anywhere; default: all below)
#
# How, without another target's standard library (rustup cannot download one here):
# Debian's rustc-web and cargo-web come with the standard library's source
# (rust-web-src), so `cargo check -Zbuild-std` builds std for each target from it
# (RUSTC_BOOTSTRAP=1 lets this stable compiler take the -Z flag). `cargo check` never
# links, so no target linker or SDK is needed. ring's build script still compiles C: clang
# does that without a target sysroot in ring's own mode for it (-nostdlibinc
# -DRING_CORE_NOSTDLIBINC=1, with -ffreestanding so the x86 intrinsics headers want no
# libc), and for Apple targets ring's headers include TargetConditionals.h, which a
# two-line stub provides.
#
# Caches (std and dependencies per target, logs) live in $PORTABILITY_CACHE, by default
# /var/tmp/pizauth-portability: the first run takes about 11 minutes on 2 cores, later
# ones well under a minute. PORTABILITY_BUDGET_S bounds the whole run (default 1500 s).
# Exit status: 0 when every target type-checks, 1 otherwise (each failure names its log).
set -u
cd "$(dirname "$0")/.." || exit 1

targets=(
  aarch64-unknown-linux-gnu
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  x86_64-apple-darwin
  aarch64-apple-darwin
  x86_64-unknown-freebsd
  x86_64-unknown-openbsd
)
if (($# > 0)); then targets=("$@"); fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }
missing=()
for p in rustc-web cargo-web rust-web-src clang llvm; do
  installed "$p" || missing+=("$p")
done
# -Zbuild-std needs the source of exactly the compiler that builds it.
if [[ $(version rustc-web) != "$(version rust-web-src)" ]]; then
  missing+=(rustc-web rust-web-src)
fi
if ((${#missing[@]} > 0)); then
  sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo -n)
  if ! { "${sudo[@]}" apt-get update -qq -o DPkg::Lock::Timeout=300 &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
      --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
    echo "portability: cannot install ${missing[*]} (apt-get failed)"
    exit 1
  fi
fi
if [[ ! -d /usr/lib/rustlib/src/rust/library/std ]]; then
  echo "portability: rust-web-src gave no standard library source"
  exit 1
fi

cache=${PORTABILITY_CACHE:-/var/tmp/pizauth-portability}
mkdir -p "$cache/include" "$cache/logs" || exit 1
printf '#define TARGET_OS_OSX 1\n#define TARGET_OS_IPHONE 0\n' >"$cache/include/TargetConditionals.h"

# Debian's compiler and cargo, never rustup's; no flags from the caller's environment.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$cache/target
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER CARGO_BUILD_TARGET

end=$((SECONDS + ${PORTABILITY_BUDGET_S:-1500}))
failed=()
for target in "${targets[@]}"; do
  log=$cache/logs/$target.log
  left=$((end - SECONDS))
  if ((left < 20)); then
    echo "$target: not checked: the time budget is spent (run again: the caches are kept)"
    failed+=("$target")
    continue
  fi
  # Check our own crates every time: a fresh clone's files can be older than the
  # results cached from another checkout, which cargo would then take as up to date.
  rm -rf "$CARGO_TARGET_DIR/$target"/debug/.fingerprint/pizauth-*
  t=${target//-/_}
  start=$SECONDS
  env "CC_$t=clang" "AR_$t=llvm-ar" \
    "CFLAGS_$t=-ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -isystem $cache/include" \
    timeout "$left" /usr/bin/cargo check -Zbuild-std=std,panic_abort --target "$target" \
    --workspace --all-targets --keep-going --message-format=short >"$log" 2>&1
  status=$?
  took=$((SECONDS - start))
  if ((status == 0)); then
    echo "$target: ok (${took} s)"
    continue
  fi
  failed+=("$target")
  errors=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: error' "$log" | sort -u | wc -l)
  if ((status == 124)); then
    echo "$target: stopped by the time budget after ${took} s, $errors errors so far [$log]"
  else
    first=$(grep -m1 -E '^([^ ]+:[0-9]+:[0-9]+: )?error' "$log")
    echo "$target: $errors errors (${took} s); first: ${first:-see the log} [$log]"
  fi
done
if ((${#failed[@]} > 0)); then
  echo "portability: ${#failed[@]} of ${#targets[@]} targets fail: ${failed[*]}"
  exit 1
fi
echo "portability: all ${#targets[@]} targets type-check"
