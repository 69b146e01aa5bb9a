#!/usr/bin/env bash
# CLI test of `qstar viz` (self-contained HTML: no http(s) references, the
# text's tokens inside, HTML escaped) and `qstar plot` (PNG charts of a
# synthetic training log through gnuplot; missing keys tolerated; a log
# without known keys is an error).
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# is_png FILE: PNG signature and more than 5 KB (a chart, not an empty image)
is_png() {
  [ -f "$1" ] || { fail "$1 missing"; return; }
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$1 is not a PNG"
  [ "$(wc -c <"$1")" -gt 5000 ] || fail "$1 is suspiciously small ($(wc -c <"$1") bytes)"
}

# --- plot ---------------------------------------------------------------------------
"$QSTAR" plot --help >"$tmp/out" 2>&1 && grep -q "usage: qstar plot" "$tmp/out" || fail "plot --help"
expect_rc 2 "--out DIR is required" "$QSTAR" plot "$tmp/log.jsonl"
expect_rc 2 "log file" "$QSTAR" plot --out "$tmp/p"
expect_rc 1 "$tmp/nope.jsonl" "$QSTAR" plot "$tmp/nope.jsonl" --out "$tmp/p"
# a synthetic log: 60 steps, eval every 20
awk 'BEGIN {
  for (s = 1; s <= 60; s++) {
    b = 2.5 * exp(-s / 30) + 1.2; m = 0.01 * s
    printf "{\"step\": %d, \"loss\": %.4f, \"loss_lm\": %.4f, \"loss_base\": %.4f, \"loss_talk\": [%.4f, %.4f, %.4f, %.4f], ", s, b * 0.9, b * 0.95, b, b - 0.01, b - 0.02, b - 0.03, b - 0.04
    printf "\"policy_loss\": %.5f, \"reward_mean\": %.4f, \"advantage_mean\": %.4f, \"mix_mean\": %.4f, \"mix_std\": %.4f, \"tok_per_s\": %.1f, \"lr\": 1e-06}\n", 0.1 * sin(s), 0.002 * s, 0.001 * s + 0.01, m, 0.05 + m / 4, 1500 + 40 * sin(s / 3)
    if (s % 20 == 0) printf "{\"type\": \"eval\", \"step\": %d, \"val_nll_base\": %.4f, \"val_nll_think\": %.4f}\n", s, b + 0.05, b + 0.03
  }
}' >"$tmp/log.jsonl"
if command -v gnuplot >/dev/null 2>&1; then
  if "$QSTAR" plot "$tmp/log.jsonl" --out "$tmp/plots" >"$tmp/out" 2>"$tmp/err"; then
    for f in nll reward mix speed loss; do is_png "$tmp/plots/$f.png"; done
    grep -q "60 training and 3 eval records" "$tmp/out" || { fail "plot summary"; cat "$tmp/out"; }
    [ -f "$tmp/plots/plot.gp" ] && [ -s "$tmp/plots/loss_base.dat" ] || fail "plot left no script/data files"
  else
    fail "plot of a full log"; cat "$tmp/err"
  fi
  # short logs (1, 5, 39, 40 steps; an eval at the end): every chart drawn, with every point
  for n in 1 5 39 40; do
    awk -v n=$n 'BEGIN { for (s = 1; s <= n; s++) {
      printf "{\"step\": %d, \"loss\": %.4f, \"loss_base\": %.4f, \"loss_talk\": [%.4f], \"reward_mean\": %.4f, \"mix_mean\": %.4f, \"mix_std\": 0.1, \"tok_per_s\": %.1f}\n", s, 3 - s / 50, 3 - s / 40, 3 - s / 45, s / 1000, s / 100, 1000 + s
      if (s == n) printf "{\"type\": \"eval\", \"step\": %d, \"val_nll_base\": 2.5, \"val_nll_think\": 2.4}\n", s } }' >"$tmp/log$n.jsonl"
    if "$QSTAR" plot "$tmp/log$n.jsonl" --out "$tmp/short$n" >"$tmp/out" 2>"$tmp/err"; then
      for f in nll reward mix speed loss; do is_png "$tmp/short$n/$f.png"; done
      [ "$(grep -cv '^#' "$tmp/short$n/loss_base.dat")" -eq "$n" ] || fail "plot of $n steps: loss_base.dat lacks points"
      # (one point: gnuplot widens the empty ranges itself and says so; nothing else may appear)
      grep -v "^Warning: empty [xy]2\? range" "$tmp/short$n/gnuplot.log" | grep -q . &&
        { fail "plot of $n steps: gnuplot complained"; cat "$tmp/short$n/gnuplot.log"; }
    else
      fail "plot of a $n-step log"; cat "$tmp/err"
    fi
  done
  # missing keys: only what exists is drawn
  printf '{"step": 1, "loss_base": 3.0, "tok_per_s": 100}\n\n{"step": 2, "loss_base": 2.5, "tok_per_s": 120}\nnot json\n{"step": 3, "loss_base": 2.2}\n' >"$tmp/part.jsonl"
  if "$QSTAR" plot "$tmp/part.jsonl" --out "$tmp/part" >"$tmp/out" 2>"$tmp/err"; then
    is_png "$tmp/part/nll.png"
    is_png "$tmp/part/speed.png"
    [ ! -e "$tmp/part/mix.png" ] && [ ! -e "$tmp/part/reward.png" ] || fail "charts drawn for missing keys"
    grep -q "not JSON" "$tmp/err" || fail "a bad line should be reported"
  else
    fail "plot of a partial log"; cat "$tmp/err"
  fi
else
  echo "SKIP: gnuplot not installed; checking the error message only"
  expect_rc 1 "gnuplot-nox" "$QSTAR" plot "$tmp/log.jsonl" --out "$tmp/plots"
fi
printf '{"step": 1, "foo": 2}\n{"bar": 1}\n' >"$tmp/none.jsonl"
expect_rc 1 "no records with any known key" "$QSTAR" plot "$tmp/none.jsonl" --out "$tmp/none"
[ -e "$tmp/none" ] && fail "a failed plot left its output directory"

# --- viz ------------------------------------------------------------------------------
"$QSTAR" viz --help >"$tmp/out" 2>&1 && grep -q "usage: qstar viz" "$tmp/out" || fail "viz --help"
expect_rc 2 "--text is required" "$QSTAR" viz --model x --out y
expect_rc 2 "--out is required" "$QSTAR" viz --model x --text y
need_data "viz" stories260K/stories260K.bin
CK=$tmp/ck
qs_checkpoint "$CK"
printf 'Lily saw a <big> dog & a "small" cat.\nShe smiled \xe2\x80\x9cthank you\xe2\x80\x9d and ran home.\n' >"$tmp/text.txt"
if "$QSTAR" viz --model "$CK" --text "$tmp/text.txt" --out "$tmp/page.html" 2>"$tmp/err"; then
  P=$tmp/page.html
  grep -qiE "https?://" "$P" && fail "the page references the network"
  grep -qiE "<(link|img|iframe)|src=" "$P" && fail "the page loads external resources"
  # the token spans, tags removed and entities decoded, are the text itself
  if command -v "$PY" >/dev/null 2>&1; then
    "$PY" - "$P" "$tmp/text.txt" <<'EOF' || fail "the page's token spans are not the text"
import html, re, sys
page = open(sys.argv[1], encoding="utf-8").read()
body = page.split('<div id="text">', 1)[1].split('</div>', 1)[0]
spans = re.findall(r'<span class="t"[^>]*>(.*?)</span>', body, re.S)
shown = html.unescape("".join(spans))
want = open(sys.argv[2], encoding="utf-8").read().rstrip()
if shown != want:
    print("  shown:", repr(shown)); print("  want: ", repr(want)); sys.exit(1)
EOF
  else
    for w in Lily saw cat; do grep -qF ">$w<" "$P" || fail "page lacks '$w'"; done
  fi
  grep -q "&lt;" "$P" && grep -q "&gt;" "$P" && grep -q "&amp;" "$P" || fail "HTML special characters not escaped"
  grep -q "<big>" "$P" && fail "raw <big> in the page"
  grep -q $'\xe2\x80\x9c' "$P" || fail "curly quote lost"
  grep -q "^</script>" "$P" || fail "page has no script"
  n=$(grep -o '<span class="t"' "$P" | wc -l)
  [ "$n" -gt 15 ] || fail "only $n token spans"
  grep -q "wrote $P (" "$tmp/err" || fail "viz summary line"
  # one sign convention: gain = NLL without thought - NLL after (positive = helped), as in the page
  sed -n 's/.*NLL \([0-9.]*\) without thought, \([0-9.]*\) after, gain \([-+][0-9.]*\),.*/\1 \2 \3/p' "$tmp/err" |
    awk '{ d = $1 - $2 - $3; exit !(NF == 3 && d < 2e-4 && d > -2e-4) }' || fail "viz gain is not base - think: $(cat "$tmp/err")"
  grep -q "helped by',f(r\[0\]-r\[1\])" "$P" || fail "the page's 'helped by' is not base - think"
else
  fail "viz"; cat "$tmp/err"
fi
"$QSTAR" viz --model "$CK" --text "$tmp/text.txt" --out "$tmp/p5.html" --max-tokens 5 2>/dev/null || fail "viz --max-tokens 5"
[ "$(grep -o '<span class="t"' "$tmp/p5.html" | wc -l)" -eq 4 ] || fail "--max-tokens 5 should give 4 scored tokens"
expect_rc 1 "no Quiet-STaR tensors" "$QSTAR" viz --model "$BIN" --tokenizer "$TOK" --text "$tmp/text.txt" --out "$tmp/x.html"
expect_rc 1 "$tmp/missing.txt" "$QSTAR" viz --model "$CK" --text "$tmp/missing.txt" --out "$tmp/x.html"
[ -e "$tmp/x.html" ] && fail "a failed viz left a page"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "viz: all checks passed"
