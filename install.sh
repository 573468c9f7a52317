#!/bin/sh
# Installs pizauth's manual pages, shell completions, systemd user unit and example
# configuration. The binary itself is installed by `cargo install --path .`.
#
#   ./install.sh                     # into ~/.local
#   PREFIX=/usr/local ./install.sh   # system-wide (run as root)
#   DESTDIR=/tmp/pkg PREFIX=/usr ./install.sh   # staged, for packagers
#
# Variables:
#   PREFIX   where the files go (default: $HOME/.local)
#   DESTDIR  prepended to every destination, for staged installs (default: empty)
#   BINDIR   the directory holding the pizauth binary, written into the systemd unit
#            (default: where `cargo install` puts it:
#            ${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin)
#
# Files, relative to $DESTDIR$PREFIX:
#   share/man/man1/pizauth.1
#   share/man/man5/pizauth.conf.5
#   share/bash-completion/completions/pizauth
#   share/zsh/site-functions/_pizauth
#   share/fish/vendor_completions.d/pizauth.fish
#   share/systemd/user/pizauth.service
#   share/doc/pizauth/pizauth.conf.example
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
: "${HOME:?HOME must be set}"
PREFIX=${PREFIX:-$HOME/.local}
DESTDIR=${DESTDIR:-}
BINDIR=${BINDIR:-${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin}

case $PREFIX in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 1 ;;
esac
case $BINDIR in
/*) ;;
*) echo "install.sh: BINDIR must be an absolute path, not '$BINDIR'" >&2; exit 1 ;;
esac

# In the unit, a directory under $HOME is written with systemd's %h.
case $BINDIR in
"$HOME"/*) unit_bindir="%h/${BINDIR#"$HOME"/}" ;;
*) unit_bindir=$BINDIR ;;
esac

# install_file MODE SOURCE DESTINATION-DIRECTORY [NAME]
install_file() {
    dir=$DESTDIR$PREFIX/$3
    mkdir -p -- "$dir"
    dest=$dir/${4:-$(basename -- "$2")}
    cp -- "$here/$2" "$dest"
    chmod "$1" "$dest"
    echo "installed $dest"
}

install_file 644 docs/pizauth.1 share/man/man1
install_file 644 docs/pizauth.conf.5 share/man/man5
install_file 644 docs/completions/pizauth.bash share/bash-completion/completions pizauth
install_file 644 docs/completions/_pizauth share/zsh/site-functions
install_file 644 docs/completions/pizauth.fish share/fish/vendor_completions.d
install_file 644 docs/pizauth.conf.example share/doc/pizauth

unit_dir=$DESTDIR$PREFIX/share/systemd/user
mkdir -p -- "$unit_dir"
# `|` delimits the sed expression: neither it nor `&` nor `\` may appear in the path.
case $unit_bindir in
*'|'* | *'&'* | *'\'*)
    echo "install.sh: BINDIR must not contain '|', '&' or '\\'" >&2
    exit 1
    ;;
esac
sed "s|%h/\\.cargo/bin|$unit_bindir|g" "$here/docs/systemd/pizauth.service" >"$unit_dir/pizauth.service"
chmod 644 "$unit_dir/pizauth.service"
echo "installed $unit_dir/pizauth.service"

if [ ! -x "$BINDIR/pizauth" ]; then
    echo "note: $BINDIR/pizauth does not exist yet: run 'cargo install --path .' (or set BINDIR)" >&2
fi
