"""A real node for the loopback cluster: kubelet, containerd, runc, CNI and locally built images.

Modules, lowest first: :mod:`harness.node.host` (what a node changes on the machine, read and
taken back), :mod:`harness.node.images` (the pause and engine images, built with umoci and
mmdebstrap, never pulled), :mod:`harness.node.node` (:func:`~harness.node.node.start_node`).
"""
