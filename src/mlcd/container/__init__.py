"""Container images of the model API: build with podman/buildah, run, smoke-test."""
