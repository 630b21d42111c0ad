#!/usr/bin/env bash
# A Ray worker node of the compose cluster: join the head and offer GPUs to the trials.
#
#   NAS_GPUS_PER_WORKER=all (default)  this worker offers every GPU the container sees; run one
#                                      worker per host and Ray packs trials onto the GPUs by the
#                                      study's resources.gpu.
#   NAS_GPUS_PER_WORKER=k              this worker claims k GPUs of its own, so that
#                                      `docker compose up --scale ray-worker=N` gives N workers
#                                      distinct GPUs.
#
# Docker hands every replica of a scaled service the same devices (it does not share GPUs out
# among replicas), so replicas claim GPUs here: one lock file per GPU on the shared cache volume,
# held with flock for the life of this process (`exec` keeps the descriptors). A replica that
# stops releases its GPUs with its locks; nothing stale is left behind.
set -euo pipefail

head_address="${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS to the head, e.g. ray-head:6379}"
per_worker="${NAS_GPUS_PER_WORKER:-all}"
claims="${NAS_GPU_CLAIMS:-/workspace/.nas/cache/gpu-claims}"

if [[ "$per_worker" == all ]]; then
    exec ray start --address="$head_address" --block --disable-usage-stats "$@"
fi
if ! [[ "$per_worker" =~ ^[1-9][0-9]*$ ]]; then
    echo "nas-ray-worker: NAS_GPUS_PER_WORKER=$per_worker must be 'all' or a positive count" >&2
    exit 2
fi

# GPU indices in PCI bus order; CUDA_DEVICE_ORDER=PCI_BUS_ID (set in the image) makes CUDA agree.
mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ')
mkdir -p "$claims"
claimed=()
for index in "${gpus[@]}"; do
    ((${#claimed[@]} < per_worker)) || break
    exec {fd}>"$claims/gpu-$index.lock"
    if flock --nonblock "$fd"; then
        claimed+=("$index")
    else
        exec {fd}>&-
    fi
done
if ((${#claimed[@]} < per_worker)); then
    echo "nas-ray-worker: wanted $per_worker GPU(s), ${#claimed[@]} free of ${#gpus[@]};" \
        "other ray-worker replicas hold the rest: scale down or lower NAS_GPUS_PER_WORKER" >&2
    exit 1
fi

CUDA_VISIBLE_DEVICES="$(IFS=,; echo "${claimed[*]}")"
export CUDA_VISIBLE_DEVICES
echo "nas-ray-worker: GPUs $CUDA_VISIBLE_DEVICES"
exec ray start --address="$head_address" --num-gpus="${#claimed[@]}" --block \
    --disable-usage-stats "$@"
