#!/usr/bin/env bash
# A GPU kit: everything a GPU machine without internet needs to run ganbench's GPU window, in one folder
# of at most 64 MiB (what a lent device carries):
#   wheels/            torch-fidelity 0.4.0 and tqdm (pip download; the machine has torch and the rest)
#   fashion-mnist/     the four IDX .gz files (from $GANBENCH_DATA or /usr/share/datasets/fashion-mnist)
#   ganbench-src.tar.gz  this project without results/ and reports/ (committed and uncommitted tracked files)
#   run.sh             installs the wheels offline, then runs benchmarks/gpu_window.py into $OUT/window
# Inception weights (~91 MB) do not fit: the window's metrics use the fmnist classifier shipped in the tree.
#
#   bash benchmarks/gpu_kit.sh gpu_kit            # here (it is git-ignored), then on the GPU machine:
#   OUT=$OUT bash gpu_kit/run.sh                  # from the project root, or anywhere (it unpacks its copy)
set -euo pipefail
KIT=${1:?usage: bash benchmarks/gpu_kit.sh DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIMIT_MIB=64
mkdir -p "$KIT/wheels" "$KIT/fashion-mnist"
KIT=$(cd "$KIT" && pwd)

python -m pip download -q --no-deps --only-binary=:all: -d "$KIT/wheels" "torch-fidelity==0.4.0" tqdm

DATA=""
for d in "${GANBENCH_DATA:-}" "$HOME/.cache/ganbench/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte.gz" ]; then DATA=$d; break; fi
done
if [ -z "$DATA" ]; then
  echo "error: Fashion-MNIST's .gz files not found (set GANBENCH_DATA, or apt-get install dataset-fashion-mnist)" >&2
  exit 2
fi
cp "$DATA"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$KIT/fashion-mnist/"

(cd "$ROOT" && git ls-files -z --cached -- . ':!:results' ':!:reports' \
  | tar --null -T - -czf "$KIT/ganbench-src.tar.gz")

cat > "$KIT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Run on the GPU machine: OUT=<folder for the figures> bash <kit>/run.sh   (extra window options: WINDOW_ARGS)
set -uo pipefail
KIT=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-gpu-window-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
python -m pip install -q --no-deps --no-index "$KIT"/wheels/*.whl > "$OUT/pip.txt" 2>&1 \
  || python -m pip install -q --user --no-deps --no-index "$KIT"/wheels/*.whl >> "$OUT/pip.txt" 2>&1
if [ -f ganbench/__init__.py ] && [ -f benchmarks/gpu_window.py ]; then SRC=$PWD; else
  SRC="$KIT/src"; mkdir -p "$SRC"; tar -xzf "$KIT/ganbench-src.tar.gz" -C "$SRC"; fi
cd "$SRC"
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
export GANBENCH_DATA="$KIT/fashion-mnist" PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python benchmarks/gpu_window.py --out "$OUT/window" ${WINDOW_ARGS:-}
RUN
chmod +x "$KIT/run.sh"

SIZE=$(du -sb "$KIT" | cut -f1)
MIB=$(( (SIZE + 1048575) / 1048576 ))
if [ "$MIB" -gt "$LIMIT_MIB" ]; then echo "error: the kit is $MIB MiB, over $LIMIT_MIB MiB" >&2; exit 1; fi
REL=${KIT#"$ROOT"/}
echo "GPU kit in $KIT: $MIB MiB (≤ $LIMIT_MIB)"
echo "On the GPU machine, from the project root (or anywhere: it unpacks its own copy):"
echo "  OUT=\$OUT bash $REL/run.sh"
echo "With ganbench's device tool: carry [\"$REL\"], command 'OUT=\$OUT bash $REL/run.sh', timeout_s 600"
