#!/usr/bin/env bash
# Build the HTML book from the chapters' STORED outputs (nothing is executed), fully offline.
#
#   bash book_config/build.sh [OUTDIR] [NOTEBOOKS_DIR]
#
# OUTDIR defaults to _build/book (git-ignored); open OUTDIR/index.html. NOTEBOOKS_DIR defaults to
# notebooks/ (another folder of NN_name.ipynb files is only for trying the build on scratch work).
# Jupyter Book 1 builds from a temporary staging folder that holds only the config, the landing
# page and the .ipynb files, so the jupytext .py twins never become pages and nothing is written
# into the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/_build/book}"
NOTEBOOKS="${2:-$ROOT/notebooks}"
PYTHON="${PYTHON:-python3}"

die() { echo "build.sh: $*" >&2; exit 1; }

# One Python start for both checks (each start costs seconds on a busy 2-core machine).
# MathJax 2.7 ships inside jupyter-server-mathjax; serving it from the book avoids the CDN.
MATHJAX="$("$PYTHON" - <<'PY'
import importlib.metadata as md, pathlib, sys
try:
    version = md.version("jupyter-book")
except md.PackageNotFoundError:
    sys.exit("jupyter-book is missing: pip install -r requirements-test.txt")
if not version.startswith("1."):
    sys.exit(f"need Jupyter Book 1, found {version}: pip install 'jupyter-book<2'")
try:
    import jupyter_server_mathjax
except ImportError:
    sys.exit("jupyter-server-mathjax (MathJax for offline math) is missing: "
             "pip install -r requirements-test.txt")
print(pathlib.Path(jupyter_server_mathjax.__file__).parent / "static")
PY
)" || die "missing build tools (see above)"
[[ -f "$MATHJAX/MathJax.js" ]] || die "no MathJax.js in $MATHJAX"

shopt -s nullglob
chapters=("$NOTEBOOKS"/[0-9][0-9]_*.ipynb)
(( ${#chapters[@]} )) || die "no chapters (NN_name.ipynb) in $NOTEBOOKS"

# Refuse to wipe a folder that is not an earlier build: OUTDIR is replaced as a whole.
if [[ -e "$OUT" && -n "$(ls -A "$OUT")" && ! -f "$OUT/.buildinfo" ]]; then
    die "$OUT exists and is not an earlier book build; choose an empty or new OUTDIR"
fi

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/book-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
# MathJax goes into _mathjax/, not _static/: Jupyter Book adds a <script> tag for every .js file
# under _static/, which would load all of MathJax's ~400 files on every page.
mkdir -p "$STAGE/notebooks" "$STAGE/_mathjax"
cp "$ROOT/book_config/_config.yml" "$ROOT/book_config/_toc.yml" "$ROOT/book_config/intro.md" \
    "$STAGE/"
cp "${chapters[@]}" "$STAGE/notebooks/"
# The solutions are a part of their own, after the chapters (see _toc.yml).
solutions=("$NOTEBOOKS"/solutions/[0-9][0-9]_*.ipynb)
if (( ${#solutions[@]} )); then
    mkdir -p "$STAGE/notebooks/solutions"
    cp "${solutions[@]}" "$STAGE/notebooks/solutions/"
fi
# Images that chapters link from their markdown (e.g. notebooks/figures/x.png) come along too.
for dir in "$NOTEBOOKS"/*/; do
    case "$(basename "$dir")" in figures | images | img | assets) cp -r "$dir" "$STAGE/notebooks/" ;; esac
done
cp -r "$MATHJAX" "$STAGE/_mathjax/mathjax"

start=$SECONDS
# --keep-going: a warning (say, a heading level skipped in one chapter) is reported but does not
# stop the book; broken links, images and math are what tests/test_browser.py checks.
jupyter-book build "$STAGE" --builder html --path-output "$STAGE/out" --keep-going --quiet \
    > "$STAGE/build.log" 2>&1 || { cat "$STAGE/build.log" >&2; die "jupyter-book build failed"; }
grep -iE "warning|error" "$STAGE/build.log" >&2 || true

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -r "$STAGE/out/_build/html" "$OUT"
echo "book: ${#chapters[@]} chapters, ${#solutions[@]} solutions -> $OUT/index.html ($((SECONDS - start)) s)"
