#!/bin/sh
# install.sh: the README's first command. Installs the Debian packages pipesim needs (only the
# missing ones), builds, and runs the main job: psim on scenarios/gpt13b.scn, stored in
# pipesim.db, with its timeline drawn into plots/out/. `install.sh --deps` stops after the
# packages.
set -eu
cd "$(dirname "$0")"

PACKAGES="gcc make libc6-dev pkg-config libsqlite3-dev libinih-dev libcmocka-dev sqlite3 gnuplot-nox
          libopenblas-dev libopenmpi-dev openmpi-bin libjansson-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "install.sh: installing$missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
[ "${1:-}" = "--deps" ] && exit 0

make -j2
make run
