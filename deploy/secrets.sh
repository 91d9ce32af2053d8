#!/usr/bin/env bash
# Write council's credentials into deploy/secrets/ (git-ignored), for compose and Kubernetes.
#
#   deploy/secrets.sh                 # create what is missing; existing files are kept
#   deploy/secrets.sh --rotate NAME   # new password for NAME: valkey, nats or llm
#   LLM_API_KEY=sk-... deploy/secrets.sh   # use a given LLM key instead of a generated one
#
# Files: valkey_password, valkey_auth.conf, valkey_url; nats_password, nats_auth.conf, nats_url;
# llm_api_key. The directory is 0700; the files are 0444 because containers read them as
# their own (non-root) users through bind mounts. Hosts and ports are the compose and
# Kubernetes service names (valkey:6379, nats:4222); override with VALKEY_HOST / NATS_HOST.
set -euo pipefail
dir="${SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}"
valkey_host="${VALKEY_HOST:-valkey:6379}"
nats_host="${NATS_HOST:-nats:4222}"
rotate=""
if [ "${1:-}" = "--rotate" ]; then
  rotate="${2:?--rotate needs valkey, nats or llm}"
  case "$rotate" in valkey|nats|llm) ;; *) echo "unknown secret '$rotate'" >&2; exit 2 ;; esac
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--rotate valkey|nats|llm]" >&2; exit 2
fi

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

# 48 hex characters with a letter first: never all digits (NATS reads an all-digit password
# substituted from a variable as a number and refuses the configuration).
password() { printf 'p%s' "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"; }

write() {  # write FILE CONTENT: no trailing newline (a Secret key's value is the file's bytes)
  local tmp; tmp="$(mktemp "$dir/.tmp.XXXXXX")"
  printf '%s' "$2" > "$tmp"
  chmod 0444 "$tmp"
  mv -f "$tmp" "$dir/$1"
}

need() {  # need NAME FILE: true when FILE is missing or NAME is being rotated
  [ "$rotate" = "$1" ] || [ ! -s "$dir/$2" ]
}

if need valkey valkey_password; then
  pw="$(password)"
  write valkey_password "$pw"
  write valkey_auth.conf "requirepass $pw"
  write valkey_url "valkey://:$pw@$valkey_host/0"
  echo "valkey: new password"
fi
if need nats nats_password; then
  pw="$(password)"
  write nats_password "$pw"
  write nats_auth.conf "authorization { users = [ { user: council, password: \"$pw\" } ] }"
  write nats_url "nats://council:$pw@$nats_host"
  echo "nats: new password"
fi
if need llm llm_api_key; then
  write llm_api_key "${LLM_API_KEY:-$(password)}"
  echo "llm: new API key"
fi
echo "secrets in $dir"
