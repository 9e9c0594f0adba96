# Sourced by the hardware checks (device-check.sh, ascend-check.sh) after
# they set `out` (the results folder) and `glmhal` (the binary): makes the
# folder and "$out/summary.txt" with the date, host and glmhal version.
# `step` runs one command under its own time limit, logs it to
# "$out/NAME.log" and appends "NAME: exit CODE in N s" to the summary;
# `failed` turns 1 when a step fails; `report` makes the HTML report.
mkdir -p "$out"
summary="$out/summary.txt"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm)"
  "$glmhal" --version
} >"$summary" 2>&1
failed=0

step() { # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local code=$?
  echo "$name: exit $code in $((SECONDS - start)) s" | tee -a "$summary"
  [ "$code" -eq 0 ] || failed=1
}

report() { # report FILE...: an HTML report of those result files that exist
  local inputs=() f
  for f in "$@"; do [ -s "$f" ] && inputs+=(--in "$f"); done
  if [ "${#inputs[@]}" -gt 0 ]; then
    step report 60 "$glmhal" report "${inputs[@]}" --out "$out/report.html"
  fi
}
