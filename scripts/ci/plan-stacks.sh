#!/usr/bin/env bash
# The plan job of .github/workflows/plan.yml, as a script the tests run: plans every synthesized
# stack with the job's read-only credentials, then holds the stack locks (scripts/stack-lock.ts)
# of the stacks whose plan changes something. A failed plan or a stack another pull request holds
# is not fatal here: it becomes plans/<stack>.error, which the comment shows (and which fails the
# job after the comment is written).
#   scripts/ci/plan-stacks.sh <pull request number> <head commit> [<run url>]
# Writes, under plans/: plan-<stack>.json (`show -json`, input of the comment only: it holds
# sensitive values in clear text and is never uploaded), <stack>.log, <stack>.error,
# stacks.sha256 (the planned configurations); the saved plans stay in cdktf.out/stacks/*/plan.bin.
# Env: TOFU (default tofu), and what tofu and stack-lock read (PG_CONN_STR, PROXMOX_VE_*).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pr=${1:?pull request number}
head=${2:?head commit}
run_url=${3:-}
tofu=${TOFU:-tofu}
rm -rf plans
mkdir plans
changed=()
for dir in cdktf.out/stacks/*/; do
  stack=$(basename "$dir")
  rc=0
  { "$tofu" -chdir="$dir" init -input=false -no-color && "$tofu" -chdir="$dir" plan -input=false -lock=false -no-color -detailed-exitcode -out=plan.bin; } > "plans/$stack.log" 2>&1 || rc=$?
  case $rc in
    0) "$tofu" -chdir="$dir" show -json plan.bin > "plans/plan-$stack.json" ;;
    2) "$tofu" -chdir="$dir" show -json plan.bin > "plans/plan-$stack.json"; changed+=("$stack") ;;
    *) cp "plans/$stack.log" "plans/$stack.error"; rm -f "$dir/plan.bin" ;;
  esac
done
# A stack is held from this plan until the deploy of the merge applies it; a stack another pull
# request holds gets no reviewed plan here (#28 item 5).
lock_rc=0
args=(take --pr "$pr" --head "$head")
if [ -n "$run_url" ]; then args+=(--run-url "$run_url"); fi
locked=$(npm --prefix "$root" run -s stack-lock -- "${args[@]}" "${changed[@]}" 2> plans/stack-lock.err) || lock_rc=$?
case $lock_rc in
  0) ;;
  5)
    while IFS=$'\t' read -r stack message; do
      printf '%s\n' "$message" > "plans/$stack.error"
      rm -f "plans/plan-$stack.json" "cdktf.out/stacks/$stack/plan.bin"
    done <<< "$locked"
    ;;
  *)
    for stack in "${changed[@]}"; do
      { echo "the stack lock could not be taken, so this plan cannot be applied:"; cat plans/stack-lock.err; } > "plans/$stack.error"
      rm -f "plans/plan-$stack.json" "cdktf.out/stacks/$stack/plan.bin"
    done
    ;;
esac
sha256sum cdktf.out/stacks/*/cdk.tf.json > plans/stacks.sha256
