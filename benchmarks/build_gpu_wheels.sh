#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with CPython 3.12 x86_64 wheels of the packages that brainalign's GPU paths import
# and that a bare GPU image with Python 3.12 + torch + the scientific stack lacks, so that
# benchmarks/gpu_suite.py can install them offline there (`pip install --no-index --target /tmp/site`).
#
# Usage, from the repository root, on any machine with pip and network access to PyPI:
#     bash benchmarks/build_gpu_wheels.sh            # -> .whl/*.whl, prints the total size
#     MAX_MB=40 bash benchmarks/build_gpu_wheels.sh  # fail above 40 MB (default 48: the tree that
#                                                    # travels to a GPU machine is limited to 64 MB)
#
# Versions: those installed in .venv (the tested set; requirements.txt pins where it pins them).
# Dependencies are listed explicitly (pip download --no-deps): everything else these packages need
# (numpy, scipy, pandas, scikit-learn, h5py, matplotlib, networkx, scikit-image, joblib, tqdm, pyyaml,
# attrs, typing-extensions, packaging) is part of the GPU image and is deliberately not carried.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
MAX_MB=${MAX_MB:-48}
DEST=.whl

NAMES=(zarr numcodecs donfig google-crc32c himalaya rsatoolbox nibabel
       jsonschema jsonschema-specifications referencing rpds-py)

pin() {  # name==version: the version installed in the project's environment (the tested set), else the
         # requirements.txt pin, else the newest
  local v
  v=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null) \
    || v=$(grep -i "^$1==" requirements.txt | head -1 | cut -d= -f3)
  [ -n "$v" ] && echo "$1==$v" || echo "$1"
}

PLATFORMS=()
for n in 39 35 34 31 28 27 24 17; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

grep -qx '/.whl/' .gitignore 2>/dev/null || grep -qx '/.whl/' .git/info/exclude 2>/dev/null \
  || echo '/.whl/' >> .git/info/exclude
rm -rf "$DEST"
mkdir -p "$DEST"
for name in "${NAMES[@]}"; do
  spec=$(pin "$name")
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    "${PLATFORMS[@]}" --platform any -d "$DEST" "$spec" 2>&1 | { grep -v "is ignored" || true; }
done
ls -1 "$DEST"
kb=$(du -sk "$DEST" | cut -f1)
echo "total: $((kb / 1024)) MB in $DEST ($(ls "$DEST" | wc -l) wheels)"
if [ "$kb" -gt $((MAX_MB * 1024)) ]; then
  echo "error: $DEST is larger than $MAX_MB MB" >&2
  exit 1
fi
