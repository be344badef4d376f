# Sourced by tools/dist_train.sh and tools/dist_test.sh: launch_ranks SCRIPT ARGS... runs
# SCRIPT ARGS in $GPUS processes through torchrun, with NNODES, NODE_RANK, MASTER_ADDR, PORT,
# PYTHON and ROOT set by the caller, and returns (exits with) torchrun's status.
#
# A user error (one `error: ...` line, exit 2, from any rank) must read as one line: the ranks
# write it to EPSD_ERROR_FILE instead of stderr (epsd_mm.utils.errors.report_and_exit), and the
# other ranks' tracebacks and torchrun's ChildFailedError, held back with the rest of stderr
# until the launch ends, are then dropped. Without a user error, stderr is printed as it was.
launch_ranks() {
    local status
    LAUNCH_RUN_DIR="$(mktemp -d)"
    trap 'rm -rf "$LAUNCH_RUN_DIR"' EXIT
    set +e
    EPSD_ERROR_FILE="$LAUNCH_RUN_DIR/error" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" \
        --node_rank="$NODE_RANK" \
        --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$GPUS" \
        --master_port="$PORT" \
        "$@" 2> "$LAUNCH_RUN_DIR/stderr"
    status=$?
    set -e
    if [ -s "$LAUNCH_RUN_DIR/error" ]; then
        if [ -t 1 ]; then echo; fi  # end a progress bar's line on a terminal
        cat "$LAUNCH_RUN_DIR/error" >&2
        status=2
    else
        cat "$LAUNCH_RUN_DIR/stderr" >&2
    fi
    exit "$status"
}
