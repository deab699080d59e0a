#!/bin/sh
# Install what wisp needs to build and test, from Debian packages only.
# Idempotent: installs only what is missing, runs apt-get update at most once.
# Usage: scripts/install-deps.sh [--tests]   (--tests adds clang for the fuzz
# targets and Node.js/npm for the interop tests)
set -eu

pkgs="build-essential cmake pkg-config liburing-dev libck-dev libsecp256k1-dev libzstd-dev libssl-dev libcmocka-dev"
if [ "${1:-}" = "--tests" ]; then
	pkgs="$pkgs clang libclang-rt-dev"
	# Node.js runs the js-libp2p reference peer; keep a newer one if present.
	command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
	command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: everything is installed"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
