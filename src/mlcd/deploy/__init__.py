"""Blue/green deploys: one state machine (bluegreen.py) over a podman+nginx or a Kubernetes backend."""
