"""Rendering a directory of manifests (kustomize or plain YAML/JSON) into validated objects."""
