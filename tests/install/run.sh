#!/bin/sh
# Installs a built wisp into a fresh prefix inside the build dir and checks
# that an outside program can use the installed copy:
#   - the installed include/wisp holds exactly the public headers of the
#     source tree's include/wisp, and each compiles on its own;
#   - libwisp.so exports only wisp_* symbols;
#   - tests/install/consumer.c builds four ways, against the prefix only:
#     CMake find_package(wisp) with wisp::wisp_shared and wisp::wisp_static,
#     and cc with `pkg-config --libs wisp` (shared) and
#     `pkg-config --static --libs wisp` (libwisp.a), and each binary prints
#     "consumer ok <peer id of the secret 0x01..0x20>".
# The work dir <build>/install-test is removed at the start, not at the end,
# so a failure can be inspected.
#
# usage: run.sh --build DIR --source DIR [--libdir lib] [--includedir include]
#               [--cc CC] [--cmake CMAKE] [--pkg-config PKG_CONFIG] [--nm NM]
#               [--readelf READELF] [--sanitize none|address|thread]
# (registered by tests/install/tests.cmake as the ctest test install_consumer)
set -eu

build='' source='' libdir=lib includedir=include cc=cc cmake=cmake pkgconfig=pkg-config
nm=nm readelf=readelf sanitize=none
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
	case $1 in
	--build) build=$2 ;;
	--source) source=$2 ;;
	--libdir) libdir=$2 ;;
	--includedir) includedir=$2 ;;
	--cc) cc=$2 ;;
	--cmake) cmake=$2 ;;
	--pkg-config) pkgconfig=$2 ;;
	--nm) nm=$2 ;;
	--readelf) readelf=$2 ;;
	--sanitize) sanitize=$2 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
if [ -z "$build" ] || [ -z "$source" ]; then
	echo "usage: run.sh --build DIR --source DIR ..." >&2
	exit 2
fi
[ -f "$build/CMakeCache.txt" ] || { echo "run.sh: $build is not a CMake build dir" >&2; exit 2; }
[ -d "$source/include/wisp" ] || { echo "run.sh: $source has no include/wisp" >&2; exit 2; }
case $libdir in /*) echo "run.sh: --libdir must be relative to the prefix ($libdir)" >&2; exit 2 ;; esac
case $includedir in /*) echo "run.sh: --includedir must be relative to the prefix ($includedir)" >&2; exit 2 ;; esac

# The library's sanitizer runtime must be in the consumer too.
case $sanitize in
none | "") san= ;;
address) san="-fsanitize=address,undefined" ;;
thread) san="-fsanitize=thread" ;;
*) echo "run.sh: --sanitize must be none, address or thread, not '$sanitize'" >&2; exit 2 ;;
esac

expected_id=16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP
build=$(cd "$build" && pwd -P)
source=$(cd "$source" && pwd -P)
top=$build/install-test
prefix=$top/prefix
work=$top/work
inc=$prefix/$includedir
lib=$prefix/$libdir
warn_flags="-std=c17 -Wall -Wextra -Werror"

# Nothing from the environment may point the consumer anywhere but $prefix.
unset CMAKE_PREFIX_PATH CMAKE_INCLUDE_PATH CMAKE_LIBRARY_PATH wisp_DIR wisp_ROOT WISP_ROOT \
	CPATH C_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH DESTDIR PKG_CONFIG_SYSROOT_DIR \
	CFLAGS LDFLAGS CPPFLAGS 2>/dev/null || true
PKG_CONFIG_PATH=$lib/pkgconfig
export PKG_CONFIG_PATH

fails=0
say() { printf '== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; fails=$((fails + 1)); }
run() { printf '$ %s\n' "$*"; "$@"; }
# canon PATH: PATH with symlinks and .. resolved when it is a directory.
canon() { if [ -d "$1" ]; then (cd "$1" && pwd -P); else printf '%s\n' "$1"; fi; }

say "build dir $build, sanitize=$sanitize, cc=$cc"
say "cleaning $top"
rm -rf "$top"
mkdir -p "$prefix" "$work/src"

# ---- 1. install --------------------------------------------------------------
say "installing into $prefix"
run "$cmake" --install "$build" --prefix "$prefix"

# The consumer source is copied next to nothing else, so quoted includes
# cannot find anything of the source tree either.
cp "$source/tests/install/consumer.c" "$work/src/consumer.c"

# ---- 2. installed headers ----------------------------------------------------
say "checking the installed headers in $inc/wisp"
if [ -d "$inc/wisp" ]; then
	(cd "$inc/wisp" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort) >"$work/headers.installed"
	(cd "$source/include/wisp" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort) >"$work/headers.public"
	if cmp -s "$work/headers.installed" "$work/headers.public"; then
		ok "installed headers are the public ones: $(tr '\n' ' ' <"$work/headers.public")"
	else
		extra=$(LC_ALL=C comm -23 "$work/headers.installed" "$work/headers.public" | tr '\n' ' ')
		missing=$(LC_ALL=C comm -13 "$work/headers.installed" "$work/headers.public" | tr '\n' ' ')
		[ -z "$extra" ] || bad "installed but not public (internal headers?): $extra"
		[ -z "$missing" ] || bad "public but not installed: $missing"
	fi
	while read -r h; do
		case $h in *.h) ;; *) continue ;; esac
		# shellcheck disable=SC2086 # $warn_flags is a word list
		if printf '#include <wisp/%s>\n' "$h" |
			"$cc" $warn_flags -fsyntax-only -I"$inc" -x c - 2>"$work/header.err"; then
			ok "<wisp/$h> compiles on its own with only -I$inc"
		else
			bad "<wisp/$h> does not compile on its own with only -I$inc: $(cat "$work/header.err")"
		fi
	done <"$work/headers.installed"
	# Which wisp headers does the consumer really read? All must be installed ones.
	if "$cc" -M -I"$inc" "$work/src/consumer.c" >"$work/consumer.deps" 2>&1; then
		stray=
		for f in $(sed 's/\\$//' "$work/consumer.deps"); do
			case $f in
			"$inc"/wisp/*) ;;
			*/wisp/*) stray="$stray $f" ;;
			esac
		done
		if [ -z "$stray" ]; then
			ok "consumer.c reads wisp headers from $inc only"
		else
			bad "consumer.c reads wisp headers from outside the prefix: $stray"
		fi
	else
		bad "cc -M consumer.c failed: $(cat "$work/consumer.deps")"
	fi
else
	bad "no $inc/wisp after install"
fi

# ---- 3. exported symbols -----------------------------------------------------
say "checking the symbols of $lib/libwisp.so"
if [ -e "$lib/libwisp.so" ] && [ -e "$lib/libwisp.a" ]; then
	ok "libwisp.so and libwisp.a installed in $lib"
	# nm -D prints "addr type name[@@version]"; the version node itself
	# (WISP_0, type A) is not a symbol of the API.
	if "$nm" -D --defined-only "$lib/libwisp.so" >"$work/symbols"; then
		others=$(awk '{ n = $NF; sub(/@.*/, "", n) }
			!(n ~ /^wisp_/) && !($(NF - 1) == "A" && n ~ /^WISP_[0-9]+$/) { print n }' "$work/symbols" | tr '\n' ' ')
		count=$(awk '{ n = $NF; sub(/@.*/, "", n) } n ~ /^wisp_/' "$work/symbols" | wc -l)
		if [ -n "$others" ]; then
			bad "libwisp.so exports symbols outside wisp_*: $others"
		elif [ "$count" -lt 10 ]; then
			bad "libwisp.so exports only $count wisp_* symbols"
		else
			ok "libwisp.so exports $count symbols, all wisp_*"
		fi
		for s in wisp_strerror wisp_errname wisp_privkey_from_secret wisp_peer_id_to_base58 \
			wisp_options_default wisp_node_new wisp_node_free; do
			awk -v s="$s" '{ n = $NF; sub(/@.*/, "", n) } n == s { f = 1 } END { exit !f }' "$work/symbols" ||
				bad "libwisp.so does not export $s"
		done
	else
		bad "$nm -D failed on libwisp.so"
	fi
	soname=$("$readelf" -d "$lib/libwisp.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
	if [ -n "$soname" ] && [ -e "$lib/$soname" ]; then
		ok "SONAME $soname is installed"
	else
		bad "SONAME '$soname' of libwisp.so is not installed in $lib"
	fi
else
	bad "libwisp.so or libwisp.a missing in $lib"
fi

# ---- 4. consumers ------------------------------------------------------------
# check_binary NAME BINARY shared|static: the binary links libwisp as said,
# runs (shared ones with LD_LIBRARY_PATH=$lib, static ones without) and
# prints the one expected line.
check_binary() {
	name=$1 bin=$2 kind=$3
	if ! "$readelf" -d "$bin" >"$work/$name.dynamic"; then
		bad "$name: readelf -d failed"
		return 0
	fi
	if [ "$kind" = shared ]; then
		if ! grep -q 'NEEDED.*\[libwisp\.so' "$work/$name.dynamic"; then
			bad "$name: does not link libwisp.so"
			return 0
		fi
		where=$(LD_LIBRARY_PATH=$lib ldd "$bin" | awk '$1 ~ /^libwisp\.so/ { print $3 }')
		case $where in
		"$lib"/*) ok "$name: libwisp.so resolves to $where" ;;
		*) bad "$name: libwisp.so resolves to '$where', not into $lib"; return 0 ;;
		esac
		printf '$ LD_LIBRARY_PATH=%s %s\n' "$lib" "$bin"
		status=0
		out=$(LD_LIBRARY_PATH=$lib "$bin") || status=$?
	else
		if grep -q 'NEEDED.*\[libwisp\.so' "$work/$name.dynamic"; then
			bad "$name: needs libwisp.so; it should contain libwisp.a"
			return 0
		fi
		ok "$name: no libwisp.so dependency (static)"
		printf '$ %s\n' "$bin"
		status=0
		out=$("$bin") || status=$?
	fi
	printf '%s\n' "$out"
	if [ "$status" -ne 0 ]; then
		bad "$name: exit status $status"
	elif [ "$out" != "consumer ok $expected_id" ]; then
		bad "$name: printed '$out', want 'consumer ok $expected_id'"
	else
		ok "$name: consumer ok"
	fi
}

cat >"$work/src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(wisp_consumer LANGUAGES C)
set(CMAKE_C_STANDARD 17)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(WISP_CONSUMER_LINK wisp::wisp_shared CACHE STRING "wisp::wisp_shared or wisp::wisp_static")
find_package(wisp CONFIG REQUIRED)
if(NOT TARGET ${WISP_CONSUMER_LINK})
  message(FATAL_ERROR "the wisp package has no target ${WISP_CONSUMER_LINK}")
endif()
add_executable(consumer consumer.c)
target_compile_options(consumer PRIVATE -Wall -Wextra -Werror)
target_link_libraries(consumer PRIVATE ${WISP_CONSUMER_LINK})
file(WRITE ${CMAKE_BINARY_DIR}/wisp_dir.txt "${wisp_DIR}")
EOF

# cmake_consumer shared|static
cmake_consumer() {
	kind=$1 name=cmake-$1 dir=$work/cmake-$1
	say "$name: find_package(wisp) with wisp::wisp_$kind"
	if ! run "$cmake" -S "$work/src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
		-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
		-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
		-DWISP_CONSUMER_LINK="wisp::wisp_$kind"; then
		bad "$name: configure failed"
		return 0
	fi
	found=$(cat "$dir/wisp_dir.txt")
	case $found in
	"$prefix"/*) ok "$name: wisp_DIR=$found" ;;
	*) bad "$name: found the wisp package in '$found', not in $prefix"; return 0 ;;
	esac
	if ! run "$cmake" --build "$dir" --verbose; then
		bad "$name: build failed"
		return 0
	fi
	# Every include path of the compile must be inside the prefix.
	incs=$(grep -o -e '-I *[^ "]*' -e '-isystem *[^ "]*' "$dir/compile_commands.json" |
		sed -e 's/^-I *//' -e 's/^-isystem *//' | sort -u)
	stray=
	for d in $incs; do
		case $d in "$prefix"/*) ;; *) stray="$stray $d" ;; esac
	done
	if [ -n "$stray" ]; then
		bad "$name: include paths outside the prefix:$stray"
	elif [ -z "$incs" ]; then
		bad "$name: no include path from the wisp package"
	else
		ok "$name: include paths $(printf '%s ' $incs)"
	fi
	check_binary "$name" "$dir/consumer" "$kind"
}

# pkgconfig_consumer shared|static
pkgconfig_consumer() {
	kind=$1 name=pkg-config-$1 dir=$work/pkg-config-$1
	say "$name: cc \$(pkg-config$([ "$kind" = static ] && echo ' --static') --cflags --libs wisp)"
	mkdir -p "$dir"
	pcdir=$("$pkgconfig" --variable=pcfiledir wisp) || { bad "$name: pkg-config finds no wisp"; return 0; }
	[ "$pcdir" = "$lib/pkgconfig" ] || { bad "$name: pkg-config uses $pcdir/wisp.pc, not $lib/pkgconfig"; return 0; }
	if [ "$kind" = static ]; then
		libs=$("$pkgconfig" --static --libs wisp) || { bad "$name: pkg-config --static --libs failed"; return 0; }
	else
		libs=$("$pkgconfig" --libs wisp) || { bad "$name: pkg-config --libs failed"; return 0; }
	fi
	cflags=$("$pkgconfig" --cflags wisp) || { bad "$name: pkg-config --cflags failed"; return 0; }
	printf 'pkg-config: cflags %s\npkg-config: libs %s\n' "$cflags" "$libs"
	# wisp.pc must point into the prefix it was installed to, and nothing may
	# point into the source tree (dependencies may add their own -I/-L).
	# A relocatable wisp.pc (prefix=${pcfiledir}/../..) gives paths such as
	# <prefix>/lib/pkgconfig/../../include: compare resolved paths.
	wrong=
	pc_inc=$(canon "$("$pkgconfig" --variable=includedir wisp)")
	pc_lib=$(canon "$("$pkgconfig" --variable=libdir wisp)")
	[ "$pc_inc" = "$inc" ] || wrong="$wrong includedir=$pc_inc"
	[ "$pc_lib" = "$lib" ] || wrong="$wrong libdir=$pc_lib"
	have_inc=0 have_lib=0
	for w in $cflags $libs; do
		case $w in
		-I*) d=$(canon "${w#-I}") ;;
		-L*) d=$(canon "${w#-L}") ;;
		*) continue ;;
		esac
		case $w:$d in
		-I*:"$inc") have_inc=1 ;;
		-L*:"$lib") have_lib=1 ;;
		*:"$prefix"/*) ;;
		*:"$source"/* | *:"$build"/*) wrong="$wrong $w" ;;
		esac
	done
	[ "$have_inc" = 1 ] || wrong="$wrong (no -I$inc in --cflags)"
	[ "$have_lib" = 1 ] || wrong="$wrong (no -L$lib in --libs)"
	if [ -n "$wrong" ]; then
		bad "$name: wisp.pc does not point at the install prefix $prefix:$wrong" \
			"(prefix= in $lib/pkgconfig/wisp.pc is $("$pkgconfig" --variable=prefix wisp))"
		return 0
	fi
	ok "$name: wisp.pc points at $prefix"
	# Really static: libwisp.a, not libwisp.so, for -lwisp.
	set --
	for w in $libs; do
		if [ "$kind" = static ] && [ "$w" = -lwisp ]; then
			set -- "$@" -Wl,-Bstatic -lwisp -Wl,-Bdynamic
		else
			set -- "$@" "$w"
		fi
	done
	# shellcheck disable=SC2086 # $warn_flags, $san and $cflags are word lists
	if ! run "$cc" $warn_flags $san $cflags -o "$dir/consumer" "$work/src/consumer.c" "$@"; then
		bad "$name: build failed"
		return 0
	fi
	check_binary "$name" "$dir/consumer" "$kind"
}

cmake_consumer shared
cmake_consumer static
pkgconfig_consumer shared
pkgconfig_consumer static

if [ "$fails" -ne 0 ]; then
	say "$fails check(s) FAILED (work dir kept: $top)"
	exit 1
fi
say "all install checks passed"
