"""Data: sources, schema, validation and the train/test split."""
