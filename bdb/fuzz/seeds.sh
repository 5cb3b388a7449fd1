#!/usr/bin/env bash
# Seed the fuzz corpus with small real hash and btree files (both byte
# orders, 512-byte pages, overflow items) made by db5.3_load.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/read
input=$(mktemp)
for i in $(seq 1 40); do
  printf 'key%d\\00\nvalue%d\\00\n' "$i" "$i"
done > "$input"
printf 'long%s\\00\n%s\\00\n' "$(head -c 700 /dev/zero | tr '\0' k)" "$(head -c 1500 /dev/zero | tr '\0' v)" >> "$input"
for t in hash btree; do
  for o in 1234 4321; do
    rm -f "corpus/read/$t-$o.db"
    db5.3_load -T -t "$t" -c db_lorder=$o -c db_pagesize=512 "corpus/read/$t-$o.db" < "$input"
  done
done
rm -f "$input"
ls -l corpus/read
