"""Model versions: release tags, the version list, and restore."""
