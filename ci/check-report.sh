#!/usr/bin/env bash
# Opens an HTML report from `glmhal report` in headless Chromium and checks
# that its script drew every chart without an error, and that a screenshot
# of the page is not empty. Usage: ci/check-report.sh REPORT.html [CHARTS]
set -euo pipefail
report="$(realpath "$1")"
charts="${2:-4}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "check-report: no Chromium found (Debian: apt-get install chromium)" >&2
  exit 1
fi
out="$(dirname "$report")"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$(mktemp -d)")
dom="$out/report.dom.html"
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$report" >"$dom" 2>/dev/null
# The script marks <body> itself: data-charts when done, data-script-error on an error.
body="$(grep -o '<body[^>]*>' "$dom" | head -1)"
if [[ "$body" == *data-script-error* ]]; then
  echo "check-report: the page reported a script error: $body" >&2
  exit 1
fi
if [[ "$body" != *"data-charts=\"$charts\""* ]]; then
  echo "check-report: the page did not finish drawing its $charts charts" >&2
  exit 1
fi
shot="$out/report.png"
rm -f "$shot"
timeout 120 "$browser" "${flags[@]}" --window-size=1280,2600 --screenshot="$shot" "file://$report" >/dev/null 2>&1
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
if [ "$size" -lt 10000 ]; then
  echo "check-report: the screenshot is missing or empty ($size bytes)" >&2
  exit 1
fi
echo "check-report: $charts charts drawn, no script errors, screenshot $shot ($size bytes)"
