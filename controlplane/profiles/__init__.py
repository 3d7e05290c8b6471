"""GPU and quantization profiles: the catalogue, the memory-fit check and GPU cost.

``catalog`` loads and validates ``profiles/*.yaml``; ``fit`` checks that a variant fits on its
GPUs; ``cost`` prices a variant per day. Pure core (only the catalogue files are read); called
by spec validation, the serving layer and the CLI.
"""
