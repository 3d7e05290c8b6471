"""The Kubernetes adapter: the only package that may import the ``kubernetes`` client."""
