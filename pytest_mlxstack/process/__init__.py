"""Processes and files: state paths, loopback ports, process trees, the pid registry, the
service manager and the model cache. The lowest layer: it knows nothing of models or pytest."""
