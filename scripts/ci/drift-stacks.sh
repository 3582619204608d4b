#!/usr/bin/env bash
# The scheduled drift check of .github/workflows/drift.yml: plans the default branch, every
# stack, with read-only credentials; a plan that is not empty (or fails) is drift. Writes
# drift/comment.md (the plan comment, sensitive values masked, within an issue's limit) and
# drift/stacks (one drifted stack per line); the plans themselves stay on the runner.
# Env: TOFU (default tofu), and what tofu reads (PG_CONN_STR, PG_SKIP_*, PROXMOX_VE_*).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tofu=${TOFU:-tofu}
rm -rf plans drift
mkdir plans drift
: > drift/stacks
for dir in cdktf.out/stacks/*/; do
  stack=$(basename "$dir")
  rc=0
  { "$tofu" -chdir="$dir" init -input=false -no-color && "$tofu" -chdir="$dir" plan -input=false -lock=false -no-color -detailed-exitcode -out=plan.bin; } > "plans/$stack.log" 2>&1 || rc=$?
  case $rc in
    0) ;;
    2) "$tofu" -chdir="$dir" show -json plan.bin > "plans/plan-$stack.json"; echo "$stack" >> drift/stacks ;;
    *) cp "plans/$stack.log" "plans/$stack.error"; echo "$stack" >> drift/stacks ;;
  esac
done
shopt -s nullglob
inputs=(plans/*.json plans/*.error)
if [ "${#inputs[@]}" -gt 0 ]; then
  # 3 (a stateful VM would go) and 4 (a plan failed) are drift to report, not errors here
  npm --prefix "$root" run -s plan-comment -- "${inputs[@]/#/$PWD/}" --allow-destroy --max-chars 60000 > drift/comment.md || { s=$?; [ "$s" = 3 ] || [ "$s" = 4 ]; }
fi
