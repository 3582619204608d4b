#!/usr/bin/env bash
# Decrypts a host's secrets into environment files (docs/adr-0014-secrets.md). Run as root, by
# the deploy before it switches (sudo bash -s) and by the NixOS activation (modules/secrets.nix).
#
#   fleet-secrets.sh STORE RUN IDENTITY SPEC...
#
# STORE holds <secret>.age (age, encrypted to IDENTITY's public key, the SSH host key); RUN gets
# one file per SPEC "<file>:<VAR>=<secret>*<times>[?],..." with the lines VAR=value (times
# copies joined with ";"; "?" = leave VAR out when STORE has no such secret), root:root 0400.
# Files in RUN that no SPEC names are removed. Prints "added <file>" for a new file and
# "changed <file>" for one whose content changed (the deploy restarts its service). Values never reach an argument list: they stay in shell variables and go
# out through the printf builtin.
set -euo pipefail
umask 077
if [ "$#" -lt 3 ]; then echo "usage: fleet-secrets.sh STORE RUN IDENTITY SPEC..." >&2; exit 2; fi
store=$1 run=$2 identity=$3
shift 3
if [ ! -r "$identity" ]; then echo "fleet-secrets: cannot read the host key $identity" >&2; exit 1; fi
mkdir -p "$run"
chown 0:0 "$run"
chmod 0700 "$run"

keep=" "
for spec in "$@"; do
  file=${spec%%:*}
  vars=${spec#*:}
  case "$file" in (*/*|.*|"") echo "fleet-secrets: bad file name in '$spec'" >&2; exit 2;; esac
  content=""
  IFS=, read -r -a entries <<<"$vars"
  for entry in "${entries[@]}"; do
    var=${entry%%=*}
    rest=${entry#*=}
    optional=no
    case "$rest" in (*\?) optional=yes; rest=${rest%\?};; esac
    secret=${rest%%\**}
    times=${rest#*\*}
    if ! [[ $var =~ ^[A-Z_][A-Z0-9_]*$ && $secret =~ ^[a-z0-9][a-z0-9-]*$ && $times =~ ^[1-9][0-9]*$ ]]; then
      echo "fleet-secrets: bad entry '$entry' in '$spec'" >&2; exit 2
    fi
    if [ ! -e "$store/$secret.age" ]; then
      [ "$optional" = yes ] && continue
      echo "fleet-secrets: secret $secret is missing ($store/$secret.age); run npm run secrets -- generate, then deploy" >&2; exit 1
    fi
    if ! value=$(age -d -i "$identity" "$store/$secret.age"); then
      echo "fleet-secrets: cannot decrypt $secret with $identity (is it encrypted to this host's key? npm run secrets -- rekey)" >&2; exit 1
    fi
    case "$value" in (*$'\n'*|*$'\r'*) echo "fleet-secrets: secret $secret has more than one line" >&2; exit 1;; esac
    joined=$value
    for ((i = 1; i < times; i++)); do joined+=";$value"; done
    content+="$var=$joined"$'\n'
  done
  tmp="$run/.$file.tmp"
  printf '%s' "$content" >"$tmp"
  chown 0:0 "$tmp"
  chmod 0400 "$tmp"
  if [ ! -e "$run/$file" ]; then echo "added $file"; elif ! cmp -s "$tmp" "$run/$file"; then echo "changed $file"; fi
  mv -f "$tmp" "$run/$file"
  keep+="$file "
done

for old in "$run"/*; do
  [ -e "$old" ] || continue
  name=${old##*/}
  case "$keep" in (*" $name "*) ;; (*) rm -f "$old"; echo "removed $name";; esac
done
