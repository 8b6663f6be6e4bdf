"""The CI jobs' adapters: remote setup from CI variables, the reproduce job, release checks, deploys."""
