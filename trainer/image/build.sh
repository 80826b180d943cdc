#!/usr/bin/env bash
# `make image`: builds pipeform-trainer:<version> from trainer/Dockerfile and prints its
# size and digest. The build context (.pipeform-build/context, a cache, never committed)
# holds the trainer's sources and the wheels of its dependencies, downloaded on the host
# with pip at the versions this environment runs (torch: the CPU wheel pinned in
# pyproject.toml), so nothing inside the build needs the network.
#   BASE_IMAGE=...            another base (default: the Debian one, built when missing)
#   WHEELS_WITHOUT_TORCH=1    leave torch to the base image (a CUDA PyTorch base)
#   PIP=...                   the pip that downloads the wheels (default: python3 -m pip)
set -euo pipefail
cd "$(dirname "$0")/../.."
source trainer/image/engine.sh
PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c 'import sys; sys.path.insert(0, "."); from trainer.version import TRAINER_VERSION; print(TRAINER_VERSION)')
IMAGE=${IMAGE:-pipeform-trainer:$VERSION}
BASE_IMAGE=${BASE_IMAGE:-pipeform-base:bookworm}
CACHE=${PIPEFORM_BUILD_DIR:-.pipeform-build}
if [ "$BASE_IMAGE" = pipeform-base:bookworm ]; then
    bash trainer/image/build-base.sh "$BASE_IMAGE"
elif ! "${ENGINE[@]}" image exists "$BASE_IMAGE" 2>/dev/null && [ "$CONTAINER_ENGINE" = podman ]; then
    echo "error: base image $BASE_IMAGE is not present; pull it first ($CONTAINER_ENGINE pull $BASE_IMAGE)" >&2
    exit 1
fi
# the trainer's dependencies at the versions installed here (what the process executor runs)
REQS=$("$PYTHON" - <<'PY'
import importlib.metadata as m, os
# fairlearn and what it brings (scikit-learn, scipy, pandas): the evaluation's fairness
# metrics (trainer/evaluation.py); pip adds their own dependencies to the download
names = ["pyarrow", "numpy", "safetensors", "pydantic", "prometheus-client", "rich",
         "fairlearn", "scikit-learn", "scipy", "pandas"]
if not os.environ.get("WHEELS_WITHOUT_TORCH"):
    names.insert(0, "torch")
for name in names:
    version = m.version(name).split("+")[0]
    print(f"{name}=={version}")
PY
)
WHEELS=$CACHE/wheels
mkdir -p "$WHEELS"
echo "$REQS" > "$CACHE/requirements.txt"
if [ ! -f "$WHEELS/.done" ] || ! cmp -s "$CACHE/requirements.txt" "$WHEELS/.done"; then
    echo "downloading wheels into $WHEELS"
    rm -f "$WHEELS"/*.whl
    "$PYTHON" -m pip download --quiet --only-binary=:all: --dest "$WHEELS" -r "$CACHE/requirements.txt" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    cp "$CACHE/requirements.txt" "$WHEELS/.done"
fi
CONTEXT=$CACHE/context
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/trainer"
ln "$WHEELS"/*.whl "$CONTEXT/" 2>/dev/null || true
mkdir -p "$CONTEXT/wheels" && mv "$CONTEXT"/*.whl "$CONTEXT/wheels/"
tar -C trainer --exclude=__pycache__ -c . | tar -C "$CONTEXT/trainer" -x
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain -- trainer 2>/dev/null)" ] && REVISION="$REVISION-dirty"
"${ENGINE[@]}" build --quiet "${ULIMITS[@]}" --network none -f trainer/Dockerfile \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$REVISION" \
    --build-arg SOURCE="${IMAGE_SOURCE:-https://github.com/pipeform/pipeform}" \
    -t "$IMAGE" "$CONTEXT" >/dev/null
SIZE=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
DIGEST=$("${ENGINE[@]}" image inspect --format '{{.Id}}' "$IMAGE")
echo "built $IMAGE: size $((SIZE / 1000000)) MB, id sha256:${DIGEST#sha256:}"
