"""Watching a served model: drift statistics shared by the server and the offline report."""
