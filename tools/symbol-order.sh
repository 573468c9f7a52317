#!/bin/sh
# Regenerates symbol-order.txt, the order build.rs asks the linker to lay out the
# functions of the pizauth binary in: every function that start-up, the control
# requests a mail program and a user send (`show`, `status`, `info`, `shutdown`) and the
# client side of them run, gathered together (docs/PERFORMANCE.md, "Function order").
#
# Run it after a toolchain or dependency update (symbol names change with them; names
# that no longer match are ignored, and the binary is laid out as if the file were
# absent). Needs valgrind. Everything runs in a temporary directory, on 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
target=target/symbol-order
PIZAUTH_KEEP_SYMBOLS=1 cargo build --release --target-dir "$target"
bin="$PWD/$target/x86_64-unknown-linux-gnu/release/pizauth"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -m 0700 "$work/run"
cat > "$work/pizauth.conf" <<'CONF'
http_listen = "127.0.0.1:0";
account "a" {
    auth_uri = "http://127.0.0.1:9/authorize";
    token_uri = "http://127.0.0.1:9/token";
    client_id = "cid";
    scopes = ["mail", "offline_access"];
}
CONF
profiled() {
    env -i HOME="$work" XDG_RUNTIME_DIR="$work/run" PATH=/usr/bin:/bin SHELL=/bin/sh \
        valgrind -q --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.%p" \
        "$bin" "$@"
}
profiled server -d -c "$work/pizauth.conf" 2>/dev/null &
server=$!
# Under valgrind the server takes a few seconds to start: wait at most 60 s.
i=0
while [ ! -S "$work/run/pizauth/pizauth.sock" ]; do
    i=$((i + 1))
    [ "$i" -le 600 ] || { kill "$server"; echo "the server did not start" >&2; exit 1; }
    sleep 0.1
done
for args in "status" "show a" "show -u a" "show nosuch" "info" "info -j" "shutdown"; do
    # shellcheck disable=SC2086 # the arguments are meant to be split
    profiled $args >/dev/null 2>&1 || true
done
wait "$server" || true
# Function names, each once; not addresses of code without a symbol.
sed -n 's/^c\{0,1\}fn=([0-9]*) //p' "$work"/cg.* | grep -E '^[_A-Za-z]' | LC_ALL=C sort -u \
    > symbol-order.txt
echo "symbol-order.txt: $(wc -l < symbol-order.txt) functions"
