"""``canaryctl`` / ``kubectl-canary``: one module per verb, thin; rendering separate."""
