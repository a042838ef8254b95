"""BMT benchmarks: figures beside the limit of the stack BMT runs on."""
