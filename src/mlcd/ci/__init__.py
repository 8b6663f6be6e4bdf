"""What the GitLab CI jobs run: remote setup from CI variables, reproduce-and-verify, release checks."""
