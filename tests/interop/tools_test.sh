#!/bin/sh
# wisp-keygen / wisp-peerid end to end: same id from both, O_EXCL refusal,
# 0644 refusal with exit 3 and a message naming the mode, usage errors.
# usage: tools_test.sh WISP_KEYGEN WISP_PEERID
set -u
keygen=$1
peerid=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/wisp-tools-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
expect_status() { # want got what
	if [ "$1" = "$2" ]; then ok "$3"; else bad "$3 (exit $2, want $1)"; fi
}

out=$("$keygen" --cid "$dir/key"); expect_status 0 $? "keygen writes a key"
mode=$(stat -c %a "$dir/key")
[ "$mode" = 600 ] && ok "key file mode 600" || bad "key file mode $mode"
id1=$(echo "$out" | sed -n 1p)
cid1=$(echo "$out" | sed -n 2p)
case $id1 in 16Uiu2*) ok "base58 id $id1" ;; *) bad "base58 id '$id1'" ;; esac
case $cid1 in bafz*) ok "CID id $cid1" ;; *) bad "CID id '$cid1'" ;; esac

out2=$("$peerid" --cid "$dir/key"); expect_status 0 $? "peerid reads it"
[ "$out2" = "$out" ] && ok "peerid prints the keygen ids" || bad "peerid '$out2' != keygen '$out'"
out3=$("$peerid" "$dir/key")
[ "$out3" = "$id1" ] && ok "without --cid: base58 only" || bad "without --cid: '$out3'"

"$keygen" "$dir/key" >/dev/null 2>"$dir/err"; expect_status 3 $? "keygen refuses an existing file"
out4=$("$peerid" "$dir/key")
[ "$out4" = "$id1" ] && ok "existing key untouched" || bad "existing key changed"

chmod 644 "$dir/key"
"$peerid" "$dir/key" >"$dir/out" 2>"$dir/err"; expect_status 3 $? "peerid refuses mode 0644"
grep -q "0644" "$dir/err" && grep -q "chmod 600" "$dir/err" && ok "message names 0644 and chmod 600" ||
	bad "message: $(cat "$dir/err")"
[ -s "$dir/out" ] && bad "printed an id for a 0644 key" || ok "no id printed for 0644"
chmod 600 "$dir/key"
"$peerid" "$dir/key" >/dev/null; expect_status 0 $? "0600 accepted again"

"$peerid" "$dir/missing" >/dev/null 2>&1; expect_status 1 $? "missing file: exit 1"
printf 'not a key' >"$dir/junk"; chmod 600 "$dir/junk"
"$peerid" "$dir/junk" >/dev/null 2>&1; expect_status 1 $? "junk file: exit 1"
"$peerid" >/dev/null 2>&1; expect_status 2 $? "peerid without FILE: exit 2"
"$keygen" >/dev/null 2>&1; expect_status 2 $? "keygen without FILE: exit 2"
"$keygen" --bogus "$dir/k2" >/dev/null 2>&1; expect_status 2 $? "unknown option: exit 2"
"$keygen" --help | grep -q "exit status" && ok "keygen --help documents exit codes" || bad "keygen --help"
"$peerid" --help | grep -q "exit status" && ok "peerid --help documents exit codes" || bad "peerid --help"
exit $fail
