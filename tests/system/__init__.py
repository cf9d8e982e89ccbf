"""The whole system: a fleet behind nginx and Prometheus, a browser, the SDK client venvs, lint and
type checks, the deployment manifests."""
