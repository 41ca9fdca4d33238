#!/usr/bin/env bash
# Create a SoftHSM2 token in a folder of its own.
#
#   softhsm/mktoken.sh DIR LABEL USER_PIN SO_PIN
#
# Writes DIR/softhsm2.conf (from softhsm2.conf.tmpl beside this script) and
# DIR/tokens/, initialises a token labelled LABEL, and prints the line to
# export so that a PKCS#11 application finds it:
#   export SOFTHSM2_CONF=DIR/softhsm2.conf
# Tokens are found by label, never by slot number.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 DIR LABEL USER_PIN SO_PIN" >&2
  exit 2
fi
dir=$(mkdir -p "$1" && cd "$1" && pwd)
label=$2 pin=$3 sopin=$4
here=$(cd "$(dirname "$0")" && pwd)
command -v softhsm2-util >/dev/null || { echo "softhsm2-util not found: apt-get install softhsm2" >&2; exit 1; }
mkdir -p "$dir/tokens"
chmod 700 "$dir/tokens"
sed "s#{{TOKENDIR}}#$dir/tokens#" "$here/softhsm2.conf.tmpl" > "$dir/softhsm2.conf"
SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free \
  --label "$label" --pin "$pin" --so-pin "$sopin" >/dev/null
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
