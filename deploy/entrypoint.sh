#!/bin/sh
# council's container entry point: read secrets from mounted files, then run a council command.
#
# For each NAME in VALKEY_URL, NATS_URL, COUNCIL_API_KEY and DATABASE_URI, a set NAME_FILE
# names a file whose content (trailing newlines dropped) becomes NAME; the _FILE variable is
# then unset. Setting both NAME and NAME_FILE is refused. Everything else is passed to
# `council` unchanged:
#   council-entrypoint serve --production --host 0.0.0.0 --port 8123
#   council-entrypoint worker --concurrency 8
set -eu

for name in VALKEY_URL NATS_URL COUNCIL_API_KEY DATABASE_URI; do
  eval "file=\${${name}_FILE:-}"
  [ -n "$file" ] || continue
  eval "direct=\${${name}:-}"
  if [ -n "$direct" ]; then
    echo "council-entrypoint: both $name and ${name}_FILE are set; set one" >&2
    exit 2
  fi
  if [ ! -r "$file" ]; then
    echo "council-entrypoint: ${name}_FILE=$file is not a readable file" >&2
    exit 2
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done

exec council "$@"
