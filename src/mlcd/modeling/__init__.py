"""Modeling: features, training, evaluation, plots and packaging."""
