"""mlcd: continuous delivery for machine-learning models."""
