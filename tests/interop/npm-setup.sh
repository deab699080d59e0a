#!/bin/sh
# Installs the pinned js-libp2p reference packages (package-lock.json) into
# tests/interop/node_modules with `npm ci`, unless the installed tree already
# matches the lock file. Run by the ctest fixture interop_npm_setup.
# Build folders share this node_modules, so installs are serialised with flock.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p .npm-cache
stamp=node_modules/.wisp-lock-sha256

want=$(sha256sum package-lock.json | cut -d' ' -f1)
(
	flock 9
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		echo "interop: node_modules matches package-lock.json ($want)"
		exit 0
	fi
	echo "interop: npm ci (node $(node --version), npm $(npm --version))"
	npm ci --no-audit --no-fund --cache "$here/.npm-cache"
	echo "$want" > "$stamp"
) 9>"$here/.npm-cache/lock"
