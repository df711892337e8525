"""Root-cause analysis benchmarks: dataset adapters and accuracy scoring."""
