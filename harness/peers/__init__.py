"""The peers the side-by-side benchmark runs beside ours: Flagger and Argo Rollouts.

Built by ``scripts/build-peers.sh``; configured as their own documentation configures them
(:mod:`harness.peers.render`, pure) and started as host processes against the loopback cluster
(:mod:`harness.peers.run`). Called by ``bench/peers.py`` and its test.
"""
