# Sourced by the image scripts: picks the container engine and its options.
# podman (Debian's 4.3 on these machines) needs the runc runtime and the cgroupfs cgroup
# manager (the machines' hybrid cgroups make the default crun refuse) and explicit ulimits
# (the default ones exceed the hard limit here). docker, where present, needs none of that.
# Override with CONTAINER_ENGINE=docker|podman.
if [ -z "${CONTAINER_ENGINE:-}" ]; then
    if command -v podman >/dev/null 2>&1; then CONTAINER_ENGINE=podman
    elif command -v docker >/dev/null 2>&1; then CONTAINER_ENGINE=docker
    else
        echo "error: neither podman nor docker is installed; install one (Debian: apt-get install podman runc)" >&2
        exit 1
    fi
fi
if [ "$CONTAINER_ENGINE" = podman ]; then
    ENGINE=(podman --runtime runc --cgroup-manager cgroupfs)
    ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
else
    ENGINE=("$CONTAINER_ENGINE")
    ULIMITS=()
fi
