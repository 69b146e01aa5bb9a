#!/usr/bin/env bash
# CLI test: `make demo` without the data and without a network (curl and wget
# replaced by failing stubs) exits 1 and lists every file it needs with its
# public source (https URL, sha256) and where to put it (QSTAR_DATA); the
# list is scripts/fetch-data.sh --list. Nothing is downloaded.
. "$(dirname "$0")/common.bash"
mkdir -p "$tmp/bin"
for c in curl wget; do printf '#!/bin/sh\necho "%s: network disabled by the test" >&2\nexit 6\n' "$c" >"$tmp/bin/$c"; chmod +x "$tmp/bin/$c"; done
had_data=0; [ -e "$here/data" ] && had_data=1
PATH="$tmp/bin:$PATH" QSTAR_DATA= DEMO_DIR="$tmp/demo" bash "$here/scripts/demo.sh" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "demo without data: exit $rc (want 1)"
grep -q "could not download the data" "$tmp/err" || fail "demo does not say the download failed: $(cat "$tmp/err")"
grep -q "export QSTAR_DATA" "$tmp/err" || fail "demo does not say where to put the files"
for f in stories260K/stories260K.bin stories260K/tok512.bin tinystories/valid.txt gsm8k/test.jsonl csqa/dev_rand_split.jsonl; do
  grep -q "\$QSTAR_DATA/$f  *from https://" "$tmp/err" || fail "demo's list lacks $f with its source"
done
[ "$(grep -c "sha256 [0-9a-f]\{64\}" "$tmp/err")" -eq 5 ] || fail "demo's list lacks the checksums"
grep -q "shared" "$tmp/err" && fail "the message refers to a team-internal folder"
[ -e "$tmp/demo" ] && fail "a failed demo left $tmp/demo"
# the failed fetch may have made empty folders under ./data: removed unless ./data was there before
[ $had_data -eq 0 ] && find "$here/data" -depth -type d -empty -delete 2>/dev/null
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "demo_nodata: all checks passed"
