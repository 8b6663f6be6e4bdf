"""The merge-request report: base vs head metrics, params, data, model and plots; the gate; GitLab."""
