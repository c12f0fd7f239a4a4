#!/usr/bin/env bash
# Install the built app for the current user (no root): the program folder, a menu entry and
# its icon, and a `cataract-grader` command in ~/.local/bin. Run again to update; see uninstall.sh.
#
# Usage: packaging/install.sh [--from DIR] [--prefix DIR]
#   --from DIR    the built app folder (default: dist/CataractGrader next to this script's parent)
#   --prefix DIR  where CataractGrader/ goes (default: $PREFIX or ~/.local/opt)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC:-$(dirname "$HERE")/dist/CataractGrader}
PREFIX=${PREFIX:-$HOME/.local/opt}
while [ $# -gt 0 ]; do
    case "$1" in
        --from) SRC=$2; shift 2 ;;
        --prefix) PREFIX=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

DATA=${XDG_DATA_HOME:-$HOME/.local/share}
DEST="$PREFIX/CataractGrader"
EXE="$DEST/CataractGrader"
ICON="$DATA/icons/hicolor/256x256/apps/cataract-grader.png"
DESKTOP="$DATA/applications/cataract-grader.desktop"
LINK="$HOME/.local/bin/cataract-grader"

if [ ! -x "$SRC/CataractGrader" ]; then
    echo "error: $SRC/CataractGrader not found; build the app first with 'make bundle'" >&2
    exit 1
fi
icon_src=$(find "$SRC" -path '*/resources/icons/cataract-grader-256.png' -print -quit)
if [ -z "$icon_src" ]; then
    echo "error: $SRC holds no resources/icons/cataract-grader-256.png; rebuild it with 'make bundle'" >&2
    exit 1
fi
if [ -e "$DEST" ] && [ ! -x "$DEST/CataractGrader" ]; then
    echo "error: $DEST exists but is not a Cataract Grader installation; move it away first" >&2
    exit 1
fi

# Copy next to the target, then swap, so a failed copy never leaves half an app behind.
mkdir -p "$PREFIX"
rm -rf "$DEST.new"
cp -a "$SRC" "$DEST.new"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"

mkdir -p "$(dirname "$ICON")" "$(dirname "$DESKTOP")" "$(dirname "$LINK")"
cp "$icon_src" "$ICON"
sed -e "s|@EXEC@|$EXE|" -e "s|@ICON@|$ICON|" "$HERE/cataract-grader.desktop" > "$DESKTOP"
chmod 644 "$DESKTOP"
ln -sfn "$EXE" "$LINK"
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$(dirname "$DESKTOP")" || true
fi

echo "Cataract Grader installed in $DEST"
echo "  menu entry: $DESKTOP"
echo "  command:    $LINK (check with: cataract-grader --self-test)"
