#!/usr/bin/env bash
# Remove what install.sh installed: the program folder, the menu entry, the icon and the command.
# Retrained models and settings are kept (see the message at the end).
#
# Usage: packaging/uninstall.sh [--prefix DIR]   (the same prefix as at install; default ~/.local/opt)
set -euo pipefail

PREFIX=${PREFIX:-$HOME/.local/opt}
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

DATA=${XDG_DATA_HOME:-$HOME/.local/share}
DEST="$PREFIX/CataractGrader"
ICON="$DATA/icons/hicolor/256x256/apps/cataract-grader.png"
DESKTOP="$DATA/applications/cataract-grader.desktop"
LINK="$HOME/.local/bin/cataract-grader"

if [ -e "$DEST" ] && [ ! -x "$DEST/CataractGrader" ]; then
    echo "error: $DEST is not a Cataract Grader installation; nothing was removed" >&2
    exit 1
fi
rm -rf "$DEST"
rm -f "$DESKTOP" "$ICON"
if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$DEST/CataractGrader" ]; then
    rm -f "$LINK"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$(dirname "$DESKTOP")" 2>/dev/null || true
fi

echo "Cataract Grader removed from $DEST."
echo "Kept: retrained models in $DATA/CataractGrader and settings in ${XDG_CONFIG_HOME:-$HOME/.config}/CataractGrader;"
echo "delete those folders too to remove everything."
