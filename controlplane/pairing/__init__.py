"""The pairer: the process that sends a sample of live requests to both variants and scores them.

A router sends a share of each variant's traffic through the pairer's port for that variant. The
pairer answers the user from that variant, unchanged and streamed, and, for a sample of those
requests, sends the paired request (:func:`controlplane.analysis.quality.paired_request`) to both
variants and scores the two answers (:func:`controlplane.analysis.quality.score`). The scored pairs
are paged by whoever judges them (``GET /pairs?after=SEQ``).

Modules, highest first: ``__main__`` (``python -m controlplane.pairing``), ``pairer`` (the HTTP
service), ``journal | sampling`` (pure: the pairs kept, which requests are paired). See
docs/judges.md, "Quality: paired answers".
"""
