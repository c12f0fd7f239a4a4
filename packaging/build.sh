#!/usr/bin/env bash
# Build the one-folder app dist/CataractGrader/ with PyInstaller (packaging/cataract_grader.spec).
# Quiet: the full PyInstaller log goes to build/bundle.log; its tail is printed when the build fails.
# Environment: PY (python with PyInstaller, default .venv/bin/python), DISTPATH (default dist),
# WORKPATH (default build/pyinstaller), CATARACT_BUNDLE_FULL=1 (no exclusions, for measuring).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DISTPATH=${DISTPATH:-dist}
WORKPATH=${WORKPATH:-build/pyinstaller}
LOG=${LOG:-build/bundle.log}
APP="$DISTPATH/CataractGrader"

if [ ! -f resources/samples/eye-sample.jpg ]; then
    echo "error: resources/samples/eye-sample.jpg is missing; run '$PY packaging/make_sample.py'" >&2
    exit 1
fi
for role in student teacher; do
    if [ ! -f "resources/models/$role/card.json" ]; then
        echo "warning: resources/models/$role has no card.json, so the app ships without a default $role model" >&2
    fi
done

mkdir -p "$(dirname "$LOG")"
start=$(date +%s)
echo "building $APP (PyInstaller log: $LOG) ..."
if ! "$PY" -m PyInstaller --noconfirm --distpath "$DISTPATH" --workpath "$WORKPATH" \
        packaging/cataract_grader.spec >"$LOG" 2>&1; then
    echo "error: the PyInstaller build failed; the last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
fi
if [ ! -x "$APP/CataractGrader" ]; then
    echo "error: the build finished but $APP/CataractGrader is missing; see $LOG" >&2
    exit 1
fi
"$PY" packaging/slim_bundle.py "$APP"
echo "built $APP in $(( $(date +%s) - start )) s: $(du -sh "$APP" | cut -f1)"
