#!/usr/bin/env bash
# Print the path of a buf binary (protobuf linting), installing it first when it is missing.
#
# buf comes from the npm package @bufbuild/buf, whose platform package (@bufbuild/buf-linux-x64, ...) ships the
# static binary. It is installed with npm into $CERTA_TOOLS_DIR (default ~/.cache/certa/tools) once; later runs only
# print the cached path.
#
#   deploy/tools/get-buf.sh            # -> ~/.cache/certa/tools/buf-<version>/node_modules/.bin/buf
#   "$(deploy/tools/get-buf.sh)" lint
set -euo pipefail

PACKAGE=@bufbuild/buf
VERSION=1.75.0
TOOLS_DIR=${CERTA_TOOLS_DIR:-$HOME/.cache/certa/tools}
PREFIX="$TOOLS_DIR/buf-$VERSION"
TARGET="$PREFIX/node_modules/.bin/buf"

if [ -x "$TARGET" ] && "$TARGET" --version >/dev/null 2>&1; then
  echo "$TARGET"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "get-buf: npm is required" >&2
  exit 1
fi

work="$PREFIX.partial.$$"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
npm install --prefix "$work" --no-save --no-audit --no-fund --loglevel=error "$PACKAGE@$VERSION" >&2
"$work/node_modules/.bin/buf" --version >/dev/null
rm -rf "$PREFIX"
mv "$work" "$PREFIX"
echo "$TARGET"
