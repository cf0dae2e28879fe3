#!/usr/bin/env bash
# Renders `baton report` in headless Chromium (Debian's `chromium`): simulates a small data
# directory, trains a model, runs a short closed loop and batch scoring, writes the report,
# then takes a screenshot and dumps the DOM that Chromium built, and checks that every
# section and chart is there. The screenshot stays at $OUT/report.png for a person to look at.
#
# Usage: scripts/check-report.sh [OUT_DIR]   (BATON=path/to/baton; default: the cargo target dir)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}"
baton="${BATON:-$target/release/baton}"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
  echo "check-report: no chromium found (Debian: apt-get install chromium)" >&2
  exit 2
fi
[[ -x "$baton" ]] || { echo "check-report: no baton binary at $baton (cargo build --release)" >&2; exit 2; }
start=$(date +%s)
data="$out/data"; models="$out/models"
rm -rf "$data" "$models"
b() { "$baton" --quiet --data "$data" --models "$models" "$@"; }
b simulate --customers 1500 --days 60 --seed 7 >/dev/null
b dataset --task response --every 20d --horizon 20d --out "$data/datasets/response.parquet" >/dev/null
b train --task response --learner logistic --promote champion >/dev/null
b simulate --policy random,rules,baton --days 20 --customers 300 >/dev/null
b score --as-of 2025-03-02T10:00:00Z --budget sms=50 --out "$out/scores.parquet" >/dev/null
b report --out "$out/report.html" >/dev/null
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1500,4000 \
  --screenshot="$out/report.png" "file://$out/report.html" >/dev/null 2>&1
"$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$out/report.html" \
  >"$out/dom.html" 2>/dev/null
fail=0
for want in 'id="dataset"' 'id="funnel"' 'id="models"' 'id="policies"' 'id="scoring"' \
            'Events per week by channel' 'Value per customer by policy' 'Journey funnel'; do
  if ! grep -q "$want" "$out/dom.html"; then echo "check-report: the rendered page lacks $want" >&2; fail=1; fi
done
svgs=$(grep -o '<svg' "$out/dom.html" | wc -l)
if (( svgs < 5 )); then echo "check-report: only $svgs charts rendered" >&2; fail=1; fi
size=$(stat -c %s "$out/report.png" 2>/dev/null || echo 0)
if (( size < 50000 )); then echo "check-report: screenshot $out/report.png is only $size bytes" >&2; fail=1; fi
(( fail == 0 )) || exit 1
echo "check-report: report renders in $("$browser" --version 2>/dev/null | head -1): $svgs charts, screenshot $out/report.png ($size bytes), $(( $(date +%s) - start ))s"
