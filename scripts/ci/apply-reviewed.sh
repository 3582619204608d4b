#!/usr/bin/env bash
# The deploy job of .github/workflows/deploy.yml, as a script the tests run: opens the sealed
# plans of the merged pull request, checks they are that pull request's and that main
# synthesizes exactly what was planned, then applies them, every stack after the stacks it reads
# (manifest.json), releasing each stack's lock once its plan is applied. Terraform refuses a
# saved plan whose state changed since ("Saved plan is stale"); the lock keeps other pull
# requests from making that happen.
#   scripts/ci/apply-reviewed.sh <artifact dir> <pull request> <base branch>
# Env: PLAN_AGE_IDENTITY (the age identity the plans are sealed to; never on argv or disk),
# TOFU (default tofu), and what tofu and stack-lock read (PG_CONN_STR, PROXMOX_VE_*).
# Exit 0 applied; 1 a stack failed to apply (its lock stays; the recovery job takes over);
# 2 the artifact is not the reviewed plan of this merge.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
art=${1:?artifact dir}
pr=${2:?pull request}
base=${3:?base branch}
tofu=${TOFU:-tofu}
fail() { echo "::error::$1"; exit "${2:-2}"; }
[ -n "${PLAN_AGE_IDENTITY:-}" ] || fail "PLAN_AGE_IDENTITY is not set: store the age identity the plans are sealed to (deploy/plan-recipients.txt) as the production environment's secret"
rm -rf reviewed
mkdir reviewed
age -d -i <(printf '%s\n' "$PLAN_AGE_IDENTITY") "$art/reviewed.tar.age" | tar -xzf - -C reviewed || fail "the reviewed plans cannot be opened with PLAN_AGE_IDENTITY (sealed to another key?)"
# shellcheck disable=SC2016 # JavaScript, not shell
PR=$pr BASE=$base node -e '
  const m = JSON.parse(require("fs").readFileSync("reviewed/plans/meta.json", "utf8"));
  if (m.pr !== Number(process.env.PR) || m.base !== process.env.BASE) {
    console.log(`::error::the sealed plans are for pull request #${m.pr} into ${m.base}, not #${process.env.PR} into ${process.env.BASE}`);
    process.exit(2);
  }'
sha256sum --quiet -c reviewed/plans/stacks.sha256 || fail "main's stacks differ from the ones planned on pull request #$pr (merged together with another change?): re-plan main (the recovery job's follow-up pull request)"
mapfile -t order < <(node "$root/scripts/stack-order.mjs" cdktf.out/manifest.json)
[ "${#order[@]}" -gt 0 ] || fail "no stacks in cdktf.out/manifest.json"
for stack in "${order[@]}"; do
  [ -f "reviewed/cdktf.out/stacks/$stack/plan.bin" ] || fail "no reviewed plan for stack $stack (its plan failed or another pull request held it)"
done
for stack in "${order[@]}"; do
  dir="cdktf.out/stacks/$stack"
  "$tofu" -chdir="$dir" init -input=false -no-color
  "$tofu" -chdir="$dir" apply -input=false -no-color -lock-timeout=10m "$PWD/reviewed/$dir/plan.bin" || fail "stack $stack failed to apply; its lock stays with pull request #$pr until a follow-up applies it" 1
  npm --prefix "$root" run -s stack-lock -- release --pr "$pr" "$stack"
done
