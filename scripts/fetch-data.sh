#!/usr/bin/env bash
# Makes the data that the demo and tests use available and prints the
# directory to export as QSTAR_DATA. If QSTAR_DATA is set and holds the
# files, nothing is downloaded. Otherwise each file is downloaded from its
# public home into ./data and checked against its sha256.
#   scripts/fetch-data.sh [DEST]   fetch into DEST (default ./data), print the folder
#   scripts/fetch-data.sh --list   print the files needed, their public sources and where they go
set -euo pipefail
list=0
[ "${1:-}" = "--list" ] && { list=1; shift; }
if [ "$list" -eq 0 ] && [ -n "${QSTAR_DATA:-}" ] && [ -f "$QSTAR_DATA/stories260K/stories260K.bin" ]; then
  echo "$QSTAR_DATA"; exit 0
fi
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/data}"
# path | url | sha256
files=(
  "stories260K/stories260K.bin|https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin|b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"
  "stories260K/tok512.bin|https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin|037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312"
  "tinystories/valid.txt|https://raw.githubusercontent.com/yuninxia/moe-routing-bench/bb9bb0bd/data/tinystories_val.txt|5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6"
  "gsm8k/test.jsonl|https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5/grade_school_math/data/test.jsonl|3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
  "csqa/dev_rand_split.jsonl|https://raw.githubusercontent.com/kojima-takeshi188/zero_shot_cot/5ef330fc/dataset/CommonsenseQA/dev_rand_split.jsonl|3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a"
)
if [ "$list" -eq 1 ]; then
  echo "qstar's demo and data tests need these files (put them under one folder and export QSTAR_DATA=that"
  echo "folder, or let scripts/fetch-data.sh download them into $dest):"
  for f in "${files[@]}"; do
    IFS='|' read -r path url sum <<<"$f"
    printf '  %-28s from %s\n  %-28s sha256 %s\n' "\$QSTAR_DATA/$path" "$url" "" "$sum"
  done
  exit 0
fi
mkdir -p "$dest"
fetch() { if command -v curl >/dev/null; then curl -fL --retry 3 -o "$2" "$1"; else wget -O "$2" "$1"; fi; }
for f in "${files[@]}"; do
  IFS='|' read -r path url sum <<<"$f"
  out="$dest/$path"
  [ -f "$out" ] && continue
  mkdir -p "$(dirname "$out")"
  echo "fetching $url" >&2
  fetch "$url" "$out.part" || { echo "fetch-data: could not download $url" >&2; exit 1; }
  if [ -n "$sum" ]; then
    got=$(sha256sum "$out.part" | cut -d" " -f1)
    [ "$got" = "$sum" ] || { echo "fetch-data: $path: sha256 $got, expected $sum" >&2; rm -f "$out.part"; exit 1; }
  fi
  mv "$out.part" "$out"
done
echo "$dest"
